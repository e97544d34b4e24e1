//! Helpers for integration tests against the local stack: moto's server on loopback
//! (`make integration` starts it and sets `S3R_TEST_ENDPOINT`).

pub mod cpu;
pub mod fault_proxy;
pub mod history;
pub mod iam;
pub mod lambda;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use rand::Rng;
use replicator::config::clients::{RequestLog, S3Clients};
use replicator::config::Config;
use replicator::copy::provenance::Provenance;
use replicator::ingest::Ingest;
use replicator::queues::lease::Lease;
use replicator::queues::parking::Parking;
use replicator::replicate::Replicator;
use replicator::retry::{Retrier, RetryPolicy};
use replicator::worker::Worker;
use sha2::{Digest, Sha256};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// One S3+SQS endpoint of the local stack.
#[derive(Clone)]
pub struct Stack {
    pub endpoint: String,
    /// Where its SQS is (the same server but for the fast stack's).
    pub sqs_endpoint: String,
    pub sdk: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
}

/// A variable the local stack sets (an endpoint, or a server's test keys).
pub fn endpoint_from(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: integration tests need the local stack; run them with `make integration` (or `make test`)")
    })
}

impl Stack {
    /// The main endpoint ("AWS").
    pub async fn main() -> Stack {
        Stack::at(&endpoint_from("S3R_TEST_ENDPOINT"), "test", "test").await
    }

    /// The second server, standing in for another provider with its own credentials.
    pub async fn other_provider() -> Stack {
        Stack::at(&endpoint_from("S3R_TEST_ENDPOINT_2"), "other", "other").await
    }

    /// "AWS" with IAM enforced, as its admin (see [`iam`]).
    pub async fn iam_admin() -> Stack {
        Stack::at(
            &endpoint_from("S3R_TEST_IAM_ENDPOINT"),
            &endpoint_from("S3R_TEST_IAM_ACCESS_KEY"),
            &endpoint_from("S3R_TEST_IAM_SECRET_KEY"),
        )
        .await
    }

    /// s3s-fs, a third provider that checks signatures, checksums and preconditions.
    /// Its S3 API only: no SQS, tagging or ACLs.
    pub async fn s3s_fs() -> Stack {
        Stack::at(
            &endpoint_from("S3R_TEST_S3S"),
            &endpoint_from("S3R_TEST_S3S_ACCESS_KEY"),
            &endpoint_from("S3R_TEST_S3S_SECRET_KEY"),
        )
        .await
    }

    /// The fast stack: SeaweedFS for S3 (strict: it checks conditional writes, versions,
    /// checksums and SigV4) and fauxqs for SQS. No Secrets Manager, no notifications:
    /// tests send the events S3 would.
    pub async fn fast() -> Stack {
        let mut stack = Stack::at(
            &endpoint_from("S3R_TEST_WEED"),
            &endpoint_from("S3R_TEST_WEED_ACCESS_KEY"),
            &endpoint_from("S3R_TEST_WEED_SECRET_KEY"),
        )
        .await;
        stack.sqs_endpoint = endpoint_from("S3R_TEST_FAUXQS");
        let queues = stack
            .sdk
            .to_builder()
            .endpoint_url(&stack.sqs_endpoint)
            .build();
        stack.sqs = aws_sdk_sqs::Client::new(&queues);
        stack
    }

