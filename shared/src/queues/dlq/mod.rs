//! Operating on parked jobs: list, show, redrive, purge, wherever they are kept.
//!
//! A parked message waits in the failed queue, where the alarm and `dlq` see it. SQS
//! drops a message after its retention (14 days at most), so a sweep (the retry
//! function on an hourly schedule, or the worker) moves what has waited longer than
//! `FAILED_ARCHIVE_AFTER` to the archive: written there first, then deleted from the
//! queue, so a sweep that stops part-way leaves a message in both places, never in
//! neither. Every operation reads and acts on both.

mod archive;
mod parked;
mod queue;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::StreamExt;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

pub use archive::Archive;
pub use parked::Parked;
pub use queue::FailedQueue;

use crate::errors::{describe, ArchiveError, DlqError, QueueError};

/// Parked jobs, in the failed queue and (when one is configured) the archive.
pub struct Failed {
    pub queue: FailedQueue,
    pub archive: Option<Archive>,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Swept {
    /// Moved to the archive.
    pub archived: usize,
    /// Younger than the archive age: left in the queue.
    pub kept: usize,
    /// Stopped at its deadline; the next sweep continues.
    pub unfinished: bool,
}

/// Archive writes in flight at once during a sweep.
const WRITES_AT_ONCE: usize = 8;

impl Failed {
    /// Every parked message, each once; call [`Failed::release`] (or act on them) after.
    pub async fn scan(&self) -> Result<Vec<Parked>, DlqError> {
        let mut parked = self.queue.scan().await?;
        let Some(archive) = &self.archive else {
            return Ok(parked);
        };
        let archived = match archive.scan().await {
            Ok(archived) => archived,
            Err(e) => {
                self.queue.release(&parked).await?;
                return Err(e.into());
            }
        };
        let at: HashMap<String, usize> = parked
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        for a in archived {
            match at.get(&a.id) {
                Some(&i) => parked[i].also_archived(a.held.archive_key.clone().unwrap_or_default()),
                None => parked.push(a),
            }
        }
        Ok(parked)
    }

    /// Makes the scanned queue messages visible again at once.
    pub async fn release(&self, parked: &[Parked]) -> Result<(), DlqError> {
        Ok(self.queue.release(parked).await?)
    }

    /// How many queue messages someone else holds right now (see [`FailedQueue::in_flight`]).
    pub async fn in_flight(&self) -> Result<u64, DlqError> {
        Ok(self.queue.in_flight().await?)
    }

    /// Removes these messages for good, from each place they are kept.
    pub async fn delete(&self, parked: &[Parked]) -> Result<(), DlqError> {
        self.queue.delete(parked).await?;
        if let Some(archive) = &self.archive {
            archive.delete(parked).await?;
        }
        Ok(())
    }

    /// Sends each job back to the work queue with its attempts reset, ten at a time,
    /// and removes each batch from where it was kept as soon as it is sent: a failure
    /// part-way leaves every job in exactly one place. Queue messages are held first,
    /// so no one else can take them while they move. Returns how many went back; what
    /// is not a job stays.
    pub async fn redrive(
        &self,
        parked: &[Parked],
        work_queue_url: &str,
    ) -> Result<usize, DlqError> {
        // A job parked as untrusted stays parked: sending it again would not make it
        // ours (and its signature would still not hold).
        let jobs: Vec<&Parked> = parked
            .iter()
            .filter(|p| {
                p.job.as_ref().is_some_and(|j| {
                    j.last_error
                        .as_ref()
                        .is_none_or(|e| e.reason != crate::errors::FailureReason::UntrustedJob)
                })
            })
            .collect();
        let mut moved = 0;
        for chunk in jobs.chunks(10) {
            let chunk: Vec<Parked> = chunk.iter().map(|p| (*p).clone()).collect();
            self.queue.hold(&chunk).await?;
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut fresh = p.job.clone().expect("only jobs are redriven");
                    fresh.reset();
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(fresh.to_body())
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let out = self
                .queue
                .sqs
                .send_message_batch()
                .queue_url(work_queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| send_error(work_queue_url, describe(&e)))?;
            let sent: Vec<Parked> = out
                .successful()
                .iter()
                .filter_map(|s| s.id().parse::<usize>().ok())
                .filter_map(|i| chunk.get(i).cloned())
                .collect();
            self.delete(&sent).await?;
            moved += sent.len();
            if let Some(f) = out.failed().first() {
                return Err(send_error(
                    work_queue_url,
                    format!(
                        "{} of {} not sent ({}: {}); {moved} redriven so far, the rest stay parked",
                        out.failed().len(),
                        chunk.len(),
                        f.code(),
                        f.message().unwrap_or("")
                    ),
                )
                .into());
            }
        }
        Ok(moved)
    }

    /// Moves what has waited in the queue at least the archive's age
    /// (`FAILED_ARCHIVE_AFTER`) to the archive, ten messages at a time as they are
    /// received: each is written there before it is deleted from the queue. Stops at
    /// `until` (a Lambda's deadline), leaving the rest to the next sweep.
    pub async fn sweep(&self, until: Option<Instant>) -> Result<Swept, DlqError> {
        let Some(archive) = &self.archive else {
            return Ok(Swept::default());
        };
        let after = archive.settings.after.as_secs();
        let mut pass = queue::Pass::default();
        let mut swept = Swept::default();
        let mut keep = HashSet::new();
        let mut first_error = None;
        while !pass.done() {
            if until.is_some_and(|t| Instant::now() >= t) {
                swept.unfinished = true;
                break;
            }
            let received = match self.queue.receive(&mut pass).await {
                Ok(received) => received,
                Err(e) => {
                    first_error.get_or_insert(DlqError::from(e));
                    break;
                }
            };
            let (old, young): (Vec<Parked>, Vec<Parked>) = received
                .into_iter()
                .partition(|p| p.parked_seconds().unwrap_or(u64::MAX) >= after);
            swept.kept += young.len();
            keep.extend(young.into_iter().map(|p| p.id));
            let written: Vec<(Parked, Result<(), ArchiveError>)> = futures::stream::iter(old)
                .map(|p| async move {
                    let put = archive.put(&p).await;
                    (p, put)
                })
                .buffer_unordered(WRITES_AT_ONCE)
                .collect()
                .await;
            let mut archived = Vec::new();
            for (p, put) in written {
                match put {
                    Ok(()) => archived.push(p),
                    Err(e) => {
                        first_error.get_or_insert(e.into());
                        keep.insert(p.id);
                    }
                }
            }
            // Only the queue copy goes: the archive copy is the one that stays.
            if let Err(e) = self.queue.delete(&archived).await {
                first_error.get_or_insert(e.into());
                keep.extend(archived.into_iter().map(|p| p.id));
                break;
            }
            swept.archived += archived.len();
            if first_error.is_some() {
                break;
            }
        }
        let held: Vec<Parked> = pass
            .into_parked()
            .into_iter()
            .filter(|p| keep.contains(&p.id))
            .collect();
        self.queue.release(&held).await?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(swept),
        }
    }
}

fn send_error(queue: &str, detail: String) -> QueueError {
    QueueError::Request {
        operation: "SendMessageBatch",
        queue: queue.to_string(),
        detail,
    }
}
