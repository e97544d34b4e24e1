//! Adding our events queue (or the ingest function, for direct delivery) to a bucket's
//! notification configuration without losing what is there.
//! PutBucketNotificationConfiguration replaces the whole document, so we read it, keep
//! every topic, queue, Lambda and EventBridge setting, and add or update only the entry
//! with our Id (moving it when the delivery changes).

use aws_sdk_s3::types::{
    Event, EventBridgeConfiguration, FilterRule, LambdaFunctionConfiguration,
    NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
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

/// Where a bucket's events go: the events queue, or the ingest function itself
/// (direct delivery: S3 invokes it asynchronously).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Queue(String),
    Function(String),
}

impl Target {
    pub fn arn(&self) -> &str {
        match self {
            Target::Queue(arn) | Target::Function(arn) => arn,
        }
    }
}

/// Our entry, for one target.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Queue(QueueConfiguration),
    Function(LambdaFunctionConfiguration),
}

/// Our entry for `target`.
pub fn our_entry(target: &Target, events: &[String]) -> Entry {
    let events: Vec<Event> = events.iter().map(|e| Event::from(e.as_str())).collect();
    match target {
        Target::Queue(arn) => Entry::Queue(
            QueueConfiguration::builder()
                .id(NOTIFICATION_ID)
                .queue_arn(arn)
                .set_events(Some(events))
                .build()
                .expect("queue arn and events are set"),
        ),
        Target::Function(arn) => Entry::Function(
            LambdaFunctionConfiguration::builder()
                .id(NOTIFICATION_ID)
                .lambda_function_arn(arn)
                .set_events(Some(events))
                .build()
                .expect("function arn and events are set"),
        ),
    }
}

/// Event names sorted, so the order they were given in does not count as a change.
fn sorted(events: &[Event]) -> Vec<String> {
    let mut e: Vec<String> = events.iter().map(|e| e.as_str().to_string()).collect();
    e.sort();
    e
}

/// Replaces our entry in `list` (or adds it); whether anything changed.
fn put_ours<T: Clone>(
    list: &mut Vec<T>,
    ours: Option<T>,
    id: impl Fn(&T) -> Option<&str>,
    same: impl Fn(&T, &T) -> bool,
) -> bool {
    let existing = list.iter().position(|e| id(e) == Some(NOTIFICATION_ID));
    match (existing, ours) {
        (Some(i), Some(ours)) if same(&list[i], &ours) => false,
        (Some(i), Some(ours)) => {
            list[i] = ours;
            true
        }
        (None, Some(ours)) => {
            list.push(ours);
            true
        }
        // Our entry moves to the other kind of target.
        (Some(i), None) => {
            list.remove(i);
            true
        }
        (None, None) => false,
    }
}

/// The configuration with our entry added, or updated in place (moved, if the target
/// changed kind); everything else kept.
pub fn merge(
    current: &NotificationConfiguration,
    ours: Entry,
) -> (NotificationConfiguration, bool) {
    let (queue, function) = match ours {
        Entry::Queue(q) => (Some(q), None),
        Entry::Function(f) => (None, Some(f)),
    };
    let mut queues = current.queue_configurations().to_vec();
    let mut functions = current.lambda_function_configurations().to_vec();
    let queues_changed = put_ours(
        &mut queues,
        queue,
        |q| q.id(),
        |a, b| {
            a.queue_arn() == b.queue_arn()
                && sorted(a.events()) == sorted(b.events())
                && a.filter() == b.filter()
        },
    );
    let functions_changed = put_ours(
        &mut functions,
        function,
        |f| f.id(),
        |a, b| {
            a.lambda_function_arn() == b.lambda_function_arn()
                && sorted(a.events()) == sorted(b.events())
                && a.filter() == b.filter()
        },
    );
    let merged = NotificationConfiguration::builder()
        .set_topic_configurations(Some(current.topic_configurations().to_vec()))
        .set_queue_configurations(Some(queues))
        .set_lambda_function_configurations(Some(functions))
        .set_event_bridge_configuration(current.event_bridge_configuration().cloned())
        .build();
    (merged, queues_changed || functions_changed)
}

