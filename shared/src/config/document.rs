//! The document, its sources and their rules: filters, priorities, tags and
//! source selection, as S3 reads them.

use super::walker::{kind, Walker};
use super::*;

impl Walker {
    pub(super) fn document(&mut self, value: &Value) -> Config {
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

    pub(super) fn source(&mut self, value: &Value, path: &str) -> Option<SourceBucket> {
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

    pub(super) fn replication_configuration(
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
    pub(super) fn rules_together(&mut self, rules: &[(usize, Rule)], path: &str) {
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

    pub(super) fn rule(&mut self, value: &Value, path: &str, index: usize) -> Option<Rule> {
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

    pub(super) fn filter(&mut self, value: &Value, path: &str) -> Option<Filter> {
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

    pub(super) fn tag(&mut self, value: &Value, path: &str) -> Option<(String, String)> {
        let mut obj = self.obj(value, path)?;
        let key = self.string(&mut obj, "Key", true);
        let val = self.string(&mut obj, "Value", true);
        self.finish(obj);
        Some((key?, val?))
    }

    pub(super) fn source_selection(&mut self, value: &Value, path: &str) -> Selection {
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
}

/// What a rule's `SourceSelectionCriteria` enables.
#[derive(Default)]
pub(super) struct Selection {
    pub(super) replica_modifications: bool,
    pub(super) sse_kms: bool,
}

/// S3's limit on rules in one replication configuration.
pub(super) const MAX_RULES: usize = 1000;
