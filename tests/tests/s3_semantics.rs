//! What S3 replicates, and what it leaves alone, on the local stack: lifecycle
//! expirations, a slow copy of an old version, two-way replication across endpoints,
//! chains, encryption, archived objects, metadata near S3's 2 KB limit, composite
//! checksums. Each test fails without the behaviour it names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
use integration_tests::fault_proxy::{FaultProxy, Faults};
use integration_tests::{
    config, object_state, object_without_tags, one_rule, provenance, put_job, sqs_batch, Pipeline,
    Stack,
};
use replicator::config::clients::S3Clients;
use replicator::config::Config;
use replicator::copy::provenance::{metadata_size, USER_METADATA_LIMIT};
use replicator::copy::Outcome;
use replicator::queues::job::{Job, Operation};
use replicator::replicate::Replicator;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("a JSON notification")
}

fn skipped(reason: &'static str) -> Outcome {
    Outcome::Skipped { reason }
}

fn same_endpoint(stack: &Stack, cfg: &Arc<Config>) -> Replicator {
    Replicator::new(
        cfg.clone(),
        S3Clients::same_endpoint(stack.s3.clone()),
        stack.sqs.clone(),
        None,
    )
}

/// A same-endpoint destination without ACLs.
fn plain(dst: &str) -> String {
    format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#)
}

/// A lifecycle expiration at the source (as S3 notifies it, directly or through
/// EventBridge) makes no job: the replica stays. A user's delete of the same key does
/// remove it.
#[tokio::test]
async fn lifecycle_expirations_leave_the_replica() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&one_rule(&p.source, &plain(&dst)));
    stack
        .put(&p.source, "photos/2024/beach day+1.jpg", b"kept")
        .await;
    let replicator = same_endpoint(&stack, &cfg);
    let key = "photos/2024/beach day+1.jpg";
    replicator
        .run(&put_job(&p.source, key, &dst))
        .await
        .unwrap();
    stack.delete(&p.source, key).await;

    let ingest = p.ingest(&cfg);
    let ours = |text: &str| text.replace("amzn-s3-demo-bucket", &p.source);
    for fixture in [
        include_str!("../fixtures/events/s3-lifecycle-expiration.json"),
        include_str!("../fixtures/events/eventbridge-lifecycle-expiration.json"),
    ] {
        let summary = ingest
            .ingest(&json(&ours(fixture)))
            .await
            .expect("a lifecycle notification is no error");
        assert_eq!(summary.jobs, 0, "{summary:?}");
        assert!(summary.ignored > 0, "{summary:?}");
    }
    assert!(stack.drain(&p.work).await.is_empty());
    assert!(object_state(&stack.s3, &dst, key).await.is_some());

    // The user's own delete of the key is replicated.
    let user_delete = include_str!("../fixtures/events/eventbridge-deleted.json");
    let summary = ingest.ingest(&json(&ours(user_delete))).await.unwrap();
    assert_eq!(summary.jobs, 1);
    replicator
        .handle_batch(sqs_batch(&stack.drain(&p.work).await))
        .await;
    assert!(object_state(&stack.s3, &dst, key).await.is_none());
}

