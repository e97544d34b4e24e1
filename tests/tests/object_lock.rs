//! Object Lock on SeaweedFS, which enforces it (bucket configurations, retention,
//! legal holds, a locked version's delete refused): every replica of a locked version
//! holds the source's mode, retain-until date and legal hold, on every copy path; a
//! destination without Object Lock is refused; a lock changed after the copy is found
//! by verify and repaired; a locked replica's delete is a stated outcome.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode};
use integration_tests::fault_proxy::{Answer, FaultProxy, Faults};
use integration_tests::*;
use replicator::config::Config;
use replicator::copy::lock::Lock;
use replicator::copy::multipart::{MultipartSettings, MIB};
use replicator::copy::Outcome;
use replicator::errors::FailureReason;
use replicator::operator::backfill::Scope;
use replicator::operator::drift::{DestinationReport, Drift, Progress};
use replicator::replicate::Replicator;

/// A bucket with Object Lock enabled (and so versioned).
async fn lock_bucket(stack: &Stack, prefix: &str) -> String {
    let name = unique(prefix);
    stack
        .s3
        .create_bucket()
        .bucket(&name)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("a bucket with Object Lock");
    name
}

/// A day from now, to the second (as servers keep it).
fn in_a_day() -> DateTime {
    let now = std::time::SystemTime::now() + Duration::from_secs(86_400);
    DateTime::from_secs(DateTime::from(now).secs())
}

/// The ways a version can be locked: a retention in either mode, with or without a
/// legal hold, or a legal hold alone.
fn locks() -> Vec<(&'static str, Option<ObjectLockMode>, bool)> {
    vec![
        ("compliance+hold", Some(ObjectLockMode::Compliance), true),
        ("governance", Some(ObjectLockMode::Governance), false),
        ("hold-only", None, true),
    ]
}

async fn put_locked(
    stack: &Stack,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    mode: Option<ObjectLockMode>,
    hold: bool,
) {
    let until = mode.as_ref().map(|_| in_a_day());
    stack
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .set_object_lock_mode(mode)
        .set_object_lock_retain_until_date(until)
        .set_object_lock_legal_hold_status(hold.then_some(ObjectLockLegalHoldStatus::On))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {}", replicator::errors::describe(&e)));
}

async fn lock_of(stack: &Stack, bucket: &str, key: &str) -> Lock {
    let head = stack
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {key}: {}", replicator::errors::describe(&e)));
    Lock::of(&head)
}

/// Small parts, so 6 MiB goes multipart.
fn small_parts() -> MultipartSettings {
    MultipartSettings {
        copy_threshold: 5 * MIB,
        copy_part_size: 5 * MIB,
        stream_threshold: 5 * MIB,
        stream_part_size: 5 * MIB,
        ..MultipartSettings::default()
    }
}

