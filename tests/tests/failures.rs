//! Losing nothing: faults injected between the worker and S3, and jobs that cannot
//! succeed. Every object ends replicated exactly, or in the failed queue with a reason.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use integration_tests::fault_proxy::{FaultProxy, Faults};
use integration_tests::{config, object_state, put_many, Pipeline, Stack};
use replicator::queues::job::Job;

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
            delay_skip: 0,
            answer: None,
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

/// A job that kills its worker every time (here: the replicate function, run under the
/// Runtime API emulator, is killed mid-copy, as Lambda ends an invocation that outlasts
/// its timeout) is redriven by SQS to the retry queue each time. Every redrive counts:
/// after the budget the job is parked as `LeaseExpired` with its history, instead of
/// cycling for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_its_worker_every_time_is_parked_after_its_budget() {
    use aws_sdk_sqs::types::QueueAttributeName;
    use integration_tests::lambda::{binary, LambdaFunction};
    use replicator::errors::FailureReason;
    use replicator::retry::{Retrier, RetryPolicy};

    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    stack.put(&p.source, "doc", b"never copied").await;
    // As the templates wire it: one receive, then SQS moves the job to the retry queue.
    stack
        .sqs
        .set_queue_attributes()
        .queue_url(&p.work.url)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(
                r#"{{"deadLetterTargetArn": "{}", "maxReceiveCount": "1"}}"#,
                p.retry.arn
            ),
        )
        .send()
        .await
        .unwrap();
    // Every copy is held far longer than any attempt lives.
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            delay: 1.0,
            delay_for: Duration::from_secs(120),
            delay_only: Some("x-amz-copy-source"),
            ..Faults::none()
        },
    )
    .await;
    let config = integration_tests::one_rule(
        &p.source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    );
    let env = vec![
        ("AWS_ENDPOINT_URL", stack.endpoint.clone()),
        ("AWS_ENDPOINT_URL_S3", proxy.endpoint.clone()),
        ("AWS_REGION", integration_tests::REGION.into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("REPLICATOR_CONFIG", config),
        ("WORK_QUEUE_URL", p.work.url.clone()),
        ("RETRY_QUEUE_URL", p.retry.url.clone()),
        ("FAILED_QUEUE_URL", p.failed.url.clone()),
    ];
    const BUDGET: u32 = 3;
    let retrier = Retrier {
        policy: RetryPolicy {
            max_attempts: BUDGET,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(900),
        },
        ..p.retrier()
    };
    stack
        .sqs
        .send_message()
        .queue_url(&p.work.url)
        .message_body(integration_tests::put_job(&p.source, "doc", &dst).to_body())
        .send()
        .await
        .unwrap();

    let mut killed = 0;
    for _ in 0..(BUDGET + 3) {
        // Lambda's poller takes the job (held for 2 s) and invokes the function...
        let received = stack
            .sqs
            .receive_message()
            .queue_url(&p.work.url)
            .visibility_timeout(2)
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap();
        let bodies: Vec<String> = received
            .messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_string))
            .collect();
        if bodies.is_empty() {
            break;
        }
        let replicate = LambdaFunction::start("replicate", &binary("replicate"), &env).await;
        assert!(replicate.ready(Duration::from_secs(30)).await.is_some());
        let batch = serde_json::to_value(integration_tests::sqs_batch(&bodies)).unwrap();
        let copies = || {
            proxy
                .heads
                .lock()
                .unwrap()
                .iter()
                .filter(|h| h.to_ascii_lowercase().contains("x-amz-copy-source"))
                .count()
        };
        let before = copies();
        let invocation = {
            let batch = batch.clone();
            let replicate = &replicate;
            async move { replicate.invoke(&batch, Duration::from_secs(900)).await }
        };
        // ...which is killed once its copy is under way.
        tokio::select! {
            _ = invocation => panic!("the held copy cannot finish"),
            _ = async {
                while copies() == before {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            } => {}
        }
        replicate.kill().await;
        killed += 1;
        // The job comes back; its receive count is spent, so SQS moves it to the retry
        // queue (moto does so when it is next received), and the retry function runs.
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let moved = stack
            .sqs
            .receive_message()
            .queue_url(&p.work.url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        assert!(moved.messages().is_empty(), "the job was not redriven");
        let redriven = stack.drain(&p.retry).await;
        assert_eq!(redriven.len(), 1, "killed {killed} times");
        let response = retrier
            .handle_batch(integration_tests::sqs_batch(&redriven))
            .await;
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(killed, BUDGET, "attempts before the job was parked");
    let parked = stack.drain(&p.failed).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    let job = Job::parse(&parked[0]).unwrap();
    assert_eq!(job.attempts, BUDGET);
    let last = job.last_error.unwrap();
    assert_eq!(last.reason, FailureReason::LeaseExpired);
    assert!(
        last.detail.contains("stopped or timed out"),
        "{}",
        last.detail
    );
    assert!(object_state(&stack.s3, &dst, "doc").await.is_none());
}

/// A source deleted between the job's HEAD and its copy (the copy is held by the proxy
/// meanwhile) is a race with the delete, not a failure: the job ends `SourceDeleted`,
/// nothing is parked or retried, and no replica appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_deleted_under_a_copy_is_a_skip_not_a_failure() {
    use replicator::config::clients::S3Clients;
    use replicator::copy::Outcome;
    use replicator::replicate::Replicator;

    let stack = Stack::main().await;
    let source = stack.bucket("src").await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&integration_tests::one_rule(
        &source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            delay: 1.0,
            delay_for: Duration::from_millis(1500),
            delay_only: Some("x-amz-copy-source"),
            ..Faults::none()
        },
    )
    .await;
    let replicator = std::sync::Arc::new(Replicator::new(
        cfg,
        S3Clients::same_endpoint(stack.s3_through(&proxy.endpoint)),
        stack.sqs.clone(),
        None,
    ));
    stack.put(&source, "brief", b"here for a moment").await;
    let job = integration_tests::put_job(&source, "brief", &dst);
    let running = {
        let (replicator, job) = (replicator.clone(), job.clone());
        tokio::spawn(async move { replicator.run(&job).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.delete(&source, "brief").await;
    let outcome = running.await.unwrap();
    assert_eq!(
        outcome.unwrap_or_else(|e| panic!("{e}")),
        Outcome::Skipped {
            reason: "SourceDeleted"
        }
    );
    // The copy was held (and a first copy to moto is sent twice: once to learn whether
    // it checks conditions, which a copy whose source is gone cannot tell).
    assert!(proxy.counts.delayed.load(Ordering::Relaxed) >= 1);
    assert!(object_state(&stack.s3, &dst, "brief").await.is_none());
}

/// A destination's keys rotated under a running process: the secret now holds new
/// keys, the process still signs with the old ones, and the destination (s3s-fs, which
/// checks signatures) rejects them. The secret is read again once and the job goes
/// through, instead of every job being parked until the old keys expire. Keys that
/// stay wrong end as a permanent refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_destination_keys_are_read_again_once() {
    use integration_tests::{object_without_tags, put_job, secret_keys, unique};
    use replicator::config::clients::S3Clients;
    use replicator::copy::Outcome;
    use replicator::replicate::Replicator;

    let stack = Stack::main().await;
    let s3s = Stack::s3s_fs().await;
    let source = stack.bucket("src").await;
    let dst = unique("strict");
    s3s.s3.create_bucket().bucket(&dst).send().await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let secret = unique("rotating-keys");
    secrets
        .create_secret()
        .name(&secret)
        .secret_string(secret_keys("OLDACCESSKEY", "old-secret-key"))
        .send()
        .await
        .unwrap();
    let cfg = config(&integration_tests::one_rule(
        &source,
        &format!(
            r#"{{"Bucket": "{dst}", "Replicator": {{"EndpointUrl": "{}", "ForcePathStyle": true,
                "AclMode": "none", "Credentials": {{"Secret": "{secret}"}}}}}}"#,
            s3s.endpoint
        ),
    ));
    // Started with the old keys...
    let clients = S3Clients::build(&stack.sdk, stack.s3.clone(), &cfg, None)
        .await
        .unwrap();
    let replicator = Replicator::new(cfg, clients, stack.sqs.clone(), None);
    // ...which are then rotated.
    let rotate = |keys: String| {
        let (secrets, secret) = (secrets.clone(), secret.clone());
        async move {
            secrets
                .put_secret_value()
                .secret_id(secret)
                .secret_string(keys)
                .send()
                .await
                .unwrap();
        }
    };
    rotate(secret_keys(
        &std::env::var("S3R_TEST_S3S_ACCESS_KEY").unwrap(),
        &std::env::var("S3R_TEST_S3S_SECRET_KEY").unwrap(),
    ))
    .await;
    stack.put(&source, "k", b"signed with the new keys").await;
    // With a sequencer the first request to the destination is a HEAD of the replica,
    // whose 403 carries no code (s3s-fs closes the connection under a refused upload).
    let mut job = put_job(&source, "k", &dst);
    job.source.sequencer = Some("0055AED6DCD90281E5".into());
    let outcome = replicator.run(&job).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    // The bytes (s3s-fs reports the upload's aws-chunked encoding as the object's).
    let (replica, original) = (
        object_without_tags(&s3s.s3, &dst, "k").await.unwrap(),
        object_without_tags(&stack.s3, &source, "k").await.unwrap(),
    );
    assert_eq!(
        (replica.size, replica.sha256),
        (original.size, original.sha256)
    );

    // Keys that are wrong for good: one more read, then a permanent failure.
    rotate(secret_keys("WRONGACCESSKEY", "wrong-secret-key")).await;
    let clients = S3Clients::build(&stack.sdk, stack.s3.clone(), &replicator.config, None)
        .await
        .unwrap();
    let stuck = Replicator::new(replicator.config.clone(), clients, stack.sqs.clone(), None);
    stack.put(&source, "k2", b"never").await;
    let mut job = put_job(&source, "k2", &dst);
    job.source.sequencer = Some("0055AED6DCD90281E5".into());
    let err = stuck.run(&job).await.unwrap_err();
    assert!(err.reason.is_destination_refusal(), "{err}");
    assert!(!err.is_retryable());
}
