//! `make bench`: live replication's throughput on the fast stack (SeaweedFS for S3,
//! fauxqs for SQS), beside what bounds it, in one run.
//!
//! 4,000 small objects (`S3R_BENCH_OBJECTS`; 0–40 KB, 20 KB on average), each row
//! copying all of them into a bucket of its own:
//! - the server's raw `CopyObject`, 8 at once: the ceiling;
//! - a simple boto3 replicator (scripts/bench_boto3_replicator.py: HEAD, copy; eight
//!   threads);
//! - `s3-replicator run --concurrency 8` (the release binary `S3R_CLI`), one job per
//!   object waiting on its work queue, timed from its start to the last job's message
//!   deleted (each is deleted only after its replica is written and checked);
//! - the replicate function (release, `S3R_FUNCTION_DIR`) under the Runtime API
//!   emulator, one instance fed batches of ten, as Lambda's SQS trigger hands them;
//! - scale-out: one, two and four `run` processes on the same queues.
//!
//! Each row with its rate, its ratios to boto3 and to the raw copies, and the CPU per
//! object of the process and of each server meanwhile (read from /proc). The machine
//! runs the servers and the clients on the same two cores, so ratios carry over, not
//! rates. With `S3R_BENCH_PERF=<file>` (`make profile`), `perf record` samples the
//! single `run` process meanwhile (that row's time and CPU then include perf's overhead).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use integration_tests::cpu::{cpu_seconds, server_pid};
use integration_tests::lambda::{binary, LambdaFunction};
use integration_tests::{one_rule, put_job, sqs_batch, Queue, Stack};

const CONCURRENCY: usize = 8;

struct Measured {
    seconds: f64,
    /// The replicating process's own CPU (all of them, for several).
    cpu: Option<f64>,
    s3_cpu: f64,
    sqs_cpu: f64,
}

struct Servers {
    s3: u32,
    sqs: u32,
}

impl Servers {
    fn cpu(&self) -> (f64, f64) {
        (cpu_seconds(self.s3), cpu_seconds(self.sqs))
    }

    /// Runs `work`, timing it and charging the servers' CPU meanwhile.
    async fn measure<F: std::future::Future<Output = Option<f64>>>(&self, work: F) -> Measured {
        let (s3, sqs) = self.cpu();
        let started = Instant::now();
        let cpu = work.await;
        let seconds = started.elapsed().as_secs_f64();
        let (s3_after, sqs_after) = self.cpu();
        Measured {
            seconds,
            cpu,
            s3_cpu: s3_after - s3,
            sqs_cpu: sqs_after - sqs,
        }
    }
}

fn line(name: &str, n: usize, m: &Measured, boto: &Measured, raw: &Measured) {
    let per = |s: f64| s * 1000.0 / n as f64;
    println!(
        "| {name} | {:.0} | {:.2}x | {:.2}x | {} | {:.2} ms | {:.2} ms |",
        n as f64 / m.seconds,
        boto.seconds / m.seconds,
        raw.seconds / m.seconds,
        m.cpu
            .map(|c| format!("{:.3} ms", per(c)))
            .unwrap_or_else(|| "–".into()),
        per(m.s3_cpu),
        per(m.sqs_cpu),
    );
}

/// Processes killed (and reaped) when dropped: a failed assertion leaves none running.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `perf record` attached to `pid` (`make profile`), sampling with DWARF call graphs.
fn perf_record(pid: u32, out: &str) -> Child {
    Command::new("perf")
        .args([
            "record",
            "-F",
            "499",
            "--call-graph",
            "dwarf,32768",
            "-o",
            out,
            "-p",
        ])
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perf (Debian: linux-perf)")
}

/// Stops `perf record` as Ctrl-C would, so that it writes its file out.
fn perf_stop(mut perf: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status();
    let _ = perf.wait();
}

struct Bench {
    stack: Stack,
    source: String,
    keys: Vec<String>,
    cli: String,
}

