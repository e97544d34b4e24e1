//! Histories of changes made to a real source bucket, and the S3 event notifications
//! AWS would send for them: the record of `tests/fixtures/events/s3-put.json` with the
//! event name, key (form-URL-encoded), size, ETag, version id and sequencer of each
//! change. moto's own events carry no sequencer or version id, so tests of ordering
//! build these instead.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{MetadataDirective, StorageClass, Tag, Tagging};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

use crate::Stack;

/// One change, as it was made.
#[derive(Debug, Clone)]
pub enum Change {
    Put { key: String, size: usize },
    Metadata { key: String },
    Tags { key: String, count: usize },
    Delete { key: String },
    DeleteVersion { key: String, version: String },
}

/// What S3 reported for one change: the notification record it would send.
#[derive(Debug, Clone)]
pub struct Happened {
    pub change: Change,
    pub record: Value,
}

/// Hands out sequencers that only grow, in the varied widths AWS uses: trailing zeros
/// come and go (equal once right-padded), so a comparison that does not pad, or that
/// reads them as numbers, orders them wrongly.
#[derive(Debug, Default)]
pub struct Sequencers {
    last: u64,
}

impl Sequencers {
    pub fn next(&mut self, rng: &mut StdRng) -> String {
        // Multiples of 16 leave a trailing zero to trim.
        self.last += 16 * rng.random_range(1..=4096);
        let hex = format!("{:016X}", self.last);
        match rng.random_range(0..3) {
            0 => hex.trim_end_matches('0').to_string(),
            1 => format!("{hex}00"),
            _ => hex,
        }
    }
}

/// An S3 notification record, shaped like AWS's, for one change.
pub fn record(
    event_name: &str,
    bucket: &str,
    key: &str,
    size: Option<u64>,
    etag: Option<&str>,
    version_id: Option<&str>,
    sequencer: &str,
) -> Value {
    let template: Value =
        serde_json::from_str(include_str!("../fixtures/events/s3-put.json")).expect("fixture");
    let mut record = template["Records"][0].clone();
    record["eventName"] = json!(event_name);
    record["s3"]["bucket"]["name"] = json!(bucket);
    record["s3"]["bucket"]["arn"] = json!(format!("arn:aws:s3:::{bucket}"));
    let object = json!({
        "key": form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>(),
        "sequencer": sequencer,
    });
    record["s3"]["object"] = object;
    let object = &mut record["s3"]["object"];
    if let Some(size) = size {
        object["size"] = json!(size);
    }
    if let Some(etag) = etag {
        object["eTag"] = json!(etag.trim_matches('"'));
    }
    if let Some(v) = version_id {
        object["versionId"] = json!(v);
    }
    record
}

/// The record as S3 sends it for a change made now: its `eventTime` is this moment.
pub fn made_now(mut record: Value) -> Value {
    let now = aws_sdk_s3::primitives::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .expect("a time");
    record["eventTime"] = json!(now);
    record
}

/// A notification (one SQS message body) holding these records.
pub fn notification(records: &[Value]) -> String {
    json!({ "Records": records }).to_string()
}

/// Makes random changes to `bucket` over `keys`, `count` of them, and returns what
/// happened with the event S3 would send for each.
pub async fn generate(
    stack: &Stack,
    bucket: &str,
    keys: &[&str],
    versioned: bool,
    count: usize,
    rng: &mut StdRng,
) -> Vec<Happened> {
    let mut sequencers = Sequencers::default();
    let mut out = Vec::new();
    while out.len() < count {
        if let Some(happened) = change(stack, bucket, keys, versioned, rng, &mut sequencers).await {
            out.push(happened);
        }
    }
    out
}

