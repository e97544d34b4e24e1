//! Puts: the copy of what the source holds now, written conditionally on the replica
//! state that justified it (`writing` holds the write itself and its check), and the
//! multipart copies that continue across invocations.
//!
//! Every write names the replica it replaces: `If-Match` with the ETag a HEAD of the
//! replica returned, or `If-None-Match: *` when there was none. A write that loses a
//! race (a 412) looks at both sides again and decides again, a bounded number of times.
//! A write is followed by one look at the source when its condition could not see what
//! it raced: a new replica (a delete whose job found nothing to delete), one whose
//! ETag equals what it replaced (a metadata change has the same ETag), and a streamed or
//! multipart copy, whose tags are read apart from the object.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;

use super::writing::Wrote;
use super::{
    refused_for_its_lock, replica_head, replica_provenance, Replicator, MAX_RECOPIES,
    REPLICA_LOCKED, SOURCE_DELETED,
};
use crate::config::{DeleteMode, Destination};
use crate::copy::conditions::{Expect, WriteKind};
use crate::copy::multipart::Progress;
use crate::copy::provenance::Provenance;
use crate::copy::{self, Outcome};
use crate::errors::{FailureReason, ReplicationError};
use crate::queues::job::{Continuation, Job};

/// What a put decides for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Aim {
    /// The job's event: an event no newer than the replica's was done already, and
    /// one the source has moved past is superseded (the newer write's job copies it).
    Event,
    /// What the source holds now, whatever the event said: after a delete raced a
    /// put, after a version was removed for good, after a copy saw the source move on.
    Current,
}

impl Replicator {
    /// A created object: copies what the source holds now, ordered against the replica
    /// by the event's sequencer when it has one.
    pub(super) async fn put(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        // After a failed check the replica's record proves nothing (if its delete
        // failed, it is still there, claiming this event).
        let checked_before = job
            .last_error
            .as_ref()
            .is_none_or(|e| e.reason != FailureReason::ChecksumMismatch);
        // A backfill's job knows what the listing saw: a replica that already holds it
        // ends the job with one HEAD (a second backfill copies nothing).
        let listed_absent = job.backfill.as_ref().is_some_and(|b| b.absent);
        if job.backfill.is_some() && !listed_absent && job.sequencer().is_none() && checked_before {
            if let Some(replica) = replica_head(dst, destination, &job.source.key).await? {
                if holds_listed_state(
                    job,
                    &replica,
                    replica_provenance(self, &replica, destination, &job.source.key),
                ) {
                    return Ok(Outcome::Skipped {
                        reason: "ReplicaUpToDate",
                    });
                }
            }
        }
        Box::pin(self.converge(job, destination, dst, Aim::Event, None)).await
    }

