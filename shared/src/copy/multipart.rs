//! Multipart copies: server-side (UploadPartCopy) within one endpoint, streamed (ranged
//! GET, then UploadPart) to another, parts in parallel with bounded concurrency, every
//! part pinned to the source's ETag so a concurrent overwrite fails the copy instead of
//! mixing two objects.
//!
//! A copy that cannot finish before its Lambda invocation ends starts no new part once
//! the deadline has passed and pauses; the next invocation carries on from what
//! ListParts says is done. Every way out of a copy either completes the upload or
//! aborts it: abandoned parts are billed as storage.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use aws_sdk_s3::Client;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::checksums_of;
use crate::config::Destination;
use crate::copy::conditions::{self, DestinationConditions, Expect, Sent, WriteKind};
use crate::copy::verify::{Checksums, Written};
use crate::copy::{self, GrantHeaders, SourceState};
use crate::errors::{describe, FailureReason, ReplicationError, S3Step};
use crate::queues::job::{Continuation, Job};

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;
/// S3's most parts per upload.
pub const MAX_PARTS: u64 = 10_000;

/// When copies go multipart, and in what pieces. The defaults come from `make bench`
/// (see doc/LARGE_OBJECTS.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultipartSettings {
    /// Same endpoint: objects larger than this are copied part by part
    /// (UploadPartCopy); smaller ones with one CopyObject, which stops at 5 GiB.
    pub copy_threshold: u64,
    /// Same endpoint: bytes per UploadPartCopy. Nothing passes through memory, so
    /// parts are large: fewer requests.
    pub copy_part_size: u64,
    /// Another endpoint: objects larger than this stream in parts (and can continue
    /// in a later invocation); smaller ones stream through one PutObject.
    pub stream_threshold: u64,
    /// Another endpoint: bytes per part. Memory holds part size × concurrency.
    pub stream_part_size: u64,
    /// Parts in flight at once.
    pub concurrency: usize,
}

impl Default for MultipartSettings {
    fn default() -> Self {
        MultipartSettings {
            copy_threshold: GIB,
            copy_part_size: 256 * MIB,
            stream_threshold: 64 * MIB,
            stream_part_size: 16 * MIB,
            concurrency: 8,
        }
    }
}

impl MultipartSettings {
    /// Bytes of streamed parts one process holds at once, whatever the number of
    /// copies running: part size × concurrency.
    pub fn memory_budget(&self) -> u64 {
        self.stream_part_size
            .saturating_mul(self.concurrency.max(1) as u64)
    }

    pub fn threshold(&self, same_endpoint: bool) -> u64 {
        if same_endpoint {
            self.copy_threshold
        } else {
            self.stream_threshold
        }
    }

    /// The part size for an object of `size` bytes: the destination's PartSize, or
    /// ours, grown if 10,000 parts would not cover the object.
    pub fn part_size(&self, same_endpoint: bool, destination: Option<u64>, size: u64) -> u64 {
        let ours = if same_endpoint {
            self.copy_part_size
        } else {
            self.stream_part_size
        };
        destination
            .unwrap_or(ours)
            .max(size.div_ceil(MAX_PARTS))
            .max(1)
    }
}

/// The byte ranges (inclusive) of the parts of an object of `size` bytes.
pub fn ranges(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    let part = part_size.max(1);
    (0..size.div_ceil(part))
        .map(|i| (i * part, ((i + 1) * part).min(size) - 1))
        .collect()
}

/// When copies stop starting parts and pause: a Lambda invocation's end (less a
/// reserve), or a worker told to stop.
#[derive(Clone, Debug, Default)]
struct PauseWhen {
    deadline: Option<Instant>,
    stopping: Option<Arc<AtomicBool>>,
}

tokio::task_local! {
    static PAUSE: PauseWhen;
}

/// Runs `work` under a deadline (a Lambda invocation's end, less a reserve): copies
/// inside it start no new part once it has passed, and pause instead. Without one,
/// copies run to the end, or until [`until_stopped`] says.
pub async fn within<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    let stopping = PAUSE.try_with(|p| p.stopping.clone()).ok().flatten();
    PAUSE.scope(PauseWhen { deadline, stopping }, work).await
}

