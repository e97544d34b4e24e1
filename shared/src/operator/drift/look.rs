//! What a key the merge could not settle is: on one side only (missing, not replicated
//! and why, extra, or someone else's), or on both with ETags that cannot be compared.
//! Each costs a HEAD or two, a few at a time.

use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::*;
use crate::checksums_of;
use crate::copy::lock::Lock;
use crate::copy::provenance::{Holder, Provenance};
use crate::copy::SourceState;
use crate::errors::{http_status, is_not_found};
use crate::events::ObjectEvent;

/// A key found on one side only, to be looked at.
pub(super) enum Look {
    OnlyAtSource(Listed),
    OnlyAtDestination(Listed),
    /// The same size, other ETags, and a replica written after its source: a copy
    /// whose ETag is not comparable (multipart, encrypted, another provider's), or an
    /// object written over the replica.
    Unsure(Listed),
    /// In sync by the listings, from a source with Object Lock: the locks decide.
    Lock(Listed),
}

impl Drift<'_> {
    /// Decides what keys on one side only are: missing, not replicated (and why),
    /// outside every rule, extra, or someone else's.
    pub(super) async fn look(
        &self,
        pair: &Pair<'_>,
        looks: Vec<Look>,
        report: &mut DestinationReport,
    ) -> Result<(), ScanError> {
        let found: Vec<Option<(Option<&'static str>, Drifted)>> = stream::iter(looks)
            .map(|look| async move {
                match look {
                    Look::OnlyAtSource(s) => self.only_at_source(pair, s).await,
                    Look::OnlyAtDestination(d) => self.only_at_destination(pair, d).await,
                    Look::Unsure(s) => self.closer(pair, s).await,
                    Look::Lock(s) => self.lock_drift(pair, s).await,
                }
            })
            .buffered(LOOKS_AT_ONCE)
            .try_collect()
            .await
            .map_err(ScanError::Listing)?;
        for (kind, drifted) in found.into_iter().flatten() {
            match kind {
                Some("in-sync") => report.in_sync += 1,
                Some("differs") => report.differs.push(drifted),
                Some("missing") => report.missing.push(drifted),
                Some("extra") => report.extra.push(drifted),
                Some("lock") => report.locks.push(drifted),
                Some("not-ours") => report.not_ours += 1,
                Some(reason) => *report.not_replicated.entry(reason.to_string()).or_default() += 1,
                None => {}
            }
        }
        Ok(())
    }

    /// A source object with no counterpart: `None` when no rule sends it here.
    pub(super) async fn only_at_source(
        &self,
        pair: &Pair<'_>,
        s: Listed,
    ) -> Result<Option<(Option<&'static str>, Drifted)>, ReplicationError> {
        let drifted = Drifted {
            key: s.key.clone(),
            size: s.size,
            why: None,
        };
        let Some(job) = self.job_here(pair, &s.key, Change::Created).await? else {
            return Ok(None);
        };
        if s.archived {
            return Ok(Some((Some("ObjectInArchive"), drifted)));
        }
        let head = match self
            .ingest
            .s3
            .head_object()
            .bucket(&pair.source.bucket)
            .key(&s.key)
            .send()
            .await
        {
            Ok(head) => head,
            // Deleted since it was listed: nothing is missing.
            Err(e) if is_not_found(&e) => return Ok(None),
            // An SSE-C object answers its HEAD with a bare 400.
            Err(e) if http_status(&e) == Some(400) => {
                return Ok(Some((Some("SseCustomerKeyEncrypted"), drifted)))
            }
            Err(e) => return Err(ReplicationError::from_sdk(S3Step::SourceHead, &e)),
        };
        let state = SourceState::new(head);
        let rule = self
            .config
            .rule(&pair.source.bucket, &job.rule_id)
            .expect("the job's rule");
        if let Some(reason) = state.not_replicated(rule) {
            return Ok(Some((Some(reason), drifted)));
        }
        let holder = Holder {
            bucket: &pair.source.bucket,
            key: &job.source.key,
        };
        match state.own_provenance(holder, &self.ingest.signer) {
            Some(p) if p.came_from(&pair.destination.bucket) => {
                return Ok(Some((Some("ReplicaOfDestination"), drifted)))
            }
            Some(_) if !pair.destination.replicate_replicas => {
                return Ok(Some((Some("SourceIsReplica"), drifted)))
            }
            _ => {}
        }
        Ok(Some((Some("missing"), drifted)))
    }

    /// A pair the listings cannot settle (see [`Look::Unsure`]): the two HEADs, with
    /// checksums, say. A replica this source did not make, one made from an older
    /// version than the source's current one, or one whose full-object checksum
    /// differs from the source's differs; otherwise it is in sync.
    pub(super) async fn closer(
        &self,
        pair: &Pair<'_>,
        s: Listed,
    ) -> Result<Option<(Option<&'static str>, Drifted)>, ReplicationError> {
        let head = |s3: &aws_sdk_s3::Client, bucket: &str| {
            s3.head_object()
                .bucket(bucket)
                .key(&s.key)
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send()
        };
        let (source, replica) = tokio::join!(
            head(&self.ingest.s3, &pair.source.bucket),
            head(pair.dst, &pair.destination.bucket)
        );
        let gone = |e: &aws_sdk_s3::error::SdkError<HeadObjectError, HttpResponse>| is_not_found(e);
        let source = match source {
            Ok(head) => head,
            // Deleted since it was listed: its own event settles it.
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(ReplicationError::from_sdk(S3Step::SourceHead, &e)),
        };
        let replica = match replica {
            Ok(head) => head,
            Err(e) if gone(&e) => return self.only_at_source(pair, s).await,
            Err(e) => return Err(ReplicationError::from_sdk(S3Step::DestinationHead, &e)),
        };
        let why = |text: String| {
            Some((
                Some("differs"),
                Drifted {
                    key: s.key.clone(),
                    size: s.size,
                    why: Some(text),
                },
            ))
        };
        let holder = Holder {
            bucket: &pair.destination.bucket,
            key: &s.key,
        };
        let made = Provenance::read(replica.metadata(), holder, &self.ingest.signer);
        let Some(made) = made.filter(|p| p.source_bucket == pair.source.bucket) else {
            return Ok(why(
                "another ETag, and no record of this source: written at the destination"
                    .to_string(),
            ));
        };
        if let (Some(from), Some(now)) = (made.version_id.as_deref(), source.version_id()) {
            if now != "null" && from != now {
                return Ok(why(format!(
                    "made from version {from}; the source's current version is {now}"
                )));
            }
        }
        let (here, there) = (checksums_of!(&source), checksums_of!(&replica));
        if let Some((algorithm, value)) = crate::copy::verify::source_full_object(&source, &here) {
            if let Some(theirs) = there.get(&algorithm).filter(|v| !v.contains('-')) {
                if theirs != value {
                    return Ok(why(format!(
                        "{} {value} at the source, {theirs} at the destination",
                        crate::copy::verify::checksum_name(&algorithm)
                    )));
                }
            }
        }
        Ok(Some(lock_compared(pair, &source, &replica, s)))
    }

    /// A pair in sync by the listings, from a source with Object Lock: its two HEADs
    /// say whether the replica holds the source's lock.
    pub(super) async fn lock_drift(
        &self,
        pair: &Pair<'_>,
        s: Listed,
    ) -> Result<Option<(Option<&'static str>, Drifted)>, ReplicationError> {
        let head = |s3: &aws_sdk_s3::Client, bucket: &str| {
            s3.head_object().bucket(bucket).key(&s.key).send()
        };
        let (source, replica) = tokio::join!(
            head(&self.ingest.s3, &pair.source.bucket),
            head(pair.dst, &pair.destination.bucket)
        );
        let source = match source {
            Ok(head) => head,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(ReplicationError::from_sdk(S3Step::SourceHead, &e)),
        };
        let replica = match replica {
            Ok(head) => head,
            Err(e) if is_not_found(&e) => return self.only_at_source(pair, s).await,
            Err(e) => return Err(ReplicationError::from_sdk(S3Step::DestinationHead, &e)),
        };
        Ok(Some(lock_compared(pair, &source, &replica, s)))
    }

    /// Whether the source bucket has Object Lock (then locks are compared). A bucket
    /// whose configuration cannot be read is compared without them, and says so.
    pub(super) async fn source_locked(&self, bucket: &str) -> bool {
        match crate::copy::lock::bucket_lock_enabled(&self.ingest.s3, bucket).await {
            Ok(locked) => locked,
            Err(e) => {
                tracing::warn!(bucket = %bucket, error = %e,
                    "cannot read the bucket's Object Lock configuration; replicas' locks are not compared");
                false
            }
        }
    }

    /// A destination object with no source: extra when this source made it.
    pub(super) async fn only_at_destination(
        &self,
        pair: &Pair<'_>,
        d: Listed,
    ) -> Result<Option<(Option<&'static str>, Drifted)>, ReplicationError> {
        let drifted = Drifted {
            key: d.key.clone(),
            size: d.size,
            why: None,
        };
        let head = pair
            .dst
            .head_object()
            .bucket(&pair.destination.bucket)
            .key(&d.key)
            .send()
            .await;
        let provenance = match head {
            Ok(head) => {
                let holder = Holder {
                    bucket: &pair.destination.bucket,
                    key: &d.key,
                };
                Provenance::read(head.metadata(), holder, &self.ingest.signer)
            }
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(ReplicationError::from_sdk(S3Step::DestinationHead, &e)),
        };
        Ok(match provenance {
            Some(p) if p.source_bucket == pair.source.bucket => Some((Some("extra"), drifted)),
            _ => Some((Some("not-ours"), drifted)),
        })
    }

    /// The job the rules make of this change to this key for this destination, if any.
    pub(super) async fn job_here(
        &self,
        pair: &Pair<'_>,
        key: &str,
        change: Change,
    ) -> Result<Option<Job>, ReplicationError> {
        let event = ObjectEvent {
            change,
            bucket: pair.source.bucket.clone(),
            key: key.to_string(),
            version_id: None,
            etag: None,
            size: None,
            sequencer: None,
            event_time: None,
            requester: None,
            event_name: "Verify".to_string(),
        };
        let jobs = self
            .ingest
            .jobs_for(&event)
            .await
            .map_err(crate::listing::list::into_replication)?;
        let config = &self.ingest.config;
        Ok(jobs.into_iter().find(|j| {
            config.rule(&j.source.bucket, &j.rule_id).is_some_and(|r| {
                r.destination.bucket == pair.destination.bucket
                    && r.destination.endpoint == pair.destination.endpoint
            })
        }))
    }
}

/// In sync, or a replica whose lock falls short of its source's.
fn lock_compared(
    pair: &Pair<'_>,
    source: &HeadObjectOutput,
    replica: &HeadObjectOutput,
    s: Listed,
) -> (Option<&'static str>, Drifted) {
    let (wanted, held) = (Lock::of(source), Lock::of(replica));
    let short = pair.locked && !wanted.to_apply(&held).is_empty();
    let why = short.then(|| {
        format!(
            "lock {} at the source, {} at the destination",
            wanted.describe(),
            held.describe()
        )
    });
    let kind = if short { "lock" } else { "in-sync" };
    (
        Some(kind),
        Drifted {
            key: s.key,
            size: s.size,
            why,
        },
    )
}
