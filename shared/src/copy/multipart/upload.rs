//! An upload's lifecycle: started with the conditions its completion will carry,
//! carried on across invocations, completed and checked, or aborted.

use std::collections::HashMap;

use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use aws_sdk_s3::Client;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::checksums_of;
use crate::config::Destination;
use crate::copy::conditions::{self, DestinationConditions, Expect, Sent, WriteKind};
use crate::copy::verify::Written;
use crate::copy::{self, GrantHeaders, SourceState};
use crate::errors::{describe, FailureReason, ReplicationError, S3Step};
use crate::queues::job::{Continuation, Job};

use super::parts::*;
use super::pause::out_of_time;
use super::*;
use crate::errors::is_not_found;

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
        copy::with_replica_properties!(create, source, destination, &job.source.key, grants, true);
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
pub(super) fn full_object_type(algorithm: &ChecksumAlgorithm) -> Option<ChecksumType> {
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

/// A tag change made while the parts were copied (its own job found no replica yet,
/// or one the completion then overwrote) must not be lost: the replica gets the
/// source's tags as they are now. One GetObjectTagging; a write only on a change.
pub(super) async fn retag_if_changed(
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
        version_id: head.version_id().map(str::to_string),
        lock_dropped: false,
        lock: Some(crate::copy::lock::Lock::of(&head)),
    })
}

/// The parts already uploaded (every page of ListParts), keeping only those of the
/// size this copy expects; `None` when the upload is gone.
pub(super) async fn list_parts(
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
            Err(e) if is_not_found(&e) => return Ok(None),
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
pub(super) async fn abort_superseded(
    dst: &Client,
    destination: &Destination,
    key: &str,
    ours: &str,
) {
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

#[allow(clippy::too_many_arguments)]
pub(super) async fn run_parts(
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
