//! The configuration document: replication rules written exactly as
//! `aws s3api put-bucket-replication` takes them, plus one `Replicator` object per
//! destination with what S3's own schema cannot say (endpoint, delete and ACL modes...).
//!
//! The document is walked by hand rather than with serde derive so that a check reports
//! every problem at once, each with its JSON path, instead of stopping at the first.

pub mod clients;
pub mod keys;
pub mod objects;
pub mod secrets;
pub mod settings;
pub mod source;
pub mod storage_class;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Value};

use crate::config::storage_class::{is_aws_storage_class, is_storage_class_token};
use crate::errors::ConfigError;
pub use crate::errors::Problem;

/// A parsed, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub sources: Vec<SourceBucket>,
    /// Fields that parse but do nothing here, each with what the tool does instead.
    pub notes: Vec<Problem>,
}

/// One source bucket and its rules, in document order.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceBucket {
    pub bucket: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `ID`, or `rule-N` (1-based position) when the document gives none, as S3 would
    /// assign one.
    pub id: String,
    pub priority: Option<i64>,
    pub enabled: bool,
    pub filter: Filter,
    /// True when the rule used the V2 schema (a `Filter`); AWS semantics differ slightly.
    pub has_filter: bool,
    pub destination: Destination,
    pub replica_modifications: bool,
    /// `SourceSelectionCriteria.SseKmsEncryptedObjects`: SSE-KMS (and DSSE-KMS) objects
    /// replicate only under a rule that enables this (and names a `ReplicaKmsKeyID`).
    pub sse_kms_objects: bool,
}

impl Rule {
    /// What this rule leaves where it is, as S3 would, for `config check` to say.
    pub fn skipped_objects(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.sse_kms_objects {
            out.push("SSE-KMS and DSSE-KMS objects (SourceSelectionCriteria.SseKmsEncryptedObjects is not Enabled)");
        }
        out.push("SSE-C objects");
        out.push("objects in GLACIER, DEEP_ARCHIVE or an Intelligent-Tiering archive tier");
        if !self.destination.replicate_replicas {
            out.push("replicas of other buckets (Replicator.ReplicateReplicas is not true)");
        }
        out.push("lifecycle expirations");
        out
    }
}

/// What an object must look like for a rule to apply: a key prefix and tags that must
/// all be present with these values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub prefix: String,
    pub tags: Vec<(String, String)>,
}

impl Filter {
    pub fn needs_tags(&self) -> bool {
        !self.tags.is_empty()
    }
    pub fn matches_key(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }
    pub fn matches_tags(&self, object_tags: &[(String, String)]) -> bool {
        self.tags.iter().all(|t| object_tags.contains(t))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// Bucket name (an ARN in the document is reduced to its name).
    pub bucket: String,
    pub account: Option<String>,
    /// `Destination.StorageClass`: when absent the replica keeps the source's class.
    pub storage_class: Option<String>,
    pub replica_kms_key_id: Option<String>,
    pub endpoint: EndpointSettings,
    pub storage_class_map: BTreeMap<String, String>,
    pub delete_mode: DeleteMode,
    pub acl_mode: AclMode,
    pub part_size: Option<u64>,
    /// `Replicator.ReplicateReplicas`: objects that are themselves replicas (A -> B ->
    /// C) travel on. Off by default, as on S3, where replicas are never replicated.
    pub replicate_replicas: bool,
    /// `Replicator.TwoWay`: the destination replicates back to this source from another
    /// deployment (a pair deployed in one document is seen from its rules): a user's
    /// delete there may remove the original here.
    pub two_way: bool,
    /// `Replicator.Preconditions`: probe, enforced or ignored.
    pub preconditions: PreconditionMode,
    /// `Replicator.WriteOrder`: adaptive, replica-first or new-keys-first.
    pub write_order: WriteOrder,
}

impl Destination {
    /// The class the replica gets: an entry of the class map for the source's class
    /// wins, then the rule's StorageClass, then the source's own class.
    pub fn replica_storage_class(&self, source_class: &str) -> String {
        if let Some(mapped) = self.storage_class_map.get(source_class) {
            return mapped.clone();
        }
        self.storage_class
            .clone()
            .unwrap_or_else(|| source_class.to_string())
    }

    /// True when the destination lives where the source does, so S3 can copy server-side.
    pub fn is_same_endpoint(&self) -> bool {
        self.endpoint == EndpointSettings::default()
    }
}

/// Where a destination lives, when it is not where the source lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EndpointSettings {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub credentials: CredentialSource,
    pub force_path_style: bool,
}

/// Whose keys sign the requests to a destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum CredentialSource {
    /// The process's own credentials (its role, or the SDK's default chain). Implied
    /// for destinations on AWS; at another `EndpointUrl` only when the document says
    /// `{"DefaultChain": true}`, so the function's keys never reach a third party by
    /// accident.
    #[default]
    DefaultChain,
    /// A named profile of the shared config files, and nothing else.
    Profile(String),
    /// A Secrets Manager secret (name or ARN) holding the destination's keys.
    Secret(String),
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::DefaultChain => f.write_str("the process's own credentials"),
            CredentialSource::Profile(p) => write!(f, "profile \"{p}\""),
            CredentialSource::Secret(s) => write!(f, "secret \"{s}\""),
        }
    }
}

