//! Exact ordering: every write and delete of a replica is conditional on the replica
//! state that justified it, so a write that loses a race is a 412 to look at again,
//! never a stale replica. Proven on SeaweedFS, which checks conditional writes the way
//! S3 does, with the races no timing window covers: a write held back (by a proxy)
//! for less than the old one-second recheck, in another process's replicator (no shared
//! memory). Each of these left a stale or missing replica before conditional writes.
//!
//! The same races against moto, which ignores CopyObject's conditions, are ordered by
//! the fallback (a copy that lands late looks at the source again): they pass there
//! with the hold above the fallback's window, and say they ran in fallback.
//!
//! Events are built as AWS sends them (sequencers, version ids, who made the change):
//! neither server sends its own.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use integration_tests::fault_proxy::{FaultProxy, Faults};
use integration_tests::history::{made_now, notification, record};
use integration_tests::{config, object_without_tags, provenance, sha256_hex, Stack};
use replicator::config::clients::S3Clients;
use replicator::config::Config;
use replicator::copy::conditions::WriteKind;
use replicator::copy::multipart::{MultipartSettings, MIB};
use replicator::copy::Outcome;
use replicator::events;
use replicator::ingest::Ingest;
use replicator::queues::job::Job;
use replicator::replicate::Replicator;

/// One rule from `source` to `destination`, replicating deletes, no ACLs.
fn one_way(source: &str, destination: &str) -> Arc<Config> {
    config(&format!(
        r#"{{"Sources": [{}]}}"#,
        rule_from(source, destination)
    ))
}

fn rule_from(source: &str, destination: &str) -> String {
    format!(
        r#"{{"Bucket": "{source}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "r", "Priority": 1, "Status": "Enabled", "Filter": {{}},
              "DeleteMarkerReplication": {{"Status": "Enabled"}},
              "Destination": {{"Bucket": "{destination}", "Replicator": {{"AclMode": "none"}}}}}}]}}}}"#
    )
}

fn replicator(stack: &Stack, cfg: &Arc<Config>, s3: aws_sdk_s3::Client) -> Replicator {
    Replicator::new(
        cfg.clone(),
        S3Clients::same_endpoint(s3),
        stack.sqs.clone(),
        None,
    )
}

/// The jobs ingest makes of one AWS-shaped record.
async fn jobs(stack: &Stack, cfg: &Arc<Config>, record: serde_json::Value) -> Vec<Job> {
    let ingest = Ingest {
        config: cfg.clone(),
        s3: stack.s3.clone(),
        sqs: stack.sqs.clone(),
        work_queue_url: String::new(),
        failed_queue_url: None,
        signer: replicator::config::keys::Signer::unsigned(),
    };
    let decoded = events::decode_text(&notification(&[made_now(record)])).expect("decodes");
    let mut out = Vec::new();
    for event in &decoded.events {
        out.extend(ingest.jobs_for(event).await.expect("jobs"));
    }
    out
}

/// Puts `body` and returns the record S3 would send for it, with this sequencer.
async fn put(
    stack: &Stack,
    bucket: &str,
    key: &str,
    body: &[u8],
    sequencer: &str,
) -> serde_json::Value {
    let out = stack
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .expect("put");
    record(
        "ObjectCreated:Put",
        bucket,
        key,
        Some(body.len() as u64),
        out.e_tag(),
        out.version_id(),
        sequencer,
    )
}

async fn only_job(stack: &Stack, cfg: &Arc<Config>, record: serde_json::Value) -> Job {
    let mut jobs = jobs(stack, cfg, record).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    jobs.remove(0)
}

/// What a bucket holds under `key`: the SHA-256 of its bytes, or nothing.
async fn held(stack: &Stack, bucket: &str, key: &str) -> Option<String> {
    object_without_tags(&stack.s3, bucket, key)
        .await
        .map(|o| o.sha256)
}

/// Which server a test runs on: SeaweedFS (conditions checked) or moto (CopyObject's
/// ignored: the fallback), and how long a held write waits. On SeaweedFS the hold is
/// shorter than the fallback's one-second window, which it would not see.
struct Server {
    stack: Stack,
    hold: Duration,
    exact: bool,
}

async fn servers() -> Vec<Server> {
    vec![
        Server {
            stack: Stack::fast().await,
            hold: Duration::from_millis(700),
            exact: true,
        },
        Server {
            stack: Stack::main().await,
            hold: Duration::from_millis(1500),
            exact: false,
        },
    ]
}

