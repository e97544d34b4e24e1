//! Backfill: replicating objects that exist already. The CLI only starts one: it sends
//! a list task per prefix its scope covers, and the work queue's consumers (the
//! replicate function, or `s3-replicator run`) do the rest, listing and copying at
//! whatever concurrency they run with. See [`crate::listing`] for the tasks, and
//! [`report`] for where a backfill stands.

use std::collections::BTreeMap;

use crate::config::clients::S3Clients;
use crate::config::Config;
use crate::errors::ScanError;
use crate::ingest::Ingest;

pub mod inventory;
pub mod report;

use crate::listing::ListTask;

/// Levels of `/` a backfill splits into list tasks of their own by default: every
/// top-level "folder" and every one below it lists in parallel.
pub const DEFAULT_SPLIT: u8 = 2;

/// What a backfill covers.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Source buckets; empty means every source of the configuration.
    pub buckets: Vec<String>,
    /// Only this rule's destinations.
    pub rule: Option<String>,
    /// Only keys under this.
    pub prefix: Option<String>,
    pub modified_after: Option<String>,
    pub modified_before: Option<String>,
    pub split: u8,
}

/// A backfill id: when it started, and a few random hex digits.
pub fn new_id() -> String {
    let now = crate::queues::job::now_rfc3339();
    let stamp: String = now.chars().filter(char::is_ascii_digit).take(14).collect();
    format!("bf-{stamp}-{:04x}", rand::random::<u16>())
}

