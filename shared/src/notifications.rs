//! Adding our queue to a bucket's notification configuration without losing what is
//! there. PutBucketNotificationConfiguration replaces the whole document, so we read it,
//! keep every topic, queue, Lambda and EventBridge setting, and add or update only the
//! entry with our Id.

use aws_sdk_s3::types::{
    Event, EventBridgeConfiguration, FilterRule, NotificationConfiguration,
    NotificationConfigurationFilter, QueueConfiguration,
};
use serde_json::{json, Value};

use crate::errors::{describe, FailureReason, ReplicationError};

/// The Id our entry carries, so a second run finds and updates it instead of adding another.
pub const NOTIFICATION_ID: &str = "s3-replicator";

pub const DEFAULT_EVENTS: &[&str] = &[
    "s3:ObjectCreated:*",
    "s3:ObjectRemoved:*",
    "s3:ObjectTagging:*",
    "s3:ObjectAcl:Put",
];

/// What a setup would do.
pub struct Plan {
    pub current: NotificationConfiguration,
    pub merged: NotificationConfiguration,
    pub changed: bool,
}

/// Our entry for `queue_arn`.
pub fn our_entry(queue_arn: &str, events: &[String]) -> QueueConfiguration {
    QueueConfiguration::builder()
        .id(NOTIFICATION_ID)
        .queue_arn(queue_arn)
        .set_events(Some(
            events.iter().map(|e| Event::from(e.as_str())).collect(),
        ))
        .build()
        .expect("queue arn and events are set")
}

/// The configuration with our entry added, or updated in place; everything else kept.
pub fn merge(
    current: &NotificationConfiguration,
    ours: QueueConfiguration,
) -> (NotificationConfiguration, bool) {
    let mut queues: Vec<QueueConfiguration> = current.queue_configurations().to_vec();
    let existing = queues.iter().position(|q| q.id() == Some(NOTIFICATION_ID));
    let changed = match existing {
        Some(i) if same_entry(&queues[i], &ours) => false,
        Some(i) => {
            queues[i] = ours;
            true
        }
        None => {
            queues.push(ours);
            true
        }
    };
    let merged = NotificationConfiguration::builder()
        .set_topic_configurations(Some(current.topic_configurations().to_vec()))
        .set_queue_configurations(Some(queues))
        .set_lambda_function_configurations(Some(current.lambda_function_configurations().to_vec()))
        .set_event_bridge_configuration(current.event_bridge_configuration().cloned())
        .build();
    (merged, changed)
}

fn same_entry(a: &QueueConfiguration, b: &QueueConfiguration) -> bool {
    let events = |q: &QueueConfiguration| {
        let mut e: Vec<String> = q.events().iter().map(|e| e.as_str().to_string()).collect();
        e.sort();
        e
    };
    a.queue_arn() == b.queue_arn() && events(a) == events(b) && a.filter() == b.filter()
}

/// Reads the bucket's configuration and works out the merge.
pub async fn plan(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    ours: QueueConfiguration,
) -> Result<Plan, ReplicationError> {
    let out = s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| ReplicationError::new(FailureReason::InvalidRequest, describe(&e)))?;
    let current = NotificationConfiguration::builder()
        .set_topic_configurations(out.topic_configurations)
        .set_queue_configurations(out.queue_configurations)
        .set_lambda_function_configurations(out.lambda_function_configurations)
        .set_event_bridge_configuration(out.event_bridge_configuration)
        .build();
    let (merged, changed) = merge(&current, ours);
    Ok(Plan {
        current,
        merged,
        changed,
    })
}

/// Writes the merged configuration (only when it changed).
pub async fn apply(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    plan: &Plan,
) -> Result<(), ReplicationError> {
    if !plan.changed {
        return Ok(());
    }
    let written = s3
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(plan.merged.clone())
        .send()
        .await;
    match written {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut err = ReplicationError::new(FailureReason::InvalidRequest, describe(&e));
            if err.detail.contains("overlap") {
                err.detail.push_str(
                    "; S3 allows one destination per event type and key filter: route the other consumer and ingest through SNS or EventBridge (ingest accepts both)",
                );
            }
            Err(err)
        }
    }
}