    /// Brings the replica to what the source holds (see [`Aim`]), each write
    /// conditional on the replica state read just before it. `ours` is the ETag of a
    /// replica this job has already written (a completed multipart copy), to remove if
    /// the source turns out deleted.
    pub(super) async fn converge(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        mut aim: Aim,
        mut ours: Option<String>,
    ) -> Result<Outcome, ReplicationError> {
        let sequencer = job.sequencer();
        let checked_before = job
            .last_error
            .as_ref()
            .is_none_or(|e| e.reason != FailureReason::ChecksumMismatch);
        let listed_absent = job.backfill.as_ref().is_some_and(|b| b.absent);
        let conditions = self.conditions(destination);
        let kind = if destination.is_same_endpoint() {
            WriteKind::Copy
        } else {
            WriteKind::Put
        };
        // What this job wrote, if anything: the outcome it ends with, whatever later
        // rounds find.
        let mut wrote: Option<Outcome> = None;
        for round in 0..=MAX_RECOPIES {
            // New keys first: skip the replica's HEAD, try If-None-Match: * (a 412
            // costs a HEAD after all). Only where the server is known to check it.
            let guess_new = round == 0
                && ours.is_none()
                && (listed_absent || conditions.try_new_key_first(kind));
            // Where the server ignores conditions and the event has no sequencer, the
            // replica's HEAD would tell nothing: the source's current state decides.
            let unordered =
                round == 0 && aim == Aim::Event && sequencer.is_none() && conditions.ignored(kind);
            let (replica, source) = tokio::join!(
                async {
                    match guess_new || unordered {
                        true => Ok(None),
                        false => replica_head(dst, destination, &job.source.key)
                            .await
                            .map(Some),
                    }
                },
                copy::head_source(&self.s3.source, job)
            );
            // None: not read (guessed absent); Some(None): read, absent.
            let replica = replica?;
            if let Some(read) = &replica {
                conditions.saw_replica(read.is_some());
            }
            let Some(mut state) = source? else {
                // Deleted at the source. A replica this job wrote is removed (the
                // delete's own job may have run before it landed, and found nothing);
                // aiming at the current state, so is any replica this source made
                // (looked at now if the round guessed there was none, to write).
                let replica = match replica {
                    None if aim == Aim::Current && ours.is_none() => {
                        replica_head(dst, destination, &job.source.key).await?
                    }
                    read => read.flatten(),
                };
                let stale = match (&ours, &replica, aim) {
                    (Some(etag), _, _) => Some(etag.clone()),
                    (None, Some(head), Aim::Current)
                        if replica_provenance(self, head, destination, &job.source.key)
                            .is_some_and(|p| p.source_bucket == job.source.bucket) =>
                    {
                        head.e_tag().map(str::to_string)
                    }
                    _ => None,
                };
                let Some(stale) = stale.filter(|_| destination.delete_mode != DeleteMode::None)
                else {
                    return Ok(wrote.unwrap_or(SOURCE_DELETED));
                };
                match self
                    .delete_if(dst, destination, &job.source.key, &stale)
                    .await
                {
                    Ok(true) => {
                        return Ok(wrote.map(|_| SOURCE_DELETED).unwrap_or(Outcome::Deleted))
                    }
                    Ok(false) => {
                        ours = None;
                        continue;
                    }
                    Err(e)
                        if replica
                            .as_ref()
                            .is_some_and(|head| refused_for_its_lock(&e, head)) =>
                    {
                        return Ok(REPLICA_LOCKED)
                    }
                    Err(e) => return Err(e),
                }
            };
            let replica = replica.flatten();
            let provenance = replica
                .as_ref()
                .and_then(|h| replica_provenance(self, h, destination, &job.source.key));
            match aim {
                Aim::Event => {
                    let newer = provenance
                        .as_ref()
                        .and_then(|p| p.is_at_least(&job.source.bucket, sequencer));
                    if checked_before && newer == Some(true) {
                        return Ok(wrote.unwrap_or(Outcome::Skipped {
                            reason: "ReplicaUpToDate",
                        }));
                    }
                    if sequencer.is_some() && !describes_current(job, &state.head) {
                        return Ok(wrote.unwrap_or(Outcome::Skipped {
                            reason: "Superseded",
                        }));
                    }
                }
                Aim::Current => {
                    let same_version = provenance.as_ref().is_some_and(|p| {
                        p.source_bucket == job.source.bucket
                            && p.version_id.is_some()
                            && p.version_id.as_deref() == state.head.version_id()
                    });
                    if same_version {
                        return Ok(wrote.unwrap_or(Outcome::Skipped {
                            reason: "ReplicaUpToDate",
                        }));
                    }
                }
            }
            // Aiming at the event, its sequencer describes exactly this state; aiming at
            // the current state, the event's is a lower bound of it.
            let expect = Expect::from_etag(replica.as_ref().and_then(|h| h.e_tag()));
            // Boxed: a multipart copy's future is large, and debug builds poll it on a
            // worker thread's stack.
            let written = Box::pin(self.write(
                job,
                destination,
                dst,
                &mut state,
                sequencer,
                &expect,
                guess_new,
                &conditions,
            ))
            .await;
            let written = match written {
                // Gone (or overwritten, its version gone) between the HEAD and the
                // write: a race with a delete, not a failure. Look again.
                Err(e) if e.reason == FailureReason::SrcObjectNotFound => continue,
                other => other?,
            };
            let (outcome, etag, look, copied, sent_tags) = match written {
                Wrote::Done(outcome) => return Ok(wrote.unwrap_or(outcome)),
                Wrote::Lost => {
                    tracing::info!(bucket = %job.source.bucket, key = %job.source.key, destination = %destination.bucket,
                        "the replica changed before this write landed; looking again");
                    continue;
                }
                Wrote::Landed {
                    outcome,
                    etag,
                    look,
                    source,
                    sent_tags,
                } => (outcome, etag, look, source, sent_tags),
            };
            ours = etag;
            wrote = Some(outcome.clone());
            if !look {
                self.tags_after_copy(job, destination, dst, &copied, sent_tags)
                    .await?;
                return Ok(outcome);
            }
            match copy::head_source(&self.s3.source, job).await? {
                Some(now) if copied.same_object(&now.head) => {
                    self.tags_after_copy(job, destination, dst, &copied, sent_tags)
                        .await?;
                    return Ok(outcome);
                }
                Some(_) => {
                    tracing::info!(bucket = %job.source.bucket, key = %job.source.key, destination = %destination.bucket,
                        "the source changed while it was being copied; copying what it holds now");
                    aim = Aim::Current;
                }
                // Deleted meanwhile: the next round removes what this job wrote.
                None => {}
            }
        }
        Err(ReplicationError::new(
            FailureReason::PreconditionFailed,
            format!(
                "the replica or the source changed under each of {} writes; retrying later",
                MAX_RECOPIES + 1
            ),
        ))
    }

