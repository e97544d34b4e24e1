//! Puts: the copy of what the source holds now, written conditionally on the replica
//! state that justified it, its checks, and the multipart copies that continue across
//! invocations.
//!
//! Every write names the replica it replaces: `If-Match` with the ETag a HEAD of the
//! replica returned, or `If-None-Match: *` when there was none. A write that loses a
//! race (a 412) looks at both sides again and decides again, a bounded number of times.
//! A write is followed by one look at the source when its condition could not see what
//! it raced: a new replica (a delete whose job found nothing to delete), one whose
//! ETag equals what it replaced (a metadata change has the same ETag), and a streamed or
//! multipart copy, whose tags are read apart from the object.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;

use super::{replica_head, replica_provenance, Replicator, MAX_RECOPIES, SOURCE_DELETED};
use crate::config::{AclMode, DeleteMode, Destination};
use crate::copy::conditions::{self, DestinationConditions, Expect, Sent, WriteKind};
use crate::copy::multipart::{self, MemoryBudget, Progress};
use crate::copy::provenance::{Holder, Provenance};
use crate::copy::verify::{self, Verified, Written};
use crate::copy::{self, Outcome};
use crate::errors::{FailureReason, ReplicationError, S3Step};
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

/// What one write did.
enum Wrote {
    /// Nothing to look at again: skipped for a reason, or paused.
    Done(Outcome),
    /// The replica was not in the state the write counted on: look again.
    Lost,
    /// Written and checked. `etag` is the replica's now; `look` says whether the
    /// source must be looked at once more (see the module's notes).
    Landed {
        outcome: Outcome,
        etag: Option<String>,
        look: bool,
        /// The source state the replica was copied from.
        source: Box<copy::SourceState>,
        /// The tags a streamed copy sent (read apart from the object); `None` when
        /// they travelled with it.
        sent_tags: Option<Option<String>>,
    },
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
            let replica = replica.flatten();
            let Some(mut state) = source? else {
                // Deleted at the source. A replica this job wrote is removed (the
                // delete's own job may have run before it landed, and found nothing);
                // aiming at the current state, so is any replica this source made.
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
                    .await?
                {
                    true => return Ok(wrote.map(|_| SOURCE_DELETED).unwrap_or(Outcome::Deleted)),
                    false => {
                        ours = None;
                        continue;
                    }
                }
            };
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

