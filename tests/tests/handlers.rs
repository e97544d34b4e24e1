//! The handlers called as Lambda calls them (`LambdaEvent::new(payload,
//! Context::default())`), against real buckets and queues on the local stack.

use aws_sdk_s3::primitives::ByteStream;
use integration_tests::{
    config, object_state, one_rule, part_count, put_job, replicator_to_other, sqs_batch, Pipeline,
    Stack,
};
use lambda_runtime::{Context, LambdaEvent};
use replicator::config::clients::S3Clients;
use replicator::config::source::ConfigSource;
use replicator::copy::conditions::WriteKind;
use replicator::copy::multipart::{MultipartSettings, MIB};
use replicator::copy::verify::Verified;
use replicator::copy::Outcome;
use replicator::queues::job::{Job, Operation};
use replicator::replicate::Replicator;
use serde_json::Value;

/// Requests a replication costs, by ACL mode, on the same endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_endpoint_replication_costs_a_head_and_a_copy() {
    let stack = Stack::main().await;
    let source = stack.bucket("src").await;
    let dst = stack.bucket("dst").await;
    stack
        .s3
        .put_object()
        .bucket(&source)
        .key("a/b c.txt")
        .body(ByteStream::from_static(b"payload"))
        .tagging("k=v&x=y")
        .metadata("m", "1")
        .send()
        .await
        .unwrap();

    for (mode, expected) in [
        (r#""Replicator": {"AclMode": "none"}"#, vec!["HEAD", "PUT"]),
        (
            r#""Account": "123456789012", "AccessControlTranslation": {"Owner": "Destination"}"#,
            vec!["HEAD", "PUT"],
        ),
        // ACL copy: ownership controls of both buckets once per process (asked by the
        // first copy), then the ACL.
        (
            r#""Replicator": {"AclMode": "copy"}"#,
            vec!["HEAD", "GET", "PUT"],
        ),
    ] {
        let cfg = config(&one_rule(
            &source,
            &format!(r#"{{"Bucket": "{dst}", {mode}}}"#),
        ));
        let (s3, log) = stack.counted_s3();
        let replicator =
            Replicator::new(cfg, S3Clients::same_endpoint(s3), stack.sqs.clone(), None);
        // The first copy of a process to a destination of unknown kind reads the
        // replica (to make the copy conditional) and learns from the copy that moto
        // ignores CopyObject's conditions; from then on the fallback orders its
        // copies, and an event without a sequencer needs no HEAD of the replica.
        let first = replicator
            .run(&put_job(&source, "a/b c.txt", &dst))
            .await
            .unwrap();
        assert!(matches!(first, Outcome::Replicated { .. }), "{first:?}");
        let learned: Vec<String> = log.take();
        assert_eq!(
            learned.len(),
            3 + usize::from(mode.contains("copy")) * 3,
            "{learned:?}"
        );
        assert_eq!(
            replicator
                .conditions(&replicator.config.sources[0].rules[0].destination)
                .describe(WriteKind::Copy),
            "ignored"
        );
        let job = put_job(&source, "a/b c.txt", &dst);
        let outcome = replicator.run(&job).await.unwrap();
        assert_eq!(
            outcome,
            Outcome::Replicated {
                bytes: 7,
                verified: Verified::ETag
            }
        );
        let methods: Vec<String> = log
            .take()
            .iter()
            .map(|r| r.split(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(methods, expected, "{mode}");
        // The copy alone carried everything (no tagging event was processed here).
        let replica = object_state(&stack.s3, &dst, "a/b c.txt").await.unwrap();
        assert_eq!(
            replica,
            object_state(&stack.s3, &source, "a/b c.txt").await.unwrap(),
            "{mode}"
        );
        assert_eq!(replica.tags.len(), 2);
    }
}

/// A cold process asks each bucket's ownership controls once, however many jobs ask
/// at the same moment (the first asks; the others wait for its answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_controls_are_asked_once_per_bucket_under_concurrency() {
    let stack = Stack::main().await;
    let source = stack.bucket("src").await;
    let dst = stack.bucket("dst").await;
    let keys = integration_tests::put_many(&stack, &source, "o/", 30).await;
    let cfg = config(&one_rule(
        &source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "copy"}}}}"#),
    ));
    let (s3, log) = stack.counted_s3();
    let replicator = Replicator::new(cfg, S3Clients::same_endpoint(s3), stack.sqs.clone(), None);
    let jobs: Vec<Job> = keys.iter().map(|k| put_job(&source, k, &dst)).collect();
    let outcomes = futures::future::join_all(jobs.iter().map(|j| replicator.run(j))).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(Outcome::Replicated { .. }))),
        "{outcomes:?}"
    );
    let asked = log
        .take()
        .into_iter()
        .filter(|r| r.contains("ownershipControls"))
        .count();
    assert_eq!(asked, 2, "once for the source, once for the destination");
}

