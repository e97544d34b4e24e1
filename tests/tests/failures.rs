//! Losing nothing: faults injected between the worker and S3, and jobs that cannot
//! succeed. Every object ends replicated exactly, or in the failed queue with a reason.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use integration_tests::fault_proxy::{FaultProxy, Faults};
use integration_tests::{config, object_state, put_many, Pipeline, Stack};
use replicator::job::Job;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_injected_faults_every_object_is_replicated_or_parked_with_a_reason() {
    let stack = Stack::main().await;
    let p = Pipeline::creations_only(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&format!(
        r#"{{"Sources": [{{"Bucket": "{}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "all", "Priority": 1, "Status": "Enabled", "Filter": {{}},
              "Destination": {{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}},
              "DeleteMarkerReplication": {{"Status": "Disabled"}}}}]}}}}]}}"#,
        p.source
    ));
    let keys = put_many(&stack, &p.source, "faulty/", 240).await;

    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            slow_down: 0.10,
            internal_error: 0.06,
            reset_before: 0.05,
            reset_after: 0.05,
            delay: 0.05,
            delay_for: Duration::from_millis(300),
            delay_only: None,
            seed: 20261122,
        },
    )
    .await;
    // No SDK retries: every fault reaches our own retry path (retry queue, backoff,
    // budget, failed queue) instead of being absorbed inside one request.
    let faulty = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(
            &stack.sdk.to_builder().endpoint_url(&proxy.endpoint).build(),
        )
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        // A stalled request fails as Timeout and is retried, like any other fault.
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(Duration::from_secs(10))
                .build(),
        )
        .build(),
    );
    p.run_worker_on(&cfg, faulty).await;

    let counts = &proxy.counts;
    eprintln!("faults: {}", counts.summary());
    for (name, n) in [
        ("503", &counts.slow_down),
        ("500", &counts.internal_error),
        ("reset before", &counts.reset_before),
        ("reset after", &counts.reset_after),
        ("delay", &counts.delayed),
    ] {
        assert!(
            n.load(Ordering::Relaxed) > 3,
            "too few {name} faults injected to prove anything: {}",
            counts.summary()
        );
    }

    let parked: HashMap<String, Job> = stack
        .drain(&p.failed)
        .await
        .iter()
        .map(|b| {
            let job =
                Job::parse(b).unwrap_or_else(|e| panic!("parked message is not a job: {e}: {b}"));
            (job.source.key.clone(), job)
        })
        .collect();
    let mut replicated = 0;
    for key in &keys {
        let source = object_state(&stack.s3, &p.source, key).await.unwrap();
        match object_state(&stack.s3, &dst, key).await {
            // Present means whole: same bytes and headers, never half-written.
            Some(replica) => {
                assert_eq!(replica, source, "{key}");
                replicated += 1;
            }
            None => {
                let job = parked
                    .get(key)
                    .unwrap_or_else(|| panic!("{key} was lost: neither replicated nor parked"));
                let last = job.last_error.as_ref().expect("a parked job says why");
                assert!(job.attempts >= 1 && !last.detail.is_empty(), "{job:?}");
            }
        }
    }
    eprintln!("{replicated} replicated, {} parked", parked.len());
    // With a quarter of requests faulted and five attempts, all but a few get through.
    assert!(
        replicated >= keys.len() * 9 / 10,
        "retries should carry almost everything through: {replicated}"
    );
    for job in parked.values() {
        let reason = job.last_error.as_ref().unwrap().reason;
        assert!(
            reason.is_retryable() && job.attempts == 5,
            "only a spent budget parks a transient failure: {job:?}"
        );
    }
    for queue in [&p.events, &p.work, &p.retry] {
        assert_eq!(
            stack.depth(queue).await,
            0,
            "{} still holds messages",
            queue.url
        );
    }
}
