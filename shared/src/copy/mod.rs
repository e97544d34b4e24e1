//! The copy engine: makes one destination match one source object.
//!
//! Same endpoint: HEAD the source, then one server-side CopyObject that carries the
//! content headers and metadata (REPLACE, from the HEAD), the tags (COPY directive),
//! the storage class (always explicit) and the ACL as the mode says. That is two
//! requests for the common case; ACL copy adds one GetObjectAcl, unless the source
//! bucket has ACLs disabled (then there is nothing to read, and we learn that once per
//! bucket per process).
//!
//! Another endpoint: a GET pinned to the HEAD's ETag streamed into one PutObject.
//!
//! Large objects go through [`crate::copy::multipart`] instead; what either wrote is checked
//! by [`crate::copy::verify`].

mod acl;
pub mod conditions;
pub mod lock;
pub mod multipart;
pub mod provenance;
mod source;
mod tags;
pub mod verify;

pub use acl::{source_grants, AclSupport, GrantHeaders};
pub use source::{head_source, SourceState};
pub use tags::{source_tagging, write_tags};

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{MetadataDirective, ServerSideEncryption, StorageClass, TaggingDirective};
use aws_sdk_s3::Client;

use crate::checksums_of;
use crate::config::storage_class::source_class;
use crate::config::Destination;
use crate::copy::verify::{Verified, Written};
use crate::errors::{FailureReason, ReplicationError, S3Step};
use crate::queues::job::{Continuation, Job};

/// What a finished job did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The object was copied, and checked as `verified` says.
    Replicated {
        bytes: u64,
        verified: Verified,
    },
    /// The replica's tags or ACL were brought in line; no bytes moved.
    Updated,
    Deleted,
    Skipped {
        reason: &'static str,
    },
    /// A multipart copy ran out of invocation time; the job continues from here.
    Paused(Box<Continuation>),
}

/// How the replica is encrypted: never weaker than its source. A replica KMS key, when
/// the destination names one (with the source's DSSE when it has it); else the
/// destination bucket's default encryption, which on S3 is at least SSE-S3 (every
/// bucket's since 2023), an SSE-S3 source's: an explicit `AES256` would override a
/// default SSE-KMS, and be refused by the common bucket policy that requires aws:kms.
/// (SSE-KMS sources replicate only under a rule that names a replica key.)
pub fn replica_encryption(
    destination: &Destination,
    head: &HeadObjectOutput,
) -> (Option<ServerSideEncryption>, Option<String>) {
    let source = head.server_side_encryption();
    match (&destination.replica_kms_key_id, source) {
        (Some(key), Some(ServerSideEncryption::AwsKmsDsse)) => {
            (Some(ServerSideEncryption::AwsKmsDsse), Some(key.clone()))
        }
        (Some(key), _) => (Some(ServerSideEncryption::AwsKms), Some(key.clone())),
        (None, _) => (None, None),
    }
}

