//! How a job's outcome is settled, wherever it ran (its own message, or a backfill's
//! list task): a paused copy handed on, a transient failure forwarded for retry, a
//! permanent one parked; its metrics and log line; and its row in the backfill's
//! record, written before its message is deleted.

use std::collections::HashMap;
use std::time::Instant;

use super::Replicator;
use crate::copy::multipart;
use crate::copy::Outcome;
use crate::errors::{describe, ReplicationError};
use crate::listing::record::{self, ReportLocation, Row};
use crate::queues::job::{BackfillRef, Continuation, Job};

#[derive(Debug)]
pub(super) struct PendingRow {
    pub(super) message_id: String,
    pub(super) report: String,
    pub(super) backfill: String,
    pub(super) row: Row,
}

impl Replicator {
    /// Writes the backfill outcomes waiting in memory, one object per backfill. Returns
    /// the messages whose outcome was not written: they must not be deleted.
    pub async fn flush_rows(&self) -> Vec<String> {
        self.flush_rows_of(None).await
    }

    /// [`Replicator::flush_rows`] of these messages only (`None`: all). A worker
    /// settles messages while others still run: their rows (a list task records a
    /// row per object it copies, as it goes) stay until their own message settles,
    /// so a failed write never takes them with it.
    pub async fn flush_rows_of(&self, messages: Option<&[String]>) -> Vec<String> {
        let rows = {
            let mut pending = self.rows.lock().expect("rows lock");
            match messages {
                None => std::mem::take(&mut *pending),
                Some(ids) => {
                    let (mine, others): (Vec<PendingRow>, Vec<PendingRow>) =
                        std::mem::take(&mut *pending)
                            .into_iter()
                            .partition(|r| ids.contains(&r.message_id));
                    *pending = others;
                    mine
                }
            }
        };
        let mut groups: HashMap<(String, String), Vec<(String, Row)>> = HashMap::new();
        for pending in rows {
            groups
                .entry((pending.report, pending.backfill))
                .or_default()
                .push((pending.message_id, pending.row));
        }
        let mut unwritten = Vec::new();
        for ((url, id), rows) in groups {
            let written = match ReportLocation::parse(&url) {
                Ok(at) => {
                    let only_rows: Vec<Row> = rows.iter().map(|(_, r)| r.clone()).collect();
                    record::write_results(&self.s3.source, &at, &id, &only_rows).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::warn!(backfill = %id, error = %e, jobs = rows.len(),
                    "could not record backfill outcomes; their messages will be delivered again");
                unwritten.extend(rows.into_iter().map(|(m, _)| m));
            }
        }
        unwritten
    }

    /// Keeps a backfill job's outcome for the backfill's record.
    fn record(&self, message_id: &str, job: &Job, result: &Result<Outcome, ReplicationError>) {
        let Some(BackfillRef {
            id,
            report: Some(report),
            ..
        }) = &job.backfill
        else {
            return;
        };
        let (outcome, reason, bytes) = match result {
            Ok(Outcome::Replicated { bytes, .. }) => ("replicated", "", *bytes),
            Ok(Outcome::Updated) => ("replicated", "Updated", 0),
            Ok(Outcome::Deleted) => ("replicated", "Deleted", 0),
            Ok(Outcome::Skipped { reason }) => ("skipped", *reason, 0),
            Ok(Outcome::Paused(_)) => return,
            Err(e) if e.is_retryable() => return,
            Err(e) => ("failed", e.reason.as_str(), 0),
        };
        self.rows.lock().expect("rows lock").push(PendingRow {
            message_id: message_id.to_string(),
            report: report.clone(),
            backfill: id.clone(),
            row: Row {
                bucket: job.source.bucket.clone(),
                key: job.source.key.clone(),
                destination: job.destination.bucket.clone(),
                outcome: outcome.into(),
                reason: reason.into(),
                bytes,
            },
        });
    }

    /// Settles a job's outcome, wherever the job ran (its own message, or a backfill's
    /// list task): a paused copy is handed on, a transient failure forwarded for retry,
    /// a permanent one parked; then its metrics, and its line in the backfill's record.
    /// Returns whether the job is done with (if not, its message must come back).
    pub(super) async fn settle(
        &self,
        message_id: &str,
        job: &Job,
        result: Result<Outcome, ReplicationError>,
    ) -> bool {
        let done = match &result {
            Ok(Outcome::Paused(upload)) => self.continue_later(job, (**upload).clone()).await,
            Ok(_) => true,
            // A failed copy has aborted its upload: whatever runs next starts afresh.
            Err(err) if err.is_retryable() => {
                self.forward_for_retry(&job.without_upload(), err).await
            }
            Err(err) => self.parking.park_job(&job.without_upload(), err).await,
        };
        let parked = done && matches!(&result, Err(e) if !e.is_retryable());
        count_outcome(job, &result, parked);
        // A forwarded job records its outcome when it ends.
        if done {
            self.record(message_id, job, &result);
        }
        done
    }

    /// Hands a paused copy to the next invocation through the work queue. If that
    /// fails the upload is aborted and the message delivered again, to start afresh:
    /// an upload no job knows of would only cost money.
    async fn continue_later(&self, job: &Job, upload: Continuation) -> bool {
        let mut next = job.clone();
        let upload_id = upload.upload_id.clone();
        next.upload = Some(upload);
        next.sign(&self.signer);
        let sent = match &self.work_queue_url {
            Some(url) => self
                .sqs
                .send_message()
                .queue_url(url)
                .message_body(next.to_body())
                .send()
                .await
                .map_err(|e| describe(&e)),
            None => Err(format!(
                "{} is not set",
                crate::config::settings::WORK_QUEUE_VAR
            )),
        };
        match sent {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(key = %job.source.key, error = %e, "cannot hand a paused copy on; aborting its upload, the job will start again");
                if let Some((destination, dst)) = self.destination_of(job) {
                    multipart::abort(dst, destination, &job.source.key, &upload_id).await;
                }
                false
            }
        }
    }