/// Says how the copies to `destination` were ordered, and checks it is what the server
/// does: exactly (conditions checked) on SeaweedFS, by the fallback on moto.
fn ordered_as_expected(r: &Replicator, cfg: &Config, server: &Server) {
    let destination = &cfg.sources[0].rules[0].destination;
    let copies = r.conditions(destination).describe(WriteKind::Copy);
    eprintln!(
        "{}: copies to {} ordered {}",
        server.stack.endpoint,
        destination.bucket,
        if copies == "ignored" {
            "by the fallback (the server ignores CopyObject's conditions)"
        } else {
            "exactly (conditional writes)"
        }
    );
    assert_eq!(copies, if server.exact { "enforced" } else { "ignored" });
}

/// (1) A versioned source: v1's copy is held (in one replicator) until v2's job has
/// copied v2 (in another). v1's copy, pinned to v1's version, was once written over v2
/// and stayed: the replica one version behind its source for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_copy_of_an_old_version_never_lands_over_the_new_one() {
    for server in servers().await {
        let stack = &server.stack;
        let source = stack.bucket("src").await;
        stack.enable_versioning(&source).await;
        let dst = stack.bucket("dst").await;
        let cfg = one_way(&source, &dst);
        let proxy = FaultProxy::start(
            &stack.endpoint,
            Faults {
                delay: 1.0,
                delay_for: server.hold,
                delay_only: Some("x-amz-copy-source"),
                ..Faults::none()
            },
        )
        .await;
        let slow = Arc::new(replicator(stack, &cfg, stack.s3_through(&proxy.endpoint)));
        let other_process = replicator(stack, &cfg, stack.s3.clone());

        let v1 = put(stack, &source, "k", b"version one", "0010").await;
        let job1 = only_job(stack, &cfg, v1).await;
        let held_copy = {
            let (slow, job1) = (slow.clone(), job1.clone());
            tokio::spawn(async move { slow.run(&job1).await })
        };
        proxy.wait_for("x-amz-copy-source").await;
        let v2 = put(stack, &source, "k", b"version two, longer", "0020").await;
        let job2 = only_job(stack, &cfg, v2).await;
        let outcome = other_process.run(&job2).await.expect("v2 replicates");
        assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
        let held_outcome = held_copy.await.unwrap();
        eprintln!("the held copy of v1 ended: {held_outcome:?}");

        assert_eq!(
            held(stack, &dst, "k").await,
            Some(sha256_hex(b"version two, longer")),
            "{}: the replica holds v2",
            stack.endpoint
        );
        let p = provenance(&stack.s3, &dst, "k").await.expect("a replica");
        assert_eq!(p.version_id, job2.source.version_id);
        ordered_as_expected(&slow, &cfg, &server);
    }
}

