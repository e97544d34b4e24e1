//! The configuration document: replication rules written exactly as
//! `aws s3api put-bucket-replication` takes them, plus one `Replicator` object per
//! destination with what S3's own schema cannot say (endpoint, delete and ACL modes...).
//!
//! The document is walked by hand rather than with serde derive so that a check reports
//! every problem at once, each with its JSON path, instead of stopping at the first.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Value};

use crate::errors::ConfigError;
use crate::storage_class::{is_aws_storage_class, is_storage_class_token};

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

#[derive(Default)]
struct Walker {
    problems: Vec<Problem>,
    notes: Vec<Problem>,
}

/// A JSON object being read: remembers which keys were consumed so unknown ones can be
/// reported (a misspelt `Prefx` must not silently widen a rule).
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    used: Vec<&'static str>,
}

impl Walker {
    fn note(&mut self, path: &str, message: impl Into<String>) {
        self.notes.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn obj<'a>(&mut self, value: &'a Value, path: &str) -> Option<Obj<'a>> {
        match value {
            Value::Object(map) => Some(Obj {
                map,
                path: path.to_string(),
                used: Vec::new(),
            }),
            other => {
                self.problem(path, format!("expected an object, found {}", kind(other)));
                None
            }
        }
    }

    /// Reports keys nobody asked for.
    fn finish(&mut self, obj: Obj<'_>) {
        for key in obj.map.keys() {
            if !obj.used.contains(&key.as_str()) {
                let expected = obj.used.join(", ");
                self.problem(
                    &format!("{}.{}", obj.path, key),
                    format!("unknown field (expected one of: {expected})"),
                );
            }
        }
    }

    fn field<'a>(&mut self, obj: &mut Obj<'a>, name: &'static str) -> Option<&'a Value> {
        obj.used.push(name);
        obj.map.get(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, obj: &mut Obj<'_>, name: &'static str, required: bool) -> Option<String> {
        let path = format!("{}.{}", obj.path, name);
        match self.field(obj, name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problem(&path, format!("expected a string, found {}", kind(other)));
                None
            }
            None => {
                if required {
                    self.problem(&path, "is required");
                }
                None
            }
        }
    }

    fn integer(&mut self, obj: &mut Obj<'_>, name: &'static str) -> Option<i64> {
        let path = format!("{}.{}", obj.path, name);
        match self.field(obj, name) {
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
            Some(other) => {
                self.problem(&path, format!("expected an integer, found {}", kind(other)));
                None
            }
            None => None,
        }
    }

    fn boolean(&mut self, obj: &mut Obj<'_>, name: &'static str) -> Option<bool> {
        let path = format!("{}.{}", obj.path, name);
        match self.field(obj, name) {
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.problem(
                    &path,
                    format!("expected true or false, found {}", kind(other)),
                );
                None
            }
            None => None,
        }
    }

    /// `{"Status": "Enabled" | "Disabled"}` as S3 writes switches.
    fn status_switch(&mut self, obj: &mut Obj<'_>, name: &'static str) -> Option<bool> {
        let value = self.field(obj, name)?;
        let path = format!("{}.{}", obj.path, name);
        let mut inner = self.obj(value, &path)?;
        let status = self.status(&mut inner);
        self.finish(inner);
        status
    }

    fn status(&mut self, obj: &mut Obj<'_>) -> Option<bool> {
        let path = format!("{}.Status", obj.path);
        match self.string(obj, "Status", true)?.as_str() {
            "Enabled" => Some(true),
            "Disabled" => Some(false),
            other => {
                self.problem(
                    &path,
                    format!("must be \"Enabled\" or \"Disabled\", found \"{other}\""),
                );
                None
            }
        }
    }

    fn document(&mut self, value: &Value) -> Config {
        let mut sources = Vec::new();
        let Some(mut root) = self.obj(value, "$") else {
            return Config {
                sources,
                notes: Vec::new(),
            };
        };
        match self.field(&mut root, "Sources") {
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    self.problem("$.Sources", "lists no source bucket");
                }
                for (i, item) in items.iter().enumerate() {
                    if let Some(source) = self.source(item, &format!("$.Sources[{i}]")) {
                        sources.push(source);
                    }
                }
            }
            Some(other) => self.problem(
                "$.Sources",
                format!("expected an array, found {}", kind(other)),
            ),
            None => self.problem("$.Sources", "is required"),
        }
        self.finish(root);

        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, source) in sources.iter().enumerate() {
            if let Some(first) = seen.insert(source.bucket.as_str(), i) {
                self.problem(
                    &format!("$.Sources[{i}].Bucket"),
                    format!(
                        "bucket \"{}\" is already configured at $.Sources[{first}]",
                        source.bucket
                    ),
                );
            }
        }
        Config {
            sources,
            notes: Vec::new(),
        }
    }

    fn source(&mut self, value: &Value, path: &str) -> Option<SourceBucket> {
        let mut obj = self.obj(value, path)?;
        let bucket = self.string(&mut obj, "Bucket", true);
        if let Some(b) = &bucket {
            self.bucket_name(b, &format!("{path}.Bucket"));
        }
        let rules = match self.field(&mut obj, "ReplicationConfiguration") {
            Some(rc) => self.replication_configuration(
                rc,
                &format!("{path}.ReplicationConfiguration"),
                bucket.as_deref(),
            ),
            None => {
                self.problem(&format!("{path}.ReplicationConfiguration"), "is required");
                Vec::new()
            }
        };
        self.finish(obj);
        Some(SourceBucket {
            bucket: bucket?,
            rules,
        })
    }

    fn replication_configuration(
        &mut self,
        value: &Value,
        path: &str,
        bucket: Option<&str>,
    ) -> Vec<Rule> {
        let Some(mut obj) = self.obj(value, path) else {
            return Vec::new();
        };
        // Role is what S3 assumes to replicate; here the function's own role does.
        let _ = self.field(&mut obj, "Role");
        let mut rules = Vec::new();
        match self.field(&mut obj, "Rules") {
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    self.problem(&format!("{path}.Rules"), "lists no rule");
                }
                if items.len() > MAX_RULES {
                    self.problem(
                        &format!("{path}.Rules"),
                        format!(
                            "lists {} rules; S3 allows at most {MAX_RULES} per source bucket",
                            items.len()
                        ),
                    );
                }
                for (i, item) in items.iter().enumerate() {
                    if let Some(rule) = self.rule(item, &format!("{path}.Rules[{i}]"), i) {
                        rules.push((i, rule));
                    }
                }
            }
            Some(other) => self.problem(
                &format!("{path}.Rules"),
                format!("expected an array, found {}", kind(other)),
            ),
            None => self.problem(&format!("{path}.Rules"), "is required"),
        }
        self.finish(obj);
        self.rules_together(&rules, path);
        for (i, rule) in &rules {
            // The worker would rewrite the source object in place with each event.
            if Some(rule.destination.bucket.as_str()) == bucket
                && rule.destination.is_same_endpoint()
            {
                self.problem(
                    &format!("{path}.Rules[{i}].Destination.Bucket"),
                    "is the rule's own source bucket; a bucket cannot replicate to itself",
                );
            }
        }
        rules.into_iter().map(|(_, rule)| rule).collect()
    }

    /// Checks S3 makes across the rules of one configuration.
    /// `rules` pairs each rule that parsed with its index in the document.
    fn rules_together(&mut self, rules: &[(usize, Rule)], path: &str) {
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for (i, rule) in rules.iter().map(|(i, r)| (*i, r)) {
            if let Some(first) = ids.insert(rule.id.as_str(), i) {
                self.problem(
                    &format!("{path}.Rules[{i}].ID"),
                    format!("ID \"{}\" is already used by Rules[{first}]", rule.id),
                );
            }
        }
        let v2 = rules.iter().filter(|(_, r)| r.has_filter).count();
        if v2 > 0 && v2 < rules.len() {
            self.problem(
                &format!("{path}.Rules"),
                "mixes rules with Filter and rules with a top-level Prefix; S3 rejects this, use Filter everywhere",
            );
        }
        if v2 == rules.len() {
            let mut priorities: HashMap<(i64, &str), usize> = HashMap::new();
            for (i, rule) in rules.iter().map(|(i, r)| (*i, r)) {
                let Some(p) = rule.priority else { continue };
                let key = (p, rule.destination.bucket.as_str());
                if let Some(first) = priorities.insert(key, i) {
                    self.problem(
                        &format!("{path}.Rules[{i}].Priority"),
                        format!(
                            "Priority {p} is also used by Rules[{first}] for the same destination; S3 needs them distinct"
                        ),
                    );
                }
            }
        } else {
            // The V1 schema has no priorities and one destination for every rule.
            let mut prefixes: Vec<(&str, usize)> = Vec::new();
            for (i, rule) in rules.iter().map(|(i, r)| (*i, r)) {
                for (other, j) in &prefixes {
                    if rule.filter.prefix.starts_with(other)
                        || other.starts_with(&rule.filter.prefix)
                    {
                        self.problem(
                            &format!("{path}.Rules[{i}].Prefix"),
                            format!("overlaps the prefix of Rules[{j}]; without Filter and Priority S3 rejects overlapping rules"),
                        );
                    }
                }
                prefixes.push((&rule.filter.prefix, i));
            }
        }
    }

    fn rule(&mut self, value: &Value, path: &str, index: usize) -> Option<Rule> {
        let mut obj = self.obj(value, path)?;
        let id = self.string(&mut obj, "ID", false);
        if let Some(id) = &id {
            if id.len() > 255 {
                self.problem(&format!("{path}.ID"), "is longer than 255 characters");
            }
        }
        let priority = self.integer(&mut obj, "Priority");
        if let Some(p) = priority.filter(|p| *p < 0) {
            self.problem(
                &format!("{path}.Priority"),
                format!("{p} is negative; S3 takes priorities from 0 up"),
            );
        }
        let enabled = self.status(&mut obj);
        let legacy_prefix = self.string(&mut obj, "Prefix", false);
        let filter_value = self.field(&mut obj, "Filter");
        let has_filter = filter_value.is_some();
        let filter = match (filter_value, &legacy_prefix) {
            (Some(_), Some(_)) => {
                self.problem(
                    &format!("{path}.Prefix"),
                    "cannot be used together with Filter; put the prefix in Filter.Prefix",
                );
                None
            }
            (Some(f), None) => self.filter(f, &format!("{path}.Filter")),
            (None, Some(prefix)) => Some(Filter {
                prefix: prefix.clone(),
                tags: Vec::new(),
            }),
            (None, None) => Some(Filter::default()),
        };
        // S3 requires DeleteMarkerReplication with Filter (absent, deletes are not
        // replicated); a rule in the older schema (a top-level Prefix, no Filter)
        // replicates delete markers, as S3 does for such rules.
        let dmr = self.status_switch(&mut obj, "DeleteMarkerReplication");
        let selection = match self.field(&mut obj, "SourceSelectionCriteria") {
            Some(v) => self.source_selection(v, &format!("{path}.SourceSelectionCriteria")),
            None => Selection::default(),
        };
        if let Some(v) = self.field(&mut obj, "ExistingObjectReplication") {
            self.note(
                &format!("{path}.ExistingObjectReplication"),
                "accepted and ignored: events replicate new writes only; replicate what exists with `s3-replicator backfill`",
            );
            let mut inner = self.obj(v, &format!("{path}.ExistingObjectReplication"));
            if let Some(inner) = inner.as_mut() {
                self.status(inner);
            }
            if let Some(inner) = inner {
                self.finish(inner);
            }
        }
        let destination = match self.field(&mut obj, "Destination") {
            Some(v) => self.destination(v, &format!("{path}.Destination"), dmr, !has_filter),
            None => {
                self.problem(&format!("{path}.Destination"), "is required");
                None
            }
        };
        self.finish(obj);

        if let (true, Some(d)) = (selection.sse_kms, &destination) {
            if d.replica_kms_key_id.is_none() {
                self.problem(
                    &format!("{path}.Destination.EncryptionConfiguration.ReplicaKmsKeyID"),
                    "is required when SourceSelectionCriteria.SseKmsEncryptedObjects is Enabled (the key the replicas are encrypted with; S3 requires it too)",
                );
            }
        }
        if let (Some(filter), Some(true)) = (&filter, dmr) {
            if filter.needs_tags() {
                self.problem(
                    &format!("{path}.DeleteMarkerReplication"),
                    "cannot be Enabled on a rule with a tag filter: a deleted object has no tags to match (S3 rejects this too)",
                );
            }
        }
        Some(Rule {
            id: id.unwrap_or_else(|| format!("rule-{}", index + 1)),
            priority,
            enabled: enabled?,
            filter: filter?,
            has_filter,
            destination: destination?,
            replica_modifications: selection.replica_modifications,
            sse_kms_objects: selection.sse_kms,
        })
    }

    fn filter(&mut self, value: &Value, path: &str) -> Option<Filter> {
        let mut obj = self.obj(value, path)?;
        let prefix = self.string(&mut obj, "Prefix", false);
        let tag = self.field(&mut obj, "Tag");
        let and = self.field(&mut obj, "And");
        let present = [prefix.is_some(), tag.is_some(), and.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if present > 1 {
            self.problem(
                path,
                "takes exactly one of Prefix, Tag or And; combine a prefix and tags with And",
            );
        }
        let mut filter = Filter {
            prefix: prefix.unwrap_or_default(),
            tags: Vec::new(),
        };
        if let Some(tag) = tag {
            if let Some(t) = self.tag(tag, &format!("{path}.Tag")) {
                filter.tags.push(t);
            }
        }
        if let Some(and) = and {
            let and_path = format!("{path}.And");
            if let Some(mut and_obj) = self.obj(and, &and_path) {
                if let Some(p) = self.string(&mut and_obj, "Prefix", false) {
                    filter.prefix = p;
                }
                match self.field(&mut and_obj, "Tags") {
                    Some(Value::Array(tags)) => {
                        for (i, t) in tags.iter().enumerate() {
                            if let Some(t) = self.tag(t, &format!("{and_path}.Tags[{i}]")) {
                                if filter.tags.iter().any(|(k, _)| *k == t.0) {
                                    self.problem(
                                        &format!("{and_path}.Tags[{i}].Key"),
                                        format!("tag key \"{}\" appears twice", t.0),
                                    );
                                }
                                filter.tags.push(t);
                            }
                        }
                    }
                    Some(other) => self.problem(
                        &format!("{and_path}.Tags"),
                        format!("expected an array, found {}", kind(other)),
                    ),
                    None => {}
                }
                let conditions =
                    usize::from(and_obj.map.contains_key("Prefix")) + filter.tags.len();
                if conditions < 2 {
                    self.problem(
                        &and_path,
                        format!("has {conditions} condition(s); S3 needs And to combine two or more (use Prefix or Tag alone instead)"),
                    );
                }
                self.finish(and_obj);
            }
        }
        self.finish(obj);
        Some(filter)
    }

    fn tag(&mut self, value: &Value, path: &str) -> Option<(String, String)> {
        let mut obj = self.obj(value, path)?;
        let key = self.string(&mut obj, "Key", true);
        let val = self.string(&mut obj, "Value", true);
        self.finish(obj);
        Some((key?, val?))
    }

    fn source_selection(&mut self, value: &Value, path: &str) -> Selection {
        let Some(mut obj) = self.obj(value, path) else {
            return Selection::default();
        };
        let selection = Selection {
            replica_modifications: self
                .status_switch(&mut obj, "ReplicaModifications")
                .unwrap_or(false),
            sse_kms: self
                .status_switch(&mut obj, "SseKmsEncryptedObjects")
                .unwrap_or(false),
        };
        self.finish(obj);
        selection
    }

    /// `dmr` is the rule's DeleteMarkerReplication, if written; `legacy` says the rule
    /// uses the older schema, whose delete markers S3 replicates.
    fn destination(
        &mut self,
        value: &Value,
        path: &str,
        dmr: Option<bool>,
        legacy: bool,
    ) -> Option<Destination> {
        let mut obj = self.obj(value, path)?;
        let bucket = self.string(&mut obj, "Bucket", true).and_then(|b| {
            let name = b.strip_prefix("arn:aws:s3:::").unwrap_or(&b).to_string();
            if b.starts_with("arn:") && !b.starts_with("arn:aws:s3:::") {
                self.problem(
                    &format!("{path}.Bucket"),
                    format!("\"{b}\" is not an S3 bucket ARN (arn:aws:s3:::NAME)"),
                );
                return None;
            }
            self.bucket_name(&name, &format!("{path}.Bucket"));
            Some(name)
        });
        let account = self.string(&mut obj, "Account", false);
        if let Some(a) = &account {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                self.problem(
                    &format!("{path}.Account"),
                    format!("\"{a}\" is not an AWS account ID (12 digits)"),
                );
            }
        }
        let storage_class = self.string(&mut obj, "StorageClass", false);
        if let Some(sc) = &storage_class {
            if !is_aws_storage_class(sc) {
                self.problem(
                    &format!("{path}.StorageClass"),
                    format!("\"{sc}\" is not an S3 storage class (for another provider's classes use Replicator.StorageClassMap)"),
                );
            }
        }
        let mut owner_override = false;
        if let Some(v) = self.field(&mut obj, "AccessControlTranslation") {
            let act_path = format!("{path}.AccessControlTranslation");
            if let Some(mut act) = self.obj(v, &act_path) {
                match self.string(&mut act, "Owner", true).as_deref() {
                    Some("Destination") => owner_override = true,
                    Some(other) => self.problem(
                        &format!("{act_path}.Owner"),
                        format!("must be \"Destination\", found \"{other}\""),
                    ),
                    None => {}
                }
                self.finish(act);
            }
            if owner_override && account.is_none() {
                self.problem(
                    &format!("{path}.Account"),
                    "is required with AccessControlTranslation (S3 needs the owner's account)",
                );
            }
        }
        let mut replica_kms_key_id = None;
        if let Some(v) = self.field(&mut obj, "EncryptionConfiguration") {
            if let Some(mut enc) = self.obj(v, &format!("{path}.EncryptionConfiguration")) {
                replica_kms_key_id = self.string(&mut enc, "ReplicaKmsKeyID", false);
                self.finish(enc);
            }
        }
        // Accepted so a pasted rule parses; RTC and its metrics are S3's own service.
        if self.field(&mut obj, "ReplicationTime").is_some() {
            self.note(
                &format!("{path}.ReplicationTime"),
                "accepted and ignored: S3 RTC's objective is the stack's replication-time alarm here (ReplicationTimeObjectiveSeconds / replication_time_objective_seconds)",
            );
        }
        if self.field(&mut obj, "Metrics").is_some() {
            self.note(
                &format!("{path}.Metrics"),
                "accepted and ignored: every job's outcome is a log line (bucket, key, destination, bytes, latency, reason) instead",
            );
        }

        let ext = match self.field(&mut obj, "Replicator") {
            Some(v) => self.extension(v, &format!("{path}.Replicator")),
            None => Some(Extension::default()),
        };
        self.finish(obj);
        let ext = ext?;

        let default_delete = if dmr.unwrap_or(legacy) {
            DeleteMode::Markers
        } else {
            DeleteMode::None
        };
        let delete_mode = match ext.delete_mode {
            Some(mode) => {
                let consistent = match dmr {
                    None => true,
                    Some(true) => mode != DeleteMode::None,
                    Some(false) => mode == DeleteMode::None,
                };
                if !consistent {
                    self.problem(
                        &format!("{path}.Replicator.DeleteMode"),
                        format!("\"{mode}\" contradicts the rule's DeleteMarkerReplication; make them agree or drop one"),
                    );
                }
                mode
            }
            None => default_delete,
        };
        let acl_mode = match ext.acl_mode {
            Some(AclMode::Copy) if owner_override => {
                self.problem(
                    &format!("{path}.Replicator.AclMode"),
                    "\"copy\" contradicts AccessControlTranslation (Owner=Destination), which means \"owner-override\"",
                );
                AclMode::Copy
            }
            Some(mode) => mode,
            None if owner_override => AclMode::OwnerOverride,
            None => AclMode::Copy,
        };
        Some(Destination {
            bucket: bucket?,
            account,
            storage_class,
            replica_kms_key_id,
            endpoint: ext.endpoint,
            storage_class_map: ext.storage_class_map,
            delete_mode,
            acl_mode,
            part_size: ext.part_size,
            replicate_replicas: ext.replicate_replicas,
        })
    }

    fn extension(&mut self, value: &Value, path: &str) -> Option<Extension> {
        let mut obj = self.obj(value, path)?;
        let mut ext = Extension::default();
        ext.endpoint.endpoint_url = self.string(&mut obj, "EndpointUrl", false);
        if let Some(url) = &ext.endpoint.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.problem(
                    &format!("{path}.EndpointUrl"),
                    format!("\"{url}\" must start with http:// or https://"),
                );
            }
        }
        ext.endpoint.region = self.string(&mut obj, "Region", false);
        ext.endpoint.force_path_style = self.boolean(&mut obj, "ForcePathStyle").unwrap_or(false);
        ext.replicate_replicas = self.boolean(&mut obj, "ReplicateReplicas").unwrap_or(false);
        let mut explicit_default = false;
        if let Some(v) = self.field(&mut obj, "Credentials") {
            let cred_path = format!("{path}.Credentials");
            if let Some(mut creds) = self.obj(v, &cred_path) {
                let profile = self.string(&mut creds, "Profile", false);
                let secret = self.string(&mut creds, "Secret", false);
                explicit_default = self.boolean(&mut creds, "DefaultChain").unwrap_or(false);
                let mut had_keys = false;
                for forbidden in ["AccessKeyId", "SecretAccessKey", "SessionToken"] {
                    if creds.map.contains_key(forbidden) {
                        had_keys = true;
                        creds.used.push(forbidden);
                        self.problem(
                            &format!("{cred_path}.{forbidden}"),
                            "keys never belong in the configuration; name a Secret (AWS Secrets Manager) or a Profile",
                        );
                    }
                }
                let named = usize::from(profile.is_some())
                    + usize::from(secret.is_some())
                    + usize::from(explicit_default);
                if named > 1 {
                    self.problem(
                        &cred_path,
                        "name one of Secret, Profile or DefaultChain, not several",
                    );
                } else if named == 0 && !had_keys {
                    self.problem(
                        &cred_path,
                        "name a Secret, a Profile, or {\"DefaultChain\": true}",
                    );
                }
                ext.endpoint.credentials = match (profile, secret) {
                    (Some(p), _) => CredentialSource::Profile(p),
                    (None, Some(s)) => CredentialSource::Secret(s),
                    (None, None) => CredentialSource::DefaultChain,
                };
                self.finish(creds);
            }
        }
        // The process's own keys (and session token) go to another endpoint only when
        // the document says so: an EndpointUrl without Credentials would hand them to
        // whoever runs that endpoint.
        if let Some(url) = &ext.endpoint.endpoint_url {
            if ext.endpoint.credentials == CredentialSource::DefaultChain && !explicit_default {
                self.problem(
                    &format!("{path}.Credentials"),
                    format!("is required with EndpointUrl: without it the process's own AWS keys would be sent to {url}; name a Secret or a Profile, or write {{\"DefaultChain\": true}} to send them on purpose"),
                );
            }
        }
        match self.field(&mut obj, "StorageClassMap") {
            Some(Value::Object(map)) => {
                for (from, to) in map {
                    let entry = format!("{path}.StorageClassMap.{from}");
                    if !is_aws_storage_class(from) {
                        self.problem(
                            &entry,
                            format!(
                                "\"{from}\" is not an S3 storage class a source object can have"
                            ),
                        );
                    }
                    match to {
                        Value::String(to) if is_storage_class_token(to) => {
                            ext.storage_class_map.insert(from.clone(), to.clone());
                        }
                        Value::String(to) => self.problem(
                            &entry,
                            format!("\"{to}\" is not a storage class name (letters, digits and _)"),
                        ),
                        other => self
                            .problem(&entry, format!("expected a string, found {}", kind(other))),
                    }
                }
            }
            Some(other) => self.problem(
                &format!("{path}.StorageClassMap"),
                format!("expected an object, found {}", kind(other)),
            ),
            None => {}
        }
        ext.delete_mode = self.enum_field(&mut obj, "DeleteMode", &["none", "markers", "all"]);
        ext.acl_mode = self.enum_field(&mut obj, "AclMode", &["copy", "owner-override", "none"]);
        if let Some(size) = self.integer(&mut obj, "PartSize") {
            const MIB: i64 = 1024 * 1024;
            if !(5 * MIB..=5 * 1024 * MIB).contains(&size) {
                self.problem(
                    &format!("{path}.PartSize"),
                    format!("{size} is outside S3's part sizes (5 MiB to 5 GiB)"),
                );
            } else {
                ext.part_size = Some(size as u64);
            }
        }
        self.finish(obj);
        Some(ext)
    }

    fn enum_field<T: serde::de::DeserializeOwned>(
        &mut self,
        obj: &mut Obj<'_>,
        name: &'static str,
        allowed: &[&str],
    ) -> Option<T> {
        let path = format!("{}.{}", obj.path, name);
        let s = self.string(obj, name, false)?;
        match serde_json::from_value(Value::String(s.clone())) {
            Ok(v) => Some(v),
            Err(_) => {
                self.problem(
                    &path,
                    format!("\"{s}\" is not one of: {}", allowed.join(", ")),
                );
                None
            }
        }
    }

    fn bucket_name(&mut self, name: &str, path: &str) {
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !(3..=63).contains(&name.len()) || !ok_chars {
            self.problem(
                path,
                format!(
                    "\"{name}\" is not a valid bucket name (3-63 characters: a-z, 0-9, '-', '.')"
                ),
            );
        }
    }
}