/// What a delete marker costs: a HEAD of the replica, the delete, one HEAD of the source.
/// Without sequencers the source decides, from that one HEAD after the delete: gone,
/// the replica stays deleted; there again, the replica becomes a copy of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_costs_one_head_of_the_source() {
    let stack = Stack::main().await;
    let source = stack.bucket("src").await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&one_rule(
        &source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let (s3, log) = stack.counted_s3();
    let replicator = Replicator::new(cfg, S3Clients::same_endpoint(s3), stack.sqs.clone(), None);
    for key in ["gone", "back"] {
        stack.put(&source, key, b"first").await;
        replicator.run(&put_job(&source, key, &dst)).await.unwrap();
    }
    stack.delete(&source, "gone").await;
    stack.delete(&source, "back").await;
    stack.put(&source, "back", b"second").await;
    log.take();
    let mut delete = put_job(&source, "gone", &dst);
    delete.op = Operation::Delete;
    delete.source.delete_marker = true;
    assert_eq!(replicator.run(&delete).await.unwrap(), Outcome::Deleted);
    let methods: Vec<String> = log
        .take()
        .iter()
        .map(|r| r.split(' ').next().unwrap().to_string())
        .collect();
    // The replica's HEAD, the delete (If-Match its ETag), the source's HEAD. The first
    // delete a process sends to a destination of unknown kind is sent once more, first
    // with an ETag no object has: moto answers 412, so its deletes are conditional.
    assert_eq!(methods, ["HEAD", "DELETE", "DELETE", "HEAD"]);
    assert!(object_state(&stack.s3, &dst, "gone").await.is_none());

    delete.source.key = "back".into();
    replicator.run(&delete).await.unwrap();
    assert_eq!(
        object_state(&stack.s3, &dst, "back").await.unwrap().sha256,
        object_state(&stack.s3, &source, "back")
            .await
            .unwrap()
            .sha256,
        "the replica is what the source holds again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_deleted_before_its_job_is_a_stated_skip() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&one_rule(&p.source, &format!(r#"{{"Bucket": "{dst}"}}"#)));
    let replicator = p.replicator(&cfg).await;
    let outcome = replicator
        .run(&put_job(&p.source, "never-existed", &dst))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Skipped {
            reason: "SourceDeleted"
        }
    );
    // Through the batch handler the message is done (not retried) and nothing is written.
    let response = replicator
        .handle_batch(sqs_batch(&[put_job(&p.source, "gone", &dst).to_body()]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert!(object_state(&stack.s3, &dst, "gone").await.is_none());
    assert!(stack.drain(&p.failed).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_job_is_parked_and_its_batch_still_succeeds() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&one_rule(&p.source, &format!(r#"{{"Bucket": "{dst}"}}"#)));
    stack.put(&p.source, "good-1", b"1").await;
    stack.put(&p.source, "good-2", b"2").await;
    let replicator = p.replicator(&cfg).await;
    let batch = sqs_batch(&[
        put_job(&p.source, "good-1", &dst).to_body(),
        "{\"this is\": \"not a job\"}".to_string(),
        "not even json".to_string(),
        put_job(&p.source, "good-2", &dst).to_body(),
    ]);
    let response = replicator
        .handle(LambdaEvent::new(batch, Context::default()))
        .await
        .unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "parked, not retried: {:?}",
        response.batch_item_failures
    );
    for key in ["good-1", "good-2"] {
        assert!(object_state(&stack.s3, &dst, key).await.is_some(), "{key}");
    }
    let parked = stack.drain(&p.failed).await;
    assert_eq!(parked.len(), 2);
    for body in &parked {
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["last_error"]["reason"], "MalformedMessage", "{body}");
        assert!(
            v["body"].is_string(),
            "the original body is kept for the operator: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_goes_to_the_failed_queue_with_its_reason() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let cfg = config(&one_rule(
        &p.source,
        r#"{"Bucket": "no-such-destination-bucket", "Replicator": {"AclMode": "none"}}"#,
    ));
    stack.put(&p.source, "k", b"v").await;
    let replicator = p.replicator(&cfg).await;
    let response = replicator
        .handle_batch(sqs_batch(&[put_job(
            &p.source,
            "k",
            "no-such-destination-bucket",
        )
        .to_body()]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let parked = stack.drain(&p.failed).await;
    assert_eq!(parked.len(), 1);
    let job = Job::parse(&parked[0]).unwrap();
    let last = job.last_error.unwrap();
    assert_eq!(last.reason.as_str(), "DstBucketNotFound", "{}", last.detail);
    assert_eq!(job.attempts, 1);
    assert!(job.first_failure.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_class_the_destination_rejects_is_parked_at_once() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let dst = stack.bucket("dst").await;
    // Another provider's class name, sent to S3 by mistake.
    let cfg = config(&one_rule(
        &p.source,
        &format!(
            r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none", "StorageClassMap": {{"STANDARD": "HIGH_PERF"}}}}}}"#
        ),
    ));
    stack.put(&p.source, "k", b"v").await;
    let replicator = p.replicator(&cfg).await;
    let response = replicator
        .handle_batch(sqs_batch(&[put_job(&p.source, "k", &dst).to_body()]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stack.depth(&p.retry).await, 0, "not retried");
    let parked = stack.drain(&p.failed).await;
    assert_eq!(parked.len(), 1);
    let job = Job::parse(&parked[0]).unwrap();
    assert_eq!(
        job.last_error.unwrap().reason.as_str(),
        "InvalidStorageClass"
    );
    assert_eq!(job.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_left_for_redelivery() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&one_rule(
        &p.source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    // Nothing listens here: a connection refused is a network error, worth a retry.
    let dead = integration_tests::Stack::main().await;
    let dead_sdk = dead
        .sdk
        .to_builder()
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let dead_s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&dead_sdk)
            .force_path_style(true)
            .build(),
    );
    let replicator = Replicator::new(
        cfg,
        S3Clients::same_endpoint(dead_s3),
        stack.sqs.clone(),
        Some(p.failed.url.clone()),
    );
    let response = replicator
        .handle_batch(sqs_batch(&[put_job(&p.source, "k", &dst).to_body()]))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "m0");
    assert!(
        stack.drain(&p.failed).await.is_empty(),
        "a transient failure is not parked"
    );
}

const FIXTURE_BUCKET: &str = "amzn-s3-demo-bucket";
const FIXTURE_KEY: &str = "photos/2024/beach day+1.jpg";

/// Ingest fed each envelope, as Lambda would deliver it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_accepts_every_envelope_and_sends_one_job_per_destination() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let cfg = config(&format!(
        r#"{{"Sources": [{{"Bucket": "{FIXTURE_BUCKET}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "photos", "Priority": 1, "Status": "Enabled", "Filter": {{"Prefix": "photos/"}},
              "Destination": {{"Bucket": "replica-one"}}, "DeleteMarkerReplication": {{"Status": "Enabled"}}}},
            {{"ID": "all", "Priority": 2, "Status": "Enabled", "Filter": {{}},
              "Destination": {{"Bucket": "replica-two"}}, "DeleteMarkerReplication": {{"Status": "Disabled"}}}}]}}}}]}}"#
    ));
    let ingest = p.ingest(&cfg);
    let fixtures: [(&str, &str, usize); 7] = [
        (
            "s3-put.json",
            include_str!("../fixtures/events/s3-put.json"),
            2,
        ),
        (
            "sns-s3.json",
            include_str!("../fixtures/events/sns-s3.json"),
            2,
        ),
        (
            "sqs-s3.json",
            include_str!("../fixtures/events/sqs-s3.json"),
            2,
        ),
        (
            "sqs-sns-s3.json",
            include_str!("../fixtures/events/sqs-sns-s3.json"),
            2,
        ),
        (
            "eventbridge-created.json",
            include_str!("../fixtures/events/eventbridge-created.json"),
            2,
        ),
        // A delete marker: only the rule that replicates deletes.
        (
            "eventbridge-deleted.json",
            include_str!("../fixtures/events/eventbridge-deleted.json"),
            1,
        ),
        (
            "s3-test-event.json",
            include_str!("../fixtures/events/s3-test-event.json"),
            0,
        ),
    ];
    for (name, text, jobs) in fixtures {
        let payload: Value = serde_json::from_str(text).unwrap();
        let out = ingest
            .handle(LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap();
        if name.starts_with("sqs") {
            assert_eq!(out["batchItemFailures"], serde_json::json!([]), "{name}");
        }
        let sent = stack.drain(&p.work).await;
        assert_eq!(sent.len(), jobs, "{name}: {sent:?}");
        let mut destinations: Vec<String> = sent
            .iter()
            .map(|body| {
                let job = Job::parse(body).unwrap();
                assert_eq!(
                    (job.source.bucket.as_str(), job.source.key.as_str()),
                    (FIXTURE_BUCKET, FIXTURE_KEY),
                    "{name}"
                );
                job.destination.bucket
            })
            .collect();
        destinations.sort();
        if jobs == 2 {
            assert_eq!(destinations, vec!["replica-one", "replica-two"], "{name}");
        }
    }

    // A batch with two unusable messages among good ones: those are parked with their
    // reason, the good one is ingested, and nothing is retried.
    let payload: Value =
        serde_json::from_str(include_str!("../fixtures/events/sqs-malformed.json")).unwrap();
    let out = ingest
        .handle(LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], serde_json::json!([]));
    assert_eq!(stack.drain(&p.work).await.len(), 2);
    let parked = stack.drain(&p.failed).await;
    assert_eq!(parked.len(), 2);
    assert!(parked.iter().all(|b| b.contains("MalformedMessage")));

    // A payload that is no notification at all is an error, not a panic.
    let err = ingest
        .handle(LambdaEvent::new(
            serde_json::json!({"hello": "world"}),
            Context::default(),
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an S3 event"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_loads_from_s3_and_files() {
    let stack = Stack::main().await;
    let bucket = stack.bucket("config").await;
    let text = include_str!("../fixtures/config/full.json");
    stack
        .put(&bucket, "replicator/config.json", text.as_bytes())
        .await;
    let from_s3 = ConfigSource::parse(&format!("s3://{bucket}/replicator/config.json"))
        .unwrap()
        .load(&stack.s3)
        .await
        .unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/config/full.json");
    let from_file = ConfigSource::parse(&format!("file://{path}"))
        .unwrap()
        .load(&stack.s3)
        .await
        .unwrap();
    assert_eq!(from_s3, from_file);
    assert_eq!(from_s3.sources[0].bucket, "photos");
    let missing = ConfigSource::parse(&format!("s3://{bucket}/nope.json"))
        .unwrap()
        .load(&stack.s3)
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("NoSuchKey"), "{missing}");
}

