//! The randomized convergence test with worker processes on a strict S3 server: two
//! `s3-replicator run` processes share one set of queues (fauxqs) and replicate a
//! SeaweedFS bucket while a random history of puts, overwrites, metadata and tag
//! changes, deletes and (versioned) removed versions is made to it, each key written
//! again within a tenth of a second or so. One worker reaches S3 through a proxy that
//! holds half of its writes for 0.6-0.7 s, less than the old one-second recheck, so
//! an older state's write lands after a newer one's in the other process. S3's events
//! are sent as AWS would send them, shortly after each change, some twice and some late.
//! When the workers have gone idle, every key of the destination must equal the
//! source's, and nothing may be parked.
//!
//! `S3R_SEED=N` replays one seed; `S3R_SEEDS=N` runs seeds 0..N (default 24; `make
//! bench` runs 200).

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::BIN;
use futures::StreamExt;
use integration_tests::fault_proxy::{FaultProxy, Faults};
use integration_tests::history::{self, Sequencers};
use integration_tests::{object_state, Pipeline, Stack};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEYS: [&str; 3] = ["a b+c.txt", "dir/ü €.bin", "k"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_worker_processes_converge_under_any_history() {
    let stack = Stack::fast().await;
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds: Vec<u64> = match env("S3R_SEED") {
        Some(seed) => vec![seed],
        None => (0..env("S3R_SEEDS").unwrap_or(24)).collect(),
    };
    let total = seeds.len();
    let started = Instant::now();
    let failures: Vec<String> = futures::stream::iter(seeds)
        .map(|seed| one_history(&stack, seed))
        .buffer_unordered(4)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    eprintln!(
        "{total} histories in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} histories diverged; replay one with S3R_SEED=N:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A worker process on the fast stack, its S3 requests sent to `s3_endpoint`
/// (`S3R_CLI` names another build of the binary, e.g. an older one to compare).
fn worker(stack: &Stack, p: &Pipeline, config: &str, s3_endpoint: &str) -> Child {
    Command::new(std::env::var("S3R_CLI").unwrap_or_else(|_| BIN.to_string()))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL_S3", s3_endpoint)
        .env("AWS_ENDPOINT_URL_SQS", &stack.sqs_endpoint)
        .env("AWS_REGION", integration_tests::REGION)
        .env(
            "AWS_ACCESS_KEY_ID",
            std::env::var("S3R_TEST_WEED_ACCESS_KEY").unwrap(),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            std::env::var("S3R_TEST_WEED_SECRET_KEY").unwrap(),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("REPLICATOR_CONFIG", config)
        .env("EVENTS_QUEUE_URL", &p.events.url)
        .env("WORK_QUEUE_URL", &p.work.url)
        .env("RETRY_QUEUE_URL", &p.retry.url)
        .env("FAILED_QUEUE_URL", &p.failed.url)
        .env("RETRY_BASE_DELAY_SECONDS", "1")
        // `S3R_WORKER_LOG=info` shows what the workers did beside a divergence.
        .env(
            "RUST_LOG",
            std::env::var("S3R_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .args(["run", "--exit-when-idle", "2", "--concurrency", "8"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a worker")
}

/// Waits for a worker to exit on its own (idle); its stderr, and whether it succeeded.
async fn finished(mut child: Child) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        use std::io::Read;
        let _ = stderr.read_to_string(&mut err);
    }
    (status.success(), err)
}

async fn states(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> BTreeMap<String, Option<integration_tests::ObjectState>> {
    let mut out = BTreeMap::new();
    for key in KEYS {
        out.insert(key.to_string(), object_state(s3, bucket, key).await);
    }
    out
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
    let config = format!(
        r#"{{"Sources": [{{"Bucket": "{}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "all", "Priority": 1, "Status": "Enabled", "Filter": {{}},
              "DeleteMarkerReplication": {{"Status": "Enabled"}},
              "Destination": {{"Bucket": "{dst}", "Replicator": {{"AclMode": "none", "DeleteMode": "all"}}}}}}]}}}}]}}"#,
        p.source
    );
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            delay: 0.5,
            delay_for: Duration::from_millis(600 + seed % 100),
            delay_only: Some(Box::leak(format!("put /{dst}/").into_boxed_str())),
            seed,
            ..Faults::none()
        },
    )
    .await;
    let workers = [
        worker(stack, &p, &config, &proxy.endpoint),
        worker(stack, &p, &config, &stack.endpoint),
    ];

    // The history, made while the workers run: each change's event goes out shortly
    // after it (up to 0.4 s late, out of order), a quarter of them twice.
    let mut sequencers = Sequencers::default();
    let mut happened = Vec::new();
    let mut sends = Vec::new();
    while happened.len() < 14 {
        let Some(h) = history::change(
            stack,
            &p.source,
            &KEYS,
            versioned,
            &mut rng,
            &mut sequencers,
        )
        .await
        else {
            continue;
        };
        let copies = if rng.random_bool(0.25) { 2 } else { 1 };
        for _ in 0..copies {
            let late = Duration::from_millis(rng.random_range(0..400));
            let (stack, url, body) = (
                stack.clone(),
                p.events.url.clone(),
                history::notification(std::slice::from_ref(&h.record)),
            );
            sends.push(tokio::spawn(async move {
                tokio::time::sleep(late).await;
                stack
                    .send(
                        &integration_tests::Queue {
                            url,
                            arn: String::new(),
                        },
                        &body,
                    )
                    .await;
            }));
        }
        happened.push(h);
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..150))).await;
    }
    for send in sends {
        send.await.unwrap();
    }
    let mut problems = Vec::new();
    let mut logs = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        let (ok, err) = finished(w).await;
        if !ok {
            problems.push(format!("worker {i} did not exit cleanly: {err}"));
        } else if std::env::var("S3R_WORKER_LOG").is_ok() {
            logs.push(format!("worker {i}:\n{err}"));
        }
    }
    let source = states(&stack.s3, &p.source).await;
    let replica = states(&stack.s3, &dst).await;
    problems.extend(history::differences(&source, &replica));
    let parked = stack.drain(&p.failed).await;
    if !parked.is_empty() {
        problems.push(format!("parked jobs: {parked:?}"));
    }
    for queue in [&p.events, &p.work, &p.retry] {
        let left = stack.drain(queue).await;
        if !left.is_empty() {
            problems.push(format!("left in {}: {left:?}", queue.url));
        }
    }
    if problems.is_empty() {
        return None;
    }
    Some(
        format!(
            "seed {seed} ({}; {} writes held): {}\nhistory:\n{}\n",
            if versioned {
                "versioned"
            } else {
                "unversioned"
            },
            proxy
                .counts
                .delayed
                .load(std::sync::atomic::Ordering::Relaxed),
            problems.join("\n"),
            history::describe(&happened)
        ) + &logs.join("\n"),
    )
}
