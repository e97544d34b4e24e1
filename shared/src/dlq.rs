//! Operating the failed queue: list, show, redrive, purge.
//!
//! SQS cannot peek. Listing receives every message with a short visibility timeout (so
//! one pass sees each message once) and then makes them all visible again at once:
//! nothing is consumed, and each listed message's receive count goes up by one, which
//! is all SQS requires.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use serde::Serialize;

use crate::errors::{describe, QueueError};
use crate::job::Job;
use crate::parking::age_seconds;

/// One message in the failed queue.
#[derive(Debug, Clone, Serialize)]
pub struct Parked {
    pub id: String,
    /// `job`, `unparsed-job` or `notification`.
    pub kind: String,
    /// For jobs: put, delete, tags or acl.
    pub op: Option<String>,
    pub reason: String,
    pub detail: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub destination: Option<String>,
    pub attempts: u32,
    pub first_failure: Option<String>,
    /// Seconds since the first failure (or since it was parked).
    pub age_seconds: u64,
    #[serde(skip)]
    pub job: Option<Job>,
    #[serde(skip)]
    pub body: String,
    #[serde(skip)]
    receipt_handle: String,
}

impl Parked {
    fn from_message(
        id: String,
        receipt_handle: String,
        body: String,
        sent_ms: Option<u64>,
    ) -> Parked {
        let now = SystemTime::now();
        let age_from = |rfc3339: Option<&str>| rfc3339.and_then(age_seconds);
        let sent_age = sent_ms
            .map(|ms| {
                now.duration_since(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
                    .unwrap_or_default()
                    .as_secs()
            })
            .unwrap_or(0);
        if let Ok(job) = Job::parse(&body) {
            let (reason, detail) = job
                .last_error
                .as_ref()
                .map(|e| (e.reason.to_string(), e.detail.clone()))
                .unwrap_or_else(|| ("Unknown".into(), "no error was recorded".into()));
            return Parked {
                id,
                kind: "job".into(),
                op: serde_json::to_value(job.op)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string)),
                reason,
                detail,
                bucket: Some(job.source.bucket.clone()),
                key: Some(job.source.key.clone()),
                destination: Some(job.destination.bucket.clone()),
                attempts: job.attempts,
                first_failure: job.first_failure.clone(),
                age_seconds: age_from(job.first_failure.as_deref()).unwrap_or(sent_age),
                job: Some(job),
                body,
                receipt_handle,
            };
        }
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        Parked {
            id,
            kind: text("/kind").unwrap_or_else(|| "unknown".into()),
            op: None,
            reason: text("/last_error/reason").unwrap_or_else(|| "Unknown".into()),
            detail: text("/last_error/detail")
                .unwrap_or_else(|| "the message is neither a job nor a parked notification".into()),
            bucket: None,
            key: None,
            destination: None,
            attempts: 0,
            first_failure: text("/first_failure"),
            age_seconds: age_from(text("/first_failure").as_deref()).unwrap_or(sent_age),
            job: None,
            body,
            receipt_handle,
        }
    }
}

/// What a scan has received so far, each message once.
#[derive(Default)]
struct Seen {
    parked: Vec<Parked>,
    at: HashMap<String, usize>,
}

impl Seen {
    /// Whether this message was received before. If so its hold ran out during a long
    /// scan and it came back: only the newest receipt handle deletes it (SQS accepts
    /// an older one and silently leaves the message), so that one is kept.
    fn again(&mut self, id: &str, handle: &str) -> bool {
        let Some(&i) = self.at.get(id) else {
            return false;
        };
        self.parked[i].receipt_handle = handle.to_string();
        true
    }

    fn add(&mut self, parked: Parked) {
        self.at.insert(parked.id.clone(), self.parked.len());
        self.parked.push(parked);
    }
}

/// The failed queue, for an operator.
pub struct FailedQueue {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
}

/// How long a scan hides what it has seen; long enough to finish the scan.
const SCAN_HOLD_SECONDS: i32 = 60;