/// Runs `work` so that copies inside it pause once `stopping` turns true (a worker
/// told to stop hands its long copies on instead of finishing them). Any deadline
/// already in force still holds.
pub async fn until_stopped<F: Future>(stopping: Arc<AtomicBool>, work: F) -> F::Output {
    let deadline = PAUSE.try_with(|p| p.deadline).ok().flatten();
    let pause = PauseWhen {
        deadline,
        stopping: Some(stopping),
    };
    PAUSE.scope(pause, work).await
}

fn out_of_time() -> bool {
    PAUSE
        .try_with(|p| {
            p.deadline.is_some_and(|d| Instant::now() >= d)
                || p.stopping
                    .as_ref()
                    .is_some_and(|s| s.load(Ordering::Relaxed))
        })
        .unwrap_or(false)
}

/// Makes freed part buffers go back to the system at once. glibc serves a large
/// allocation with mmap and unmaps it on free, but after the first such free it raises
/// its threshold to that size, so later part buffers (8-16 MiB) come from heap arenas
/// that keep what is freed: a worker's resident memory then sits well above the parts'
/// budget. A fixed threshold below the smallest part (5 MiB) keeps every part buffer
/// mmapped. Called once at cold start; other allocators are left as they are.
pub fn return_freed_part_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called at cold start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

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

/// Where a copy got to.
#[derive(Debug)]
pub enum Progress {
    /// Completed: what the destination holds now, and the source state it was copied
    /// from, for verification.
    Done {
        written: Written,
        source: Box<SourceState>,
        /// Whether the server is known to have checked the completion's condition.
        checked: bool,
    },
    /// Out of time: the rest is for the next invocation.
    Paused(Continuation),
    /// The source moved on (or went) before the copy completed; the upload was
    /// aborted, and the newer state's own event copies that.
    Skipped(&'static str),
    /// The upload is no longer there (aborted by a cleanup or a lifecycle rule).
    UploadGone,
    /// The replica was not what the copy was started against (another write or a
    /// delete came first): the upload was aborted, and the job looks again.
    Lost,
}

/// Starts a multipart copy: creates the upload with everything a multipart upload does
/// not carry by itself: metadata, content headers, tags, class, ACL, the destination's
/// KMS key and the source's checksum algorithm. `replica` is the replica state the
/// copy replaces; its completion is conditional on it.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    src: &Client,
    dst: &Client,
    job: &Job,
    destination: &Destination,
    source: &SourceState,
    grants: Option<GrantHeaders>,
    settings: &MultipartSettings,
    replica: &Expect,
) -> Result<Continuation, ReplicationError> {
    let head = &source.head;
    let etag = head.e_tag().map(str::to_string).ok_or_else(|| {
        ReplicationError::new(
            FailureReason::InvalidRequest,
            "the source reports no ETag to pin the parts to",
        )
    })?;
    let algorithm = source.checksum_algorithm();
    let tagging = copy::source_tagging(src, job, head.version_id()).await?;
    let create = dst
        .create_multipart_upload()
        .bucket(&destination.bucket)
        .key(&job.source.key)
        .set_tagging(tagging.clone())
        .set_checksum_algorithm(algorithm.clone())
        .set_checksum_type(algorithm.as_ref().and_then(full_object_type));
    let create =
        copy::with_replica_properties!(create, source, destination, &job.source.key, grants);
    let upload_id = create
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))?
        .upload_id
        .ok_or_else(|| {
            ReplicationError::new(
                FailureReason::Unknown,
                "CreateMultipartUpload returned no upload id",
            )
        })?;
    let same = destination.is_same_endpoint();
    Ok(Continuation {
        upload_id,
        etag,
        version_id: head.version_id().map(str::to_string),
        size: source.size(),
        part_size: settings.part_size(same, destination.part_size, source.size()),
        checksum_algorithm: algorithm.map(|a| a.as_str().to_string()),
        tagging,
        replica_etag: match replica {
            Expect::ETag(etag) => Some(etag.clone()),
            Expect::Absent => None,
        },
        parts_done: 0,
        invocations: 0,
        sig: None,
    })
}

/// The replica state a copy's completion is conditional on.
pub fn expected_replica(upload: &Continuation) -> Expect {
    match &upload.replica_etag {
        Some(etag) => Expect::ETag(etag.clone()),
        None => Expect::Absent,
    }
}

/// CRC checksums of a multipart upload can describe the whole object, so the replica's
/// checksum can be compared with the source's; SHA ones only describe parts.
fn full_object_type(algorithm: &ChecksumAlgorithm) -> Option<ChecksumType> {
    matches!(
        algorithm,
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32C | ChecksumAlgorithm::Crc64Nvme
    )
    .then_some(ChecksumType::FullObject)
}

