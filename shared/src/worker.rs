//! The long-lived worker behind `s3-replicator run`: polls the events and work queues
//! and calls the very handlers the Lambdas call, deleting what they report done.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use tokio::sync::watch;

use crate::errors::{describe, QueueError};
use crate::ingest::Ingest;
use crate::replicate::Replicator;
use crate::retry::Retrier;

pub struct Worker {
    pub sqs: aws_sdk_sqs::Client,
    /// With an events queue, the worker ingests too.
    pub ingest: Option<(Arc<Ingest>, String)>,
    pub replicator: Arc<Replicator>,
    pub work_queue_url: String,
    /// With a retry queue, the worker retries too.
    pub retry: Option<(Arc<Retrier>, String)>,
    /// Long-poll wait per receive; short keeps `--exit-when-idle` responsive.
    pub wait: Duration,
}

#[derive(Clone, Copy)]
enum Role {
    Ingest,
    Replicate,
    Retry,
}

/// When the pollers last saw a message, to end an idle run.
struct Activity {
    last: Mutex<Instant>,
}

impl Worker {
    /// Polls until `stop` turns true, or until every queue has been empty for
    /// `exit_when_idle`.
    pub async fn run(
        self: Arc<Self>,
        exit_when_idle: Option<Duration>,
        stop: watch::Receiver<bool>,
    ) -> Result<(), QueueError> {
        let activity = Arc::new(Activity {
            last: Mutex::new(Instant::now()),
        });
        let mut tasks = Vec::new();
        if let Some((_, url)) = &self.ingest {
            tasks.push(tokio::spawn(self.clone().poll(
                Role::Ingest,
                url.clone(),
                activity.clone(),
                exit_when_idle,
                stop.clone(),
            )));
        }
        if let Some((_, url)) = &self.retry {
            tasks.push(tokio::spawn(self.clone().poll(
                Role::Retry,
                url.clone(),
                activity.clone(),
                exit_when_idle,
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(self.clone().poll(
            Role::Replicate,
            self.work_queue_url.clone(),
            activity.clone(),
            exit_when_idle,
            stop.clone(),
        )));
        // A poller that gives up (its queue is gone, access was revoked) ends the run:
        // a worker that polls some queues and not others looks alive and is not.
        while !tasks.is_empty() {
            let (finished, _, rest) = futures::future::select_all(tasks).await;
            tasks = rest;
            let failure = match finished {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(join) => QueueError::Request {
                    operation: "poll",
                    queue: String::new(),
                    detail: format!("poller stopped: {join}"),
                },
            };
            // What the others hold becomes visible again and runs elsewhere.
            for task in &tasks {
                task.abort();
            }
            return Err(failure);
        }
        Ok(())
    }

    /// Asks each queue for one attribute: a wrong URL, a missing queue or a refused
    /// grant is one clear error at start instead of warnings and a worker that waits
    /// for ever.
    pub async fn check_queues(
        sqs: &aws_sdk_sqs::Client,
        queues: &[(&'static str, &str)],
    ) -> Result<(), QueueError> {
        for (var, url) in queues {
            sqs.get_queue_attributes()
                .queue_url(*url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| QueueError::Request {
                    operation: "GetQueueAttributes",
                    queue: format!("{url} ({var})"),
                    detail: describe(&e),
                })?;
        }
        Ok(())
    }

    async fn poll(
        self: Arc<Self>,
        role: Role,
        url: String,
        activity: Arc<Activity>,
        exit_when_idle: Option<Duration>,
        stop: watch::Receiver<bool>,
    ) -> Result<(), QueueError> {
        let mut consecutive_errors = 0u32;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let received = self
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(self.wait.as_secs() as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await;
            let messages = match received {
                Ok(out) => {
                    consecutive_errors = 0;
                    out.messages.unwrap_or_default()
                }
                Err(e) => {
                    consecutive_errors += 1;
                    // A queue that no longer exists will not come back by waiting.
                    let gone = e.as_service_error().and_then(|s| {
                        use aws_sdk_sqs::error::ProvideErrorMetadata;
                        s.code()
                    });
                    let gone = matches!(
                        gone,
                        Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist")
                    );
                    tracing::warn!(queue = %url, error = %describe(&e), "receive failed");
                    if gone || consecutive_errors >= 10 {
                        return Err(QueueError::Request {
                            operation: "ReceiveMessage",
                            queue: url,
                            detail: describe(&e),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(consecutive_errors)))
                        .await;
                    continue;
                }
            };
            if messages.is_empty() {
                if self.wait.is_zero() {
                    // No long poll to pace us: don't spin on an empty queue.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let idle_for = activity.last.lock().expect("activity lock").elapsed();
                // Idle means settled: nothing delayed (a retry waiting out its backoff)
                // or in flight on any of our queues.
                if exit_when_idle.is_some_and(|limit| idle_for >= limit) && self.settled().await {
                    return Ok(());
                }
                continue;
            }
            *activity.last.lock().expect("activity lock") = Instant::now();
            let batch = to_sqs_event(&messages, &url);
            let response = match role {
                Role::Ingest => match &self.ingest {
                    Some((ingest, _)) => ingest.handle_sqs(batch).await,
                    None => SqsBatchResponse::default(),
                },
                Role::Replicate => self.replicator.handle_batch(batch).await,
                Role::Retry => match &self.retry {
                    Some((retrier, _)) => retrier.handle_batch(batch).await,
                    None => SqsBatchResponse::default(),
                },
            };
            self.settle(&url, &messages, &response).await;
            *activity.last.lock().expect("activity lock") = Instant::now();
        }
    }

    /// True when none of the worker's queues holds a message, visible or not.
    async fn settled(&self) -> bool {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let mut urls = vec![self.work_queue_url.as_str()];
        urls.extend(self.ingest.as_ref().map(|(_, u)| u.as_str()));
        urls.extend(self.retry.as_ref().map(|(_, u)| u.as_str()));
        for url in urls {
            let out = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(A::ApproximateNumberOfMessages)
                .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                .attribute_names(A::ApproximateNumberOfMessagesDelayed)
                .send()
                .await;
            let Ok(out) = out else { return false };
            let Some(attrs) = out.attributes() else {
                return false;
            };
            let total: u64 = attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum();
            if total > 0 {
                return false;
            }
        }
        true
    }

    /// Deletes what succeeded; what failed becomes visible again after a backoff that
    /// grows with its receive count, as the redrive policy's count grows.
    async fn settle(&self, url: &str, messages: &[Message], response: &SqsBatchResponse) {
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let mut done = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else {
                continue;
            };
            if failed.contains(&id) {
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
                continue;
            }
            done.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .expect("id and handle are set"),
            );
        }
        if done.is_empty() {
            return;
        }
        match self
            .sqs
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(done))
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

/// The shape Lambda's SQS trigger gives the same messages.
pub fn to_sqs_event(messages: &[Message], queue_url: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    for m in messages {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id().map(str::to_string);
        record.receipt_handle = m.receipt_handle().map(str::to_string);
        record.body = m.body().map(str::to_string);
        record.event_source = Some("aws:sqs".into());
        record.event_source_arn = Some(queue_url.to_string());
        if let Some(attrs) = m.attributes() {
            for (k, v) in attrs {
                record.attributes.insert(k.as_str().to_string(), v.clone());
            }
        }
        event.records.push(record);
    }
    event
}
