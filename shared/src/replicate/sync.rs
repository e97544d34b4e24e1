//! Tag and ACL changes: the replica's are brought in line without copying bytes.

use aws_sdk_s3::types::{ObjectCannedAcl, Tagging};

use super::{Replicator, MAX_RECOPIES, SOURCE_DELETED, SOURCE_DELETED_REASON};
use crate::config::{AclMode, Destination, Rule};
use crate::copy::{self, Outcome};
use crate::errors::is_not_found;
use crate::errors::{FailureReason, ReplicationError, S3Step};
use crate::queues::job::{Job, Operation};

impl Replicator {
    /// A tag or ACL change made to a replica goes back only under a rule that syncs
    /// replica modifications (S3's ReplicaModifications), and then only tags, which are
    /// compared before they are written so two-way sync settles. Toward another
    /// endpoint one HEAD of the source says whether it is a replica. On one endpoint
    /// nothing is needed: ingest already reads the object when the document lets its
    /// destination replicate back, and a replica's change sent anywhere else finds no
    /// replica there and stops at the copy's own checks.
    pub(super) async fn modification_not_synced(
        &self,
        job: &Job,
        rule: &Rule,
    ) -> Result<Option<&'static str>, ReplicationError> {
        let synced = job.op == Operation::Tags && rule.replica_modifications;
        if synced || rule.destination.is_same_endpoint() {
            return Ok(None);
        }
        Ok(match copy::head_source(&self.s3.source, job).await? {
            None => Some(SOURCE_DELETED_REASON),
            Some(state)
                if state
                    .own_provenance(
                        crate::copy::provenance::Holder {
                            bucket: &job.source.bucket,
                            key: &job.source.key,
                        },
                        &self.signer,
                    )
                    .is_some() =>
            {
                Some("ReplicaModificationNotSynced")
            }
            Some(_) => None,
        })
    }

    /// Tag changes: the replica's tags become the source's, no bytes copied. Tags are
    /// written without a condition (S3 has none for them), so the source's are read
    /// again after: a put that copied newer tags between the read and the write would
    /// otherwise be overwritten with older ones. A change since is written in turn.
    pub(super) async fn sync_tags(
        &self,
        job: &Job,
        rule: &Rule,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, SyncError> {
        let Some(mut tags) = self.source_tags(job).await.map_err(Failed)? else {
            return Ok(SOURCE_DELETED);
        };
        // A rule that syncs replica modifications is one half of two-way replication:
        // writing unchanged tags would raise an event on the other side, and so on
        // forever. Compare first, and write only a change.
        if rule.replica_modifications {
            let replica = dst
                .get_object_tagging()
                .bucket(&rule.destination.bucket)
                .key(&job.source.key)
                .send()
                .await
                .map_err(|e| SyncError::from_destination(S3Step::DestinationTagging, &e))?;
            if same_tags(replica.tag_set(), &tags) {
                return Ok(Outcome::Skipped {
                    reason: "TagsUnchanged",
                });
            }
        }
        for _ in 0..=MAX_RECOPIES {
            self.write_tags(job, &rule.destination, dst, &tags).await?;
            match self.source_tags(job).await.map_err(Failed)? {
                Some(now) if !same_tags(&now, &tags) => tags = now,
                // Unchanged, or deleted since (its own job settles the replica).
                _ => return Ok(Outcome::Updated),
            }
        }
        Err(Failed(ReplicationError::new(
            FailureReason::PreconditionFailed,
            "the source's tags kept changing while they were copied",
        )))
    }

    /// The source's tags now; `None` when the object is gone.
    async fn source_tags(
        &self,
        job: &Job,
    ) -> Result<Option<Vec<aws_sdk_s3::types::Tag>>, ReplicationError> {
        let result = self
            .s3
            .source
            .get_object_tagging()
            .bucket(&job.source.bucket)
            .key(&job.source.key)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(out.tag_set().to_vec())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(ReplicationError::from_sdk(S3Step::SourceTagging, &e)),
        }
    }

    async fn write_tags(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        tags: &[aws_sdk_s3::types::Tag],
    ) -> Result<(), SyncError> {
        let step = S3Step::DestinationTagging;
        if tags.is_empty() {
            dst.delete_object_tagging()
                .bucket(&destination.bucket)
                .key(&job.source.key)
                .send()
                .await
                .map_err(|e| SyncError::from_destination(step, &e))?;
            return Ok(());
        }
        let tagging = Tagging::builder()
            .set_tag_set(Some(tags.to_vec()))
            .build()
            .map_err(|e| {
                Failed(ReplicationError::new(
                    FailureReason::InvalidRequest,
                    e.to_string(),
                ))
            })?;
        dst.put_object_tagging()
            .bucket(&destination.bucket)
            .key(&job.source.key)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| SyncError::from_destination(step, &e))?;
        Ok(())
    }

    /// ACL changes: the replica's ACL becomes what the mode says, no bytes copied.
    pub(super) async fn sync_acl(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, SyncError> {
        let step = S3Step::DestinationAcl;
        // A bucket with ACLs disabled (Object Ownership "bucket owner enforced") has no
        // object ACL to set (the copy path writes none there either): S3 says so.
        let disabled = Outcome::Skipped {
            reason: "DestinationAclsDisabled",
        };
        let request = dst
            .put_object_acl()
            .bucket(&destination.bucket)
            .key(&job.source.key);
        let request = match destination.acl_mode {
            AclMode::None => {
                return Ok(Outcome::Skipped {
                    reason: "AclModeNone",
                })
            }
            AclMode::OwnerOverride => request.acl(ObjectCannedAcl::BucketOwnerFullControl),
            AclMode::Copy => match self.grants_to_copy(job, destination, dst, None).await {
                Ok(Some(g)) => request
                    .set_grant_full_control(g.full_control)
                    .set_grant_read(g.read)
                    .set_grant_read_acp(g.read_acp)
                    .set_grant_write_acp(g.write_acp),
                Ok(None) => request.acl(ObjectCannedAcl::Private),
                Err(e) => return Err(Failed(e)),
            },
        };
        match request.send().await {
            Ok(_) => Ok(Outcome::Updated),
            Err(e) if crate::errors::error_code(&e) == Some("AccessControlListNotSupported") => {
                Ok(disabled)
            }
            Err(e) => Err(SyncError::from_destination(step, &e)),
        }
    }
}

fn same_tags(a: &[aws_sdk_s3::types::Tag], b: &[aws_sdk_s3::types::Tag]) -> bool {
    let pairs = |tags: &[aws_sdk_s3::types::Tag]| {
        let mut v: Vec<(String, String)> = tags
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        v.sort();
        v
    };
    pairs(a) == pairs(b)
}

/// A tag or ACL sync either fails, or finds no replica to update yet.
pub(super) enum SyncError {
    ReplicaMissing,
    Failed(ReplicationError),
}
pub(super) use SyncError::{Failed, ReplicaMissing};

impl SyncError {
    fn from_destination<E>(
        step: S3Step,
        err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Self
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = match err {
            aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().code(),
            _ => None,
        };
        if code == Some("NoSuchKey") {
            ReplicaMissing
        } else {
            Failed(ReplicationError::from_sdk(step, err))
        }
    }
}
