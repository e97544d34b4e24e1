//! `setup notifications` adds our queue to a bucket's notifications and keeps what was
//! there: PutBucketNotificationConfiguration replaces the whole document.

mod common;

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, LambdaFunctionConfiguration, NotificationConfiguration,
    NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter, TopicConfiguration,
};
use common::{command, run};
use integration_tests::{Pipeline, Stack};
use serde_json::Value;

fn filter(name: FilterRuleName, value: &str) -> NotificationConfigurationFilter {
    NotificationConfigurationFilter::builder()
        .key(
            S3KeyFilter::builder()
                .filter_rules(FilterRule::builder().name(name).value(value).build())
                .build(),
        )
        .build()
}

/// The bucket's notification configuration (without the response's request id).
async fn current(stack: &Stack, bucket: &str) -> NotificationConfiguration {
    let out = stack
        .s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    NotificationConfiguration::builder()
        .set_topic_configurations(out.topic_configurations)
        .set_queue_configurations(out.queue_configurations)
        .set_lambda_function_configurations(out.lambda_function_configurations)
        .set_event_bridge_configuration(out.event_bridge_configuration)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_notifications_survive_and_a_second_run_changes_nothing() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let bucket = stack.bucket("busy").await;
    let other = stack.queue("restores").await;
    // What the bucket already had. (moto wants lower-case filter rule names.)
    let existing = NotificationConfiguration::builder()
        .topic_configurations(
            TopicConfiguration::builder()
                .id("lost-objects")
                .topic_arn("arn:aws:sns:us-east-1:123456789012:ops")
                .events(Event::from("s3:ReducedRedundancyLostObject"))
                .build()
                .unwrap(),
        )
        .queue_configurations(
            QueueConfiguration::builder()
                .id("restores")
                .queue_arn(&other.arn)
                .events(Event::from("s3:ObjectRestore:*"))
                .filter(filter(FilterRuleName::from("prefix"), "logs/"))
                .build()
                .unwrap(),
        )
        .lambda_function_configurations(
            LambdaFunctionConfiguration::builder()
                .id("thumbnails")
                .lambda_function_arn("arn:aws:lambda:us-east-1:123456789012:function:thumbs")
                .events(Event::from("s3:LifecycleTransition"))
                .filter(filter(FilterRuleName::from("suffix"), ".jpg"))
                .build()
                .unwrap(),
        )
        .build();
    stack
        .s3
        .put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(existing)
        .send()
        .await
        .unwrap();
    let before = current(&stack, &bucket).await;

    let doc = common::one_rule(&bucket, "unused-destination");
    let cmd = || command(&stack, &p, &doc, &stack.endpoint);
    let args = [
        "setup",
        "notifications",
        "--bucket",
        bucket.as_str(),
        "--queue-arn",
        p.events.arn.as_str(),
    ];

    // Dry run: shows the merged document, writes nothing.
    let out = run(cmd(), &[&args[..], &["--dry-run"]].concat());
    assert!(out.status.success());
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["Changes"], true);
    let queues = shown["NotificationConfiguration"]["QueueConfigurations"]
        .as_array()
        .unwrap();
    assert_eq!(queues.len(), 2);
    assert!(queues
        .iter()
        .any(|q| q["Id"] == "s3-replicator" && q["QueueArn"] == p.events.arn.as_str()));
    assert_eq!(
        current(&stack, &bucket).await,
        before,
        "a dry run changes nothing"
    );

    let out = run(cmd(), &args);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 other notification setting(s) kept"));
    let after = current(&stack, &bucket).await;
    assert_eq!(after.topic_configurations(), before.topic_configurations());
    assert_eq!(
        after.lambda_function_configurations(),
        before.lambda_function_configurations()
    );
    assert_eq!(after.queue_configurations().len(), 2);
    assert!(
        after
            .queue_configurations()
            .contains(&before.queue_configurations()[0]),
        "the other queue and its filter"
    );
    let ours = after
        .queue_configurations()
        .iter()
        .find(|q| q.id() == Some("s3-replicator"))
        .unwrap();
    assert_eq!(ours.queue_arn(), p.events.arn);

    // Idempotent.
    let out = run(cmd(), &args);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already configured"));
    assert_eq!(current(&stack, &bucket).await, after);

    // And it works: an upload reaches the events queue.
    stack.drain(&p.events).await;
    stack.put(&bucket, "hello.txt", b"hi").await;
    let bodies = stack.drain(&p.events).await;
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("ObjectCreated") && b.contains("hello.txt")),
        "{bodies:?}"
    );
}

