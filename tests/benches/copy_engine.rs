//! `make bench`: the copy engine on the local stack, measured, not asserted.
//!
//! - Streamed copies of a large object between two s3s-fs buckets (through the
//!   endpoint, with keys from a secret): peak memory next to part size × concurrency,
//!   for the default part size and others, and for one streamed PutObject; throughput.
//!   (moto answers each ranged GET of a 1 GiB object in about a second whatever the
//!   range, so it would measure moto, not part sizes.)
//! - Same-endpoint copies on moto and on s3s-fs: multipart UploadPartCopy next to one
//!   CopyObject of the same object, as a throughput ratio.
//!
//! Each copy runs in a child process of its own, so its peak resident memory (VmHWM)
//! is its own. Figures are ratios within this run; moto's speed is not S3's.
//! `S3R_BENCH_MIB` sets the object size (default 1024); `S3R_BENCH_STREAMED_ONLY=1`
//! skips the same-endpoint tables.

use std::process::Command;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use integration_tests::{config, one_rule, put_job, s3s_destination, Stack};
use rand::{RngCore, SeedableRng};
use replicator::config::clients::S3Clients;
use replicator::copy::multipart::{MultipartSettings, MIB};
use replicator::copy::Outcome;
use replicator::replicate::Replicator;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Run {
    /// The source is at s3s-fs (else on moto).
    s3s_source: bool,
    document: String,
    source: String,
    key: String,
    dst: String,
    copy_threshold: u64,
    copy_part_size: u64,
    stream_threshold: u64,
    stream_part_size: u64,
    concurrency: usize,
    /// More keys copied at the same time as `key`, by one replicator (one budget).
    #[serde(default)]
    also: Vec<String>,
    /// Whether the child sets the allocator as the binaries do at cold start.
    #[serde(default = "yes")]
    return_buffers: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize)]
struct Measured {
    secs: f64,
    rss_before_kib: u64,
    peak_kib: u64,
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The child: one copy, then its time and memory as JSON on stdout.
async fn child(run: Run) {
    // Secrets Manager is on moto whichever server holds the source.
    let stack = Stack::main().await;
    let source = if run.s3s_source {
        Stack::s3s_fs().await.s3
    } else {
        stack.s3.clone()
    };
    if run.return_buffers {
        replicator::copy::multipart::return_freed_part_buffers();
    }
    let cfg = config(&run.document);
    let clients = S3Clients::build(&stack.sdk, source, &cfg, None)
        .await
        .expect("clients");
    let mut replicator = Replicator::new(cfg, clients, stack.sqs.clone(), None);
    replicator.multipart = MultipartSettings {
        copy_threshold: run.copy_threshold,
        copy_part_size: run.copy_part_size,
        stream_threshold: run.stream_threshold,
        stream_part_size: run.stream_part_size,
        concurrency: run.concurrency,
    };
    let jobs: Vec<_> = std::iter::once(&run.key)
        .chain(&run.also)
        .map(|key| put_job(&run.source, key, &run.dst))
        .collect();
    let rss_before_kib = status_kib("VmRSS:");
    let started = Instant::now();
    let outcomes = futures::future::join_all(jobs.iter().map(|job| replicator.run(job))).await;
    let secs = started.elapsed().as_secs_f64();
    for outcome in outcomes {
        let outcome = outcome.expect("copy");
        assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    }
    let measured = Measured {
        secs,
        rss_before_kib,
        peak_kib: status_kib("VmHWM:"),
    };
    println!("{}", serde_json::to_string(&measured).unwrap());
}

fn measure(run: &Run) -> Measured {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .arg(serde_json::to_string(run).unwrap())
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).expect("child's figures")
}

