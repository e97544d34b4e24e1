//! The CLI in scripts: a reader that goes away early, and arguments refused before
//! anything runs, each with a message that says what would be accepted.

mod common;

use std::process::{Command, Stdio};

use common::BIN;

/// `s3-replicator config check FILE | head -0`: no panic (status 101), but the quiet
/// end of any Unix tool whose reader left (141, 128 + SIGPIPE).
#[test]
fn a_reader_that_leaves_early_ends_it_quietly() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/config/full.json"
    );
    let mut child = Command::new(BIN)
        .args(["config", "check", fixture])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn refused(args: &[&str], says: &str) {
    let out = Command::new(BIN).args(args).env_clear().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
}

#[test]
fn arguments_are_checked_before_anything_runs() {
    refused(&["run", "--concurrency", "0"], "at least 1");
    refused(&["run", "--exit-when-idle", "5 minutes"], "30s, 5m or 1h");
    refused(&["dlq", "list", "--reason", "Bogus"], "DstBucketNotFound");
    refused(
        &["dlq", "purge", "--reason", "bogus", "--yes"],
        "unknown reason",
    );
    refused(&["setup", "notifications", "--bucket", "b"], "--queue-arn");
}

/// Log lines: JSON when stderr is not a terminal (as here), text when asked, and no
/// Rust debug formatting (`Some("...")`) in any field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_json_or_text_and_never_debug_formatted() {
    use integration_tests::{Pipeline, Stack};
    let stack = Stack::main().await;
    let p = Pipeline::creations_only(&stack).await;
    let dst = stack.bucket("dst").await;
    let doc = common::one_rule(&p.source, &dst);
    stack.put(&p.source, "logged.txt", b"x").await;
    let logs = |args: &[&str]| {
        let mut cmd = common::command(&stack, &p, &doc, &stack.endpoint);
        cmd.env("RUST_LOG", "info");
        let out = common::run(cmd, args);
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let json = logs(&["run", "--exit-when-idle", "2s"]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "worker started"),
        "{json}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["outcome"] == "replicated" && l["key"] == "logged.txt"),
        "{json}"
    );
    for line in &lines {
        for (field, value) in line.as_object().unwrap() {
            let text = value.to_string();
            assert!(
                !text.contains("Some(") && text != "\"None\"",
                "{field}: {text} in {line}"
            );
        }
    }
    stack.put(&p.source, "logged again.txt", b"y").await;
    let text = logs(&["--log-format", "text", "run", "--exit-when-idle", "2s"]);
    assert!(text.lines().any(|l| l.contains("worker started")), "{text}");
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()),
        "{text}"
    );
}
