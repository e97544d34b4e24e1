//! Object Lock: an object version's retention (mode and retain-until date) and legal
//! hold. S3's replication carries both to the replica, over the destination bucket's
//! default retention, and requires Object Lock on the destination when the source
//! has it; so does this replicator, and a replica's lock is never weaker than its
//! source's: a retention is never shortened nor its mode weakened.
//!
//! The lock travels with the write (`x-amz-object-lock-*` on CopyObject, PutObject
//! and CreateMultipartUpload). Where a server refuses the headers on a copy (moto asks
//! for a Content-MD5 no copy can send), or drops them (moto's multipart uploads), the
//! replica's lock is set right after with PutObjectRetention and PutObjectLegalHold.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode,
};
use aws_sdk_s3::Client;

use crate::config::Destination;
use crate::errors::{error_code, FailureReason, ReplicationError, S3Step};

/// One object version's Object Lock, as a HEAD shows it (given s3:GetObjectRetention
/// and s3:GetObjectLegalHold; without them S3 leaves the fields out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lock {
    pub mode: Option<ObjectLockMode>,
    pub retain_until: Option<DateTime>,
    pub legal_hold: bool,
}

/// What a replica lacks of its source's lock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LockChanges {
    /// The retention to set: the stronger mode and the later date of the two.
    pub retention: Option<(ObjectLockMode, DateTime)>,
    /// The legal hold to set, when it differs.
    pub legal_hold: Option<bool>,
}

impl LockChanges {
    pub fn is_empty(&self) -> bool {
        self.retention.is_none() && self.legal_hold.is_none()
    }
}

fn strength(mode: Option<&ObjectLockMode>) -> u8 {
    match mode {
        Some(ObjectLockMode::Compliance) => 2,
        Some(ObjectLockMode::Governance) => 1,
        _ => 0,
    }
}

impl Lock {
    /// The lock a HEAD shows, less a retention that has run out: it protects nothing,
    /// and S3 refuses a write whose retain-until date is past.
    pub fn of(head: &HeadObjectOutput) -> Lock {
        let now = DateTime::from(std::time::SystemTime::now()).secs();
        let until = head
            .object_lock_retain_until_date()
            .copied()
            .filter(|until| until.secs() > now);
        Lock {
            mode: until.and(head.object_lock_mode().cloned()),
            retain_until: until.filter(|_| head.object_lock_mode().is_some()),
            legal_hold: head.object_lock_legal_hold_status()
                == Some(&ObjectLockLegalHoldStatus::On),
        }
    }

    /// Whether the version is locked (a retention not run out, or a legal hold): its
    /// replica must be written where Object Lock is enabled, and locked the same.
    pub fn is_some(&self) -> bool {
        self.retention().is_some() || self.legal_hold
    }

    fn retention(&self) -> Option<(&ObjectLockMode, DateTime)> {
        Some((self.mode.as_ref()?, self.retain_until?))
    }

    /// What `replica` must be given to hold this lock: a retention where its own is
    /// weaker or shorter (never shortening or weakening it), and the legal hold where
    /// it differs (placed or lifted).
    pub fn to_apply(&self, replica: &Lock) -> LockChanges {
        let retention = self.retention().and_then(|(mode, until)| {
            let weaker = strength(replica.mode.as_ref()) < strength(Some(mode));
            let shorter = replica.retain_until.is_none_or(|r| r.secs() < until.secs());
            (weaker || shorter).then(|| {
                let mode = if strength(replica.mode.as_ref()) > strength(Some(mode)) {
                    replica.mode.clone().unwrap_or(mode.clone())
                } else {
                    mode.clone()
                };
                let until = match replica.retain_until {
                    Some(r) if r.secs() > until.secs() => r,
                    _ => until,
                };
                (mode, until)
            })
        });
        LockChanges {
            retention,
            legal_hold: (self.legal_hold != replica.legal_hold).then_some(self.legal_hold),
        }
    }

    /// `GOVERNANCE until 2030-01-01T00:00:00Z, legal hold`, or `none`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((mode, until)) = self.retention() {
            let until = until
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap_or_default();
            parts.push(format!("{} until {until}", mode.as_str()));
        }
        if self.legal_hold {
            parts.push("legal hold".into());
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Sets what a replica version lacks of its source's lock: PutObjectRetention and
/// PutObjectLegalHold, each only when needed.
pub async fn apply(
    dst: &Client,
    destination: &Destination,
    key: &str,
    version_id: Option<&str>,
    changes: &LockChanges,
) -> Result<(), ReplicationError> {
    if let Some((mode, until)) = &changes.retention {
        let retention = ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::from(mode.as_str()))
            .retain_until_date(*until)
            .build();
        dst.put_object_retention()
            .bucket(&destination.bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .retention(retention)
            .send()
            .await
            .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationLock, &e))?;
    }
    if let Some(on) = changes.legal_hold {
        let status = if on {
            ObjectLockLegalHoldStatus::On
        } else {
            ObjectLockLegalHoldStatus::Off
        };
        dst.put_object_legal_hold()
            .bucket(&destination.bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationLock, &e))?;
    }
    Ok(())
}

