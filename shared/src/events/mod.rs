//! Turns whatever delivered an S3 notification into object events: an S3 event
//! (direct), the same inside an SQS body or an SNS envelope, or an EventBridge event.
//!
//! The S3 record is read with a lenient struct of our own rather than
//! `aws_lambda_events::s3::S3EventRecord`, which requires fields (`userIdentity`,
//! `requestParameters`) that S3-compatible providers and moto leave out; we need only
//! the bucket, the key and what orders events.

pub mod notifications;
pub mod sequencer;

use serde::Deserialize;
use serde_json::Value;

use crate::errors::EventError;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A new object or a new version (any ObjectCreated event).
    Created,
    /// A delete marker, or a plain delete on an unversioned bucket.
    DeleteMarker,
    /// A specific version was permanently removed.
    VersionDeleted,
    TagsChanged,
    AclChanged,
    /// A version's Object Lock retention or legal hold changed. No S3 notification says
    /// so; `verify` finds it (and `--repair` sends it).
    LockChanged,
}

/// One change to one object, whatever envelope it arrived in.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEvent {
    pub change: Change,
    pub bucket: String,
    /// The decoded key, exactly as S3 stores it.
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size: Option<u64>,
    pub sequencer: Option<String>,
    pub event_time: Option<String>,
    /// Who made the change, as the event says: S3's `userIdentity.principalId`
    /// (`AWS:AROA…:session` for a role), EventBridge's `requester` (an account).
    pub requester: Option<String>,
    /// The provider's own name for the event (`ObjectCreated:Put`, `Object Created`...).
    pub event_name: String,
}

/// A notification that carries nothing to replicate, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Ignored {
    pub event_name: String,
    pub reason: &'static str,
}

/// Everything one notification said.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    pub events: Vec<ObjectEvent>,
    pub ignored: Vec<Ignored>,
}

impl Decoded {
    fn append(&mut self, other: Decoded) {
        self.events.extend(other.events);
        self.ignored.extend(other.ignored);
    }
}

/// SNS-in-SQS-in-SNS... nobody nests deeper than this on purpose.
const MAX_DEPTH: usize = 4;

/// Decodes one notification (a Lambda payload, or the body of one queue message).
pub fn decode(value: &Value) -> Result<Decoded, EventError> {
    decode_at(value, "$", 0)
}

/// Decodes the text of a message body.
pub fn decode_text(text: &str) -> Result<Decoded, EventError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| EventError::new("$", format!("body is not JSON: {e}")))?;
    decode(&value)
}

fn decode_at(value: &Value, path: &str, depth: usize) -> Result<Decoded, EventError> {
    if depth > MAX_DEPTH {
        return Err(EventError::new(path, "envelopes nested too deep"));
    }
    let Value::Object(map) = value else {
        return Err(EventError::new(path, "expected a JSON object"));
    };
    // s3:TestEvent, sent once when a notification configuration is saved.
    if map.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Decoded {
            events: Vec::new(),
            ignored: vec![Ignored {
                event_name: "s3:TestEvent".into(),
                reason: "test event sent when notifications are configured",
            }],
        });
    }
    // What Lambda's on-failure destination records for an asynchronous invocation that
    // ran out of retries (direct delivery): the notification is its request payload, so
    // the events dead-letter queue redrives to the events queue in either delivery.
    if let (Some(payload), true) = (
        map.get("requestPayload"),
        map.contains_key("requestContext"),
    ) {
        return decode_at(payload, &format!("{path}.requestPayload"), depth + 1);
    }
    // SNS notification as SQS or HTTP delivers it (raw delivery off).
    if let Some(kind) = map.get("Type").and_then(Value::as_str) {
        if map.contains_key("TopicArn") {
            if kind != "Notification" {
                return Ok(Decoded {
                    events: Vec::new(),
                    ignored: vec![Ignored {
                        event_name: format!("SNS {kind}"),
                        reason: "SNS control message, not a notification",
                    }],
                });
            }
            let msg = map.get("Message").and_then(Value::as_str).ok_or_else(|| {
                EventError::new(
                    format!("{path}.Message"),
                    "SNS notification without a Message string",
                )
            })?;
            return decode_embedded(msg, &format!("{path}.Message"), depth);
        }
    }
    if map.get("source").and_then(Value::as_str) == Some("aws.s3")
        && map.contains_key("detail-type")
    {
        return eventbridge(map, path);
    }
    if let Some(records) = map.get("Records") {
        let Value::Array(records) = records else {
            return Err(EventError::new(
                format!("{path}.Records"),
                "expected an array",
            ));
        };
        let mut out = Decoded::default();
        for (i, record) in records.iter().enumerate() {
            let rpath = format!("{path}.Records[{i}]");
            out.append(record_at(record, &rpath, depth)?);
        }
        return Ok(out);
    }
    Err(EventError::new(
        path,
        "not an S3 event, SNS or SQS envelope, or EventBridge S3 event",
    ))
}