/// Makes one random change to `bucket` (a put, a metadata or tag change, a delete, on
/// a versioned bucket a version removed for good) and returns it with the record S3
/// would send for it, made now. `None` when the change drawn does not apply (a tag
/// change of a key that is not there).
pub async fn change(
    stack: &Stack,
    bucket: &str,
    keys: &[&str],
    versioned: bool,
    rng: &mut StdRng,
    sequencers: &mut Sequencers,
) -> Option<Happened> {
    let key = *keys.choose(rng).expect("keys");
    let exists = exists(stack, bucket, key).await;
    let happened = match rng.random_range(0..10) {
        0..=3 => put(stack, bucket, key, rng).await,
        4 if exists => metadata(stack, bucket, key, rng).await,
        5 | 6 if exists => tags(stack, bucket, key, rng).await,
        7 | 8 => delete(stack, bucket, key).await,
        9 if versioned => delete_version(stack, bucket, key, rng).await?,
        _ => return None,
    };
    let (change, event_name, size, etag, version) = happened;
    let sequencer = sequencers.next(rng);
    let record = made_now(record(
        &event_name,
        bucket,
        key,
        size,
        etag.as_deref(),
        version.as_deref(),
        &sequencer,
    ));
    Some(Happened { change, record })
}

type Made = (Change, String, Option<u64>, Option<String>, Option<String>);