/// Percent-encodes `bucket/key?versionId=v` for x-amz-copy-source.
pub fn copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() * 3);
    out.push_str(bucket);
    out.push('/');
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if let Some(v) = version_id {
        out.push_str("?versionId=");
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// The storage class to write, validated so a typo in the map fails clearly.
pub fn replica_class(destination: &Destination, head: &HeadObjectOutput) -> StorageClass {
    let source = source_class(head.storage_class().map(|c| c.as_str()));
    StorageClass::from(destination.replica_storage_class(source).as_str())
}

pub(crate) fn expires(head: &HeadObjectOutput) -> Option<DateTime> {
    let text = head.expires_string()?;
    DateTime::from_str(text, aws_smithy_types::date_time::Format::HttpDate).ok()
}

/// CopyObject, PutObject and CreateMultipartUpload take the same replica properties
/// through builders that share method names but no trait; this sets them on any: user
/// metadata, content headers, the storage class, the encryption, the source version's
/// Object Lock (unless `$lock` is false), and the ACL as the destination's mode says.
macro_rules! with_replica_properties {
    ($request:expr, $source:expr, $destination:expr, $key:expr, $grants:expr, $lock:expr) => {{
        let (source, destination): (&$crate::copy::SourceState, &$crate::config::Destination) =
            ($source, $destination);
        let head = &source.head;
        let holder = $crate::copy::provenance::Holder {
            bucket: &destination.bucket,
            key: $key,
        };
        let request = $request
            .set_metadata(Some(source.replica_metadata(holder)))
            .set_content_type(head.content_type().map(str::to_string))
            .set_content_encoding(head.content_encoding().map(str::to_string))
            .set_content_language(head.content_language().map(str::to_string))
            .set_content_disposition(head.content_disposition().map(str::to_string))
            .set_cache_control(head.cache_control().map(str::to_string))
            .set_expires($crate::copy::expires(head))
            .set_website_redirect_location(head.website_redirect_location().map(str::to_string))
            .storage_class($crate::copy::replica_class(destination, head));
        let (sse, kms_key) = $crate::copy::replica_encryption(destination, head);
        let request = request
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key);
        let request = match $lock {
            true => {
                let lock = $crate::copy::lock::Lock::of(head);
                request
                    .set_object_lock_mode(lock.mode)
                    .set_object_lock_retain_until_date(lock.retain_until)
                    .set_object_lock_legal_hold_status(
                        lock.legal_hold
                            .then_some(aws_sdk_s3::types::ObjectLockLegalHoldStatus::On),
                    )
            }
            false => request,
        };
        match (destination.acl_mode, $grants) {
            ($crate::config::AclMode::OwnerOverride, _) => {
                request.acl(aws_sdk_s3::types::ObjectCannedAcl::BucketOwnerFullControl)
            }
            ($crate::config::AclMode::Copy, Some(g)) => request
                .set_grant_full_control(g.full_control)
                .set_grant_read(g.read)
                .set_grant_read_acp(g.read_acp)
                .set_grant_write_acp(g.write_acp),
            _ => request,
        }
    }};
}
pub(crate) use with_replica_properties;

/// The `If-Match` and `If-None-Match` a replica write carries (see
/// [`conditions::Expect::headers`]).
pub type Condition = (Option<String>, Option<String>);

/// Server-side copy within one endpoint: one CopyObject, conditional on the replica's
/// state (`condition`).
pub async fn copy_same_endpoint(
    client: &Client,
    job: &Job,
    destination: &Destination,
    source: &SourceState,
    grants: Option<GrantHeaders>,
    condition: Condition,
) -> Result<Written, ReplicationError> {
    let head = &source.head;
    let version = head.version_id();
    // With the lock headers, or without them for a server that refuses them on a copy.
    let request = |with_lock: bool| {
        let request = client
            .copy_object()
            .bucket(&destination.bucket)
            .key(&job.source.key)
            .copy_source(copy_source(&job.source.bucket, &job.source.key, version))
            // Pins the copy to what we just read: a concurrent overwrite fails the copy
            // (and the job retries with the new object) instead of mixing the two.
            .set_copy_source_if_match(head.e_tag().map(str::to_string))
            .metadata_directive(MetadataDirective::Replace)
            .tagging_directive(TaggingDirective::Copy)
            .set_checksum_algorithm(source.checksum_algorithm())
            .set_if_match(condition.0.clone())
            .set_if_none_match(condition.1.clone());
        with_replica_properties!(
            request,
            source,
            destination,
            &job.source.key,
            grants.clone(),
            with_lock
        )
    };
    let locked = lock::Lock::of(head).is_some();
    // Boxed: two sends would double this future, polled deep in a job's.
    let (out, lock_dropped) = match Box::pin(request(true).send()).await {
        Ok(out) => (out, false),
        // A server that refuses a copy's lock headers (moto) gets the copy without
        // them; the replica's lock is set after.
        Err(e) if locked && lock::refused_lock_headers(&e) => {
            let out = Box::pin(request(false).send())
                .await
                .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?;
            (out, true)
        }
        Err(e) => return Err(ReplicationError::from_sdk(S3Step::DestinationWrite, &e)),
    };
    let result = out.copy_object_result();
    Ok(Written {
        etag: result.and_then(|r| r.e_tag()).map(str::to_string),
        checksums: result.map(|r| checksums_of!(r)).unwrap_or_default(),
        size: None,
        kms: Written::kms(out.server_side_encryption()),
        version_id: out.version_id().map(str::to_string),
        lock_dropped,
        lock: None,
    })
}

