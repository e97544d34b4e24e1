//! `s3-replicator run` fails fast and says why: a queue that does not exist, no AWS
//! region; and an endpoint variable set to nothing is no endpoint.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{command, one_rule};
use integration_tests::{Pipeline, Stack};

/// Runs the worker (idle after 1 s) and waits at most `within` for it to exit.
fn run_within(mut cmd: std::process::Command, within: Duration) -> Output {
    let mut child = cmd
        .args(["run", "--exit-when-idle", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start s3-replicator");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > within {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {within:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_queue_that_does_not_exist_stops_the_worker_at_once_naming_it() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let missing = p.work.url.replace("work-", "no-such-queue-");
    let mut cmd = command(
        &stack,
        &p,
        &one_rule(&p.source, "dst-bucket"),
        &stack.endpoint,
    );
    cmd.env("RETRY_QUEUE_URL", &missing);
    let out = run_within(cmd, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("RETRY_QUEUE_URL") && stderr.contains(&missing),
        "{stderr}"
    );
}

#[tokio::test]
async fn no_region_is_one_line_and_an_empty_endpoint_is_none() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let config = one_rule(&p.source, "dst-bucket");

    let mut cmd = command(&stack, &p, &config, &stack.endpoint);
    // No HOME either (the command clears the environment): no profile to read one from.
    cmd.env_remove("AWS_REGION").env("RUST_LOG", "info");
    let out = run_within(cmd, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() <= 2 && lines.iter().any(|l| l.contains("AWS_REGION")),
        "{stderr}"
    );
    assert!(!stderr.to_ascii_lowercase().contains("warn"), "{stderr}");

    // AWS_ENDPOINT_URL= (empty) with the per-service variables set: no panic, it runs.
    let mut cmd = command(&stack, &p, &config, &stack.endpoint);
    cmd.env("AWS_ENDPOINT_URL", "")
        .env("AWS_ENDPOINT_URL_SQS", &stack.endpoint);
    let out = run_within(cmd, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every request to a bucket whose owner the worker knows says who must own it
/// (`x-amz-expected-bucket-owner`): the sources and the configuration object as the
/// process's own account (`REPLICATOR_ACCOUNT`), a destination as its rule's
/// `Account`. S3 refuses a request to a bucket someone else owns now (deleted, its
/// name taken), instead of handing us a stranger's configuration or taking our writes.
/// moto does not check the header; a recording proxy shows it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_name_the_owner_of_every_bucket_they_reach() {
    use integration_tests::fault_proxy::{FaultProxy, Faults};
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let config_bucket = stack.bucket("cfg").await;
    let doc = format!(
        r#"{{"Sources": [{{"Bucket": "{src}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "all", "Priority": 1, "Status": "Enabled", "Filter": {{}},
              "Destination": {{"Bucket": "{dst}", "Account": "210987654321", "Replicator": {{"AclMode": "none"}}}},
              "DeleteMarkerReplication": {{"Status": "Disabled"}}}}]}}}}]}}"#,
        src = p.source
    );
    stack
        .put(&config_bucket, "replication.json", doc.as_bytes())
        .await;
    stack.put(&p.source, "k", b"x").await;
    let mut job = integration_tests::put_job(&p.source, "k", &dst);
    job.rule_id = "all".into();
    stack.send(&p.work, &job.to_body()).await;
    let recording = FaultProxy::start(&stack.endpoint, Faults::none()).await;
    let mut cmd = command(
        &stack,
        &p,
        &format!("s3://{config_bucket}/replication.json"),
        &recording.endpoint,
    );
    cmd.env("REPLICATOR_ACCOUNT", "123456789012");
    let out = run_within(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stack.keys(&dst, "").await.contains(&"k".to_string()));
    let heads = recording.heads.lock().unwrap().clone();
    let owner_of = |bucket: &str| -> Vec<String> {
        heads
            .iter()
            .filter(|h| {
                h.split_whitespace()
                    .nth(1)
                    .is_some_and(|path| path.starts_with(&format!("/{bucket}/")))
            })
            .map(|h| {
                h.lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("x-amz-expected-bucket-owner:")
                            .map(|v| v.trim().to_string())
                    })
                    .unwrap_or_else(|| format!("none in {}", h.lines().next().unwrap_or("")))
            })
            .collect()
    };
    for (bucket, owner) in [
        (config_bucket.as_str(), "123456789012"),
        (p.source.as_str(), "123456789012"),
        (dst.as_str(), "210987654321"),
    ] {
        let seen = owner_of(bucket);
        assert!(!seen.is_empty(), "{bucket}: no request seen");
        assert!(seen.iter().all(|o| o == owner), "{bucket}: {seen:?}");
    }
}
