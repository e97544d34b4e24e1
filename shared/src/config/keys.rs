//! The key that signs what only this replicator may write: a replica's provenance
//! (which decides "this is a replica", so not to copy it back and safe to delete) and
//! the jobs on its queues (which decide "copy this", with an event's sequencer). Object
//! metadata and queue messages can be written by others; a signature they cannot make
//! is what tells ours from theirs.
//!
//! The key is kept in a Secrets Manager secret (`REPLICATOR_SIGNING_KEY_SECRET`, which
//! the templates create) or a file (`REPLICATOR_SIGNING_KEY_FILE`, for the worker
//! elsewhere), as `{"current": "...", "previous": "..."}`: signatures are made with
//! `current` and accepted with either, so a rotation (the old key moved to `previous`,
//! a new one in `current`) never makes a replica look forged while processes started
//! before it still run. Two deployments of a two-way pair share the key.
//!
//! Without either variable nothing is signed and everything is believed, as before
//! signatures; the process says so once at start.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::config::settings::{SIGNING_KEY_FILE_VAR, SIGNING_KEY_SECRET_VAR};
use crate::errors::ConfigError;

/// A signing key's shortest length: 32 characters (the templates generate 64).
const SHORTEST_KEY: usize = 32;

/// Signs and checks; cheap to clone. `Signer::unsigned()` signs nothing and believes
/// everything.
#[derive(Clone, Default)]
pub struct Signer {
    keys: Option<Arc<Keys>>,
}

struct Keys {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys themselves.
        match &self.keys {
            Some(k) => write!(f, "Signer(signed, previous key: {})", k.previous.is_some()),
            None => f.write_str("Signer(unsigned)"),
        }
    }
}

#[derive(Deserialize)]
struct KeysDocument {
    current: String,
    #[serde(default)]
    previous: Option<String>,
}

impl Signer {
    pub fn unsigned() -> Signer {
        Signer { keys: None }
    }

    /// A signer with these keys (text, at least 32 characters each).
    pub fn with_keys(current: &str, previous: Option<&str>) -> Result<Signer, String> {
        for key in std::iter::once(current).chain(previous) {
            if key.chars().count() < SHORTEST_KEY {
                return Err(format!(
                    "a signing key is shorter than {SHORTEST_KEY} characters"
                ));
            }
        }
        Ok(Signer {
            keys: Some(Arc::new(Keys {
                current: current.as_bytes().to_vec(),
                previous: previous.map(|p| p.as_bytes().to_vec()),
            })),
        })
    }

    /// `{"current": "...", "previous": "..."}`, as the secret or the file holds it.
    /// Errors never repeat what the text holds.
    pub fn parse(text: &str) -> Result<Signer, String> {
        let doc: KeysDocument = serde_json::from_str(text).map_err(|_| {
            "is not a JSON object {\"current\": KEY, \"previous\": KEY (optional)}".to_string()
        })?;
        Signer::with_keys(
            &doc.current,
            doc.previous.as_deref().filter(|p| !p.is_empty()),
        )
    }

    /// Whether signatures are made and required.
    pub fn signs(&self) -> bool {
        self.keys.is_some()
    }

    /// The signature of `parts` under `domain` (what is signed: a replica's provenance,
    /// a job), made with the current key: 128 bits, in hex. `None` when unsigned.
    pub fn sign(&self, domain: &str, parts: &[&str]) -> Option<String> {
        let keys = self.keys.as_ref()?;
        Some(tag(&keys.current, domain, parts))
    }

    /// Whether `signature` is that of `parts` under the current or the previous key.
    /// Unsigned, everything is believed.
    pub fn verify(&self, domain: &str, parts: &[&str], signature: Option<&str>) -> bool {
        let Some(keys) = &self.keys else {
            return true;
        };
        let Some(signature) = signature else {
            return false;
        };
        std::iter::once(&keys.current)
            .chain(keys.previous.as_ref())
            .any(|key| constant_time_eq(tag(key, domain, parts).as_bytes(), signature.as_bytes()))
    }