/// One rule from `source` to `dst` on the same server: server-side copies.
fn same_endpoint(stack: &Stack, source: &str, dst: &str) -> Replicator {
    let cfg = config(&one_rule(
        source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let mut r = Replicator::new(
        cfg,
        replicator::config::clients::S3Clients::same_endpoint(stack.s3.clone()),
        stack.sqs.clone(),
        None,
    );
    r.multipart = small_parts();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_copy_path_carries_the_sources_lock() {
    let stack = Stack::fast().await;
    let source = lock_bucket(&stack, "src").await;
    let mut keys = Vec::new();
    for (name, mode, hold) in locks() {
        for (size, body) in [
            ("small", b"a locked version".to_vec()),
            ("multipart", random_bytes(6 * MIB, 3)),
        ] {
            let key = format!("{name}/{size}");
            put_locked(&stack, &source, &key, body, mode.clone(), hold).await;
            keys.push(key);
        }
    }
    let same = lock_bucket(&stack, "dst").await;
    let other = lock_bucket(&stack, "far").await;
    let mut to_same = same_endpoint(&stack, &source, &same);
    to_same.multipart = small_parts();
    let mut to_other = replicator_to_other(&stack, &source, &stack, &other).await;
    to_other.multipart = small_parts();
    for (path, r, dst) in [
        ("CopyObject / UploadPartCopy", &to_same, &same),
        ("streamed PutObject / UploadPart", &to_other, &other),
    ] {
        for key in &keys {
            let outcome = r.run(&put_job(&source, key, dst)).await.unwrap();
            assert!(
                matches!(outcome, Outcome::Replicated { .. }),
                "{path} {key}: {outcome:?}"
            );
            let wanted = lock_of(&stack, &source, key).await;
            assert!(wanted.is_some(), "{key}: the source is locked");
            assert_eq!(lock_of(&stack, dst, key).await, wanted, "{path} {key}");
        }
        // Both sizes went their ways: the large ones in parts.
        assert!(
            part_count(&stack.s3, dst, "governance/multipart").await > 1,
            "{path}"
        );
    }

    // A copy paused out of time and finished by a later invocation: the upload was
    // created with the lock, which the completion keeps.
    let key = "compliance+hold/multipart";
    let resumed = lock_bucket(&stack, "resumed").await;
    let mut first = same_endpoint(&stack, &source, &resumed);
    // One part at a time: the first, then the deadline stops it.
    first.multipart.concurrency = 1;
    first.work_queue_url = Some(stack.queue("work").await.url);
    let job = put_job(&source, key, &resumed);
    let paused =
        replicator::copy::multipart::within(Some(std::time::Instant::now()), first.run(&job))
            .await
            .expect("paused");
    let Outcome::Paused(upload) = paused else {
        panic!("{paused:?}")
    };
    let mut continued = job.clone();
    continued.upload = Some(*upload);
    let outcome = same_endpoint(&stack, &source, &resumed)
        .run(&continued)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    assert_eq!(
        lock_of(&stack, &resumed, key).await,
        lock_of(&stack, &source, key).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_without_object_lock_is_refused_for_locked_versions_only() {
    let stack = Stack::fast().await;
    let source = lock_bucket(&stack, "src").await;
    put_locked(
        &stack,
        &source,
        "locked",
        b"kept".to_vec(),
        Some(ObjectLockMode::Governance),
        false,
    )
    .await;
    stack.put(&source, "plain", b"free").await;
    let plain = stack.bucket("plain").await;
    let r = same_endpoint(&stack, &source, &plain);

    // SeaweedFS would take the copy and drop its lock: the replicator refuses it.
    let err = r
        .run(&put_job(&source, "locked", &plain))
        .await
        .expect_err("refused");
    assert_eq!(err.reason, FailureReason::DstObjectLockNotEnabled);
    assert!(!err.is_retryable(), "parked, not retried for ever");
    assert!(err.detail.contains(&plain), "{}", err.detail);
    assert!(object_state(&stack.s3, &plain, "locked").await.is_none());

    // An unlocked version of the same source still replicates there.
    let outcome = r.run(&put_job(&source, "plain", &plain)).await.unwrap();
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
}

async fn verify(
    p: &Pipeline,
    cfg: &Arc<Config>,
    r: &Replicator,
    repair: bool,
) -> DestinationReport {
    let progress = Progress::default();
    let mut reports = Drift {
        config: cfg,
        ingest: &p.ingest(cfg),
        clients: &r.s3,
        progress: &progress,
    }
    .run(&Scope::default(), repair)
    .await
    .unwrap();
    assert_eq!(reports.len(), 1);
    reports.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_changed_after_the_copy_is_drift_that_repair_fixes() {
    let stack = Stack::fast().await;
    let p = Pipeline::unwired(&stack).await;
    let source = lock_bucket(&stack, "src").await;
    let dst = lock_bucket(&stack, "dst").await;
    for key in ["extended", "held", "released", "untouched"] {
        let hold = key == "released";
        put_locked(
            &stack,
            &source,
            key,
            key.as_bytes().to_vec(),
            Some(ObjectLockMode::Governance),
            hold,
        )
        .await;
    }
    let cfg = config(&one_rule(
        &source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let r = p.replicator(&cfg).await;
    for key in ["extended", "held", "released", "untouched"] {
        r.run(&put_job(&source, key, &dst)).await.unwrap();
    }
    let before = verify(&p, &cfg, &r, false).await;
    assert!(!before.drifts(), "{before:?}");
    assert_eq!(before.in_sync, 4);

    // After the copies: a retention extended, a legal hold placed, one lifted.
    let later = DateTime::from_secs(in_a_day().secs() + 86_400);
    stack
        .s3
        .put_object_retention()
        .bucket(&source)
        .key("extended")
        .retention(
            aws_sdk_s3::types::ObjectLockRetention::builder()
                .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Governance)
                .retain_until_date(later)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for (key, status) in [
        ("held", ObjectLockLegalHoldStatus::On),
        ("released", ObjectLockLegalHoldStatus::Off),
    ] {
        stack
            .s3
            .put_object_legal_hold()
            .bucket(&source)
            .key(key)
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .unwrap();
    }
    let drift = verify(&p, &cfg, &r, true).await;
    let mut keys: Vec<&str> = drift.locks.iter().map(|d| d.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["extended", "held", "released"], "{drift:?}");
    assert!(drift.locks[0]
        .why
        .as_deref()
        .unwrap()
        .contains("GOVERNANCE until"));
    assert_eq!(drift.in_sync, 1);
    assert_eq!(drift.repair_jobs, Some(3));

    // The repair jobs, run as the work queue's consumer would.
    let jobs = stack.drain(&p.work).await;
    assert_eq!(jobs.len(), 3);
    for body in &jobs {
        let job = replicator::queues::job::Job::parse(body).unwrap();
        assert_eq!(job.op, replicator::queues::job::Operation::Lock);
        let outcome = r.run(&job).await.unwrap();
        assert_eq!(outcome, Outcome::Updated, "{}", job.source.key);
    }
    for key in ["extended", "held", "released", "untouched"] {
        assert_eq!(
            lock_of(&stack, &dst, key).await,
            lock_of(&stack, &source, key).await,
            "{key}"
        );
    }
    let after = verify(&p, &cfg, &r, false).await;
    assert!(!after.drifts(), "{after:?}");
    assert_eq!(after.in_sync, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_replica_a_delete_cannot_remove_is_a_stated_outcome() {
    let stack = Stack::fast().await;
    let source = lock_bucket(&stack, "src").await;
    let dst = lock_bucket(&stack, "dst").await;
    put_locked(
        &stack,
        &source,
        "k",
        b"kept".to_vec(),
        Some(ObjectLockMode::Compliance),
        true,
    )
    .await;
    let r = same_endpoint(&stack, &source, &dst);
    r.run(&put_job(&source, "k", &dst)).await.unwrap();

    // On a versioned, locked destination a delete is a delete marker, as on S3: the
    // locked version stays, the key reads as deleted.
    stack.delete(&source, "k").await;
    let mut delete = put_job(&source, "k", &dst);
    delete.op = replicator::queues::job::Operation::Delete;
    delete.source.delete_marker = true;
    assert_eq!(r.run(&delete).await.unwrap(), Outcome::Deleted);
    assert!(object_state(&stack.s3, &dst, "k").await.is_none());
    let versions = stack
        .s3
        .list_object_versions()
        .bucket(&dst)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1, "the locked version stays");
    assert_eq!(versions.delete_markers().len(), 1);

    // A server that refuses to remove a locked replica (AccessDenied, as S3 answers a
    // locked version's delete): a stated skip, not a retry loop.
    let source = lock_bucket(&stack, "src").await;
    let dst = lock_bucket(&stack, "dst").await;
    put_locked(
        &stack,
        &source,
        "k",
        b"kept".to_vec(),
        Some(ObjectLockMode::Compliance),
        false,
    )
    .await;
    same_endpoint(&stack, &source, &dst)
        .run(&put_job(&source, "k", &dst))
        .await
        .unwrap();
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            answer: Some(Answer {
                matching: "delete /",
                status: "403 Forbidden",
                code: "AccessDenied",
                message: "Access Denied because object protected by object lock.",
                headers: "",
                times: 0,
            }),
            ..Faults::none()
        },
    )
    .await;
    let cfg = r.config.clone();
    let _ = cfg;
    let refused = Replicator::new(
        config(&one_rule(
            &source,
            &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
        )),
        replicator::config::clients::S3Clients::same_endpoint(stack.s3_through(&proxy.endpoint)),
        stack.sqs.clone(),
        None,
    );
    stack.delete(&source, "k").await;
    let mut delete = put_job(&source, "k", &dst);
    delete.op = replicator::queues::job::Operation::Delete;
    delete.source.delete_marker = true;
    let outcome = refused.run(&delete).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Skipped {
            reason: "ReplicaLocked"
        }
    );
    assert!(
        proxy
            .counts
            .answered
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert!(object_state(&stack.s3, &dst, "k").await.is_some());
}
