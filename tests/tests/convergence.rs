//! Convergence under any event order: sequencers, delete modes, duplicates, two-way
//! replication and replica modification sync, against real buckets on the local stack.
//! The events are built as AWS sends them (with sequencers and version ids), because
//! moto's carry neither.

use std::collections::BTreeMap;

use futures::StreamExt;
use integration_tests::fault_proxy::{FaultProxy, Faults};
use integration_tests::history::{self, Sequencers};
use integration_tests::{config, object_state, provenance, sqs_batch, Pipeline, Stack};
use rand::rngs::StdRng;
use rand::SeedableRng;
use replicator::config::clients::S3Clients;
use replicator::config::Config;
use replicator::copy::Outcome;
use replicator::events;
use replicator::ingest::Ingest;
use replicator::queues::job::{Job, Operation};
use replicator::replicate::Replicator;
use std::sync::Arc;

/// One rule from `source` to `destination` with this delete mode.
fn rule(id: &str, priority: u32, destination: &str, delete_mode: &str, extra: &str) -> String {
    let dmr = if delete_mode == "none" {
        "Disabled"
    } else {
        "Enabled"
    };
    format!(
        r#"{{"ID": "{id}", "Priority": {priority}, "Status": "Enabled", "Filter": {{}}{extra},
            "DeleteMarkerReplication": {{"Status": "{dmr}"}},
            "Destination": {{"Bucket": "{destination}",
                            "Replicator": {{"AclMode": "none", "DeleteMode": "{delete_mode}"}}}}}}"#
    )
}