/// Direct delivery: `--function-arn` moves our entry from the queues to the functions
/// (the other function's entry stays), and `--queue-arn` moves it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_delivery_wires_the_ingest_function_and_back() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let bucket = stack.bucket("direct").await;
    let doc = common::one_rule(&bucket, "unused-destination");
    let cmd = || command(&stack, &p, &doc, &stack.endpoint);
    let setup = |target: &[&str]| {
        let mut args = vec!["setup", "notifications", "--bucket", bucket.as_str()];
        args.extend_from_slice(target);
        run(cmd(), &args)
    };
    assert!(setup(&["--queue-arn", &p.events.arn]).status.success());
    let ingest = "arn:aws:lambda:us-east-1:123456789012:function:s3-replicator-ingest";
    let out = setup(&["--function-arn", ingest]);
    assert!(out.status.success());
    let after = current(&stack, &bucket).await;
    assert!(after.queue_configurations().is_empty(), "{after:?}");
    let functions = after.lambda_function_configurations();
    assert_eq!(functions.len(), 1, "{after:?}");
    assert_eq!(functions[0].lambda_function_arn(), ingest);
    assert_eq!(functions[0].id(), Some("s3-replicator"));
    assert!(setup(&["--queue-arn", &p.events.arn]).status.success());
    let back = current(&stack, &bucket).await;
    assert!(back.lambda_function_configurations().is_empty());
    assert_eq!(back.queue_configurations()[0].queue_arn(), p.events.arn);
    // One of the two is needed, and only one.
    assert!(!setup(&[]).status.success());
    assert!(
        !setup(&["--queue-arn", &p.events.arn, "--function-arn", ingest])
            .status
            .success()
    );
}