/// Which deletes at the source reach the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteMode {
    /// Deletes are never replicated.
    None,
    /// Delete markers (and plain deletes on unversioned sources) remove the replica;
    /// permanent deletes of a version do not. AWS's DeleteMarkerReplication.
    Markers,
    /// Every delete is replicated.
    All,
}

/// How the replica's ACL is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AclMode {
    /// The source's grants travel with the object.
    Copy,
    /// The destination bucket's owner gets full control (bucket-owner-full-control),
    /// as AccessControlTranslation with Owner=Destination does.
    OwnerOverride,
    /// Nothing is set: the destination bucket's defaults apply.
    None,
}

/// Whether a destination checks the conditions replica writes carry
/// (`Replicator.Preconditions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PreconditionMode {
    /// Learned from the first writes (AWS's S3 is taken as checking them).
    #[default]
    Probe,
    Enforced,
    /// Writes are ordered by the fallback: a write that lands late looks again.
    Ignored,
}

/// Which request comes first when an object is written (`Replicator.WriteOrder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteOrder {
    /// New keys first (`If-None-Match: *` before any HEAD of the replica) while writes
    /// keep finding no replica; the replica's HEAD first once one finds one there.
    #[default]
    Adaptive,
    /// Always HEAD the replica first.
    ReplicaFirst,
    /// Always try `If-None-Match: *` first.
    NewKeysFirst,
}

impl fmt::Display for DeleteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeleteMode::None => "none",
            DeleteMode::Markers => "markers",
            DeleteMode::All => "all",
        })
    }
}

impl fmt::Display for AclMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AclMode::Copy => "copy",
            AclMode::OwnerOverride => "owner-override",
            AclMode::None => "none",
        })
    }
}

impl Config {
    /// Parses and validates a document; every problem found is returned, not just the
    /// first.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            problems: vec![Problem {
                path: "$".into(),
                message,
            }],
        };
        // Editors on Windows save UTF-8 with a byte-order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim_start().starts_with('<') {
            return Err(invalid("the document is XML (as PutBucketReplication takes it); this tool reads the JSON that `aws s3api get-bucket-replication --bucket NAME` prints, wrapped as {\"Sources\": [{\"Bucket\": \"NAME\", \"ReplicationConfiguration\": ...}]}".into()));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        if value.get("ReplicationConfiguration").is_some() && value.get("Sources").is_none() {
            return Err(invalid("this is what `aws s3api get-bucket-replication` prints, which does not name its bucket: wrap it as {\"Sources\": [{\"Bucket\": \"NAME\", \"ReplicationConfiguration\": ...}]} (`s3-replicator config check --bucket NAME` does this)".into()));
        }
        let mut walker = Walker::default();
        let mut config = walker.document(&value);
        config.notes = walker.notes;
        if walker.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                problems: walker.problems,
            })
        }
    }

    /// The output of `aws s3api get-bucket-replication` (`{"ReplicationConfiguration":
    /// ...}`) as a document for `bucket`; any other document as it is.
    pub fn wrap_bucket_replication(text: &str, bucket: &str) -> String {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mut map)) if !map.contains_key("Sources") => {
                match map.remove("ReplicationConfiguration") {
                    Some(inner) => serde_json::json!({"Sources": [{"Bucket": bucket, "ReplicationConfiguration": inner}]}).to_string(),
                    None => text.to_string(),
                }
            }
            _ => text.to_string(),
        }
    }

    pub fn source(&self, bucket: &str) -> Option<&SourceBucket> {
        self.sources.iter().find(|s| s.bucket == bucket)
    }

    /// The rule with this ID for this source bucket.
    pub fn rule(&self, bucket: &str, rule_id: &str) -> Option<&Rule> {
        self.source(bucket)?.rules.iter().find(|r| r.id == rule_id)
    }

    /// Whether a replica written into `from` can travel on, through enabled rules of
    /// this endpoint, into `to`: then an object arriving in `from` may be a replica of
    /// `to` that must not be sent back (two-way or cyclic replication).
    pub fn reaches(&self, from: &str, to: &str) -> bool {
        let mut seen: Vec<&str> = vec![from];
        let mut frontier: Vec<&str> = vec![from];
        while let Some(bucket) = frontier.pop() {
            if bucket == to {
                return true;
            }
            let next = self
                .source(bucket)
                .into_iter()
                .flat_map(|s| &s.rules)
                .filter(|r| r.enabled && r.destination.is_same_endpoint())
                .map(|r| r.destination.bucket.as_str());
            for b in next {
                if !seen.contains(&b) {
                    seen.push(b);
                    frontier.push(b);
                }
            }
        }
        false
    }

    /// Every distinct destination endpoint, so clients can be built once at cold start.
    /// Each distinct destination endpoint, with the first bucket that uses it (to name
    /// it in errors).
    pub fn endpoints(&self) -> Vec<(EndpointSettings, String)> {
        let mut seen: Vec<(EndpointSettings, String)> = Vec::new();
        for rule in self.sources.iter().flat_map(|s| &s.rules) {
            let endpoint = &rule.destination.endpoint;
            if !seen.iter().any(|(e, _)| e == endpoint) {
                seen.push((endpoint.clone(), rule.destination.bucket.clone()));
            }
        }
        seen
    }
}

mod destination;
mod document;
#[cfg(test)]
mod tests;
mod walker;

use walker::Walker;
