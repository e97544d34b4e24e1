//! The CLI in scripts: a reader that goes away early, and arguments refused before
//! anything runs, each with a message that says what would be accepted.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_s3-replicator");

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
