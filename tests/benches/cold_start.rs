//! `make bench`: the functions' cold start, as Lambda starts them.
//!
//! Each release binary (`S3R_FUNCTION_DIR`, `make bench` builds them) is started
//! under the Runtime API emulator of tests/src/lambda.rs with a configuration and
//! queues on the local stack: the time from exec to its first `invocation/next`
//! request (init done), and its resident memory (VmRSS) then. Beside them, in the
//! same run and measured the same way (exec to done, peak RSS), the smallest Python
//! function: `import boto3; boto3.client("s3")`. Medians of `S3R_BENCH_STARTS`
//! (default 15) starts. Fails if init is above 0.05× the Python baseline or RSS above
//! 16 MiB: the figures doc/BENCHMARKS.md states.

use std::time::{Duration, Instant};

use integration_tests::lambda::{binary, LambdaFunction};
use integration_tests::{one_rule, Stack, REGION};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let starts: usize = std::env::var("S3R_BENCH_STARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let stack = Stack::main().await;
    let source = stack.bucket("cold-src").await;
    let work = stack.queue("cold-work").await;
    let failed = stack.queue("cold-failed").await;
    let env = vec![
        ("AWS_ENDPOINT_URL", stack.endpoint.clone()),
        ("AWS_REGION", REGION.to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        (
            "REPLICATOR_CONFIG",
            one_rule(&source, r#"{"Bucket": "cold-dst"}"#),
        ),
        ("WORK_QUEUE_URL", work.url.clone()),
        ("RETRY_QUEUE_URL", work.url.clone()),
        ("FAILED_QUEUE_URL", failed.url.clone()),
    ];

    // The baseline: the same way, exec to done and peak RSS.
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let mut py_ms = Vec::new();
    let mut py_kib = Vec::new();
    for _ in 0..starts {
        let started = Instant::now();
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import boto3, resource, sys; boto3.client('s3', region_name='us-east-1'); \
                 sys.stdout.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))",
            ])
            .output()
            .expect("the venv's python (make venv)");
        py_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        py_kib.push(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0.0),
        );
    }
    let py_ms = median(py_ms);
    let py_mib = median(py_kib) / 1024.0;

    println!("cold start, median of {starts} (release binaries under the Runtime API emulator)");
    println!(
        "{:<32} {:>10} {:>12} {:>10}",
        "process", "init ms", "vs python", "RSS MiB"
    );
    println!(
        "{:<32} {:>10.1} {:>12} {:>10.1}",
        "python: boto3.client(\"s3\")", py_ms, "1.00", py_mib
    );
    let mut regressions = Vec::new();
    for function in ["ingest", "replicate", "retry"] {
        let mut ms = Vec::new();
        let mut mib = Vec::new();
        for _ in 0..starts {
            let f = LambdaFunction::start(function, &binary(function), &env).await;
            let init = f
                .ready(Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("{function} did not start: {:?}", f.logs()));
            ms.push(init.as_secs_f64() * 1000.0);
            mib.push(rss_kib(f.pid) as f64 / 1024.0);
            f.kill().await;
        }
        let (ms, mib) = (median(ms), median(mib));
        let ratio = ms / py_ms;
        println!(
            "{:<32} {:>10.1} {:>11.3}× {:>10.1}",
            format!("{function} (exec → first /next)"),
            ms,
            ratio,
            mib
        );
        if ratio > 0.05 {
            regressions.push(format!(
                "{function}: init {ratio:.3}× the Python baseline (> 0.05×)"
            ));
        }
        if mib > 16.0 {
            regressions.push(format!("{function}: {mib:.1} MiB after init (> 16 MiB)"));
        }
    }
    if !regressions.is_empty() {
        eprintln!("cold start regressed:\n{}", regressions.join("\n"));
        std::process::exit(1);
    }
}