    async fn at(endpoint: &str, access_key: &str, secret_key: &str) -> Stack {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(replicator::config::clients::http_client())
            .endpoint_url(endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                access_key, secret_key, None, None, "tests",
            ))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(30))
                    .build(),
            )
            .load()
            .await;
        Stack {
            endpoint: endpoint.to_string(),
            sqs_endpoint: endpoint.to_string(),
            s3: s3_client(&sdk, None),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sdk,
        }
    }

    /// An S3 client that records every request it sends.
    pub fn counted_s3(&self) -> (aws_sdk_s3::Client, RequestLog) {
        let log = RequestLog::default();
        (s3_client(&self.sdk, Some(&log)), log)
    }

    /// Sets a bucket's Object Ownership (BucketOwnerEnforced: ACLs disabled).
    pub async fn set_ownership(&self, bucket: &str, ownership: aws_sdk_s3::types::ObjectOwnership) {
        use aws_sdk_s3::types::{OwnershipControls, OwnershipControlsRule};
        let rule = OwnershipControlsRule::builder()
            .object_ownership(ownership)
            .build()
            .expect("ownership is set");
        self.s3
            .put_bucket_ownership_controls()
            .bucket(bucket)
            .ownership_controls(
                OwnershipControls::builder()
                    .rules(rule)
                    .build()
                    .expect("a rule"),
            )
            .send()
            .await
            .expect("PutBucketOwnershipControls");
    }

    /// Turns versioning on for a bucket.
    pub async fn enable_versioning(&self, bucket: &str) {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        self.s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("enable versioning");
    }

    /// An S3 client with this stack's keys that reaches it through `endpoint` (a
    /// proxy in front of it).
    pub fn s3_through(&self, endpoint: &str) -> aws_sdk_s3::Client {
        s3_client(&self.sdk.to_builder().endpoint_url(endpoint).build(), None)
    }

    /// Replaces an object's tags with one tag.
    pub async fn set_tag(&self, bucket: &str, key: &str, tag: (&str, &str)) {
        let tag = aws_sdk_s3::types::Tag::builder()
            .key(tag.0)
            .value(tag.1)
            .build()
            .expect("key and value are set");
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .tag_set(tag)
            .build()
            .expect("tags are set");
        self.s3
            .put_object_tagging()
            .bucket(bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .unwrap_or_else(|e| panic!("tag {key}: {}", replicator::errors::describe(&e)));
    }

    pub async fn bucket(&self, prefix: &str) -> String {
        let name = unique(prefix);
        self.s3
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .expect("create bucket");
        name
    }

    pub async fn queue(&self, prefix: &str) -> Queue {
        let name = unique(prefix);
        let url = self
            .sqs
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        Queue {
            arn: format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
            url,
        }
    }

    /// S3 notifications for every created, removed, tagging and ACL event of `bucket`
    /// go to `queue`, as `aws s3api put-bucket-notification-configuration` would set.
    pub async fn notify(&self, bucket: &str, queue: &Queue) {
        self.notify_only(
            bucket,
            queue,
            &[
                "s3:ObjectCreated:*",
                "s3:ObjectRemoved:*",
                "s3:ObjectTagging:*",
                "s3:ObjectAcl:Put",
            ],
        )
        .await
    }

    /// Notifications for these event types only.
    pub async fn notify_only(&self, bucket: &str, queue: &Queue, events: &[&str]) {
        use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
        let config = QueueConfiguration::builder()
            .queue_arn(&queue.arn)
            .set_events(Some(events.iter().map(|e| Event::from(*e)).collect()))
            .build()
            .expect("queue configuration");
        self.s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(config)
                    .build(),
            )
            .send()
            .await
            .expect("put notification configuration");
    }

    /// Messages in a queue, visible or not.
    pub async fn depth(&self, queue: &Queue) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("queue attributes");
        out.attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0)
    }

    /// Uploads an object in parts (CRC32 checksums, as the SDK writes by default): its
    /// ETag ends in `-N`, and its checksum is a composite of the parts'.
    pub async fn put_in_parts(&self, bucket: &str, key: &str, parts: &[Vec<u8>]) {
        use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
        let upload = self
            .s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .expect("create a multipart upload");
        let id = upload.upload_id().unwrap_or_default();
        let mut done = Vec::new();
        for (n, body) in (1..).zip(parts) {
            let out = self
                .s3
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .part_number(n)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .expect("upload a part");
            done.push(
                CompletedPart::builder()
                    .part_number(n)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                    .build(),
            );
        }
        self.s3
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .expect("complete a multipart upload");
    }

    /// Every key under `prefix` in a bucket, in order, over as many pages as it takes.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page
                .unwrap_or_else(|e| panic!("list {bucket}: {}", replicator::errors::describe(&e)));
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        keys
    }

    /// Sets how long a received message stays invisible: short, so that what a
    /// killed worker held comes back within a test.
    pub async fn set_visibility(&self, queue: &Queue, seconds: u32) {
        self.sqs
            .set_queue_attributes()
            .queue_url(&queue.url)
            .attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string())
            .send()
            .await
            .expect("set the visibility timeout");
    }

    /// Sends one message to a queue.
    pub async fn send(&self, queue: &Queue, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&queue.url)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }

    /// Everything waiting in a queue, removed from it.
    pub async fn drain(&self, queue: &Queue) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&queue.url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            for m in messages {
                bodies.push(m.body.clone().unwrap_or_default());
                self.sqs
                    .delete_message()
                    .queue_url(&queue.url)
                    .receipt_handle(m.receipt_handle.unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    pub async fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {}", replicator::errors::describe(&e)));
    }

    /// A plain delete; on a versioned bucket, a delete marker (its version id returned).
    pub async fn delete(&self, bucket: &str, key: &str) -> Option<String> {
        self.s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete {key}: {}", replicator::errors::describe(&e)))
            .version_id
    }
}

