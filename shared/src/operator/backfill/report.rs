//! Where a backfill stands: `backfill status` reads the names of its record's parts
//! (see [`crate::listing::record`]), and once every queued job has an outcome, writes
//! the completion report.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::DateTime;
use serde::Serialize;

use crate::errors::{describe, ScanError};
use crate::listing::record::{
    parse_csv, put, report_csv, Manifest, PageCounts, ReportLocation, Row,
};

/// Where a backfill stands, from the names of its parts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub id: String,
    pub started: String,
    pub pages_listed: u64,
    pub pages_expected: u64,
    pub listed: u64,
    /// Jobs run or sent (one per object and destination whose replica was not
    /// already up to date).
    pub queued: u64,
    /// Replicas the destinations' listings showed up to date: no job at all.
    pub up_to_date: u64,
    /// Objects no job was made for (no rule, archived, outside the time window).
    pub skipped_at_listing: u64,
    pub replicated: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Seconds since it started.
    pub elapsed_s: u64,
    pub complete: bool,
    /// The completion report, once written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl Status {
    /// Jobs with an outcome recorded.
    pub fn finished_jobs(&self) -> u64 {
        self.replicated + self.skipped + self.failed
    }
}

/// Reads where a backfill stands; when its counts say it is complete, reads its parts,
/// checks that every queued job has an outcome, and writes the completion report (once).
pub async fn status(
    s3: &aws_sdk_s3::Client,
    at: &ReportLocation,
    id: &str,
) -> Result<Status, ScanError> {
    let base = at.base(id);
    let manifest_key = format!("{base}backfill.json");
    // One GET: a missing manifest is an unknown backfill, not a failure to read.
    let text = crate::config::objects::read_object(s3, &at.bucket, &manifest_key)
        .await
        .map_err(|e| ScanError::Scope(format!("reading {manifest_key}: {e}")))?
        .ok_or_else(|| ScanError::Scope(format!("no backfill {id} under {}", at.url())))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| ScanError::Scope(format!("{manifest_key} is not a backfill manifest: {e}")))?;
    let mut status = Status {
        id: id.to_string(),
        started: manifest.started.clone(),
        pages_expected: manifest.tasks,
        ..Status::default()
    };
    // A page recorded twice (its task ran twice): the latest record counts.
    let mut pages: BTreeMap<String, (DateTime, String, PageCounts)> = BTreeMap::new();
    let mut results: Vec<(DateTime, String)> = Vec::new();
    let mut report_written = false;
    for (key, modified) in list_keys(s3, &at.bucket, &base).await? {
        let name = &key[base.len().min(key.len())..];
        if let Some(page) = name.strip_prefix("pages/") {
            let Some((hash, counts)) = page.trim_end_matches(".csv").split_once('_') else {
                continue;
            };
            let n = numbers(counts);
            let counts = PageCounts {
                listed: n('l'),
                jobs: n('j'),
                up_to_date: n('u'),
                skipped: n('s'),
                children: n('c'),
            };
            let newer = pages
                .get(hash)
                .is_none_or(|(m, k, _)| (modified, &key) > (*m, k));
            if newer {
                pages.insert(hash.to_string(), (modified, key.clone(), counts));
            }
        } else if let Some(part) = name.strip_prefix("results/") {
            let Some((_, counts)) = part.trim_end_matches(".csv").split_once('_') else {
                continue;
            };
            let n = numbers(counts);
            status.replicated += n('r');
            status.skipped += n('s');
            status.failed += n('f');
            results.push((modified, key.clone()));
        } else if name == "report.csv" {
            report_written = true;
        }
    }
    for (_, _, page) in pages.values() {
        status.pages_listed += 1;
        status.pages_expected += page.children;
        status.listed += page.listed;
        status.queued += page.jobs;
        status.up_to_date += page.up_to_date;
        status.skipped_at_listing += page.skipped;
    }
    status.elapsed_s = DateTime::from_str(
        &manifest.started,
        aws_smithy_types::date_time::Format::DateTime,
    )
    .ok()
    .and_then(|t| {
        u64::try_from(DateTime::from(std::time::SystemTime::now()).secs() - t.secs()).ok()
    })
    .unwrap_or(0);
    let report_key = format!("{base}report.csv");
    if report_written {
        status.complete = true;
        status.report = Some(format!("s3://{}/{report_key}", at.bucket));
        return Ok(status);
    }
    if status.pages_listed < status.pages_expected || status.finished_jobs() < status.queued {
        return Ok(status);
    }
    // The counts say complete, but a job run twice counts twice: every queued row must
    // have an outcome. Outcomes are read oldest first, so the latest stands.
    let mut rows: BTreeMap<(String, String, String), Row> = BTreeMap::new();
    for (_, key, _) in pages.values() {
        for row in parse_csv(&read_text(s3, &at.bucket, key).await?) {
            rows.insert(
                (row.bucket.clone(), row.key.clone(), row.destination.clone()),
                row,
            );
        }
    }
    results.sort();
    for (_, key) in &results {
        for row in parse_csv(&read_text(s3, &at.bucket, key).await?) {
            let at_key = (row.bucket.clone(), row.key.clone(), row.destination.clone());
            // An outcome of a job no latest page queued (an earlier run of a page that
            // ran again and found it done) does not replace that page's row.
            if rows
                .get(&at_key)
                .is_none_or(|r| r.outcome != "skipped" || r.reason != "ReplicaUpToDate")
            {
                rows.insert(at_key, row);
            }
        }
    }
    if rows.values().any(|r| r.outcome == "queued") {
        return Ok(status);
    }
    let rows: Vec<Row> = rows.into_values().collect();
    let mut by_outcome: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for row in &rows {
        *by_outcome
            .entry(row.outcome.clone())
            .or_default()
            .entry(row.reason.clone())
            .or_default() += 1;
    }
    put(s3, &at.bucket, &report_key, report_csv(&rows), "text/csv")
        .await
        .map_err(ScanError::Scope)?;
    status.complete = true;
    status.report = Some(format!("s3://{}/{report_key}", at.bucket));
    let summary =
        serde_json::json!({"status": status, "objects": rows.len(), "by_outcome": by_outcome});
    put(
        s3,
        &at.bucket,
        &format!("{base}report.json"),
        serde_json::to_string_pretty(&summary).expect("serializes"),
        "application/json",
    )
    .await
    .map_err(ScanError::Scope)?;
    Ok(status)
}

