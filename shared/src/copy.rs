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

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, Grant, MetadataDirective, ObjectCannedAcl, ObjectOwnership,
    Permission, ServerSideEncryption, StorageClass, TaggingDirective, Type,
};
use aws_sdk_s3::Client;

use crate::config::{AclMode, Destination};
use crate::errors::{FailureReason, ReplicationError, S3Step};
use crate::job::Job;
use crate::provenance::Provenance;
use crate::storage_class::source_class;

/// What a finished job did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Replicated { bytes: u64 },
    Deleted,
    Skipped { reason: &'static str },
}

/// The source's current state, read by HEAD, and the provenance its replica records.
pub struct SourceState {
    pub head: HeadObjectOutput,
    pub provenance: Option<Provenance>,
}

impl SourceState {
    pub fn new(head: HeadObjectOutput) -> Self {
        SourceState {
            head,
            provenance: None,
        }
    }

    /// What the replica's user metadata will be: the source's, with our provenance.
    pub fn replica_metadata(&self) -> HashMap<String, String> {
        match &self.provenance {
            Some(p) => p.metadata_for(self.head.metadata()),
            None => crate::provenance::user_metadata(self.head.metadata()),
        }
    }

    /// The provenance the source object itself carries, when it is a replica.
    pub fn own_provenance(&self) -> Option<Provenance> {
        Provenance::read(self.head.metadata())
    }

    pub fn size(&self) -> u64 {
        self.head.content_length().unwrap_or(0).max(0) as u64
    }

    /// The checksum algorithm the source was written with, if any.
    pub fn checksum_algorithm(&self) -> Option<ChecksumAlgorithm> {
        let h = &self.head;
        if h.checksum_crc64_nvme().is_some() {
            Some(ChecksumAlgorithm::Crc64Nvme)
        } else if h.checksum_crc32_c().is_some() {
            Some(ChecksumAlgorithm::Crc32C)
        } else if h.checksum_crc32().is_some() {
            Some(ChecksumAlgorithm::Crc32)
        } else if h.checksum_sha256().is_some() {
            Some(ChecksumAlgorithm::Sha256)
        } else if h.checksum_sha1().is_some() {
            Some(ChecksumAlgorithm::Sha1)
        } else {
            None
        }
    }
}

/// Per-process memory of which buckets have ACLs disabled (BucketOwnerEnforced).
#[derive(Debug, Default)]
pub struct AclSupport {
    known: Mutex<HashMap<String, bool>>,
}

impl AclSupport {
    /// Whether the bucket uses ACLs at all; asked once per bucket per process.
    pub async fn uses_acls(&self, client: &Client, bucket: &str) -> bool {
        if let Some(known) = self.known.lock().expect("acl cache").get(bucket) {
            return *known;
        }
        let uses = match client
            .get_bucket_ownership_controls()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => !out
                .ownership_controls()
                .map(|c| {
                    c.rules()
                        .iter()
                        .any(|r| r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced)
                })
                .unwrap_or(false),
            // No ownership controls (buckets from before 2023): ACLs are in force. On
            // any other answer assume they are, and let the ACL request speak.
            Err(_) => true,
        };
        self.known
            .lock()
            .expect("acl cache")
            .insert(bucket.to_string(), uses);
        uses
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
        Err(err) => Err(ReplicationError::from_sdk(S3Step::SourceHead, &err)),
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

fn expires(head: &HeadObjectOutput) -> Option<DateTime> {
    let text = head.expires_string()?;
    DateTime::from_str(text, aws_smithy_types::date_time::Format::HttpDate).ok()
}

/// CopyObject and PutObject take the same replica properties through builders that
/// share method names but no trait; this sets them on either: user metadata, content
/// headers, the storage class, and the ACL as the destination's mode says.
macro_rules! with_replica_properties {
    ($request:expr, $source:expr, $destination:expr, $grants:expr) => {{
        let (source, destination): (&SourceState, &Destination) = ($source, $destination);
        let head = &source.head;
        let request = $request
            .set_metadata(Some(source.replica_metadata()))
            .set_content_type(head.content_type().map(str::to_string))
            .set_content_encoding(head.content_encoding().map(str::to_string))
            .set_content_language(head.content_language().map(str::to_string))
            .set_content_disposition(head.content_disposition().map(str::to_string))
            .set_cache_control(head.cache_control().map(str::to_string))
            .set_expires(expires(head))
            .set_website_redirect_location(head.website_redirect_location().map(str::to_string))
            .storage_class(replica_class(destination, head));
        match (destination.acl_mode, $grants) {
            (AclMode::OwnerOverride, _) => request.acl(ObjectCannedAcl::BucketOwnerFullControl),
            (AclMode::Copy, Some(g)) => request
                .set_grant_full_control(g.full_control)
                .set_grant_read(g.read)
                .set_grant_read_acp(g.read_acp)
                .set_grant_write_acp(g.write_acp),
            _ => request,
        }
    }};
}

/// Server-side copy within one endpoint: one CopyObject.
pub async fn copy_same_endpoint(
    client: &Client,
    job: &Job,
    destination: &Destination,
    source: &SourceState,
    grants: Option<GrantHeaders>,
) -> Result<Outcome, ReplicationError> {
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
        .set_checksum_algorithm(source.checksum_algorithm());
    let mut request = with_replica_properties!(request, source, destination, grants);
    request = encryption(request, destination, head);
    request
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?;
    Ok(Outcome::Replicated {
        bytes: source.size(),
    })
}

fn encryption(
    request: aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder,
    destination: &Destination,
    head: &HeadObjectOutput,
) -> aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder {
    if let Some(key) = &destination.replica_kms_key_id {
        request
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(key)
    } else if head.server_side_encryption() == Some(&ServerSideEncryption::Aes256) {
        request.server_side_encryption(ServerSideEncryption::Aes256)
    } else {
        request
    }
}

/// The source's tags as a PutObject `x-amz-tagging` query string.
pub async fn source_tagging(
    client: &Client,
    job: &Job,
    version_id: Option<&str>,
) -> Result<Option<String>, ReplicationError> {
    let out = client
        .get_object_tagging()
        .bucket(&job.source.bucket)
        .key(&job.source.key)
        .set_version_id(version_id.map(str::to_string))
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::SourceTagging, &e))?;
    if out.tag_set().is_empty() {
        return Ok(None);
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for tag in out.tag_set() {
        query.append_pair(tag.key(), tag.value());
    }
    Ok(Some(query.finish()))
}

