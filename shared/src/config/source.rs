//! Where the configuration document lives (`REPLICATOR_CONFIG`), and reading it.

use crate::config::objects::read_object_at;
use crate::config::settings::{CONFIG_VAR, CONFIG_VERSION_VAR};
use crate::config::Config;
use crate::errors::ConfigError;

/// Where the configuration lives: `REPLICATOR_CONFIG` holds the document itself,
/// `file://PATH`, or `s3://BUCKET/KEY`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigSource {
    Inline(String),
    File(String),
    /// `version`: see [`CONFIG_VERSION_VAR`].
    S3 {
        bucket: String,
        key: String,
        version: Option<String>,
    },
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
                        version: None,
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
        let mut source = ConfigSource::parse(&value)?;
        let pinned = std::env::var(CONFIG_VERSION_VAR)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        match (&mut source, pinned) {
            (ConfigSource::S3 { version, .. }, pinned) => *version = pinned,
            (_, Some(_)) => {
                return Err(ConfigError::Environment {
                    name: CONFIG_VERSION_VAR,
                    reason: format!(
                        "is set, but {CONFIG_VAR} is not an s3:// location; leave it empty"
                    ),
                })
            }
            (_, None) => {}
        }
        Ok(source)
    }

    pub fn describe(&self) -> String {
        match self {
            ConfigSource::Inline(_) => format!("{CONFIG_VAR} (inline)"),
            ConfigSource::File(p) => format!("file://{p}"),
            ConfigSource::S3 {
                bucket,
                key,
                version: None,
            } => format!("s3://{bucket}/{key}"),
            ConfigSource::S3 {
                bucket,
                key,
                version: Some(v),
            } => format!("s3://{bucket}/{key} (version {v})"),
        }
    }

    /// Reads and validates the document (once, at cold start).
    pub async fn load(&self, s3: &aws_sdk_s3::Client) -> Result<Config, ConfigError> {
        Config::parse(&self.read(s3).await?)
    }

    /// The document's text, wherever it lives.
    pub async fn read(&self, s3: &aws_sdk_s3::Client) -> Result<String, ConfigError> {
        let load_error = |reason: String| ConfigError::Load {
            location: self.describe(),
            reason,
        };
        let text = match self {
            ConfigSource::Inline(text) => text.clone(),
            ConfigSource::File(path) => {
                std::fs::read_to_string(path).map_err(|e| load_error(e.to_string()))?
            }
            ConfigSource::S3 {
                bucket,
                key,
                version,
            } => {
                let bytes = read_object_at(s3, bucket, key, version.as_deref())
                    .await
                    .map_err(load_error)?
                    .ok_or_else(|| load_error("NoSuchKey: no object under this key".into()))?;
                String::from_utf8(bytes)
                    .map_err(|_| load_error("the document is not UTF-8".into()))?
            }
        };
        Ok(text)
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
                key: "replicator/config.json".into(),
                version: None,
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
