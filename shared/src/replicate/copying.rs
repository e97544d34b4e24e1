//! Puts: the copy of what the source holds now, its checks, and the multipart copies
//! that continue across invocations.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;

use super::{replica_head, replica_provenance, Replicator, MAX_RECOPIES, SOURCE_DELETED};
use crate::config::{AclMode, DeleteMode, Destination};
use crate::copy::multipart::{self, MemoryBudget, Progress};
use crate::copy::verify::{self, Verified, Written};
use crate::copy::{self, Outcome};
use crate::errors::{FailureReason, ReplicationError};
use crate::queues::job::{Continuation, Job};
use crate::replicate::provenance::Provenance;

impl Replicator {
    /// A created object. Copies what the source holds now. When the event carries a
    /// sequencer it is ordered against the replica first: an event no newer than the
    /// replica was done already (one HEAD, nothing written), and an event the source
    /// has since moved past is superseded (the newer write's own event copies it).
    pub(super) async fn put(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        let sequencer = job.sequencer();
        // After a failed check the replica's record proves nothing (if its delete
        // failed, it is still there, claiming this event).
        let checked_before = job
            .last_error
            .as_ref()
            .is_none_or(|e| e.reason != FailureReason::ChecksumMismatch);
        // A backfill's job knows what the listing saw: a replica that already holds it
        // ends the job with one HEAD (a second backfill copies nothing).
        let listed_absent = job.backfill.as_ref().is_some_and(|b| b.absent);
        if job.backfill.is_some() && !listed_absent && sequencer.is_none() && checked_before {
            if let Some(replica) = replica_head(dst, destination, &job.source.key).await? {
                if holds_listed_state(job, &replica) {
                    return Ok(Outcome::Skipped {
                        reason: "ReplicaUpToDate",
                    });
                }
            }
        }
        // The two HEADs are independent: they go out together.
        let check_replica = sequencer.is_some() && checked_before;
        let (replica, source) = tokio::join!(
            async {
                match check_replica {
                    true => replica_provenance(dst, destination, &job.source.key).await,
                    false => Ok(None),
                }
            },
            copy::head_source(&self.s3.source, job)
        );
        let newer = replica?.and_then(|p| p.is_at_least(&job.source.bucket, sequencer));
        if newer == Some(true) {
            return Ok(Outcome::Skipped {
                reason: "ReplicaUpToDate",
            });
        }
        let Some(state) = source? else {
            return Ok(SOURCE_DELETED);
        };
        let current = describes_current(job, &state.head);
        if sequencer.is_some() && !current {
            return Ok(Outcome::Skipped {
                reason: "Superseded",
            });
        }
        // Here a sequencer, if any, is that of an event describing exactly this state.
        self.copy(job, destination, dst, state, sequencer).await
    }

    /// Copies the source's current state, recording its provenance on the replica.
    /// `sequencer` says the copied state is at least as new as that event (the event
    /// described exactly this state, or happened before it was read); `None` when
    /// nothing is known.
    ///
    /// A copy that landed late (see [`DEFAULT_RECHECK_AFTER`]) or overlapped another
    /// write of the key in this process looks at the source again, and copies again
    /// if the source has moved on: a slow copy of an old version never leaves the
    /// replica older than the source, even when no later event comes.
    pub(super) async fn copy(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        mut state: copy::SourceState,
        sequencer: Option<&str>,
    ) -> Result<Outcome, ReplicationError> {
        let mut sequencer = sequencer;
        for _ in 0..=MAX_RECOPIES {
            let stamp = self.writes.stamp(&destination.bucket, &job.source.key);
            let outcome = match self
                .copy_once(job, destination, dst, &mut state, sequencer)
                .await
            {
                // Deleted (or overwritten on an unversioned bucket, its version gone)
                // between the HEAD and the copy: a race with a delete, not a failure.
                Err(e) if e.reason == FailureReason::SrcObjectNotFound => {
                    match copy::head_source(&self.s3.source, job).await? {
                        None => return Ok(SOURCE_DELETED),
                        Some(now) => {
                            sequencer = job.sequencer();
                            state = now;
                            continue;
                        }
                    }
                }
                outcome => outcome?,
            };
            if !matches!(outcome, Outcome::Replicated { .. }) {
                return Ok(outcome);
            }
            let overlapped = self.writes.stamp(&destination.bucket, &job.source.key) != stamp;
            self.writes.wrote(&destination.bucket, &job.source.key);
            if !overlapped && state.read_at.elapsed() < self.recheck_after {
                return Ok(outcome);
            }
            match copy::head_source(&self.s3.source, job).await? {
                Some(now) if state.same_object(&now.head) => return Ok(outcome),
                Some(now) => {
                    tracing::info!(bucket = %job.source.bucket, key = %job.source.key, destination = %destination.bucket,
                        "the source changed while it was being copied; copying what it holds now");
                    // What it holds now is newer than the event: its sequencer is a
                    // safe lower bound.
                    sequencer = job.sequencer();
                    state = now;
                }
                // Deleted while it was being copied: the delete's own job may have
                // run before this copy landed.
                None if destination.delete_mode != DeleteMode::None => {
                    return Box::pin(self.delete_replica(job, destination, dst)).await;
                }
                None => return Ok(outcome),
            }
        }
        Err(ReplicationError::new(
            FailureReason::PreconditionFailed,
            format!(
                "the source changed during each of {} copies; retrying later",
                MAX_RECOPIES + 1
            ),
        ))
    }

