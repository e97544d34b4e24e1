//! Keeps a message invisible while its job runs: a copy that outlasts a share of the
//! visibility timeout extends it, so SQS does not hand the same job to a second worker.

use std::future::Future;
use std::time::Duration;

use crate::errors::describe;

#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub queue_url: String,
    /// The queue's visibility timeout.
    pub visibility: Duration,
}

impl Lease {
    /// Reads the queue's visibility timeout (once, at start).
    pub async fn for_queue(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Option<Lease> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let out = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .map_err(|e| tracing::warn!(error = %describe(&e), "cannot read the work queue's visibility timeout; long jobs will not extend their lease"))
            .ok()?;
        let secs: u64 = out
            .attributes()?
            .get(&QueueAttributeName::VisibilityTimeout)?
            .parse()
            .ok()?;
        Some(Lease {
            queue_url: queue_url.to_string(),
            visibility: Duration::from_secs(secs.max(1)),
        })
    }

    /// Runs `job`, extending the message's visibility each time half of it has passed.
    pub async fn hold<F: Future>(
        &self,
        sqs: &aws_sdk_sqs::Client,
        receipt_handle: &str,
        job: F,
    ) -> F::Output {
        tokio::pin!(job);
        let period = (self.visibility / 2).max(Duration::from_millis(100));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                out = &mut job => return out,
                _ = ticker.tick() => {
                    let extended = sqs
                        .change_message_visibility()
                        .queue_url(&self.queue_url)
                        .receipt_handle(receipt_handle)
                        .visibility_timeout(self.visibility.as_secs().clamp(1, 43_200) as i32)
                        .send()
                        .await;
                    if let Err(e) = extended {
                        tracing::warn!(error = %describe(&e), "could not extend a running job's lease");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput;
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn a_long_job_extends_its_lease_and_a_short_one_does_not() {
        let extend = mock!(aws_sdk_sqs::Client::change_message_visibility)
            .match_requests(|r| {
                r.receipt_handle() == Some("rh") && r.visibility_timeout() == Some(1)
            })
            .sequence()
            .output(|| ChangeMessageVisibilityOutput::builder().build())
            .repeatedly()
            .build();
        let sqs = mock_client!(aws_sdk_sqs, [&extend]);
        let lease = Lease {
            queue_url: "https://sqs.us-east-1.amazonaws.com/1/work".into(),
            visibility: Duration::from_secs(1),
        };
        let out = lease.hold(&sqs, "rh", async { 42 }).await;
        assert_eq!((out, extend.num_calls()), (42, 0));
        lease
            .hold(&sqs, "rh", tokio::time::sleep(Duration::from_millis(1700)))
            .await;
        assert_eq!(extend.num_calls(), 3, "extended at 0.5 s, 1.0 s and 1.5 s");
    }
}
