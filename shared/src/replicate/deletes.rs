//! Deletes: a replica is removed only when this source made it and the delete is not
//! older than it, and only if it is still the replica that was read (If-Match its
//! ETag); two-way pairs let a delete in either bucket reach the other, but never one
//! this replicator made itself.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;

use super::copying::Aim;
use super::{
    refused_for_its_lock, replica_head, replica_provenance, Replicator, MAX_RECOPIES, NOT_OURS,
    REPLICA_LOCKED,
};
use crate::config::Destination;
use crate::copy::{self, Outcome};
use crate::errors::{FailureReason, ReplicationError};
use crate::queues::job::Job;

impl Replicator {
    /// A delete marker, or a plain delete on an unversioned source. It removes only a
    /// replica this source made, never one newer than the delete (sequencers decide
    /// when both sides have one), and never one written after it was read: the delete
    /// is conditional on the ETag read. Then one HEAD of the source: if it holds an
    /// object again, the replica ends a copy of it.
    pub(super) async fn delete(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        for _ in 0..=MAX_RECOPIES {
            let Some(head) = replica_head(dst, destination, &job.source.key).await? else {
                return Ok(Outcome::Skipped {
                    reason: "ReplicaAbsent",
                });
            };
            let replica = match replica_provenance(self, &head, destination, &job.source.key) {
                Some(p) if p.source_bucket == job.source.bucket => p,
                _ if self.two_way(job, destination) => {
                    match self.two_way_delete(job, destination, dst, &head).await? {
                        Some(outcome) => return Ok(outcome),
                        None => continue,
                    }
                }
                _ => return Ok(Outcome::Skipped { reason: NOT_OURS }),
            };
            if replica.is_at_least(&job.source.bucket, job.sequencer()) == Some(true) {
                return Ok(Outcome::Skipped {
                    reason: "ReplicaNewer",
                });
            }
            let Some(etag) = head.e_tag() else {
                return Err(no_etag(destination, job));
            };
            match self
                .delete_if(dst, destination, &job.source.key, etag)
                .await
            {
                Ok(true) => return self.after_delete(job, destination, dst).await,
                Ok(false) => {}
                Err(e) if refused_for_its_lock(&e, &head) => return Ok(REPLICA_LOCKED),
                Err(e) => return Err(e),
            }
        }
        Err(ReplicationError::new(
            FailureReason::PreconditionFailed,
            format!(
                "the replica changed under each of {} deletes; retrying later",
                MAX_RECOPIES + 1
            ),
        ))
    }

    /// Whether the destination replicates back to this source, declared so: the
    /// document has an enabled rule from the destination bucket to this one (on this
    /// endpoint) for the key, or the destination says `TwoWay` (a pair deployed as two
    /// stacks). `ReplicaModifications` does not make a pair two-way: on S3 it syncs the
    /// metadata changes of replicas, and makes no rule delete the destination's own
    /// objects.
    pub(super) fn two_way(&self, job: &Job, destination: &Destination) -> bool {
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
        back || destination.two_way
    }

    /// Whether a change was made by this replicator itself (its own principals, as the
    /// event names who made the change).
    pub(super) fn made_by_us(&self, job: &Job) -> bool {
        let Some(requester) = job.source.requester.as_deref() else {
            return false;
        };
        self.own_principals.iter().any(|id| {
            requester == id
                || requester
                    .strip_prefix("AWS:")
                    .unwrap_or(requester)
                    .split(':')
                    .next()
                    == Some(id.as_str())
        })
    }

    /// Two-way replication (A <-> B): a delete in B of an object first written in A
    /// reaches A, as a delete marker placed in either bucket does on S3 — when a user
    /// made it. A delete this replicator made in B (replicating A's own delete) is
    /// never sent back: A may hold a new write by then. What a user's delete removes is
    /// an original of A, so it must be what B deleted: an object written before the
    /// delete (by modification time, to the second; S3's Last-Modified has no finer
    /// grain), and still the one read (If-Match). An object written at A after the
    /// delete, or in the same second, or that is a replica of a third bucket, stays;
    /// so does every object when the event has no time. `None`: the object changed
    /// under the delete, look again.
    pub(super) async fn two_way_delete(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        head: &HeadObjectOutput,
    ) -> Result<Option<Outcome>, ReplicationError> {
        if self.made_by_us(job) {
            return Ok(Some(Outcome::Skipped {
                reason: "DeletedByReplication",
            }));
        }
        let deleted_at = job.source.event_time.as_deref().and_then(|t| {
            aws_smithy_types::DateTime::from_str(t, aws_smithy_types::date_time::Format::DateTime)
                .ok()
        });
        let not_ours = Outcome::Skipped { reason: NOT_OURS };
        let Some(deleted_at) = deleted_at else {
            return Ok(Some(not_ours));
        };
        if replica_provenance(self, head, destination, &job.source.key).is_some() {
            return Ok(Some(not_ours));
        }
        let Some(modified) = head.last_modified() else {
            return Ok(Some(not_ours));
        };
        if modified.secs() + 1 > deleted_at.secs() {
            return Ok(Some(Outcome::Skipped {
                reason: "DestinationObjectNewer",
            }));
        }
        let Some(etag) = head.e_tag() else {
            return Err(no_etag(destination, job));
        };
        if !self
            .delete_if(dst, destination, &job.source.key, etag)
            .await?
        {
            return Ok(None);
        }
        // If the source holds the key again, the other side becomes a copy of it.
        self.after_delete(job, destination, dst).await.map(Some)
    }

    /// Makes the replica what the source holds now: a copy of the current version, or
    /// no replica when there is none.
    pub(super) async fn reconcile(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        self.converge(job, destination, dst, Aim::Current, None)
            .await
    }

    /// After a delete, the source is looked at once more: a put that raced this delete
    /// may have written an object the delete just removed. If the source holds an
    /// object now, the replica becomes a copy of it again.
    async fn after_delete(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        match copy::head_source(&self.s3.source, job).await? {
            Some(_) => Box::pin(self.converge(job, destination, dst, Aim::Current, None)).await,
            None => Ok(Outcome::Deleted),
        }
    }
}

fn no_etag(destination: &Destination, job: &Job) -> ReplicationError {
    ReplicationError::new(
        FailureReason::InvalidRequest,
        format!(
            "the destination {} answers a HEAD of {:?} without an ETag: a delete cannot be made conditional on it",
            destination.bucket, job.source.key
        ),
    )
}
