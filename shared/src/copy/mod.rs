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

pub mod conditions;
pub mod multipart;
pub mod provenance;
pub mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, Grant, MetadataDirective, ObjectOwnership, Permission,
    ServerSideEncryption, StorageClass, TaggingDirective, Type,
};
use aws_sdk_s3::Client;

use crate::checksums_of;
use crate::config::keys::Signer;
use crate::config::storage_class::source_class;
use crate::config::Destination;
use crate::copy::provenance::{Holder, Provenance};
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

/// The source's current state, read by HEAD, and the provenance its replica records.
#[derive(Debug, Clone)]
pub struct SourceState {
    pub head: HeadObjectOutput,
    pub provenance: Option<Provenance>,
    /// When the HEAD answered: a copy that lands long after this may have overwritten
    /// a newer replica, and is checked again.
    pub read_at: std::time::Instant,
    /// Signs the provenance the replica is written with.
    pub signer: Signer,
}

impl SourceState {
    pub fn new(head: HeadObjectOutput) -> Self {
        SourceState {
            head,
            provenance: None,
            read_at: std::time::Instant::now(),
            signer: Signer::unsigned(),
        }
    }

    /// Why S3 would not replicate this object, if it would not: an SSE-C object (no
    /// one can read it without the customer's key), an SSE-KMS or DSSE-KMS object the
    /// rule does not select, an object in an archive class or tier.
    pub fn not_replicated(&self, rule: &crate::config::Rule) -> Option<&'static str> {
        let head = &self.head;
        if head.sse_customer_algorithm().is_some() {
            return Some("SseCustomerKeyEncrypted");
        }
        let kms = matches!(
            head.server_side_encryption(),
            Some(ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)
        );
        if kms && !rule.sse_kms_objects {
            return Some("SseKmsNotSelected");
        }
        let archived = matches!(
            head.storage_class(),
            Some(StorageClass::Glacier | StorageClass::DeepArchive)
        ) || head.archive_status().is_some();
        if archived {
            return Some("ObjectInArchive");
        }
        None
    }

    /// Whether `now` (a later HEAD) is the state this one read: the same version, or
    /// on an unversioned source the same ETag and modification time.
    pub fn same_object(&self, now: &HeadObjectOutput) -> bool {
        let then = &self.head;
        match (then.version_id(), now.version_id()) {
            (Some(a), Some(b)) if a != "null" || b != "null" => a == b,
            _ => then.e_tag() == now.e_tag() && then.last_modified() == now.last_modified(),
        }
    }

    /// What the replica's user metadata will be: the source's, with as much of our
    /// provenance as fits in S3's 2 KB beside it (what does not fit is logged), signed
    /// for where the replica is (`holder`).
    pub fn replica_metadata(&self, holder: Holder<'_>) -> HashMap<String, String> {
        let Some(p) = &self.provenance else {
            return crate::copy::provenance::user_metadata(self.head.metadata());
        };
        let (metadata, left_out) = p.metadata_for(self.head.metadata(), holder, &self.signer);
        if !left_out.is_empty() {
            tracing::warn!(source_bucket = %p.source_bucket, left_out = %left_out.join(","),
                user_metadata_bytes = crate::copy::provenance::metadata_size(&crate::copy::provenance::user_metadata(self.head.metadata())),
                "the object's own metadata leaves too little of S3's 2 KB for all of the replica's provenance; written without these keys");
        }
        metadata
    }

    /// The provenance the source object itself carries, when it is a replica (this
    /// replicator's, by its signature).
    pub fn own_provenance(&self, holder: Holder<'_>, signer: &Signer) -> Option<Provenance> {
        Provenance::read(self.head.metadata(), holder, signer)
    }

    pub fn size(&self) -> u64 {
        self.head.content_length().unwrap_or(0).max(0) as u64
    }

    /// The checksum algorithm the source was written with, if any.
    pub fn checksum_algorithm(&self) -> Option<ChecksumAlgorithm> {
        checksums_of!(&self.head).algorithm()
    }
}

/// Per-process memory of which buckets have ACLs disabled (BucketOwnerEnforced).
#[derive(Debug, Default)]
pub struct AclSupport {
    known: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<bool>>>>,
}

impl AclSupport {
    /// Whether the bucket uses ACLs at all; asked once per bucket per process, however
    /// many jobs ask at once (the first asks, the others wait for its answer).
    pub async fn uses_acls(&self, client: &Client, bucket: &str) -> bool {
        let cell = self
            .known
            .lock()
            .expect("acl cache")
            .entry(bucket.to_string())
            .or_default()
            .clone();
        *cell
            .get_or_init(|| async {
                match client
                    .get_bucket_ownership_controls()
                    .bucket(bucket)
                    .send()
                    .await
                {
                    Ok(out) => !out
                        .ownership_controls()
                        .map(|c| {
                            c.rules().iter().any(|r| {
                                r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced
                            })
                        })
                        .unwrap_or(false),
                    // No ownership controls (buckets from before 2023): ACLs are in
                    // force. On any other answer assume they are, and let the ACL
                    // request speak.
                    Err(_) => true,
                }
            })
            .await
    }
}