    /// A streamed copy sends the tags it read before the object; a tag change whose own
    /// job wrote to the replica before the copy landed would be lost. One read of the
    /// source's tags after it landed, and a write only when they differ.
    async fn tags_after_copy(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        copied: &copy::SourceState,
        sent: Option<Option<String>>,
    ) -> Result<(), ReplicationError> {
        let Some(sent) = sent else {
            return Ok(());
        };
        let version = copied.head.version_id();
        let now = match copy::source_tagging(&self.s3.source, job, version).await {
            Ok(now) => now,
            // Gone since: its delete's job settles the replica.
            Err(e) if e.reason == FailureReason::SrcObjectNotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if now == sent {
            return Ok(());
        }
        copy::write_tags(dst, destination, &job.source.key, now.as_deref()).await
    }

    /// A continuation: the parts ListParts does not show are uploaded, then the upload
    /// completes if the replica is still what it was when the copy began. An upload
    /// that is gone, or a replica that changed, makes the job look again, as a put.
    pub(super) async fn resume(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        upload: &Continuation,
    ) -> Result<Outcome, ReplicationError> {
        tracing::info!(key = %job.source.key, upload_id = %upload.upload_id, parts_done = upload.parts_done,
            invocation = upload.invocations + 1, "continuing a multipart copy");
        let progress = self.run_parts(job, destination, dst, upload).await?;
        if let Progress::UploadGone = progress {
            return self.put(&job.without_upload(), destination, dst).await;
        }
        match self.after_parts(job, destination, dst, progress).await? {
            Wrote::Done(outcome) => Ok(outcome),
            Wrote::Lost => self.put(&job.without_upload(), destination, dst).await,
            // However long the copy spanned, the source is looked at once more after it
            // landed: if it has moved on, or gone, the replica follows it.
            Wrote::Landed {
                outcome,
                etag,
                source,
                ..
            } => match copy::head_source(&self.s3.source, job).await? {
                Some(now) if source.same_object(&now.head) => Ok(outcome),
                _ => {
                    let job = job.without_upload();
                    Box::pin(self.converge(&job, destination, dst, Aim::Current, etag)).await
                }
            },
        }
    }
}

/// Whether a replica holds the object a backfill listed, by its size and either:
/// - for a replica this source made, its time: written in a later second than the
///   source was modified, or in the same one with the same ETag (an ETag alone misses
///   a metadata change copied in place, which keeps it; and a multipart or encrypted
///   copy's ETag differs from its source's);
/// - for any other object, the same ETag.
fn holds_listed_state(job: &Job, replica: &HeadObjectOutput, made: Option<Provenance>) -> bool {
    let unquote = |s: &str| s.trim_matches('"').to_string();
    let Some(size) = job.source.size else {
        return false;
    };
    if replica.content_length().map(|l| l.max(0) as u64) != Some(size) {
        return false;
    }
    let same_etag = matches!((job.source.etag.as_deref(), replica.e_tag()),
        (Some(listed), Some(there)) if unquote(listed) == unquote(there));
    let ours = made.is_some_and(|p| p.source_bucket == job.source.bucket);
    if !ours {
        return same_etag;
    }
    let modified = job.source.event_time.as_deref().and_then(|t| {
        aws_sdk_s3::primitives::DateTime::from_str(t, aws_smithy_types::date_time::Format::DateTime)
            .ok()
    });
    match (modified, replica.last_modified()) {
        (Some(source), Some(there)) => {
            there.secs() > source.secs() || (there.secs() == source.secs() && same_etag)
        }
        _ => false,
    }
}

/// Whether the event describes what the source holds now: the same version, or (on
/// an unversioned source) the same ETag. An event that says neither is taken at its word.
fn describes_current(job: &Job, head: &HeadObjectOutput) -> bool {
    let unquote = |s: &str| s.trim_matches('"').to_string();
    if let (Some(event), Some(now)) = (job.source.version_id.as_deref(), head.version_id()) {
        if now != "null" {
            return event == now;
        }
    }
    match (job.source.etag.as_deref(), head.e_tag()) {
        (Some(event), Some(now)) => unquote(event) == unquote(now),
        _ => true,
    }
}