fn document(sources: &[(&str, Vec<String>)]) -> Arc<Config> {
    let sources: Vec<String> = sources
        .iter()
        .map(|(bucket, rules)| {
            format!(
                r#"{{"Bucket": "{bucket}", "ReplicationConfiguration": {{"Rules": [{}]}}}}"#,
                rules.join(",")
            )
        })
        .collect();
    config(&format!(r#"{{"Sources": [{}]}}"#, sources.join(",")))
}

async fn states(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[&str],
) -> BTreeMap<String, Option<integration_tests::ObjectState>> {
    let mut out = BTreeMap::new();
    for key in keys {
        out.insert(key.to_string(), object_state(s3, bucket, key).await);
    }
    out
}

/// The jobs ingest makes of one notification, without sending them.
async fn jobs(ingest: &Ingest, notification: &str) -> Vec<Job> {
    let decoded = events::decode_text(notification).expect("decodes");
    let mut out = Vec::new();
    for event in &decoded.events {
        out.extend(ingest.jobs_for(event).await.expect("jobs"));
    }
    out
}

fn skipped(reason: &'static str) -> Outcome {
    Outcome::Skipped { reason }
}

const KEYS: [&str; 3] = ["a b+c.txt", "dir/ü €.bin", "k"];

/// The randomized convergence test. For each seed: random puts, overwrites, metadata
/// and tag changes, deletes and (on versioned buckets) permanent version deletes on a
/// real source bucket; the events S3 would send for them, shuffled, one in four
/// delivered twice; two workers running at once, one of them (every third seed) with a
/// half of its copies held 1.5 s. When the queues drain, the destination must equal
/// the source key by key, field by field.
///
/// `S3R_SEED=N` replays one seed; `S3R_SEEDS=N` runs seeds 0..N (default 24).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_order_of_events_with_duplicates_and_two_workers_converges() {
    let stack = Stack::main().await;
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds: Vec<u64> = match env("S3R_SEED") {
        Some(seed) => vec![seed],
        None => (0..env("S3R_SEEDS").unwrap_or(24)).collect(),
    };
    let total = seeds.len();
    let failures: Vec<String> = futures::stream::iter(seeds)
        .map(|seed| one_history(&stack, seed))
        .buffer_unordered(4)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {total} histories diverged; replay one with S3R_SEED=N:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Runs one seed's history; describes the divergence, if any.
async fn one_history(stack: &Stack, seed: u64) -> Option<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let versioned = seed % 2 == 1;
    let p = Pipeline::unwired(stack).await;
    if versioned {
        stack.enable_versioning(&p.source).await;
    }
    let dst = stack.bucket("dst").await;
    let cfg = document(&[(&p.source, vec![rule("all", 1, &dst, "all", "")])]);
    let happened = history::generate(stack, &p.source, &KEYS, versioned, 18, &mut rng).await;
    let deliveries = history::deliveries(&happened, &mut rng);
    history::send_all(stack, &p.events.url, &deliveries).await;
    // Two workers on the same queues, each running its jobs concurrently. On every
    // third seed one of them reaches S3 through a proxy that holds half of its
    // copies for 1.5 s, so an old state's copy can land after a newer one's.
    if seed % 3 == 2 {
        let proxy = FaultProxy::start(
            &stack.endpoint,
            Faults {
                delay: 0.5,
                delay_for: std::time::Duration::from_millis(1500),
                delay_only: Some("x-amz-copy-source"),
                seed,
                ..Faults::none()
            },
        )
        .await;
        let delayed = stack.s3_through(&proxy.endpoint);
        tokio::join!(p.run_worker(&cfg), p.run_worker_on(&cfg, delayed));
    } else {
        tokio::join!(p.run_worker(&cfg), p.run_worker(&cfg));
    }

    let source = states(&stack.s3, &p.source, &KEYS).await;
    let replica = states(&stack.s3, &dst, &KEYS).await;
    let mut problems = history::differences(&source, &replica);
    let parked = stack.drain(&p.failed).await;
    if !parked.is_empty() {
        problems.push(format!("parked jobs: {parked:?}"));
    }
    problems.extend(one_job_at_a_time(stack, &p, &deliveries).await);
    if problems.is_empty() {
        return None;
    }
    Some(format!(
        "seed {seed} ({}): {}\nhistory:\n{}",
        if versioned {
            "versioned"
        } else {
            "unversioned"
        },
        problems.join("\n"),
        history::describe(&happened)
    ))
}

/// The same deliveries to a second destination, one job at a time, watching each job:
/// a job whose event is not newer than the event the replica was last written for
/// must not write to it (invariant 2; a replay must change nothing). Concurrency hides
/// this: a wrong delete followed by a restore still ends equal. Returns the
/// violations, and any difference at the end.
async fn one_job_at_a_time(stack: &Stack, p: &Pipeline, deliveries: &[String]) -> Vec<String> {
    let dst = stack.bucket("dst-seq").await;
    let cfg = document(&[(&p.source, vec![rule("all", 1, &dst, "all", "")])]);
    let ingest = p.ingest(&cfg);
    let (s3, log) = stack.counted_s3();
    let replicator = Replicator::new(cfg, S3Clients::same_endpoint(s3), stack.sqs.clone(), None);
    let mut problems = Vec::new();
    let mut made_from: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::new();
    for body in deliveries {
        queue.extend(jobs(&ingest, body).await);
    }
    while let Some(mut job) = queue.pop_front() {
        let key = job.source.key.clone();
        log.take();
        match replicator.run(&job).await {
            // As the pipeline would: back of the queue, a few times. (moto answers
            // DeleteObjectTagging of a missing key with a 500.)
            Err(e) if e.is_retryable() && job.attempts < 5 => {
                job.record_failure(&e);
                queue.push_back(job.clone());
            }
            Err(e) => problems.push(format!("{key:?}: {:?} job failed: {e}", job.op)),
            Ok(_) => {}
        }
        let writes: Vec<String> = log
            .take()
            .into_iter()
            .filter(|r| !r.starts_with("HEAD ") && !r.starts_with("GET "))
            .filter(|r| r.contains(&format!(" /{dst}/")))
            .filter(|r| !r.ends_with("?tagging") && !r.ends_with("?acl"))
            .collect();
        if writes.is_empty() {
            continue;
        }
        // The oracle's own record of the event each replica was last written for;
        // tag and ACL jobs that copy a missing replica whole say nothing of order.
        let event = job.source.sequencer.clone();
        let ordered = matches!(job.op, Operation::Put | Operation::Delete);
        let previous = made_from.insert(key.clone(), event.clone().filter(|_| ordered));
        if let (true, Some(Some(replica)), Some(event)) = (ordered, previous, event) {
            if not_older(&replica, &event) {
                problems.push(format!(
                    "{key:?}: the {:?} event {event} wrote to a replica made for {replica}: {writes:?}",
                    job.op
                ));
            }
        }
    }
    let source = states(&stack.s3, &p.source, &KEYS).await;
    let replica = states(&stack.s3, &dst, &KEYS).await;
    problems.extend(history::differences(&source, &replica));
    problems
}

/// The oracle's own reading of AWS's rule (right-pad with zeros, compare as strings),
/// independent of the library's, so a broken comparison there cannot hide here.
fn not_older(replica: &str, event: &str) -> bool {
    let width = replica.len().max(event.len());
    let pad = |s: &str| format!("{:0<width$}", s.to_ascii_uppercase());
    pad(replica) >= pad(event)
}

/// Each delete mode, on an unversioned and a versioned source: `none` keeps replicas;
/// `markers` removes a replica for a delete marker (or a plain delete) but not for a
/// version removed for good; `all` follows both, so after a permanent delete of the
/// current version the replica is the version that is current again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_delete_mode_on_versioned_and_unversioned_sources() {
    let stack = Stack::main().await;
    for versioned in [false, true] {
        let p = Pipeline::unwired(&stack).await;
        if versioned {
            stack.enable_versioning(&p.source).await;
        }
        let none = stack.bucket("none").await;
        let markers = stack.bucket("markers").await;
        let all = stack.bucket("all").await;
        let cfg = document(&[(
            &p.source,
            vec![
                rule("none", 1, &none, "none", ""),
                rule("markers", 2, &markers, "markers", ""),
                rule("all", 3, &all, "all", ""),
            ],
        )]);
        let mut rng = StdRng::seed_from_u64(7);
        let mut sequencers = Sequencers::default();
        let mut event = |name: &str, key: &str, etag: Option<&str>, version: Option<&str>| {
            history::record(
                name,
                &p.source,
                key,
                None,
                etag,
                version,
                &sequencers.next(&mut rng),
            )
        };
        let put = |key: &'static str, body: &'static [u8]| {
            stack
                .s3
                .put_object()
                .bucket(&p.source)
                .key(key)
                .body(body.to_vec().into())
                .send()
        };
        let gone = put("gone", b"bye").await.unwrap();
        let kept_v1 = put("kept", b"first").await.unwrap();
        let kept_v2 = put("kept", b"second").await.unwrap();
        let created = [
            event("ObjectCreated:Put", "gone", gone.e_tag(), gone.version_id()),
            event(
                "ObjectCreated:Put",
                "kept",
                kept_v1.e_tag(),
                kept_v1.version_id(),
            ),
            event(
                "ObjectCreated:Put",
                "kept",
                kept_v2.e_tag(),
                kept_v2.version_id(),
            ),
        ];
        // Creations are replicated first (a replica must exist for a delete to act).
        history::send_all(&stack, &p.events.url, &[history::notification(&created)]).await;
        p.run_worker(&cfg).await;
        let marker = stack.delete(&p.source, "gone").await;
        let marker_name = if versioned {
            "ObjectRemoved:DeleteMarkerCreated"
        } else {
            "ObjectRemoved:Delete"
        };
        let mut removals = vec![event(marker_name, "gone", None, marker.as_deref())];
        if versioned {
            // The current version removed for good: "first" is current again.
            let v2 = kept_v2.version_id().expect("versioned put has a version");
            stack
                .s3
                .delete_object()
                .bucket(&p.source)
                .key("kept")
                .version_id(v2)
                .send()
                .await
                .unwrap();
            removals.push(event("ObjectRemoved:Delete", "kept", None, Some(v2)));
        }
        history::send_all(&stack, &p.events.url, &[history::notification(&removals)]).await;
        p.run_worker(&cfg).await;

        let body = |bucket: String| {
            let s3 = stack.s3.clone();
            async move { object_state(&s3, &bucket, "kept").await.map(|s| s.sha256) }
        };
        let source_kept = body(p.source.clone()).await;
        let v2_sha = object_state(&stack.s3, &none, "kept").await.unwrap().sha256;
        let case = if versioned {
            "versioned"
        } else {
            "unversioned"
        };
        assert!(
            object_state(&stack.s3, &none, "gone").await.is_some(),
            "{case}: none keeps"
        );
        assert!(
            object_state(&stack.s3, &markers, "gone").await.is_none(),
            "{case}: markers deletes"
        );
        assert!(
            object_state(&stack.s3, &all, "gone").await.is_none(),
            "{case}: all deletes"
        );
        if versioned {
            assert_ne!(
                source_kept.as_ref(),
                Some(&v2_sha),
                "the source is back to \"first\""
            );
            assert_eq!(
                body(markers.clone()).await,
                Some(v2_sha.clone()),
                "markers ignores version deletes"
            );
            assert_eq!(
                body(all.clone()).await,
                source_kept,
                "all follows the source back to \"first\""
            );
            assert_eq!(
                provenance(&stack.s3, &all, "kept")
                    .await
                    .unwrap()
                    .version_id
                    .as_deref(),
                kept_v1.version_id(),
                "the replica records the version it copies"
            );
        } else {
            assert_eq!(body(all.clone()).await, source_kept);
        }
        assert!(
            stack.drain(&p.failed).await.is_empty(),
            "{case}: nothing parked"
        );
    }
}

