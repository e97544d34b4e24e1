//! A backfill's list tasks, run where its jobs run. The page's jobs whose replicas are
//! not up to date are copied right here, as many at once as the handler runs jobs:
//! a small object then costs no queue message of its own. Objects large enough for a
//! multipart copy (which may pause and continue in another invocation) go to the work
//! queue as jobs, as do copies that failed in a way a retry can mend.

use std::time::Instant;

use futures::stream::{self, StreamExt};

use super::Replicator;
use crate::errors::{FailureReason, ReplicationError};
use crate::ingest::Ingest;
use crate::listing::run::{self, Listing};
use crate::listing::ListTask;
use crate::queues::job::Job;

impl Replicator {
    /// Runs a backfill's list task. A failure that can pass goes to the retry queue (or
    /// back to SQS without one), which sends the task back with backoff; one that
    /// cannot is parked with its reason.
    pub(super) async fn handle_list(
        &self,
        id: String,
        body: &str,
        task: Result<ListTask, ReplicationError>,
    ) -> Option<String> {
        let started = Instant::now();
        // Anyone who can send to the work queue can send a task: it lists only what
        // the rules select, and records only where this process keeps records.
        let task = task.and_then(
            |t| match t.report.as_deref().map(|r| self.report_allowed(r)) {
                Some(Err(detail)) => {
                    Err(ReplicationError::new(FailureReason::UntrustedJob, detail))
                }
                _ => Ok(t),
            },
        );
        let result = match (task, &self.work_queue_url) {
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(ReplicationError::new(
                FailureReason::RuleNotConfigured,
                format!(
                    "a backfill list task needs {} to send its jobs to",
                    crate::config::settings::WORK_QUEUE_VAR
                ),
            )),
            (Ok(task), Some(url)) => {
                let ingest = Ingest {
                    config: self.config.clone(),
                    s3: self.s3.source.clone(),
                    sqs: self.sqs.clone(),
                    work_queue_url: url.clone(),
                    failed_queue_url: None,
                    signer: self.signer.clone(),
                };
                let listed = self.list_and_copy(&id, &ingest, &task).await;
                if let Ok(l) = &listed {
                    tracing::info!(backfill = %task.backfill, bucket = %task.bucket, prefix = %task.prefix,
                        listed = l.listed, jobs = l.jobs, up_to_date = l.up_to_date,
                        skipped = %serde_json::to_string(&l.skipped).unwrap_or_default(),
                        next_tasks = l.next, latency_ms = started.elapsed().as_millis() as u64,
                        outcome = "listed", "backfill page listed");
                }
                listed.map(|_| ())
            }
        };
        let err = match result {
            Ok(()) => return None,
            Err(err) => err,
        };
        tracing::warn!(outcome = "failed", reason = %err.reason, retryable = err.is_retryable(), error = %err.detail,
            "backfill list task failed");
        let done = match (err.is_retryable(), &self.retry_queue_url) {
            (true, Some(url)) => {
                let sent = self
                    .sqs
                    .send_message()
                    .queue_url(url)
                    .message_body(body)
                    .send()
                    .await;
                sent.is_ok()
            }
            (true, None) => false,
            (false, _) => {
                self.parking
                    .send(crate::queues::parking::parked_raw("list-task", body, &err))
                    .await
            }
        };
        (!done).then_some(id)
    }

    async fn list_and_copy(
        &self,
        message_id: &str,
        ingest: &Ingest,
        task: &ListTask,
    ) -> Result<Listing, ReplicationError> {
        let mut prepared = run::prepare(ingest, Some(&self.s3), task).await?;
        let jobs = std::mem::take(&mut prepared.jobs);
        let (here, queued): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|job| self.copies_in_task(job));
        // Copied here; what cannot finish here joins the jobs sent, and is counted
        // once, as sent (the record counts a row per job: twice would never complete).
        // Owned items: borrowed ones make the future not `Send` for every lifetime,
        // which the worker's spawned tasks need.
        let copied: Vec<(Job, Option<Job>)> = stream::iter(here)
            .map(|job| async move {
                let left = self.copy_in_task(message_id, &job).await;
                (job, left)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut all = Vec::new();
        let mut sent = queued;
        for (job, left) in copied {
            match left {
                Some(handed_on) => sent.push(handed_on),
                None => all.push(job),
            }
        }
        ingest
            .send(&sent)
            .await
            .map_err(crate::listing::list::queue_failure)?;
        all.extend(sent);
        run::finish(ingest, task, prepared, &all).await
    }

    /// Small objects are copied in the task; a multipart copy gets a job of its own.
    fn copies_in_task(&self, job: &Job) -> bool {
        let Some(rule) = self.config.rule(&job.source.bucket, &job.rule_id) else {
            return false;
        };
        let same = rule.destination.is_same_endpoint();
        job.source
            .size
            .is_some_and(|size| size <= self.multipart.threshold(same))
            && !self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs one job in the task and settles it as a message of its own would be.
    /// Returns the job when it must go to the work queue instead.
    async fn copy_in_task(&self, message_id: &str, job: &Job) -> Option<Job> {
        let started = Instant::now();
        let result = self.run(job).await;
        super::settle::log_outcome(job, &result, started, 1);
        let done = self.settle(message_id, job, result).await;
        (!done).then(|| job.without_upload())
    }
}