/// Reads the bucket's configuration and works out the merge.
pub async fn plan(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    ours: Entry,
) -> Result<Plan, ReplicationError> {
    let current = current(s3, bucket).await?;
    let (merged, changed) = merge(&current, ours);
    Ok(Plan {
        current,
        merged,
        changed,
    })
}

/// The bucket's notification configuration.
pub async fn current(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<NotificationConfiguration, ReplicationError> {
    match s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(NotificationConfiguration::builder()
            .set_topic_configurations(out.topic_configurations)
            .set_queue_configurations(out.queue_configurations)
            .set_lambda_function_configurations(out.lambda_function_configurations)
            .set_event_bridge_configuration(out.event_bridge_configuration)
            .build()),
        // A bucket with no notifications yet: some S3-compatible servers (moto among
        // them) answer with an empty document under another root element, which the
        // SDK will not read. Empty is empty, whatever its name.
        Err(e)
            if e.raw_response().is_some_and(|r| {
                r.status().as_u16() == 200 && r.body().bytes().is_some_and(is_empty_document)
            }) =>
        {
            Ok(NotificationConfiguration::builder().build())
        }
        Err(e) => Err(ReplicationError::new(
            FailureReason::InvalidRequest,
            describe(&e),
        )),
    }
}

/// Where our entry sends the bucket's events, and which events: `None` when the
/// bucket has no entry of ours.
pub fn our_target(c: &NotificationConfiguration) -> Option<(String, Vec<String>)> {
    let events =
        |e: &[aws_sdk_s3::types::Event]| e.iter().map(|e| e.as_str().to_string()).collect();
    c.queue_configurations()
        .iter()
        .find(|q| q.id() == Some(NOTIFICATION_ID))
        .map(|q| (q.queue_arn().to_string(), events(q.events())))
        .or_else(|| {
            c.lambda_function_configurations()
                .iter()
                .find(|f| f.id() == Some(NOTIFICATION_ID))
                .map(|f| (f.lambda_function_arn().to_string(), events(f.events())))
        })
}

/// Whether an XML document is one element with nothing in it (`<X/>` or `<X></X>`).
fn is_empty_document(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let mut text = text.trim();
    if let Some(rest) = text.strip_prefix("<?xml") {
        text = rest.split_once("?>").map(|(_, r)| r.trim()).unwrap_or("");
    }
    let tags = text.matches('<').count();
    text.starts_with('<')
        && ((tags == 1 && text.ends_with("/>"))
            || (tags == 2 && text.ends_with('>') && text.contains("></")))
}

/// How many times a write S3 could not validate is tried, a second more apart each
/// time: a queue policy or a function permission made moments ago takes a while to
/// reach S3.
pub const VALIDATION_ATTEMPTS: u32 = 6;