/// Whether a server refused a write for its lock headers rather than for what it is:
/// moto's CopyObject asks for a Content-MD5 a copy has no body to compute.
pub fn refused_lock_headers<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    error_code(err) == Some("MissingUploadObjectWithObjectLockHeaders")
}

/// Which destination buckets have Object Lock enabled, asked once per bucket per
/// process (GetObjectLockConfiguration), and only for a locked source version.
#[derive(Debug, Default)]
pub struct LockSupport {
    known: Mutex<HashMap<String, bool>>,
}

impl LockSupport {
    /// Refuses (permanently: a retry cannot help) a locked version's replica toward a
    /// bucket without Object Lock, as S3 refuses such a replication configuration.
    pub async fn require(
        &self,
        dst: &Client,
        destination: &Destination,
    ) -> Result<(), ReplicationError> {
        let bucket = &destination.bucket;
        let known = self
            .known
            .lock()
            .expect("lock support")
            .get(bucket)
            .copied();
        let enabled = match known {
            Some(enabled) => enabled,
            None => {
                let enabled = bucket_lock_enabled(dst, bucket).await?;
                self.known
                    .lock()
                    .expect("lock support")
                    .insert(bucket.clone(), enabled);
                enabled
            }
        };
        if enabled {
            return Ok(());
        }
        Err(ReplicationError::new(
            FailureReason::DstObjectLockNotEnabled,
            format!(
                "the source version is locked (Object Lock) and {bucket} has no Object Lock: \
                 a replica there could be deleted or overwritten. Create the destination with \
                 Object Lock enabled, as S3's own replication requires"
            ),
        ))
    }
}

/// Whether a bucket has Object Lock enabled.
pub async fn bucket_lock_enabled(s3: &Client, bucket: &str) -> Result<bool, ReplicationError> {
    match s3
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            == Some(&ObjectLockEnabled::Enabled)),
        Err(e) if error_code(&e) == Some("ObjectLockConfigurationNotFoundError") => Ok(false),
        Err(e) => Err(ReplicationError::from_sdk(S3Step::DestinationLock, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(mode: Option<ObjectLockMode>, days: Option<i64>, hold: bool) -> Lock {
        Lock {
            mode,
            retain_until: days.map(|d| DateTime::from_secs(1_900_000_000 + d * 86_400)),
            legal_hold: hold,
        }
    }

    #[test]
    fn a_replica_is_given_what_it_lacks_and_never_less_than_it_has() {
        use ObjectLockMode::{Compliance as C, Governance as G};
        let source = lock(Some(G), Some(10), true);
        // Nothing yet: all of it.
        let all = source.to_apply(&Lock::default());
        assert_eq!(all.retention, Some((G, source.retain_until.unwrap())));
        assert_eq!(all.legal_hold, Some(true));
        // The same: nothing.
        assert!(source.to_apply(&source).is_empty());
        // A longer or stronger replica keeps what it has.
        assert!(source.to_apply(&lock(Some(G), Some(20), true)).is_empty());
        assert!(source.to_apply(&lock(Some(C), Some(10), true)).is_empty());
        // Extended at the source: extended at the replica, its stronger mode kept.
        let extended = lock(Some(G), Some(30), false).to_apply(&lock(Some(C), Some(10), false));
        assert_eq!(
            extended.retention,
            Some((C, DateTime::from_secs(1_900_000_000 + 30 * 86_400)))
        );
        // A stronger mode at the source, with a shorter date: the mode, not the date.
        let stronger = lock(Some(C), Some(5), false).to_apply(&lock(Some(G), Some(10), false));
        assert_eq!(
            stronger.retention,
            Some((C, DateTime::from_secs(1_900_000_000 + 10 * 86_400)))
        );
        // A hold lifted at the source is lifted at the replica.
        assert_eq!(
            lock(None, None, false)
                .to_apply(&lock(None, None, true))
                .legal_hold,
            Some(false)
        );
        assert!(!Lock::default().is_some());
        assert!(lock(None, None, true).is_some());
        assert_eq!(Lock::default().describe(), "none");
        assert!(source.describe().starts_with("GOVERNANCE until 2030-"));
    }

    #[test]
    fn a_retention_run_out_is_no_lock() {
        let head = |until: i64, hold: bool| {
            HeadObjectOutput::builder()
                .object_lock_mode(ObjectLockMode::Governance)
                .object_lock_retain_until_date(DateTime::from_secs(until))
                .set_object_lock_legal_hold_status(hold.then_some(ObjectLockLegalHoldStatus::On))
                .build()
        };
        let now = DateTime::from(std::time::SystemTime::now()).secs();
        // Past: nothing to carry (S3 would refuse the date), unless a legal hold.
        assert!(!Lock::of(&head(now - 60, false)).is_some());
        let held = Lock::of(&head(now - 60, true));
        assert_eq!(
            (held.mode, held.retain_until, held.legal_hold),
            (None, None, true)
        );
        let kept = Lock::of(&head(now + 60, false));
        assert_eq!(kept.mode, Some(ObjectLockMode::Governance));
        assert!(kept.is_some());
    }
}