/// Another provider: a second server with its own credentials; the copy streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_provider_gets_a_streamed_copy() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let p = Pipeline::new(&stack).await;
    let dst = other.bucket("offsite").await;
    let cfg = config(&one_rule(
        &p.source,
        &format!(
            r#"{{"Bucket": "{dst}", "Replicator": {{"EndpointUrl": "{}", "Region": "us-east-1", "ForcePathStyle": true,
                "AclMode": "none", "StorageClassMap": {{"STANDARD": "STANDARD_IA"}}, "Credentials": {{"DefaultChain": true}}}}}}"#,
            other.endpoint
        ),
    ));
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    stack
        .s3
        .put_object()
        .bucket(&p.source)
        .key("far away/ü.bin")
        .body(ByteStream::from(body))
        .content_type("application/octet-stream")
        .cache_control("no-cache")
        .metadata("origin", "main")
        .tagging("site=a")
        .send()
        .await
        .unwrap();
    p.run_worker(&cfg).await;
    let source = object_state(&stack.s3, &p.source, "far away/ü.bin")
        .await
        .unwrap();
    let replica = object_state(&other.s3, &dst, "far away/ü.bin")
        .await
        .expect("arrived at the other provider");
    assert_eq!(replica.storage_class, "STANDARD_IA");
    assert_eq!(
        replica,
        integration_tests::ObjectState {
            storage_class: "STANDARD_IA".into(),
            ..source
        }
    );
    // The main server holds no bucket of that name: the copy really went elsewhere.
    assert!(stack.s3.head_bucket().bucket(&dst).send().await.is_err());
}