    /// The signer the environment names: a secret, a file, or nothing (unsigned).
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Signer, ConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let (name, text) = match (var(SIGNING_KEY_SECRET_VAR), var(SIGNING_KEY_FILE_VAR)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Environment {
                    name: SIGNING_KEY_FILE_VAR,
                    reason: format!("is set beside {SIGNING_KEY_SECRET_VAR}: name one"),
                })
            }
            (Some(secret), None) => {
                let out = aws_sdk_secretsmanager::Client::new(sdk)
                    .get_secret_value()
                    .secret_id(&secret)
                    .send()
                    .await
                    .map_err(|e| ConfigError::Environment {
                        name: SIGNING_KEY_SECRET_VAR,
                        reason: format!("secret {secret:?}: {}", crate::errors::describe(&e)),
                    })?;
                let text = out.secret_string().unwrap_or_default().to_string();
                (SIGNING_KEY_SECRET_VAR, text)
            }
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(&path).map_err(|e| ConfigError::Environment {
                        name: SIGNING_KEY_FILE_VAR,
                        reason: format!("{path}: {e}"),
                    })?;
                (SIGNING_KEY_FILE_VAR, text)
            }
            (None, None) => {
                tracing::warn!("no signing key ({SIGNING_KEY_SECRET_VAR} or {SIGNING_KEY_FILE_VAR}): replicas' provenance and jobs are not signed, so anyone who can write to a source bucket can mark an object as a replica, and anyone who can send to the queues can name what is copied");
                return Ok(Signer::unsigned());
            }
        };
        Signer::parse(&text).map_err(|reason| ConfigError::Environment { name, reason })
    }
}

fn tag(key: &[u8], domain: &str, parts: &[&str]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(domain.as_bytes());
    for part in parts {
        // Lengths first: ("ab", "c") and ("a", "bc") sign differently.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    let full = mac.finalize().into_bytes();
    full[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef-current";
    const OLD: &str = "0123456789abcdef0123456789abcdef-previous";

    #[test]
    fn signatures_hold_under_either_key_and_nothing_else() {
        let signer = Signer::with_keys(KEY, None).unwrap();
        let sig = signer.sign("provenance", &["photos", "a.jpg"]).unwrap();
        assert_eq!(sig.len(), 32);
        assert!(signer.verify("provenance", &["photos", "a.jpg"], Some(&sig)));
        assert!(!signer.verify("provenance", &["photos", "b.jpg"], Some(&sig)));
        assert!(!signer.verify("job", &["photos", "a.jpg"], Some(&sig)));
        assert!(!signer.verify("provenance", &["photo", "sa.jpg"], Some(&sig)));
        assert!(!signer.verify("provenance", &["photos", "a.jpg"], None));
        // After a rotation the old key's signatures still hold; a stranger's never do.
        let rotated =
            Signer::with_keys("a-new-key-of-more-than-thirty-two-chars", Some(KEY)).unwrap();
        assert!(rotated.verify("provenance", &["photos", "a.jpg"], Some(&sig)));
        let stranger = Signer::with_keys(OLD, None).unwrap();
        assert!(!stranger.verify("provenance", &["photos", "a.jpg"], Some(&sig)));
        // Unsigned: nothing is signed, everything believed.
        assert_eq!(Signer::unsigned().sign("provenance", &["x"]), None);
        assert!(Signer::unsigned().verify("provenance", &["x"], None));
    }

    #[test]
    fn key_documents_are_checked_without_echoing_them() {
        assert!(
            Signer::parse(&format!(r#"{{"current": "{KEY}", "previous": "{OLD}"}}"#))
                .unwrap()
                .signs()
        );
        for bad in [
            r#"{"current": "short-secret-value"}"#,
            "short-secret-value",
            "{}",
        ] {
            let err = Signer::parse(bad).unwrap_err();
            assert!(!err.contains("short-secret-value"), "{err}");
        }
        assert!(!format!("{:?}", Signer::with_keys(KEY, None).unwrap()).contains("0123"));
    }
}