/// The first list tasks of a backfill: per source bucket, one per prefix that some
/// selected rule could match (a rule without a prefix covers the whole bucket),
/// within `--prefix`.
pub fn root_tasks(config: &Config, scope: &Scope, id: &str) -> Result<Vec<ListTask>, ScanError> {
    for bound in [&scope.modified_after, &scope.modified_before]
        .into_iter()
        .flatten()
    {
        aws_smithy_types::DateTime::from_str(bound, aws_smithy_types::date_time::Format::DateTime)
            .map_err(|e| {
                ScanError::Scope(format!(
                    "{bound:?} is not an RFC 3339 time such as 2024-06-01T00:00:00Z: {e}"
                ))
            })?;
    }
    let sources: Vec<_> = match scope.buckets.is_empty() {
        true => config.sources.iter().collect(),
        false => scope
            .buckets
            .iter()
            .map(|b| {
                config.source(b).ok_or_else(|| {
                    let known: Vec<&str> =
                        config.sources.iter().map(|s| s.bucket.as_str()).collect();
                    ScanError::Scope(format!(
                        "bucket {b} is not a source in the configuration (sources: {})",
                        known.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if let Some(rule) = &scope.rule {
        if !sources
            .iter()
            .any(|s| s.rules.iter().any(|r| &r.id == rule))
        {
            return Err(ScanError::Scope(format!(
                "no source in scope has a rule with ID {rule:?}"
            )));
        }
    }
    let mut tasks = Vec::new();
    for source in sources {
        let prefixes: Vec<&str> = source
            .rules
            .iter()
            .filter(|r| r.enabled && scope.rule.as_ref().is_none_or(|id| &r.id == id))
            .map(|r| r.filter.prefix.as_str())
            .collect();
        for prefix in covering(prefixes, scope.prefix.as_deref().unwrap_or("")) {
            let mut task = ListTask::root(id, &source.bucket, &prefix, scope.split);
            task.rule = scope.rule.clone();
            task.modified_after = scope.modified_after.clone();
            task.modified_before = scope.modified_before.clone();
            tasks.push(task);
        }
    }
    if tasks.is_empty() {
        return Err(ScanError::Scope(
            "no enabled rule covers this scope: nothing to backfill".into(),
        ));
    }
    Ok(tasks)
}

/// The fewest prefixes that cover every rule prefix within `within`: none inside
/// another, none outside `within`.
pub(crate) fn covering(rule_prefixes: Vec<&str>, within: &str) -> Vec<String> {
    let mut narrowed: Vec<String> = rule_prefixes
        .into_iter()
        .filter_map(|p| {
            if p.starts_with(within) {
                Some(p.to_string())
            } else if within.starts_with(p) {
                Some(within.to_string())
            } else {
                None
            }
        })
        .collect();
    narrowed.sort();
    narrowed.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in narrowed {
        if !out.iter().any(|o| p.starts_with(o.as_str())) {
            out.push(p);
        }
    }
    out
}

/// Starts a backfill: its first list tasks go on the work queue.
pub async fn start(ingest: &Ingest, tasks: &[ListTask]) -> Result<(), ScanError> {
    ingest
        .send_bodies(tasks.iter().map(ListTask::to_body))
        .await
        .map_err(ScanError::Queue)
}

/// What a backfill would do at one destination.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Planned {
    pub source_bucket: String,
    pub destination: String,
    /// Objects to copy: no replica, or one that differs.
    pub objects: u64,
    pub bytes: u64,
    /// Objects whose replica the destination's listing shows up to date.
    pub up_to_date: u64,
}

/// What a dry run found: per (source, destination), and what makes no job, by reason.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Plan {
    pub listed: u64,
    pub destinations: Vec<Planned>,
    pub skipped: BTreeMap<&'static str, u64>,
    /// Pages listed (each a LIST of the source, and of each destination it reaches).
    pub list_requests: u64,
}

fn planned<'a>(
    totals: &'a mut BTreeMap<(String, String), Planned>,
    source: &str,
    destination: &str,
) -> &'a mut Planned {
    totals
        .entry((source.to_string(), destination.to_string()))
        .or_insert_with(|| Planned {
            source_bucket: source.to_string(),
            destination: destination.to_string(),
            ..Planned::default()
        })
}

/// Lists the scope here, page by page, beside the destinations (with `clients`), and
/// says what the backfill would copy, without sending or copying anything. Tags are
/// read where rules filter on them, as the backfill would.
pub async fn dry_run(
    ingest: &Ingest,
    clients: Option<&S3Clients>,
    tasks: &[ListTask],
) -> Result<Plan, ScanError> {
    let mut plan = Plan::default();
    let mut totals: BTreeMap<(String, String), Planned> = BTreeMap::new();
    let mut pending: Vec<ListTask> = tasks.to_vec();
    // The same pages the tasks would list, one after another.
    while let Some(task) = pending.pop() {
        let mut prepared = crate::listing::run::prepare(ingest, clients, &task)
            .await
            .map_err(ScanError::Listing)?;
        plan.list_requests += 1;
        plan.listed += prepared.listed as u64;
        for (reason, n) in &prepared.skipped {
            *plan.skipped.entry(reason).or_default() += *n as u64;
        }
        for row in prepared
            .rows
            .iter()
            .filter(|r| r.reason == "ReplicaUpToDate")
        {
            planned(&mut totals, &row.bucket, &row.destination).up_to_date += 1;
        }
        for job in &prepared.jobs {
            let planned = planned(&mut totals, &job.source.bucket, &job.destination.bucket);
            planned.objects += 1;
            planned.bytes += job.source.size.unwrap_or(0);
        }
        pending.append(&mut prepared.next);
    }
    plan.destinations = totals.into_values().collect();
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_prefixes_cover_the_rules_within_the_scope() {
        assert_eq!(covering(vec!["", "logs/"], ""), vec![""]);
        assert_eq!(
            covering(vec!["logs/", "logs/2024/", "img/"], ""),
            vec!["img/", "logs/"]
        );
        assert_eq!(
            covering(vec!["logs/", "img/"], "logs/2024/"),
            vec!["logs/2024/"]
        );
        assert_eq!(
            covering(vec!["logs/2024/", "img/"], "logs/"),
            vec!["logs/2024/"]
        );
        assert!(covering(vec!["img/"], "logs/").is_empty());
    }

    #[test]
    fn a_scope_names_what_it_covers_or_says_why_not() {
        let config = Config::parse(include_str!(
            "../../../../tests/fixtures/config/matching.json"
        ))
        .unwrap();
        let all = root_tasks(&config, &Scope::default(), "bf-1").unwrap();
        let prefixes: Vec<(&str, &str)> = all
            .iter()
            .map(|t| (t.bucket.as_str(), t.prefix.as_str()))
            .collect();
        assert_eq!(prefixes, vec![("src", "")]);
        assert!(all
            .iter()
            .all(|t| t.backfill == "bf-1" && t.continuation.is_none()));
        let docs = Scope {
            rule: Some("docs".into()),
            ..Scope::default()
        };
        let docs = root_tasks(&config, &docs, "bf-1").unwrap();
        assert_eq!(
            (docs[0].prefix.as_str(), docs[0].rule.as_deref()),
            ("docs/", Some("docs"))
        );
        for (scope, needle) in [
            (
                Scope {
                    buckets: vec!["nope".into()],
                    ..Scope::default()
                },
                "not a source",
            ),
            (
                Scope {
                    rule: Some("nope".into()),
                    ..Scope::default()
                },
                "no source in scope",
            ),
            (
                Scope {
                    modified_after: Some("yesterday".into()),
                    ..Scope::default()
                },
                "RFC 3339",
            ),
        ] {
            let err = root_tasks(&config, &scope, "bf-1").unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
