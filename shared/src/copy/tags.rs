//! Tags read from the source apart from the object, and written to a replica.

use aws_sdk_s3::Client;

use crate::config::Destination;
use crate::errors::{FailureReason, ReplicationError, S3Step};
use crate::queues::job::Job;

/// The source's tags as a PutObject `x-amz-tagging` query string.
pub async fn source_tagging(
    client: &Client,
    job: &Job,
    version_id: Option<&str>,
) -> Result<Option<String>, ReplicationError> {
    let result = client
        .get_object_tagging()
        .bucket(&job.source.bucket)
        .key(&job.source.key)
        .set_version_id(version_id.map(str::to_string))
        .send()
        .await;
    let out = match result {
        Ok(out) => out,
        // An S3-compatible source without tagging (s3s-fs, some appliances) has no
        // tags to carry; failing every copy for it would help no one.
        Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("NotImplemented") => {
            tracing::warn!(bucket = %job.source.bucket, "the source does not implement tagging; copying without tags");
            return Ok(None);
        }
        Err(e) => return Err(ReplicationError::from_sdk(S3Step::SourceTagging, &e)),
    };
    if out.tag_set().is_empty() {
        return Ok(None);
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for tag in out.tag_set() {
        query.append_pair(tag.key(), tag.value());
    }
    Ok(Some(query.finish()))
}

/// Sets the replica's tags to `tagging` (a query string; none or empty: no tags). A
/// destination without tagging (some S3-compatible stores) cannot hold them: logged.
pub async fn write_tags(
    dst: &Client,
    destination: &Destination,
    key: &str,
    tagging: Option<&str>,
) -> Result<(), ReplicationError> {
    let tags: Vec<aws_sdk_s3::types::Tag> =
        form_urlencoded::parse(tagging.unwrap_or("").as_bytes())
            .filter_map(|(k, v)| {
                aws_sdk_s3::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .ok()
            })
            .collect();
    let result = if tags.is_empty() {
        dst.delete_object_tagging()
            .bucket(&destination.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationTagging, &e))
    } else {
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .set_tag_set(Some(tags))
            .build()
            .map_err(|e| ReplicationError::new(FailureReason::InvalidRequest, e.to_string()))?;
        dst.put_object_tagging()
            .bucket(&destination.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationTagging, &e))
    };
    match result {
        Ok(()) => {
            tracing::info!(key = %key, destination = %destination.bucket,
                "the source's tags changed during the copy; the replica has the new ones");
            Ok(())
        }
        Err(e) if e.detail.contains("NotImplemented") => {
            tracing::warn!(key = %key, destination = %destination.bucket, error = %e,
                "the destination does not implement tagging; the tag change is not carried");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