/// A tag change updates the replica's tags without copying bytes; one that arrives
/// before the replica exists copies the object whole, so the order of events does not
/// matter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_changes_sync_tags_or_copy_whole_when_the_replica_is_missing() {
    let stack = Stack::main().await;
    let source = stack.bucket("src").await;
    let dst = stack.bucket("dst").await;
    stack.put(&source, "doc", b"contents").await;
    set_stage(&stack, &source, "draft").await;
    let cfg = config(&one_rule(
        &source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let (s3, log) = stack.counted_s3();
    let replicator = Replicator::new(cfg, S3Clients::same_endpoint(s3), stack.sqs.clone(), None);
    let mut job = put_job(&source, "doc", &dst);
    job.op = Operation::Tags;

    // No replica yet: the tag job copies the whole object.
    replicator.run(&job).await.unwrap();
    assert_eq!(
        object_state(&stack.s3, &dst, "doc").await.unwrap(),
        object_state(&stack.s3, &source, "doc").await.unwrap()
    );
    log.take();

    // With a replica: read the source's tags, write the replica's, read the source's
    // again (newer tags a put copied meanwhile are never overwritten). No HEAD, no copy.
    set_stage(&stack, &source, "final").await;
    replicator.run(&job).await.unwrap();
    let requests = log.take();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(
        requests.iter().all(|r| r.ends_with("?tagging")),
        "{requests:?}"
    );
    let replica = object_state(&stack.s3, &dst, "doc").await.unwrap();
    assert_eq!(replica.tags.get("stage").map(String::as_str), Some("final"));

    // Tags removed at the source are removed from the replica.
    stack
        .s3
        .delete_object_tagging()
        .bucket(&source)
        .key("doc")
        .send()
        .await
        .unwrap();
    replicator.run(&job).await.unwrap();
    assert!(object_state(&stack.s3, &dst, "doc")
        .await
        .unwrap()
        .tags
        .is_empty());
}

/// Tags the source's "doc" with stage=VALUE.
async fn set_stage(stack: &Stack, bucket: &str, value: &str) {
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(tag("stage", value))
        .build()
        .unwrap();
    stack
        .s3
        .put_object_tagging()
        .bucket(bucket)
        .key("doc")
        .tagging(tagging)
        .send()
        .await
        .unwrap();
}

fn tag(key: &str, value: &str) -> aws_sdk_s3::types::Tag {
    aws_sdk_s3::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .unwrap()
}

/// On a versioned source a late event names an old version; the job copies what the
/// source holds now, so the replica never goes back to the old bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_for_an_old_version_copies_the_current_object() {
    let stack = Stack::main().await;
    let source = stack.bucket("versioned").await;
    let dst = stack.bucket("dst").await;
    stack.enable_versioning(&source).await;
    let put = |body: &'static [u8]| {
        let s3 = stack.s3.clone();
        let bucket = source.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key("doc")
                .body(ByteStream::from_static(body))
                .send()
                .await
                .unwrap()
                .version_id
                .expect("versioned")
        }
    };
    let old = put(b"old bytes").await;
    let new = put(b"new bytes").await;
    assert_ne!(old, new);
    let cfg = config(&one_rule(
        &source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let replicator = Replicator::new(
        cfg,
        S3Clients::same_endpoint(stack.s3.clone()),
        stack.sqs.clone(),
        None,
    );
    let mut late = put_job(&source, "doc", &dst);
    late.source.version_id = Some(old);
    assert_eq!(
        replicator.run(&late).await.unwrap(),
        Outcome::Replicated {
            bytes: 9,
            verified: Verified::ETag
        }
    );
    let replica = stack
        .s3
        .get_object()
        .bucket(&dst)
        .key("doc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        replica.body.collect().await.unwrap().into_bytes().as_ref(),
        b"new bytes"
    );
}

/// Above the threshold a same-endpoint copy goes multipart (UploadPartCopy in parallel),
/// and the new upload carries what a multipart copy would not by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_is_copied_in_parts_with_everything_it_carries() {
    use aws_sdk_s3::types::StorageClass;
    let stack = Stack::main().await;
    let source = stack.bucket("big").await;
    let dst = stack.bucket("dst").await;
    let body: Vec<u8> = (0..(12 * 1024 * 1024u32))
        .map(|i| (i % 251) as u8)
        .collect();
    stack
        .s3
        .put_object()
        .bucket(&source)
        .key("video/take 1.mp4")
        .body(ByteStream::from(body))
        .content_type("video/mp4")
        .cache_control("max-age=60")
        .metadata("camera", "a7")
        .tagging("project=film&cut=rough")
        .storage_class(aws_sdk_s3::types::StorageClass::StandardIa)
        .send()
        .await
        .unwrap();
    let cfg = config(&one_rule(
        &source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let (s3, log) = stack.counted_s3();
    let mut replicator =
        Replicator::new(cfg, S3Clients::same_endpoint(s3), stack.sqs.clone(), None);
    replicator.multipart = MultipartSettings {
        copy_threshold: 8 * MIB,
        copy_part_size: 5 * MIB,
        concurrency: 3,
        ..MultipartSettings::default()
    };
    let outcome = replicator
        .run(&put_job(&source, "video/take 1.mp4", &dst))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Replicated {
            bytes: 12 * MIB,
            // The upload was created with the source's CRC32 as a full-object checksum.
            verified: Verified::Checksum("CRC32")
        }
    );

    let replica = object_state(&stack.s3, &dst, "video/take 1.mp4")
        .await
        .unwrap();
    assert_eq!(
        replica,
        object_state(&stack.s3, &source, "video/take 1.mp4")
            .await
            .unwrap()
    );
    assert_eq!(replica.storage_class, StorageClass::StandardIa.as_str());
    assert_eq!(
        part_count(&stack.s3, &dst, "video/take 1.mp4").await,
        3,
        "a real three-part object"
    );
    // HEAD of the replica (the completion is conditional on it: none, so
    // If-None-Match), HEAD of the source, tags, create, three part copies, HEAD (has
    // the source moved on?), complete, tags again (changed during the copy?), the key's
    // other uploads (now superseded), HEAD (verify), and a last HEAD of the source: a
    // copy that took long and made a new replica looks once after it landed.
    let methods: Vec<String> = log
        .take()
        .iter()
        .map(|r| {
            r.split('?')
                .next()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        methods,
        vec![
            "HEAD", "HEAD", "GET", "POST", "PUT", "PUT", "PUT", "HEAD", "POST", "GET", "GET",
            "HEAD", "HEAD"
        ]
    );
    let uploads = stack
        .s3
        .list_multipart_uploads()
        .bucket(&dst)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "no upload left behind");

    // A destination that refuses the upload leaves nothing behind either.
    let settings = replicator.multipart;
    let mut replicator = Replicator::new(
        config(&one_rule(
            &source,
            r#"{"Bucket": "no-such-bucket-for-parts", "Replicator": {"AclMode": "none"}}"#,
        )),
        S3Clients::same_endpoint(stack.s3.clone()),
        stack.sqs.clone(),
        None,
    );
    replicator.multipart = settings;
    let err = replicator
        .run(&put_job(
            &source,
            "video/take 1.mp4",
            "no-such-bucket-for-parts",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.reason.as_str(), "DstBucketNotFound");
}

/// A large object at another provider: ranged GETs pinned to the source's ETag, each
/// uploaded as a part; the result is one whole multipart object, nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_streams_to_another_provider_in_parts() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let source = stack.bucket("big").await;
    let dst = other.bucket("offsite").await;
    let body: Vec<u8> = (0..(11 * 1024 * 1024 + 17u32))
        .map(|i| (i % 241) as u8)
        .collect();
    stack
        .s3
        .put_object()
        .bucket(&source)
        .key("archive/2024.tar")
        .body(ByteStream::from(body))
        .content_type("application/x-tar")
        .metadata("origin", "main")
        .tagging("retention=long")
        .send()
        .await
        .unwrap();
    let mut replicator = replicator_to_other(&stack, &source, &other, &dst).await;
    replicator.multipart = MultipartSettings {
        stream_threshold: 8 * MIB,
        stream_part_size: 64 * MIB,
        concurrency: 2,
        ..MultipartSettings::default()
    };
    let outcome = replicator
        .run(&put_job(&source, "archive/2024.tar", &dst))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Replicated {
            bytes: 11 * MIB + 17,
            verified: Verified::Checksum("CRC32")
        }
    );
    let replica = object_state(&other.s3, &dst, "archive/2024.tar")
        .await
        .expect("arrived at the other provider");
    assert_eq!(
        replica,
        object_state(&stack.s3, &source, "archive/2024.tar")
            .await
            .unwrap()
    );
    // The destination's PartSize (5 MiB) wins over the default: three parts.
    assert_eq!(
        part_count(&other.s3, &dst, "archive/2024.tar").await,
        3,
        "a real three-part object"
    );
    assert!(other
        .s3
        .list_multipart_uploads()
        .bucket(&dst)
        .send()
        .await
        .unwrap()
        .uploads()
        .is_empty());
}
