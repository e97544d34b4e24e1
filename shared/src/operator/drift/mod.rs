//! The drift report: each source listed beside each of its destinations, in key order,
//! and every difference named. Listings are merged, not HEADed key by key: an object
//! costs a share of a LIST on each side, and a HEAD only when something is off (a
//! missing object's source, to say whether S3 would have replicated it; an object
//! only at the destination, to say whether this source made it; a pair whose ETags
//! cannot be compared, as a multipart replica's or another provider's, to compare
//! checksums and the provenance instead).
//!
//! Each prefix a rule covers that holds more than a page is split at its first `/`
//! into shards compared at once.
//!
//! A source bucket with Object Lock enabled costs more: listings do not show a
//! version's retention or legal hold, so every pair found on both sides is HEADed on
//! both (two HEADs per object), and a replica whose lock is weaker than its source's,
//! or whose legal hold differs, is drift.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;

use futures::{stream, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::config::clients::S3Clients;
use crate::config::{Config, Destination, SourceBucket};
use crate::errors::{ReplicationError, S3Step, ScanError};
use crate::events::Change;
use crate::ingest::Ingest;
use crate::listing::list::Listed;
use crate::operator::backfill::{self, Scope};
use crate::queues::job::Job;

mod listing;
mod look;

use listing::Listing;
use look::Look;

/// Shards of one prefix compared at once.
const SHARDS_AT_ONCE: usize = 8;
/// Keys that need a look of their own (a HEAD, a tag read), looked at once.
const LOOKS_AT_ONCE: usize = 16;
/// Keys set aside for a look before they are looked at, so memory stays bounded.
const LOOKS_PER_ROUND: usize = 256;
/// Keys a table shows per kind of difference; `--output json` lists them all.
pub const SHOWN: usize = 20;

/// Objects listed so far, for a progress line.
#[derive(Debug, Default)]
pub struct Progress {
    pub source: AtomicU64,
    pub destination: AtomicU64,
}

/// One key that differs, and how.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Drifted {
    pub key: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A source beside one destination.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DestinationReport {
    pub source_bucket: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub in_sync: u64,
    /// Selected by a rule, replicable, and not at the destination.
    pub missing: Vec<Drifted>,
    /// At the destination with another size, or another ETag and an older write.
    pub differs: Vec<Drifted>,
    /// Replicas this source made whose source object is gone.
    pub extra: Vec<Drifted>,
    /// Replicas whose Object Lock is weaker than their source's (a shorter retention,
    /// a weaker mode) or whose legal hold differs.
    pub locks: Vec<Drifted>,
    /// Source objects a rule selects that S3 would not replicate either, by reason.
    pub not_replicated: BTreeMap<String, u64>,
    /// Objects at the destination this source did not make: never called extra.
    pub not_ours: u64,
    /// Jobs `--repair` queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_jobs: Option<u64>,
}

impl DestinationReport {
    pub fn drifts(&self) -> bool {
        !(self.missing.is_empty()
            && self.differs.is_empty()
            && self.extra.is_empty()
            && self.locks.is_empty())
    }

    fn absorb(&mut self, other: DestinationReport) {
        self.in_sync += other.in_sync;
        self.missing.extend(other.missing);
        self.differs.extend(other.differs);
        self.extra.extend(other.extra);
        self.locks.extend(other.locks);
        for (reason, n) in other.not_replicated {
            *self.not_replicated.entry(reason).or_default() += n;
        }
        self.not_ours += other.not_ours;
    }

    fn sort(&mut self) {
        for list in [
            &mut self.missing,
            &mut self.differs,
            &mut self.extra,
            &mut self.locks,
        ] {
            list.sort_by(|a, b| a.key.cmp(&b.key));
        }
    }
}

/// What the comparison needs: the rules (through ingest, which decides exactly as for
/// events) and a client per endpoint.
pub struct Drift<'a> {
    pub config: &'a Config,
    pub ingest: &'a Ingest,
    pub clients: &'a S3Clients,
    pub progress: &'a Progress,
}

/// One source bucket beside one destination.
struct Pair<'a> {
    source: &'a SourceBucket,
    destination: &'a Destination,
    prefixes: Vec<String>,
    dst: &'a aws_sdk_s3::Client,
    /// The source bucket has Object Lock: replicas' locks are compared too.
    locked: bool,
}

/// What the two listings say of a key found on both sides.
#[derive(Debug, PartialEq)]
enum Listings {
    InSync,
    Differ(String),
    LookCloser,
}

