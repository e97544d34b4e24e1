//! What the environment tells a process: where the configuration is and which queues
//! to use. The Lambdas and `s3-replicator run` read the same variables.

use std::time::Duration;

use crate::errors::ConfigError;

pub const CONFIG_VAR: &str = "REPLICATOR_CONFIG";
/// The version of an `s3://` document to read: its VersionId, or its ETag in double
/// quotes. The templates set it from the deploy, so every function reads the same
/// document and a change rolls them all.
pub const CONFIG_VERSION_VAR: &str = "REPLICATOR_CONFIG_VERSION";
pub const EVENTS_QUEUE_VAR: &str = "EVENTS_QUEUE_URL";
pub const WORK_QUEUE_VAR: &str = "WORK_QUEUE_URL";
pub const RETRY_QUEUE_VAR: &str = "RETRY_QUEUE_URL";
pub const FAILED_QUEUE_VAR: &str = "FAILED_QUEUE_URL";
pub const FAILED_ARCHIVE_VAR: &str = "FAILED_ARCHIVE_URL";
/// Where backfills keep their record unless `--report` says: `s3://BUCKET/PREFIX`.
pub const BACKFILL_REPORT_VAR: &str = "BACKFILL_REPORT_URL";
pub const FAILED_ARCHIVE_AFTER_VAR: &str = "FAILED_ARCHIVE_AFTER";
/// The principals the replicator writes as, comma-separated: role ids (`AROA…`, the
/// templates set the replicate role's), user ids (`AIDA…`), or whole principal ids as
/// S3 events name them. A delete an event says one of them made is the replicator's
/// own, and never travels back across a two-way pair.
pub const PRINCIPALS_VAR: &str = "REPLICATOR_PRINCIPALS";
/// The account that owns the source buckets, the configuration object and the buckets
/// of the failed-job archive and backfill records (the templates set the deploying
/// account): every request to them says so (`x-amz-expected-bucket-owner`), and S3
/// refuses it if a stranger owns the bucket now (a bucket deleted, its name taken).
pub const ACCOUNT_VAR: &str = "REPLICATOR_ACCOUNT";
/// The Secrets Manager secret (name or ARN) that holds the signing key; see
/// [`crate::config::keys`].
pub const SIGNING_KEY_SECRET_VAR: &str = "REPLICATOR_SIGNING_KEY_SECRET";
/// A file that holds the signing key, for a worker outside Lambda.
pub const SIGNING_KEY_FILE_VAR: &str = "REPLICATOR_SIGNING_KEY_FILE";
/// How many attempts a job gets before it is parked (the retry function).
pub const RETRY_MAX_ATTEMPTS_VAR: &str = "RETRY_MAX_ATTEMPTS";
/// The first retry's delay; each later one doubles it (the retry function).
pub const RETRY_BASE_DELAY_VAR: &str = "RETRY_BASE_DELAY_SECONDS";

/// Every variable of our own that the Lambdas read (the SDK's `AWS_*` aside). The
/// deployment templates must set exactly these; a test holds them to it.
pub const LAMBDA_VARS: &[&str] = &[
    CONFIG_VAR,
    CONFIG_VERSION_VAR,
    WORK_QUEUE_VAR,
    RETRY_QUEUE_VAR,
    FAILED_QUEUE_VAR,
    RETRY_MAX_ATTEMPTS_VAR,
    RETRY_BASE_DELAY_VAR,
    FAILED_ARCHIVE_VAR,
    FAILED_ARCHIVE_AFTER_VAR,
    PRINCIPALS_VAR,
    ACCOUNT_VAR,
    BACKFILL_REPORT_VAR,
    SIGNING_KEY_SECRET_VAR,
];

/// Set by Lambda itself, from the function's LoggingConfig (the templates' JSON format,
/// an ApplicationLogLevel if one is chosen); never in a template's environment.
pub const LAMBDA_RUNTIME_VARS: &[&str] = &[
    crate::telemetry::LOG_FORMAT_VAR,
    crate::telemetry::LOG_LEVEL_VAR,
];

/// Read by `s3-replicator run` only: a Lambda's trigger hands it the events instead;
/// a worker elsewhere may keep its signing key in a file.
pub const WORKER_ONLY_VARS: &[&str] = &[EVENTS_QUEUE_VAR, SIGNING_KEY_FILE_VAR];

/// Read by the operator's commands only, never by a handler.
pub const OPERATOR_VARS: &[&str] = &[];