/// Uploads the parts not done yet, as many at a time as `concurrency` allows, until
/// all are done (then completes the upload) or the deadline passes (then pauses; at
/// least one round of parts runs per call, so a copy always progresses). On any
/// failure the upload is aborted before the error is returned.
#[allow(clippy::too_many_arguments)]
pub async fn proceed(
    src: &Client,
    dst: &Client,
    job: &Job,
    destination: &Destination,
    upload: &Continuation,
    concurrency: usize,
    memory: &MemoryBudget,
    conditions: &DestinationConditions,
) -> Result<Progress, ReplicationError> {
    let result = run_parts(
        src,
        dst,
        job,
        destination,
        upload,
        concurrency,
        memory,
        conditions,
    )
    .await;
    match &result {
        Ok(Progress::Skipped(_) | Progress::Lost) | Err(_) => {
            abort(dst, destination, &job.source.key, &upload.upload_id).await
        }
        _ => {}
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_parts(
    src: &Client,
    dst: &Client,
    job: &Job,
    destination: &Destination,
    upload: &Continuation,
    concurrency: usize,
    memory: &MemoryBudget,
    conditions: &DestinationConditions,
) -> Result<Progress, ReplicationError> {
    let key = &job.source.key;
    let ranges = ranges(upload.size, upload.part_size);
    let mut done = if upload.invocations > 0 {
        match list_parts(dst, destination, key, upload, &ranges).await? {
            Some(done) => done,
            None => return Ok(Progress::UploadGone),
        }
    } else {
        HashMap::new()
    };
    let pending: Vec<(i32, (u64, u64))> = (1..)
        .zip(ranges.iter().copied())
        .filter(|(number, _)| !done.contains_key(number))
        .collect();
    let concurrency = concurrency.max(1);
    let mut started = 0;
    let uploaded: Vec<CompletedPart> = stream::iter(pending)
        .take_while(|_| {
            started += 1;
            futures::future::ready(started <= concurrency || !out_of_time())
        })
        .map(|(number, range)| {
            let part = Part {
                job,
                destination,
                upload,
                number,
                range,
            };
            part.copy(src, dst, memory)
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    for part in uploaded {
        done.insert(part.part_number().unwrap_or(0), part);
    }
    if done.len() < ranges.len() {
        return Ok(Progress::Paused(Continuation {
            parts_done: done.len() as u32,
            invocations: upload.invocations + 1,
            ..upload.clone()
        }));
    }
    // The parts may have taken long: if the source has moved on since, a newer copy
    // may already have landed, and completing this one would put the old state back.
    let Some(source) = copy::head_source(src, job).await? else {
        return Ok(Progress::Skipped("SourceDeleted"));
    };
    let still_pinned = source.head.e_tag() == Some(upload.etag.as_str())
        && (upload.version_id.is_none()
            || source.head.version_id() == upload.version_id.as_deref());
    if !still_pinned {
        return Ok(Progress::Skipped("Superseded"));
    }
    let mut parts: Vec<CompletedPart> = done.into_values().collect();
    parts.sort_by_key(|p| p.part_number());
    let parts = CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build();
    // Conditional on the replica the copy was started against: a newer write (or a
    // delete) that landed while the parts were copied wins, however long that took.
    let completed = conditions::send(
        conditions,
        WriteKind::Complete,
        &expected_replica(upload),
        |if_match, if_none_match| {
            let sent = dst
                .complete_multipart_upload()
                .bucket(&destination.bucket)
                .key(key)
                .upload_id(&upload.upload_id)
                .set_checksum_type(algorithm(upload).as_ref().and_then(full_object_type))
                .multipart_upload(parts.clone())
                .set_if_match(if_match)
                .set_if_none_match(if_none_match)
                .send();
            async move {
                sent.await
                    .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))
            }
        },
    )
    .await;
    let checked = match completed {
        Ok(Sent::Written { checked, .. }) => checked,
        Ok(Sent::Lost) => return Ok(Progress::Lost),
        Err(e) => return Err(e),
    };
    retag_if_changed(src, dst, job, destination, upload, &source).await?;
    abort_superseded(dst, destination, key, &upload.upload_id).await;
    Ok(Progress::Done {
        written: written_object(dst, destination, key).await?,
        source: Box::new(source),
        checked,
    })
}

/// A tag change made while the parts were copied (its own job found no replica yet,
/// or one the completion then overwrote) must not be lost: the replica gets the
/// source's tags as they are now. One GetObjectTagging; a write only on a change.
async fn retag_if_changed(
    src: &Client,
    dst: &Client,
    job: &Job,
    destination: &Destination,
    upload: &Continuation,
    source: &SourceState,
) -> Result<(), ReplicationError> {
    let now = match copy::source_tagging(src, job, source.head.version_id()).await {
        Ok(now) => now,
        // Deleted since the HEAD before completing: the look after the copy settles it.
        Err(e) if e.reason == FailureReason::SrcObjectNotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if now == upload.tagging {
        return Ok(());
    }
    copy::write_tags(dst, destination, &job.source.key, now.as_deref()).await
}

fn algorithm(upload: &Continuation) -> Option<ChecksumAlgorithm> {
    upload
        .checksum_algorithm
        .as_deref()
        .map(ChecksumAlgorithm::from)
}

/// What the replica is now, by HEAD (with its checksum).
pub async fn written_object(
    dst: &Client,
    destination: &Destination,
    key: &str,
) -> Result<Written, ReplicationError> {
    let head = dst
        .head_object()
        .bucket(&destination.bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationHead, &e))?;
    Ok(Written {
        etag: head.e_tag().map(str::to_string),
        checksums: checksums_of!(&head),
        size: head.content_length().map(|l| l.max(0) as u64),
        kms: Written::kms(head.server_side_encryption()),
    })
}

/// A part as CompleteMultipartUpload wants it: its ETag, and its checksum when the
/// upload has an algorithm.
fn completed(
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

/// One part of one copy.
struct Part<'a> {
    job: &'a Job,
    destination: &'a Destination,
    upload: &'a Continuation,
    number: i32,
    /// First and last byte (inclusive).
    range: (u64, u64),
}

impl Part<'_> {
    /// Copies the part: server-side within one endpoint, through memory (inside the
    /// process's budget) to another.
    async fn copy(
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

/// The parts already uploaded (every page of ListParts), keeping only those of the
/// size this copy expects; `None` when the upload is gone.
async fn list_parts(
    dst: &Client,
    destination: &Destination,
    key: &str,
    upload: &Continuation,
    ranges: &[(u64, u64)],
) -> Result<Option<HashMap<i32, CompletedPart>>, ReplicationError> {
    let mut done = HashMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = dst
            .list_parts()
            .bucket(&destination.bucket)
            .key(key)
            .upload_id(&upload.upload_id)
            .set_part_number_marker(marker.clone())
            .send()
            .await;
        let page = match page {
            Ok(page) => page,
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {
                return Ok(None)
            }
            Err(e) => return Err(ReplicationError::from_sdk(S3Step::DestinationWrite, &e)),
        };
        for part in page.parts() {
            let Some(number) = part.part_number() else {
                continue;
            };
            let expected = usize::try_from(number - 1)
                .ok()
                .and_then(|i| ranges.get(i))
                .map(|(first, last)| (last - first + 1) as i64);
            if expected.is_some() && part.size() == expected {
                let sums = checksums_of!(part);
                done.insert(number, completed(number, part.e_tag(), &sums, upload));
            }
        }
        match (page.is_truncated(), page.next_part_number_marker()) {
            (Some(true), Some(next)) => marker = Some(next.to_string()),
            _ => return Ok(Some(done)),
        }
    }
}

/// Aborts an upload; a failure is logged (a lifecycle rule for incomplete uploads is
/// the backstop) and does not hide the error that led here.
pub async fn abort(dst: &Client, destination: &Destination, key: &str, upload_id: &str) {
    let aborted = dst
        .abort_multipart_upload()
        .bucket(&destination.bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(e) = aborted {
        tracing::error!(bucket = %destination.bucket, key = %key, upload_id = %upload_id,
            error = %describe(&e), "could not abort a multipart upload; a lifecycle rule for incomplete uploads will");
    }
}

/// After a copy of the key completed with what the source holds now: every other
/// upload of exactly this key is superseded by it (a crashed attempt's, or a duplicate
/// job's copy of the same or an older state), and is aborted. Nothing is judged by age
/// (a paused copy waiting in the queue is as old as a crashed one), and nothing is
/// aborted when a copy starts, so a live copy is never cut short by a duplicate job.
/// One ListMultipartUploads per completed multipart copy; failures cost a log line
/// (and leave the upload to a lifecycle rule for incomplete uploads).
async fn abort_superseded(dst: &Client, destination: &Destination, key: &str, ours: &str) {
    let listed = dst
        .list_multipart_uploads()
        .bucket(&destination.bucket)
        .prefix(key)
        .send()
        .await;
    let uploads = match listed {
        Ok(out) => out.uploads.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(bucket = %destination.bucket, key = %key, error = %describe(&e),
                "cannot list multipart uploads to clean up after crashed attempts");
            return;
        }
    };
    for upload in uploads {
        let (Some(upload_key), Some(id)) = (upload.key(), upload.upload_id()) else {
            continue;
        };
        if upload_key == key && id != ours {
            tracing::warn!(bucket = %destination.bucket, key = %key, upload_id = %id,
                "aborting a multipart upload of this key that the completed copy supersedes (a crashed or duplicate attempt's)");
            abort(dst, destination, key, id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parts_cover_the_object_exactly() {
        assert_eq!(ranges(25, 10), vec![(0, 9), (10, 19), (20, 24)]);
        assert_eq!(ranges(20, 10), vec![(0, 9), (10, 19)]);
        let s = MultipartSettings::default();
        assert_eq!(s.part_size(false, Some(20), 25), 20);
        // 5 TiB in 256 MiB parts would be 20,480 parts: the part grows to fit 10,000.
        let size = 5 * 1024 * GIB;
        let parts = ranges(size, s.part_size(true, None, size));
        assert!(parts.len() <= 10_000);
        assert_eq!(parts.last().unwrap().1, size - 1);
        assert!(parts.windows(2).all(|w| w[1].0 == w[0].1 + 1));
    }

    #[tokio::test]
    async fn a_deadline_is_seen_only_inside_its_scope() {
        assert!(!out_of_time());
        within(Some(Instant::now()), async { assert!(out_of_time()) }).await;
        within(Some(Instant::now() + Duration::from_secs(60)), async {
            assert!(!out_of_time())
        })
        .await;
        within(None, async { assert!(!out_of_time()) }).await;
    }

    #[tokio::test]
    async fn a_stop_pauses_copies_and_keeps_any_deadline() {
        let stopping = Arc::new(AtomicBool::new(false));
        until_stopped(stopping.clone(), async {
            assert!(!out_of_time());
            stopping.store(true, Ordering::Relaxed);
            assert!(out_of_time());
            stopping.store(false, Ordering::Relaxed);
            // A Lambda deadline inside the worker's scope: both hold.
            within(Some(Instant::now()), async { assert!(out_of_time()) }).await;
            within(Some(Instant::now() + Duration::from_secs(60)), async {
                stopping.store(true, Ordering::Relaxed);
                assert!(out_of_time());
            })
            .await;
        })
        .await;
    }

    #[tokio::test]
    async fn a_failed_part_aborts_the_upload_and_never_completes_it() {
        use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput;
        use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;

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
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&part, &complete, &abort]);

        let config = crate::config::Config::parse(
            r#"{"Sources": [{"Bucket": "photos", "ReplicationConfiguration": {"Rules": [{"ID": "everything", "Status": "Enabled",
                "Priority": 1, "Filter": {}, "Destination": {"Bucket": "photos-replica", "Replicator": {"AclMode": "none"}},
                "DeleteMarkerReplication": {"Status": "Disabled"}}]}}]}"#,
        )
        .unwrap();
        let destination = &config.rule("photos", "everything").unwrap().destination;
        let job = Job::parse(include_str!("../../../tests/fixtures/jobs/put.json")).unwrap();
        let upload = Continuation {
            upload_id: "u-1".into(),
            etag: "\"abc\"".into(),
            version_id: None,
            size: 25,
            part_size: 10,
            checksum_algorithm: None,
            tagging: None,
            replica_etag: None,
            parts_done: 0,
            invocations: 0,
            sig: None,
        };
        let memory = MemoryBudget::new(20);
        let conditions = DestinationConditions::new(
            crate::copy::conditions::PreconditionMode::Enforced,
            crate::copy::conditions::WriteOrder::Adaptive,
        );
        let err = proceed(
            &client,
            &client,
            &job,
            destination,
            &upload,
            2,
            &memory,
            &conditions,
        )
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
}