/// A copy of v1 that stalls (here: the proxy holds the CopyObject for 3 s) lands after
/// v2's job replicated v2. The late copy looks at the source again and converges on
/// v2 without waiting for another event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_copy_of_an_old_version_never_leaves_the_replica_older() {
    let stack = Stack::main().await;
    let source = stack.bucket("src").await;
    stack.enable_versioning(&source).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&one_rule(&source, &plain(&dst)));
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            delay: 1.0,
            delay_for: Duration::from_secs(3),
            delay_only: Some("x-amz-copy-source"),
            ..Faults::none()
        },
    )
    .await;
    let slow_client = stack.s3_through(&proxy.endpoint);
    let slow = Replicator::new(
        cfg.clone(),
        S3Clients::same_endpoint(slow_client),
        stack.sqs.clone(),
        None,
    );
    let fast = same_endpoint(&stack, &cfg);

    stack.put(&source, "k", b"version one").await;
    let job = put_job(&source, "k", &dst);
    let first = {
        let job = job.clone();
        tokio::spawn(async move { slow.run(&job).await })
    };
    // v1's job has read the source and its copy is held; v2 is written and replicated.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stack.put(&source, "k", b"version two").await;
    let v2 = stack
        .s3
        .head_object()
        .bucket(&source)
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(matches!(
        fast.run(&job).await.unwrap(),
        Outcome::Replicated { .. }
    ));
    let outcome = first.await.unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    assert!(
        proxy
            .counts
            .delayed
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );

    let replica = object_state(&stack.s3, &dst, "k").await.unwrap();
    assert_eq!(
        replica,
        object_state(&stack.s3, &source, "k").await.unwrap(),
        "the replica holds the older version"
    );
    assert_eq!(
        provenance(&stack.s3, &dst, "k")
            .await
            .unwrap()
            .version_id
            .as_deref(),
        v2.version_id()
    );

    // Inside one process an overlap is caught however short: one replicator runs both
    // jobs, only v3's copy is held, and the time threshold is out of reach.
    let v3 = stack
        .s3
        .put_object()
        .bucket(&source)
        .key("k")
        .body(ByteStream::from_static(b"version three"))
        .send()
        .await
        .unwrap();
    let v3_id: &'static str = Box::leak(v3.version_id().unwrap().to_string().into_boxed_str());
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            delay: 1.0,
            delay_for: Duration::from_secs(2),
            delay_only: Some(v3_id),
            ..Faults::none()
        },
    )
    .await;
    let client = stack.s3_through(&proxy.endpoint);
    let mut one = Replicator::new(
        cfg,
        S3Clients::same_endpoint(client),
        stack.sqs.clone(),
        None,
    );
    one.recheck_after = Duration::from_secs(3600);
    let one = Arc::new(one);
    let first = {
        let (one, job) = (one.clone(), job.clone());
        tokio::spawn(async move { one.run(&job).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.put(&source, "k", b"version four").await;
    assert!(matches!(
        one.run(&job).await.unwrap(),
        Outcome::Replicated { .. }
    ));
    assert!(matches!(
        first.await.unwrap().unwrap(),
        Outcome::Replicated { .. }
    ));
    assert!(
        proxy
            .counts
            .delayed
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    );
    assert_eq!(
        object_state(&stack.s3, &dst, "k").await.unwrap(),
        object_state(&stack.s3, &source, "k").await.unwrap(),
        "the overlapping copy left the older version"
    );
}

/// A with B at "another provider" (the second server), each replicating to the other
/// from its own deployment (two documents, as two stacks would have): the replica of
/// A's object in B is not copied back to A, nor a tag change on it synced back, so
/// nothing echoes. With `ReplicaModifications` on B's rule, tag changes do go back.
#[tokio::test]
async fn two_way_replication_across_endpoints_stops_the_echo() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let a = stack.bucket("peer-a").await;
    let b = other.bucket("peer-b").await;
    let to = |bucket: &str, at: &Stack, extra: &str| {
        format!(
            r#"{{"Bucket": "{bucket}", "Replicator": {{"EndpointUrl": "{}", "ForcePathStyle": true, "AclMode": "none",
                "Credentials": {{"DefaultChain": true}}}}}}{extra}"#,
            at.endpoint
        )
    };
    let a_to_b = config(&one_rule(&a, &to(&b, &other, "")));
    let b_to_a = config(&one_rule(&b, &to(&a, &stack, "")));
    let deployment = |at: &Stack, cfg: &Arc<Config>| {
        let (at, cfg) = (at.clone(), cfg.clone());
        async move {
            let clients = S3Clients::build(&at.sdk, at.s3.clone(), &cfg, None)
                .await
                .expect("clients");
            Replicator::new(cfg, clients, at.sqs.clone(), None)
        }
    };
    let x = deployment(&stack, &a_to_b).await;
    let y = deployment(&other, &b_to_a).await;

    stack.put(&a, "doc", b"written in A").await;
    let original = object_state(&stack.s3, &a, "doc").await.unwrap();
    assert!(matches!(
        x.run(&put_job(&a, "doc", &b)).await.unwrap(),
        Outcome::Replicated { .. }
    ));
    assert_eq!(
        provenance(&other.s3, &b, "doc")
            .await
            .unwrap()
            .source_bucket,
        a
    );
    // B's event for the replica: it is A's own object, not sent back.
    assert_eq!(
        y.run(&put_job(&b, "doc", &a)).await.unwrap(),
        skipped("ReplicaOfDestination")
    );
    assert!(provenance(&stack.s3, &a, "doc").await.is_none());
    assert_eq!(object_state(&stack.s3, &a, "doc").await.unwrap(), original);

    // A tag change in A reaches B; B's tagging event for its replica goes no further.
    let op = |bucket: &str, dst: &str, op: Operation| {
        let mut job = put_job(bucket, "doc", dst);
        job.op = op;
        job
    };
    stack.set_tag(&a, "doc", ("stage", "final")).await;
    assert_eq!(
        x.run(&op(&a, &b, Operation::Tags)).await.unwrap(),
        Outcome::Updated
    );
    assert_eq!(
        y.run(&op(&b, &a, Operation::Tags)).await.unwrap(),
        skipped("ReplicaModificationNotSynced")
    );
    // ...and so does an edit of the replica's tags made in B, without ReplicaModifications.
    other.set_tag(&b, "doc", ("stage", "edited-in-b")).await;
    assert_eq!(
        y.run(&op(&b, &a, Operation::Tags)).await.unwrap(),
        skipped("ReplicaModificationNotSynced")
    );
    // With it, B's edit goes back to A once, and A's echo of it writes nothing.
    let syncing = |doc: String| {
        config(&doc.replace(
            r#""DeleteMarkerReplication""#,
            r#""SourceSelectionCriteria": {"ReplicaModifications": {"Status": "Enabled"}}, "DeleteMarkerReplication""#,
        ))
    };
    let synced = deployment(&other, &syncing(one_rule(&b, &to(&a, &stack, "")))).await;
    assert_eq!(
        synced.run(&op(&b, &a, Operation::Tags)).await.unwrap(),
        Outcome::Updated
    );
    let rm_x = deployment(&stack, &syncing(one_rule(&a, &to(&b, &other, "")))).await;
    assert_eq!(
        rm_x.run(&op(&a, &b, Operation::Tags)).await.unwrap(),
        skipped("TagsUnchanged")
    );
}

