//! Replication metrics, through the `metrics` facade: the Lambdas emit them as
//! CloudWatch Embedded Metric Format lines (`metrics_cloudwatch_embedded`, flushed after
//! each invocation), and `s3-replicator run` serves them to Prometheus
//! (`metrics-exporter-prometheus`). Without a recorder installed they cost nothing.
//!
//! Names follow S3's replication metrics where the meaning is the same
//! (`ReplicationLatency`, `OperationsFailedReplication`); each is recorded once per
//! (SourceBucket, DestinationBucket, RuleId), and once without dimensions for the
//! stack's dashboard and alarms.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::copy::Outcome;
use crate::errors::ReplicationError;
use crate::queues::job::Job;

pub const NAMESPACE: &str = "S3Replicator";

pub const REPLICATED: &str = "OperationsReplicated";
pub const BYTES: &str = "BytesReplicated";
pub const LATENCY: &str = "ReplicationLatency";
pub const FAILED: &str = "OperationsFailedReplication";
pub const FAILED_ATTEMPTS: &str = "FailedAttempts";
pub const SKIPPED: &str = "OperationsSkipped";
pub const PAUSED: &str = "PausedCopies";
pub const RETRIES: &str = "Retries";
pub const REQUEUED_AGE: &str = "RequeuedJobAge";

/// What this process did since it started, for the worker's summary lines.
#[derive(Debug, Default)]
pub struct Totals {
    pub replicated: AtomicU64,
    pub bytes: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub retries: AtomicU64,
}

pub static TOTALS: Totals = Totals {
    replicated: AtomicU64::new(0),
    bytes: AtomicU64::new(0),
    skipped: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    failed_attempts: AtomicU64::new(0),
    retries: AtomicU64::new(0),
};

impl Totals {
    /// (replicated, bytes, skipped, failed, failed attempts, retries)
    pub fn read(&self) -> (u64, u64, u64, u64, u64, u64) {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (
            r(&self.replicated),
            r(&self.bytes),
            r(&self.skipped),
            r(&self.failed),
            r(&self.failed_attempts),
            r(&self.retries),
        )
    }
}

fn labels(job: &Job) -> [(&'static str, String); 3] {
    [
        ("SourceBucket", job.source.bucket.clone()),
        ("DestinationBucket", job.destination.bucket.clone()),
        ("RuleId", job.rule_id.clone()),
    ]
}

/// A counter, per job's dimensions and in total (with `reason`, a Reason dimension).
fn count(name: &'static str, job: &Job, reason: Option<&str>, n: u64) {
    let mut with = labels(job).to_vec();
    if let Some(reason) = reason {
        with.push(("Reason", reason.to_string()));
    }
    metrics::counter!(name, &with).increment(n);
    match reason {
        Some(reason) => metrics::counter!(name, "Reason" => reason.to_string()).increment(n),
        None => metrics::counter!(name).increment(n),
    }
}

/// A job's outcome as replicate saw it. `parked` says a failure was parked (the end of
/// the job) rather than handed on for a retry.
pub fn job_outcome(job: &Job, result: &Result<Outcome, ReplicationError>, parked: bool) {
    match result {
        Ok(Outcome::Replicated { bytes, .. }) => {
            count(REPLICATED, job, None, 1);
            count(BYTES, job, None, *bytes);
            TOTALS.bytes.fetch_add(*bytes, Ordering::Relaxed);
            replicated(job);
        }
        Ok(Outcome::Updated | Outcome::Deleted) => {
            count(REPLICATED, job, None, 1);
            replicated(job);
        }
        Ok(Outcome::Skipped { reason }) => {
            count(SKIPPED, job, Some(reason), 1);
            TOTALS.skipped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Outcome::Paused(_)) => count(PAUSED, job, None, 1),
        Err(e) if parked => {
            count(FAILED, job, Some(e.reason.as_str()), 1);
            TOTALS.failed.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            count(FAILED_ATTEMPTS, job, Some(e.reason.as_str()), 1);
            TOTALS.failed_attempts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What every replicated outcome adds: the total, and the latency since the event.
fn replicated(job: &Job) {
    TOTALS.replicated.fetch_add(1, Ordering::Relaxed);
    if let Some(ms) = latency_ms(job) {
        metrics::histogram!(LATENCY, &labels(job)).record(ms);
        metrics::histogram!(LATENCY).record(ms);
    }
}

/// The retry function sent a job back to work, `age_s` after it first failed.
pub fn requeued(job: &Job, age_s: u64) {
    count(RETRIES, job, None, 1);
    TOTALS.retries.fetch_add(1, Ordering::Relaxed);
    metrics::histogram!(REQUEUED_AGE, &labels(job)).record(age_s as f64);
    metrics::histogram!(REQUEUED_AGE).record(age_s as f64);
}

/// The retry function parked a job whose budget is spent.
pub fn parked(job: &Job) {
    let reason = job
        .last_error
        .as_ref()
        .map(|e| e.reason.as_str())
        .unwrap_or("Unknown");
    count(FAILED, job, Some(reason), 1);
    TOTALS.failed.fetch_add(1, Ordering::Relaxed);
}

/// From the event (S3's eventTime) to now, in milliseconds. A backfill's job has no
/// event (its time is the object's last modification, maybe years ago): it has no
/// replication latency, and would only bury the events' in the percentiles.
fn latency_ms(job: &Job) -> Option<f64> {
    if job.backfill.is_some() {
        return None;
    }
    let at = job.source.event_time.as_deref()?;
    let at =
        aws_smithy_types::DateTime::from_str(at, aws_smithy_types::date_time::Format::DateTime)
            .ok()?;
    let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    let ms = (now.as_secs_f64() - at.as_secs_f64()) * 1000.0;
    (ms >= 0.0).then_some(ms)
}

/// The Lambdas' recorder: EMF documents, written to stdout by [`flush_emf`].
pub fn install_emf() -> Option<&'static metrics_cloudwatch_embedded::Collector> {
    match metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .init()
    {
        Ok(collector) => Some(collector),
        Err(e) => {
            tracing::warn!(error = %e, "metrics are off: the EMF recorder did not install");
            None
        }
    }
}

/// Writes what the invocation recorded as EMF lines on stdout (CloudWatch Logs turns
/// them into metrics).
pub fn flush_emf(collector: Option<&'static metrics_cloudwatch_embedded::Collector>) {
    if let Some(collector) = collector {
        if let Err(e) = collector.flush(std::io::stdout().lock()) {
            tracing::warn!(error = %e, "could not write the invocation's metrics");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_runs_from_the_event_and_a_backfill_has_none() {
        let mut job = Job::parse(include_str!("../../tests/fixtures/jobs/put.json")).unwrap();
        let a_minute_ago = aws_smithy_types::DateTime::from(
            std::time::SystemTime::now() - std::time::Duration::from_secs(60),
        );
        job.source.event_time = Some(
            a_minute_ago
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap(),
        );
        let ms = latency_ms(&job).unwrap();
        assert!((59_000.0..61_000.0).contains(&ms), "{ms}");
        job.backfill = Some(crate::queues::job::BackfillRef {
            id: "bf-1".into(),
            report: None,
            absent: false,
        });
        assert_eq!(latency_ms(&job), None);
        job.backfill = None;
        job.source.event_time = None;
        assert_eq!(latency_ms(&job), None);
    }
}
