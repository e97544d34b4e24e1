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
        stack.set_visibility(queue, 3).await;
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
        let n = stack.keys(&dst, "").await.len();
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

/// SIGTERM during a long copy: the worker does not wait for the whole copy (a
/// container's grace period is short). The multipart copy pauses after the parts under
/// way and goes back to the work queue with its upload id, as at a Lambda deadline; the
/// worker says how many jobs it had in hand and exits; the next worker finishes the
/// copy from the parts already uploaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_pauses_a_long_copy_and_the_next_worker_finishes_it() {
    let stack = Stack::main().await;
    let s3s = Stack::s3s_fs().await;
    let p = Pipeline::unwired(&stack).await;
    let (dst, destination) =
        integration_tests::s3s_destination(&stack, &s3s, r#", "PartSize": 5242880"#).await;
    // Every part upload takes a second more, so the copy is under way for a while.
    let slow = FaultProxy::start(
        &s3s.endpoint,
        Faults {
            delay: 1.0,
            delay_for: Duration::from_secs(1),
            delay_only: Some("partnumber="),
            ..Faults::none()
        },
    )
    .await;
    let doc = integration_tests::one_rule(
        &p.source,
        &destination.replace(&s3s.endpoint, &slow.endpoint),
    );
    let body = integration_tests::parts_body();
    stack.put(&p.source, "big.bin", &body).await;
    stack
        .sqs
        .send_message()
        .queue_url(&p.work.url)
        .message_body(integration_tests::put_job(&p.source, "big.bin", &dst).to_body())
        .send()
        .await
        .unwrap();

    let mut cmd = command(&stack, &p, &doc, &stack.endpoint);
    cmd.env("RUST_LOG", "info");
    let worker = cmd
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start worker");
    let parts = || slow.count("partnumber=");
    slow.wait_for("partnumber=").await;
    let signalled = Instant::now();
    sigterm(&worker);
    let out = worker.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("\"jobs_in_hand\":1"),
        "the worker says what it holds: {stderr}"
    );
    assert!(
        parts() < 14,
        "stopped only after every part ({:?} after the signal)",
        signalled.elapsed()
    );
    // The job went back with its upload.
    let waiting = stack.drain(&p.work).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let job = replicator::queues::job::Job::parse(&waiting[0]).unwrap();
    let upload = job.upload.as_ref().expect("a continuation with its upload");
    assert!(
        upload.parts_done > 0 && upload.parts_done < 14,
        "{upload:?}"
    );
    stack
        .sqs
        .send_message()
        .queue_url(&p.work.url)
        .message_body(&waiting[0])
        .send()
        .await
        .unwrap();

    let mut next = command(&stack, &p, &doc, &stack.endpoint);
    let out = next
        .args(["run", "--exit-when-idle", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = s3s
        .s3
        .get_object()
        .bucket(&dst)
        .key("big.bin")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().to_vec() == body);
}