/// `config check --online` reaches every bucket the document names, each destination
/// with its own keys, and reads the sources' wiring: it fails, saying what to do,
/// until the destination exists and the events are wired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_online_finds_what_is_missing() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let fast = Stack::fast().await;
    let p = Pipeline::unwired(&stack).await;
    let far = integration_tests::unique("far");
    let strict = fast.bucket("strict").await;
    let (weed_keys, _) = integration_tests::keys_secret(&stack, "S3R_TEST_WEED").await;
    let doc = format!(
        r#"{{"Sources": [{{"Bucket": "{src}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "far", "Priority": 1, "Status": "Enabled", "Filter": {{}},
              "Destination": {{"Bucket": "{far}", "Replicator": {{"EndpointUrl": "{endpoint}", "ForcePathStyle": true,
                 "AclMode": "none", "Credentials": {{"DefaultChain": true}}}}}},
              "DeleteMarkerReplication": {{"Status": "Disabled"}}}},
            {{"ID": "strict", "Priority": 2, "Status": "Enabled", "Filter": {{}},
              "Destination": {{"Bucket": "{strict}", "Replicator": {{"EndpointUrl": "{weed}", "ForcePathStyle": true,
                 "AclMode": "none", "Credentials": {{"Secret": "{weed_keys}"}}}}}},
              "DeleteMarkerReplication": {{"Status": "Disabled"}}}}]}}}}]}}"#,
        src = p.source,
        endpoint = other.endpoint,
        weed = fast.endpoint
    );
    let cmd = || command(&stack, &p, &doc, &stack.endpoint);
    let out = run(cmd(), &["config", "check", "--online", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&str> = report["online"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        vec![
            format!("notifications of {}", p.source),
            format!("destination {far} at {} (rule far)", other.endpoint)
        ]
    );
    let table = run(cmd(), &["config", "check", "--online"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("setup notifications --bucket"));

    other.s3.create_bucket().bucket(&far).send().await.unwrap();
    let wired = common::wire(cmd(), &p.source, &p.events.arn);
    assert!(wired.status.success());
    let out = run(cmd(), &["config", "check", "--online"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    // The source, its notifications, and each destination with how its writes are
    // ordered: moto ignores CopyObject's conditions (by recheck); SeaweedFS checks them.
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        6,
        "{text}"
    );
    assert!(text.contains(&p.events.arn), "{text}");
    let line = |bucket: &str| {
        text.lines()
            .find(|l| l.contains(&format!("ordering of writes to {bucket}")))
            .unwrap_or_else(|| panic!("{bucket}: {text}"))
            .to_string()
    };
    assert!(
        line(&far).contains("by recheck") && line(&far).contains("CopyObject"),
        "{text}"
    );
    assert!(line(&strict).contains("exact"), "{text}");
    // The probes left nothing behind.
    assert!(other.keys(&far, "").await.is_empty());
    assert!(fast.keys(&strict, "").await.is_empty());
}

/// `setup queues` makes the worker's queues as the templates do, twice without harm,
/// and a worker on them replicates a bucket's events end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_queues_makes_what_the_worker_runs_on() {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let doc = common::one_rule(&p.source, &dst);
    let name = integration_tests::unique("s3r");
    let cmd = || command(&stack, &p, &doc, &stack.endpoint);
    let out = run(
        cmd(),
        &["setup", "queues", "--name", &name, "--output", "json"],
    );
    assert!(out.status.success());
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let again = run(
        cmd(),
        &["setup", "queues", "--name", &name, "--output", "json"],
    );
    assert!(again.status.success());
    assert_eq!(
        serde_json::from_slice::<Value>(&again.stdout).unwrap(),
        made
    );
    let attributes = |url: &str| {
        let stack = stack.clone();
        let url = url.to_string();
        async move {
            stack
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(A::All)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap_or_default()
        }
    };
    let work = attributes(made["work"]["url"].as_str().unwrap()).await;
    let redrive: Value = serde_json::from_str(&work[&A::RedrivePolicy]).unwrap();
    assert_eq!(redrive["deadLetterTargetArn"], made["retry"]["arn"]);
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    assert_eq!(work[&A::VisibilityTimeout], "720");
    let retry = attributes(made["retry"]["url"].as_str().unwrap()).await;
    let redrive: Value = serde_json::from_str(&retry[&A::RedrivePolicy]).unwrap();
    assert_eq!(redrive["deadLetterTargetArn"], made["failed"]["arn"]);
    let events = attributes(made["events"]["url"].as_str().unwrap()).await;
    let policy: Value = serde_json::from_str(&events[&A::Policy]).unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "s3.amazonaws.com");
    assert_eq!(
        statement["Condition"]["ArnLike"]["aws:SourceArn"][0],
        format!("arn:aws:s3:::{}", p.source)
    );

    // The printed variables and ARN are all a worker needs.
    let table = run(cmd(), &["setup", "queues", "--name", &name]);
    let text = String::from_utf8_lossy(&table.stdout).into_owned();
    let var = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_string()
    };
    let wired = common::wire(cmd(), &p.source, made["events"]["arn"].as_str().unwrap());
    assert!(wired.status.success());
    let events_arn = made["events"]["arn"].as_str().unwrap();
    let again = run(
        cmd(),
        &[
            "setup",
            "notifications",
            "--bucket",
            &p.source,
            "--queue-arn",
            events_arn,
            "--output",
            "json",
        ],
    );
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (
            again[0]["bucket"].as_str(),
            again[0]["changed"].as_bool(),
            again[0]["target"].as_str()
        ),
        (Some(p.source.as_str()), Some(false), Some(events_arn))
    );
    stack.put(&p.source, "via setup queues.txt", b"hello").await;
    let mut worker = std::process::Command::new(common::BIN);
    worker
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AWS_REGION", integration_tests::REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("REPLICATOR_CONFIG", &doc);
    for v in [
        "EVENTS_QUEUE_URL",
        "WORK_QUEUE_URL",
        "RETRY_QUEUE_URL",
        "FAILED_QUEUE_URL",
    ] {
        worker.env(v, var(v));
    }
    assert!(run(worker, &["run", "--exit-when-idle", "2s"])
        .status
        .success());
    let replica = stack
        .s3
        .get_object()
        .bucket(&dst)
        .key("via setup queues.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &replica.body.collect().await.unwrap().into_bytes()[..],
        b"hello"
    );
}

