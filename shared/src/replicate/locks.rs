//! Object Lock changes made at the source after the copy (a retention extended, a
//! legal hold placed or lifted): the replica of the source's current version is given
//! its retention and legal hold, never weaker than it holds already. S3 sends no
//! notification for these changes; `verify` finds them and `--repair` sends the jobs.

use super::copying::Aim;
use super::{replica_head, replica_provenance, Replicator, SOURCE_DELETED};
use crate::config::Destination;
use crate::copy::lock::{self, Lock};
use crate::copy::{self, Outcome};
use crate::errors::ReplicationError;
use crate::queues::job::Job;

impl Replicator {
    pub(super) async fn sync_lock(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        let (source, replica) = tokio::join!(
            copy::head_source(&self.s3.source, job),
            replica_head(dst, destination, &job.source.key)
        );
        let Some(source) = source? else {
            return Ok(SOURCE_DELETED);
        };
        // A replica of another version, or none: copying the current one carries its
        // lock with it.
        let current = replica?.filter(|replica| {
            replica_provenance(self, replica, destination, &job.source.key).is_some_and(|p| {
                p.source_bucket == job.source.bucket
                    && match (p.version_id.as_deref(), source.head.version_id()) {
                        (Some(made), Some(now)) if now != "null" => made == now,
                        _ => replica.content_length() == source.head.content_length(),
                    }
            })
        });
        let Some(replica) = current else {
            return Box::pin(self.converge(job, destination, dst, Aim::Current, None)).await;
        };
        let wanted = Lock::of(&source.head);
        let changes = wanted.to_apply(&Lock::of(&replica));
        if changes.is_empty() {
            return Ok(Outcome::Skipped {
                reason: "LockUnchanged",
            });
        }
        if wanted.is_some() {
            self.locks.require(dst, destination).await?;
        }
        lock::apply(
            dst,
            destination,
            &job.source.key,
            replica.version_id(),
            &changes,
        )
        .await?;
        Ok(Outcome::Updated)
    }
}
