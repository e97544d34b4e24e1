//! What the environment tells a process: where the configuration is and which queues
//! to use. The Lambdas and `s3-replicator run` read the same variables.

use crate::config::Config;
use crate::errors::ConfigError;

pub const CONFIG_VAR: &str = "REPLICATOR_CONFIG";
pub const EVENTS_QUEUE_VAR: &str = "EVENTS_QUEUE_URL";
pub const WORK_QUEUE_VAR: &str = "WORK_QUEUE_URL";
pub const RETRY_QUEUE_VAR: &str = "RETRY_QUEUE_URL";
pub const FAILED_QUEUE_VAR: &str = "FAILED_QUEUE_URL";

/// Every variable of our own that the Lambdas read (the SDK's `AWS_*` aside). The
/// deployment templates must set exactly these; a test holds them to it.
pub const LAMBDA_VARS: &[&str] = &[
    CONFIG_VAR,
    WORK_QUEUE_VAR,
    RETRY_QUEUE_VAR,
    FAILED_QUEUE_VAR,
    crate::retry::MAX_ATTEMPTS_VAR,
    crate::retry::BASE_DELAY_VAR,
];

/// Set by Lambda itself, from the function's LoggingConfig (the templates' JSON format,
/// an ApplicationLogLevel if one is chosen); never in a template's environment.
pub const LAMBDA_RUNTIME_VARS: &[&str] = &[
    crate::telemetry::LOG_FORMAT_VAR,
    crate::telemetry::LOG_LEVEL_VAR,
];

/// Read by `s3-replicator run` only: a Lambda's trigger hands it the events instead.
pub const WORKER_ONLY_VARS: &[&str] = &[EVENTS_QUEUE_VAR];

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

/// Where the configuration lives: `REPLICATOR_CONFIG` holds the document itself,
/// `file://PATH`, or `s3://BUCKET/KEY`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigSource {
    Inline(String),
    File(String),
    S3 { bucket: String, key: String },
}

impl ConfigSource {
    pub fn parse(value: &str) -> Result<ConfigSource, ConfigError> {
        let value = value.trim();
        if let Some(path) = value.strip_prefix("file://") {
            return Ok(ConfigSource::File(path.to_string()));
        }
        if let Some(rest) = value.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(ConfigSource::S3 {
                        bucket: bucket.to_string(),
                        key: key.to_string(),
                    })
                }
                _ => Err(ConfigError::Environment {
                    name: CONFIG_VAR,
                    reason: format!("\"{value}\" is not s3://BUCKET/KEY"),
                }),
            };
        }
        if value.starts_with('{') {
            return Ok(ConfigSource::Inline(value.to_string()));
        }
        Err(ConfigError::Environment {
            name: CONFIG_VAR,
            reason: "must hold the JSON document, file://PATH or s3://BUCKET/KEY".into(),
        })
    }

    pub fn from_env() -> Result<ConfigSource, ConfigError> {
        let value = std::env::var(CONFIG_VAR).map_err(|_| ConfigError::Environment {
            name: CONFIG_VAR,
            reason: "is not set".into(),
        })?;
        ConfigSource::parse(&value)
    }

    fn describe(&self) -> String {
        match self {
            ConfigSource::Inline(_) => format!("{CONFIG_VAR} (inline)"),
            ConfigSource::File(p) => format!("file://{p}"),
            ConfigSource::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// Reads and validates the document (once, at cold start).
    pub async fn load(&self, s3: &aws_sdk_s3::Client) -> Result<Config, ConfigError> {
        let load_error = |reason: String| ConfigError::Load {
            location: self.describe(),
            reason,
        };
        let text = match self {
            ConfigSource::Inline(text) => text.clone(),
            ConfigSource::File(path) => {
                std::fs::read_to_string(path).map_err(|e| load_error(e.to_string()))?
            }
            ConfigSource::S3 { bucket, key } => {
                let out = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| load_error(crate::errors::describe(&e)))?;
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| load_error(e.to_string()))?;
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| load_error("the document is not UTF-8".into()))?
            }
        };
        Config::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_locations() {
        assert_eq!(
            ConfigSource::parse("file:///etc/r.json").unwrap(),
            ConfigSource::File("/etc/r.json".into())
        );
        assert_eq!(
            ConfigSource::parse("s3://cfg/replicator/config.json").unwrap(),
            ConfigSource::S3 {
                bucket: "cfg".into(),
                key: "replicator/config.json".into()
            }
        );
        assert!(matches!(
            ConfigSource::parse(" {\"Sources\": []}").unwrap(),
            ConfigSource::Inline(_)
        ));
        for bad in ["s3://bucket-only", "s3:///key", "/etc/r.json", ""] {
            assert!(ConfigSource::parse(bad).is_err(), "{bad}");
        }
    }
}
