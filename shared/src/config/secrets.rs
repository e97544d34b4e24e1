//! Destination credentials kept in AWS Secrets Manager. The configuration names the
//! secret, never a key; the secret holds
//! `{"AccessKeyId": "...", "SecretAccessKey": "...", "SessionToken": "..."}` (the
//! token is optional). Credentials are read again every 15 minutes, so a rotated
//! secret is picked up without a redeploy. No message here ever contains a value read
//! from the secret.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_credential_types::Credentials;
use serde_json::Value;

use crate::errors::{describe, DestinationCredentialsError};

/// How long credentials read from a secret are used before they are read again.
const REFRESH: Duration = Duration::from_secs(15 * 60);

/// Keys read from a secret, kept for [`REFRESH`] or until a destination rejects them
/// (keys rotated under a running process), and which read they came from.
#[derive(Debug, Clone)]
pub struct SecretCredentials {
    client: aws_sdk_secretsmanager::Client,
    secret: String,
    read: Arc<Mutex<Read>>,
    /// Held while the secret is read: the jobs that find the keys forgotten at the same
    /// moment (a burst of refusals) wait for one read instead of each making their own.
    reading: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Default)]
struct Read {
    keys: Option<(Credentials, Instant)>,
    /// Counts reads of the secret, so a rejection forgets only the keys it was made
    /// with: a burst of rejected requests makes one more read, not one each.
    generation: u64,
}

impl SecretCredentials {
    /// Reads `secret` (a name or an ARN) with the process's own credentials.
    pub fn new(sdk: &SdkConfig, secret: &str) -> Self {
        SecretCredentials {
            client: aws_sdk_secretsmanager::Client::new(sdk),
            secret: secret.to_string(),
            read: Arc::default(),
            reading: Arc::default(),
        }
    }

    /// The keys to sign with: those already read, unless they are old or forgotten.
    pub async fn current(&self) -> Result<Credentials, DestinationCredentialsError> {
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let _reading = self.reading.lock().await;
        // Read by whoever held the lock before us?
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let keys = self.load().await?;
        let mut read = self.read.lock().expect("secret lock");
        read.keys = Some((keys.clone(), Instant::now()));
        read.generation += 1;
        Ok(keys)
    }

    fn fresh(&self) -> Option<Credentials> {
        let read = self.read.lock().expect("secret lock");
        let (keys, at) = read.keys.as_ref()?;
        (at.elapsed() < REFRESH).then(|| keys.clone())
    }

    /// Which read of the secret the current keys come from.
    pub fn generation(&self) -> u64 {
        self.read.lock().expect("secret lock").generation
    }

    /// Forgets the keys of read `generation` (a destination rejected them), so the next
    /// request reads the secret again. Returns false when they were read again since.
    pub fn forget(&self, generation: u64) -> bool {
        let mut read = self.read.lock().expect("secret lock");
        if read.generation != generation {
            return false;
        }
        read.keys = None;
        true
    }

    pub async fn load(&self) -> Result<Credentials, DestinationCredentialsError> {
        let error = |reason: String| DestinationCredentialsError {
            source_kind: "secret",
            name: self.secret.clone(),
            reason,
        };
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret)
            .send()
            .await
            .map_err(|e| error(describe(&e)))?;
        let text = out
            .secret_string()
            .ok_or_else(|| error("holds no SecretString (binary secrets are not read)".into()))?;
        let keys = parse(text).map_err(|reason| error(reason.into()))?;
        Ok(Credentials::new(
            keys.access_key_id,
            keys.secret_access_key,
            keys.session_token,
            Some(SystemTime::now() + REFRESH),
            "SecretsManager",
        ))
    }
}

impl ProvideCredentials for SecretCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.current()
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

#[derive(PartialEq)]
struct Keys {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// The keys in a secret's text. Errors name fields, never values: a secret that is
/// not what we expect must not end up in a log.
fn parse(text: &str) -> Result<Keys, &'static str> {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) else {
        return Err("is not a JSON object with AccessKeyId and SecretAccessKey");
    };
    let field = |names: &[&str]| -> Result<Option<String>, &'static str> {
        match names.iter().find_map(|n| fields.get(*n)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(_) => Err("has a key field that is not a non-empty string"),
        }
    };
    let access_key_id =
        field(&["AccessKeyId", "aws_access_key_id"])?.ok_or("has no AccessKeyId")?;
    let secret_access_key =
        field(&["SecretAccessKey", "aws_secret_access_key"])?.ok_or("has no SecretAccessKey")?;
    Ok(Keys {
        access_key_id,
        secret_access_key,
        session_token: field(&["SessionToken", "aws_session_token"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_and_errors_never_echo_them() {
        let keys =
            parse(r#"{"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI"}"#).unwrap();
        assert_eq!(keys.access_key_id, "AKIDEXAMPLE");
        assert_eq!(keys.secret_access_key, "wJalrXUtnFEMI");
        assert_eq!(keys.session_token, None);
        let keys = parse(
            r#"{"aws_access_key_id": "A", "aws_secret_access_key": "S", "aws_session_token": "T"}"#,
        )
        .unwrap();
        assert_eq!(keys.session_token.as_deref(), Some("T"));

        for (text, needle) in [
            ("wJalrXUtnFEMI-not-json", "not a JSON object"),
            (r#"["wJalrXUtnFEMI"]"#, "not a JSON object"),
            (r#"{"AccessKeyId": "AKIDEXAMPLE"}"#, "no SecretAccessKey"),
            (r#"{"SecretAccessKey": "wJalrXUtnFEMI"}"#, "no AccessKeyId"),
            (
                r#"{"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": {"v": "wJalrXUtnFEMI"}}"#,
                "not a non-empty string",
            ),
        ] {
            let err = parse(text).err().unwrap();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(!err.contains("wJalr") && !err.contains("AKID"), "{err}");
        }
    }

    /// A burst of refusals (every job of a batch, at once) reads the secret once.
    #[tokio::test]
    async fn a_burst_of_jobs_after_a_refusal_reads_the_secret_once() {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        let get = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string(r#"{"AccessKeyId": "A", "SecretAccessKey": "S"}"#)
                .build()
        });
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&get]);
        let keys = SecretCredentials {
            client,
            secret: "dst-keys".into(),
            read: Arc::default(),
            reading: Arc::default(),
        };
        keys.current().await.unwrap();
        assert!(keys.forget(keys.generation()));
        let burst = (0..16).map(|_| keys.current());
        for read in futures::future::join_all(burst).await {
            assert_eq!(read.unwrap().access_key_id(), "A");
        }
        assert_eq!(
            get.num_calls(),
            2,
            "one read at start, one for the whole burst"
        );
    }

    #[test]
    fn credentials_never_print_the_secret_key() {
        let c = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI", None, None, "SecretsManager");
        assert!(!format!("{c:?}").contains("wJalrXUtnFEMI"));
    }
}