    /// Deletes the replica if it is still the object whose ETag is `etag`. False when
    /// it is not (someone wrote or deleted it first).
    pub(super) async fn delete_if(
        &self,
        dst: &aws_sdk_s3::Client,
        destination: &Destination,
        key: &str,
        etag: &str,
    ) -> Result<bool, ReplicationError> {
        let conditions = self.conditions(destination);
        let sent = conditions::send(
            &conditions,
            WriteKind::Delete,
            &Expect::from_etag(Some(etag)),
            |if_match, _| {
                let sent = dst
                    .delete_object()
                    .bucket(&destination.bucket)
                    .key(key)
                    .set_if_match(if_match)
                    .send();
                async move {
                    sent.await.map_err(|e| {
                        ReplicationError::from_sdk(crate::errors::S3Step::DestinationDelete, &e)
                    })
                }
            },
        )
        .await?;
        Ok(matches!(sent, Sent::Written { .. }))
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

    /// Writes the source's state over the replica `expect` describes: one CopyObject,
    /// a streamed PutObject, or a multipart copy, each conditional on it.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        state: &mut copy::SourceState,
        sequencer: Option<&str>,
        expect: &Expect,
        guessed: bool,
        conditions: &DestinationConditions,
    ) -> Result<Wrote, ReplicationError> {
        let source = Holder {
            bucket: &job.source.bucket,
            key: &job.source.key,
        };
        let own = state.own_provenance(source, &self.signer);
        state.signer = self.signer.clone();
        if let Some(reason) = self.not_copied(job, destination, state, own.as_ref()) {
            return Ok(Wrote::Done(Outcome::Skipped { reason }));
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
            .is_some_and(|p| p.fits_beside(state.head.metadata(), &self.signer))
            && self
                .unmarked_copy_exists(job, destination, dst, state)
                .await?
        {
            return Ok(Wrote::Done(Outcome::Skipped {
                reason: "ReplicaUpToDate",
            }));
        }
        let src = &self.s3.source;
        let same = destination.is_same_endpoint();
        let mut expect = expect.clone();
        if state.size() > self.multipart.threshold(same) {
            // Parts are dear: a guess that there is no replica is checked first, not at
            // the completion.
            if guessed {
                let head = replica_head(dst, destination, &job.source.key).await?;
                conditions.saw_replica(head.is_some());
                expect = Expect::from_etag(head.as_ref().and_then(|h| h.e_tag()));
            }
            let grants = self
                .grants_to_copy(job, destination, dst, version.as_deref())
                .await?;
            let upload = Box::pin(multipart::start(
                src,
                dst,
                job,
                destination,
                state,
                grants,
                &self.multipart,
                &expect,
            ))
            .await?;
            let progress = self.run_parts(job, destination, dst, &upload).await?;
            return self.after_parts(job, destination, dst, progress).await;
        }
        let grants = self
            .grants_to_copy(job, destination, dst, version.as_deref())
            .await?;
        let stamp = self.writes.stamp(&destination.bucket, &job.source.key);
        let state_ref: &copy::SourceState = state;
        let mut sent_tags = None;
        let sent = if same {
            conditions::send(conditions, WriteKind::Copy, &expect, |m, n| {
                copy::copy_same_endpoint(dst, job, destination, state_ref, grants.clone(), (m, n))
            })
            .await
        } else {
            let tagging = copy::source_tagging(src, job, version.as_deref()).await?;
            sent_tags = Some(tagging.clone());
            conditions::probe(conditions, WriteKind::Put, |bogus| {
                let sent = dst
                    .put_object()
                    .bucket(&destination.bucket)
                    .key(&job.source.key)
                    .if_match(bogus)
                    .send();
                async move {
                    sent.await
                        .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationWrite, &e))
                }
            })
            .await?;
            conditions::send(conditions, WriteKind::Put, &expect, |m, n| {
                copy::copy_streamed(
                    src,
                    dst,
                    job,
                    destination,
                    state_ref,
                    grants.clone(),
                    tagging.clone(),
                    (m, n),
                )
            })
            .await
        };
        let sent = match sent {
            // A server that refuses a streamed write's condition may close the
            // connection before the body is all sent, instead of answering 412: look
            // again (a real network failure costs a HEAD, and the rounds are bounded).
            Err(e) if !same && e.reason == FailureReason::NetworkError => {
                tracing::info!(key = %job.source.key, destination = %destination.bucket, error = %e,
                    "a conditional write was cut off; looking at the replica again");
                return Ok(Wrote::Lost);
            }
            other => other?,
        };
        let (written, checked) = match sent {
            Sent::Lost => return Ok(Wrote::Lost),
            Sent::Written { out, checked } => (out, checked),
        };
        let etag = written.etag.clone();
        let Some(outcome) = self.verified(job, destination, dst, state, written).await? else {
            return Ok(Wrote::Lost);
        };
        let overlapped = self.writes.stamp(&destination.bucket, &job.source.key) != stamp;
        self.writes.wrote(&destination.bucket, &job.source.key);
        // Where the server is not known to ignore conditions, the look follows what
        // the condition could not see (the module's notes); where it ignores them, the
        // fallback: a write that landed late, or after another of the key in this
        // process, looks again.
        let kind = if same {
            WriteKind::Copy
        } else {
            WriteKind::Put
        };
        let blind = matches!(&expect, Expect::ETag(e) if conditions::same_etag(Some(e), state.head.e_tag()));
        let (look, look_tags) = if !checked && conditions.ignored(kind) {
            let late = overlapped || state.read_at.elapsed() >= self.recheck_after;
            (late, late && !same)
        } else {
            (expect == Expect::Absent || blind, !same)
        };
        let sent_tags = sent_tags.filter(|_| look_tags);
        Ok(Wrote::Landed {
            outcome,
            etag,
            look,
            source: Box::new(state.clone()),
            sent_tags,
        })
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
        let user = crate::copy::provenance::user_metadata;
        Ok(there.e_tag() == state.head.e_tag()
            && there.content_length() == state.head.content_length()
            && user(there.metadata()) == user(state.head.metadata()))
    }

    /// Checks what a copy wrote against its source. When the write's answer holds
    /// nothing comparable (a KMS-encrypted or multipart-sourced object without a
    /// full-object checksum), one HEAD of the replica gives at least its size.
    ///
    /// A replica that fails its check is deleted, if it is still the one this write
    /// made (If-Match its ETag): it carries the provenance of the event it was made
    /// for, and a later attempt would take it for a good replica. A newer job's
    /// replica that replaced it meanwhile stays. `None`: the HEAD found another object
    /// than the one written (another job's, written since): nothing to check, look again.
    pub(super) async fn verified(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        source: &copy::SourceState,
        written: Written,
    ) -> Result<Option<Outcome>, ReplicationError> {
        let checked = match verify::verify(source, &written) {
            Some(result) => result,
            None => {
                let there = multipart::written_object(dst, destination, &job.source.key).await?;
                if written.etag.is_some()
                    && !conditions::same_etag(written.etag.as_deref(), there.etag.as_deref())
                {
                    return Ok(None);
                }
                verify::verify(source, &there).unwrap_or(Ok(Verified::Size))
            }
        };
        let verified = match checked {
            Ok(verified) => verified,
            Err(mismatch) => {
                let removed = match written.etag.as_deref() {
                    Some(etag) => {
                        self.delete_if(dst, destination, &job.source.key, etag)
                            .await
                    }
                    None => Err(ReplicationError::new(
                        FailureReason::Unknown,
                        "the write's answer has no ETag to delete it by",
                    )),
                };
                match removed {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(key = %job.source.key, destination = %destination.bucket,
                        "a replica that failed its check was replaced before it could be deleted; the newer one stays")
                    }
                    Err(e) => {
                        tracing::warn!(key = %job.source.key, destination = %destination.bucket, error = %e,
                        "could not delete a replica that failed its check; the retry copies it again regardless")
                    }
                }
                return Err(mismatch);
            }
        };
        Ok(Some(Outcome::Replicated {
            bytes: source.size(),
            verified,
        }))
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
        let conditions = self.conditions(destination);
        Box::pin(multipart::proceed(
            src,
            dst,
            job,
            destination,
            upload,
            settings.concurrency,
            memory,
            &conditions,
        ))
        .await
    }

    /// What a multipart copy's progress means for the job. A completed copy is
    /// checked, and always looked at again: its tags were read apart from it, and it
    /// may have taken long.
    async fn after_parts(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        progress: Progress,
    ) -> Result<Wrote, ReplicationError> {
        match progress {
            Progress::Done {
                written, source, ..
            } => {
                let etag = written.etag.clone();
                let Some(outcome) = self
                    .verified(job, destination, dst, &source, written)
                    .await?
                else {
                    return Ok(Wrote::Lost);
                };
                self.writes.wrote(&destination.bucket, &job.source.key);
                Ok(Wrote::Landed {
                    outcome,
                    etag,
                    look: true,
                    source,
                    sent_tags: None,
                })
            }
            Progress::Paused(upload) => Ok(Wrote::Done(Outcome::Paused(Box::new(upload)))),
            Progress::Skipped(reason) => Ok(Wrote::Done(Outcome::Skipped { reason })),
            Progress::Lost => Ok(Wrote::Lost),
            Progress::UploadGone => Err(ReplicationError::new(
                FailureReason::PreconditionFailed,
                "the multipart upload is gone (aborted by a cleanup or a lifecycle rule)",
            )),
        }
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