#[derive(Default)]
struct Extension {
    endpoint: EndpointSettings,
    storage_class_map: BTreeMap<String, String>,
    delete_mode: Option<DeleteMode>,
    acl_mode: Option<AclMode>,
    part_size: Option<u64>,
    replicate_replicas: bool,
}

/// What a rule's `SourceSelectionCriteria` enables.
#[derive(Default)]
struct Selection {
    replica_modifications: bool,
    sse_kms: bool,
}

/// S3's limit on rules in one replication configuration.
const MAX_RULES: usize = 1000;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Config::parse(text) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { problems }) => {
                problems.iter().map(|p| p.to_string()).collect()
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn parses_a_rule_pasted_from_put_bucket_replication() {
        let config = Config::parse(include_str!("../../tests/fixtures/config/full.json")).unwrap();
        let photos = config.source("photos").unwrap();
        assert_eq!(photos.rules.len(), 3);
        let r = &photos.rules[0];
        assert_eq!(r.id, "raw-to-archive");
        assert_eq!(r.priority, Some(2));
        assert!(r.enabled);
        assert_eq!(r.filter.prefix, "raw/");
        assert_eq!(r.filter.tags, vec![("keep".to_string(), "yes".to_string())]);
        assert_eq!(r.destination.bucket, "photos-archive");
        assert_eq!(r.destination.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(r.destination.acl_mode, AclMode::OwnerOverride);
        assert_eq!(r.destination.delete_mode, DeleteMode::None);
        assert!(r.replica_modifications);
        let offsite = &photos.rules[2];
        assert_eq!(
            offsite.destination.endpoint.endpoint_url.as_deref(),
            Some("https://s3.gra.io.cloud.ovh.net")
        );
        assert_eq!(offsite.destination.delete_mode, DeleteMode::All);
        assert_eq!(
            offsite
                .destination
                .storage_class_map
                .get("GLACIER")
                .map(String::as_str),
            Some("STANDARD")
        );
        assert_eq!(
            offsite.destination.replica_storage_class("GLACIER"),
            "STANDARD"
        );
        assert_eq!(
            offsite.destination.replica_storage_class("STANDARD_IA"),
            "STANDARD_IA"
        );
        assert!(!photos.rules[1].enabled);
        assert_eq!(photos.rules[1].destination.delete_mode, DeleteMode::Markers);
        assert_eq!(config.endpoints().len(), 2);
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let found = problems(include_str!("../../tests/fixtures/config/broken.json"));
        let expected = [
            "$.Sources[0].Bucket: \"Bad_Bucket\" is not a valid bucket name",
            "$.Sources[0].ReplicationConfiguration.Rules[0].Filter.Prefx: unknown field",
            "$.Sources[0].ReplicationConfiguration.Rules[0].Status: must be \"Enabled\" or \"Disabled\", found \"On\"",
            "$.Sources[0].ReplicationConfiguration.Rules[1].Destination.StorageClass: \"COLD\" is not an S3 storage class",
            "$.Sources[0].ReplicationConfiguration.Rules[1].Destination.Replicator.DeleteMode: \"some\" is not one of: none, markers, all",
            "$.Sources[0].ReplicationConfiguration.Rules[1].Destination.Replicator.Credentials.SecretAccessKey: keys never belong",
            "$.Sources[0].ReplicationConfiguration.Rules[1].Destination.Replicator.Credentials: name one of Secret, Profile or DefaultChain, not several",
            "$.Sources[0].ReplicationConfiguration.Rules[2].Destination: is required",
            "$.Sources[0].ReplicationConfiguration.Rules[3].DeleteMarkerReplication: cannot be Enabled on a rule with a tag filter",
            "$.Sources[0].ReplicationConfiguration.Rules[3].Priority: Priority 1 is also used by Rules[1]",
        ];
        for e in expected {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "missing problem {e:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn two_way_and_cyclic_replication_are_accepted_and_their_paths_known() {
        let rule = |to: &str| {
            format!(
                r#"{{"Status": "Enabled", "Priority": 1, "Filter": {{}}, "Destination": {{"Bucket": "{to}"}}}}"#
            )
        };
        let doc = |pairs: &[(&str, &str)]| {
            let sources: Vec<String> = pairs
                .iter()
                .map(|(from, to)| {
                    format!(
                        r#"{{"Bucket": "{from}", "ReplicationConfiguration": {{"Rules": [{}]}}}}"#,
                        rule(to)
                    )
                })
                .collect();
            format!(r#"{{"Sources": [{}]}}"#, sources.join(","))
        };
        // Provenance lets these settle, so they are valid documents.
        let three = Config::parse(&doc(&[("aaa", "bbb"), ("bbb", "ccc"), ("ccc", "aaa")])).unwrap();
        assert!(three.reaches("bbb", "aaa") && three.reaches("ccc", "bbb"));
        let chain = Config::parse(&doc(&[("aaa", "bbb"), ("bbb", "ccc")])).unwrap();
        assert!(
            chain.reaches("bbb", "ccc")
                && !chain.reaches("bbb", "aaa")
                && !chain.reaches("ccc", "aaa")
        );
        // A same-named bucket at another provider is another bucket.
        let elsewhere = doc(&[("aaa", "bbb"), ("bbb", "aaa")]).replacen(
            r#""Bucket": "aaa"}"#,
            r#""Bucket": "aaa", "Replicator": {"EndpointUrl": "https://minio.example", "Credentials": {"Profile": "minio"}}}"#,
            1,
        );
        assert!(!Config::parse(&elsewhere).unwrap().reaches("bbb", "aaa"));
    }

    #[test]
    fn the_process_keys_reach_another_endpoint_only_when_asked() {
        let doc = |replicator: &str| {
            format!(
                r#"{{"Sources": [{{"Bucket": "src", "ReplicationConfiguration": {{"Rules": [
                {{"Status": "Enabled", "Priority": 1, "Filter": {{}},
                  "Destination": {{"Bucket": "dst", "Account": "444455556666", "Replicator": {replicator}}}}}]}}}}]}}"#
            )
        };
        let at = "Rules[0].Destination.Replicator.Credentials";
        let found = problems(&doc(r#"{"EndpointUrl": "https://minio.example"}"#));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains(&format!("{at}: is required with EndpointUrl"))
                && found[0].contains("https://minio.example"),
            "{found:?}"
        );
        let explicit = Config::parse(&doc(
            r#"{"EndpointUrl": "https://minio.example", "Credentials": {"DefaultChain": true}}"#,
        ))
        .unwrap();
        let d = &explicit.sources[0].rules[0].destination;
        assert_eq!(d.endpoint.credentials, CredentialSource::DefaultChain);
        assert_eq!(d.account.as_deref(), Some("444455556666"));
        // Another AWS region is AWS: the process's own credentials are implied.
        let region = Config::parse(&doc(r#"{"Region": "eu-west-1"}"#)).unwrap();
        assert_eq!(
            region.sources[0].rules[0].destination.endpoint.credentials,
            CredentialSource::DefaultChain
        );
        for (replicator, problem) in [
            (r#"{"Credentials": {}}"#, "name a Secret, a Profile"),
            (
                r#"{"Credentials": {"Profile": "p", "DefaultChain": true}}"#,
                "not several",
            ),
        ] {
            let found = problems(&doc(replicator));
            assert!(
                found.len() == 1 && found[0].contains(problem),
                "{replicator}: {found:?}"
            );
        }
        let found = problems(&doc(r#"{}"#).replace("444455556666", "4444-5555"));
        assert!(
            found.len() == 1
                && found[0].contains("Account: \"4444-5555\" is not an AWS account ID"),
            "{found:?}"
        );
    }

    #[test]
    fn malformed_documents_are_errors_not_panics() {
        for text in [
            "",
            "[]",
            "{\"Sources\": 3}",
            "{\"Sources\": [{}]}",
            "{\"Sources\": [null]}",
            "not json",
        ] {
            assert!(!problems(text).is_empty(), "{text:?} should be rejected");
        }
    }

    /// What S3 itself checks of a rule set, and how it reads the older schema.
    #[test]
    fn rules_as_s3_reads_them() {
        let doc = |rules: &str| {
            format!(
                r#"{{"Sources":[{{"Bucket":"src","ReplicationConfiguration":{{"Rules":[{rules}]}}}}]}}"#
            )
        };
        // The older schema replicates delete markers; DeleteMode can still say none.
        let legacy = Config::parse(&doc(
            r#"{"Status":"Enabled","Prefix":"a/","Destination":{"Bucket":"dst"}}"#,
        ))
        .unwrap();
        assert_eq!(
            legacy.sources[0].rules[0].destination.delete_mode,
            DeleteMode::Markers
        );
        let quiet = Config::parse(&doc(
            r#"{"Status":"Enabled","Prefix":"a/","Destination":{"Bucket":"dst","Replicator":{"DeleteMode":"none"}}}"#,
        ))
        .unwrap();
        assert_eq!(
            quiet.sources[0].rules[0].destination.delete_mode,
            DeleteMode::None
        );
        // A V2 rule without DeleteMarkerReplication does not.
        let v2 = Config::parse(&doc(
            r#"{"Status":"Enabled","Priority":0,"Filter":{},"Destination":{"Bucket":"dst"}}"#,
        ))
        .unwrap();
        assert_eq!(
            v2.sources[0].rules[0].destination.delete_mode,
            DeleteMode::None
        );
        assert!(!v2.sources[0].rules[0].destination.replicate_replicas);

        for (rules, expected) in [
            (
                r#"{"Status":"Enabled","Priority":1,"Filter":{},"Destination":{"Bucket":"src"}}"#,
                "Rules[0].Destination.Bucket: is the rule's own source bucket",
            ),
            (
                r#"{"Status":"Enabled","Priority":-1,"Filter":{},"Destination":{"Bucket":"dst"}}"#,
                "Rules[0].Priority: -1 is negative",
            ),
            (
                r#"{"Status":"Enabled","Priority":1,"Filter":{"And":{"Prefix":"a/"}},"Destination":{"Bucket":"dst"}}"#,
                "Rules[0].Filter.And: has 1 condition(s)",
            ),
            (
                r#"{"Status":"Enabled","Priority":1,"Filter":{"And":{"Tags":[{"Key":"k","Value":"v"}]}},"Destination":{"Bucket":"dst"}}"#,
                "Rules[0].Filter.And: has 1 condition(s)",
            ),
            (
                r#"{"Status":"Enabled","Priority":1,"Filter":{},"SourceSelectionCriteria":{"SseKmsEncryptedObjects":{"Status":"Enabled"}},"Destination":{"Bucket":"dst"}}"#,
                "Rules[0].Destination.EncryptionConfiguration.ReplicaKmsKeyID: is required when SourceSelectionCriteria.SseKmsEncryptedObjects is Enabled",
            ),
        ] {
            let found = problems(&doc(rules));
            assert!(
                found.len() == 1 && found[0].contains(expected),
                "{rules}: {found:?}"
            );
        }
        // The same bucket name at another endpoint is another bucket.
        let elsewhere = doc(
            r#"{"Status":"Enabled","Priority":1,"Filter":{},"Destination":{"Bucket":"src","Replicator":{"Region":"eu-west-1"}}}"#,
        );
        assert!(problems(&elsewhere).is_empty());
        let both = Config::parse(&doc(
            r#"{"Status":"Enabled","Priority":1,"Filter":{"And":{"Prefix":"a/","Tags":[{"Key":"k","Value":"v"}]}},
                "SourceSelectionCriteria":{"SseKmsEncryptedObjects":{"Status":"Enabled"}},
                "Destination":{"Bucket":"dst","EncryptionConfiguration":{"ReplicaKmsKeyID":"arn:aws:kms:us-east-1:111122223333:key/k"},
                               "Replicator":{"ReplicateReplicas":true}}}"#,
        ))
        .unwrap();
        let rule = &both.sources[0].rules[0];
        assert!(rule.sse_kms_objects && rule.destination.replicate_replicas);

        let many: Vec<String> = (0..1001)
            .map(|i| format!(r#"{{"ID":"r{i}","Status":"Enabled","Priority":{i},"Filter":{{}},"Destination":{{"Bucket":"dst"}}}}"#))
            .collect();
        let found = problems(&doc(&many.join(",")));
        assert!(
            found.len() == 1 && found[0].contains("lists 1001 rules; S3 allows at most 1000"),
            "{found:?}"
        );
    }

    #[test]
    fn legacy_prefix_rules_and_mixing() {
        let doc = r#"{"Sources":[{"Bucket":"src","ReplicationConfiguration":{"Rules":[
            {"Status":"Enabled","Prefix":"a/","Destination":{"Bucket":"arn:aws:s3:::dst"}},
            {"Status":"Enabled","Prefix":"a/b","Destination":{"Bucket":"dst"}}]}}]}"#;
        let found = problems(doc);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("Rules[1].Prefix: overlaps"), "{found:?}");
        let doc = r#"{"Sources":[{"Bucket":"src","ReplicationConfiguration":{"Rules":[
            {"Status":"Enabled","Prefix":"a/","Destination":{"Bucket":"arn:aws:s3:::dst"}},
            {"Status":"Enabled","Filter":{},"Priority":1,"Destination":{"Bucket":"dst"}}]}}]}"#;
        assert!(problems(doc).iter().any(|p| p.contains("mixes rules")));
    }
}