/// A -> B -> C on one endpoint: B's replica of A's object is not replicated on to C
/// (S3 never replicates replicas), B's own objects are; with `ReplicateReplicas` the
/// replica travels on, remembering A as its origin.
#[tokio::test]
async fn replicas_travel_down_a_chain_only_when_asked() {
    let stack = Stack::main().await;
    let a = stack.bucket("chain-a").await;
    let b = stack.bucket("chain-b").await;
    let c = stack.bucket("chain-c").await;
    let doc = |onward: &str| {
        let rule = |to: &str, extra: &str| {
            format!(
                r#"{{"ID": "r", "Priority": 1, "Status": "Enabled", "Filter": {{}},
                    "DeleteMarkerReplication": {{"Status": "Enabled"}},
                    "Destination": {{"Bucket": "{to}", "Replicator": {{"AclMode": "none"{extra}}}}}}}"#
            )
        };
        config(&format!(
            r#"{{"Sources": [
                {{"Bucket": "{a}", "ReplicationConfiguration": {{"Rules": [{}]}}}},
                {{"Bucket": "{b}", "ReplicationConfiguration": {{"Rules": [{}]}}}}]}}"#,
            rule(&b, ""),
            rule(&c, onward)
        ))
    };
    let replicator = same_endpoint(&stack, &doc(""));
    stack.put(&a, "from-a", b"a's").await;
    stack.put(&b, "from-b", b"b's").await;
    for (bucket, key, dst) in [(&a, "from-a", &b), (&b, "from-b", &c)] {
        assert!(matches!(
            replicator.run(&put_job(bucket, key, dst)).await.unwrap(),
            Outcome::Replicated { .. }
        ));
    }
    assert_eq!(
        replicator.run(&put_job(&b, "from-a", &c)).await.unwrap(),
        skipped("SourceIsReplica")
    );
    assert!(object_state(&stack.s3, &c, "from-a").await.is_none());

    let onward = same_endpoint(&stack, &doc(r#", "ReplicateReplicas": true"#));
    assert!(matches!(
        onward.run(&put_job(&b, "from-a", &c)).await.unwrap(),
        Outcome::Replicated { .. }
    ));
    let p = provenance(&stack.s3, &c, "from-a").await.unwrap();
    assert_eq!(
        (p.source_bucket.as_str(), p.origin_bucket()),
        (b.as_str(), a.as_str())
    );
}

/// SSE-KMS and DSSE-KMS objects replicate only under a rule that selects them, and
/// then with the rule's replica key; an SSE-S3 object's replica takes the
/// destination's default encryption.
#[tokio::test]
async fn encrypted_objects_replicate_as_the_rule_selects_and_never_weaker() {
    let stack = Stack::main().await;
    let source = stack.bucket("src").await;
    let dst = stack.bucket("dst").await;
    const KEY_ARN: &str =
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let put = |key: &'static str, sse: ServerSideEncryption| {
        let s3 = stack.s3.clone();
        let source = source.clone();
        async move {
            let request = s3
                .put_object()
                .bucket(source)
                .key(key)
                .body(ByteStream::from_static(b"secret"))
                .server_side_encryption(sse.clone());
            let request = match sse {
                ServerSideEncryption::Aes256 => request,
                _ => request.ssekms_key_id("arn:aws:kms:us-east-1:123456789012:key/source-key"),
            };
            request.send().await.unwrap();
        }
    };
    put("kms", ServerSideEncryption::AwsKms).await;
    put("dsse", ServerSideEncryption::AwsKmsDsse).await;
    put("sse-s3", ServerSideEncryption::Aes256).await;

    let unselected = same_endpoint(&stack, &config(&one_rule(&source, &plain(&dst))));
    for key in ["kms", "dsse"] {
        assert_eq!(
            unselected.run(&put_job(&source, key, &dst)).await.unwrap(),
            skipped("SseKmsNotSelected"),
            "{key}"
        );
        assert!(object_state(&stack.s3, &dst, key).await.is_none());
    }
    assert!(matches!(
        unselected
            .run(&put_job(&source, "sse-s3", &dst))
            .await
            .unwrap(),
        Outcome::Replicated { .. }
    ));
    let head = |key: &'static str| {
        let s3 = stack.s3.clone();
        let dst = dst.clone();
        async move { s3.head_object().bucket(dst).key(key).send().await.unwrap() }
    };
    // The replica takes the destination's default encryption (S3's: at least SSE-S3;
    // moto has none unless set), never an explicit AES256 that would override a
    // default key (tests/tests/real_accounts.rs).
    assert_ne!(
        head("sse-s3").await.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );

    let selecting = one_rule(
        &source,
        &format!(
            r#"{{"Bucket": "{dst}", "EncryptionConfiguration": {{"ReplicaKmsKeyID": "{KEY_ARN}"}},
                "Replicator": {{"AclMode": "none"}}}}"#
        ),
    )
    .replace(
        r#""DeleteMarkerReplication""#,
        r#""SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}}, "DeleteMarkerReplication""#,
    );
    let selected = same_endpoint(&stack, &config(&selecting));
    for (key, expected) in [
        ("kms", ServerSideEncryption::AwsKms),
        ("dsse", ServerSideEncryption::AwsKmsDsse),
    ] {
        let outcome = selected.run(&put_job(&source, key, &dst)).await.unwrap();
        assert!(
            matches!(outcome, Outcome::Replicated { .. }),
            "{key}: {outcome:?}"
        );
        let replica = head(key).await;
        assert_eq!(replica.server_side_encryption(), Some(&expected), "{key}");
        // moto 5.2.5 does not echo the key of a DSSE-KMS object.
        if expected == ServerSideEncryption::AwsKms {
            assert_eq!(replica.ssekms_key_id(), Some(KEY_ARN), "{key}");
        }
    }
}

