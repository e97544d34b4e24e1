//! A backfill's record, under the prefix its operator names (`--report s3://B/P`):
//!
//! ```text
//! P/ID/backfill.json                         what was asked, when, and its first tasks
//! P/ID/pages/HASH_lLISTED_jJOBS_uUPTODATE_sSKIPPED_cCHILDREN.csv   one per page
//! P/ID/results/TIME-RAND_nROWS_rREPL_sSKIP_fFAIL.csv     outcomes of finished jobs
//! P/ID/report.csv, report.json               the completion report, once complete
//! ```
//!
//! The counts are in the names, so `backfill status` reads one LIST per thousand
//! parts, not the parts. A page's hash is fixed by what it lists, so a page listed
//! twice (a redelivered task) is counted once, as its latest record says. A page's
//! record holds a `queued` row per job it ran or sent; the report is complete when
//! each has an outcome. Outcomes are written before their jobs' messages are deleted,
//! so none is lost; a job run twice writes two rows, and the report keeps the later.

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use crate::errors::describe;

/// Where backfills keep their record: `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportLocation {
    pub bucket: String,
    /// Empty, or ends with `/`.
    pub prefix: String,
}

impl ReportLocation {
    pub fn parse(url: &str) -> Result<ReportLocation, String> {
        let (bucket, prefix) = crate::config::settings::parse_s3_prefix(url)?;
        Ok(ReportLocation { bucket, prefix })
    }

    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// Where one backfill's record lives.
    pub fn base(&self, id: &str) -> String {
        format!("{}{id}/", self.prefix)
    }
}

/// One object's outcome at one destination (none for what no rule sends anywhere).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub bucket: String,
    pub key: String,
    pub destination: String,
    /// replicated, skipped, or failed.
    pub outcome: String,
    pub reason: String,
    pub bytes: u64,
}

pub const HEADER: &str = "bucket,key,destination,outcome,reason,bytes";

impl Row {
    pub fn to_csv(&self) -> String {
        format!(
            "{},{},{},{},{},{}",
            crate::listing::csv::field(&self.bucket),
            crate::listing::csv::field(&self.key),
            crate::listing::csv::field(&self.destination),
            crate::listing::csv::field(&self.outcome),
            crate::listing::csv::field(&self.reason),
            self.bytes
        )
    }
}

/// Parses what [`Row::to_csv`] wrote (lines joined with `\n`, after a header).
pub fn parse_csv(text: &str) -> Vec<Row> {
    crate::listing::csv::records(text)
        .into_iter()
        .filter_map(|fields| match &fields[..] {
            [bucket, key, destination, outcome, reason, bytes] => Some(Row {
                bucket: bucket.clone(),
                key: key.clone(),
                destination: destination.clone(),
                outcome: outcome.clone(),
                reason: reason.clone(),
                bytes: bytes.parse().unwrap_or(0),
            }),
            _ => None,
        })
        // The header parses as a row of its own.
        .filter(|r| !(r.bucket == "bucket" && r.key == "key" && r.outcome == "outcome"))
        .collect()
}

pub(crate) fn csv(rows: &[Row]) -> String {
    let mut text = String::from(HEADER);
    text.push('\n');
    for row in rows {
        text.push_str(&row.to_csv());
        text.push('\n');
    }
    text
}

/// The completion report, for people and their spreadsheets: a cell that begins with
/// `=`, `+`, `-`, `@`, a tab or a carriage return is one a spreadsheet would run as a
/// formula (a key is whatever the uploader named it), so it is written after a `'`, as
/// OWASP's CSV-injection guidance says. report.json keeps the keys as they are.
pub(crate) fn report_csv(rows: &[Row]) -> String {
    let safe = |text: &str| match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    };
    let rows: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            bucket: safe(&r.bucket),
            key: safe(&r.key),
            destination: safe(&r.destination),
            outcome: r.outcome.clone(),
            reason: r.reason.clone(),
            bytes: r.bytes,
        })
        .collect();
    csv(&rows)
}

/// What `backfill.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub started: String,
    /// The first list tasks: the listing is complete when this many plus every child
    /// a page spawned have been listed.
    pub tasks: u64,
    pub scope: serde_json::Value,
}

/// What one page listed, as its part's name records it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PageCounts {
    pub listed: u64,
    /// Jobs run or sent, each to record an outcome.
    pub jobs: u64,
    /// Jobs the destination's listing showed done.
    pub up_to_date: u64,
    /// Objects that made no job.
    pub skipped: u64,
    pub children: u64,
}

pub(crate) async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: String,
    content_type: &str,
) -> Result<(), String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body.into_bytes()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("writing s3://{bucket}/{key}: {}", describe(&e)))
}

pub async fn write_manifest(
    s3: &aws_sdk_s3::Client,
    at: &ReportLocation,
    manifest: &Manifest,
) -> Result<(), String> {
    let body = serde_json::to_string_pretty(manifest).expect("a manifest serializes");
    put(
        s3,
        &at.bucket,
        &format!("{}backfill.json", at.base(&manifest.id)),
        body,
        "application/json",
    )
    .await
}

/// Records a listed page: its counts in the name, its skipped objects as rows.
pub async fn write_page(
    s3: &aws_sdk_s3::Client,
    at: &ReportLocation,
    id: &str,
    identity: &str,
    counts: PageCounts,
    skipped: &[Row],
) -> Result<(), String> {
    let hash = identity.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let key = format!(
        "{}pages/{hash:016x}_l{}_j{}_u{}_s{}_c{}.csv",
        at.base(id),
        counts.listed,
        counts.jobs,
        counts.up_to_date,
        counts.skipped,
        counts.children
    );
    put(s3, &at.bucket, &key, csv(skipped), "text/csv").await
}

/// Records the outcomes of finished jobs, in one object.
pub async fn write_results(
    s3: &aws_sdk_s3::Client,
    at: &ReportLocation,
    id: &str,
    rows: &[Row],
) -> Result<(), String> {
    let count = |outcome: &str| rows.iter().filter(|r| r.outcome == outcome).count();
    let key = format!(
        "{}results/{:013}-{:08x}_n{}_r{}_s{}_f{}.csv",
        at.base(id),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
        rand::random::<u32>(),
        rows.len(),
        count("replicated"),
        count("skipped"),
        count("failed")
    );
    put(s3, &at.bucket, &key, csv(rows), "text/csv").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_any_key() {
        let rows = vec![
            Row {
                bucket: "b".into(),
                key: "a, \"quoted\"\nkey".into(),
                destination: "d".into(),
                outcome: "replicated".into(),
                reason: String::new(),
                bytes: 12,
            },
            Row {
                bucket: "b".into(),
                key: "plain".into(),
                destination: String::new(),
                outcome: "skipped".into(),
                reason: "NoRuleMatches".into(),
                bytes: 0,
            },
        ];
        assert_eq!(parse_csv(&csv(&rows)), rows);
        // For spreadsheets, a key that would run as a formula is written after a '.
        let formulas = vec![Row {
            key: "=HYPERLINK(\"http://x\",\"y\")".into(),
            ..rows[1].clone()
        }];
        let report = report_csv(&formulas);
        assert!(report.contains("\"'=HYPERLINK("), "{report}");
        assert_eq!(parse_csv(&report)[0].key, format!("'{}", formulas[0].key));
        for start in ["+", "-", "@", "\t", "\r"] {
            let row = Row {
                key: format!("{start}cmd"),
                ..rows[1].clone()
            };
            assert!(parse_csv(&report_csv(&[row]))[0].key.starts_with('\''));
        }
    }
}
