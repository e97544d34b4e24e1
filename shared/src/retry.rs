//! The retry handler: consumes the retry queue (the work queue's dead-letter queue, and
//! where replicate forwards transient failures with their reason). A job with budget
//! left goes back to the work queue after an exponential, jittered delay; a job whose
//! failure is permanent, or whose budget is spent, goes to the failed queue with its
//! last reason.

use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use rand::Rng;

use crate::config::settings::{RETRY_BASE_DELAY_VAR, RETRY_MAX_ATTEMPTS_VAR};
use crate::errors::{describe, DlqError, FailureReason, QueueError, ReplicationError};
use crate::listing::{ListTask, WorkItem};
use crate::queues::batch::item_failure;
use crate::queues::dlq::{Failed, Swept};
use crate::queues::job::now_rfc3339;
use crate::queues::job::{Job, LastError};
use crate::queues::parking::Parking;

/// How often and how patiently a job is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Failed attempts after which a job is parked.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles with each attempt.
    pub base: Duration,
    /// SQS's DelaySeconds stops at 15 minutes.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(900),
        }
    }
}

impl RetryPolicy {
    /// `RETRY_MAX_ATTEMPTS` and `RETRY_BASE_DELAY_SECONDS`, where set.
    pub fn from_env() -> Result<RetryPolicy, crate::errors::ConfigError> {
        let mut policy = RetryPolicy::default();
        let read = |name: &'static str| -> Result<Option<u64>, crate::errors::ConfigError> {
            match std::env::var(name) {
                Ok(v) => v.trim().parse().map(Some).map_err(|_| {
                    crate::errors::ConfigError::Environment {
                        name,
                        reason: format!("\"{v}\" is not a whole number"),
                    }
                }),
                Err(_) => Ok(None),
            }
        };
        if let Some(n) = read(RETRY_MAX_ATTEMPTS_VAR)? {
            policy.max_attempts = n.clamp(1, 1000) as u32;
        }
        if let Some(s) = read(RETRY_BASE_DELAY_VAR)? {
            policy.base = Duration::from_secs(s.min(900));
        }
        Ok(policy)
    }

    /// The ceiling of the delay after `attempts` failures: base × 2^(attempts−1), capped.
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// "Equal jitter": half the ceiling plus a random share of the other half, so
    /// retries spread out but never come back at once.
    pub fn delay(&self, attempts: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempts).as_millis() as u64;
        let half = ceiling / 2;
        Duration::from_millis(half + rng.random_range(0..=ceiling - half))
    }
}

/// A sweep stops receiving this long before the invocation's deadline: the last batch's
/// archive writes and deletes, and the release of what it holds, fit in it.
const SWEEP_RESERVE: Duration = Duration::from_secs(15);

pub struct Retrier {
    pub sqs: aws_sdk_sqs::Client,
    /// Writes the outcome of a backfill job it parks to the backfill's record.
    pub s3: aws_sdk_s3::Client,
    pub work_queue_url: String,
    pub parking: Parking,
    pub policy: RetryPolicy,
    /// The failed queue and its archive, for the scheduled sweep; none without an
    /// archive (`FAILED_ARCHIVE_URL`).
    pub failed: Option<Failed>,
}

/// What the retry function is invoked with: a batch of its queue, or the schedule that
/// moves old parked jobs to the archive (an EventBridge "Scheduled Event").
#[derive(Debug)]
pub enum RetryInput {
    Batch(SqsEvent),
    Sweep,
}

impl<'de> serde::Deserialize<'de> for RetryInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        if value.get("Records").is_some() {
            return serde_json::from_value(value)
                .map(RetryInput::Batch)
                .map_err(D::Error::custom);
        }
        if value.get("detail-type").and_then(|v| v.as_str()) == Some("Scheduled Event") {
            return Ok(RetryInput::Sweep);
        }
        Err(D::Error::custom(
            "neither an SQS batch (Records) nor an EventBridge Scheduled Event",
        ))
    }
}

/// What the retry function answers: the batch's failures, or what the sweep moved.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum RetryOutput {
    Batch(SqsBatchResponse),
    Swept(Swept),
}

/// What the retry handler decided for one job.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Requeue { delay: Duration },
    Park { reason: FailureReason },
}

impl Retrier {
    /// The Lambda handler: a batch, or the scheduled sweep.
    pub async fn invoke(
        &self,
        event: LambdaEvent<RetryInput>,
    ) -> Result<RetryOutput, lambda_runtime::Error> {
        match event.payload {
            RetryInput::Batch(batch) => Ok(RetryOutput::Batch(self.handle_batch(batch).await)),
            RetryInput::Sweep => {
                let until =
                    crate::queues::batch::before_deadline(event.context.deadline, SWEEP_RESERVE);
                Ok(RetryOutput::Swept(self.sweep(until).await?))
            }
        }
    }

