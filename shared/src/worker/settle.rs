//! How a message leaves the worker: deleted once its job is done (ten at a time, its
//! backfill outcome recorded first), made visible again after a backoff when it
//! failed, released at once when the worker stops before running it.

use std::sync::Arc;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};
use tokio::sync::mpsc;

use crate::errors::describe;

use super::*;

impl Worker {
    /// Settles finished jobs as they come: a failed one becomes visible again after a
    /// backoff, finished ones are deleted ten at a time (or after a short wait, so a
    /// lone job is not kept waiting).
    pub(super) async fn settle(
        self: Arc<Self>,
        url: String,
        mut finished: mpsc::UnboundedReceiver<(Message, bool)>,
    ) {
        let mut done: Vec<Message> = Vec::new();
        loop {
            let next = if done.is_empty() {
                finished.recv().await
            } else {
                match tokio::time::timeout(DELETE_LINGER, finished.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.finish(&url, &done).await;
                        done.clear();
                        continue;
                    }
                }
            };
            let Some((message, ok)) = next else { break };
            if !ok {
                self.delay(&url, &message).await;
                continue;
            }
            done.push(message);
            if done.len() == 10 {
                self.finish(&url, &done).await;
                done.clear();
            }
        }
        self.finish(&url, &done).await;
    }

    /// Deletes finished jobs' messages, once the backfill outcomes among them are
    /// recorded (a message whose outcome was not written comes back instead).
    pub(super) async fn finish(&self, url: &str, done: &[Message]) {
        let ids: Vec<String> = done
            .iter()
            .filter_map(|m| m.message_id().map(str::to_string))
            .collect();
        let unwritten = self.replicator.flush_rows_of(Some(&ids)).await;
        let finished: Vec<&Message> = done
            .iter()
            .filter(|m| {
                !unwritten
                    .iter()
                    .any(|id| Some(id.as_str()) == m.message_id())
            })
            .collect();
        self.delete(url, &finished).await;
    }

    /// A failed message becomes visible again after a backoff that grows with its
    /// receive count, as the redrive policy's count grows.
    pub(super) async fn delay(&self, url: &str, m: &Message) {
        let Some(handle) = m.receipt_handle() else {
            return;
        };
        let receives: u32 = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let delay = 2i32.saturating_pow(receives.min(9)).min(900);
        if let Err(e) = self
            .sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(handle)
            .visibility_timeout(delay)
            .send()
            .await
        {
            tracing::warn!(error = %describe(&e), "could not delay a failed message");
        }
    }

    /// Makes received messages visible again at once (received as a worker stopped).
    pub(super) async fn release(&self, url: &str, messages: &[Message]) {
        for chunk in messages.chunks(10) {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            if let Err(e) = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::warn!(error = %describe(&e), "messages received while stopping come back after their visibility timeout");
            }
        }
    }

    /// Deletes finished messages, ten to a request.
    pub(super) async fn delete(&self, url: &str, done: &[&Message]) {
        for chunk in done.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            match self
                .sqs
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) if out.failed().is_empty() => {}
                Ok(out) => tracing::warn!(
                    count = out.failed().len(),
                    "some finished messages were not deleted and will run again"
                ),
                Err(e) => {
                    tracing::warn!(error = %describe(&e), "finished messages were not deleted and will run again")
                }
            }
        }
    }
}
