//! The failed queue, read without consuming it.
//!
//! SQS cannot peek. Listing receives every message with a short visibility timeout (so
//! one pass sees each message once) and then makes them all visible again at once:
//! nothing is consumed, and each listed message's receive count goes up by one, which
//! is all SQS requires.

use std::collections::HashMap;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};

use super::parked::{Held, Parked};
use crate::errors::{describe, QueueError};

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
        self.parked[i].held.receipt = Some(handle.to_string());
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

/// One pass over the queue: each message once, held while the pass lasts.
#[derive(Default)]
pub(super) struct Pass {
    seen: Seen,
    empty_receives: u32,
}

impl Pass {
    /// In-flight or delayed messages cannot be received; two empty receives in a row
    /// (SQS samples servers on short polls) end a pass.
    pub(super) fn done(&self) -> bool {
        self.empty_receives >= 2
    }

    /// Everything the pass received, with the newest receipt handle of each.
    pub(super) fn into_parked(self) -> Vec<Parked> {
        self.seen.parked
    }
}

impl FailedQueue {
    /// Every message, each once; call [`FailedQueue::release`] (or act on them) after.
    pub async fn scan(&self) -> Result<Vec<Parked>, QueueError> {
        let mut pass = Pass::default();
        while !pass.done() {
            self.receive(&mut pass).await?;
        }
        Ok(pass.into_parked())
    }

    /// One receive of a pass: the messages it had not seen before.
    pub(super) async fn receive(&self, pass: &mut Pass) -> Result<Vec<Parked>, QueueError> {
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
            pass.empty_receives += 1;
            return Ok(Vec::new());
        }
        pass.empty_receives = 0;
        let mut new = Vec::new();
        for m in messages {
            let id = m.message_id.clone().unwrap_or_default();
            let handle = m.receipt_handle.clone().unwrap_or_default();
            if pass.seen.again(&id, &handle) {
                continue;
            }
            let sent = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .and_then(|t| t.parse().ok());
            let parked = Parked::from_body(
                id,
                m.body.clone().unwrap_or_default(),
                Held {
                    receipt: Some(handle),
                    archive_key: None,
                    parked_ms: sent,
                },
            );
            new.push(parked.clone());
            pass.seen.add(parked);
        }
        Ok(new)
    }

    /// Makes scanned messages visible again at once.
    pub async fn release(&self, parked: &[Parked]) -> Result<(), QueueError> {
        self.change_visibility(parked, 0).await
    }

    async fn change_visibility(&self, parked: &[Parked], seconds: i32) -> Result<(), QueueError> {
        let held = in_queue(parked);
        for chunk in held.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*receipt)
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

    /// Renews the hold on these messages, so they stay invisible while they are acted on.
    pub(super) async fn hold(&self, parked: &[Parked]) -> Result<(), QueueError> {
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
        let parked: Vec<&Parked> = parked.iter().filter(|p| p.held.receipt.is_some()).collect();
        for chunk in parked.chunks(10) {
            let chunk: Vec<Parked> = chunk.iter().map(|p| (*p).clone()).collect();
            self.hold(&chunk).await?;
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(p.held.receipt.as_deref().unwrap_or_default())
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

/// The receipt handles of those held in the queue (archived-only ones have none).
fn in_queue(parked: &[Parked]) -> Vec<&str> {
    parked
        .iter()
        .filter_map(|p| p.held.receipt.as_deref())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_received_again_keeps_its_newest_receipt_handle() {
        let mut seen = Seen::default();
        let held = |receipt: &str| Held {
            receipt: Some(receipt.into()),
            ..Held::default()
        };
        seen.add(Parked::from_body("m1".into(), "{}".into(), held("first")));
        seen.add(Parked::from_body("m2".into(), "{}".into(), held("other")));
        assert!(!seen.again("m3", "x"));
        assert!(seen.again("m1", "second"));
        assert_eq!(seen.parked.len(), 2);
        assert_eq!(seen.parked[0].held.receipt.as_deref(), Some("second"));
        assert_eq!(seen.parked[1].held.receipt.as_deref(), Some("other"));
    }
}
