//! A worker killed with SIGKILL in the middle of a batch loses nothing: the messages it
//! held come back after their visibility timeout and a restarted worker finishes them.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use common::{command, one_rule, BIN};
use integration_tests::fault_proxy::{FaultProxy, Faults};
use integration_tests::{object_state, put_many, Pipeline, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_and_restarted_replicates_everything() {
    let stack = Stack::main().await;
    let p = Pipeline::creations_only(&stack).await;
    for queue in [&p.events, &p.work] {
        stack
            .sqs
            .set_queue_attributes()
            .queue_url(&queue.url)
            .attributes(QueueAttributeName::VisibilityTimeout, "3")
            .send()
            .await
            .unwrap();
    }
    let dst = stack.bucket("dst").await;
    let doc = one_rule(&p.source, &dst);
    let keys = put_many(&stack, &p.source, "killed/", 150).await;

    // Every S3 request takes 150 ms more, so batches are in flight when the kill lands.
    let slow = FaultProxy::start(
        &stack.endpoint,
        Faults {
            delay: 1.0,
            delay_for: Duration::from_millis(150),
            seed: 1,
            ..Faults::none()
        },
    )
    .await;
    let mut first = command(&stack, &p, &doc, &slow.endpoint);
    let mut worker = first
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start worker");
    let started = Instant::now();
    let replicated = loop {
        let n = stack
            .s3
            .list_objects_v2()
            .bucket(&dst)
            .send()
            .await
            .unwrap()
            .key_count()
            .unwrap_or(0);
        if n >= 20 {
            break n;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the worker made no progress"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    worker.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
    let status = worker.wait().unwrap();
    assert!(!status.success(), "killed, not exited: {status:?}");
    let in_flight = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&p.work.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    eprintln!(
        "killed after {replicated} replicas; work queue in flight: {:?}",
        in_flight.attributes()
    );
    assert!(
        (replicated as usize) < keys.len(),
        "the kill must land before the end"
    );

    let mut second = command(&stack, &p, &doc, &stack.endpoint);
    let mut restarted = second
        .args(["run", "--exit-when-idle", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = restarted.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = restarted.kill();
            panic!("the restarted worker did not finish within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "{BIN} run exited with {status:?}");
    for key in &keys {
        let replica = object_state(&stack.s3, &dst, key)
            .await
            .unwrap_or_else(|| panic!("{key} lost after the kill"));
        assert_eq!(
            replica,
            object_state(&stack.s3, &p.source, key).await.unwrap(),
            "{key}"
        );
    }
    for queue in [&p.events, &p.work, &p.retry, &p.failed] {
        assert_eq!(stack.depth(queue).await, 0, "{}", queue.url);
    }
}
