//! Deletes: a replica is removed only when this source made it and the delete is not
//! older than it; two-way pairs let a delete in either bucket reach the other.

use super::{replica_head, Replicator, NOT_OURS};
use crate::config::Destination;
use crate::copy::{self, Outcome};
use crate::errors::{ReplicationError, S3Step};
use crate::queues::job::Job;
use crate::replicate::provenance::Provenance;

impl Replicator {
    /// A delete marker, or a plain delete on an unversioned source. It removes only a
    /// replica this source made, and never one newer than the delete: sequencers
    /// decide when both sides have one, otherwise the source does (if it holds an
    /// object under the key again, the replica ends a copy of it). One HEAD of the
    /// source either way, after the delete.
    pub(super) async fn delete(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        let replica = match self.our_replica(job, destination, dst).await? {
            Ok(replica) => replica,
            Err(Outcome::Skipped { reason: NOT_OURS }) if self.two_way(job, destination) => {
                return self.two_way_delete(job, destination, dst).await
            }
            Err(skipped) => return Ok(skipped),
        };
        match replica.is_at_least(&job.source.bucket, job.sequencer()) {
            Some(true) => Ok(Outcome::Skipped {
                reason: "ReplicaNewer",
            }),
            // Without sequencers the source decides, and delete_replica asks it after
            // the delete: if it holds an object again, the replica is restored from it.
            Some(false) | None => self.delete_replica(job, destination, dst).await,
        }
    }

    /// Whether the destination replicates back to this source: the document has an
    /// enabled rule from the destination bucket to this one (on this endpoint) for the
    /// key, or the rule syncs replica modifications, which is how S3 and this tool
    /// spell two-way replication across deployments.
    pub(super) fn two_way(&self, job: &Job, destination: &Destination) -> bool {
        let Some(rule) = self.config.rule(&job.source.bucket, &job.rule_id) else {
            return false;
        };
        let back = destination.is_same_endpoint()
            && self
                .config
                .source(&destination.bucket)
                .into_iter()
                .flat_map(|s| &s.rules)
                .any(|r| {
                    r.enabled
                        && r.destination.bucket == job.source.bucket
                        && r.destination.is_same_endpoint()
                        && r.filter.matches_key(&job.source.key)
                });
        back || rule.replica_modifications
    }

    /// Two-way replication (A <-> B): a delete in B of an object first written in A
    /// reaches A, as a delete marker placed in either bucket does on S3. What it removes
    /// is an original of A, so it must be what B deleted: an object written before the
    /// delete (by modification time, to the second; S3's Last-Modified has no finer
    /// grain). An object written at A after the delete, or in the same second, or that
    /// is a replica of a third bucket, stays; so does every object when the event has
    /// no time.
    pub(super) async fn two_way_delete(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        let deleted_at = job.source.event_time.as_deref().and_then(|t| {
            aws_smithy_types::DateTime::from_str(t, aws_smithy_types::date_time::Format::DateTime)
                .ok()
        });
        let not_ours = Outcome::Skipped { reason: NOT_OURS };
        let Some(deleted_at) = deleted_at else {
            return Ok(not_ours);
        };
        let Some(head) = replica_head(dst, destination, &job.source.key).await? else {
            return Ok(Outcome::Skipped {
                reason: "ReplicaAbsent",
            });
        };
        if Provenance::read(head.metadata()).is_some() {
            return Ok(not_ours);
        }
        let Some(modified) = head.last_modified() else {
            return Ok(not_ours);
        };
        if modified.secs() + 1 > deleted_at.secs() {
            return Ok(Outcome::Skipped {
                reason: "DestinationObjectNewer",
            });
        }
        // If the source holds the key again, delete_replica's look after the delete
        // makes the other side a copy of it.
        self.delete_replica(job, destination, dst).await
    }

    /// Makes the replica what the source holds now: a copy of the current version, or
    /// no replica when there is none. Costs two HEADs when nothing needs doing.
    pub(super) async fn reconcile(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        // The two HEADs are independent: they go out together.
        let (source, replica) = tokio::join!(
            copy::head_source(&self.s3.source, job),
            self.our_replica(job, destination, dst)
        );
        let source = source?;
        let replica = match replica? {
            Ok(replica) => Some(replica),
            Err(skipped) if source.is_none() => return Ok(skipped),
            Err(_) => None,
        };
        match (source, replica) {
            (None, _) => self.delete_replica(job, destination, dst).await,
            (Some(state), Some(replica))
                if replica.version_id.is_some()
                    && replica.version_id.as_deref() == state.head.version_id() =>
            {
                Ok(Outcome::Skipped {
                    reason: "ReplicaUpToDate",
                })
            }
            // The version is gone, so what is current now is at least as new as the
            // event: its sequencer bounds the replica's recency from below.
            (Some(state), _) => {
                self.copy(job, destination, dst, state, job.sequencer())
                    .await
            }
        }
    }

    /// The replica's provenance when it is a replica this source made; otherwise the
    /// reason to leave the destination alone (nothing there, or an object some one
    /// else wrote: we delete only what we replicated).
    pub(super) async fn our_replica(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Result<Provenance, Outcome>, ReplicationError> {
        let Some(head) = replica_head(dst, destination, &job.source.key).await? else {
            return Ok(Err(Outcome::Skipped {
                reason: "ReplicaAbsent",
            }));
        };
        match Provenance::read(head.metadata()) {
            Some(p) if p.source_bucket == job.source.bucket => Ok(Ok(p)),
            _ => Ok(Err(Outcome::Skipped { reason: NOT_OURS })),
        }
    }

    /// Deletes the replica, then looks at the source once more: a put that raced this
    /// delete may have copied an object the delete just removed. If the source holds
    /// an object now, the replica becomes a copy of it again.
    pub(super) async fn delete_replica(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        dst.delete_object()
            .bucket(&destination.bucket)
            .key(&job.source.key)
            .send()
            .await
            .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationDelete, &e))?;
        match copy::head_source(&self.s3.source, job).await? {
            // What the source holds after this delete is newer than it: the delete's
            // sequencer is a safe lower bound for the restored replica.
            Some(state) => {
                self.copy(job, destination, dst, state, job.sequencer())
                    .await
            }
            None => Ok(Outcome::Deleted),
        }
    }
}
