//! Running a list task. Its page is set beside each destination's listing of the same
//! key range, so a replica already up to date costs no request of its own (a share of
//! a LIST, not a HEAD, a job or a copy). What remains is either copied in the task
//! (see `Replicator::handle_list`) or sent as jobs. The page is recorded, then the
//! tasks that follow are sent: a task that dies half way is delivered again, lists
//! again, and finds what it had copied up to date.

use std::collections::{BTreeMap, HashMap};

use crate::config::clients::S3Clients;
use crate::errors::{describe, FailureReason, ReplicationError};
use crate::ingest::Ingest;
use crate::listing::list::{self, Listed};
use crate::listing::record::{self, PageCounts, ReportLocation, Row};
use crate::listing::task::ListTask;
use crate::queues::job::Job;

/// A page ready to be acted on.
#[derive(Debug, Default)]
pub struct Prepared {
    pub listed: usize,
    /// Jobs whose replica is missing or differs.
    pub jobs: Vec<Job>,
    /// Objects that make no job (no rule, archived, outside the window) and jobs whose
    /// replica the destination's listing shows up to date, for the record.
    pub rows: Vec<Row>,
    pub skipped: BTreeMap<&'static str, usize>,
    pub up_to_date: usize,
    pub next: Vec<ListTask>,
}

/// Lists the task's page, makes its jobs, and drops those the destinations' listings
/// show done (same size and ETag). Without `clients` nothing is dropped.
pub async fn prepare(
    ingest: &Ingest,
    clients: Option<&S3Clients>,
    task: &ListTask,
) -> Result<Prepared, ReplicationError> {
    let (page, next) = task_page(&ingest.s3, task).await?;
    let selection = list::select(ingest, task, &page.objects).await?;
    let mut prepared = Prepared {
        listed: page.objects.len(),
        rows: selection.rows,
        skipped: selection.skipped,
        next,
        ..Prepared::default()
    };
    // An inventory's rows need not come in key order: its jobs read the replicas.
    let clients = clients.filter(|_| task.inventory.is_none());
    let (Some(clients), Some(last)) = (clients, page.objects.last()) else {
        prepared.jobs = selection.jobs;
        return Ok(prepared);
    };
    let mut by_destination: BTreeMap<(String, Option<String>), Vec<Job>> = BTreeMap::new();
    for job in selection.jobs {
        let endpoint = ingest
            .config
            .rule(&job.source.bucket, &job.rule_id)
            .and_then(|r| r.destination.endpoint.endpoint_url.clone());
        let at = (job.destination.bucket.clone(), endpoint);
        by_destination.entry(at).or_default().push(job);
    }
    for ((bucket, _), jobs) in by_destination {
        let (listed, there) = match destination_range(
            ingest,
            clients,
            task,
            &jobs[0],
            &bucket,
            &last.key,
            page.delimited,
        )
        .await
        {
            Ok(there) => (true, there),
            Err(e) => {
                // Each job finds out for itself, with its own reason (a missing bucket,
                // a refusal), and says so.
                tracing::warn!(backfill = %task.backfill, destination = %bucket, error = %e,
                    "cannot list the destination; every job of the page goes ahead");
                (false, HashMap::new())
            }
        };
        for mut job in jobs {
            let replica = there.get(&job.source.key);
            if !replica.is_some_and(|d| same_object(&job, d)) {
                if let (None, Some(b)) = (replica, job.backfill.as_mut()) {
                    b.absent = listed;
                    job.sign(&ingest.signer);
                }
                prepared.jobs.push(job);
                continue;
            }
            prepared.up_to_date += 1;
            prepared.rows.push(Row {
                bucket: job.source.bucket.clone(),
                key: job.source.key.clone(),
                destination: job.destination.bucket.clone(),
                outcome: "skipped".into(),
                reason: "ReplicaUpToDate".into(),
                bytes: 0,
            });
        }
    }
    Ok(prepared)
}

/// The destination's objects in the key range of the task's page: from where the page
/// before ended, to the page's last key.
async fn destination_range(
    ingest: &Ingest,
    clients: &S3Clients,
    task: &ListTask,
    job: &Job,
    bucket: &str,
    last: &str,
    delimited: bool,
) -> Result<HashMap<String, Listed>, String> {
    let rule = ingest
        .config
        .rule(&job.source.bucket, &job.rule_id)
        .ok_or("the job's rule is gone")?;
    let dst = clients
        .for_destination(&rule.destination.endpoint)
        .ok_or("no client for the destination's endpoint")?;
    let mut found = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let out = dst
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&task.prefix)
            .set_delimiter(delimited.then(|| "/".to_string()))
            .set_start_after(task.start_after.clone().filter(|_| token.is_none()))
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let mut past = false;
        for o in out.contents() {
            let Some(key) = o.key() else { continue };
            past |= key > last;
            found.insert(
                key.to_string(),
                Listed {
                    key: key.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().map(str::to_string),
                    last_modified: o.last_modified().copied(),
                    archived: false,
                },
            );
        }
        token = out.next_continuation_token().map(str::to_string);
        if past || token.is_none() || out.is_truncated() != Some(true) {
            return Ok(found);
        }
    }
}

