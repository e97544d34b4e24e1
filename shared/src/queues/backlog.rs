//! How much a queue holds, as SQS counts it (approximately): what `status` shows and
//! what tells an idle worker it may stop.

use aws_sdk_sqs::types::QueueAttributeName as A;
use serde::Serialize;

use crate::errors::{describe, QueueError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    pub visible: u64,
    pub in_flight: u64,
    /// Sent with a delay (a retry waiting out its backoff) and not yet visible.
    pub delayed: u64,
}

impl Backlog {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

pub async fn of(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Backlog, QueueError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| QueueError::Request {
            operation: "GetQueueAttributes",
            queue: url.to_string(),
            detail: describe(&e),
        })?;
    let attributes = out.attributes.unwrap_or_default();
    let n = |name: A| {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Backlog {
        visible: n(A::ApproximateNumberOfMessages),
        in_flight: n(A::ApproximateNumberOfMessagesNotVisible),
        delayed: n(A::ApproximateNumberOfMessagesDelayed),
    })
}