/// Objects in GLACIER or DEEP_ARCHIVE are not replicated (S3 does not either): a
/// stated skip, nothing in the failed queue, no alarm.
#[tokio::test]
async fn archived_objects_are_skipped_not_parked() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&one_rule(&p.source, &plain(&dst)));
    for (key, class) in [
        ("cold", StorageClass::Glacier),
        ("colder", StorageClass::DeepArchive),
    ] {
        stack
            .s3
            .put_object()
            .bucket(&p.source)
            .key(key)
            .storage_class(class)
            .body(ByteStream::from_static(b"archived"))
            .send()
            .await
            .unwrap();
    }
    let replicator = p.replicator(&cfg).await;
    for key in ["cold", "colder"] {
        assert_eq!(
            replicator
                .run(&put_job(&p.source, key, &dst))
                .await
                .unwrap(),
            skipped("ObjectInArchive")
        );
    }
    let jobs: Vec<String> = ["cold", "colder"]
        .iter()
        .map(|k| put_job(&p.source, k, &dst).to_body())
        .collect();
    let response = replicator.handle_batch(sqs_batch(&jobs)).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(stack.drain(&p.failed).await.is_empty());
    assert!(stack.drain(&p.retry).await.is_empty());
    assert!(object_state(&stack.s3, &dst, "cold").await.is_none());
}