/// A configuration with one rule "r" from `source` to `destination` (a Destination
/// object's JSON), replicating delete markers.
pub fn one_rule(source: &str, destination: &str) -> String {
    format!(
        r#"{{"Sources": [{{"Bucket": "{source}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "r", "Priority": 1, "Status": "Enabled", "Filter": {{}},
              "Destination": {destination}, "DeleteMarkerReplication": {{"Status": "Enabled"}}}}]}}}}]}}"#
    )
}

/// A put job of rule "r" as ingest writes it, for an event without sequencer,
/// version or ETag (what moto sends): the source's current state decides.
pub fn put_job(source: &str, key: &str, destination: &str) -> replicator::queues::job::Job {
    let mut job = replicator::queues::job::Job::parse(include_str!("../fixtures/jobs/put.json"))
        .expect("the put job fixture parses");
    job.source.bucket = source.into();
    job.source.key = key.into();
    job.source.version_id = None;
    job.source.etag = None;
    job.source.size = None;
    job.source.sequencer = None;
    job.source.event_time = None;
    job.rule_id = "r".into();
    job.destination.bucket = destination.into();
    job
}

/// A bucket at s3s-fs and a Destination object that reaches it with the keys of a new
/// Secrets Manager secret (on the main server).
pub async fn s3s_destination(stack: &Stack, s3s: &Stack, extra: &str) -> (String, String) {
    let dst = unique("strict");
    s3s.s3.create_bucket().bucket(&dst).send().await.unwrap();
    let (secret, _) = s3s_secret(stack).await;
    let destination = format!(
        r#"{{"Bucket": "{dst}", "Replicator": {{"EndpointUrl": "{}", "ForcePathStyle": true, "AclMode": "none",
            "Credentials": {{"Secret": "{secret}"}}{extra}}}}}"#,
        s3s.endpoint
    );
    (dst, destination)
}

/// A new Secrets Manager secret on `stack` holding s3s-fs's keys: its name and ARN.
pub async fn s3s_secret(stack: &Stack) -> (String, String) {
    keys_secret(stack, "S3R_TEST_S3S").await
}

/// A new Secrets Manager secret on `stack` holding the keys the environment gives as
/// `{prefix}_ACCESS_KEY` and `{prefix}_SECRET_KEY`: its name and ARN.
pub async fn keys_secret(stack: &Stack, prefix: &str) -> (String, String) {
    let secret = unique("keys");
    let arn = aws_sdk_secretsmanager::Client::new(&stack.sdk)
        .create_secret()
        .name(&secret)
        .secret_string(secret_keys(
            &endpoint_from(&format!("{prefix}_ACCESS_KEY")),
            &endpoint_from(&format!("{prefix}_SECRET_KEY")),
        ))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap_or_default();
    (secret, arn)
}

/// A secret's text as destinations' `Credentials.Secret` read it.
pub fn secret_keys(access: &str, secret: &str) -> String {
    format!(r#"{{"AccessKeyId": "{access}", "SecretAccessKey": "{secret}"}}"#)
}

/// A replicator with one rule "r" from `source` on `stack` to `dst` at another
/// provider (`other`): path-style, no ACLs, parts of 5 MiB.
pub async fn replicator_to_other(
    stack: &Stack,
    source: &str,
    other: &Stack,
    dst: &str,
) -> Replicator {
    let cfg = config(&one_rule(
        source,
        &format!(
            r#"{{"Bucket": "{dst}", "Replicator": {{"EndpointUrl": "{}", "ForcePathStyle": true, "AclMode": "none", "PartSize": 5242880,
                "Credentials": {{"DefaultChain": true}}}}}}"#,
            other.endpoint
        ),
    ));
    let clients = S3Clients::build(&stack.sdk, stack.s3.clone(), &cfg, None)
        .await
        .expect("destination clients");
    Replicator::new(cfg, clients, stack.sqs.clone(), None)
}

/// The parts an object was uploaded in, read from its ETag ("…-N"); 1 when single.
pub async fn part_count(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> u32 {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {key}: {}", replicator::errors::describe(&e)));
    let etag = head.e_tag().unwrap_or_default().trim_matches('"');
    etag.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1)
}

/// Queue messages with these bodies, as Lambda delivers a batch.
pub fn sqs_batch(bodies: &[String]) -> aws_lambda_events::sqs::SqsEvent {
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    for (i, body) in bodies.iter().enumerate() {
        let mut m = aws_lambda_events::sqs::SqsMessage::default();
        m.message_id = Some(format!("m{i}"));
        m.body = Some(body.clone());
        m.event_source = Some("aws:sqs".into());
        event.records.push(m);
    }
    event
}

