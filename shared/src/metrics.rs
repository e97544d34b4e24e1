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

/// Whom a count is about: the dimensions of every per-job metric.
#[derive(Debug, Clone)]
pub struct Dimensions {
    pub source_bucket: String,
    pub destination_bucket: String,
    pub rule_id: String,
}

impl Dimensions {
    fn labels(&self) -> [(&'static str, String); 3] {
        [
            ("SourceBucket", self.source_bucket.clone()),
            ("DestinationBucket", self.destination_bucket.clone()),
            ("RuleId", self.rule_id.clone()),
        ]
    }
}

/// A counter, per job's dimensions and in total (with `reason`, a Reason dimension).
fn count(name: &'static str, on: &Dimensions, reason: Option<&str>, n: u64) {
    let mut with = on.labels().to_vec();
    if let Some(reason) = reason {
        with.push(("Reason", reason.to_string()));
    }
    metrics::counter!(name, &with).increment(n);
    match reason {
        Some(reason) => metrics::counter!(name, "Reason" => reason.to_string()).increment(n),
        None => metrics::counter!(name).increment(n),
    }
}

/// An operation replicated: `bytes` copied (none for a delete or a tag change), and
/// the latency since its event when it had one.
pub fn replicated(on: &Dimensions, bytes: Option<u64>, latency_ms: Option<f64>) {
    count(REPLICATED, on, None, 1);
    if let Some(bytes) = bytes {
        count(BYTES, on, None, bytes);
        TOTALS.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    TOTALS.replicated.fetch_add(1, Ordering::Relaxed);
    if let Some(ms) = latency_ms {
        metrics::histogram!(LATENCY, &on.labels()).record(ms);
        metrics::histogram!(LATENCY).record(ms);
    }
}

/// An operation skipped, for a stated reason.
pub fn skipped(on: &Dimensions, reason: &str) {
    count(SKIPPED, on, Some(reason), 1);
    TOTALS.skipped.fetch_add(1, Ordering::Relaxed);
}

/// A large copy paused, to continue in the next invocation.
pub fn paused(on: &Dimensions) {
    count(PAUSED, on, None, 1);
}

/// An attempt failed: `parked` says it was the end of the job (it waits in the failed
/// queue) rather than handed on for a retry.
pub fn failed(on: &Dimensions, reason: &str, parked: bool) {
    if parked {
        count(FAILED, on, Some(reason), 1);
        TOTALS.failed.fetch_add(1, Ordering::Relaxed);
    } else {
        count(FAILED_ATTEMPTS, on, Some(reason), 1);
        TOTALS.failed_attempts.fetch_add(1, Ordering::Relaxed);
    }
}

/// The retry function sent a job back to work, `age_s` after it first failed.
pub fn requeued(on: &Dimensions, age_s: u64) {
    count(RETRIES, on, None, 1);
    TOTALS.retries.fetch_add(1, Ordering::Relaxed);
    metrics::histogram!(REQUEUED_AGE, &on.labels()).record(age_s as f64);
    metrics::histogram!(REQUEUED_AGE).record(age_s as f64);
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
