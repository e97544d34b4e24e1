//! The list task: one page of one prefix of a source bucket, as a message on the work
//! queue beside the jobs it makes. A backfill is nothing but these tasks: each lists a
//! page, sends the page's put jobs, and sends what remains (its continuation, and the
//! sub-prefixes it splits into) as more tasks. The queue holds all of its state, so a
//! crashed worker loses nothing and many tasks list at once.

use serde::{Deserialize, Serialize};

use crate::errors::{FailureReason, ReplicationError};
use crate::queues::job::{Job, JOB_VERSION};

/// The `op` of a list task; jobs use the others.
pub const LIST_OP: &str = "list";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListTask {
    pub v: u32,
    /// Always [`LIST_OP`].
    pub op: String,
    /// The backfill this belongs to; its jobs carry it too.
    pub backfill: String,
    pub bucket: String,
    /// Only keys under this.
    #[serde(default)]
    pub prefix: String,
    /// How many more levels of `/` this task splits into tasks of their own. At 0 it
    /// lists everything under its prefix, page after page.
    #[serde(default)]
    pub split: u8,
    /// Where the next page starts (ListObjectsV2's token), when this is a continuation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
    /// The last key of the page before, where the destinations' listings start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    /// Only the destinations of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Only objects last modified at or after this (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_after: Option<String>,
    /// Only objects last modified before this (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_before: Option<String>,
    /// Read this S3 Inventory file instead of listing the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventoryFile>,
    /// `s3://BUCKET/PREFIX` where the backfill's record is kept, when it keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// Times this task failed and came back through the retry queue.
    #[serde(default)]
    pub attempts: u32,
}

/// A message of the work queue.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkItem {
    Job(Box<Job>),
    List(Box<ListTask>),
}

impl WorkItem {
    /// Parses a work queue message: a list task when its `op` says so, else a job.
    pub fn parse(body: &str) -> Result<WorkItem, ReplicationError> {
        match ListTask::sniff(body) {
            Some(task) => task.map(|task| WorkItem::List(Box::new(task))),
            None => Job::parse(body).map(|job| WorkItem::Job(Box::new(job))),
        }
    }
}

impl ListTask {
    /// A task at the top of a backfill's scope.
    pub fn root(backfill: &str, bucket: &str, prefix: &str, split: u8) -> ListTask {
        ListTask {
            v: JOB_VERSION,
            op: LIST_OP.to_string(),
            backfill: backfill.to_string(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            split,
            continuation: None,
            start_after: None,
            rule: None,
            modified_after: None,
            modified_before: None,
            inventory: None,
            report: None,
            attempts: 0,
        }
    }

    /// `None` when the body is not a list task (it may be a job); else the task, or why
    /// it is unusable.
    pub fn sniff(body: &str) -> Option<Result<ListTask, ReplicationError>> {
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        if value.get("op").and_then(serde_json::Value::as_str) != Some(LIST_OP) {
            return None;
        }
        let malformed =
            |detail: String| ReplicationError::new(FailureReason::MalformedMessage, detail);
        let parsed = match value.get("v").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(JOB_VERSION) => serde_json::from_value::<ListTask>(value)
                .map_err(|e| malformed(format!("list task does not parse: {e}"))),
            Some(v) => Err(malformed(format!(
                "list task version {v} is not understood by this release (it reads version {JOB_VERSION})"
            ))),
            None => Err(malformed("list task has no version field \"v\"".into())),
        };
        Some(parsed.and_then(|task| {
            if task.bucket.is_empty() || task.backfill.is_empty() {
                return Err(malformed("list task names no bucket or no backfill".into()));
            }
            Ok(task)
        }))
    }

    /// The task that lists the next page of the same prefix.
    pub fn continued(&self, token: String, last_key: Option<String>) -> ListTask {
        ListTask {
            continuation: Some(token),
            start_after: last_key.or_else(|| self.start_after.clone()),
            attempts: 0,
            ..self.clone()
        }
    }

    /// The task that reads an inventory file on from `skip` rows.
    pub fn inventory_from(&self, skip: u64) -> ListTask {
        let mut next = self.clone();
        next.attempts = 0;
        if let Some(file) = &mut next.inventory {
            file.skip = skip;
        }
        next
    }

    /// The task for a sub-prefix this one split off.
    pub fn child(&self, prefix: String) -> ListTask {
        ListTask {
            prefix,
            split: self.split.saturating_sub(1),
            continuation: None,
            start_after: None,
            attempts: 0,
            ..self.clone()
        }
    }

    pub fn to_body(&self) -> String {
        crate::queues::job::sqs_safe(
            serde_json::to_string(self).expect("a ListTask always serializes"),
        )
    }
}

/// One inventory file, and how far into it a task starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryFile {
    pub bucket: String,
    pub key: String,
    /// The manifest's `fileSchema`, split: which column is which.
    pub schema: Vec<String>,
    /// Rows earlier tasks took.
    #[serde(default)]
    pub skip: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_list_tasks_from_jobs_and_refuses_broken_ones() {
        let body = include_str!("../../../tests/fixtures/jobs/list.json");
        let WorkItem::List(task) = WorkItem::parse(body).unwrap() else {
            panic!("a list task")
        };
        assert_eq!(
            (task.bucket.as_str(), task.prefix.as_str(), task.split),
            ("photos", "2024/", 1)
        );
        assert_eq!(ListTask::sniff(&task.to_body()).unwrap().unwrap(), *task);
        let child = task.child("2024/06/".into());
        assert_eq!((child.split, child.continuation.as_deref()), (0, None));

        let job = include_str!("../../../tests/fixtures/jobs/put.json");
        assert!(matches!(WorkItem::parse(job).unwrap(), WorkItem::Job(_)));
        for (body, needle) in [
            (r#"{"v": 2, "op": "list"}"#, "version 2"),
            (r#"{"op": "list"}"#, "no version"),
            (r#"{"v": 1, "op": "list", "bucket": "b"}"#, "does not parse"),
            (
                r#"{"v": 1, "op": "list", "bucket": "", "backfill": "x"}"#,
                "no bucket",
            ),
        ] {
            let err = WorkItem::parse(body).unwrap_err();
            assert_eq!(err.reason, FailureReason::MalformedMessage);
            assert!(err.detail.contains(needle), "{body}: {err}");
        }
    }
}