    /// Hands a transient failure, with its reason, to the retry queue.
    async fn forward_for_retry(&self, job: &Job, err: &ReplicationError) -> bool {
        let Some(url) = &self.retry_queue_url else {
            return false;
        };
        let mut failed = job.clone();
        failed.record_failure(err);
        failed.forwarded = true;
        let sent = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(failed.to_body())
            .send()
            .await;
        match sent {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %describe(&e), "could not forward a failed job to the retry queue; SQS will redeliver it");
                false
            }
        }
    }
}

/// A job's outcome in the metrics. `parked` says a failure was parked (the end of the
/// job) rather than handed on for a retry.
pub(super) fn count_outcome(job: &Job, result: &Result<Outcome, ReplicationError>, parked: bool) {
    let on = job.dimensions();
    match result {
        Ok(Outcome::Replicated { bytes, .. }) => {
            crate::metrics::replicated(&on, Some(*bytes), job.latency_ms())
        }
        Ok(Outcome::Updated | Outcome::Deleted) => {
            crate::metrics::replicated(&on, None, job.latency_ms())
        }
        Ok(Outcome::Skipped { reason }) => crate::metrics::skipped(&on, reason),
        Ok(Outcome::Paused(_)) => crate::metrics::paused(&on),
        Err(e) => crate::metrics::failed(&on, e.reason.as_str(), parked),
    }
}

/// One line per job outcome.
pub(super) fn log_outcome(
    job: &Job,
    result: &Result<Outcome, ReplicationError>,
    started: Instant,
    receives: u32,
) {
    let latency_ms = started.elapsed().as_millis() as u64;
    let op = format!("{:?}", job.op).to_lowercase();
    let (bucket, key, dest) = (&job.source.bucket, &job.source.key, &job.destination.bucket);
    match result {
        Ok(Outcome::Replicated { bytes, verified }) => tracing::info!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes, latency_ms, outcome = "replicated", verified = %verified, "job done"),
        Ok(Outcome::Updated) => tracing::info!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes = 0u64, latency_ms, outcome = "updated", "job done"),
        Ok(Outcome::Paused(upload)) => tracing::info!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes = 0u64, latency_ms, outcome = "paused", parts_done = upload.parts_done,
            upload_id = %upload.upload_id, "multipart copy continues in the next invocation"),
        Ok(Outcome::Deleted) => tracing::info!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes = 0u64, latency_ms, outcome = "deleted", "job done"),
        Ok(Outcome::Skipped { reason }) => tracing::info!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes = 0u64, latency_ms, outcome = "skipped", reason = %reason, "job done"),
        Err(err) => tracing::warn!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes = 0u64, latency_ms, outcome = "failed", reason = %err.reason, retryable = err.is_retryable(),
            receives, error = %err.detail, "job failed"),
    }
}