impl FailedQueue {
    /// Every message, each once; call [`FailedQueue::release`] (or act on them) after.
    pub async fn scan(&self) -> Result<Vec<Parked>, QueueError> {
        let mut seen = Seen::default();
        let mut empty_receives = 0;
        // In-flight or delayed messages cannot be received; two empty receives in a
        // row (SQS samples servers on short polls) end the scan.
        while empty_receives < 2 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .visibility_timeout(SCAN_HOLD_SECONDS)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send()
                .await
                .map_err(|e| self.error("ReceiveMessage", describe(&e)))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                empty_receives += 1;
                continue;
            }
            empty_receives = 0;
            for m in messages {
                let id = m.message_id.clone().unwrap_or_default();
                let handle = m.receipt_handle.clone().unwrap_or_default();
                if seen.again(&id, &handle) {
                    continue;
                }
                let sent = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|t| t.parse().ok());
                seen.add(Parked::from_message(
                    id,
                    handle,
                    m.body.clone().unwrap_or_default(),
                    sent,
                ));
            }
        }
        Ok(seen.parked)
    }

    /// Makes scanned messages visible again at once.
    pub async fn release(&self, parked: &[Parked]) -> Result<(), QueueError> {
        self.change_visibility(parked, 0).await
    }

    async fn change_visibility(&self, parked: &[Parked], seconds: i32) -> Result<(), QueueError> {
        for chunk in parked.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&p.receipt_handle)
                        .visibility_timeout(seconds)
                        .build()
                        .expect("id and handle are set")
                })
                .collect();
            self.sqs
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error("ChangeMessageVisibilityBatch", describe(&e)))?;
        }
        Ok(())
    }

    /// Sends each job back to the work queue with its attempts reset, ten at a time,
    /// and removes each batch here as soon as it is sent: a failure part-way leaves
    /// every job in exactly one of the two queues. Each batch's hold is renewed first,
    /// so no one else can take it while it moves. Returns how many went back; what is
    /// not a job stays.
    pub async fn redrive(
        &self,
        parked: &[Parked],
        work_queue_url: &str,
    ) -> Result<usize, QueueError> {
        let jobs: Vec<&Parked> = parked.iter().filter(|p| p.job.is_some()).collect();
        let mut moved = 0;
        for chunk in jobs.chunks(10) {
            let chunk: Vec<Parked> = chunk.iter().map(|p| (*p).clone()).collect();
            self.hold(&chunk).await?;
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut fresh = p.job.clone().expect("only jobs are redriven");
                    fresh.reset();
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(fresh.to_body())
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(work_queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error("SendMessageBatch", describe(&e)))?;
            let sent: Vec<Parked> = out
                .successful()
                .iter()
                .filter_map(|s| s.id().parse::<usize>().ok())
                .filter_map(|i| chunk.get(i).cloned())
                .collect();
            self.delete(&sent).await?;
            moved += sent.len();
            if let Some(f) = out.failed().first() {
                return Err(QueueError::Request {
                    operation: "SendMessageBatch",
                    queue: work_queue_url.to_string(),
                    detail: format!(
                        "{} of {} not sent ({}: {}); {moved} redriven so far, the rest stay parked",
                        out.failed().len(),
                        chunk.len(),
                        f.code(),
                        f.message().unwrap_or("")
                    ),
                });
            }
        }
        Ok(moved)
    }

    /// Renews the hold on these messages, so they stay invisible while they are acted on.
    async fn hold(&self, parked: &[Parked]) -> Result<(), QueueError> {
        self.change_visibility(parked, SCAN_HOLD_SECONDS).await
    }

    /// How many messages are held by someone else right now (another listing, a
    /// redrive in progress, a consumer): they cannot be listed, and are not gone.
    pub async fn in_flight(&self) -> Result<u64, QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| self.error("GetQueueAttributes", describe(&e)))?;
        Ok(out
            .attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0))
    }

    /// Removes these messages for good (each batch held first, so a slow confirmation
    /// cannot have let them go to someone else).
    pub async fn delete(&self, parked: &[Parked]) -> Result<(), QueueError> {
        for chunk in parked.chunks(10) {
            self.hold(chunk).await?;
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&p.receipt_handle)
                        .build()
                        .expect("id and handle are set")
                })
                .collect();
            let out = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error("DeleteMessageBatch", describe(&e)))?;
            if let Some(f) = out.failed().first() {
                return Err(self.error(
                    "DeleteMessageBatch",
                    format!("{}: {}", f.code(), f.message().unwrap_or("")),
                ));
            }
        }
        Ok(())
    }

    fn error(&self, operation: &'static str, detail: String) -> QueueError {
        QueueError::Request {
            operation,
            queue: self.url.clone(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_received_again_keeps_its_newest_receipt_handle() {
        let mut seen = Seen::default();
        seen.add(Parked::from_message(
            "m1".into(),
            "first".into(),
            "{}".into(),
            None,
        ));
        seen.add(Parked::from_message(
            "m2".into(),
            "other".into(),
            "{}".into(),
            None,
        ));
        assert!(!seen.again("m3", "x"));
        assert!(seen.again("m1", "second"));
        assert_eq!(seen.parked.len(), 2);
        assert_eq!(seen.parked[0].receipt_handle, "second");
        assert_eq!(seen.parked[1].receipt_handle, "other");
    }
}