/// (2) Two-way replication A <-> B with deletes both ways. The user deletes a key in A
/// and writes it again at once. The replicator's own delete of B's replica comes back
/// as a B event; it was once taken for a user's delete, removed A's new write, and
/// A's deletion then travelled to B: both buckets empty. A delete the replicator made
/// (the event says who made it) never travels back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_then_write_again_in_a_two_way_pair_keeps_the_new_write() {
    let stack = Stack::fast().await;
    for versioned in [false, true] {
        let (a, b) = (stack.bucket("two-a").await, stack.bucket("two-b").await);
        if versioned {
            stack.enable_versioning(&a).await;
            stack.enable_versioning(&b).await;
        }
        let cfg = config(&format!(
            r#"{{"Sources": [{}, {}]}}"#,
            rule_from(&a, &b),
            rule_from(&b, &a)
        ));
        let mut r = replicator(&stack, &cfg, stack.s3.clone());
        r.own_principals = vec!["AROAREPLICATOR".into()];
        let ours = |mut rec: serde_json::Value| {
            rec["userIdentity"]["principalId"] =
                "AWS:AROAREPLICATOR:s3-replicator-replicate".into();
            rec
        };

        // The first write reaches B.
        let first = put(&stack, &a, "doc", b"first draft", "0010").await;
        r.run(&only_job(&stack, &cfg, first).await).await.unwrap();
        assert!(held(&stack, &b, "doc").await.is_some());

        // Deleted and written again at once; the delete's job runs a while later.
        let removed = if versioned {
            "ObjectRemoved:DeleteMarkerCreated"
        } else {
            "ObjectRemoved:Delete"
        };
        stack.delete(&a, "doc").await;
        let deleted = made_now(record(removed, &a, "doc", None, None, None, "0020"));
        let again = put(&stack, &a, "doc", b"second draft", "0030").await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        r.run(&only_job(&stack, &cfg, deleted).await).await.unwrap();

        // B's replica was deleted (and, A holding the key again, written again from it).
        // That delete is the replicator's: its event goes back to A and changes nothing.
        let echo = ours(record(removed, &b, "doc", None, None, None, "0100"));
        let outcome = r.run(&only_job(&stack, &cfg, echo).await).await.unwrap();
        assert_eq!(
            held(&stack, &a, "doc").await,
            Some(sha256_hex(b"second draft")),
            "{outcome:?}"
        );
        r.run(&only_job(&stack, &cfg, again).await).await.unwrap();
        for bucket in [&a, &b] {
            assert_eq!(
                held(&stack, bucket, "doc").await,
                Some(sha256_hex(b"second draft")),
                "versioned {versioned}: {bucket} holds the new write"
            );
        }

        // A user's own delete in B still travels to A, as a delete marker in either
        // bucket of a two-way pair does on S3.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        stack.delete(&b, "doc").await;
        let user = record(removed, &b, "doc", None, None, None, "0200");
        r.run(&only_job(&stack, &cfg, user).await).await.unwrap();
        assert_eq!(held(&stack, &a, "doc").await, None, "versioned {versioned}");
    }
}

/// (3) The check after a copy reads the replica (a source written in parts has no
/// comparable ETag or checksum). When another job's replica has replaced ours by then,
/// the check used to fail and delete whatever was there: the newer replica, leaving
/// the destination empty. What was read is another object: the job looks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_never_removes_a_replica_it_did_not_write() {
    for server in servers().await {
        let stack = &server.stack;
        let source = stack.bucket("src").await;
        let dst = stack.bucket("dst").await;
        let cfg = one_way(&source, &dst);
        let first = vec![7u8; 5 * MIB as usize];
        stack
            .put_in_parts(&source, "k", &[first.clone(), b"tail".to_vec()])
            .await;
        let head = stack
            .s3
            .head_object()
            .bucket(&source)
            .key("k")
            .send()
            .await
            .unwrap();
        let v1 = record(
            "ObjectCreated:CompleteMultipartUpload",
            &source,
            "k",
            head.content_length().map(|l| l as u64),
            head.e_tag(),
            None,
            "0010",
        );
        // The slow replicator's HEADs of the replica are held: the check's among them.
        let proxy = FaultProxy::start(
            &stack.endpoint,
            Faults {
                delay: 1.0,
                delay_for: server.hold,
                delay_only: Some(Box::leak(format!("head /{dst}/k").into_boxed_str())),
                ..Faults::none()
            },
        )
        .await;
        let slow = Arc::new(replicator(stack, &cfg, stack.s3_through(&proxy.endpoint)));
        let other_process = replicator(stack, &cfg, stack.s3.clone());
        let job1 = only_job(stack, &cfg, v1).await;
        let checking = {
            let (slow, job1) = (slow.clone(), job1.clone());
            tokio::spawn(async move { slow.run(&job1).await })
        };
        // Once the copy has landed, the check's HEAD is held: a newer version lands.
        wait_until(|| {
            proxy.count("x-amz-copy-source") >= 1 && proxy.count(&format!("head /{dst}/k")) >= 1
        })
        .await;
        wait_for_object(stack, &dst, "k").await;
        let v2 = put(stack, &source, "k", b"the newer version", "0020").await;
        other_process
            .run(&only_job(stack, &cfg, v2).await)
            .await
            .expect("v2 replicates");
        let checked = checking.await.unwrap();
        eprintln!("{}: the held check ended {checked:?}", stack.endpoint);
        assert_eq!(
            held(stack, &dst, "k").await,
            Some(sha256_hex(b"the newer version")),
            "{}: the newer replica stays",
            stack.endpoint
        );
    }
}