    /// Moves parked jobs that have waited `FAILED_ARCHIVE_AFTER` to the archive, until
    /// `until` if given (what is left waits for the next sweep).
    pub async fn sweep(&self, until: Option<Instant>) -> Result<Swept, DlqError> {
        let Some(failed) = &self.failed else {
            tracing::warn!("a sweep was asked for, but no archive is configured ({}): parked jobs stay in the failed queue", crate::config::settings::FAILED_ARCHIVE_VAR);
            return Ok(Swept::default());
        };
        let swept = failed.sweep(until).await;
        match &swept {
            Ok(s) => tracing::info!(
                archived = s.archived,
                kept = s.kept,
                unfinished = s.unfinished,
                outcome = "swept",
                "parked jobs older than the archive age moved to the archive"
            ),
            Err(e) => tracing::error!(error = %e, outcome = "failed",
                "the sweep to the archive stopped; what was not written stays in the failed queue"),
        }
        swept
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        Ok(self.handle_batch(event.payload).await)
    }

    pub async fn handle_batch(&self, batch: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in batch.records {
            let id = message.message_id.clone().unwrap_or_default();
            let body = message.body.as_deref().unwrap_or("");
            let done = match WorkItem::parse(body) {
                Ok(WorkItem::Job(job)) => self.retry(*job).await.is_ok(),
                Ok(WorkItem::List(task)) => self.retry_list(*task).await,
                Err(err) => self.parking.park_raw(body, &err).await,
            };
            if !done {
                response.batch_item_failures.push(item_failure(id));
            }
        }
        response
    }

    /// A backfill's list task that failed (its page could not be listed or its jobs
    /// not sent) goes back to the work queue with backoff until the budget is spent,
    /// then is parked: the rest of its prefix waits for an operator, not for ever.
    pub async fn retry_list(&self, mut task: ListTask) -> bool {
        task.attempts += 1;
        if task.attempts >= self.policy.max_attempts {
            let err = ReplicationError::new(
                FailureReason::Unknown,
                format!("backfill {} could not list s3://{}/{} in {} attempts (the logs of the work queue's consumer say why)",
                    task.backfill, task.bucket, task.prefix, task.attempts),
            );
            return self
                .parking
                .send(crate::queues::parking::parked_raw(
                    "list-task",
                    &task.to_body(),
                    &err,
                ))
                .await;
        }
        let delay = self.policy.delay(task.attempts, &mut rand::rng());
        let sent = self
            .sqs
            .send_message()
            .queue_url(&self.work_queue_url)
            .message_body(task.to_body())
            .delay_seconds(delay.as_secs().min(900) as i32)
            .send()
            .await;
        match sent {
            Ok(_) => {
                tracing::info!(backfill = %task.backfill, bucket = %task.bucket, prefix = %task.prefix,
                    attempts = task.attempts, delay_s = delay.as_secs(), outcome = "requeued", "backfill list task retried later");
                true
            }
            Err(e) => {
                tracing::warn!(error = %describe(&e), "could not requeue a backfill list task; SQS will deliver it again");
                false
            }
        }
    }

    /// Records a parked backfill job as failed in its backfill's record.
    async fn record_parked(&self, job: &Job) -> Result<(), String> {
        use crate::listing::record::{self, ReportLocation, Row};
        let Some(crate::queues::job::BackfillRef {
            id,
            report: Some(url),
            ..
        }) = &job.backfill
        else {
            return Ok(());
        };
        let at = ReportLocation::parse(url)?;
        let row = Row {
            bucket: job.source.bucket.clone(),
            key: job.source.key.clone(),
            destination: job.destination.bucket.clone(),
            outcome: "failed".into(),
            reason: job
                .last_error
                .as_ref()
                .map(|e| e.reason.as_str())
                .unwrap_or("Unknown")
                .into(),
            bytes: 0,
        };
        record::write_results(&self.s3, &at, id, &[row]).await
    }