fn s3_client(sdk: &SdkConfig, log: Option<&RequestLog>) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(sdk).force_path_style(true);
    if let Some(log) = log {
        builder = builder.interceptor(log.clone());
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

#[derive(Clone, Debug)]
pub struct Queue {
    pub url: String,
    pub arn: String,
}

/// A name no other test uses (tests share one server and run in parallel).
pub fn unique(prefix: &str) -> String {
    let n: u32 = rand::rng().random();
    format!("{prefix}-{n:08x}")
}

pub fn config(json: &str) -> Arc<Config> {
    Arc::new(Config::parse(json).unwrap_or_else(|e| panic!("test configuration: {e}")))
}

/// A source bucket, a work queue and an events queue wired with notifications.
pub struct Pipeline {
    pub stack: Stack,
    pub source: String,
    pub events: Queue,
    pub work: Queue,
    pub retry: Queue,
    pub failed: Queue,
}

impl Pipeline {
    pub async fn new(stack: &Stack) -> Pipeline {
        let p = Pipeline::unwired(stack).await;
        stack.notify(&p.source, &p.events).await;
        // The s3:TestEvent that saving the configuration sends.
        let test_events = stack.drain(&p.events).await;
        assert!(
            test_events.iter().all(|b| b.contains("s3:TestEvent")),
            "{test_events:?}"
        );
        p
    }

    /// The bucket and queues without notifications: the test sends the events.
    pub async fn unwired(stack: &Stack) -> Pipeline {
        Pipeline {
            stack: stack.clone(),
            source: stack.bucket("src").await,
            events: stack.queue("events").await,
            work: stack.queue("work").await,
            retry: stack.queue("retry").await,
            failed: stack.queue("failed").await,
        }
    }

    /// A pipeline whose bucket reports creations only: moto also reports a tagging
    /// event for every PUT, which would double the jobs of tests that count them.
    pub async fn creations_only(stack: &Stack) -> Pipeline {
        let p = Pipeline::new(stack).await;
        stack
            .notify_only(&p.source, &p.events, &["s3:ObjectCreated:*"])
            .await;
        stack.drain(&p.events).await;
        p
    }

    pub fn ingest(&self, config: &Arc<Config>) -> Ingest {
        Ingest {
            config: config.clone(),
            s3: self.stack.s3.clone(),
            sqs: self.stack.sqs.clone(),
            work_queue_url: self.work.url.clone(),
            failed_queue_url: Some(self.failed.url.clone()),
            signer: replicator::config::keys::Signer::unsigned(),
        }
    }

    /// The replicate handler as bootstrap builds it, on the given source client.
    pub async fn replicator_on(&self, config: &Arc<Config>, s3: aws_sdk_s3::Client) -> Replicator {
        let clients = S3Clients::build(&self.stack.sdk, s3, config, None)
            .await
            .expect("destination clients");
        let mut replicator = Replicator::new(
            config.clone(),
            clients,
            self.stack.sqs.clone(),
            Some(self.failed.url.clone()),
        );
        replicator.retry_queue_url = Some(self.retry.url.clone());
        replicator.work_queue_url = Some(self.work.url.clone());
        replicator.lease = Lease::for_queue(&self.stack.sqs, &self.work.url).await;
        replicator
    }

    pub async fn replicator(&self, config: &Arc<Config>) -> Replicator {
        self.replicator_on(config, self.stack.s3.clone()).await
    }

    /// Retries after 1 s, 2 s, 4 s...; parks after five failed attempts.
    pub fn retrier(&self) -> Retrier {
        Retrier {
            sqs: self.stack.sqs.clone(),
            s3: self.stack.s3.clone(),
            work_queue_url: self.work.url.clone(),
            parking: Parking {
                sqs: self.stack.sqs.clone(),
                failed_queue_url: Some(self.failed.url.clone()),
            },
            policy: RetryPolicy {
                max_attempts: 5,
                base: Duration::from_secs(1),
                cap: Duration::from_secs(900),
            },
            failed: None,
        }
    }

    /// Runs the worker (ingest, replicate and retry, as `s3-replicator run` does) until
    /// its queues have been empty for a second and a half.
    pub async fn run_worker(&self, config: &Arc<Config>) {
        self.run_worker_on(config, self.stack.s3.clone()).await
    }

    /// The same, with the replicate handler's S3 requests sent through `s3`.
    pub async fn run_worker_on(&self, config: &Arc<Config>, s3: aws_sdk_s3::Client) {
        let worker = Arc::new(Worker {
            sqs: self.stack.sqs.clone(),
            ingest: Some((Arc::new(self.ingest(config)), self.events.url.clone())),
            replicator: Arc::new(self.replicator_on(config, s3).await),
            work_queue_url: self.work.url.clone(),
            retry: Some((Arc::new(self.retrier()), self.retry.url.clone())),
            wait: Duration::from_secs(0),
        });
        let (_stop, stop) = tokio::sync::watch::channel(false);
        tokio::time::timeout(
            Duration::from_secs(300),
            worker.run(Some(Duration::from_millis(1500)), stop),
        )
        .await
        .expect("worker did not go idle within 300 s")
        .expect("worker failed");
    }
}

/// Every property of an object that replication must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectState {
    pub size: usize,
    pub sha256: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_disposition: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub storage_class: String,
}