/// The newest backfill under the record's prefix (ids begin with their start time).
pub async fn latest(
    s3: &aws_sdk_s3::Client,
    at: &ReportLocation,
) -> Result<Option<String>, ScanError> {
    Ok(recent(s3, at, 1).await?.into_iter().next())
}

/// The `n` newest backfills under the record's prefix, newest first.
pub async fn recent(
    s3: &aws_sdk_s3::Client,
    at: &ReportLocation,
    n: usize,
) -> Result<Vec<String>, ScanError> {
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(&at.bucket)
            .prefix(&at.prefix)
            .delimiter("/")
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| ScanError::Scope(format!("listing {}: {}", at.url(), describe(&e))))?;
        ids.extend(
            out.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix()?.strip_prefix(&at.prefix)?.strip_suffix('/'))
                .filter(|id| id.starts_with("bf-"))
                .map(str::to_string),
        );
        token = out.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    ids.sort_by(|a, b| b.cmp(a));
    ids.truncate(n);
    Ok(ids)
}

/// `l12_j10_s2_c1` -> the number after a letter.
fn numbers(counts: &str) -> impl Fn(char) -> u64 + '_ {
    move |letter| {
        counts
            .split('_')
            .find_map(|part| part.strip_prefix(letter).and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    }
}

async fn list_keys(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, DateTime)>, ScanError> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| {
                ScanError::Scope(format!("listing s3://{bucket}/{prefix}: {}", describe(&e)))
            })?;
        keys.extend(out.contents().iter().filter_map(|o| {
            Some((
                o.key()?.to_string(),
                o.last_modified().copied().unwrap_or(DateTime::from_secs(0)),
            ))
        }));
        token = out.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return Ok(keys);
        }
    }
}

async fn read_text(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<String, ScanError> {
    let reading = |e: String| ScanError::Scope(format!("reading s3://{bucket}/{key}: {e}"));
    let bytes = crate::config::objects::read_object(s3, bucket, key)
        .await
        .map_err(reading)?
        .ok_or_else(|| reading("NoSuchKey: no object under this key".into()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_names() {
        let n = numbers("l1000_j2000_s0_c3");
        assert_eq!(
            (n('l'), n('j'), n('s'), n('c'), n('x')),
            (1000, 2000, 0, 3, 0)
        );
    }
}
