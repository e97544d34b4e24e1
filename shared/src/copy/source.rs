//! The source as a HEAD sees it: what a copy is made from, and what rules do not
//! replicate.

use std::collections::HashMap;

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ServerSideEncryption, StorageClass};
use aws_sdk_s3::Client;

use crate::checksums_of;
use crate::config::keys::Signer;
use crate::copy::provenance::{Holder, Provenance};
use crate::errors::{http_status, is_not_found, ReplicationError, S3Step};
use crate::queues::job::Job;

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
        Err(err) if is_not_found(&err) => Ok(None),
        // Checksums of an SSE-KMS object need kms:Decrypt on its key, which a rule
        // that does not select KMS objects has no reason to be granted: without them,
        // the HEAD still says what the object is (and that it is not replicated).
        Err(err) if http_status(&err) == Some(403) => {
            let plain = client
                .head_object()
                .bucket(&job.source.bucket)
                .key(&job.source.key)
                .send()
                .await;
            match plain {
                Ok(head) => Ok(Some(SourceState::new(head))),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(_) => Err(ReplicationError::from_sdk(S3Step::SourceHead, &err)),
            }
        }
        // S3 answers a HEAD of an SSE-C object made without the customer's key with a
        // bare 400; a one-byte GET says why. Such an object is what its HEAD would have
        // said, had it answered: encrypted with a customer key, which rules skip.
        Err(err) if http_status(&err) == Some(400) && needs_customer_key(client, job).await => {
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