/// A put, a delete and a put again, delivered out of order and twice: the stale
/// events change nothing, and a replayed job costs one HEAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_replayed_events_never_undo_a_newer_replica() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = document(&[(&p.source, vec![rule("all", 1, &dst, "markers", "")])]);
    let ingest = p.ingest(&cfg);
    let (s3, log) = stack.counted_s3();
    let replicator = Replicator::new(
        cfg.clone(),
        S3Clients::same_endpoint(s3),
        stack.sqs.clone(),
        None,
    );
    let mut rng = StdRng::seed_from_u64(3);
    let mut sequencers = Sequencers::default();
    let mut event = |name: &str, key: &str, etag: Option<&str>| {
        let record = history::record(
            name,
            &p.source,
            key,
            None,
            etag,
            None,
            &sequencers.next(&mut rng),
        );
        history::notification(&[record])
    };
    let put = |body: &'static [u8]| {
        stack
            .s3
            .put_object()
            .bucket(&p.source)
            .key("k")
            .body(body.to_vec().into())
            .send()
    };
    let first = put(b"first").await.unwrap();
    let e1 = event("ObjectCreated:Put", "k", first.e_tag());
    stack.delete(&p.source, "k").await;
    let e2 = event("ObjectRemoved:Delete", "k", None);
    let again = put(b"second").await.unwrap();
    let e3 = event("ObjectCreated:Put", "k", again.e_tag());
    let job = |n: &str| {
        let ingest = &ingest;
        let n = n.to_string();
        async move {
            let mut jobs = jobs(ingest, &n).await;
            assert_eq!(jobs.len(), 1);
            jobs.remove(0)
        }
    };
    let (j1, j2, j3) = (job(&e1).await, job(&e2).await, job(&e3).await);
    let run = |job: Job| {
        let replicator = &replicator;
        let log = &log;
        async move {
            let outcome = replicator.run(&job).await.unwrap();
            (outcome, log.take())
        }
    };

    // The first put's event, before anything: the source has moved on, and the newer
    // write's own event will copy it. Two HEADs, nothing written.
    let (outcome, requests) = run(j1.clone()).await;
    assert_eq!(outcome, skipped("Superseded"));
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(object_state(&stack.s3, &dst, "k").await.is_none());

    // The newest put: HEAD the replica (none), HEAD the source, copy.
    let (outcome, requests) = run(j3.clone()).await;
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    assert_eq!(requests.len(), 3, "{requests:?}");
    let replica = object_state(&stack.s3, &dst, "k").await.unwrap();
    assert_eq!(
        replica,
        object_state(&stack.s3, &p.source, "k").await.unwrap()
    );
    let recorded = provenance(&stack.s3, &dst, "k").await.unwrap();
    assert_eq!(recorded.source_bucket, p.source);
    assert_eq!(
        recorded.sequencer.as_deref(),
        j3.source.sequencer.as_deref()
    );

    // The delete between them is older than the replica: one HEAD, the replica stays.
    let (outcome, requests) = run(j2).await;
    assert_eq!(outcome, skipped("ReplicaNewer"));
    assert_eq!(requests, vec![format!("HEAD /{dst}/k")]);

    // Replays of either put: the replica's HEAD and the source's (sent together),
    // nothing written, nothing changes.
    let modified = |s3: aws_sdk_s3::Client, dst: String| async move {
        s3.head_object()
            .bucket(dst)
            .key("k")
            .send()
            .await
            .unwrap()
            .last_modified()
            .cloned()
    };
    let before = modified(stack.s3.clone(), dst.clone()).await;
    for replay in [j1, j3] {
        let (outcome, requests) = run(replay).await;
        assert_eq!(outcome, skipped("ReplicaUpToDate"));
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert!(
            requests.iter().all(|r| r.starts_with("HEAD ")),
            "{requests:?}"
        );
    }
    assert_eq!(modified(stack.s3.clone(), dst.clone()).await, before);
    assert_eq!(object_state(&stack.s3, &dst, "k").await.unwrap(), replica);

    // A put whose object is deleted before its job runs: a stated skip, nothing written.
    let gone = stack
        .s3
        .put_object()
        .bucket(&p.source)
        .key("gone")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let e4 = event("ObjectCreated:Put", "gone", gone.e_tag());
    stack.delete(&p.source, "gone").await;
    let (outcome, _) = run(job(&e4).await).await;
    assert_eq!(outcome, skipped("SourceDeleted"));
    assert!(object_state(&stack.s3, &dst, "gone").await.is_none());
}

