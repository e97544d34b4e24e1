//! Error types, one per concern. Each says whether trying again can help, so the
//! worker and the Lambdas decide between "retry" and "park in the failed queue" in one
//! place.

use std::fmt;

mod replication;
mod sdk;

pub use replication::{classify_code, FailureReason, ReplicationError, S3Step};
pub use sdk::{describe, error_code, http_status, is_not_found};

/// One thing wrong with a document, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Loading or validating the configuration document.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the configuration has {} problem(s):\n{}", problems.len(), render(problems))]
    Invalid { problems: Vec<Problem> },
    #[error("cannot load the configuration from {location}: {reason}")]
    Load { location: String, reason: String },
    #[error("environment variable {name}: {reason}")]
    Environment { name: &'static str, reason: String },
    #[error("credentials for destination bucket {destination}: {source}")]
    Credentials {
        destination: String,
        source: DestinationCredentialsError,
    },
}

/// A destination's credentials (a secret, a profile) cannot be used. Says which and
/// why, never what they hold.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{source_kind} \"{name}\" {reason}")]
pub struct DestinationCredentialsError {
    /// "secret" or "profile".
    pub source_kind: &'static str,
    pub name: String,
    pub reason: String,
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An incoming notification that cannot be understood. Never retryable: the same bytes
/// will not parse any better next time.
#[derive(Debug, thiserror::Error)]
#[error("malformed event at {path}: {reason}")]
pub struct EventError {
    pub path: String,
    pub reason: String,
}

impl EventError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        EventError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Reading or writing a queue.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("SQS {operation} on {queue}: {detail}")]
    Request {
        operation: &'static str,
        queue: String,
        detail: String,
    },
    #[error("SQS rejected {count} of the entries sent to {queue}: {detail}")]
    EntriesRejected {
        queue: String,
        count: usize,
        detail: String,
    },
}

impl QueueError {
    /// Queue errors are retried by redelivery; a missing queue shows up in the logs.
    pub fn is_retryable(&self) -> bool {
        true
    }
}

/// Why a backfill or a drift report could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The scope asked for names nothing, or names it wrongly: fix the command.
    #[error("{0}")]
    Scope(String),
    #[error("listing the source: {0}")]
    Listing(ReplicationError),
    #[error(transparent)]
    Queue(QueueError),
}

impl ScanError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ScanError::Scope(_) => false,
            ScanError::Listing(e) => e.is_retryable(),
            ScanError::Queue(e) => e.is_retryable(),
        }
    }
}

/// The failed-job archive: S3 objects that keep parked jobs past SQS's retention.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("S3 {operation} on the failed-job archive s3://{bucket}/{key}: {detail}")]
    Request {
        operation: &'static str,
        bucket: String,
        key: String,
        detail: String,
    },
}

impl ArchiveError {
    /// A later sweep or operator command tries again; nothing is deleted from the
    /// queue until its archive copy is written.
    pub fn is_retryable(&self) -> bool {
        true
    }
}

/// Operating on parked jobs, wherever they are kept.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}
