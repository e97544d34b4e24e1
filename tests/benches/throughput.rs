//! `make bench`: the worker's throughput, beside what bounds it, in the same run.
//!
//! 1,000 small objects (`S3R_BENCH_OBJECTS`) on the local stack, replicated three ways
//! at the same concurrency (8):
//! - the server's raw CopyObject rate (one copy per object, nothing else): the ceiling;
//! - a simple boto3 replicator (scripts/bench_boto3_replicator.py: HEAD, ACL read, copy);
//! - `s3-replicator run` (the release binary `S3R_CLI`) consuming one job per object.
//!
//! Each with its wall time, objects per second, and the CPU the process spent per
//! object beside the CPU moto's S3 server spent meanwhile (read from /proc): on one
//! machine the Python server bounds every rate, so the ratios are what carry over.
//!
//! The worker's queues live on a moto server of their own (the stack's second one,
//! through `AWS_ENDPOINT_URL_SQS`), as SQS is a service of its own beside S3: moto's
//! SQS scans a whole queue on every request, and on the S3 server that work would be
//! charged to the S3 rate all three are measured by. Its CPU is reported beside.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::ObjectOwnership::BucketOwnerEnforced;
use futures::StreamExt;
use integration_tests::cpu::{cpu_seconds, server_pid};
use integration_tests::{one_rule, put_job, Pipeline, Stack};

const CONCURRENCY: usize = 8;

struct Measured {
    seconds: f64,
    cpu: f64,
    server_cpu: f64,
}

fn line(name: &str, n: usize, m: &Measured, baseline: &Measured) -> f64 {
    println!(
        "{name:<34} {:>7.1} objects/s  {:>5.2}x boto3   CPU {:>6.2} ms/object ({:.3}x the server's {:.2} ms)",
        n as f64 / m.seconds,
        baseline.seconds / m.seconds,
        m.cpu * 1000.0 / n as f64,
        m.cpu / m.server_cpu.max(1e-9),
        m.server_cpu * 1000.0 / n as f64,
    );
    baseline.seconds / m.seconds
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("S3R_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let cli = std::env::var("S3R_CLI").expect("S3R_CLI: the release s3-replicator binary");
    let stack = Stack::main().await;
    let server = server_pid(&stack.endpoint);
    let p = Pipeline::unwired(&stack).await;
    let keys = integration_tests::put_many(&stack, &p.source, "t/", n).await;
    // ACLs disabled, as on every bucket made since 2023: the replicator reads no ACL,
    // a typical boto3 replicator reads one anyway.
    stack.set_ownership(&p.source, BucketOwnerEnforced).await;
    println!("throughput: {n} small objects, concurrency {CONCURRENCY}, same endpoint (moto)");

    // The ceiling: raw CopyObject.
    let raw_dst = stack.bucket("raw").await;
    stack.set_ownership(&raw_dst, BucketOwnerEnforced).await;
    let (server0, started) = (cpu_seconds(server), Instant::now());
    futures::stream::iter(&keys)
        .map(|k| {
            stack
                .s3
                .copy_object()
                .bucket(&raw_dst)
                .key(k)
                .copy_source(replicator::copy::copy_source(&p.source, k, None))
                .send()
        })
        .buffer_unordered(CONCURRENCY)
        .for_each(|r| async move {
            r.expect("copy");
        })
        .await;
    let raw = Measured {
        seconds: started.elapsed().as_secs_f64(),
        cpu: 0.0,
        server_cpu: cpu_seconds(server) - server0,
    };

    // boto3.
    let boto_dst = stack.bucket("boto").await;
    stack.set_ownership(&boto_dst, BucketOwnerEnforced).await;
    let keys_file = std::env::temp_dir().join(integration_tests::unique("bench-keys"));
    std::fs::write(&keys_file, keys.join("\n")).unwrap();
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/bench_boto3_replicator.py"
    );
    let server0 = cpu_seconds(server);
    let out = Command::new(python)
        .args([script, &stack.endpoint, &p.source, &boto_dst])
        .arg(&keys_file)
        .output()
        .expect("the venv's python (make venv)");
    let _ = std::fs::remove_file(&keys_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let boto = Measured {
        seconds: reported["seconds"].as_f64().unwrap(),
        cpu: reported["cpu_seconds"].as_f64().unwrap(),
        server_cpu: cpu_seconds(server) - server0,
    };
    assert_eq!(stack.keys(&boto_dst, "").await.len(), n);

    // The worker: one job per object on its work queue, fed as it drains (moto's
    // receive costs grow with the queue's depth; SQS's do not), until none is left.
    let queues = Stack::other_provider().await;
    let queue_server = server_pid(&queues.endpoint);
    let (work, failed) = (
        queues.queue("bench-work").await,
        queues.queue("bench-failed").await,
    );
    let dst = stack.bucket("worker").await;
    stack.set_ownership(&dst, BucketOwnerEnforced).await;
    let jobs: Vec<String> = keys
        .iter()
        .map(|k| put_job(&p.source, k, &dst).to_body())
        .collect();
    let feed = |chunk: &[String]| {
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
        queues
            .sqs
            .send_message_batch()
            .queue_url(&work.url)
            .set_entries(Some(entries))
            .send()
    };
    let mut batches = jobs.chunks(10);
    for chunk in batches.by_ref().take(10) {
        feed(chunk).await.unwrap();
    }
    let doc = one_rule(&p.source, &format!(r#"{{"Bucket": "{dst}"}}"#));
    let (server0, queue_server0) = (cpu_seconds(server), cpu_seconds(queue_server));
    let started = Instant::now();
    let mut worker = Command::new(&cli)
        .args(["run", "--concurrency", &CONCURRENCY.to_string()])
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AWS_ENDPOINT_URL_SQS", &queues.endpoint)
        .env("AWS_REGION", integration_tests::REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("REPLICATOR_CONFIG", &doc)
        .env("WORK_QUEUE_URL", &work.url)
        .env("FAILED_QUEUE_URL", &failed.url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("S3R_CLI");
    // Done when its queue is empty, visible and in flight (a cheap question, unlike a
    // listing of the destination, which would load the server being measured).
    let mut fed_all = false;
    loop {
        let depth = queues.depth(&work).await;
        if fed_all && depth == 0 {
            break;
        }
        if depth < 60 {
            let more: Vec<&[String]> = batches.by_ref().take(5).collect();
            fed_all = more.is_empty();
            for chunk in more {
                feed(chunk).await.unwrap();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the worker stalled"
        );
        // Not too often: each question is a request to the queues' server.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ours = Measured {
        seconds: started.elapsed().as_secs_f64(),
        cpu: cpu_seconds(worker.id()),
        server_cpu: cpu_seconds(server) - server0,
    };
    let queue_cpu = cpu_seconds(queue_server) - queue_server0;
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(
        stack.keys(&dst, "").await.len(),
        n,
        "every object replicated"
    );

    line("raw CopyObject (the ceiling)", n, &raw, &boto);
    line("boto3 replicator (8 threads)", n, &boto, &boto);
    let ratio = line("s3-replicator run", n, &ours, &boto);
    println!(
        "  (its queues' moto server spent {:.2} ms/object more; goal >= 1.5x boto3: {})",
        queue_cpu * 1000.0 / n as f64,
        if ratio >= 1.5 { "met" } else { "not met" }
    );
}