impl Bench {
    /// A destination bucket, the configuration replicating to it, and fresh queues.
    async fn target(&self, name: &str) -> (String, String, Queue, Queue) {
        let dst = self.stack.bucket(name).await;
        let doc = one_rule(
            &self.source,
            &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
        );
        let work = self.stack.queue("bench-work").await;
        let failed = self.stack.queue("bench-failed").await;
        (dst, doc, work, failed)
    }

    fn jobs(&self, dst: &str) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| put_job(&self.source, k, dst).to_body())
            .collect()
    }

    async fn enqueue(&self, work: &Queue, jobs: &[String]) {
        futures::stream::iter(jobs.chunks(10))
            .map(|chunk| {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, body)| {
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(body)
                            .build()
                            .unwrap()
                    })
                    .collect();
                self.stack
                    .sqs
                    .send_message_batch()
                    .queue_url(&work.url)
                    .set_entries(Some(entries))
                    .send()
            })
            .buffer_unordered(8)
            .for_each(|r| async move {
                r.expect("send jobs");
            })
            .await;
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.stack.endpoint.clone()),
            ("AWS_ENDPOINT_URL_SQS", self.stack.sqs_endpoint.clone()),
            ("AWS_REGION", integration_tests::REGION.into()),
            (
                "AWS_ACCESS_KEY_ID",
                integration_tests::endpoint_from("S3R_TEST_WEED_ACCESS_KEY"),
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                integration_tests::endpoint_from("S3R_TEST_WEED_SECRET_KEY"),
            ),
            ("RUST_LOG", "warn".into()),
        ]
    }

    fn worker(&self, doc: &str, work: &Queue, failed: &Queue) -> Child {
        Command::new(&self.cli)
            .args(["run", "--concurrency", &CONCURRENCY.to_string()])
            .envs(self.env())
            .env("REPLICATOR_CONFIG", doc)
            .env("WORK_QUEUE_URL", &work.url)
            .env("FAILED_QUEUE_URL", &failed.url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("S3R_CLI")
    }

    /// Until the queue holds nothing, visible or in flight: every job's replica written.
    async fn drained(&self, work: &Queue) {
        let started = Instant::now();
        while self.stack.depth(work).await > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(900),
                "the replication stalled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn all_replicated(&self, dst: &str) {
        assert_eq!(
            self.stack.keys(dst, "").await.len(),
            self.keys.len(),
            "every object replicated to {dst}"
        );
    }

    /// `processes` workers on one work queue holding a job per object (killed, even on a
    /// failed assertion, when their guard drops).
    async fn workers(&self, servers: &Servers, processes: usize) -> Measured {
        let (dst, doc, work, failed) = self.target("worker").await;
        self.enqueue(&work, &self.jobs(&dst)).await;
        let m = servers
            .measure(async {
                let children = Children(
                    (0..processes)
                        .map(|_| self.worker(&doc, &work, &failed))
                        .collect(),
                );
                let perf = (processes == 1)
                    .then(|| std::env::var("S3R_BENCH_PERF").ok())
                    .flatten()
                    .map(|out| perf_record(children.0[0].id(), &out));
                self.drained(&work).await;
                let cpu = children.0.iter().map(|c| cpu_seconds(c.id())).sum();
                drop(children);
                if let Some(perf) = perf {
                    perf_stop(perf);
                }
                Some(cpu)
            })
            .await;
        self.all_replicated(&dst).await;
        m
    }

    /// The replicate function under the Runtime API emulator, one invocation at a
    /// time, each a batch of ten jobs.
    async fn function(&self, servers: &Servers) -> Measured {
        let (dst, doc, work, failed) = self.target("function").await;
        let mut env = self.env();
        env.extend([
            ("REPLICATOR_CONFIG", doc),
            ("WORK_QUEUE_URL", work.url.clone()),
            ("FAILED_QUEUE_URL", failed.url.clone()),
        ]);
        let f = LambdaFunction::start("replicate", &binary("replicate"), &env).await;
        assert!(
            f.ready(Duration::from_secs(30)).await.is_some(),
            "replicate did not start: {:?}",
            f.init_error()
        );
        let batches: Vec<serde_json::Value> = self
            .jobs(&dst)
            .chunks(10)
            .map(|c| serde_json::to_value(sqs_batch(c)).unwrap())
            .collect();
        let cpu0 = cpu_seconds(f.pid);
        let m = servers
            .measure(async {
                for batch in &batches {
                    let response = f.invoke(batch, Duration::from_secs(900)).await.response();
                    assert_eq!(
                        response["batchItemFailures"].as_array().map(Vec::len),
                        Some(0),
                        "{response}"
                    );
                }
                Some(cpu_seconds(f.pid) - cpu0)
            })
            .await;
        f.kill().await;
        self.all_replicated(&dst).await;
        m
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("S3R_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let cli = std::env::var("S3R_CLI").expect("S3R_CLI: the release s3-replicator binary");
    let stack = Stack::fast().await;
    let servers = Servers {
        s3: server_pid(&stack.endpoint),
        sqs: server_pid(&stack.sqs_endpoint),
    };
    let source = stack.bucket("src").await;
    let keys = integration_tests::put_many(&stack, &source, "t/", n).await;
    let bench = Bench {
        stack,
        source,
        keys,
        cli,
    };
    println!(
        "throughput: {n} small objects, concurrency {CONCURRENCY} per process, SeaweedFS and fauxqs, release builds"
    );

    // The ceiling: raw CopyObject.
    let raw_dst = bench.stack.bucket("raw").await;
    let raw = servers
        .measure(async {
            futures::stream::iter(&bench.keys)
                .map(|k| {
                    bench
                        .stack
                        .s3
                        .copy_object()
                        .bucket(&raw_dst)
                        .key(k)
                        .copy_source(replicator::copy::copy_source(&bench.source, k, None))
                        .send()
                })
                .buffer_unordered(CONCURRENCY)
                .for_each(|r| async move {
                    r.expect("copy");
                })
                .await;
            None
        })
        .await;
    bench.all_replicated(&raw_dst).await;

    // boto3.
    let boto_dst = bench.stack.bucket("boto").await;
    let keys_file = std::env::temp_dir().join(integration_tests::unique("bench-keys"));
    std::fs::write(&keys_file, bench.keys.join("\n")).unwrap();
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/bench_boto3_replicator.py"
    );
    let boto = servers
        .measure(async {
            let out = Command::new(python)
                .args([script, &bench.stack.endpoint, &bench.source, &boto_dst])
                .arg(&keys_file)
                .envs(bench.env())
                .output()
                .expect("the venv's python (make venv)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let reported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            reported["cpu_seconds"].as_f64()
        })
        .await;
    let _ = std::fs::remove_file(&keys_file);
    bench.all_replicated(&boto_dst).await;

    let one = bench.workers(&servers, 1).await;
    let function = bench.function(&servers).await;
    let two = bench.workers(&servers, 2).await;
    let four = bench.workers(&servers, 4).await;

    println!("| | objects/s | vs boto3 | vs raw CopyObject | own CPU per object | S3 server CPU per object | SQS server CPU per object |");
    println!("|---|---|---|---|---|---|---|");
    line("raw `CopyObject` (8 at once)", n, &raw, &boto, &raw);
    line("boto3 replicator (8 threads)", n, &boto, &boto, &raw);
    line("`s3-replicator run`", n, &one, &boto, &raw);
    line(
        "replicate function, batches of ten",
        n,
        &function,
        &boto,
        &raw,
    );
    line("`run`, two processes", n, &two, &boto, &raw);
    line("`run`, four processes", n, &four, &boto, &raw);
    let ours = |m: &Measured| m.cpu.unwrap_or_default() * 1000.0 / n as f64;
    println!(
        "goals: run >= 0.9x raw ({:.2}x), >= 4x boto3 ({:.2}x), own CPU <= 0.35 ms/object ({:.3} ms)",
        raw.seconds / one.seconds,
        boto.seconds / one.seconds,
        ours(&one)
    );
}