/// (4) A multipart copy paused at a deadline and resumed: its completion is held until
/// a newer version has been replicated (or the source deleted and that delete
/// replicated). The resumed copy once completed over it without looking again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_multipart_copy_never_lands_over_a_newer_replica_or_a_delete() {
    let stack = Stack::fast().await;
    for then in ["a newer version", "a delete"] {
        let source = stack.bucket("src").await;
        let dst = stack.bucket("dst").await;
        let cfg = one_way(&source, &dst);
        let work = stack.queue("work").await;
        let parts = MultipartSettings {
            copy_threshold: 8 * MIB,
            copy_part_size: 5 * MIB,
            concurrency: 1,
            ..MultipartSettings::default()
        };
        let data = integration_tests::random_bytes(12 * MIB + 1, 7);
        let v1 = put(&stack, &source, "big", &data, "0010").await;
        let job = only_job(&stack, &cfg, v1).await;

        // Invocation 1, out of time: one part, then the job is handed on.
        let mut first = replicator(&stack, &cfg, stack.s3.clone());
        first.multipart = parts;
        first.work_queue_url = Some(work.url.clone());
        let paused =
            replicator::copy::multipart::within(Some(std::time::Instant::now()), first.run(&job))
                .await
                .expect("paused");
        let Outcome::Paused(upload) = paused else {
            panic!("{paused:?}")
        };
        let mut resumed_job = job.clone();
        resumed_job.upload = Some(*upload);

        // Invocation 2 completes, but its CompleteMultipartUpload is held.
        let proxy = FaultProxy::start(
            &stack.endpoint,
            Faults {
                delay: 1.0,
                delay_for: Duration::from_millis(700),
                delay_only: Some("post && ?uploadid="),
                ..Faults::none()
            },
        )
        .await;
        let mut second = replicator(&stack, &cfg, stack.s3_through(&proxy.endpoint));
        second.multipart = parts;
        let second = Arc::new(second);
        let resuming = {
            let (second, resumed_job) = (second.clone(), resumed_job.clone());
            tokio::spawn(async move { second.run(&resumed_job).await })
        };
        proxy.wait_for("?uploadid=").await;
        wait_until(|| proxy.count("post /") >= 1).await;
        let other_process = replicator(&stack, &cfg, stack.s3.clone());
        let expected = if then == "a newer version" {
            let v2 = put(&stack, &source, "big", b"small and new", "0020").await;
            other_process
                .run(&only_job(&stack, &cfg, v2).await)
                .await
                .unwrap();
            Some(sha256_hex(b"small and new"))
        } else {
            stack.delete(&source, "big").await;
            let gone = record(
                "ObjectRemoved:Delete",
                &source,
                "big",
                None,
                None,
                None,
                "0020",
            );
            other_process
                .run(&only_job(&stack, &cfg, gone).await)
                .await
                .unwrap();
            None
        };
        let outcome = resuming.await.unwrap();
        eprintln!("then {then}: the resumed copy ended {outcome:?}");
        assert_eq!(held(&stack, &dst, "big").await, expected, "then {then}");
        let uploads = stack
            .s3
            .list_multipart_uploads()
            .bucket(&dst)
            .send()
            .await
            .unwrap();
        assert!(uploads.uploads().is_empty(), "then {then}: no upload left");
    }
}

/// (5) A version removed for good at the source, where writes go new keys first (the
/// first round skips the replica's HEAD and writes If-None-Match: *). The source held
/// nothing more, so nothing was written, and the round never read the replica it had
/// guessed away: the job ended "SourceDeleted" and the replica of the removed version
/// stayed. Found by the two-process randomized test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_removed_for_good_removes_its_replica_whatever_the_write_order() {
    let stack = Stack::fast().await;
    for order in ["new-keys-first", "adaptive", "replica-first"] {
        let source = stack.bucket("src").await;
        stack.enable_versioning(&source).await;
        let dst = stack.bucket("dst").await;
        let cfg = config(&format!(
            r#"{{"Sources": [{{"Bucket": "{source}", "ReplicationConfiguration": {{"Rules": [
                {{"ID": "r", "Priority": 1, "Status": "Enabled", "Filter": {{}},
                  "DeleteMarkerReplication": {{"Status": "Enabled"}},
                  "Destination": {{"Bucket": "{dst}", "Replicator": {{"AclMode": "none",
                    "DeleteMode": "all", "WriteOrder": "{order}"}}}}}}]}}}}]}}"#
        ));
        let r = replicator(&stack, &cfg, stack.s3.clone());
        let created = put(&stack, &source, "k", b"the only version", "0010").await;
        let version = created["s3"]["object"]["versionId"]
            .as_str()
            .expect("a version")
            .to_string();
        r.run(&only_job(&stack, &cfg, created).await).await.unwrap();
        assert!(held(&stack, &dst, "k").await.is_some(), "{order}");

        stack
            .s3
            .delete_object()
            .bucket(&source)
            .key("k")
            .version_id(&version)
            .send()
            .await
            .expect("the version removed");
        let removed = record(
            "ObjectRemoved:Delete",
            &source,
            "k",
            None,
            None,
            Some(&version),
            "0020",
        );
        let outcome = r.run(&only_job(&stack, &cfg, removed).await).await.unwrap();
        assert_eq!(outcome, Outcome::Deleted, "{order}");
        assert_eq!(
            held(&stack, &dst, "k").await,
            None,
            "{order}: the replica stays"
        );
    }
}