    /// Decides what becomes of a job that failed, and does it.
    pub async fn retry(&self, mut job: Job) -> Result<Decision, QueueError> {
        if !std::mem::take(&mut job.forwarded) {
            // Redriven by SQS, not forwarded by a worker: its receives ran out while a
            // worker held it (a crash, a timeout). Every such redrive counts, so a job
            // that kills its worker spends its budget like any other failure.
            job.attempts += 1;
            const LOST: &str =
                "the work queue redrove this job: the worker holding it stopped or timed out";
            let detail = match &job.last_error {
                Some(e) if e.reason == FailureReason::LeaseExpired => e.detail.clone(),
                Some(e) => format!(
                    "{LOST} (the failure before: {}: {})",
                    e.reason.as_str(),
                    e.detail
                ),
                None => LOST.to_string(),
            };
            job.last_error = Some(LastError {
                reason: FailureReason::LeaseExpired,
                detail,
            });
        }
        job.first_failure.get_or_insert_with(now_rfc3339);
        let reason = job
            .last_error
            .as_ref()
            .map(|e| e.reason)
            .unwrap_or(FailureReason::Unknown);
        let decision = decide(&self.policy, &job, &mut rand::rng());
        match decision {
            // Parking logs the outcome with the failed queue's depth.
            Decision::Park { .. } => {
                // Recorded first: a park that follows a failed write would leave the
                // backfill waiting for an outcome that never comes.
                if let Err(e) = self.record_parked(&job).await {
                    return Err(QueueError::Request {
                        operation: "SendMessage",
                        queue: "failed queue".into(),
                        detail: format!("not parked: the backfill's record cannot be written: {e}"),
                    });
                }
                crate::metrics::failed(&job.dimensions(), reason.as_str(), true);
                if !self.parking.park_job_as_is(&job).await {
                    return Err(QueueError::Request {
                        operation: "SendMessage",
                        queue: "failed queue".into(),
                        detail: "could not park the job".into(),
                    });
                }
            }
            Decision::Requeue { delay } => {
                self.sqs
                    .send_message()
                    .queue_url(&self.work_queue_url)
                    .message_body(job.to_body())
                    .delay_seconds(delay.as_secs().min(900) as i32)
                    .send()
                    .await
                    .map_err(|e| QueueError::Request {
                        operation: "SendMessage",
                        queue: self.work_queue_url.clone(),
                        detail: describe(&e),
                    })?;
                let age_s = job
                    .first_failure
                    .as_deref()
                    .and_then(crate::queues::parking::age_seconds)
                    .unwrap_or(0);
                crate::metrics::requeued(&job.dimensions(), age_s);
                tracing::info!(bucket = %job.source.bucket, key = %job.source.key, destination = %job.destination.bucket,
                    attempts = job.attempts, delay_s = delay.as_secs(), outcome = "requeued", reason = %reason, "job retried later");
            }
        }
        Ok(decision)
    }
}

/// Permanent failures and spent budgets are parked; the rest wait and go again.
pub fn decide(policy: &RetryPolicy, job: &Job, rng: &mut impl Rng) -> Decision {
    let reason = job
        .last_error
        .as_ref()
        .map(|e| e.reason)
        .unwrap_or(FailureReason::Unknown);
    if !reason.is_retryable() || job.attempts >= policy.max_attempts {
        return Decision::Park { reason };
    }
    Decision::Requeue {
        delay: policy.delay(job.attempts, rng),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_function_tells_its_queue_from_its_schedule() {
        let parse = |text: &str| serde_json::from_str::<RetryInput>(text);
        match parse(include_str!("../../tests/fixtures/events/sqs-s3.json")).unwrap() {
            RetryInput::Batch(batch) => assert_eq!(batch.records.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(include_str!(
                "../../tests/fixtures/events/eventbridge-scheduled.json"
            ))
            .unwrap(),
            RetryInput::Sweep
        ));
        // Another EventBridge event, or anything else, is refused with what was expected.
        let other = parse(include_str!(
            "../../tests/fixtures/events/eventbridge-created.json"
        ))
        .unwrap_err()
        .to_string();
        assert!(other.contains("Scheduled Event"), "{other}");
        assert!(parse("[]").is_err());
    }

    #[test]
    fn the_schedule_doubles_jitters_and_caps() {
        let policy = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert_eq!(policy.ceiling(1), Duration::from_secs(2));
        assert_eq!(policy.ceiling(2), Duration::from_secs(4));
        assert_eq!(policy.ceiling(5), Duration::from_secs(32));
        assert_eq!(
            policy.ceiling(10),
            Duration::from_secs(900),
            "capped at SQS's 15 minutes"
        );
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(900));
        for attempts in 1..=12 {
            let ceiling = policy.ceiling(attempts);
            let delays: Vec<Duration> =
                (0..200).map(|_| policy.delay(attempts, &mut rng)).collect();
            assert!(
                delays.iter().all(|d| *d >= ceiling / 2 && *d <= ceiling),
                "attempt {attempts}"
            );
            let distinct: std::collections::HashSet<_> = delays.iter().collect();
            assert!(distinct.len() > 50, "jittered, attempt {attempts}");
        }
    }

    fn job(reason: FailureReason, attempts: u32) -> Job {
        let mut job = Job::parse(include_str!("../../tests/fixtures/jobs/put.json")).unwrap();
        job.attempts = attempts;
        job.last_error = Some(LastError {
            reason,
            detail: String::new(),
        });
        job
    }

    #[test]
    fn permanent_failures_skip_the_budget() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for reason in [
            FailureReason::DstBucketNotFound,
            FailureReason::SrcGetObjectNotPermitted,
            FailureReason::InvalidStorageClass,
            FailureReason::MalformedMessage,
        ] {
            assert_eq!(
                decide(&policy, &job(reason, 1), &mut rng),
                Decision::Park { reason }
            );
        }
        assert!(matches!(
            decide(&policy, &job(FailureReason::Throttled, 1), &mut rng),
            Decision::Requeue { .. }
        ));
        assert!(matches!(
            decide(&policy, &job(FailureReason::Throttled, 2), &mut rng),
            Decision::Requeue { .. }
        ));
        assert_eq!(
            decide(&policy, &job(FailureReason::Throttled, 3), &mut rng),
            Decision::Park {
                reason: FailureReason::Throttled
            }
        );
    }
}