/// HEADs what the source holds now under the job's key; `None` when nothing (or a
/// delete marker) is there. Jobs copy the current object, pinned to the version and
/// ETag this returns, never an older version an event remembers: a late event then
/// re-copies the newest state instead of putting an old one back.
pub async fn head_source(
    client: &Client,
    job: &Job,
) -> Result<Option<SourceState>, ReplicationError> {
    let result = client
        .head_object()
        .bucket(&job.source.bucket)
        .key(&job.source.key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await;
    match result {
        Ok(head) => Ok(Some(SourceState::new(head))),
        Err(err) if status(&err) == Some(404) => Ok(None),
        // Checksums of an SSE-KMS object need kms:Decrypt on its key, which a rule
        // that does not select KMS objects has no reason to be granted: without them,
        // the HEAD still says what the object is (and that it is not replicated).
        Err(err) if status(&err) == Some(403) => {
            let plain = client
                .head_object()
                .bucket(&job.source.bucket)
                .key(&job.source.key)
                .send()
                .await;
            match plain {
                Ok(head) => Ok(Some(SourceState::new(head))),
                Err(e) if status(&e) == Some(404) => Ok(None),
                Err(_) => Err(ReplicationError::from_sdk(S3Step::SourceHead, &err)),
            }
        }
        // S3 answers a HEAD of an SSE-C object made without the customer's key with a
        // bare 400; a one-byte GET says why. Such an object is what its HEAD would have
        // said, had it answered: encrypted with a customer key, which rules skip.
        Err(err) if status(&err) == Some(400) && needs_customer_key(client, job).await => {
            let head = HeadObjectOutput::builder()
                .sse_customer_algorithm("AES256")
                .build();
            Ok(Some(SourceState::new(head)))
        }
        Err(err) => Err(ReplicationError::from_sdk(S3Step::SourceHead, &err)),
    }
}

/// Whether reading the object needs a customer-provided key (SSE-C).
async fn needs_customer_key(client: &Client, job: &Job) -> bool {
    let get = client
        .get_object()
        .bucket(&job.source.bucket)
        .key(&job.source.key)
        .range("bytes=0-0")
        .send()
        .await;
    match get {
        Err(e) => e
            .as_service_error()
            .and_then(|s| s.meta().message())
            .is_some_and(|m| {
                let m = m.to_ascii_lowercase();
                m.contains("server side encryption") || m.contains("customer")
            }),
        Ok(_) => false,
    }
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

fn status<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
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

/// The source's grants as x-amz-grant-* header values, or None when the ACL is the
/// default (only the owner, with full control), which needs no header.
#[derive(Debug, Clone)]
pub struct GrantHeaders {
    pub full_control: Option<String>,
    pub read: Option<String>,
    pub read_acp: Option<String>,
    pub write_acp: Option<String>,
}

pub async fn source_grants(
    client: &Client,
    job: &Job,
    version_id: Option<&str>,
) -> Result<Option<GrantHeaders>, ReplicationError> {
    let acl = client
        .get_object_acl()
        .bucket(&job.source.bucket)
        .key(&job.source.key)
        .set_version_id(version_id.map(str::to_string))
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::SourceAcl, &e))?;
    let owner = acl.owner().and_then(|o| o.id()).unwrap_or("");
    let only_owner = acl.grants().iter().all(|g| {
        g.permission() == Some(&Permission::FullControl)
            && g.grantee().and_then(|e| e.id()) == Some(owner)
    });
    if only_owner {
        return Ok(None);
    }
    Ok(Some(grant_headers(acl.grants())))
}

fn grant_headers(grants: &[Grant]) -> GrantHeaders {
    let mut by_permission: HashMap<&str, Vec<String>> = HashMap::new();
    for g in grants {
        let (Some(permission), Some(grantee)) = (g.permission(), g.grantee()) else {
            continue;
        };
        let who = match grantee.r#type() {
            Type::CanonicalUser => grantee.id().map(|id| format!("id=\"{id}\"")),
            Type::Group => grantee.uri().map(|uri| format!("uri=\"{uri}\"")),
            Type::AmazonCustomerByEmail => grantee
                .email_address()
                .map(|e| format!("emailAddress=\"{e}\"")),
            _ => None,
        };
        if let Some(who) = who {
            by_permission
                .entry(permission.as_str())
                .or_default()
                .push(who);
        }
    }
    let mut take = |p: &str| by_permission.remove(p).map(|v| v.join(", "));
    GrantHeaders {
        full_control: take("FULL_CONTROL"),
        read: take("READ"),
        read_acp: take("READ_ACP"),
        write_acp: take("WRITE_ACP"),
    }
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

/// CopyObject and PutObject take the same replica properties through builders that
/// share method names but no trait; this sets them on either: user metadata, content
/// headers, the storage class, the encryption, and the ACL as the destination's mode
/// says.
macro_rules! with_replica_properties {
    ($request:expr, $source:expr, $destination:expr, $key:expr, $grants:expr) => {{
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
        .set_if_match(condition.0)
        .set_if_none_match(condition.1);
    let request = with_replica_properties!(request, source, destination, &job.source.key, grants);
    let out = request
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?;
    let result = out.copy_object_result();
    Ok(Written {
        etag: result.and_then(|r| r.e_tag()).map(str::to_string),
        checksums: result.map(|r| checksums_of!(r)).unwrap_or_default(),
        size: None,
        kms: Written::kms(out.server_side_encryption()),
    })
}

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
    let request = with_replica_properties!(request, source, destination, &job.source.key, grants);
    let out = request
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?;
    Ok(Written {
        etag: out.e_tag().map(str::to_string),
        checksums: checksums_of!(&out),
        size: None,
        kms: Written::kms(out.server_side_encryption()),
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