/// S3 sends notifications only to a queue or function in the bucket's own region: a
/// target in another is refused before anything is written, saying where the stack
/// belongs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_in_another_region_is_refused_before_anything_changes() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let elsewhere = p.events.arn.replace(":us-east-1:", ":eu-west-1:");
    let out = common::wire(
        command(&stack, &p, "{}", &stack.endpoint),
        &p.source,
        &elsewhere,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("us-east-1") && err.contains("eu-west-1") && err.contains("Deploy the stack"),
        "{err}"
    );
    let now = replicator::events::notifications::current(&stack.s3, &p.source)
        .await
        .unwrap();
    assert!(now.queue_configurations().is_empty());
}

/// PutBucketNotificationConfiguration checks every destination of the bucket: a
/// queue policy made moments ago may not have reached S3 yet. The write is tried
/// again, a second more apart each time; `--skip-destination-validation` writes
/// without the check (for a bucket whose other entries have gone stale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_s3_cannot_validate_yet_is_tried_again() {
    use integration_tests::fault_proxy::{Answer, FaultProxy, Faults};
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            answer: Some(Answer {
                matching: "put && ?notification",
                status: "400 Bad Request",
                code: "InvalidArgument",
                message: "Unable to validate the following destination configurations",
                headers: "",
                times: 2,
            }),
            ..Faults::none()
        },
    )
    .await;
    let out = common::wire(
        command(&stack, &p, "{}", &proxy.endpoint),
        &p.source,
        &p.events.arn,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        proxy.count("?notification") - proxy.count("get /"),
        3,
        "two refused, one written"
    );
    let now = replicator::events::notifications::current(&stack.s3, &p.source)
        .await
        .unwrap();
    assert_eq!(now.queue_configurations().len(), 1);

    let recording = FaultProxy::start(&stack.endpoint, Faults::none()).await;
    let other = stack.queue("other").await;
    let out = run(
        command(&stack, &p, "{}", &recording.endpoint),
        &[
            "setup",
            "notifications",
            "--bucket",
            &p.source,
            "--queue-arn",
            &other.arn,
            "--skip-destination-validation",
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        recording.count("x-amz-skip-destination-validation: true"),
        1
    );
}

/// A source with Object Lock needs it at each destination: S3 refuses a replication
/// rule toward one without it, and so does `config check --online`.
#[tokio::test]
async fn config_check_online_refuses_a_destination_without_object_lock() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let lock_bucket = |prefix: &'static str| {
        let s3 = stack.s3.clone();
        async move {
            let name = integration_tests::unique(prefix);
            s3.create_bucket()
                .bucket(&name)
                .object_lock_enabled_for_bucket(true)
                .send()
                .await
                .unwrap();
            name
        }
    };
    let source = lock_bucket("locked-src").await;
    let locked = lock_bucket("locked-dst").await;
    let plain = stack.bucket("plain").await;
    let doc = format!(
        r#"{{"Sources": [{{"Bucket": "{source}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "locked", "Priority": 1, "Status": "Enabled", "Filter": {{"Prefix": "a/"}},
              "Destination": {{"Bucket": "{locked}"}}, "DeleteMarkerReplication": {{"Status": "Disabled"}}}},
            {{"ID": "plain", "Priority": 2, "Status": "Enabled", "Filter": {{"Prefix": "b/"}},
              "Destination": {{"Bucket": "{plain}"}}, "DeleteMarkerReplication": {{"Status": "Disabled"}}}}]}}}}]}}"#
    );
    let out = run(
        command(&stack, &p, &doc, &stack.endpoint),
        &["config", "check", "--online", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = |what: String| {
        report["online"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["what"] == what.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no check {what}: {report}"))
    };
    let refused = check(format!("Object Lock of {plain}"));
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("DstObjectLockNotEnabled"),
        "{refused}"
    );
    assert_eq!(check(format!("Object Lock of {locked}"))["ok"], true);

    // A source without Object Lock asks nothing of its destinations.
    let doc = doc.replace(&source, &p.source);
    let out = run(
        command(&stack, &p, &doc, &stack.endpoint),
        &["config", "check", "--online", "--output", "json"],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !report["online"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["what"].as_str().unwrap().starts_with("Object Lock")),
        "{report}"
    );
}