/// A listing shows the replica holds the listed object: the same size and ETag (what a
/// single-part copy keeps). Anything less certain goes to a job, which reads the
/// replica's provenance.
fn same_object(job: &Job, replica: &Listed) -> bool {
    let unquote = |e: &str| e.trim_matches('"').to_string();
    Some(replica.size) == job.source.size
        && matches!((job.source.etag.as_deref(), replica.etag.as_deref()),
            (Some(a), Some(b)) if unquote(a) == unquote(b))
}

/// What one list task did, for its log line.
#[derive(Debug, Default, serde::Serialize)]
pub struct Listing {
    pub listed: usize,
    /// Jobs run in the task or sent.
    pub jobs: usize,
    pub up_to_date: usize,
    pub skipped: BTreeMap<&'static str, usize>,
    /// Tasks sent to take over: sub-prefixes and the continuation.
    pub next: usize,
}

/// Records the page (its rows, and a "queued" row per job whose outcome the record
/// will show), then sends the tasks that follow.
pub async fn finish(
    ingest: &Ingest,
    task: &ListTask,
    prepared: Prepared,
    queued: &[Job],
) -> Result<Listing, ReplicationError> {
    if let Some(url) = &task.report {
        let at = ReportLocation::parse(url).map_err(|e| {
            ReplicationError::new(
                FailureReason::MalformedMessage,
                format!("list task report: {e}"),
            )
        })?;
        let mut rows = prepared.rows.clone();
        rows.extend(queued.iter().map(|job| Row {
            bucket: job.source.bucket.clone(),
            key: job.source.key.clone(),
            destination: job.destination.bucket.clone(),
            outcome: "queued".into(),
            reason: String::new(),
            bytes: job.source.size.unwrap_or(0),
        }));
        let counts = PageCounts {
            listed: prepared.listed as u64,
            jobs: queued.len() as u64,
            up_to_date: prepared.up_to_date as u64,
            skipped: (prepared.rows.len() - prepared.up_to_date) as u64,
            children: prepared.next.len() as u64,
        };
        let identity = match &task.inventory {
            Some(file) => format!("{}\n{}\n{}", file.bucket, file.key, file.skip),
            None => format!(
                "{}\n{}\n{}",
                task.bucket,
                task.prefix,
                task.continuation.as_deref().unwrap_or("")
            ),
        };
        record::write_page(&ingest.s3, &at, &task.backfill, &identity, counts, &rows)
            .await
            .map_err(|e| {
                ReplicationError::new(FailureReason::Unknown, format!("recording the page: {e}"))
            })?;
    }
    ingest
        .send_bodies(prepared.next.iter().map(ListTask::to_body))
        .await
        .map_err(list::queue_failure)?;
    Ok(Listing {
        listed: prepared.listed,
        jobs: queued.len(),
        up_to_date: prepared.up_to_date,
        skipped: prepared.skipped,
        next: prepared.next.len(),
    })
}

/// A task's page (of the listing, or of its inventory file) and the tasks that take
/// over where it stops: its continuation, and the sub-prefixes it splits into.
async fn task_page(
    s3: &aws_sdk_s3::Client,
    task: &ListTask,
) -> Result<(list::Page, Vec<ListTask>), ReplicationError> {
    if let Some(file) = &task.inventory {
        let (objects, next) = crate::listing::inventory::page(s3, task, file).await?;
        let next = next
            .map(|skip| task.inventory_from(skip))
            .into_iter()
            .collect();
        return Ok((
            list::Page {
                objects,
                ..list::Page::default()
            },
            next,
        ));
    }
    // A prefix that fits in one page is listed in one task: splitting it would cost
    // a task and a LIST (here and at each destination) per folder for nothing.
    let split = task.split > 0;
    if split && task.continuation.is_none() {
        let flat = list::page(s3, &task.bucket, &task.prefix, false, None).await?;
        if flat.next.is_none() {
            return Ok((flat, Vec::new()));
        }
    }
    let page = list::page(
        s3,
        &task.bucket,
        &task.prefix,
        split,
        task.continuation.as_deref(),
    )
    .await?;
    let mut next: Vec<ListTask> = page
        .prefixes
        .iter()
        .map(|p| task.child(p.clone()))
        .collect();
    if let Some(token) = &page.next {
        let last = page.objects.last().map(|o| o.key.clone());
        next.push(task.continued(token.clone(), last));
    }
    Ok((page, next))
}