/// When a same-endpoint copy goes multipart, and in what pieces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultipartSettings {
    /// Objects larger than this are copied part by part. CopyObject's own limit is
    /// 5 GiB; below it one request is cheapest.
    pub threshold: u64,
    /// Bytes per part unless the destination sets PartSize (grown if 10,000 parts
    /// would not cover the object).
    pub part_size: u64,
    /// Parts copied at once.
    pub concurrency: usize,
}

pub const GIB: u64 = 1024 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;

impl Default for MultipartSettings {
    fn default() -> Self {
        MultipartSettings {
            threshold: 5 * GIB,
            part_size: 256 * 1024 * 1024,
            concurrency: 8,
        }
    }
}

impl MultipartSettings {
    /// The byte ranges (inclusive) of each part of an object of `size` bytes.
    pub fn ranges(&self, size: u64, destination_part_size: Option<u64>) -> Vec<(u64, u64)> {
        let part = destination_part_size
            .unwrap_or(self.part_size)
            .max(size.div_ceil(MAX_PARTS))
            .max(1);
        (0..size.div_ceil(part))
            .map(|i| (i * part, ((i + 1) * part).min(size) - 1))
            .collect()
    }
}

/// Server-side copy of a large object within one endpoint: UploadPartCopy, parts in
/// parallel. A multipart copy carries nothing by itself, so the new upload is created
/// with the source's metadata, content headers, tags, class and ACL. Any failure
/// aborts the upload: abandoned parts are billed storage.
pub async fn copy_multipart_same_endpoint(
    client: &Client,
    job: &Job,
    destination: &Destination,
    source: &SourceState,
    grants: Option<GrantHeaders>,
    settings: &MultipartSettings,
) -> Result<Outcome, ReplicationError> {
    let head = &source.head;
    let version = head.version_id();
    let upload_id = create_upload(client, client, job, destination, source, grants).await?;

    let copy_source = copy_source(&job.source.bucket, &job.source.key, version);
    let ranges = settings.ranges(source.size(), destination.part_size);
    let part = |number: i32, (first, last): (u64, u64), upload_id: String| {
        let request = client
            .upload_part_copy()
            .bucket(&destination.bucket)
            .key(&job.source.key)
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(&copy_source)
            .copy_source_range(format!("bytes={first}-{last}"))
            // Every part from the same object, or the copy fails and retries.
            .set_copy_source_if_match(head.e_tag().map(str::to_string));
        async move {
            let out = request
                .send()
                .await
                .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?;
            Ok(out
                .copy_part_result()
                .and_then(|r| r.e_tag())
                .map(str::to_string))
        }
    };
    upload_parts(
        client,
        destination,
        &job.source.key,
        &upload_id,
        ranges,
        settings.concurrency,
        part,
    )
    .await?;
    Ok(Outcome::Replicated {
        bytes: source.size(),
    })
}