/// The worker keeps its jobs in flight as a pipeline: while one copy is held up, the
/// jobs that arrive after it are received and replicated (a batch-at-a-time worker
/// waits for the slow one first). Stopped in the middle, it finishes what it holds
/// and settles every job before it exits: the queue ends empty, nothing in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_copy_holds_up_nothing_and_a_stop_settles_every_job() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let doc = integration_tests::one_rule(&p.source, &format!(r#"{{"Bucket": "{dst}"}}"#));
    stack.put(&p.source, "held", b"slow").await;
    let fast = put_many(&stack, &p.source, "fast/", 20).await;
    // Only the copy of "held" is held up, for 25 s: ample for the others, even on a
    // loaded machine.
    let copy_of_held: &'static str =
        Box::leak(format!("x-amz-copy-source: {}/held", p.source).into_boxed_str());
    let slow = FaultProxy::start(
        &stack.endpoint,
        Faults {
            delay: 1.0,
            delay_for: Duration::from_secs(25),
            delay_only: Some(copy_of_held),
            ..Faults::none()
        },
    )
    .await;
    let send = |key: String| {
        let body = integration_tests::put_job(&p.source, &key, &dst).to_body();
        let (sqs, url) = (stack.sqs.clone(), p.work.url.clone());
        async move {
            sqs.send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .unwrap();
        }
    };
    send("held".into()).await;
    let mut cmd = command(&stack, &p, &doc, &slow.endpoint);
    let worker = cmd
        .args(["run", "--concurrency", "16"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start worker");
    slow.wait_for(copy_of_held).await;
    for key in &fast {
        send(key.clone()).await;
    }
    // Every job that came after the held copy is done while it is still held.
    let started = Instant::now();
    loop {
        let mut done = 0;
        for key in &fast {
            done += usize::from(object_state(&stack.s3, &dst, key).await.is_some());
        }
        if done == fast.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{done} of {} replicated",
            fast.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        object_state(&stack.s3, &dst, "held").await.is_none(),
        "the held copy finished first: the others waited for it"
    );

    // Stopped with the held copy in hand: it finishes, and every job is settled.
    sigterm(&worker);
    let out = worker.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(object_state(&stack.s3, &dst, "held").await.is_some());
    assert_eq!(
        stack.depth(&p.work).await,
        0,
        "a finished job was left undeleted"
    );
}

/// Sends SIGTERM to a worker, as a container runtime stopping it would.
fn sigterm(worker: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A backfill outlives its worker: killed with SIGKILL mid-way, the restarted worker
/// finishes the listing and the copies from the queue alone, copies none of the
/// replicas the first one finished again, and the completion report lists every
/// object once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_finishes_after_its_worker_is_killed() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    stack.set_visibility(&p.work, 3).await;
    let dst = stack.bucket("dst").await;
    let records = stack.bucket("records").await;
    let report = format!("s3://{records}/backfills/");
    let doc = one_rule(&p.source, &dst);
    let mut keys = put_many(&stack, &p.source, "x/", 100).await;
    keys.extend(put_many(&stack, &p.source, "y/z/", 100).await);

    let out = command(&stack, &p, &doc, &stack.endpoint)
        .args(["backfill", "--report", &report, "--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slow = FaultProxy::start(
        &stack.endpoint,
        Faults {
            delay: 1.0,
            delay_for: Duration::from_millis(150),
            seed: 2,
            ..Faults::none()
        },
    )
    .await;
    // Records are written only where the worker's own environment says.
    let mut worker = command(&stack, &p, &doc, &slow.endpoint)
        .env("BACKFILL_REPORT_URL", &report)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start worker");
    let started = Instant::now();
    while stack.keys(&dst, "").await.len() < 30 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the backfill made no progress"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.kill().expect("SIGKILL");
    assert!(!worker.wait().unwrap().success());
    let done_before = stack.keys(&dst, "").await;
    assert!(
        done_before.len() < keys.len(),
        "the kill must land before the end"
    );

    let counted = FaultProxy::start(&stack.endpoint, Faults::none()).await;
    let status = command(&stack, &p, &doc, &counted.endpoint)
        .env("BACKFILL_REPORT_URL", &report)
        .args(["run", "--exit-when-idle", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    for key in &keys {
        let replica = object_state(&stack.s3, &dst, key)
            .await
            .unwrap_or_else(|| panic!("{key} missed"));
        assert_eq!(
            replica,
            object_state(&stack.s3, &p.source, key).await.unwrap(),
            "{key}"
        );
    }
    let copies_again: Vec<String> = counted
        .heads
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.to_ascii_lowercase().contains("x-amz-copy-source"))
        .filter(|h| {
            // "PUT /bucket/key?x-id=CopyObject HTTP/1.1"
            let target = h.split(' ').nth(1).unwrap_or("");
            let path = target.split('?').next().unwrap_or("");
            done_before
                .iter()
                .any(|k| path == format!("/{dst}/{}", k.replace(' ', "%20")))
        })
        .cloned()
        .collect();
    assert!(
        copies_again.is_empty(),
        "copied again after the restart: {copies_again:#?}"
    );
    let copies = counted.count("x-amz-copy-source");
    assert!(
        copies > 0 && copies <= keys.len() - done_before.len(),
        "{copies} copies after the restart"
    );

    let out = command(&stack, &p, &doc, &stack.endpoint)
        .args([
            "backfill", "status", "--report", &report, "--wait", "--output", "json",
        ])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A page the killed worker had begun ran again, and found what it had copied up
    // to date in the destination's listing.
    let n = |field: &str| status[field].as_u64().unwrap_or(0);
    assert_eq!(
        (
            status["complete"].as_bool(),
            n("queued") + n("up_to_date"),
            n("replicated"),
            n("failed")
        ),
        (Some(true), 200, n("queued"), 0),
        "{status}"
    );
    let csv = stack
        .s3
        .get_object()
        .bucket(&records)
        .key(format!(
            "backfills/{}/report.csv",
            status["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    let csv = String::from_utf8(csv.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    let mut reported: Vec<String> = replicator::listing::record::parse_csv(&csv)
        .into_iter()
        .map(|r| r.key)
        .collect();
    reported.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(reported, expected, "every object once");
}
