//! The failed queue: where jobs that cannot succeed wait for an operator, each with its
//! last reason. One place writes it, so every parked message has the same shape.

use crate::errors::{describe, ReplicationError};
use crate::queues::job::{now_rfc3339, Job};

#[derive(Debug, Clone)]
pub struct Parking {
    pub sqs: aws_sdk_sqs::Client,
    /// Without a failed queue nothing is parked: failures stay on their queue, for its
    /// redrive policy.
    pub failed_queue_url: Option<String>,
}

/// What a parked message that is not a job looks like (`kind` says what it was).
pub fn parked_raw(kind: &str, body: &str, err: &ReplicationError) -> String {
    serde_json::json!({
        "v": 1,
        "kind": kind,
        "last_error": {"reason": err.reason, "detail": err.detail},
        "first_failure": now_rfc3339(),
        "body": body,
    })
    .to_string()
}

impl Parking {
    /// Parks a job after recording this failure on it.
    pub async fn park_job(&self, job: &Job, err: &ReplicationError) -> bool {
        let mut parked = job.clone();
        parked.record_failure(err);
        self.park_job_as_is(&parked).await
    }

    /// Parks a job whose failure is already recorded.
    pub async fn park_job_as_is(&self, job: &Job) -> bool {
        if !self.send(job.to_body()).await {
            return false;
        }
        let reason = job
            .last_error
            .as_ref()
            .map(|e| e.reason.as_str())
            .unwrap_or("Unknown");
        let failure_age_s = job
            .first_failure
            .as_deref()
            .and_then(age_seconds)
            .unwrap_or(0);
        let failed_queue_depth = self.depth().await;
        tracing::warn!(
            bucket = %job.source.bucket, key = %job.source.key, destination = %job.destination.bucket,
            rule = %job.rule_id, attempts = job.attempts, reason, failure_age_s,
            failed_queue_depth, outcome = "parked",
            "job parked in the failed queue"
        );
        true
    }

    /// Messages waiting in the failed queue (SQS's approximate count), for the logs.
    async fn depth(&self) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName;
        let Some(url) = &self.failed_queue_url else {
            return 0;
        };
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await;
        out.ok()
            .and_then(|o| {
                o.attributes()?
                    .get(&QueueAttributeName::ApproximateNumberOfMessages)?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    /// Parks a message that is not a job at all, keeping its body for the operator.
    pub async fn park_raw(&self, body: &str, err: &ReplicationError) -> bool {
        tracing::error!(outcome = "failed", reason = %err.reason, error = %err.detail, "message does not parse");
        self.send(parked_raw("unparsed-job", body, err)).await
    }

    pub async fn send(&self, body: String) -> bool {
        let Some(url) = &self.failed_queue_url else {
            return false;
        };
        match self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(crate::queues::job::sqs_safe(body))
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %describe(&e), "could not send to the failed queue; leaving the message for redelivery");
                false
            }
        }
    }
}

/// Seconds since an RFC 3339 time.
pub fn age_seconds(rfc3339: &str) -> Option<u64> {
    let t = aws_smithy_types::DateTime::from_str(
        rfc3339,
        aws_smithy_types::date_time::Format::DateTime,
    )
    .ok()?;
    let t = std::time::SystemTime::try_from(t).ok()?;
    Some(
        std::time::SystemTime::now()
            .duration_since(t)
            .unwrap_or_default()
            .as_secs(),
    )
}
