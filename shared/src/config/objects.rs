//! Reading small objects whole: a configuration, a manifest, a record.

use crate::errors::{describe, http_status, is_not_found};

/// The whole body of a small object (a configuration, a manifest, a record); `None`
/// when there is no such key. The error says what failed, for the caller to wrap.
pub async fn read_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, String> {
    read_object_at(s3, bucket, key, None).await
}

/// [`read_object`] at one version: a VersionId, or an ETag in double quotes (for an
/// unversioned bucket, where a changed object then fails the read instead of being
/// taken for the version asked).
pub async fn read_object_at(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Option<Vec<u8>>, String> {
    let request = s3.get_object().bucket(bucket).key(key);
    let request = match version {
        Some(etag) if etag.starts_with('"') => request.if_match(etag),
        Some(id) => request.version_id(id),
        None => request,
    };
    let out = match request.send().await {
        Ok(out) => out,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) if http_status(&e) == Some(412) => {
            return Err(format!(
            "the object is no longer the version {} names ({}): deploy again with the new version",
            crate::config::settings::CONFIG_VERSION_VAR,
            version.unwrap_or_default()
        ))
        }
        Err(e) => return Err(describe(&e)),
    };
    let bytes = out.body.collect().await.map_err(|e| e.to_string())?;
    Ok(Some(bytes.to_vec()))
}