/// Writes the merged configuration (only when it changed). S3 checks every
/// destination of the whole configuration, the bucket's others too:
/// `skip_validation` (`--skip-destination-validation`) writes it without that check
/// (for a configuration whose other destinations have gone stale).
pub async fn apply(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    plan: &Plan,
    skip_validation: bool,
) -> Result<(), ReplicationError> {
    if !plan.changed {
        return Ok(());
    }
    let mut attempt = 1;
    loop {
        let written = s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(plan.merged.clone())
            .set_skip_destination_validation(skip_validation.then_some(true))
            .send()
            .await;
        let e = match written {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let mut err = ReplicationError::new(FailureReason::InvalidRequest, describe(&e));
        let unvalidated = err.detail.contains("Unable to validate");
        if unvalidated && attempt < VALIDATION_ATTEMPTS {
            tracing::info!(bucket = %bucket, attempt, error = %err.detail,
                "S3 could not validate a destination yet (a new policy takes a moment to reach it); trying again");
            tokio::time::sleep(std::time::Duration::from_secs(u64::from(attempt))).await;
            attempt += 1;
            continue;
        }
        if err.detail.contains("overlap") {
            err.detail.push_str(
                "; S3 allows one destination per event type and key filter: route the other consumer and ingest through SNS or EventBridge (ingest accepts both)",
            );
        }
        if unvalidated {
            err.detail.push_str(
                "; S3 checks every destination of the bucket's notifications, not only ours: if another one is stale (a deleted queue or topic), fix it or run again with --skip-destination-validation",
            );
        }
        return Err(err);
    }
}

/// The region a queue's or function's ARN names.
pub fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// Refuses a target in another region than the bucket: S3 sends notifications only to
/// queues and functions of the bucket's own region.
pub async fn same_region(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    target: &Target,
) -> Result<(), ReplicationError> {
    let Some(target_region) = arn_region(target.arn()) else {
        return Ok(());
    };
    let region = crate::config::clients::bucket_region(s3, bucket)
        .await
        .map_err(|detail| ReplicationError::new(FailureReason::InvalidRequest, detail))?;
    match region {
        Some(region) if region != target_region => Err(ReplicationError::new(
            FailureReason::InvalidRequest,
            format!(
                "bucket {bucket} is in {region}, {} in {target_region}: S3 sends notifications only to a queue or function in the bucket's own region. Deploy the stack in {region} (and its account), one stack per source region",
                target.arn()
            ),
        )),
        _ => Ok(()),
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
        let queue = |arn: &str| our_entry(&Target::Queue(arn.into()), &events);
        let ours = queue("arn:aws:sqs:us-east-1:1:events");
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
        let Entry::Queue(entry) = &ours else {
            unreachable!()
        };
        assert_eq!(merged.queue_configurations(), std::slice::from_ref(entry));
        // A second run changes nothing and adds no second entry.
        let (again, changed) = merge(&merged, ours);
        assert!(!changed);
        assert_eq!(again, merged);
        // A new queue ARN updates our entry in place.
        let (moved, changed) = merge(&merged, queue("arn:aws:sqs:us-east-1:1:elsewhere"));
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

    #[test]
    fn an_empty_document_is_empty_whatever_its_root() {
        for empty in [
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<GetBucketNotificationResponse xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>",
            "<NotificationConfiguration></NotificationConfiguration>",
        ] {
            assert!(is_empty_document(empty.as_bytes()), "{empty}");
        }
        for full in [
            "<NotificationConfiguration><QueueConfiguration/></NotificationConfiguration>",
            "",
            "not xml",
        ] {
            assert!(!is_empty_document(full.as_bytes()), "{full}");
        }
    }

    /// Switching to direct delivery moves our entry from the queues to the functions,
    /// and back; the other function's entry stays.
    #[test]
    fn direct_delivery_moves_our_entry_to_the_function() {
        let events: Vec<String> = DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect();
        let ingest = "arn:aws:lambda:us-east-1:1:function:s3r-ingest";
        let (queued, _) = merge(
            &existing(),
            our_entry(
                &Target::Queue("arn:aws:sqs:us-east-1:1:events".into()),
                &events,
            ),
        );
        let direct = our_entry(&Target::Function(ingest.into()), &events);
        let (moved, changed) = merge(&queued, direct.clone());
        assert!(changed);
        assert!(moved.queue_configurations().is_empty());
        let functions = moved.lambda_function_configurations();
        assert_eq!(functions.len(), 2);
        assert_eq!(functions[0].id(), Some("thumbs"));
        assert_eq!(functions[1].lambda_function_arn(), ingest);
        assert_eq!(functions[1].id(), Some(NOTIFICATION_ID));
        assert!(!merge(&moved, direct).1, "a second run changes nothing");
        let (back, _) = merge(
            &moved,
            our_entry(
                &Target::Queue("arn:aws:sqs:us-east-1:1:events".into()),
                &events,
            ),
        );
        assert_eq!(back, queued);
    }
}