/// Starts the multipart upload of a replica. A multipart upload carries nothing of
/// the source by itself, so it is created with the source's metadata, content headers,
/// tags (read here), class, ACL and the destination's KMS key. Returns the upload id.
async fn create_upload(
    source_client: &Client,
    destination_client: &Client,
    job: &Job,
    destination: &Destination,
    source: &SourceState,
    grants: Option<GrantHeaders>,
) -> Result<String, ReplicationError> {
    let head = &source.head;
    let tagging = source_tagging(source_client, job, head.version_id()).await?;
    let create = destination_client
        .create_multipart_upload()
        .bucket(&destination.bucket)
        .key(&job.source.key)
        .set_tagging(tagging);
    let mut create = with_replica_properties!(create, source, destination, grants);
    if let Some(key) = &destination.replica_kms_key_id {
        create = create
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(key);
    }
    create
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?
        .upload_id
        .ok_or_else(|| {
            ReplicationError::new(
                FailureReason::Unknown,
                "CreateMultipartUpload returned no upload id",
            )
        })
}

/// Uploads every part with `part` (which returns the part's ETag), `concurrency` at a
/// time, then completes the upload; on any failure aborts it instead, so no
/// abandoned parts are left to be billed.
async fn upload_parts<F, Fut>(
    client: &Client,
    destination: &Destination,
    key: &str,
    upload_id: &str,
    ranges: Vec<(u64, u64)>,
    concurrency: usize,
    part: F,
) -> Result<(), ReplicationError>
where
    F: Fn(i32, (u64, u64), String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, ReplicationError>>,
{
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    use futures::stream::{self, StreamExt, TryStreamExt};

    let parts: Result<Vec<CompletedPart>, ReplicationError> =
        stream::iter(ranges.into_iter().enumerate())
            .map(|(i, range)| {
                let number = i as i32 + 1;
                let uploaded = part(number, range, upload_id.to_string());
                async move {
                    let etag = uploaded.await?;
                    Ok(CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(etag)
                        .build())
                }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await;
    let completed = match parts {
        Ok(mut parts) => {
            parts.sort_by_key(|p| p.part_number());
            client
                .complete_multipart_upload()
                .bucket(&destination.bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))
        }
        Err(e) => Err(e),
    };
    if completed.is_err() {
        let aborted = client
            .abort_multipart_upload()
            .bucket(&destination.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::error!(bucket = %destination.bucket, key = %key, upload_id = %upload_id,
                error = %crate::errors::describe(&e), "could not abort a failed multipart copy; a lifecycle rule for incomplete uploads will");
        }
    }
    completed
}

/// Copy of a large object to another endpoint: ranged GETs pinned to the source's
/// ETag, each uploaded as a part. Memory holds at most part size × concurrency.
pub async fn copy_streamed_multipart(
    source_client: &Client,
    destination_client: &Client,
    job: &Job,
    destination: &Destination,
    source: &SourceState,
    grants: Option<GrantHeaders>,
    settings: &MultipartSettings,
) -> Result<Outcome, ReplicationError> {
    let head = &source.head;
    let version = head.version_id().map(str::to_string);
    let upload_id = create_upload(
        source_client,
        destination_client,
        job,
        destination,
        source,
        grants,
    )
    .await?;
    let ranges = settings.ranges(source.size(), destination.part_size);
    let part = |number: i32, (first, last): (u64, u64), upload_id: String| {
        let get = source_client
            .get_object()
            .bucket(&job.source.bucket)
            .key(&job.source.key)
            .set_version_id(version.clone())
            .range(format!("bytes={first}-{last}"))
            // A concurrent overwrite fails the read instead of mixing two objects.
            .set_if_match(head.e_tag().map(str::to_string));
        let put = destination_client
            .upload_part()
            .bucket(&destination.bucket)
            .key(&job.source.key)
            .upload_id(upload_id)
            .part_number(number);
        async move {
            let body = get
                .send()
                .await
                .map_err(|e| ReplicationError::from_sdk(S3Step::SourceGet, &e))?
                .body
                .collect()
                .await
                .map_err(|e| {
                    ReplicationError::new(
                        FailureReason::NetworkError,
                        format!("reading part {number}: {e}"),
                    )
                })?
                .into_bytes();
            let length = body.len() as i64;
            let out = put
                .body(aws_sdk_s3::primitives::ByteStream::from(body))
                .content_length(length)
                .send()
                .await
                .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?;
            Ok(out.e_tag().map(str::to_string))
        }
    };
    upload_parts(
        destination_client,
        destination,
        &job.source.key,
        &upload_id,
        ranges,
        settings.concurrency,
        part,
    )
    .await?;
    Ok(Outcome::Replicated {
        bytes: source.size(),
    })
}

/// Copy to another endpoint: a GET pinned to the HEAD's ETag, streamed into PutObject.
pub async fn copy_streamed(
    source_client: &Client,
    destination_client: &Client,
    job: &Job,
    destination: &Destination,
    source: &SourceState,
    grants: Option<GrantHeaders>,
) -> Result<Outcome, ReplicationError> {
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
    let tagging = source_tagging(source_client, job, version.as_deref()).await?;
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
        .set_tagging(tagging);
    let mut request = with_replica_properties!(request, source, destination, grants);
    if let Some(key) = &destination.replica_kms_key_id {
        request = request
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(key);
    }
    request
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?;
    Ok(Outcome::Replicated {
        bytes: source.size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_object_exactly() {
        let s = MultipartSettings {
            threshold: 0,
            part_size: 10,
            concurrency: 1,
        };
        assert_eq!(s.ranges(25, None), vec![(0, 9), (10, 19), (20, 24)]);
        assert_eq!(s.ranges(20, None), vec![(0, 9), (10, 19)]);
        assert_eq!(s.ranges(25, Some(20)), vec![(0, 19), (20, 24)]);
        // 5 TiB in 256 MiB parts would be 20,480 parts: the part grows to fit 10,000.
        let d = MultipartSettings::default();
        let ranges = d.ranges(5 * 1024 * GIB, None);
        assert!(ranges.len() <= 10_000);
        assert_eq!(ranges.last().unwrap().1, 5 * 1024 * GIB - 1);
        assert!(ranges.windows(2).all(|w| w[1].0 == w[0].1 + 1));
    }

    #[tokio::test]
    async fn a_failed_part_aborts_the_upload_and_never_completes_it() {
        use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput;
        use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
        use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
        use aws_sdk_s3::operation::get_object_tagging::GetObjectTaggingOutput;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;

        let tags = mock!(Client::get_object_tagging).then_output(|| {
            GetObjectTaggingOutput::builder()
                .set_tag_set(Some(vec![]))
                .build()
                .unwrap()
        });
        let create = mock!(Client::create_multipart_upload).then_output(|| {
            CreateMultipartUploadOutput::builder()
                .upload_id("u-1")
                .build()
        });
        let part = mock!(Client::upload_part_copy)
            .sequence()
            .http_response(|| {
                HttpResponse::new(
                    StatusCode::try_from(500).unwrap(),
                    SdkBody::from(
                        "<Error><Code>InternalError</Code><Message>injected</Message></Error>",
                    ),
                )
            })
            .repeatedly()
            .build();
        let complete = mock!(Client::complete_multipart_upload)
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        let abort = mock!(Client::abort_multipart_upload)
            .match_requests(|r| r.upload_id() == Some("u-1"))
            .then_output(|| AbortMultipartUploadOutput::builder().build());
        let client = mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&tags, &create, &part, &complete, &abort]
        );

        let config = crate::config::Config::parse(
            r#"{"Sources": [{"Bucket": "photos", "ReplicationConfiguration": {"Rules": [{"ID": "everything", "Status": "Enabled",
                "Priority": 1, "Filter": {}, "Destination": {"Bucket": "photos-replica", "Replicator": {"AclMode": "none"}},
                "DeleteMarkerReplication": {"Status": "Disabled"}}]}}]}"#,
        )
        .unwrap();
        let destination = &config.rule("photos", "everything").unwrap().destination;
        let job = Job::parse(include_str!("../../tests/fixtures/jobs/put.json")).unwrap();
        let source = SourceState::new(
            HeadObjectOutput::builder()
                .content_length(25)
                .e_tag("\"abc\"")
                .build(),
        );
        let settings = MultipartSettings {
            threshold: 0,
            part_size: 10,
            concurrency: 2,
        };
        let err =
            copy_multipart_same_endpoint(&client, &job, destination, &source, None, &settings)
                .await
                .unwrap_err();
        assert_eq!(err.reason, FailureReason::ServiceUnavailable);
        assert!(err.is_retryable());
        assert_eq!(
            (abort.num_calls(), complete.num_calls()),
            (1, 0),
            "aborted, never completed"
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