impl Drift<'_> {
    /// Compares every source in scope with each of its destinations; with `repair`,
    /// queues the jobs that fix each difference (deletes only where the rule's delete
    /// mode allows them).
    pub async fn run(
        &self,
        scope: &Scope,
        repair: bool,
    ) -> Result<Vec<DestinationReport>, ScanError> {
        let mut reports = Vec::new();
        for mut pair in self.pairs(scope)? {
            pair.locked = self.source_locked(&pair.source.bucket).await;
            let mut report = self.compare(&pair).await?;
            report.sort();
            if repair {
                report.repair_jobs = Some(self.repair(&pair, &report).await?);
            }
            reports.push(report);
        }
        Ok(reports)
    }

    fn pairs(&self, scope: &Scope) -> Result<Vec<Pair<'_>>, ScanError> {
        // The same checks and prefixes as a backfill of this scope.
        let tasks = backfill::root_tasks(self.config, scope, "verify")?;
        let mut pairs: Vec<Pair> = Vec::new();
        for source in &self.config.sources {
            if !tasks.iter().any(|t| t.bucket == source.bucket) {
                continue;
            }
            let mut seen: BTreeSet<(String, Option<String>)> = BTreeSet::new();
            for rule in source
                .rules
                .iter()
                .filter(|r| r.enabled && scope.rule.as_ref().is_none_or(|id| &r.id == id))
            {
                let d = &rule.destination;
                if !seen.insert((d.bucket.clone(), d.endpoint.endpoint_url.clone())) {
                    continue;
                }
                let same_destination = source.rules.iter().filter(|r| {
                    r.enabled
                        && r.destination.bucket == d.bucket
                        && r.destination.endpoint == d.endpoint
                });
                let prefixes = backfill::covering(
                    same_destination.map(|r| r.filter.prefix.as_str()).collect(),
                    scope.prefix.as_deref().unwrap_or(""),
                );
                let dst = self.clients.for_destination(&d.endpoint).ok_or_else(|| {
                    ScanError::Scope(format!(
                        "no client for the endpoint of destination {}",
                        d.bucket
                    ))
                })?;
                pairs.push(Pair {
                    source,
                    destination: d,
                    prefixes,
                    dst,
                    locked: false,
                });
            }
        }
        Ok(pairs)
    }

    async fn compare(&self, pair: &Pair<'_>) -> Result<DestinationReport, ScanError> {
        let mut report = DestinationReport {
            source_bucket: pair.source.bucket.clone(),
            destination: pair.destination.bucket.clone(),
            endpoint: pair.destination.endpoint.endpoint_url.clone(),
            ..DestinationReport::default()
        };
        let src = &self.ingest.s3;
        for prefix in &pair.prefixes {
            // What fits in one page is compared in one go: sharding it would cost a
            // LIST per folder on each side for nothing.
            // Both sides' first pages at once.
            let (probe, probe_there) = tokio::join!(
                crate::listing::list::page(src, &pair.source.bucket, prefix, false, None),
                crate::listing::list::page(pair.dst, &pair.destination.bucket, prefix, false, None)
            );
            let probe = probe.map_err(ScanError::Listing)?;
            if probe.next.is_none() {
                let mut here = Listing::new(
                    src,
                    &pair.source.bucket,
                    prefix,
                    false,
                    &self.progress.source,
                )
                .starting_with(probe);
                let there = Listing::new(
                    pair.dst,
                    &pair.destination.bucket,
                    prefix,
                    false,
                    &self.progress.destination,
                );
                let mut there = match probe_there {
                    Ok(page) => there.starting_with(page),
                    Err(_) => there,
                };
                report.absorb(self.merge(pair, &mut here, &mut there).await?);
                continue;
            }
            let mut here = Listing::new(
                src,
                &pair.source.bucket,
                prefix,
                true,
                &self.progress.source,
            );
            let mut there = Listing::new(
                pair.dst,
                &pair.destination.bucket,
                prefix,
                true,
                &self.progress.destination,
            );
            report.absorb(self.merge(pair, &mut here, &mut there).await?);
            let shards: BTreeSet<String> = here.prefixes.union(&there.prefixes).cloned().collect();
            let parts: Vec<DestinationReport> = stream::iter(shards)
                .map(|shard| async move {
                    let mut here = Listing::new(
                        src,
                        &pair.source.bucket,
                        &shard,
                        false,
                        &self.progress.source,
                    );
                    let mut there = Listing::new(
                        pair.dst,
                        &pair.destination.bucket,
                        &shard,
                        false,
                        &self.progress.destination,
                    );
                    self.merge(pair, &mut here, &mut there).await
                })
                .buffer_unordered(SHARDS_AT_ONCE)
                .try_collect()
                .await?;
            for part in parts {
                report.absorb(part);
            }
        }
        Ok(report)
    }

    /// Walks two listings side by side.
    async fn merge(
        &self,
        pair: &Pair<'_>,
        here: &mut Listing<'_>,
        there: &mut Listing<'_>,
    ) -> Result<DestinationReport, ScanError> {
        let mut report = DestinationReport::default();
        let mut looks = Vec::new();
        loop {
            let a = here
                .peek()
                .await
                .map_err(ScanError::Listing)?
                .map(|l| l.key.clone());
            let b = there
                .peek()
                .await
                .map_err(ScanError::Listing)?
                .map(|l| l.key.clone());
            match (a, b) {
                (None, None) => break,
                (Some(a), Some(b)) if a == b => {
                    let s = here
                        .next()
                        .await
                        .map_err(ScanError::Listing)?
                        .expect("peeked");
                    let d = there
                        .next()
                        .await
                        .map_err(ScanError::Listing)?
                        .expect("peeked");
                    match compare_listed(&s, &d) {
                        Listings::InSync if pair.locked => looks.push(Look::Lock(s)),
                        Listings::InSync => report.in_sync += 1,
                        Listings::Differ(why) => report.differs.push(Drifted {
                            key: s.key,
                            size: s.size,
                            why: Some(why),
                        }),
                        Listings::LookCloser => looks.push(Look::Unsure(s)),
                    }
                }
                (Some(a), b) if b.as_ref().is_none_or(|b| &a < b) => {
                    let s = here
                        .next()
                        .await
                        .map_err(ScanError::Listing)?
                        .expect("peeked");
                    looks.push(Look::OnlyAtSource(s));
                }
                _ => {
                    let d = there
                        .next()
                        .await
                        .map_err(ScanError::Listing)?
                        .expect("peeked");
                    looks.push(Look::OnlyAtDestination(d));
                }
            }
            if looks.len() >= LOOKS_PER_ROUND {
                self.look(pair, std::mem::take(&mut looks), &mut report)
                    .await?;
            }
        }
        self.look(pair, looks, &mut report).await?;
        Ok(report)
    }

    /// Queues a put for each missing or differing key, a delete for each extra one
    /// where the rule replicates deletes, and a lock change for each replica whose lock
    /// falls short. Returns the jobs sent.
    async fn repair(&self, pair: &Pair<'_>, report: &DestinationReport) -> Result<u64, ScanError> {
        let puts = report
            .missing
            .iter()
            .chain(&report.differs)
            .map(|d| (d, Change::Created));
        let deletes = report.extra.iter().map(|d| (d, Change::DeleteMarker));
        let locks = report.locks.iter().map(|d| (d, Change::LockChanged));
        let jobs: Vec<Job> = stream::iter(puts.chain(deletes).chain(locks))
            .map(|(d, change)| self.job_here(pair, &d.key, change))
            .buffered(LOOKS_AT_ONCE)
            .try_collect::<Vec<Option<Job>>>()
            .await
            .map_err(ScanError::Listing)?
            .into_iter()
            .flatten()
            .collect();
        self.ingest.send(&jobs).await.map_err(ScanError::Queue)?;
        Ok(jobs.len() as u64)
    }
}

