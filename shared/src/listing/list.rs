//! One page of a backfill's input (a listing, or rows of an inventory file) and the
//! jobs the rules make of it.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::ObjectStorageClass;
use futures::{stream, StreamExt, TryStreamExt};

use crate::errors::{FailureReason, ReplicationError, S3Step};
use crate::events::{Change, ObjectEvent};
use crate::ingest::{Ingest, IngestError};
use crate::listing::record::Row;
use crate::listing::task::ListTask;
use crate::queues::job::{BackfillRef, Job};

/// Objects of a page whose jobs are made at once (each may read tags, or HEAD the
/// object where rules could send a replica back).
const SELECTED_AT_ONCE: usize = 16;

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<DateTime>,
    pub archived: bool,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct Page {
    pub objects: Vec<Listed>,
    /// Sub-prefixes, when listed with a delimiter.
    pub prefixes: Vec<String>,
    /// The token of the next page, when there is one.
    pub next: Option<String>,
    /// Listed with `/` as delimiter: only the keys directly under the prefix.
    pub delimited: bool,
}

/// Lists one page (up to 1,000 keys) under `prefix`, splitting on `/` when asked.
pub async fn page(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    split: bool,
    token: Option<&str>,
) -> Result<Page, ReplicationError> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_delimiter(split.then(|| "/".to_string()))
        .set_continuation_token(token.map(str::to_string))
        .send()
        .await
        .map_err(|e| ReplicationError::from_sdk(S3Step::SourceList, &e))?;
    let objects = out
        .contents()
        .iter()
        .filter_map(|o| {
            Some(Listed {
                key: o.key()?.to_string(),
                size: o.size().unwrap_or(0).max(0) as u64,
                etag: o.e_tag().map(str::to_string),
                last_modified: o.last_modified().copied(),
                archived: matches!(
                    o.storage_class(),
                    Some(ObjectStorageClass::Glacier | ObjectStorageClass::DeepArchive)
                ),
            })
        })
        .collect();
    let prefixes = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix().map(str::to_string))
        .collect();
    let next = match out.is_truncated() {
        Some(true) => out.next_continuation_token().map(str::to_string),
        _ => None,
    };
    Ok(Page {
        objects,
        prefixes,
        next,
        delimited: split,
    })
}

/// What a page's objects come to: the jobs to send, and the objects that make none,
/// by reason.
#[derive(Debug, Default)]
pub struct Selection {
    pub jobs: Vec<Job>,
    pub skipped: BTreeMap<&'static str, usize>,
    /// The objects that made no job, with why, for the backfill's record.
    pub rows: Vec<Row>,
}

/// The jobs the rules make of listed objects, exactly as for a creation event of each
/// (filters, tags, priorities, replicas not sent back), narrowed to the task's rule and
/// modification window.
pub async fn select(
    ingest: &Ingest,
    task: &ListTask,
    objects: &[Listed],
) -> Result<Selection, ReplicationError> {
    let after = parse_bound(task.modified_after.as_deref())?;
    let before = parse_bound(task.modified_before.as_deref())?;
    // Owned items: a stream of borrowed ones makes the future not `Send` for every
    // lifetime, which a spawned worker task needs.
    let outcomes: Vec<(Listed, Result<Vec<Job>, &'static str>)> = stream::iter(objects.to_vec())
        .map(|object| async move {
            let modified = object.last_modified.map(|t| t.secs());
            if after.is_some_and(|a| modified.is_none_or(|m| m < a))
                || before.is_some_and(|b| modified.is_none_or(|m| m >= b))
            {
                return Ok((object, Err("OutsideModifiedRange")));
            }
            if object.archived {
                return Ok((object, Err("ObjectInArchive")));
            }
            let event = ObjectEvent {
                change: Change::Created,
                bucket: task.bucket.clone(),
                key: object.key.clone(),
                version_id: None,
                etag: object.etag.clone(),
                size: Some(object.size),
                sequencer: None,
                event_time: object.last_modified.map(|t| t.to_string()),
                requester: None,
                event_name: "Backfill".to_string(),
            };
            let mut jobs = ingest.jobs_for(&event).await.map_err(into_replication)?;
            if let Some(rule) = &task.rule {
                jobs.retain(|job| &job.rule_id == rule);
            }
            if jobs.is_empty() {
                return Ok((object, Err("NoRuleMatches")));
            }
            for job in &mut jobs {
                job.backfill = Some(BackfillRef {
                    id: task.backfill.clone(),
                    report: task.report.clone(),
                    absent: false,
                });
                job.sign(&ingest.signer);
            }
            Ok((object, Ok(jobs)))
        })
        .buffered(SELECTED_AT_ONCE)
        .try_collect()
        .await?;
    let mut selection = Selection::default();
    for (object, outcome) in outcomes {
        match outcome {
            Ok(jobs) => selection.jobs.extend(jobs),
            Err(reason) => {
                *selection.skipped.entry(reason).or_default() += 1;
                selection.rows.push(Row {
                    bucket: task.bucket.clone(),
                    key: object.key,
                    destination: String::new(),
                    outcome: "skipped".into(),
                    reason: reason.into(),
                    bytes: object.size,
                });
            }
        }
    }
    Ok(selection)
}

/// Seconds since the epoch of an RFC 3339 bound.
fn parse_bound(bound: Option<&str>) -> Result<Option<i64>, ReplicationError> {
    bound
        .map(|text| {
            DateTime::from_str(text, aws_smithy_types::date_time::Format::DateTime)
                .map(|t| t.secs())
                .map_err(|e| {
                    ReplicationError::new(
                        FailureReason::MalformedMessage,
                        format!("list task: {text:?} is not an RFC 3339 time: {e}"),
                    )
                })
        })
        .transpose()
}

pub(crate) fn queue_failure(e: crate::errors::QueueError) -> ReplicationError {
    ReplicationError::new(FailureReason::QueueSendFailed, e.to_string())
}

pub(crate) fn into_replication(e: IngestError) -> ReplicationError {
    match e {
        IngestError::Tags { source, .. } | IngestError::Source { source, .. } => source,
        IngestError::Queue(q) => queue_failure(q),
        IngestError::Malformed(m) => {
            ReplicationError::new(FailureReason::MalformedMessage, m.to_string())
        }
    }
}
