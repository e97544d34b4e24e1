//! Running the real `s3-replicator` binary against the local stack.
// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};

use integration_tests::{Pipeline, Stack};

pub const BIN: &str = env!("CARGO_BIN_EXE_s3-replicator");

/// The environment the worker and the Lambdas read, pointed at the local stack.
pub fn command(stack: &Stack, p: &Pipeline, config: &str, s3_endpoint: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AWS_ENDPOINT_URL_S3", s3_endpoint)
        .env("AWS_REGION", integration_tests::REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("REPLICATOR_CONFIG", config)
        .env("EVENTS_QUEUE_URL", &p.events.url)
        .env("WORK_QUEUE_URL", &p.work.url)
        .env("RETRY_QUEUE_URL", &p.retry.url)
        .env("FAILED_QUEUE_URL", &p.failed.url)
        .env("RETRY_BASE_DELAY_SECONDS", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

pub fn run(mut cmd: Command, args: &[&str]) -> Output {
    let out = cmd.args(args).output().expect("run s3-replicator");
    eprintln!(
        "$ s3-replicator {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn one_rule(source: &str, destination: &str) -> String {
    format!(
        r#"{{"Sources": [{{"Bucket": "{source}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "all", "Priority": 1, "Status": "Enabled", "Filter": {{}},
              "Destination": {{"Bucket": "{destination}", "Replicator": {{"AclMode": "none"}}}},
              "DeleteMarkerReplication": {{"Status": "Disabled"}}}}]}}}}]}}"#
    )
}

/// `setup notifications`: the bucket's events to the queue.
pub fn wire(cmd: Command, bucket: &str, queue_arn: &str) -> Output {
    run(
        cmd,
        &[
            "setup",
            "notifications",
            "--bucket",
            bucket,
            "--queue-arn",
            queue_arn,
        ],
    )
}