/// User metadata that is legal on S3 but near its 2 KB limit replicates whole
/// (including the user's own `s3r-` keys), and the replica stays within the limit,
/// with as much provenance as fits: the source bucket at 2,000 bytes, nothing at
/// 2,040. A replica that cannot be marked is still not copied back and forth between
/// two buckets that replicate to each other: an identical object ends the echo.
#[tokio::test]
async fn metadata_near_the_2_kb_limit_replicates_whole() {
    let stack = Stack::main().await;
    let a = stack.bucket("src").await;
    let b = stack.bucket("dst").await;
    let metadata = |total: usize| {
        let mut m: HashMap<String, String> = HashMap::new();
        m.insert("s3r-team".into(), "data-platform".into());
        m.insert("owner".into(), "ana".into());
        let used = metadata_size(&m);
        m.insert("notes".into(), "n".repeat(total - used - "notes".len()));
        assert_eq!(metadata_size(&m), total);
        m
    };
    let two_way = config(&format!(
        r#"{{"Sources": [
            {{"Bucket": "{a}", "ReplicationConfiguration": {{"Rules": [{{"ID": "r", "Priority": 1, "Status": "Enabled",
                "Filter": {{}}, "DeleteMarkerReplication": {{"Status": "Enabled"}}, "Destination": {}}}]}}}},
            {{"Bucket": "{b}", "ReplicationConfiguration": {{"Rules": [{{"ID": "r", "Priority": 1, "Status": "Enabled",
                "Filter": {{}}, "DeleteMarkerReplication": {{"Status": "Enabled"}}, "Destination": {}}}]}}}}]}}"#,
        plain(&b),
        plain(&a)
    ));
    let replicator = same_endpoint(&stack, &two_way);
    for (key, total, marked) in [("roomy", 2000, true), ("full", 2040, false)] {
        stack
            .s3
            .put_object()
            .bucket(&a)
            .key(key)
            .set_metadata(Some(metadata(total)))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
        let mut job = put_job(&a, key, &b);
        job.source.sequencer = Some("0055AED6DCD90281E5".into());
        assert!(matches!(
            replicator.run(&job).await.unwrap(),
            Outcome::Replicated { .. }
        ));
        let head = stack
            .s3
            .head_object()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .unwrap();
        let written = head.metadata().cloned().unwrap_or_default();
        assert!(
            metadata_size(&written) <= USER_METADATA_LIMIT,
            "{key}: the replica's metadata is {} bytes; S3 refuses more than {USER_METADATA_LIMIT}",
            metadata_size(&written)
        );
        for (k, v) in &metadata(total) {
            assert_eq!(written.get(k), Some(v), "{key}: {k}");
        }
        let p = replicator::copy::provenance::Provenance::read_unverified(Some(&written));
        assert_eq!(
            p.as_ref().map(|p| p.source_bucket.as_str()),
            marked.then_some(a.as_str()),
            "{key}"
        );
        assert!(p.is_none_or(|p| p.sequencer.is_none()), "{key}");

        // B's event for its copy: not copied back to A.
        let modified = || async {
            let head = stack.s3.head_object().bucket(&a).key(key).send().await;
            head.unwrap().last_modified().cloned()
        };
        let before = modified().await;
        let back = replicator.run(&put_job(&b, key, &a)).await.unwrap();
        assert!(matches!(back, Outcome::Skipped { .. }), "{key}: {back:?}");
        assert_eq!(before, modified().await, "{key}");
    }
}

