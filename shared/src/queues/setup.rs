//! `s3-replicator setup queues`: the worker's queues, for those who run it without SAM
//! or Terraform, made as the templates make them: the events queue (with its
//! dead-letter queue and a policy that lets S3 send the named buckets' events), the
//! work queue (redriven to the retry queue), the retry queue (redriven to the failed
//! queue) and the failed queue; SSE-SQS, 14 days' retention. Safe to run again: each
//! queue's attributes are set to these, whatever they were.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName as A;
use serde::Serialize;

use crate::errors::{describe, QueueError};

/// Receives of a job before SQS moves it to the retry queue (the templates' default).
pub const DEFAULT_MAX_RECEIVES: u32 = 5;
/// Long enough for the worker's lease to extend before it runs out.
const VISIBILITY_S: &str = "720";
const RETENTION_S: &str = "1209600";

/// One queue made.
#[derive(Debug, Clone, Serialize)]
pub struct Made {
    pub url: String,
    pub arn: String,
}

/// The worker's queues, by role.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSet {
    pub events: Made,
    pub events_dlq: Made,
    pub work: Made,
    pub retry: Made,
    pub failed: Made,
}

fn failed(operation: &'static str, queue: &str, e: impl std::fmt::Display) -> QueueError {
    QueueError::Request {
        operation,
        queue: queue.to_string(),
        detail: e.to_string(),
    }
}

/// Makes (or brings to these settings) `NAME-events`, `NAME-events-dlq`, `NAME-work`,
/// `NAME-retry` and `NAME-failed`; S3 may send the events of `sources` to the first.
pub async fn create(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    sources: &[String],
    max_receives: u32,
) -> Result<QueueSet, QueueError> {
    let make = |suffix: &'static str| {
        let queue = format!("{name}-{suffix}");
        async move {
            let url = sqs
                .create_queue()
                .queue_name(&queue)
                .send()
                .await
                .map_err(|e| failed("CreateQueue", &queue, describe(&e)))?
                .queue_url
                .unwrap_or_default();
            let arn = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(A::QueueArn)
                .send()
                .await
                .map_err(|e| failed("GetQueueAttributes", &url, describe(&e)))?
                .attributes
                .and_then(|mut a| a.remove(&A::QueueArn))
                .unwrap_or_default();
            Ok::<Made, QueueError>(Made { url, arn })
        }
    };
    let set = QueueSet {
        events_dlq: make("events-dlq").await?,
        failed: make("failed").await?,
        retry: make("retry").await?,
        work: make("work").await?,
        events: make("events").await?,
    };
    let redrive = |to: &Made, count: u32| {
        serde_json::json!({"deadLetterTargetArn": to.arn, "maxReceiveCount": count}).to_string()
    };
    let account = set
        .events
        .arn
        .split(':')
        .nth(4)
        .unwrap_or_default()
        .to_string();
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "S3Notifications",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": set.events.arn,
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account},
                "ArnLike": {"aws:SourceArn": sources.iter().map(|b| format!("arn:aws:s3:::{b}")).collect::<Vec<_>>()},
            },
        }],
    })
    .to_string();
    let common = [
        (A::SqsManagedSseEnabled, "true"),
        (A::MessageRetentionPeriod, RETENTION_S),
    ];
    let settings: Vec<(&Made, Vec<(A, String)>)> = vec![
        (&set.events_dlq, vec![]),
        (&set.failed, vec![]),
        (
            &set.retry,
            vec![
                (A::VisibilityTimeout, VISIBILITY_S.into()),
                (A::RedrivePolicy, redrive(&set.failed, 10)),
            ],
        ),
        (
            &set.work,
            vec![
                (A::VisibilityTimeout, VISIBILITY_S.into()),
                (A::RedrivePolicy, redrive(&set.retry, max_receives)),
            ],
        ),
        (
            &set.events,
            vec![
                (A::VisibilityTimeout, VISIBILITY_S.into()),
                (A::RedrivePolicy, redrive(&set.events_dlq, max_receives)),
                (A::Policy, policy),
            ],
        ),
    ];
    for (queue, own) in settings {
        let mut attributes: HashMap<A, String> = common
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        attributes.extend(own);
        sqs.set_queue_attributes()
            .queue_url(&queue.url)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| failed("SetQueueAttributes", &queue.url, describe(&e)))?;
    }
    Ok(set)
}