/// (6) A tag change whose write to the replica is held until a newer put of the key
/// has been copied with its own tags. Tags are written without a condition (S3 has
/// none for them): the held write used to land the older tags on the newer replica.
/// Found by the two-process randomized test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_tag_change_never_lands_older_tags_on_a_newer_replica() {
    let stack = Stack::fast().await;
    let source = stack.bucket("src").await;
    let dst = stack.bucket("dst").await;
    let cfg = one_way(&source, &dst);
    let tags = |bucket: String| {
        let s3 = stack.s3.clone();
        async move {
            let out = s3
                .get_object_tagging()
                .bucket(bucket)
                .key("k")
                .send()
                .await
                .expect("tags");
            out.tag_set()
                .iter()
                .map(|t| format!("{}={}", t.key(), t.value()))
                .collect::<Vec<_>>()
        }
    };
    let put_tagged = |body: &'static [u8], tagging: &'static str, sequencer: &'static str| {
        let (s3, source) = (stack.s3.clone(), source.clone());
        async move {
            let out = s3
                .put_object()
                .bucket(&source)
                .key("k")
                .tagging(tagging)
                .body(ByteStream::from_static(body))
                .send()
                .await
                .expect("put");
            record(
                "ObjectCreated:Put",
                &source,
                "k",
                Some(body.len() as u64),
                out.e_tag(),
                None,
                sequencer,
            )
        }
    };
    let r = replicator(&stack, &cfg, stack.s3.clone());
    let first = put_tagged(b"first", "v=old", "0010").await;
    r.run(&only_job(&stack, &cfg, first).await).await.unwrap();
    assert_eq!(tags(dst.clone()).await, ["v=old"]);

    // The tags change; their job's write to the replica is held.
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(
            aws_sdk_s3::types::Tag::builder()
                .key("v")
                .value("mid")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    stack
        .s3
        .put_object_tagging()
        .bucket(&source)
        .key("k")
        .tagging(tagging)
        .send()
        .await
        .unwrap();
    let changed = record("ObjectTagging:Put", &source, "k", None, None, None, "0020");
    let held_write = Box::leak(format!("put /{dst}/k?tagging").into_boxed_str());
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            delay: 1.0,
            delay_for: Duration::from_millis(800),
            delay_only: Some(held_write),
            ..Faults::none()
        },
    )
    .await;
    let slow = Arc::new(replicator(&stack, &cfg, stack.s3_through(&proxy.endpoint)));
    let tag_job = only_job(&stack, &cfg, changed).await;
    let held = {
        let (slow, tag_job) = (slow.clone(), tag_job.clone());
        tokio::spawn(async move { slow.run(&tag_job).await })
    };
    proxy.wait_for(held_write).await;

    // Meanwhile the key is written again, with its own tags, and copied with them.
    let again = put_tagged(b"second", "v=new", "0030").await;
    r.run(&only_job(&stack, &cfg, again).await).await.unwrap();
    let outcome = held.await.unwrap();
    eprintln!("the held tag change ended: {outcome:?}");
    assert_eq!(
        tags(dst.clone()).await,
        tags(source.clone()).await,
        "the replica keeps the newer put's tags"
    );
    assert_eq!(tags(dst).await, ["v=new"]);
}

async fn wait_until(done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "waited 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_object(stack: &Stack, bucket: &str, key: &str) {
    let started = std::time::Instant::now();
    while stack
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{key} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