    /// Why this object stays where it is, if it does: what S3 does not replicate (see
    /// [`copy::SourceState::not_replicated`]), and replicas. A replica is not copied
    /// back where it came from, whatever the endpoint (two-way replication would
    /// otherwise echo each write for ever), nor on down a chain unless the destination
    /// opts in with `ReplicateReplicas`, as on S3.
    pub(super) fn not_copied(
        &self,
        job: &Job,
        destination: &Destination,
        state: &copy::SourceState,
        own: Option<&Provenance>,
    ) -> Option<&'static str> {
        let rule = self.config.rule(&job.source.bucket, &job.rule_id)?;
        if let Some(reason) = state.not_replicated(rule) {
            return Some(reason);
        }
        match own {
            Some(p) if p.came_from(&destination.bucket) => Some("ReplicaOfDestination"),
            Some(_) if !destination.replicate_replicas => Some("SourceIsReplica"),
            _ => None,
        }
    }

    pub(super) async fn copy_once(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        state: &mut copy::SourceState,
        sequencer: Option<&str>,
    ) -> Result<Outcome, ReplicationError> {
        let own = state.own_provenance();
        if let Some(reason) = self.not_copied(job, destination, state, own.as_ref()) {
            return Ok(Outcome::Skipped { reason });
        }
        let version = state.head.version_id().map(str::to_string);
        state.provenance = Some(Provenance::of_copy(
            &job.source.bucket,
            version.as_deref(),
            sequencer,
            own.as_ref(),
        ));
        if !state
            .provenance
            .as_ref()
            .is_some_and(|p| p.fits_beside(state.head.metadata()))
            && self
                .unmarked_copy_exists(job, destination, dst, state)
                .await?
        {
            return Ok(Outcome::Skipped {
                reason: "ReplicaUpToDate",
            });
        }
        let src = &self.s3.source;
        let grants = self
            .grants_to_copy(job, destination, dst, version.as_deref())
            .await?;
        let same = destination.is_same_endpoint();
        if state.size() > self.multipart.threshold(same) {
            let upload =
                multipart::start(src, dst, job, destination, state, grants, &self.multipart)
                    .await?;
            let progress = self.run_parts(job, destination, dst, &upload).await?;
            // The parts complete only if a HEAD just before completing finds the state
            // they were pinned to: a late completion is measured from that read.
            if let Progress::Done { source, .. } = &progress {
                state.read_at = source.read_at;
            }
            return self.outcome_of(job, destination, dst, progress).await;
        }
        let written = if same {
            copy::copy_same_endpoint(src, job, destination, state, grants).await?
        } else {
            copy::copy_streamed(src, dst, job, destination, state, grants).await?
        };
        self.verified(job, destination, dst, state, written).await
    }

    /// Whether the destination already holds this content with this metadata. Asked
    /// (one HEAD) only when the object's own metadata leaves no room to mark its replica
    /// as one: then nothing else stops two-way replication from copying it back and
    /// forth, and an identical object there is where the echo ends.
    pub(super) async fn unmarked_copy_exists(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        state: &copy::SourceState,
    ) -> Result<bool, ReplicationError> {
        let Some(there) = replica_head(dst, destination, &job.source.key).await? else {
            return Ok(false);
        };
        let user = crate::replicate::provenance::user_metadata;
        Ok(there.e_tag() == state.head.e_tag()
            && there.content_length() == state.head.content_length()
            && user(there.metadata()) == user(state.head.metadata()))
    }

    /// Checks what a copy wrote against its source. When the write's answer holds
    /// nothing comparable (a KMS-encrypted or multipart-sourced object without a
    /// full-object checksum), one HEAD of the replica gives at least its size.
    ///
    /// A replica that fails its check is deleted: it carries the provenance of the
    /// event it was made for, and a later attempt would take it for a good replica.
    pub(super) async fn verified(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        source: &copy::SourceState,
        written: Written,
    ) -> Result<Outcome, ReplicationError> {
        let checked = match verify::verify(source, &written) {
            Some(result) => result,
            None => {
                let written = multipart::written_object(dst, destination, &job.source.key).await?;
                verify::verify(source, &written).unwrap_or(Ok(Verified::Size))
            }
        };
        let verified = match checked {
            Ok(verified) => verified,
            Err(mismatch) => {
                let removed = dst
                    .delete_object()
                    .bucket(&destination.bucket)
                    .key(&job.source.key)
                    .send()
                    .await;
                if let Err(e) = removed {
                    tracing::warn!(key = %job.source.key, destination = %destination.bucket, error = %crate::errors::describe(&e),
                        "could not delete a replica that failed its check; the retry copies it again regardless");
                }
                return Err(mismatch);
            }
        };
        Ok(Outcome::Replicated {
            bytes: source.size(),
            verified,
        })
    }

    pub(super) async fn run_parts(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        upload: &Continuation,
    ) -> Result<Progress, ReplicationError> {
        let settings = &self.multipart;
        let memory = self
            .memory
            .get_or_init(|| MemoryBudget::new(settings.memory_budget()));
        let src = &self.s3.source;
        multipart::proceed(
            src,
            dst,
            job,
            destination,
            upload,
            settings.concurrency,
            memory,
        )
        .await
    }

    pub(super) async fn outcome_of(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        progress: Progress,
    ) -> Result<Outcome, ReplicationError> {
        match progress {
            Progress::Done { written, source } => {
                self.verified(job, destination, dst, &source, written).await
            }
            Progress::Paused(upload) => Ok(Outcome::Paused(Box::new(upload))),
            Progress::Skipped(reason) => Ok(Outcome::Skipped { reason }),
            Progress::UploadGone => Err(ReplicationError::new(
                FailureReason::PreconditionFailed,
                "the multipart upload is gone (aborted by a cleanup or a lifecycle rule)",
            )),
        }
    }

    /// A continuation: the parts ListParts does not show are uploaded, then the upload
    /// completes. An upload that is gone makes the job start afresh, as a put.
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
        // However long the copy spanned, it completed only if the source still held
        // what its parts were pinned to (a HEAD just before completing): no further look.
        let outcome = self.outcome_of(job, destination, dst, progress).await?;
        if matches!(outcome, Outcome::Replicated { .. }) {
            self.writes.wrote(&destination.bucket, &job.source.key);
        }
        Ok(outcome)
    }

    /// The source's grants, when the mode copies them and both buckets use ACLs.
    pub(super) async fn grants_to_copy(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        version: Option<&str>,
    ) -> Result<Option<copy::GrantHeaders>, ReplicationError> {
        if destination.acl_mode != AclMode::Copy
            || !self
                .acls
                .uses_acls(&self.s3.source, &job.source.bucket)
                .await
            || !self.acls.uses_acls(dst, &destination.bucket).await
        {
            return Ok(None);
        }
        copy::source_grants(&self.s3.source, job, version).await
    }
}

/// Whether a replica holds the object a backfill listed, by its size and either:
/// - for a replica this source made, its time: written in a later second than the
///   source was modified, or in the same one with the same ETag (an ETag alone misses
///   a metadata change copied in place, which keeps it; and a multipart or encrypted
///   copy's ETag differs from its source's);
/// - for any other object, the same ETag.
fn holds_listed_state(job: &Job, replica: &HeadObjectOutput) -> bool {
    let unquote = |s: &str| s.trim_matches('"').to_string();
    let Some(size) = job.source.size else {
        return false;
    };
    if replica.content_length().map(|l| l.max(0) as u64) != Some(size) {
        return false;
    }
    let same_etag = matches!((job.source.etag.as_deref(), replica.e_tag()),
        (Some(listed), Some(there)) if unquote(listed) == unquote(there));
    let ours =
        Provenance::read(replica.metadata()).is_some_and(|p| p.source_bucket == job.source.bucket);
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