/// Puts `count` objects of assorted small sizes, sixteen at a time; returns their keys.
pub async fn put_many(stack: &Stack, bucket: &str, prefix: &str, count: usize) -> Vec<String> {
    use futures::StreamExt;
    let keys: Vec<String> = (0..count)
        .map(|i| format!("{prefix}{i:04} file.bin"))
        .collect();
    futures::stream::iter(keys.clone())
        .for_each_concurrent(16, |key| {
            let stack = stack.clone();
            let bucket = bucket.to_string();
            async move {
                let seed = key
                    .bytes()
                    .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
                let body: Vec<u8> = (0..(seed % 40_000) as usize)
                    .map(|i| (i as u32 ^ seed) as u8)
                    .collect();
                stack.put(&bucket, &key, &body).await;
            }
        })
        .await;
    keys
}

/// The provenance a replica claims (signed or not); None for an original (or no object).
pub async fn provenance(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<Provenance> {
    let head = s3.head_object().bucket(bucket).key(key).send().await.ok()?;
    Provenance::read_unverified(head.metadata())
}

/// Reads an object's bytes, headers, user metadata, tags and class; None if absent.
pub async fn object_state(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<ObjectState> {
    let mut state = object_without_tags(s3, bucket, key).await?;
    state.tags = s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("tags")
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    Some(state)
}

/// Everything [`object_state`] reads but the tags (for providers without tagging).
pub async fn object_without_tags(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Option<ObjectState> {
    let got = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(got) => got,
        Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => return None,
        Err(e) => panic!("get {bucket}/{key}: {}", replicator::errors::describe(&e)),
    };
    let content_type = got.content_type().map(str::to_string);
    let content_encoding = got.content_encoding().map(str::to_string);
    let content_language = got.content_language().map(str::to_string);
    let content_disposition = got.content_disposition().map(str::to_string);
    let cache_control = got.cache_control().map(str::to_string);
    let expires = got.expires_string().map(str::to_string);
    // What the user wrote: a replica's provenance is ours, compared on its own.
    let metadata = replicator::copy::provenance::user_metadata(got.metadata())
        .into_iter()
        .collect();
    let storage_class = got
        .storage_class()
        .map(|c| c.as_str().to_string())
        .unwrap_or_else(|| "STANDARD".into());
    let bytes = got.body.collect().await.expect("body").into_bytes();
    Some(ObjectState {
        size: bytes.len(),
        sha256: hex(&Sha256::digest(&bytes)),
        content_type,
        content_encoding,
        content_language,
        content_disposition,
        cache_control,
        expires,
        metadata,
        tags: BTreeMap::new(),
        storage_class,
    })
}

/// The object's grants as sorted "grantee permission" lines.
pub async fn grants(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<String> {
    let acl = s3
        .get_object_acl()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get acl");
    let mut lines: Vec<String> = acl
        .grants()
        .iter()
        .map(|g| {
            let who = g
                .grantee()
                .map(|e| {
                    e.uri()
                        .or(e.id())
                        .or(e.email_address())
                        .unwrap_or("?")
                        .to_string()
                })
                .unwrap_or_default();
            format!(
                "{who} {}",
                g.permission().map(|p| p.as_str()).unwrap_or("?")
            )
        })
        .collect();
    lines.sort();
    lines
}

/// 66 MiB of bytes that differ from part to part: above the 64 MiB threshold of
/// streamed copies, 14 parts of 5 MiB, so a copy of it runs in parts and can pause.
pub fn parts_body() -> Vec<u8> {
    (0..(66u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect()
}

/// Bytes that never repeat at part boundaries: a part out of place changes the hash.
pub fn random_bytes(len: u64, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len as usize];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// The SHA-256 of `bytes`, as [`ObjectState::sha256`] holds it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
