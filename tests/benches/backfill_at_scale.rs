//! `make bench`: a backfill at scale survives its workers being killed, and copies each
//! object once.
//!
//! 100,000 small objects (`S3R_BENCH_SCALE_OBJECTS`) in 100 folders on the fast stack
//! (SeaweedFS, fauxqs), backfilled by four `s3-replicator run` processes (the release
//! binary `S3R_CLI`) on the same queues; two of them are SIGKILLed mid-way (at a
//! quarter and at half of the objects replicated) and the other two finish. The
//! destination is versioned, so each write of a replica leaves a version behind:
//! the versions per key count the writes, by the server's own account. Then:
//! - every object replicated exactly once (one version per key; a control key written
//!   twice first shows that the count sees a second write);
//! - `backfill status` says complete, and the completion report lists each object once,
//!   none failed;
//! - `verify` exits 0.
//!
//! Panics on any of them (a failed `make bench`); prints the rate and the kills' times.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{endpoint_from, one_rule, Queue, Stack};

const FOLDERS: usize = 100;
const WORKERS: usize = 4;

struct Run {
    cli: String,
    stack: Stack,
    doc: String,
    report: String,
    work: Queue,
    failed: Queue,
}

impl Run {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.cli);
        cmd.args(args)
            .env("AWS_ENDPOINT_URL", &self.stack.endpoint)
            .env("AWS_ENDPOINT_URL_SQS", &self.stack.sqs_endpoint)
            .env("AWS_REGION", integration_tests::REGION)
            .env(
                "AWS_ACCESS_KEY_ID",
                endpoint_from("S3R_TEST_WEED_ACCESS_KEY"),
            )
            .env(
                "AWS_SECRET_ACCESS_KEY",
                endpoint_from("S3R_TEST_WEED_SECRET_KEY"),
            )
            .env("REPLICATOR_CONFIG", &self.doc)
            .env("WORK_QUEUE_URL", &self.work.url)
            .env("FAILED_QUEUE_URL", &self.failed.url)
            .env("BACKFILL_REPORT_URL", &self.report)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command to its end, killed (and the bench failed) past `within`.
    fn output(&self, args: &[&str]) -> std::process::Output {
        let within = Duration::from_secs(600);
        let mut child = Workers(vec![self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("S3R_CLI")]);
        let started = Instant::now();
        while child.0[0].try_wait().expect("wait").is_none() {
            assert!(
                started.elapsed() < within,
                "s3-replicator {} did not end within {within:?}",
                args.join(" ")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.0.remove(0).wait_with_output().expect("output");
        assert!(
            out.status.success(),
            "s3-replicator {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn worker(&self) -> Child {
        self.command(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("S3R_CLI")
    }
}

/// Processes killed (and reaped) when dropped: a failed assertion leaves none running.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Versions per key in `bucket`: the writes each key received.
async fn versions(stack: &Stack, bucket: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = stack
            .s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .expect("list versions");
        for v in page.versions() {
            *counts
                .entry(v.key().unwrap_or_default().to_string())
                .or_default() += 1;
        }
        for m in page.delete_markers() {
            *counts
                .entry(m.key().unwrap_or_default().to_string())
                .or_default() += 1;
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        let next = (
            page.next_key_marker().map(str::to_string),
            page.next_version_id_marker().map(str::to_string),
        );
        assert!(
            next.0.is_some() && next != (key_marker.clone(), version_marker.clone()),
            "a truncated listing that does not move on: {next:?}"
        );
        (key_marker, version_marker) = next;
    }
    counts
}

/// How much of the backfill is done, estimated from a fixed sample of keys: the share
/// of them with a replica (HEADs of the ones not seen yet, eight at once; counting the
/// destination would load the server being measured). Replicas only appear, so the
/// estimate only grows.
struct Progress {
    pending: Vec<String>,
    seen: usize,
}

impl Progress {
    fn new(keys: &[String], sample: usize) -> Progress {
        // Spread over the folders and over the positions within them: pages are copied
        // in parallel, each from its start, so a key's position says when it is copied.
        let mut pending: Vec<String> = (0..sample)
            .map(|i| keys[(i * 7919 + 13) % keys.len()].clone())
            .collect();
        pending.sort();
        pending.dedup();
        Progress { pending, seen: 0 }
    }

    async fn share(&mut self, stack: &Stack, bucket: &str) -> f64 {
        use futures::StreamExt;
        let found: Vec<bool> = futures::stream::iter(&self.pending)
            .map(|key| async move {
                stack
                    .s3
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .is_ok()
            })
            .buffered(8)
            .collect()
            .await;
        let total = self.seen + self.pending.len();
        let mut found = found.into_iter();
        self.pending.retain(|_| !found.next().unwrap_or(false));
        self.seen = total - self.pending.len();
        self.seen as f64 / total.max(1) as f64
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("S3R_BENCH_SCALE_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let cli = std::env::var("S3R_CLI").expect("S3R_CLI: the release s3-replicator binary");
    let stack = Stack::fast().await;
    let source = stack.bucket("src").await;
    let dst = stack.bucket("dst").await;
    stack.enable_versioning(&dst).await;
    // The count can see a second write: in a bucket versioned the same way, one key
    // written twice shows two versions.
    let control = stack.bucket("control").await;
    stack.enable_versioning(&control).await;
    stack.put(&control, "k", b"one").await;
    stack.put(&control, "k", b"two").await;
    assert_eq!(
        versions(&stack, &control).await.get("k"),
        Some(&2),
        "a versioned bucket counts each write"
    );
    let records = stack.bucket("records").await;
    let uploading = Instant::now();
    let mut keys = Vec::with_capacity(n);
    for folder in 0..FOLDERS {
        keys.extend(
            integration_tests::put_many(&stack, &source, &format!("f{folder:03}/"), n / FOLDERS)
                .await,
        );
    }
    let n = keys.len();
    assert!(n >= FOLDERS, "at least one object per folder");
    println!(
        "backfill at scale: {n} objects in {FOLDERS} folders (uploaded in {:.0} s), {WORKERS} workers, two SIGKILLed",
        uploading.elapsed().as_secs_f64()
    );
    let work = stack.queue("scale-work").await;
    // Short, so that the killed workers' messages come back soon.
    stack.set_visibility(&work, 10).await;
    let run = Run {
        cli,
        doc: one_rule(
            &source,
            &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
        ),
        report: format!("s3://{records}/backfills/"),
        work,
        failed: stack.queue("scale-failed").await,
        stack: stack.clone(),
    };

    let started = Instant::now();
    run.output(&["backfill", "--report", &run.report]);
    let mut workers = Workers((0..WORKERS).map(|_| run.worker()).collect());
    let mut kills = Vec::new();
    let mut sorted = keys.clone();
    sorted.sort();
    let mut progress = Progress::new(&keys, 200);
    for (victim, at) in [(0, 0.25), (1, 0.5)] {
        while progress.share(&stack, &dst).await < at {
            assert!(
                started.elapsed() < Duration::from_secs(3600),
                "the backfill stalled before {at} of the objects were replicated"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        workers.0[victim].kill().expect("SIGKILL");
        let _ = workers.0[victim].wait();
        kills.push(started.elapsed().as_secs_f64());
        assert!(
            stack.depth(&run.work).await > 0,
            "the kill at {at} of the objects landed after the backfill's end"
        );
    }
    while stack.depth(&run.work).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "the backfill stalled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(workers);
    println!(
        "done in {seconds:.0} s ({:.0} objects/s); workers killed at {:.0} s and {:.0} s",
        n as f64 / seconds,
        kills[0],
        kills[1]
    );

    // Each object written once, by the server's count.
    let counts = versions(&stack, &dst).await;
    let missing: Vec<&String> = keys.iter().filter(|k| !counts.contains_key(*k)).collect();
    let twice: Vec<(&String, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty() && twice.is_empty() && counts.len() == n,
        "{} missing (first: {:?}), {} written more than once (first: {:?}), {} keys",
        missing.len(),
        missing.first(),
        twice.len(),
        twice.first(),
        counts.len()
    );
    println!("every object replicated once ({n} keys, one version each)");

    // The completion report: complete, each object once.
    let out = run.output(&[
        "backfill",
        "status",
        "--report",
        &run.report,
        "--wait",
        "--output",
        "json",
    ]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(status["complete"].as_bool(), Some(true), "{status}");
    assert_eq!(status["failed"].as_u64().unwrap_or(0), 0, "{status}");
    let csv = stack
        .s3
        .get_object()
        .bucket(&records)
        .key(format!(
            "backfills/{}/report.csv",
            status["id"].as_str().expect("backfill id")
        ))
        .send()
        .await
        .expect("report.csv");
    let csv = String::from_utf8(csv.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    let rows = replicator::listing::record::parse_csv(&csv);
    // A page a killed worker had begun runs again and finds its copies up to date:
    // those rows say skipped, ReplicaUpToDate. Nothing may have failed.
    let failed: Vec<_> = rows.iter().filter(|r| r.outcome == "failed").collect();
    assert!(
        failed.is_empty(),
        "{} rows failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for r in &rows {
        *outcomes
            .entry(format!("{} {}", r.outcome, r.reason).trim().to_string())
            .or_default() += 1;
    }
    println!("report rows by outcome: {outcomes:?}");
    let mut reported: Vec<String> = rows.into_iter().map(|r| r.key).collect();
    reported.sort();
    assert!(
        reported == sorted,
        "the report lists {} rows for {n} objects",
        reported.len()
    );
    println!("the completion report lists each object once");

    let verifying = Instant::now();
    run.output(&["verify"]);
    println!(
        "verify exits 0 ({:.1} s)",
        verifying.elapsed().as_secs_f64()
    );
}