/// Two buckets that replicate to each other, with real notifications from both to one
/// events queue: every original is copied once, the replicas' own events make no
/// jobs, and the count stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_replication_settles() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let a = p.source.clone();
    let b = stack.bucket("peer").await;
    let kinds = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"];
    stack.notify_only(&a, &p.events, &kinds).await;
    stack.notify_only(&b, &p.events, &kinds).await;
    let cfg = document(&[
        (&a, vec![rule("a-to-b", 1, &b, "markers", "")]),
        (&b, vec![rule("b-to-a", 1, &a, "markers", "")]),
    ]);
    let ingest = p.ingest(&cfg);
    let replicator = p.replicator(&cfg).await;
    // Ingest everything waiting, replicate the jobs; the job count of each round.
    let rounds = || async {
        let mut counts = Vec::new();
        for _ in 0..6 {
            let mut made = 0;
            for body in stack.drain(&p.events).await {
                made += jobs(&ingest, &body).await.len();
                ingest.handle_sqs(sqs_batch(&[body])).await;
            }
            let work = stack.drain(&p.work).await;
            assert_eq!(work.len(), made);
            replicator.handle_batch(sqs_batch(&work)).await;
            counts.push(made);
            if made == 0 {
                break;
            }
        }
        counts
    };
    rounds().await; // the notifications' s3:TestEvents

    for key in ["a1", "a2", "a3"] {
        stack.put(&a, key, key.as_bytes()).await;
    }
    for key in ["b1", "b2"] {
        stack.put(&b, key, key.as_bytes()).await;
    }
    // Five originals, five copies; the copies' events make no jobs.
    assert_eq!(rounds().await, vec![5, 0]);
    let keys = ["a1", "a2", "a3", "b1", "b2"];
    assert_eq!(
        states(&stack.s3, &a, &keys).await,
        states(&stack.s3, &b, &keys).await
    );
    assert_eq!(
        provenance(&stack.s3, &b, "a1").await.unwrap().source_bucket,
        a
    );
    assert_eq!(
        provenance(&stack.s3, &a, "b1").await.unwrap().source_bucket,
        b
    );

    // A user overwrites a replica at B: it goes to A once, and stops there.
    stack.put(&b, "a1", b"edited at b").await;
    assert_eq!(rounds().await, vec![1, 0]);
    assert_eq!(
        states(&stack.s3, &a, &keys).await,
        states(&stack.s3, &b, &keys).await
    );

    // A delete at A removes B's replica; B's delete event finds nothing to remove at A.
    stack.delete(&a, "a2").await;
    assert_eq!(rounds().await, vec![1, 1, 0]);
    assert!(object_state(&stack.s3, &b, "a2").await.is_none());
    assert_eq!(
        states(&stack.s3, &a, &keys).await,
        states(&stack.s3, &b, &keys).await
    );

    // A delete at B of an object first written at A (B holds its replica) reaches A,
    // as a delete marker placed in either bucket does on S3. Last-Modified has a
    // one-second grain: the delete comes more than a second after the write.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    stack.delete(&b, "a3").await;
    assert_eq!(rounds().await, vec![1, 1, 0]);
    assert!(object_state(&stack.s3, &a, "a3").await.is_none());
    assert!(object_state(&stack.s3, &b, "a3").await.is_none());

    // An object written at A after B's delete is someone's new write: it stays, and
    // goes to B.
    stack.put(&a, "late", b"first").await;
    assert_eq!(rounds().await, vec![1, 0]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    stack.delete(&b, "late").await;
    stack.put(&a, "late", b"written again at A").await;
    assert_eq!(rounds().await, vec![2, 0]);
    let keys = ["a1", "a2", "a3", "b1", "b2", "late"];
    assert_eq!(
        object_state(&stack.s3, &a, "late").await.unwrap().size,
        "written again at A".len()
    );
    assert_eq!(
        states(&stack.s3, &a, &keys).await,
        states(&stack.s3, &b, &keys).await
    );
    assert!(stack.drain(&p.failed).await.is_empty());
}