/// The configuration as `aws s3api get-bucket-notification-configuration` prints it.
pub fn to_json(c: &NotificationConfiguration) -> Value {
    let filter = |f: Option<&NotificationConfigurationFilter>| -> Value {
        match f.and_then(|f| f.key()) {
            Some(key) => {
                json!({"Key": {"FilterRules": key.filter_rules().iter().map(rule).collect::<Vec<_>>()}})
            }
            None => Value::Null,
        }
    };
    fn rule(r: &FilterRule) -> Value {
        json!({"Name": r.name().map(|n| n.as_str()), "Value": r.value()})
    }
    let events = |e: &[Event]| e.iter().map(|e| e.as_str().to_string()).collect::<Vec<_>>();
    let mut out = serde_json::Map::new();
    let strip_nulls = |mut v: Value| {
        if let Value::Object(m) = &mut v {
            m.retain(|_, v| !v.is_null());
        }
        v
    };
    out.insert(
        "TopicConfigurations".into(),
        c.topic_configurations()
            .iter()
            .map(|t| strip_nulls(json!({"Id": t.id(), "TopicArn": t.topic_arn(), "Events": events(t.events()), "Filter": filter(t.filter())})))
            .collect(),
    );
    out.insert(
        "QueueConfigurations".into(),
        c.queue_configurations()
            .iter()
            .map(|q| strip_nulls(json!({"Id": q.id(), "QueueArn": q.queue_arn(), "Events": events(q.events()), "Filter": filter(q.filter())})))
            .collect(),
    );
    out.insert(
        "LambdaFunctionConfigurations".into(),
        c.lambda_function_configurations()
            .iter()
            .map(|l| {
                strip_nulls(json!({"Id": l.id(), "LambdaFunctionArn": l.lambda_function_arn(), "Events": events(l.events()), "Filter": filter(l.filter())}))
            })
            .collect(),
    );
    if c.event_bridge_configuration().is_some() {
        out.insert("EventBridgeConfiguration".into(), json!({}));
    }
    Value::Object(out)
}

/// EventBridge delivery, as a bucket might already have it.
pub fn eventbridge() -> EventBridgeConfiguration {
    EventBridgeConfiguration::builder().build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::types::{
        FilterRuleName, LambdaFunctionConfiguration, S3KeyFilter, TopicConfiguration,
    };

    fn existing() -> NotificationConfiguration {
        let jpg = NotificationConfigurationFilter::builder()
            .key(
                S3KeyFilter::builder()
                    .filter_rules(
                        FilterRule::builder()
                            .name(FilterRuleName::Suffix)
                            .value(".jpg")
                            .build(),
                    )
                    .build(),
            )
            .build();
        NotificationConfiguration::builder()
            .topic_configurations(
                TopicConfiguration::builder()
                    .id("lost")
                    .topic_arn("arn:aws:sns:us-east-1:1:t")
                    .events(Event::from("s3:ReducedRedundancyLostObject"))
                    .build()
                    .unwrap(),
            )
            .lambda_function_configurations(
                LambdaFunctionConfiguration::builder()
                    .id("thumbs")
                    .lambda_function_arn("arn:aws:lambda:us-east-1:1:function:thumbs")
                    .events(Event::from("s3:LifecycleTransition"))
                    .filter(jpg)
                    .build()
                    .unwrap(),
            )
            .event_bridge_configuration(eventbridge())
            .build()
    }

    #[test]
    fn merging_keeps_everything_else_including_eventbridge_and_is_idempotent() {
        let events: Vec<String> = DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect();
        let ours = our_entry("arn:aws:sqs:us-east-1:1:events", &events);
        let (merged, changed) = merge(&existing(), ours.clone());
        assert!(changed);
        assert!(
            merged.event_bridge_configuration().is_some(),
            "EventBridge delivery must survive"
        );
        assert_eq!(
            merged.topic_configurations(),
            existing().topic_configurations()
        );
        assert_eq!(
            merged.lambda_function_configurations(),
            existing().lambda_function_configurations()
        );
        assert_eq!(merged.queue_configurations(), std::slice::from_ref(&ours));
        // A second run changes nothing and adds no second entry.
        let (again, changed) = merge(&merged, ours);
        assert!(!changed);
        assert_eq!(again, merged);
        // A new queue ARN updates our entry in place.
        let (moved, changed) = merge(
            &merged,
            our_entry("arn:aws:sqs:us-east-1:1:elsewhere", &events),
        );
        assert!(changed);
        assert_eq!(moved.queue_configurations().len(), 1);
        assert_eq!(
            moved.queue_configurations()[0].queue_arn(),
            "arn:aws:sqs:us-east-1:1:elsewhere"
        );
        let shown = to_json(&moved);
        assert_eq!(shown["EventBridgeConfiguration"], json!({}));
        assert_eq!(
            shown["LambdaFunctionConfigurations"][0]["Filter"]["Key"]["FilterRules"][0]["Value"],
            ".jpg"
        );
    }
}