/// Copy to another endpoint: a GET pinned to the HEAD's ETag, streamed into PutObject
/// with the source's checksum algorithm (the destination checks it on arrival), its
/// tags (`tagging`, read by the caller) and conditional on the replica's state.
#[allow(clippy::too_many_arguments)]
pub async fn copy_streamed(
    source_client: &Client,
    destination_client: &Client,
    job: &Job,
    destination: &Destination,
    source: &SourceState,
    grants: Option<GrantHeaders>,
    tagging: Option<String>,
    condition: Condition,
) -> Result<Written, ReplicationError> {
    const SINGLE_PUT_LIMIT: u64 = 5 * 1024 * 1024 * 1024;
    if source.size() > SINGLE_PUT_LIMIT {
        return Err(ReplicationError::new(
            FailureReason::InvalidRequest,
            format!(
                "{} bytes is above PutObject's 5 GiB limit; lower the multipart threshold",
                source.size()
            ),
        ));
    }
    let head = &source.head;
    let version = head.version_id().map(str::to_string);
    let get = source_client
        .get_object()
        .bucket(&job.source.bucket)
        .key(&job.source.key)
        .set_version_id(version.clone())
        .set_if_match(head.e_tag().map(str::to_string))
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::SourceGet, &e))?;
    let request = destination_client
        .put_object()
        .bucket(&destination.bucket)
        .key(&job.source.key)
        .body(get.body)
        .content_length(source.size() as i64)
        .set_checksum_algorithm(source.checksum_algorithm())
        .set_tagging(tagging)
        .set_if_match(condition.0)
        .set_if_none_match(condition.1);
    let request =
        with_replica_properties!(request, source, destination, &job.source.key, grants, true);
    let out = request
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?;
    Ok(Written {
        etag: out.e_tag().map(str::to_string),
        checksums: checksums_of!(&out),
        size: None,
        kms: Written::kms(out.server_side_encryption()),
        version_id: out.version_id().map(str::to_string),
        lock_dropped: false,
        lock: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::types::ArchiveStatus;

    /// What S3 does not replicate, read from a HEAD.
    #[test]
    fn what_s3_does_not_replicate() {
        let cfg = crate::config::Config::parse(
            r#"{"Sources": [{"Bucket": "src", "ReplicationConfiguration": {"Rules": [
                {"Status": "Enabled", "Priority": 1, "Filter": {}, "Destination": {"Bucket": "dst"}}]}}]}"#,
        )
        .unwrap();
        let rule = &cfg.sources[0].rules[0];
        let reason = |head: HeadObjectOutput| SourceState::new(head).not_replicated(rule);
        let base = || HeadObjectOutput::builder().content_length(1);
        assert_eq!(reason(base().build()), None);
        assert_eq!(
            reason(base().storage_class(StorageClass::GlacierIr).build()),
            None
        );
        for head in [
            base().storage_class(StorageClass::Glacier).build(),
            base().storage_class(StorageClass::DeepArchive).build(),
            base()
                .storage_class(StorageClass::IntelligentTiering)
                .archive_status(ArchiveStatus::DeepArchiveAccess)
                .build(),
        ] {
            assert_eq!(reason(head), Some("ObjectInArchive"));
        }
        assert_eq!(
            reason(base().sse_customer_algorithm("AES256").build()),
            Some("SseCustomerKeyEncrypted")
        );
        assert_eq!(
            reason(
                base()
                    .server_side_encryption(ServerSideEncryption::AwsKmsDsse)
                    .build()
            ),
            Some("SseKmsNotSelected")
        );
    }

    #[test]
    fn copy_source_is_percent_encoded() {
        assert_eq!(copy_source("b", "a b+c/d%e", None), "b/a%20b%2Bc/d%25e");
        assert_eq!(
            copy_source("b", "日", Some("v+1")),
            "b/%E6%97%A5?versionId=v%2B1"
        );
    }
}