/// Tag and ACL changes update the replica without copying bytes (requests counted);
/// with ReplicaModifications on, an unchanged tag set writes nothing, so two-way tag
/// sync settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_and_acl_changes_sync_without_copying_bytes() {
    let stack = Stack::main().await;
    let source = stack.bucket("src").await;
    let dst = stack.bucket("dst").await;
    stack.put(&source, "doc", b"contents").await;
    let rm = r#", "SourceSelectionCriteria": {"ReplicaModifications": {"Status": "Enabled"}}"#;
    let cfg = document(&[(&source, vec![rule("r", 1, &dst, "none", rm)])]);
    let (s3, log) = stack.counted_s3();
    let replicator = Replicator::new(
        cfg.clone(),
        S3Clients::same_endpoint(s3),
        stack.sqs.clone(),
        None,
    );
    let job = |op: Operation| {
        let mut job: Job = serde_json::from_str(include_str!("../fixtures/jobs/put.json")).unwrap();
        job.source.bucket = source.clone();
        job.source.key = "doc".into();
        job.source.sequencer = None;
        job.source.version_id = None;
        job.source.etag = None;
        job.rule_id = "r".into();
        job.destination.bucket = dst.clone();
        job.op = op;
        job
    };
    replicator.run(&job(Operation::Put)).await.unwrap();
    log.take();

    stack.set_tag(&source, "doc", ("stage", "final")).await;
    let outcome = replicator.run(&job(Operation::Tags)).await.unwrap();
    assert_eq!(outcome, Outcome::Updated);
    let requests = log.take();
    // Source tags, replica tags (compared), replica tags written, source tags again (a
    // put that copied newer tags meanwhile would be overwritten): no HEAD, no copy.
    assert_eq!(requests.len(), 4, "{requests:?}");
    assert!(
        requests.iter().all(|r| r.ends_with("?tagging")),
        "{requests:?}"
    );
    let replica = object_state(&stack.s3, &dst, "doc").await.unwrap();
    assert_eq!(
        replica,
        object_state(&stack.s3, &source, "doc").await.unwrap()
    );
    // The same tags again (the other side's echo): read both, write nothing.
    assert_eq!(
        replicator.run(&job(Operation::Tags)).await.unwrap(),
        skipped("TagsUnchanged")
    );
    assert_eq!(log.take().len(), 2);

    // An ACL change with the owner-override mode: one PutObjectAcl, nothing else.
    let owner_override = rule("r", 1, &dst, "none", "")
        .replace(r#""AclMode": "none""#, r#""AclMode": "owner-override""#);
    let cfg = document(&[(&source, vec![owner_override])]);
    let (s3, log) = stack.counted_s3();
    let replicator = Replicator::new(cfg, S3Clients::same_endpoint(s3), stack.sqs.clone(), None);
    let outcome = replicator.run(&job(Operation::Acl)).await.unwrap();
    assert_eq!(outcome, Outcome::Updated);
    assert_eq!(log.take(), vec![format!("PUT /{dst}/doc?acl")]);
    assert_eq!(object_state(&stack.s3, &dst, "doc").await.unwrap(), replica);
}
