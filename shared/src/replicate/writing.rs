//! A replica's write and its check: one CopyObject, a streamed PutObject, or a
//! multipart copy, each conditional on the replica state that justified it; a
//! conditional delete; what is not copied at all; and the check of what was written,
//! which removes a replica that fails it only if it is still the one written.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;

use super::{replica_head, Replicator};
use crate::config::{AclMode, Destination};
use crate::copy::conditions::{self, DestinationConditions, Expect, Sent, WriteKind};
use crate::copy::lock::Lock;
use crate::copy::multipart::{self, MemoryBudget, Progress};
use crate::copy::provenance::{Holder, Provenance};
use crate::copy::verify::{self, Verified, Written};
use crate::copy::{self, Outcome};
use crate::errors::is_not_found;
use crate::errors::{FailureReason, ReplicationError, S3Step};
use crate::queues::job::{Continuation, Job};

/// What one write did.
pub(super) enum Wrote {
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
    /// Writes the source's state over the replica `expect` describes: one CopyObject,
    /// a streamed PutObject, or a multipart copy, each conditional on it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write(
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
        if Lock::of(&state.head).is_some() {
            self.locks.require(dst, destination).await?;
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
        let wrote = written.clone();
        let Some(outcome) = self.verified(job, destination, dst, state, written).await? else {
            return Ok(Wrote::Lost);
        };
        Box::pin(self.lock_replica(job, destination, dst, &state.head, &wrote)).await?;
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
    pub(super) async fn after_parts(
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
                let wrote = written.clone();
                let Some(outcome) = self
                    .verified(job, destination, dst, &source, written)
                    .await?
                else {
                    return Ok(Wrote::Lost);
                };
                Box::pin(self.lock_replica(job, destination, dst, &source.head, &wrote)).await?;
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

    /// Gives a replica its source version's Object Lock where the write did not: a
    /// server that refused the lock headers (the copy went without them) or that drops
    /// them. AWS's S3 keeps what a write says; elsewhere the lock a replica holds is
    /// read back (from the completion's HEAD, or one HEAD of the version written), so
    /// a replica is never left weaker than its source.
    async fn lock_replica(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        source: &HeadObjectOutput,
        written: &Written,
    ) -> Result<(), ReplicationError> {
        let lock = Lock::of(source);
        if !lock.is_some() {
            return Ok(());
        }
        let aws = self.s3.on_aws && destination.endpoint.endpoint_url.is_none();
        let there = match &written.lock {
            Some(there) => there.clone(),
            None if aws && !written.lock_dropped => return Ok(()),
            None => {
                let head = dst
                    .head_object()
                    .bucket(&destination.bucket)
                    .key(&job.source.key)
                    .set_version_id(written.version_id.clone())
                    .send()
                    .await;
                match head {
                    Ok(head) => Lock::of(&head),
                    // Replaced or removed since: whatever is there now has its own job.
                    Err(e) if is_not_found(&e) => return Ok(()),
                    Err(e) => return Err(ReplicationError::from_sdk(S3Step::DestinationHead, &e)),
                }
            }
        };
        let changes = lock.to_apply(&there);
        if changes.is_empty() {
            return Ok(());
        }
        tracing::info!(key = %job.source.key, destination = %destination.bucket,
            source_lock = %lock.describe(), replica_lock = %there.describe(),
            "the destination did not keep the lock the write carried; setting it");
        crate::copy::lock::apply(
            dst,
            destination,
            &job.source.key,
            written.version_id.as_deref(),
            &changes,
        )
        .await
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