fn decode_embedded(text: &str, path: &str, depth: usize) -> Result<Decoded, EventError> {
    let inner: Value = serde_json::from_str(text)
        .map_err(|e| EventError::new(path, format!("embedded message is not JSON: {e}")))?;
    decode_at(&inner, path, depth + 1)
}

fn record_at(record: &Value, path: &str, depth: usize) -> Result<Decoded, EventError> {
    let source = record
        .get("eventSource")
        .or_else(|| record.get("EventSource"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match source {
        "aws:sqs" => {
            let body = record.get("body").and_then(Value::as_str).ok_or_else(|| {
                EventError::new(format!("{path}.body"), "SQS record without a body string")
            })?;
            decode_embedded(body, &format!("{path}.body"), depth)
        }
        "aws:sns" => {
            let msg = record
                .pointer("/Sns/Message")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    EventError::new(
                        format!("{path}.Sns.Message"),
                        "SNS record without a Message string",
                    )
                })?;
            decode_embedded(msg, &format!("{path}.Sns.Message"), depth)
        }
        // "aws:s3" from AWS; S3-compatible stores write their own ("minio:s3", "ceph:s3").
        _ if record.get("s3").is_some() => s3_record(record, path),
        other => Err(EventError::new(
            path,
            format!("record from unknown source {other:?} with no s3 entity"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    event_name: Option<String>,
    event_time: Option<String>,
    user_identity: Option<UserIdentity>,
    s3: S3Entity,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity {
    principal_id: Option<String>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Object {
    key: String,
    #[serde(default, deserialize_with = "lenient_size")]
    size: Option<u64>,
    e_tag: Option<String>,
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// Sizes arrive as numbers from AWS and, from some providers, as strings.
fn lenient_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

fn s3_record(record: &Value, path: &str) -> Result<Decoded, EventError> {
    let r: S3Record = serde_json::from_value(record.clone())
        .map_err(|e| EventError::new(path, format!("S3 record: {e}")))?;
    let name = r
        .event_name
        .ok_or_else(|| EventError::new(format!("{path}.eventName"), "is missing"))?;
    // eventName is "ObjectCreated:Put" from AWS, "s3:ObjectCreated:Put" from some others.
    let short = name.strip_prefix("s3:").unwrap_or(&name);
    let version_id = r.s3.object.version_id.filter(|v| !v.is_empty());
    let change = match short.split(':').next().unwrap_or("") {
        "ObjectCreated" => Some(Change::Created),
        "ObjectRemoved" => Some(removal(short, version_id.is_some())),
        "LifecycleExpiration" => return Ok(ignored(name, LIFECYCLE)),
        "ObjectTagging" => Some(Change::TagsChanged),
        "ObjectAcl" => Some(Change::AclChanged),
        _ => None,
    };
    let Some(change) = change else {
        return Ok(ignored(
            name,
            "event type does not change what a replica holds",
        ));
    };
    let key = decode_key(&r.s3.object.key)
        .map_err(|reason| EventError::new(format!("{path}.s3.object.key"), reason))?;
    Ok(Decoded {
        events: vec![ObjectEvent {
            change,
            bucket: r.s3.bucket.name,
            key,
            version_id,
            etag: r.s3.object.e_tag.filter(|e| !e.is_empty()),
            size: r.s3.object.size,
            sequencer: r.s3.object.sequencer.filter(|s| !s.is_empty()),
            event_time: r.event_time,
            requester: r
                .user_identity
                .and_then(|u| u.principal_id)
                .filter(|p| !p.is_empty()),
            event_name: name,
        }],
        ignored: Vec::new(),
    })
}

/// `ObjectRemoved:Delete` on a versioned bucket names the version it removed for good;
/// without a version it is a plain delete on an unversioned bucket, which is what a
/// delete marker is on a versioned one.
fn removal(event: &str, has_version: bool) -> Change {
    if event.ends_with("DeleteMarkerCreated") || !has_version {
        Change::DeleteMarker
    } else {
        Change::VersionDeleted
    }
}

/// S3 never replicates what a lifecycle rule does (expirations, transitions): a source
/// that expires objects after 30 days must not empty its long-term replica.
pub const LIFECYCLE: &str =
    "lifecycle expiration: lifecycle actions are not replicated (give the destination its own lifecycle rule)";

fn ignored(event_name: String, reason: &'static str) -> Decoded {
    Decoded {
        events: Vec::new(),
        ignored: vec![Ignored { event_name, reason }],
    }
}

fn eventbridge(map: &serde_json::Map<String, Value>, path: &str) -> Result<Decoded, EventError> {
    let detail_type = map
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let detail = map
        .get("detail")
        .ok_or_else(|| EventError::new(format!("{path}.detail"), "is missing"))?;
    let deletion = detail.get("deletion-type").and_then(Value::as_str);
    if detail_type == "Object Deleted"
        && detail.get("reason").and_then(Value::as_str) == Some("Lifecycle Expiration")
    {
        return Ok(ignored(detail_type, LIFECYCLE));
    }
    let change = match detail_type.as_str() {
        "Object Created" => Change::Created,
        "Object Deleted" => match deletion {
            Some("Permanently Deleted") => Change::VersionDeleted,
            _ => Change::DeleteMarker,
        },
        "Object Tags Added" | "Object Tags Deleted" => Change::TagsChanged,
        "Object ACL Updated" => Change::AclChanged,
        _ => {
            return Ok(ignored(
                detail_type,
                "event type does not change what a replica holds",
            ))
        }
    };
    let field = |p: &str| {
        detail
            .pointer(p)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let bucket = field("/bucket/name")
        .ok_or_else(|| EventError::new(format!("{path}.detail.bucket.name"), "is missing"))?;
    let raw_key = field("/object/key")
        .ok_or_else(|| EventError::new(format!("{path}.detail.object.key"), "is missing"))?;
    // EventBridge keys are URL-encoded as in S3 notifications.
    let key = decode_key(&raw_key)
        .map_err(|r| EventError::new(format!("{path}.detail.object.key"), r))?;
    let version_id = field("/object/version-id").filter(|v| !v.is_empty());
    // On an unversioned bucket "Permanently Deleted" is the only kind there is, and it
    // is the plain delete that DeleteMarkerReplication governs.
    let change = if change == Change::VersionDeleted && version_id.is_none() {
        Change::DeleteMarker
    } else {
        change
    };
    Ok(Decoded {
        events: vec![ObjectEvent {
            change,
            bucket,
            key,
            version_id,
            etag: field("/object/etag"),
            size: detail.pointer("/object/size").and_then(Value::as_u64),
            sequencer: field("/object/sequencer"),
            event_time: map.get("time").and_then(Value::as_str).map(str::to_string),
            requester: field("/requester"),
            event_name: detail_type,
        }],
        ignored: Vec::new(),
    })
}

/// S3 writes keys form-URL-encoded: `+` is a space, `%2B` a plus. Keys must be UTF-8.
pub fn decode_key(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("empty object key".into());
    }
    let bytes: Vec<u8> = form_urlencoded::parse(format!("k={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    // form_urlencoded replaces invalid UTF-8 with U+FFFD; catch that instead of writing
    // a replica under a different key.
    let decoded = String::from_utf8(bytes).map_err(|_| "key is not UTF-8".to_string())?;
    if decoded.contains('\u{FFFD}')
        && !raw.contains('\u{FFFD}')
        && !raw.to_ascii_uppercase().contains("%EF%BF%BD")
    {
        return Err(format!("key {raw:?} does not decode to UTF-8"));
    }
    if decoded.len() > 1024 {
        return Err(format!(
            "key is {} bytes; S3 keys are at most 1,024",
            decoded.len()
        ));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            serde_json::from_str::<Value>(include_str!(concat!(
                "../../../tests/fixtures/events/",
                $name
            )))
            .unwrap()
        };
    }

    const KEY: &str = "photos/2024/beach day+1.jpg";

    fn only_event(decoded: &Decoded) -> &ObjectEvent {
        assert_eq!(decoded.events.len(), 1, "{decoded:?}");
        &decoded.events[0]
    }

    /// Direct delivery's failures reach the events DLQ as Lambda's on-failure records;
    /// redriven to the events queue, they are the notification they carry.
    #[test]
    fn a_lambda_on_failure_record_is_its_notification() {
        let d = decode(&fixture!("lambda-destination-failure.json")).unwrap();
        assert_eq!(
            only_event(&d),
            only_event(&decode(&fixture!("s3-put.json")).unwrap())
        );
        let err = decode(&serde_json::json!({"requestContext": {}, "requestPayload": {"x": 1}}))
            .unwrap_err();
        assert!(err.to_string().contains("$.requestPayload"), "{err}");
    }

    #[test]
    fn direct_s3_event() {
        let d = decode(&fixture!("s3-put.json")).unwrap();
        let e = only_event(&d);
        assert_eq!(e.change, Change::Created);
        assert_eq!(e.bucket, "amzn-s3-demo-bucket");
        assert_eq!(e.key, KEY);
        assert_eq!(e.size, Some(1305107));
        assert_eq!(e.sequencer.as_deref(), Some("0C0F6F405D6ED209E1"));
        assert_eq!(
            e.version_id.as_deref(),
            Some("096fKKXTRTtl3on89fVO.nfljtsv6qko")
        );
        assert_eq!(e.event_name, "ObjectCreated:Put");
    }

    #[test]
    fn delete_marker_and_version_delete() {
        let d = decode(&fixture!("s3-delete-marker.json")).unwrap();
        assert_eq!(d.events.len(), 2);
        assert_eq!(d.events[0].change, Change::DeleteMarker);
        assert_eq!(d.events[1].change, Change::VersionDeleted);
        // Unversioned buckets send ObjectRemoved:Delete without a version.
        let mut v = fixture!("s3-delete-marker.json");
        v["Records"][1]["s3"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("versionId");
        assert_eq!(decode(&v).unwrap().events[1].change, Change::DeleteMarker);
    }

    #[test]
    fn lifecycle_expirations_are_skipped_with_a_reason() {
        for d in [
            decode(&fixture!("s3-lifecycle-expiration.json")).unwrap(),
            decode(&fixture!("eventbridge-lifecycle-expiration.json")).unwrap(),
        ] {
            assert!(d.events.is_empty(), "{d:?}");
            assert!(!d.ignored.is_empty());
            assert!(d.ignored.iter().all(|i| i.reason == LIFECYCLE), "{d:?}");
        }
        assert_eq!(
            decode(&fixture!("s3-lifecycle-expiration.json"))
                .unwrap()
                .ignored
                .len(),
            2
        );
    }

    #[test]
    fn test_event_is_ignored_with_a_reason() {
        let d = decode(&fixture!("s3-test-event.json")).unwrap();
        assert!(d.events.is_empty());
        assert_eq!(d.ignored[0].event_name, "s3:TestEvent");
    }

    #[test]
    fn sqs_and_sns_envelopes() {
        let d = decode(&fixture!("sqs-s3.json")).unwrap();
        assert_eq!(only_event(&d).key, KEY);
        assert_eq!(d.ignored.len(), 1, "the test event in the second message");
        for d in [
            decode(&fixture!("sns-s3.json")).unwrap(),
            decode(&fixture!("sqs-sns-s3.json")).unwrap(),
        ] {
            let e = only_event(&d);
            assert_eq!(
                (e.bucket.as_str(), e.key.as_str(), e.change),
                ("amzn-s3-demo-bucket", KEY, Change::Created)
            );
        }
    }

    #[test]
    fn eventbridge_events() {
        let e = decode(&fixture!("eventbridge-created.json")).unwrap();
        let e = only_event(&e);
        assert_eq!(
            (e.change, e.key.as_str(), e.size),
            (Change::Created, KEY, Some(1305107))
        );
        assert_eq!(e.sequencer.as_deref(), Some("617f08299329d189"));
        let d = decode(&fixture!("eventbridge-deleted.json")).unwrap();
        assert_eq!(only_event(&d).change, Change::DeleteMarker);
        let mut permanent = fixture!("eventbridge-deleted.json");
        permanent["detail"]["deletion-type"] = "Permanently Deleted".into();
        assert_eq!(
            only_event(&decode(&permanent).unwrap()).change,
            Change::VersionDeleted
        );
        let t = decode(&fixture!("eventbridge-tags.json")).unwrap();
        assert_eq!(only_event(&t).change, Change::TagsChanged);
        let other = decode(&fixture!("eventbridge-other.json")).unwrap();
        assert!(other.events.is_empty());
        assert_eq!(other.ignored[0].event_name, "Object Restore Completed");
    }

    #[test]
    fn malformed_input_is_a_clear_error() {
        let batch = fixture!("sqs-malformed.json");
        let records = batch["Records"].as_array().unwrap();
        let first = decode(&serde_json::json!({"Records": [records[0].clone()]})).unwrap_err();
        assert!(
            first.to_string().contains("Records[0].body") && first.reason.contains("not JSON"),
            "{first}"
        );
        let second = decode(&serde_json::json!({"Records": [records[1].clone()]})).unwrap_err();
        assert!(
            second.to_string().contains("missing field `key`"),
            "{second}"
        );
        for (value, needle) in [
            (serde_json::json!([]), "expected a JSON object"),
            (serde_json::json!({"hello": 1}), "not an S3 event"),
            (serde_json::json!({"Records": 5}), "expected an array"),
            (
                serde_json::json!({"Records": [{"eventSource": "aws:kinesis"}]}),
                "unknown source",
            ),
            (
                serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": 3}]}),
                "without a body",
            ),
            (
                serde_json::json!({"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}),
                "eventName",
            ),
            (
                serde_json::json!({"Type": "Notification", "TopicArn": "arn", "Message": "nope"}),
                "not JSON",
            ),
            (
                serde_json::json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}}}),
                "detail.object.key",
            ),
        ] {
            let err = decode(&value).unwrap_err();
            assert!(err.to_string().contains(needle), "{value}: {err}");
        }
        assert!(decode_text("{\"Records\": [").is_err());
        // Deep nesting is refused, not recursed without end.
        let mut body = fixture!("s3-put.json").to_string();
        for _ in 0..8 {
            body = serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": body}]})
                .to_string();
        }
        assert!(decode_text(&body)
            .unwrap_err()
            .reason
            .contains("nested too deep"));
    }

    #[test]
    fn keys_decode_as_forms() {
        assert_eq!(decode_key("hello+world.jpg").unwrap(), "hello world.jpg");
        assert_eq!(decode_key("c%2B%2B%2Fa%2Bb").unwrap(), "c++/a+b");
        assert_eq!(decode_key("dir%2Fsub%2Fk").unwrap(), "dir/sub/k");
        assert_eq!(decode_key("%E6%97%A5%E6%9C%AC").unwrap(), "日本");
        assert_eq!(decode_key("100%25").unwrap(), "100%");
        assert!(decode_key("%FF%FE").is_err());
        assert!(decode_key("").is_err());
        assert!(decode_key(&"a".repeat(1025)).is_err());
        assert_eq!(decode_key(&"a".repeat(1024)).unwrap().len(), 1024);
    }
}
