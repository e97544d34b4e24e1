//! The long-lived worker behind `s3-replicator run`: polls the events and work queues
//! and calls the very handlers the Lambdas call, deleting what they report done.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::errors::{describe, QueueError};
use crate::ingest::Ingest;
use crate::replicate::Replicator;
use crate::retry::Retrier;

mod settle;

pub struct Worker {
    pub sqs: aws_sdk_sqs::Client,
    /// With an events queue, the worker ingests too.
    pub ingest: Option<(Arc<Ingest>, String)>,
    pub replicator: Arc<Replicator>,
    pub work_queue_url: String,
    /// With a retry queue, the worker retries too.
    pub retry: Option<(Arc<Retrier>, String)>,
    /// Long-poll wait per receive (SQS allows up to 20 s); shorter keeps
    /// `--exit-when-idle` responsive. A stop never waits for it.
    pub wait: Duration,
}

#[derive(Clone, Copy)]
enum Role {
    Ingest,
    Retry,
}

/// When the pollers last saw a message, to end an idle run.
struct Activity {
    last: Mutex<Instant>,
}

impl Activity {
    fn touch(&self) {
        *self.last.lock().expect("activity lock") = Instant::now();
    }
}

/// One queue's receives, and how many failed in a row.
struct Receiver {
    url: String,
    consecutive_errors: u32,
}

impl Receiver {
    fn new(url: &str) -> Receiver {
        Receiver {
            url: url.to_string(),
            consecutive_errors: 0,
        }
    }
}

/// How long a freed slot waits for others before the worker receives again: long
/// enough for jobs finishing close together to share a receive, short beside a job.
const REFILL_LINGER: Duration = Duration::from_millis(20);