/// Why a replica differs from its source, if it does: by size; or by ETag when it was
/// also written before the source was (a later write with another ETag is a multipart,
/// encrypted or other provider's copy of the same bytes).
fn compare_listed(source: &Listed, replica: &Listed) -> Listings {
    if source.size != replica.size {
        return Listings::Differ(format!(
            "size {} at the source, {} at the destination",
            source.size, replica.size
        ));
    }
    let unquote = |e: &Option<String>| e.as_deref().map(|e| e.trim_matches('"').to_string());
    if unquote(&source.etag) == unquote(&replica.etag) {
        return Listings::InSync;
    }
    match (source.last_modified, replica.last_modified) {
        (Some(s), Some(r)) if r >= s => Listings::LookCloser,
        _ => Listings::Differ(
            "another ETag, written before the source was last modified".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::primitives::DateTime;

    fn listed(size: u64, etag: &str, modified: i64) -> Listed {
        Listed {
            key: "k".into(),
            size,
            etag: Some(format!("\"{etag}\"")),
            last_modified: Some(DateTime::from_secs(modified)),
            archived: false,
        }
    }

    #[test]
    fn a_replica_differs_by_size_or_by_an_older_other_etag() {
        let differs = |s, r| match compare_listed(&s, &r) {
            Listings::Differ(why) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            compare_listed(&listed(5, "a", 10), &listed(5, "a", 5)),
            Listings::InSync
        );
        // Not comparable from the listings alone: the HEADs decide.
        assert_eq!(
            compare_listed(&listed(5, "a", 10), &listed(5, "b-2", 11)),
            Listings::LookCloser
        );
        assert!(differs(listed(5, "a", 10), listed(5, "b", 9)).contains("ETag"));
        assert!(differs(listed(5, "a", 10), listed(6, "a", 11)).contains("size 5"));
    }
}
