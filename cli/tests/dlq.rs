//! The operator's view of failures: a permanent failure is parked at once with its
//! reason, `dlq list` shows it without consuming it, and after the cause is fixed
//! `dlq redrive` replicates it.

mod common;

use common::{command, one_rule, run};
use integration_tests::{config, object_state, unique, Pipeline, Stack};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_destination_is_parked_listed_redriven_and_replicated() {
    let stack = Stack::main().await;
    let p = Pipeline::creations_only(&stack).await;
    let missing = unique("not-yet");
    let doc = one_rule(&p.source, &missing);
    let cfg = config(&doc);
    stack.put(&p.source, "report 1.csv", b"a,b\n1,2\n").await;
    stack.put(&p.source, "report 2.csv", b"a,b\n3,4\n").await;
    p.run_worker(&cfg).await;

    let cmd = || command(&stack, &p, &doc, &stack.endpoint);
    // Listed, with reason, key, destination and a single attempt (permanent: no retries).
    let out = run(cmd(), &["dlq", "list", "--output", "json"]);
    assert!(out.status.success());
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for entry in &listed {
        assert_eq!(entry["reason"], "DstBucketNotFound");
        assert_eq!(entry["attempts"], 1);
        assert_eq!(entry["op"], "put");
        assert_eq!(entry["destination"], missing.as_str());
        assert!(entry["key"].as_str().unwrap().starts_with("report "));
    }
    // Listing consumed nothing: a second listing, and the table form, see both.
    let table = run(cmd(), &["dlq", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("DstBucketNotFound"))
            .count(),
        2,
        "{text}"
    );
    assert!(String::from_utf8_lossy(&table.stderr).contains("2 failed message(s)"));
    let id = listed[0]["id"].as_str().unwrap();
    let shown = run(cmd(), &["dlq", "show", id]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        shown["message"]["last_error"]["reason"],
        "DstBucketNotFound"
    );
    assert!(!run(cmd(), &["dlq", "show", "no-such-id"]).status.success());

    // Redrive needs to be told what; purge needs a confirmation it cannot get here.
    assert!(!run(cmd(), &["dlq", "redrive"]).status.success());
    assert!(
        !run(cmd(), &["dlq", "purge", "--reason", "DstBucketNotFound"])
            .status
            .success()
    );
    let redrive_other = run(cmd(), &["dlq", "redrive", "--reason", "Throttled"]);
    assert!(String::from_utf8_lossy(&redrive_other.stdout).contains("redrove 0 job(s)"));

    // Fix the cause, redrive, and the worker replicates.
    stack
        .s3
        .create_bucket()
        .bucket(&missing)
        .send()
        .await
        .unwrap();
    let out = run(cmd(), &["dlq", "redrive", "--reason", "DstBucketNotFound"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("redrove 2 job(s)"));
    assert_eq!(stack.depth(&p.failed).await, 0);
    p.run_worker(&cfg).await;
    for key in ["report 1.csv", "report 2.csv"] {
        assert_eq!(
            object_state(&stack.s3, &missing, key)
                .await
                .expect("replicated after the redrive"),
            object_state(&stack.s3, &p.source, key).await.unwrap()
        );
    }
    assert_eq!(stack.depth(&p.failed).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_only_the_chosen_reason() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let doc = one_rule(&p.source, "some-destination");
    for body in ["not a job", "{\"v\": 1, \"op\": \"put\"}"] {
        stack
            .sqs
            .send_message()
            .queue_url(&p.work.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    p.run_worker(&config(&doc)).await;
    let cmd = || command(&stack, &p, &doc, &stack.endpoint);
    let listed: Vec<Value> =
        serde_json::from_slice(&run(cmd(), &["dlq", "list", "--output", "json"]).stdout).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|e| e["reason"] == "MalformedMessage" && e["kind"] == "unparsed-job"));
    // Not jobs: redrive leaves them, and says so.
    let out = run(cmd(), &["dlq", "redrive", "--all"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 message(s) are not jobs"));
    assert_eq!(
        run(cmd(), &["dlq", "purge", "--reason", "Throttled", "--yes"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(stack.depth(&p.failed).await, 2);
    let out = run(
        cmd(),
        &["dlq", "purge", "--reason", "MalformedMessage", "--yes"],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 2 message(s)"));
    assert_eq!(stack.depth(&p.failed).await, 0);
}

/// Parks `count` jobs in the failed queue as the retry function would.
async fn park_jobs(stack: &Stack, p: &Pipeline, count: usize) {
    for i in 0..count {
        park_job(stack, p, &format!("k{i:02}")).await;
    }
}

/// Parks one job as the retry function would; its message id and body.
async fn park_job(stack: &Stack, p: &Pipeline, key: &str) -> (String, String) {
    use replicator::errors::{FailureReason, ReplicationError};
    let mut job = integration_tests::put_job(&p.source, key, "some-destination");
    job.record_failure(&ReplicationError::new(FailureReason::Throttled, "injected"));
    let sent = stack
        .sqs
        .send_message()
        .queue_url(&p.failed.url)
        .message_body(job.to_body())
        .send()
        .await
        .unwrap();
    (sent.message_id().unwrap().to_string(), job.to_body())
}

/// The failed queue's own safety: a redrive that cannot run is refused before it hides
/// anything; `list` says what others hold; a redrive moves jobs batch by batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failed_queue_stays_visible_and_whole() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let doc = one_rule(&p.source, "some-destination");
    park_jobs(&stack, &p, 23).await;
    let cmd = || command(&stack, &p, &doc, &stack.endpoint);
    let listed = |out: std::process::Output| -> Vec<Value> {
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // No work queue to redrive to: refused at once, nothing hidden.
    let mut without_work = cmd();
    without_work.env_remove("WORK_QUEUE_URL");
    let out = run(without_work, &["dlq", "redrive", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WORK_QUEUE_URL"));
    assert_eq!(
        listed(run(cmd(), &["dlq", "list", "--output", "json"])).len(),
        23
    );

    // A message someone else holds is not listed, but counted.
    let held = stack
        .sqs
        .receive_message()
        .queue_url(&p.failed.url)
        .visibility_timeout(60)
        .send()
        .await
        .unwrap();
    assert_eq!(held.messages().len(), 1);
    let out = run(cmd(), &["dlq", "list", "--output", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(listed(out).len(), 22);
    assert!(stderr.contains("1 more held elsewhere"), "{stderr}");
    stack
        .sqs
        .change_message_visibility()
        .queue_url(&p.failed.url)
        .receipt_handle(held.messages()[0].receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();

    // All 23, in batches: each in exactly one queue.
    let out = run(cmd(), &["dlq", "redrive", "--all"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("redrove 23 job(s)"));
    assert_eq!(stack.depth(&p.failed).await, 0);
    let redriven = stack.drain(&p.work).await;
    assert_eq!(redriven.len(), 23);
    assert!(redriven
        .iter()
        .all(|b| replicator::queues::job::Job::parse(b).unwrap().attempts == 0));
}

/// Parked jobs outlive SQS's retention: `dlq archive` (what the retry function runs
/// daily) moves those parked at least FAILED_ARCHIVE_AFTER ago to the archive, and
/// list, show, redrive and purge read both places, acting once on a message kept in
/// both (a sweep stopped between writing the archive and deleting from the queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_jobs_outlive_the_queue_in_the_archive() {
    use aws_sdk_s3::primitives::ByteStream;
    use replicator::errors::{FailureReason, ReplicationError};
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let doc = one_rule(&p.source, "some-destination");
    let bucket = stack.bucket("archive").await;
    park_jobs(&stack, &p, 12).await;
    let malformed = ReplicationError::new(FailureReason::MalformedMessage, "not JSON");
    stack
        .send(
            &p.failed,
            &replicator::queues::parking::parked_raw("unparsed-job", "not a job", &malformed),
        )
        .await;
    let plain = || command(&stack, &p, &doc, &stack.endpoint);
    let cmd = |after: &str| {
        let mut c = plain();
        c.env("FAILED_ARCHIVE_URL", format!("s3://{bucket}/ops/failed"))
            .env("FAILED_ARCHIVE_AFTER", after);
        c
    };
    let archived_keys = || stack.keys(&bucket, "");

    // Without an archive named, `dlq archive` says what to set; a bad age is refused.
    let out = run(plain(), &["dlq", "archive"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAILED_ARCHIVE_URL"));
    let out = run(cmd("13d"), &["dlq", "archive"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAILED_ARCHIVE_AFTER"));
    assert_eq!(stack.depth(&p.failed).await, 13);

    // Nothing this young moves at the default age.
    let out = run(cmd("7d"), &["dlq", "archive"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("archived 0 job(s)") && text.contains("13 younger"),
        "{text}"
    );
    assert!(archived_keys().await.is_empty());

    // Old enough: each written to the archive, then gone from the queue.
    let out = run(cmd("0s"), &["dlq", "archive"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("archived 13 job(s)"));
    assert_eq!(stack.depth(&p.failed).await, 0);
    let keys = archived_keys().await;
    assert_eq!(keys.len(), 13, "{keys:?}");
    assert!(keys
        .iter()
        .all(|k| k.starts_with("ops/failed/") && k.ends_with(".json")));

    // A job in both places, as a sweep that stopped part-way leaves it.
    let (both, body) = park_job(&stack, &p, "both").await;
    stack
        .s3
        .put_object()
        .bucket(&bucket)
        .key(format!("ops/failed/{both}.json"))
        .body(ByteStream::from(body.into_bytes()))
        .send()
        .await
        .unwrap();

    // Listed from both places, each message once, saying where it is kept.
    let out = run(cmd("7d"), &["dlq", "list", "--output", "json"]);
    assert!(out.status.success());
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 14, "{listed:#?}");
    let stored = |id: &str| {
        listed.iter().find(|e| e["id"] == id).unwrap()["stored"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert_eq!(stored(&both), ["queue", "archive"]);
    let archived_only: Vec<&Value> = listed.iter().filter(|e| e["id"] != both.as_str()).collect();
    assert!(archived_only
        .iter()
        .all(|e| e["stored"] == serde_json::json!(["archive"])));
    assert!(archived_only.iter().all(|e| e["parked_at"].is_string()));
    assert_eq!(
        listed.iter().filter(|e| e["reason"] == "Throttled").count(),
        13
    );
    let id = archived_only[0]["id"].as_str().unwrap();
    let shown: Value =
        serde_json::from_slice(&run(cmd("7d"), &["dlq", "show", id]).stdout).unwrap();
    assert_eq!(shown["summary"]["stored"], serde_json::json!(["archive"]));
    assert!(shown["message"]["last_error"]["reason"].is_string());
    // Without the archive named, only the queue is read.
    let out = run(plain(), &["dlq", "list", "--output", "json"]);
    assert_eq!(
        serde_json::from_slice::<Vec<Value>>(&out.stdout)
            .unwrap()
            .len(),
        1
    );

    // Redrive sends each job once and removes it from every place it was kept.
    let out = run(cmd("7d"), &["dlq", "redrive", "--reason", "Throttled"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("redrove 13 job(s)"));
    let work = stack.drain(&p.work).await;
    assert_eq!(work.len(), 13);
    let mut keys: Vec<String> = work
        .iter()
        .map(|b| replicator::queues::job::Job::parse(b).unwrap().source.key)
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 13, "a job was sent twice: {keys:?}");
    assert_eq!(stack.depth(&p.failed).await, 0);
    assert_eq!(
        archived_keys().await.len(),
        1,
        "the unparsable message stays"
    );
    let out = run(
        cmd("7d"),
        &["dlq", "purge", "--reason", "MalformedMessage", "--yes"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 1 message(s)"));
    assert!(archived_keys().await.is_empty());
}

/// A sweep in a Lambda stops at its deadline and releases what it holds; the next
/// sweep carries on from where the queue stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_stops_at_its_deadline_and_the_next_one_finishes() {
    use replicator::queues::dlq::{Archive, Failed, FailedQueue};
    use std::time::{Duration, Instant};
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let bucket = stack.bucket("archive").await;
    park_jobs(&stack, &p, 25).await;
    let failed = Failed {
        queue: FailedQueue {
            sqs: stack.sqs.clone(),
            url: p.failed.url.clone(),
        },
        archive: Some(Archive {
            s3: stack.s3.clone(),
            settings: replicator::config::settings::ArchiveSettings::parse(
                &format!("s3://{bucket}/x/"),
                Some("0s"),
            )
            .unwrap(),
        }),
    };
    let swept = failed.sweep(Some(Instant::now())).await.unwrap();
    assert_eq!((swept.archived, swept.unfinished), (0, true));
    assert_eq!(stack.depth(&p.failed).await, 25, "nothing left held");
    let swept = failed
        .sweep(Some(Instant::now() + Duration::from_secs(600)))
        .await
        .unwrap();
    assert_eq!(
        (swept.archived, swept.kept, swept.unfinished),
        (25, 0, false)
    );
    assert_eq!(stack.depth(&p.failed).await, 0);
    let scanned = failed.scan().await.unwrap();
    assert_eq!(scanned.len(), 25);
    assert!(scanned.iter().all(|p| p.stored == ["archive"]));
}

/// `dlq show` takes enough of an id to name one message; `redrive --dry-run` lists
/// what would go and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_by_prefix_and_a_dry_run_redrive() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let doc = one_rule(&p.source, "some-destination");
    let mut ids = Vec::new();
    for key in ["a", "b", "c"] {
        ids.push(park_job(&stack, &p, key).await.0);
    }
    let cmd = || command(&stack, &p, &doc, &stack.endpoint);
    // The shortest prefix that names one message here.
    let prefix = (1..=ids[0].len())
        .map(|n| &ids[0][..n])
        .find(|pre| ids.iter().filter(|id| id.starts_with(pre)).count() == 1)
        .unwrap();
    let shown = run(cmd(), &["dlq", "show", prefix]);
    assert!(shown.status.success());
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["summary"]["id"], ids[0].as_str());
    let ambiguous = run(cmd(), &["dlq", "show", ""]);
    assert!(!ambiguous.status.success());
    assert!(String::from_utf8_lossy(&ambiguous.stderr).contains("3 messages start with"));

    let out = run(cmd(), &["dlq", "redrive", "--all", "--dry-run"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("would redrive 3 job(s)"));
    assert_eq!(stack.depth(&p.work).await, 0, "a dry run sends nothing");
    assert_eq!(
        stack.drain(&p.failed).await.len(),
        3,
        "and keeps everything"
    );
}

/// `dlq` narrowed by destination, source bucket and rule (all conditions hold), for
/// list, redrive and purge, with JSON answers; purge without a condition is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_commands_narrow_by_destination_bucket_and_rule() {
    use replicator::errors::{FailureReason, ReplicationError};
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let doc = one_rule(&p.source, "some-destination");
    // Six jobs: two destinations by two rules, and two from another bucket.
    for (i, (bucket, destination, rule)) in [
        (p.source.as_str(), "east", "r1"),
        (p.source.as_str(), "east", "r2"),
        (p.source.as_str(), "west", "r1"),
        (p.source.as_str(), "west", "r2"),
        ("elsewhere", "east", "r1"),
        ("elsewhere", "west", "r1"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut job = integration_tests::put_job(bucket, &format!("k{i}"), destination);
        job.rule_id = rule.into();
        job.record_failure(&ReplicationError::new(FailureReason::Throttled, "injected"));
        stack.send(&p.failed, &job.to_body()).await;
    }
    let cmd = || command(&stack, &p, &doc, &stack.endpoint);
    let keys = |args: &[&str]| -> Vec<String> {
        let out = run(cmd(), args);
        assert!(out.status.success());
        let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let mut keys: Vec<String> = listed
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_string())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&["dlq", "list", "--destination", "east", "--output", "json"]),
        ["k0", "k1", "k4"]
    );
    assert_eq!(
        keys(&["dlq", "list", "--bucket", "elsewhere", "--output", "json"]),
        ["k4", "k5"]
    );
    assert_eq!(
        keys(&[
            "dlq",
            "list",
            "--rule",
            "r1",
            "--destination",
            "west",
            "--output",
            "json"
        ]),
        ["k2", "k5"]
    );
    let out = run(
        cmd(),
        &[
            "dlq",
            "redrive",
            "--rule",
            "r2",
            "--dry-run",
            "--output",
            "json",
        ],
    );
    let dry: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dry["would_redrive"].as_array().unwrap().len(), 2);
    let out = run(
        cmd(),
        &["dlq", "redrive", "--rule", "r2", "--output", "json"],
    );
    let redriven: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(redriven["redriven"], 2);
    assert_eq!(stack.depth(&p.work).await, 2);

    let out = run(cmd(), &["dlq", "purge", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("say which messages"));
    let out = run(
        cmd(),
        &[
            "dlq",
            "purge",
            "--bucket",
            "elsewhere",
            "--yes",
            "--output",
            "json",
        ],
    );
    let purged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(purged["deleted"], 2);
    assert_eq!(keys(&["dlq", "list", "--output", "json"]), ["k0", "k2"]);
}

/// `status`: each queue's backlog, the parked jobs by reason and destination, and the
/// newest backfill's progress, on one screen or as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_backlogs_parked_jobs_and_backfills() {
    use replicator::errors::{FailureReason, ReplicationError};
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let records = stack.bucket("records").await;
    let doc = one_rule(&p.source, &dst);
    integration_tests::put_many(&stack, &p.source, "s/", 12).await;
    let cmd = || {
        let mut cmd = command(&stack, &p, &doc, &stack.endpoint);
        cmd.env("BACKFILL_REPORT_URL", format!("s3://{records}/bf/"));
        cmd
    };
    assert!(run(cmd(), &["backfill"]).status.success());
    assert!(run(cmd(), &["run", "--exit-when-idle", "2s"])
        .status
        .success());
    for (reason, destination) in [
        (FailureReason::DstBucketNotFound, "gone"),
        (FailureReason::DstBucketNotFound, "gone"),
        (FailureReason::Throttled, "busy"),
    ] {
        let mut job = integration_tests::put_job(&p.source, "k", destination);
        job.record_failure(&ReplicationError::new(reason, "injected"));
        stack.send(&p.failed, &job.to_body()).await;
    }
    for _ in 0..3 {
        stack.send(&p.work, "waiting").await;
    }
    let out = run(cmd(), &["status", "--output", "json"]);
    assert!(out.status.success());
    let screen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let queue = |variable: &str| {
        screen["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["variable"] == variable)
            .cloned()
            .unwrap()
    };
    assert_eq!(queue("WORK_QUEUE_URL")["visible"], 3);
    assert_eq!(
        queue("FAILED_QUEUE_URL")["visible"],
        3,
        "status holds nothing back"
    );
    assert_eq!(screen["parked"]["total"], 3);
    assert_eq!(screen["parked"]["by_reason"]["DstBucketNotFound"], 2);
    assert_eq!(screen["parked"]["by_destination"]["busy"], 1);
    let backfill = &screen["backfills"][0];
    assert_eq!(
        (
            backfill["complete"].as_bool(),
            backfill["replicated"].as_u64()
        ),
        (Some(true), Some(12)),
        "{backfill}"
    );
    let table = run(cmd(), &["status"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("parked jobs: 3") && text.contains("complete"),
        "{text}"
    );
}
