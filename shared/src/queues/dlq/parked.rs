//! One parked message, read from the failed queue or the archive: what an operator
//! sees of it, and where it is kept.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::queues::job::Job;
use crate::queues::parking::age_seconds;

/// One parked message.
#[derive(Debug, Clone, Serialize)]
pub struct Parked {
    pub id: String,
    /// `job`, `unparsed-job` or `notification`.
    pub kind: String,
    /// For jobs: put, delete, tags or acl.
    pub op: Option<String>,
    pub reason: String,
    pub detail: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub destination: Option<String>,
    pub attempts: u32,
    pub first_failure: Option<String>,
    /// Seconds since the first failure (or since it was parked).
    pub age_seconds: u64,
    /// When it reached the failed queue, if known (RFC 3339).
    pub parked_at: Option<String>,
    /// Where it is kept: `queue`, `archive`, or both (a sweep stopped between writing
    /// the archive and deleting from the queue); acting on it acts on each.
    pub stored: Vec<&'static str>,
    #[serde(skip)]
    pub job: Option<Job>,
    #[serde(skip)]
    pub body: String,
    #[serde(skip)]
    pub(super) held: Held,
}

/// How to reach a parked message where it is kept.
#[derive(Debug, Clone, Default)]
pub(super) struct Held {
    /// The newest receipt handle of a scan of the failed queue.
    pub receipt: Option<String>,
    /// Its object in the archive.
    pub archive_key: Option<String>,
    /// When it was sent to the failed queue (ms since the epoch).
    pub parked_ms: Option<u64>,
}

impl Parked {
    pub(super) fn from_body(id: String, body: String, held: Held) -> Parked {
        let now = SystemTime::now();
        let parked_at = held
            .parked_ms
            .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        let sent_age = parked_at
            .map(|t| now.duration_since(t).unwrap_or_default().as_secs())
            .unwrap_or(0);
        let parked_at = parked_at.and_then(|t| {
            aws_smithy_types::DateTime::from(t)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .ok()
        });
        let age_from = |rfc3339: Option<&str>| rfc3339.and_then(age_seconds);
        let mut parked = Parked {
            id,
            kind: "unknown".into(),
            op: None,
            reason: "Unknown".into(),
            detail: String::new(),
            bucket: None,
            key: None,
            destination: None,
            attempts: 0,
            first_failure: None,
            age_seconds: sent_age,
            parked_at,
            stored: Vec::new(),
            job: None,
            body,
            held,
        };
        parked.stored = parked.places();
        if let Ok(job) = Job::parse(&parked.body) {
            let (reason, detail) = job
                .last_error
                .as_ref()
                .map(|e| (e.reason.to_string(), e.detail.clone()))
                .unwrap_or_else(|| ("Unknown".into(), "no error was recorded".into()));
            parked.kind = "job".into();
            parked.op = serde_json::to_value(job.op)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string));
            parked.reason = reason;
            parked.detail = detail;
            parked.bucket = Some(job.source.bucket.clone());
            parked.key = Some(job.source.key.clone());
            parked.destination = Some(job.destination.bucket.clone());
            parked.attempts = job.attempts;
            parked.first_failure = job.first_failure.clone();
            parked.age_seconds = age_from(job.first_failure.as_deref()).unwrap_or(sent_age);
            parked.job = Some(job);
            return parked;
        }
        let value: serde_json::Value = serde_json::from_str(&parked.body).unwrap_or_default();
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        if let Some(kind) = text("/kind") {
            parked.kind = kind;
        }
        if let Some(reason) = text("/last_error/reason") {
            parked.reason = reason;
        }
        parked.detail = text("/last_error/detail")
            .unwrap_or_else(|| "the message is neither a job nor a parked notification".into());
        parked.first_failure = text("/first_failure");
        parked.age_seconds = age_from(parked.first_failure.as_deref()).unwrap_or(sent_age);
        parked
    }

    fn places(&self) -> Vec<&'static str> {
        let mut places = Vec::new();
        if self.held.receipt.is_some() {
            places.push("queue");
        }
        if self.held.archive_key.is_some() {
            places.push("archive");
        }
        places
    }

    /// The same message found in the archive too: acting on it acts on both.
    pub(super) fn also_archived(&mut self, key: String) {
        self.held.archive_key = Some(key);
        self.stored = self.places();
    }

    /// Seconds since it reached the failed queue.
    pub(super) fn parked_seconds(&self) -> Option<u64> {
        let ms = self.held.parked_ms?;
        Some(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
                .unwrap_or_default()
                .as_secs(),
        )
    }
}