/// How long finished jobs wait for others to share their delete request.
const DELETE_LINGER: Duration = Duration::from_millis(200);

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
        tasks.push(tokio::spawn(self.clone().pipeline(
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

    /// Ingest and retry: a batch at a time, as Lambda's trigger hands them over (ingest
    /// sends the jobs of a whole batch together).
    async fn poll(
        self: Arc<Self>,
        role: Role,
        url: String,
        activity: Arc<Activity>,
        exit_when_idle: Option<Duration>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), QueueError> {
        let mut receiver = Receiver::new(&url);
        loop {
            let Some(messages) = self
                .receive(&mut receiver, 10, &mut stop, &|| false)
                .await?
            else {
                return Ok(());
            };
            if messages.is_empty() {
                if self.idle(&activity, exit_when_idle).await {
                    return Ok(());
                }
                continue;
            }
            activity.touch();
            let batch = to_sqs_event(&messages, &url);
            let response = match role {
                Role::Ingest => match &self.ingest {
                    Some((ingest, _)) => ingest.handle_sqs(batch).await,
                    None => SqsBatchResponse::default(),
                },
                Role::Retry => match &self.retry {
                    Some((retrier, _)) => retrier.handle_batch(batch).await,
                    None => SqsBatchResponse::default(),
                },
            };
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            let (failed, done): (Vec<&Message>, Vec<&Message>) = messages
                .iter()
                .partition(|m| m.message_id().is_some_and(|id| failed.contains(&id)));
            for m in failed {
                self.delay(&url, m).await;
            }
            self.delete(&url, &done).await;
            activity.touch();
        }
    }

    /// Replicate: keeps `concurrency` jobs in flight, receiving as jobs finish (not a
    /// batch at a time, so one slow copy holds up nothing), and deletes finished jobs
    /// ten at a time. On stop it receives nothing more, lets the jobs in hand finish
    /// (multipart copies pause), and settles every one before returning.
    async fn pipeline(
        self: Arc<Self>,
        url: String,
        activity: Arc<Activity>,
        exit_when_idle: Option<Duration>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), QueueError> {
        let limit = self.replicator.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(limit));
        let (finished, settled) = mpsc::unbounded_channel::<(Message, bool)>();
        let settler = tokio::spawn(self.clone().settle(url.clone(), settled));
        let mut receiver = Receiver::new(&url);
        let result = loop {
            let first = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("never closed"),
                _ = stopped(&mut stop) => break Ok(()),
            };
            // Refill by half a batch where jobs finish close together: a receive per
            // freed slot would cost an SQS request per job, waiting for a whole batch
            // to free would leave slots idle. A slow job holds only its own slot.
            let want = (limit.min(10) / 2).max(1);
            let linger_until = Instant::now() + REFILL_LINGER;
            while slots.available_permits() + 1 < want && Instant::now() < linger_until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let room = 1 + slots.available_permits().min(9);
            // Jobs in hand may send to this very queue (a paused copy's continuation)
            // after a stop: a long poll is then finished, not given up, so what it
            // brings is released instead of being held by a closed connection.
            let in_hand = || slots.available_permits() + 1 < limit;
            let messages = match self
                .receive(&mut receiver, room as i32, &mut stop, &in_hand)
                .await
            {
                Ok(Some(messages)) => messages,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if messages.is_empty() {
                drop(first);
                let in_flight = slots.available_permits() < limit;
                if !in_flight && self.idle(&activity, exit_when_idle).await {
                    break Ok(());
                }
                continue;
            }
            activity.touch();
            let mut first = Some(first);
            for m in messages {
                let slot = match first.take() {
                    Some(slot) => slot,
                    None => slots.clone().acquire_owned().await.expect("never closed"),
                };
                let (worker, url, finished, activity) = (
                    self.clone(),
                    url.clone(),
                    finished.clone(),
                    activity.clone(),
                );
                tokio::spawn(async move {
                    let failures = worker
                        .replicator
                        .run_batch(to_sqs_event(std::slice::from_ref(&m), &url))
                        .await;
                    let _ = finished.send((m, failures.is_empty()));
                    activity.touch();
                    drop(slot);
                });
            }
        };
        // Every job in hand finishes (or pauses) and is settled before the run ends.
        let _all = slots
            .acquire_many(limit as u32)
            .await
            .expect("never closed");
        drop(finished);
        let _ = settler.await;
        result
    }

    /// One receive of up to `max` messages; none when told to stop while waiting. A
    /// long poll is then given up, unless `finish_on_stop` says to see it through and
    /// release what it brings (given up, anything SQS handed out in that instant
    /// comes back only after its visibility timeout). Gives up on a queue that is gone
    /// or keeps failing.
    async fn receive(
        &self,
        receiver: &mut Receiver,
        max: i32,
        stop: &mut watch::Receiver<bool>,
        finish_on_stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Option<Vec<Message>>, QueueError> {
        loop {
            if *stop.borrow() {
                return Ok(None);
            }
            let request = self
                .sqs
                .receive_message()
                .queue_url(&receiver.url)
                .max_number_of_messages(max.clamp(1, 10))
                .wait_time_seconds(self.wait.as_secs() as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send();
            let mut request = std::pin::pin!(request);
            let received = tokio::select! {
                received = &mut request => received,
                _ = stopped(stop) => {
                    if finish_on_stop() {
                        if let Ok(out) = request.await {
                            self.release(&receiver.url, out.messages()).await;
                        }
                    }
                    return Ok(None);
                }
            };
            match received {
                Ok(out) => {
                    receiver.consecutive_errors = 0;
                    let messages = out.messages.unwrap_or_default();
                    if messages.is_empty() && self.wait.is_zero() {
                        // No long poll to pace us: don't spin on an empty queue.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    return Ok(Some(messages));
                }
                Err(e) => {
                    receiver.consecutive_errors += 1;
                    // A queue that no longer exists will not come back by waiting.
                    let gone = e.as_service_error().and_then(|s| {
                        use aws_sdk_sqs::error::ProvideErrorMetadata;
                        s.code()
                    });
                    let gone = matches!(
                        gone,
                        Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist")
                    );
                    tracing::warn!(queue = %receiver.url, error = %describe(&e), "receive failed");
                    if gone || receiver.consecutive_errors >= 10 {
                        return Err(QueueError::Request {
                            operation: "ReceiveMessage",
                            queue: receiver.url.clone(),
                            detail: describe(&e),
                        });
                    }
                    let pause = 200 * u64::from(receiver.consecutive_errors);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        }
    }

    /// Whether an idle run should end: every queue has been quiet for
    /// `exit_when_idle`, and nothing is delayed (a retry waiting out its backoff) or in
    /// flight on any of them.
    async fn idle(&self, activity: &Activity, exit_when_idle: Option<Duration>) -> bool {
        let idle_for = activity.last.lock().expect("activity lock").elapsed();
        exit_when_idle.is_some_and(|limit| idle_for >= limit) && self.settled().await
    }

    /// True when none of the worker's queues holds a message, visible or not.
    async fn settled(&self) -> bool {
        let mut urls = vec![self.work_queue_url.as_str()];
        urls.extend(self.ingest.as_ref().map(|(_, u)| u.as_str()));
        urls.extend(self.retry.as_ref().map(|(_, u)| u.as_str()));
        for url in urls {
            match crate::queues::backlog::of(&self.sqs, url).await {
                Ok(backlog) if backlog.total() == 0 => {}
                _ => return false,
            }
        }
        true
    }
}

/// Resolves once the worker is told to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
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
