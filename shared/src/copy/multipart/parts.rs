//! Part copies: server-side or streamed, in parallel, each pinned to the source's
//! ETag; and the memory streamed parts may hold.

use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedPart};
use aws_sdk_s3::Client;

use crate::checksums_of;
use crate::config::Destination;
use crate::copy::verify::Checksums;
use crate::copy::{self};
use crate::errors::{FailureReason, ReplicationError, S3Step};
use crate::queues::job::{Continuation, Job};

/// The process's budget of bytes for streamed parts in memory, shared by every copy
/// it runs (a Lambda batch runs several jobs at once). Counted in KiB.
#[derive(Debug)]
pub struct MemoryBudget {
    permits: tokio::sync::Semaphore,
    kib: u32,
}

impl MemoryBudget {
    pub fn new(bytes: u64) -> Self {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX >> 4);
        MemoryBudget {
            permits: tokio::sync::Semaphore::new(kib as usize),
            kib,
        }
    }

    /// Waits until `bytes` fit. A part larger than the whole budget waits for all of
    /// it and then runs alone.
    async fn hold(&self, bytes: u64) -> tokio::sync::SemaphorePermit<'_> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.kib);
        self.permits
            .acquire_many(kib.max(1))
            .await
            .expect("the budget is never closed")
    }
}

/// One part of one copy.
pub(super) struct Part<'a> {
    pub(super) job: &'a Job,
    pub(super) destination: &'a Destination,
    pub(super) upload: &'a Continuation,
    pub(super) number: i32,
    /// First and last byte (inclusive).
    pub(super) range: (u64, u64),
}

impl Part<'_> {
    /// Copies the part: server-side within one endpoint, through memory (inside the
    /// process's budget) to another.
    pub(super) async fn copy(
        self,
        src: &Client,
        dst: &Client,
        memory: &MemoryBudget,
    ) -> Result<CompletedPart, ReplicationError> {
        let Part {
            job,
            destination,
            upload,
            number,
            range: (first, last),
        } = self;
        let write_error = |e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e);
        if destination.is_same_endpoint() {
            let out = dst
                .upload_part_copy()
                .bucket(&destination.bucket)
                .key(&job.source.key)
                .upload_id(&upload.upload_id)
                .part_number(number)
                .copy_source(copy::copy_source(
                    &job.source.bucket,
                    &job.source.key,
                    upload.version_id.as_deref(),
                ))
                .copy_source_range(format!("bytes={first}-{last}"))
                // Every part from the same object, or the copy fails and starts again.
                .copy_source_if_match(&upload.etag)
                .send()
                .await
                .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?;
            let result = out.copy_part_result();
            let sums = result.map(|r| checksums_of!(r)).unwrap_or_default();
            return Ok(completed(
                number,
                result.and_then(|r| r.e_tag()),
                &sums,
                upload,
            ));
        }
        let expected = last - first + 1;
        let _held = memory.hold(expected).await;
        let mut stream = src
            .get_object()
            .bucket(&job.source.bucket)
            .key(&job.source.key)
            .set_version_id(upload.version_id.clone())
            .range(format!("bytes={first}-{last}"))
            // A concurrent overwrite fails the read instead of mixing two objects.
            .if_match(&upload.etag)
            .send()
            .await
            .map_err(|e| ReplicationError::from_sdk(S3Step::SourceGet, &e))?
            .body;
        // Straight into one buffer of the part's size: collecting the chunks and then
        // joining them would hold the part twice.
        let mut body = Vec::with_capacity(expected as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ReplicationError::new(
                    FailureReason::NetworkError,
                    format!("reading part {number}: {e}"),
                )
            })?;
            if (body.len() + chunk.len()) as u64 > expected {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if body.len() as u64 != expected {
            return Err(ReplicationError::new(
                FailureReason::NetworkError,
                format!(
                    "part {number}: the source sent {} bytes of {expected}",
                    body.len()
                ),
            ));
        }
        let out = dst
            .upload_part()
            .bucket(&destination.bucket)
            .key(&job.source.key)
            .upload_id(&upload.upload_id)
            .part_number(number)
            .set_checksum_algorithm(algorithm(upload))
            .content_length(expected as i64)
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
            .await
            .map_err(write_error)?;
        Ok(completed(number, out.e_tag(), &checksums_of!(&out), upload))
    }
}

pub(super) fn algorithm(upload: &Continuation) -> Option<ChecksumAlgorithm> {
    upload
        .checksum_algorithm
        .as_deref()
        .map(ChecksumAlgorithm::from)
}

/// A part as CompleteMultipartUpload wants it: its ETag, and its checksum when the
/// upload has an algorithm.
pub(super) fn completed(
    number: i32,
    etag: Option<&str>,
    sums: &Checksums,
    upload: &Continuation,
) -> CompletedPart {
    let algorithm = algorithm(upload);
    let value = |a: ChecksumAlgorithm| {
        (algorithm.as_ref() == Some(&a))
            .then(|| sums.get(&a).map(str::to_string))
            .flatten()
    };
    CompletedPart::builder()
        .part_number(number)
        .set_e_tag(etag.map(str::to_string))
        .set_checksum_crc32(value(ChecksumAlgorithm::Crc32))
        .set_checksum_crc32_c(value(ChecksumAlgorithm::Crc32C))
        .set_checksum_crc64_nvme(value(ChecksumAlgorithm::Crc64Nvme))
        .set_checksum_sha1(value(ChecksumAlgorithm::Sha1))
        .set_checksum_sha256(value(ChecksumAlgorithm::Sha256))
        .build()
}
