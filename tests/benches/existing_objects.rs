//! `make bench`: existing objects, beside rclone (Debian's package) on the same server
//! in the same run.
//!
//! 1,000 small objects (`S3R_BENCH_BACKFILL_OBJECTS`) in 20 folders on the local stack:
//! - `s3-replicator backfill` run by `s3-replicator run` (the release binary `S3R_CLI`)
//!   beside `rclone copy` (server-side copies), both at 8 transfers;
//! - `s3-replicator verify` beside `rclone check`, both over the finished copies, at 8
//!   checkers.
//!
//! Wall time and objects per second; the ratios are what carry over (moto's Python
//! server bounds every rate here, and its SQS grows slower with a queue's depth).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{one_rule, Pipeline, Stack};

const PARALLEL: &str = "8";

fn rclone(stack: &Stack, args: &[&str]) -> (f64, std::process::Output) {
    let started = Instant::now();
    // Only its own settings: the stack's AWS_* variables (a CA bundle among them) are
    // not rclone's business.
    let out = Command::new("rclone")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("RCLONE_CONFIG_MOTO_TYPE", "s3")
        .env("RCLONE_CONFIG_MOTO_PROVIDER", "Other")
        .env("RCLONE_CONFIG_MOTO_ENDPOINT", &stack.endpoint)
        .env("RCLONE_CONFIG_MOTO_ACCESS_KEY_ID", "test")
        .env("RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY", "test")
        .env("RCLONE_CONFIG_MOTO_REGION", integration_tests::REGION)
        .env("RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE", "true")
        .output()
        .expect("rclone (make bench installs Debian's package)");
    (started.elapsed().as_secs_f64(), out)
}

fn ours(cli: &str, stack: &Stack, p: &Pipeline, doc: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(cli);
    cmd.args(args)
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AWS_REGION", integration_tests::REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("REPLICATOR_CONFIG", doc)
        .env("WORK_QUEUE_URL", &p.work.url)
        .env("FAILED_QUEUE_URL", &p.failed.url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

async fn count(stack: &Stack, bucket: &str) -> usize {
    let mut n = 0;
    let mut token = None;
    loop {
        let out = stack
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        n += out.contents().len();
        token = out.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return n;
        }
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("S3R_BENCH_BACKFILL_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let cli = std::env::var("S3R_CLI").expect("S3R_CLI: the release s3-replicator binary");
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    for folder in 0..20 {
        integration_tests::put_many(&stack, &p.source, &format!("f{folder:02}/"), n / 20).await;
    }
    println!("existing objects: {n} small objects in 20 folders, 8 at once, same endpoint (moto), beside rclone");

    // rclone copy.
    let theirs = stack.bucket("rclone").await;
    let (rclone_copy, out) = rclone(
        &stack,
        &[
            "copy",
            &format!("moto:{}", p.source),
            &format!("moto:{theirs}"),
            "--transfers",
            PARALLEL,
            "--checkers",
            PARALLEL,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&stack, &theirs).await, n);

    // s3-replicator backfill, run by the worker until its queue is empty.
    let dst = stack.bucket("backfill").await;
    let doc = one_rule(
        &p.source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    );
    let started = Instant::now();
    let out = ours(&cli, &stack, &p, &doc, &["backfill"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut worker = ours(&cli, &stack, &p, &doc, &["run", "--concurrency", PARALLEL])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A list task sends what follows it before it is deleted: the queue (visible and
    // in flight) is empty only at the end.
    while stack.depth(&p.work).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the backfill stalled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backfill = started.elapsed().as_secs_f64();
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(count(&stack, &dst).await, n, "every object backfilled");

    // Verification of the finished copies.
    let (rclone_check, out) = rclone(
        &stack,
        &[
            "check",
            &format!("moto:{}", p.source),
            &format!("moto:{theirs}"),
            "--checkers",
            PARALLEL,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = Instant::now();
    let out = ours(&cli, &stack, &p, &doc, &["verify"]).output().unwrap();
    let verify = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let rate = |s: f64| n as f64 / s;
    println!(
        "{:<34} {:>7.1} objects/s  ({:.1} s)",
        "rclone copy (server-side)",
        rate(rclone_copy),
        rclone_copy
    );
    println!(
        "{:<34} {:>7.1} objects/s  ({:.1} s)  {:.2}x rclone copy",
        "s3-replicator backfill + run",
        rate(backfill),
        backfill,
        rclone_copy / backfill
    );
    println!(
        "{:<34} {:>7.1} objects/s  ({:.1} s)",
        "rclone check",
        rate(rclone_check),
        rclone_check
    );
    println!(
        "{:<34} {:>7.1} objects/s  ({:.1} s)  {:.2}x rclone check",
        "s3-replicator verify",
        rate(verify),
        verify,
        rclone_check / verify
    );
}