async fn exists(stack: &Stack, bucket: &str, key: &str) -> bool {
    stack
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

const CLASSES: [&str; 3] = ["STANDARD", "STANDARD_IA", "ONEZONE_IA"];
const TYPES: [&str; 3] = ["text/plain", "application/json", "image/png"];

fn random_tags(rng: &mut StdRng, count: usize) -> Vec<Tag> {
    (0..count)
        .map(|i| {
            Tag::builder()
                .key(format!("t{i}"))
                .value(format!("v{}", rng.random_range(0..100)))
                .build()
                .expect("tag")
        })
        .collect()
}

async fn put(stack: &Stack, bucket: &str, key: &str, rng: &mut StdRng) -> Made {
    let size = rng.random_range(0..4096);
    let body: Vec<u8> = (0..size).map(|_| rng.random()).collect();
    let count = rng.random_range(0..3);
    let tags: String = random_tags(rng, count)
        .iter()
        .map(|t| format!("{}={}", t.key(), t.value()))
        .collect::<Vec<_>>()
        .join("&");
    let out = stack
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .content_type(*TYPES.choose(rng).expect("types"))
        .storage_class(StorageClass::from(*CLASSES.choose(rng).expect("classes")))
        .metadata("written", rng.random_range(0..1000).to_string())
        .set_tagging((!tags.is_empty()).then_some(tags))
        .send()
        .await
        .expect("put");
    (
        Change::Put {
            key: key.into(),
            size,
        },
        "ObjectCreated:Put".into(),
        Some(size as u64),
        out.e_tag().map(str::to_string),
        out.version_id().map(str::to_string),
    )
}

/// A metadata change: S3's only way is a copy onto itself, which keeps the bytes.
async fn metadata(stack: &Stack, bucket: &str, key: &str, rng: &mut StdRng) -> Made {
    let head = stack
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("head");
    let out = stack
        .s3
        .copy_object()
        .bucket(bucket)
        .key(key)
        .copy_source(replicator::copy::copy_source(bucket, key, None))
        .metadata_directive(MetadataDirective::Replace)
        .metadata("edited", rng.random_range(0..1000).to_string())
        .content_type(*TYPES.choose(rng).expect("types"))
        .set_storage_class(head.storage_class().cloned())
        .send()
        .await
        .expect("copy onto itself");
    let etag = out
        .copy_object_result()
        .and_then(|r| r.e_tag())
        .map(str::to_string);
    (
        Change::Metadata { key: key.into() },
        "ObjectCreated:Copy".into(),
        head.content_length().map(|l| l as u64),
        etag,
        out.version_id().map(str::to_string),
    )
}

async fn tags(stack: &Stack, bucket: &str, key: &str, rng: &mut StdRng) -> Made {
    let count = rng.random_range(0..3);
    let (name, version) = if count == 0 {
        let out = stack
            .s3
            .delete_object_tagging()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("delete tagging");
        ("ObjectTagging:Delete", out.version_id().map(str::to_string))
    } else {
        let tagging = Tagging::builder()
            .set_tag_set(Some(random_tags(rng, count)))
            .build()
            .expect("tagging");
        let out = stack
            .s3
            .put_object_tagging()
            .bucket(bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .expect("put tagging");
        ("ObjectTagging:Put", out.version_id().map(str::to_string))
    };
    (
        Change::Tags {
            key: key.into(),
            count,
        },
        name.into(),
        None,
        None,
        version,
    )
}

/// A plain delete: a delete marker on a versioned bucket.
async fn delete(stack: &Stack, bucket: &str, key: &str) -> Made {
    let out = stack
        .s3
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("delete");
    let marker = out.version_id().map(str::to_string);
    let name = if marker.is_some() {
        "ObjectRemoved:DeleteMarkerCreated"
    } else {
        "ObjectRemoved:Delete"
    };
    (
        Change::Delete { key: key.into() },
        name.into(),
        None,
        None,
        marker,
    )
}

/// Removes one version (or delete marker) of the key for good.
async fn delete_version(stack: &Stack, bucket: &str, key: &str, rng: &mut StdRng) -> Option<Made> {
    let listed = stack
        .s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .expect("list versions");
    let versions: Vec<String> = listed
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .filter_map(|v| v.version_id().map(str::to_string))
        .chain(
            listed
                .delete_markers()
                .iter()
                .filter(|m| m.key() == Some(key))
                .filter_map(|m| m.version_id().map(str::to_string)),
        )
        .collect();
    let version = versions.choose(rng)?.clone();
    stack
        .s3
        .delete_object()
        .bucket(bucket)
        .key(key)
        .version_id(&version)
        .send()
        .await
        .expect("delete version");
    Some((
        Change::DeleteVersion {
            key: key.into(),
            version: version.clone(),
        },
        "ObjectRemoved:Delete".into(),
        None,
        None,
        Some(version),
    ))
}

/// The events in the order they will be delivered: shuffled, with about one in four
/// delivered twice, grouped one to three records per notification.
pub fn deliveries(happened: &[Happened], rng: &mut StdRng) -> Vec<String> {
    use rand::seq::SliceRandom;
    let mut records: Vec<Value> = happened.iter().map(|h| h.record.clone()).collect();
    let duplicates: Vec<Value> = records
        .iter()
        .filter(|_| rng.random_bool(0.25))
        .cloned()
        .collect();
    records.extend(duplicates);
    records.shuffle(rng);
    let mut out = Vec::new();
    let mut rest = records.as_slice();
    while !rest.is_empty() {
        let n = rng.random_range(1..=3).min(rest.len());
        out.push(notification(&rest[..n]));
        rest = &rest[n..];
    }
    out
}

/// Sends notification bodies to a queue, ten per request.
pub async fn send_all(stack: &Stack, queue_url: &str, bodies: &[String]) {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    for (c, chunk) in bodies.chunks(10).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("e{c}-{i}"))
                    .message_body(body)
                    .build()
                    .expect("entry")
            })
            .collect();
        let out = stack
            .sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("send events");
        assert!(out.failed().is_empty(), "{:?}", out.failed());
    }
}

/// One line per change, for a failure report.
pub fn describe(happened: &[Happened]) -> String {
    happened
        .iter()
        .map(|h| {
            let o = &h.record["s3"]["object"];
            format!(
                "{:<36} {:?} version={} sequencer={}",
                h.record["eventName"].as_str().unwrap_or(""),
                h.change,
                o["versionId"].as_str().unwrap_or("-"),
                o["sequencer"].as_str().unwrap_or("-"),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The keys' states side by side where they differ.
pub fn differences(
    source: &BTreeMap<String, Option<crate::ObjectState>>,
    replica: &BTreeMap<String, Option<crate::ObjectState>>,
) -> Vec<String> {
    source
        .iter()
        .filter(|(k, s)| replica.get(*k) != Some(*s))
        .map(|(k, s)| format!("{k:?}:\n  source:  {s:?}\n  replica: {:?}", replica.get(k)))
        .collect()
}