/// Puts `mib` MiB of random bytes (in 64 MiB parts: moto is slow with one huge body).
async fn big_object(stack: &Stack, bucket: &str, key: &str, mib: u64) {
    let _ = stack.s3.create_bucket().bucket(bucket).send().await;
    let s3 = &stack.s3;
    let upload = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let mut parts = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(mib);
    let part_mib = 64;
    for (i, start) in (0..mib).step_by(part_mib as usize).enumerate() {
        let mut bytes = vec![0u8; ((mib - start).min(part_mib) * MIB) as usize];
        rng.fill_bytes(&mut bytes);
        let number = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn parent() {
    let size_mib: u64 = std::env::var("S3R_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let stack = Stack::main().await;
    let s3s = Stack::s3s_fs().await;
    let key = "bench/large object.bin";
    let moto_source = stack.bucket("bench").await;
    let s3s_source = integration_tests::unique("bench-src");
    eprintln!("putting a {size_mib} MiB object on moto and on s3s-fs...");
    big_object(&stack, &moto_source, key, size_mib).await;
    big_object(&s3s, &s3s_source, key, size_mib).await;

    let defaults = MultipartSettings::default();
    let run = |s3s_source: bool, source: &str, document: &str, dst: &str| Run {
        s3s_source,
        document: document.to_string(),
        source: source.to_string(),
        key: key.to_string(),
        dst: dst.to_string(),
        copy_threshold: defaults.copy_threshold,
        copy_part_size: defaults.copy_part_size,
        stream_threshold: defaults.stream_threshold,
        stream_part_size: defaults.stream_part_size,
        concurrency: defaults.concurrency,
        also: Vec::new(),
        return_buffers: true,
    };
    let size = size_mib as f64;

    // Streamed: s3s-fs -> s3s-fs through the endpoint, with keys from a secret.
    let (dst, destination) = s3s_destination(&stack, &s3s, "").await;
    let streamed = one_rule(&s3s_source, &destination);
    println!("\n## Streamed copy of {size_mib} MiB, s3s-fs -> s3s-fs\n");
    println!("| parts | part size x concurrency | peak RSS above start | peak / (part x conc) | MiB/s | time vs default |");
    println!("|---|---|---|---|---|---|");
    let mut default_secs = None;
    let streamed_cases: Vec<(&str, u64, u64)> = vec![
        (
            "default",
            defaults.stream_threshold,
            defaults.stream_part_size,
        ),
        ("8 MiB", defaults.stream_threshold, 8 * MIB),
        ("32 MiB", defaults.stream_threshold, 32 * MIB),
        ("64 MiB", defaults.stream_threshold, 64 * MIB),
        ("one PutObject", u64::MAX, defaults.stream_part_size),
    ];
    for (name, threshold, part) in streamed_cases {
        let mut r = run(true, &s3s_source, &streamed, &dst);
        r.stream_threshold = threshold;
        r.stream_part_size = part;
        let m = measure(&r);
        let above = m.peak_kib.saturating_sub(m.rss_before_kib);
        let bound = (part * r.concurrency as u64) as f64 / MIB as f64;
        let secs = *default_secs.get_or_insert(m.secs);
        let (bound_text, ratio) = if threshold == u64::MAX {
            ("streamed body".to_string(), "-".to_string())
        } else {
            (
                format!("{} MiB x {} = {bound:.0} MiB", part / MIB, r.concurrency),
                format!("{:.2}", mib(above) / bound),
            )
        };
        println!(
            "| {name} | {bound_text} | {:.0} MiB | {ratio} | {:.0} | {:.2} |",
            mib(above),
            size / m.secs,
            m.secs / secs
        );
    }

    // Several large objects at once, under one budget: resident memory against the
    // budget, with the allocator as the binaries set it and as glibc leaves it.
    let mix_mib: u64 = std::env::var("S3R_BENCH_MIX_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mix: Vec<String> = (0..4).map(|i| format!("bench/mix {i}.bin")).collect();
    for k in &mix {
        big_object(&s3s, &s3s_source, k, mix_mib).await;
    }
    println!("\n## Four streamed copies of {mix_mib} MiB at once, s3s-fs -> s3s-fs\n");
    println!("| parts | budget (part x conc) | allocator | peak RSS above start | peak / budget |");
    println!("|---|---|---|---|---|");
    for part in [8 * MIB, 16 * MIB] {
        for return_buffers in [false, true] {
            let mut r = run(true, &s3s_source, &streamed, &dst);
            r.key = mix[0].clone();
            r.also = mix[1..].to_vec();
            r.stream_part_size = part;
            r.return_buffers = return_buffers;
            let m = measure(&r);
            let above = m.peak_kib.saturating_sub(m.rss_before_kib);
            let bound = (part * r.concurrency as u64) as f64 / MIB as f64;
            println!(
                "| {} MiB | {bound:.0} MiB | {} | {:.0} MiB | {:.2} |",
                part / MIB,
                if return_buffers {
                    "as the binaries set it"
                } else {
                    "glibc's default"
                },
                mib(above),
                mib(above) / bound
            );
        }
    }

    if std::env::var_os("S3R_BENCH_STREAMED_ONLY").is_some() {
        return;
    }
    // Same endpoint: one CopyObject against UploadPartCopy in parallel.
    for (server, s3s_source, source, target) in [
        ("moto", false, &moto_source, &stack),
        ("s3s-fs", true, &s3s_source, &s3s),
    ] {
        let same_dst = integration_tests::unique("bench-copy");
        target
            .s3
            .create_bucket()
            .bucket(&same_dst)
            .send()
            .await
            .unwrap();
        let same = one_rule(
            source,
            &format!(r#"{{"Bucket": "{same_dst}", "Replicator": {{"AclMode": "none"}}}}"#),
        );
        println!("\n## Same-endpoint copy of {size_mib} MiB on {server} (best of 2)\n");
        println!("| copy | requests for the bytes | MiB/s | time vs one CopyObject |");
        println!("|---|---|---|---|");
        let mut single_secs = None;
        let same_cases: Vec<(&str, u64, u64)> = vec![
            ("one CopyObject", u64::MAX, defaults.copy_part_size),
            ("UploadPartCopy, default parts", 0, defaults.copy_part_size),
            ("UploadPartCopy, 64 MiB parts", 0, 64 * MIB),
        ];
        for (name, threshold, part) in same_cases {
            let mut r = run(s3s_source, source, &same, &same_dst);
            r.copy_threshold = threshold;
            r.copy_part_size = part;
            let secs = (0..2).map(|_| measure(&r).secs).fold(f64::MAX, f64::min);
            let base = *single_secs.get_or_insert(secs);
            let requests = if threshold == u64::MAX {
                1
            } else {
                (size_mib * MIB).div_ceil(part)
            };
            println!(
                "| {name} | {requests} | {:.0} | {:.2} |",
                size / secs,
                secs / base
            );
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let run: Run = serde_json::from_str(&args[2]).expect("child's run");
        runtime.block_on(child(run));
    } else {
        runtime.block_on(parent());
    }
}
