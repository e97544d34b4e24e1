//! The worker's metrics for Prometheus: scraped during a run, the counters say what the
//! run did, per source, destination and rule and in total; the run's last log line
//! gives the same totals.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{command, one_rule};
use integration_tests::{Pipeline, Stack};

/// The endpoint's text, or nothing while it is not up.
fn scrape(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The value of the sample whose line starts with `name` and holds every label.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            let bare = series.split('{').next() == Some(name);
            bare && labels
                .iter()
                .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
                && (labels.is_empty() != series.contains('{'))
        })
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_serves_what_it_did_to_prometheus() {
    let stack = Stack::main().await;
    let p = Pipeline::creations_only(&stack).await;
    let dst = stack.bucket("dst").await;
    let doc = one_rule(&p.source, &dst);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let worker = command(&stack, &p, &doc, &stack.endpoint)
        .args([
            "run",
            "--exit-when-idle",
            "4s",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sizes = [10usize, 200, 3000];
    for (i, size) in sizes.iter().enumerate() {
        stack
            .put(&p.source, &format!("m/{i}"), &vec![b'x'; *size])
            .await;
    }
    let labels = [
        ("SourceBucket", p.source.as_str()),
        ("DestinationBucket", dst.as_str()),
        ("RuleId", "all"),
    ];
    let started = Instant::now();
    let text = loop {
        if let Some(text) = scrape(port) {
            if sample(&text, "OperationsReplicated", &labels) == Some(3.0) {
                break text;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no metrics: {:?}",
            scrape(port)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        sample(&text, "OperationsReplicated", &[]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "BytesReplicated", &labels),
        Some(3210.0),
        "{text}"
    );
    // Latency from each event's time to its replica, as a summary with its count.
    assert_eq!(
        sample(&text, "ReplicationLatency_count", &labels),
        Some(3.0),
        "{text}"
    );
    // `status` reads the same endpoint.
    let out = common::run(
        command(&stack, &p, &doc, &stack.endpoint),
        &[
            "status",
            "--metrics",
            &format!("127.0.0.1:{port}"),
            "--output",
            "json",
        ],
    );
    assert!(out.status.success());
    let screen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(screen["worker"]["replicated"], 3.0, "{screen}");
    assert!(
        screen["worker"]["latency_p99_ms"].as_f64().is_some(),
        "{screen}"
    );
    let out = worker.wait_with_output().unwrap();
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stderr);
    let last: serde_json::Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "worker finished")
        .unwrap_or_else(|| panic!("no totals: {logs}"));
    assert_eq!(
        (last["replicated"].as_u64(), last["bytes"].as_u64()),
        (Some(3), Some(3210)),
        "{last}"
    );
}

/// `status --cloudwatch` reads the deployed functions' metrics from CloudWatch (the
/// parsing is tested against mocked answers in `replicator::operator::recent`). A CloudWatch it
/// cannot read — moto's speaks an older protocol than the SDK's — costs that line
/// only: the rest of the screen is there, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_without_cloudwatch_still_shows_the_rest() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let doc = one_rule(&p.source, "dst");
    let out = common::run(
        command(&stack, &p, &doc, &stack.endpoint),
        &["status", "--cloudwatch", "15m", "--output", "json"],
    );
    assert!(out.status.success());
    let screen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        screen["cloudwatch_error"]
            .as_str()
            .unwrap()
            .contains("GetMetricData"),
        "{screen}"
    );
    assert_eq!(screen["queues"].as_array().unwrap().len(), 4, "{screen}");
    let table = common::run(
        command(&stack, &p, &doc, &stack.endpoint),
        &["status", "--cloudwatch"],
    );
    assert!(String::from_utf8_lossy(&table.stdout).contains("CloudWatch: unavailable"));
}