/// [`PRINCIPALS_VAR`], split.
pub fn own_principals() -> Vec<String> {
    std::env::var(PRINCIPALS_VAR)
        .unwrap_or_default()
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Queue URLs. Which ones a process needs depends on what it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Queues {
    pub events: Option<String>,
    pub work: Option<String>,
    pub retry: Option<String>,
    pub failed: Option<String>,
}

impl Queues {
    pub fn from_env() -> Queues {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Queues {
            events: var(EVENTS_QUEUE_VAR),
            work: var(WORK_QUEUE_VAR),
            retry: var(RETRY_QUEUE_VAR),
            failed: var(FAILED_QUEUE_VAR),
        }
    }

    /// Each queue that is set, with the variable that names it.
    pub fn named(&self) -> Vec<(&'static str, &str)> {
        [
            (EVENTS_QUEUE_VAR, &self.events),
            (WORK_QUEUE_VAR, &self.work),
            (RETRY_QUEUE_VAR, &self.retry),
            (FAILED_QUEUE_VAR, &self.failed),
        ]
        .into_iter()
        .filter_map(|(var, url)| url.as_deref().map(|u| (var, u)))
        .collect()
    }

    pub fn require_failed(&self) -> Result<&str, ConfigError> {
        self.failed.as_deref().ok_or(ConfigError::Environment {
            name: FAILED_QUEUE_VAR,
            reason: "is not set; jobs that cannot succeed have nowhere to wait".into(),
        })
    }

    pub fn require_work(&self) -> Result<&str, ConfigError> {
        self.work.as_deref().ok_or(ConfigError::Environment {
            name: WORK_QUEUE_VAR,
            reason: "is not set; jobs have nowhere to go".into(),
        })
    }
}

/// Where parked jobs are kept once they have waited `after` in the failed queue, before
/// SQS's retention (14 days at most) would drop them: `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveSettings {
    pub bucket: String,
    /// Empty, or ends with `/`.
    pub prefix: String,
    pub after: Duration,
}

/// A week in the queue (where alarms and `dlq` see it first), then the archive.
pub const DEFAULT_ARCHIVE_AFTER: Duration = Duration::from_secs(7 * 86_400);
/// The failed queue keeps a message 14 days; leave the sweeps (hourly, or daily from
/// cron) a day or two of room.
pub const MAX_ARCHIVE_AFTER: Duration = Duration::from_secs(12 * 86_400);

impl ArchiveSettings {
    /// `FAILED_ARCHIVE_URL` and `FAILED_ARCHIVE_AFTER`; none without the first.
    pub fn from_env() -> Result<Option<ArchiveSettings>, ConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match var(FAILED_ARCHIVE_VAR) {
            Some(url) => {
                ArchiveSettings::parse(&url, var(FAILED_ARCHIVE_AFTER_VAR).as_deref()).map(Some)
            }
            None => Ok(None),
        }
    }

    pub fn parse(url: &str, after: Option<&str>) -> Result<ArchiveSettings, ConfigError> {
        let (bucket, prefix) = parse_s3_prefix(url).map_err(|reason| ConfigError::Environment {
            name: FAILED_ARCHIVE_VAR,
            reason,
        })?;
        let after = match after {
            None => DEFAULT_ARCHIVE_AFTER,
            Some(text) => parse_duration(text).ok_or_else(|| ConfigError::Environment {
                name: FAILED_ARCHIVE_AFTER_VAR,
                reason: format!("\"{text}\" is not a duration such as 7d, 36h or 0s"),
            })?,
        };
        if after > MAX_ARCHIVE_AFTER {
            return Err(ConfigError::Environment {
                name: FAILED_ARCHIVE_AFTER_VAR,
                reason: "is longer than 12d: SQS drops a parked job after 14 days, and the sweep needs time to move it".into(),
            });
        }
        Ok(ArchiveSettings {
            bucket,
            prefix,
            after,
        })
    }

    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// `s3://BUCKET/PREFIX` as a bucket and a prefix that is empty or ends with `/`.
pub fn parse_s3_prefix(url: &str) -> Result<(String, String), String> {
    let rest = url
        .trim()
        .strip_prefix("s3://")
        .ok_or_else(|| format!("\"{url}\" is not s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("\"{url}\" names no bucket"));
    }
    let mut prefix = prefix.trim_start_matches('/').to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((bucket.to_string(), prefix))
}

/// `90`, `90s`, `5m`, `12h`, `7d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(seconds)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_locations_and_ages() {
        let a = ArchiveSettings::parse("s3://ops/replicator/failed", None).unwrap();
        assert_eq!(
            (a.bucket.as_str(), a.prefix.as_str()),
            ("ops", "replicator/failed/")
        );
        assert_eq!(a.after, DEFAULT_ARCHIVE_AFTER);
        let a = ArchiveSettings::parse("s3://ops", Some("36h")).unwrap();
        assert_eq!(
            (a.prefix.as_str(), a.after),
            ("", Duration::from_secs(36 * 3600))
        );
        assert_eq!(
            ArchiveSettings::parse("s3://ops/", Some("0s"))
                .unwrap()
                .after,
            Duration::ZERO
        );
        for (url, after) in [
            ("ops/x", None),
            ("s3:///x", None),
            ("s3://ops", Some("13d")),
            ("s3://ops", Some("a week")),
        ] {
            assert!(
                ArchiveSettings::parse(url, after).is_err(),
                "{url} {after:?}"
            );
        }
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5 m"), None);
        assert_eq!(parse_duration(""), None);
    }
}