/// An object uploaded in parts with CRC32 (what the AWS CLI and boto3 do above 8 MiB)
/// has a composite checksum; moto 5.2.5 reports it without S3's `-N` suffix or its
/// type. It replicates to another endpoint and verifies by what can be compared.
#[tokio::test]
async fn a_multipart_crc32_object_replicates_to_another_endpoint() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let source = stack.bucket("src").await;
    let dst = other.bucket("dst").await;
    let part: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    stack
        .put_in_parts(
            &source,
            "parts",
            &[part.clone(), part.clone(), part.clone()],
        )
        .await;
    let replicator = integration_tests::replicator_to_other(&stack, &source, &other, &dst).await;
    let outcome = replicator
        .run(&put_job(&source, "parts", &dst))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    assert_eq!(
        object_without_tags(&other.s3, &dst, "parts").await.unwrap(),
        object_without_tags(&stack.s3, &source, "parts")
            .await
            .unwrap()
    );
}

/// A rule in the older schema (a top-level Prefix, no Filter) replicates delete
/// markers, as S3 does for such rules.
#[tokio::test]
async fn an_older_schema_rule_replicates_deletes() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&format!(
        r#"{{"Sources": [{{"Bucket": "{}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "r", "Status": "Enabled", "Prefix": "", "Destination": {}}}]}}}}]}}"#,
        p.source,
        plain(&dst)
    ));
    stack.put(&p.source, "doc", b"x").await;
    let replicator = same_endpoint(&stack, &cfg);
    replicator
        .run(&put_job(&p.source, "doc", &dst))
        .await
        .unwrap();
    stack.delete(&p.source, "doc").await;
    let ingest = p.ingest(&cfg);
    let deleted = include_str!("../fixtures/events/eventbridge-deleted.json")
        .replace("amzn-s3-demo-bucket", &p.source)
        .replace("photos%2F2024%2Fbeach+day%2B1.jpg", "doc");
    assert_eq!(ingest.ingest(&json(&deleted)).await.unwrap().jobs, 1);
    let jobs = stack.drain(&p.work).await;
    let job = Job::parse(&jobs[0]).unwrap();
    assert_eq!(job.op, Operation::Delete);
    assert_eq!(replicator.run(&job).await.unwrap(), Outcome::Deleted);
    assert!(object_state(&stack.s3, &dst, "doc").await.is_none());
}
