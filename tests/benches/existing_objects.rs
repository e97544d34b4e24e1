//! `make bench`: existing objects, beside rclone (Debian's package) on the same server
//! in the same run: the fast stack (SeaweedFS for S3, fauxqs for the backfill's queues).
//!
//! 10,000 small objects (`S3R_BENCH_BACKFILL_OBJECTS`) in 100 folders:
//! - `s3-replicator backfill` run by `s3-replicator run` (the release binary `S3R_CLI`)
//!   beside `rclone copy` (server-side copies), both at 8 transfers, timed to the last
//!   replica (the queue empty, visible and in flight);
//! - `s3-replicator verify` beside `rclone check`, both over the finished copies, at 8
//!   checkers.
//!
//! Wall time and objects per second, and the S3 server's CPU per object; the machine
//! runs the servers and the clients on the same two cores, so the ratios are what
//! carry over.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::cpu::{cpu_seconds, server_pid};
use integration_tests::{one_rule, Queue, Stack};

const PARALLEL: &str = "8";
const FOLDERS: usize = 100;

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
        .env("RCLONE_CONFIG_MOTO_ACCESS_KEY_ID", access_key())
        .env("RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY", secret_key())
        .env("RCLONE_CONFIG_MOTO_REGION", integration_tests::REGION)
        .env("RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE", "true")
        .output()
        .expect("rclone (make bench installs Debian's package)");
    (started.elapsed().as_secs_f64(), out)
}

fn access_key() -> String {
    integration_tests::endpoint_from("S3R_TEST_WEED_ACCESS_KEY")
}

fn secret_key() -> String {
    integration_tests::endpoint_from("S3R_TEST_WEED_SECRET_KEY")
}

/// The backfill's queues (fauxqs).
struct Queues {
    stack: Stack,
    work: Queue,
    failed: Queue,
}

fn ours(cli: &str, stack: &Stack, q: &Queues, doc: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(cli);
    cmd.args(args)
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AWS_ENDPOINT_URL_SQS", &q.stack.sqs_endpoint)
        .env("AWS_REGION", integration_tests::REGION)
        .env("AWS_ACCESS_KEY_ID", access_key())
        .env("AWS_SECRET_ACCESS_KEY", secret_key())
        .env("REPLICATOR_CONFIG", doc)
        .env("WORK_QUEUE_URL", &q.work.url)
        .env("FAILED_QUEUE_URL", &q.failed.url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("S3R_BENCH_BACKFILL_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let cli = std::env::var("S3R_CLI").expect("S3R_CLI: the release s3-replicator binary");
    let stack = Stack::fast().await;
    let source = stack.bucket("src").await;
    for folder in 0..FOLDERS {
        integration_tests::put_many(&stack, &source, &format!("f{folder:03}/"), n / FOLDERS).await;
    }
    let n = n / FOLDERS * FOLDERS;
    let queues = stack.clone();
    let q = Queues {
        work: queues.queue("bench-work").await,
        failed: queues.queue("bench-failed").await,
        stack: queues,
    };
    println!("existing objects: {n} small objects in {FOLDERS} folders, 8 at once, SeaweedFS and fauxqs, beside rclone");
    let server = server_pid(&stack.endpoint);
    let mut server0 = cpu_seconds(server);
    // The S3 server's CPU since the last call, in ms per object.
    let mut server_ms = || {
        let now = cpu_seconds(server);
        let spent = (now - server0) * 1000.0 / n as f64;
        server0 = now;
        spent
    };

    // rclone copy.
    let theirs = stack.bucket("rclone").await;
    let (rclone_copy, out) = rclone(
        &stack,
        &[
            "copy",
            &format!("moto:{}", source),
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
    let rclone_copy_cpu = server_ms();
    assert_eq!(stack.keys(&theirs, "").await.len(), n);

    // s3-replicator backfill, run by the worker until its queue is empty.
    let dst = stack.bucket("backfill").await;
    let doc = one_rule(
        &source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    );
    server_ms();
    let started = Instant::now();
    let out = ours(&cli, &stack, &q, &doc, &["backfill"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut worker = ours(&cli, &stack, &q, &doc, &["run", "--concurrency", PARALLEL])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A list task sends what follows it before it is deleted: the queue (visible and
    // in flight) is empty only at the end.
    while q.stack.depth(&q.work).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the backfill stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backfill = started.elapsed().as_secs_f64();
    let backfill_cpu = server_ms();
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(
        stack.keys(&dst, "").await.len(),
        n,
        "every object backfilled"
    );

    // Verification of the finished copies.
    server_ms();
    let (rclone_check, out) = rclone(
        &stack,
        &[
            "check",
            &format!("moto:{}", source),
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
    let rclone_check_cpu = server_ms();
    let started = Instant::now();
    let out = ours(&cli, &stack, &q, &doc, &["verify"]).output().unwrap();
    let verify = started.elapsed().as_secs_f64();
    let verify_cpu = server_ms();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let rate = |s: f64| n as f64 / s;
    let line = |name: &str, secs: f64, cpu: f64, versus: Option<(f64, &str)>| {
        let ratio = versus
            .map(|(theirs, what)| format!("  {:.2}x {what}", theirs / secs))
            .unwrap_or_default();
        println!(
            "{name:<34} {:>7.1} objects/s  ({secs:.1} s, S3 server {cpu:.2} ms/object){ratio}",
            rate(secs)
        );
    };
    line(
        "rclone copy (server-side)",
        rclone_copy,
        rclone_copy_cpu,
        None,
    );
    line(
        "s3-replicator backfill + run",
        backfill,
        backfill_cpu,
        Some((rclone_copy, "rclone copy")),
    );
    line("rclone check", rclone_check, rclone_check_cpu, None);
    line(
        "s3-replicator verify",
        verify,
        verify_cpu,
        Some((rclone_check, "rclone check")),
    );
}
