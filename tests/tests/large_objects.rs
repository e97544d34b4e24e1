//! Large objects at any provider: a multipart copy that runs out of invocation time
//! pauses and continues in later invocations (also after a crash), a source
//! overwritten mid-copy never yields a mix of two versions, and a strict third
//! provider (s3s-fs) is reached with keys from a Secrets Manager secret.
//!
//! Continuations run against s3s-fs: moto 5.2.5 answers ListParts with a
//! `ListPartsResponse` root element, which the SDK rightly refuses.

use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsBatchResponse;
use aws_sdk_s3::primitives::ByteStream;
use integration_tests::{
    config, hex, object_state, object_without_tags, one_rule, part_count, put_job, random_bytes,
    replicator_to_other, s3s_destination, secret_keys, sqs_batch, unique, Stack,
};
use lambda_runtime::{Context, LambdaEvent};
use replicator::config::clients::{RequestLog, S3Clients};
use replicator::copy::multipart::{MultipartSettings, MIB};
use replicator::copy::verify::Verified;
use replicator::copy::Outcome;
use replicator::queues::job::Job;
use replicator::replicate::Replicator;
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Calls the handler as Lambda does; `out_of_time` gives it a context whose deadline
/// has passed, so a multipart copy does one round of parts and pauses.
async fn invoke(replicator: &Replicator, body: &str, out_of_time: bool) -> SqsBatchResponse {
    let mut context = Context::default();
    if out_of_time {
        context.deadline = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
    }
    let batch = sqs_batch(&[body.to_string()]);
    replicator
        .handle(LambdaEvent::new(batch, context))
        .await
        .expect("the handler never fails a whole batch")
}

/// The UploadPart and UploadPartCopy requests among logged ones.
fn part_writes(requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("partNumber="))
        .cloned()
        .collect()
}

/// The replica at s3s-fs is the data, in three parts, and the upload left nothing.
async fn assert_complete(s3s: &Stack, bucket: &str, key: &str, data: &[u8], upload_id: &str) {
    let replica = object_without_tags(&s3s.s3, bucket, key)
        .await
        .expect("replicated");
    assert_eq!(replica.sha256, sha256(data));
    assert_eq!(part_count(&s3s.s3, bucket, key).await, 3);
    let left: Vec<String> = s3s_upload_parts()
        .into_iter()
        .filter(|p| p.contains(upload_id))
        .collect();
    assert!(left.is_empty(), "no upload leaked: {left:?}");
}

/// Parts of unfinished uploads s3s-fs keeps on disk.
fn s3s_upload_parts() -> Vec<String> {
    let root = std::env::var("S3R_TEST_S3S_ROOT").expect("S3R_TEST_S3S_ROOT");
    std::fs::read_dir(root)
        .expect("s3s-fs root")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(".upload_id-"))
        .collect()
}

/// Source on the main server, destination at s3s-fs, parts of 5 MiB streamed one at
/// a time; the destination client's requests are logged.
struct Offsite {
    stack: Stack,
    other: Stack,
    source: String,
    dst: String,
    work: integration_tests::Queue,
    retry: integration_tests::Queue,
    log: RequestLog,
    replicator: Replicator,
}

async fn offsite() -> Offsite {
    let stack = Stack::main().await;
    let other = Stack::s3s_fs().await;
    let source = stack.bucket("big").await;
    let (dst, destination) = s3s_destination(&stack, &other, r#", "PartSize": 5242880"#).await;
    let cfg = config(&one_rule(&source, &destination));
    let log = RequestLog::default();
    let clients = S3Clients::build(&stack.sdk, stack.s3.clone(), &cfg, Some(&log))
        .await
        .unwrap();
    let work = stack.queue("work").await;
    let retry = stack.queue("retry").await;
    let mut replicator = Replicator::new(cfg, clients, stack.sqs.clone(), None);
    replicator.work_queue_url = Some(work.url.clone());
    replicator.retry_queue_url = Some(retry.url.clone());
    replicator.multipart = MultipartSettings {
        stream_threshold: 8 * MIB,
        concurrency: 1,
        ..MultipartSettings::default()
    };
    Offsite {
        stack,
        other,
        source,
        dst,
        work,
        retry,
        log,
        replicator,
    }
}

/// The one job a queue holds, removed from it.
async fn only_job(stack: &Stack, queue: &integration_tests::Queue) -> Job {
    let bodies = stack.drain(queue).await;
    assert_eq!(bodies.len(), 1, "{bodies:?} (queue {})", queue.url);
    Job::parse(&bodies[0]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_out_of_time_continues_in_later_invocations_even_after_a_crash() {
    let o = offsite().await;
    let key = "backups/db dump.tar";
    let data = random_bytes(13 * MIB + 5, 1);
    o.stack
        .s3
        .put_object()
        .bucket(&o.source)
        .key(key)
        .body(ByteStream::from(data.clone()))
        .content_type("application/x-tar")
        .metadata("origin", "main")
        .tagging("retention=long")
        .send()
        .await
        .unwrap();

    // Invocation 1, already out of time: one part, then the job is handed on.
    let first = put_job(&o.source, key, &o.dst).to_body();
    let response = invoke(&o.replicator, &first, true).await;
    assert!(response.batch_item_failures.is_empty());
    let second = only_job(&o.stack, &o.work).await;
    let upload = second.upload.clone().expect("a continuation");
    assert_eq!((upload.parts_done, upload.invocations), (1, 1));
    assert!(object_without_tags(&o.other.s3, &o.dst, key)
        .await
        .is_none());
    assert_eq!(
        s3s_upload_parts()
            .iter()
            .filter(|p| p.contains(&upload.upload_id))
            .count(),
        1
    );

    // Invocation 2 uploads part 2 and hands on again; then it "crashes" before its
    // hand-on counts: the third message is lost and SQS delivers the second again.
    o.log.take();
    invoke(&o.replicator, &second.to_body(), true).await;
    let lost = only_job(&o.stack, &o.work).await;
    assert_eq!(lost.upload.unwrap().parts_done, 2);
    assert_eq!(part_writes(&o.log.take()).len(), 1);

    // The redelivered continuation asks ListParts what is done, uploads only part 3,
    // and completes: no time limit this time.
    let outcome = invoke(&o.replicator, &second.to_body(), false).await;
    assert!(outcome.batch_item_failures.is_empty());
    let requests = o.log.take();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET ") && r.contains("uploadId=")),
        "ListParts: {requests:?}"
    );
    let writes = part_writes(&requests);
    assert_eq!(writes.len(), 1, "{requests:?}");
    assert!(writes[0].contains("partNumber=3"), "{writes:?}");
    assert_eq!(o.stack.depth(&o.work).await, 0, "nothing handed on");

    assert_complete(&o.other, &o.dst, key, &data, &upload.upload_id).await;
    assert_eq!(
        object_without_tags(&o.other.s3, &o.dst, key).await,
        object_without_tags(&o.stack.s3, &o.source, key).await
    );
}

struct Moto {
    stack: Stack,
    other: Stack,
    source: String,
    dst: String,
    replicator: Replicator,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_a_crashed_attempt_left_is_aborted_by_the_next() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let source = stack.bucket("big").await;
    let dst = other.bucket("offsite").await;
    let mut replicator = replicator_to_other(&stack, &source, &other, &dst).await;
    replicator.multipart = MultipartSettings {
        stream_threshold: 8 * MIB,
        concurrency: 1,
        ..MultipartSettings::default()
    };
    let o = Moto {
        stack,
        other,
        source,
        dst,
        replicator,
    };
    let key = "crashed.bin";
    let data = random_bytes(9 * MIB, 2);
    o.stack.put(&o.source, key, &data).await;
    // What a first attempt that died after one part leaves behind.
    let left = o
        .other
        .s3
        .create_multipart_upload()
        .bucket(&o.dst)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    o.other
        .s3
        .upload_part()
        .bucket(&o.dst)
        .key(key)
        .upload_id(&left)
        .part_number(1)
        .body(ByteStream::from(vec![0u8; 5 * MIB as usize]))
        .send()
        .await
        .unwrap();
    // An upload of another key is not ours to touch.
    let other_key = o
        .other
        .s3
        .create_multipart_upload()
        .bucket(&o.dst)
        .key("crashed.bin.other")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let outcome = o
        .replicator
        .run(&put_job(&o.source, key, &o.dst))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    let uploads = o
        .other
        .s3
        .list_multipart_uploads()
        .bucket(&o.dst)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = uploads
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id())
        .collect();
    assert_eq!(
        ids,
        vec![other_key.as_str()],
        "the crashed upload was aborted"
    );
    assert_eq!(
        object_state(&o.other.s3, &o.dst, key).await.unwrap().sha256,
        sha256(&data)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_overwritten_mid_copy_is_never_mixed_and_the_job_retries() {
    let o = offsite().await;
    let key = "live/overwritten.bin";
    let old = random_bytes(12 * MIB, 3);
    let new = random_bytes(12 * MIB, 4);
    o.stack.put(&o.source, key, &old).await;

    let job = put_job(&o.source, key, &o.dst).to_body();
    invoke(&o.replicator, &job, true).await;
    let continuation = only_job(&o.stack, &o.work).await;
    assert_eq!(continuation.upload.as_ref().unwrap().parts_done, 1);

    // The source changes between parts: the next part's GET is pinned to the old
    // ETag and fails; the upload is aborted and the job goes to the retry queue.
    o.stack.put(&o.source, key, &new).await;
    let outcome = invoke(&o.replicator, &continuation.to_body(), true).await;
    assert!(
        outcome.batch_item_failures.is_empty(),
        "handed to the retry queue"
    );
    assert!(
        object_without_tags(&o.other.s3, &o.dst, key)
            .await
            .is_none(),
        "never a mix"
    );
    let upload_id = &continuation.upload.as_ref().unwrap().upload_id;
    assert!(
        !s3s_upload_parts()
            .iter()
            .any(|p| p.contains(upload_id.as_str())),
        "aborted"
    );
    let retried = only_job(&o.stack, &o.retry).await;
    assert_eq!(
        retried.last_error.as_ref().map(|e| e.reason.as_str()),
        Some("PreconditionFailed"),
        "{:?}",
        retried.last_error
    );
    assert!(retried.upload.is_none(), "the retry starts afresh");

    // The retry copies the new object whole.
    let outcome = o.replicator.run(&retried).await.unwrap();
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    let replica = object_without_tags(&o.other.s3, &o.dst, key).await.unwrap();
    assert_eq!(replica.sha256, sha256(&new));
}

/// s3s-fs checks every signature: the copy only gets in with the keys the secret
/// holds. It also checks the checksums the copy sends with each part and PutObject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_provider_gets_exact_bytes_with_keys_from_a_secret() {
    let stack = Stack::main().await;
    let s3s = Stack::s3s_fs().await;
    let source = stack.bucket("src").await;
    let (dst, destination) = s3s_destination(&stack, &s3s, "").await;
    let sm = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let with_secret = |secret: &str| {
        let start = destination.find(r#""Secret": ""#).unwrap() + 11;
        let end = start + destination[start..].find('"').unwrap();
        format!("{}{secret}{}", &destination[..start], &destination[end..])
    };
    let cfg = config(&one_rule(&source, &destination));
    let clients = S3Clients::build(&stack.sdk, stack.s3.clone(), &cfg, None)
        .await
        .unwrap();
    let mut replicator = Replicator::new(cfg.clone(), clients, stack.sqs.clone(), None);
    replicator.multipart = MultipartSettings {
        stream_threshold: 8 * MIB,
        stream_part_size: 5 * MIB,
        concurrency: 2,
        ..MultipartSettings::default()
    };

    let small = random_bytes(300_001, 5);
    let large = random_bytes(11 * MIB + 3, 6);
    for (key, data) in [("small/ü.bin", &small), ("large/video take 1.mp4", &large)] {
        stack
            .s3
            .put_object()
            .bucket(&source)
            .key(key)
            .body(ByteStream::from(data.clone()))
            .content_type("video/mp4")
            .cache_control("max-age=60")
            .metadata("camera", "a7")
            .send()
            .await
            .unwrap();
        let outcome = replicator.run(&put_job(&source, key, &dst)).await.unwrap();
        let Outcome::Replicated { bytes, verified } = outcome else {
            panic!("{key}: {outcome:?}")
        };
        assert_eq!(bytes, data.len() as u64);
        // One PutObject: S3 and s3s-fs both give the content's MD5 as its ETag. A
        // multipart replica's ETag is not comparable and s3s-fs keeps no full-object
        // checksum for it: the size is what is left to compare.
        let expected = if data.len() < 8 * MIB as usize {
            Verified::ETag
        } else {
            Verified::Size
        };
        assert_eq!(verified, expected, "{key}");
        let replica = object_without_tags(&s3s.s3, &dst, key).await.expect(key);
        assert_eq!(replica.sha256, sha256(data), "{key}");
        let original = object_without_tags(&stack.s3, &source, key).await.unwrap();
        assert_eq!(
            (
                replica.content_type,
                replica.cache_control,
                replica.metadata
            ),
            (
                original.content_type,
                original.cache_control,
                original.metadata
            ),
            "{key}"
        );
    }

    // The wrong keys in the secret: s3s-fs refuses the very first request.
    let wrong = unique("wrong-keys");
    sm.create_secret()
        .name(&wrong)
        .secret_string(secret_keys("s3r-test-access", "not-the-secret-key"))
        .send()
        .await
        .unwrap();
    let cfg = config(&one_rule(&source, &with_secret(&wrong)));
    let clients = S3Clients::build(&stack.sdk, stack.s3.clone(), &cfg, None)
        .await
        .unwrap();
    let replicator = Replicator::new(cfg, clients, stack.sqs.clone(), None);
    // An event with a sequencer, as S3 sends: the replica's HEAD comes first and is
    // refused. (A PutObject refused mid-body can meet a closed connection instead, a
    // NetworkError.)
    let mut job = put_job(&source, "small/ü.bin", &dst);
    job.source.sequencer = Some("0055AED6DCD90281E5".into());
    let err = replicator.run(&job).await.unwrap_err();
    assert_eq!(err.reason.as_str(), "DstHeadObjectNotPermitted", "{err}");

    // A secret that does not exist stops the process at cold start, by name.
    let cfg = config(&one_rule(&source, &with_secret("no-such-secret")));
    let err = S3Clients::build(&stack.sdk, stack.s3.clone(), &cfg, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-secret") && err.contains(&dst),
        "{err}"
    );
    assert!(err.contains("ResourceNotFound"), "{err}");
}

/// The server-side path pauses and continues the same way: UploadPartCopy within
/// s3s-fs, one part per invocation, ListParts on the way back in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_side_part_copy_out_of_time_continues_too() {
    let stack = Stack::main().await;
    let s3s = Stack::s3s_fs().await;
    let (source, dst) = (unique("strict-src"), unique("strict-dst"));
    for bucket in [&source, &dst] {
        s3s.s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let key = "video/take 2.mp4";
    let data = random_bytes(12 * MIB + 1, 7);
    s3s.put(&source, key, &data).await;
    let work = stack.queue("work").await;
    let (client, log) = s3s.counted_s3();
    let cfg = config(&one_rule(
        &source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let mut replicator = Replicator::new(
        cfg,
        S3Clients::same_endpoint(client),
        stack.sqs.clone(),
        None,
    );
    replicator.work_queue_url = Some(work.url.clone());
    replicator.multipart = MultipartSettings {
        copy_threshold: 8 * MIB,
        copy_part_size: 5 * MIB,
        concurrency: 1,
        ..MultipartSettings::default()
    };

    let mut body = put_job(&source, key, &dst).to_body();
    let mut upload_id = String::new();
    for done in 1..=2 {
        invoke(&replicator, &body, true).await;
        let next = only_job(&stack, &work).await;
        let upload = next.upload.clone().unwrap();
        assert_eq!(upload.parts_done, done);
        upload_id = upload.upload_id;
        body = next.to_body();
    }
    log.take();
    assert!(invoke(&replicator, &body, false)
        .await
        .batch_item_failures
        .is_empty());
    let requests = log.take();
    let part_copies = part_writes(&requests);
    assert_eq!(part_copies.len(), 1, "{requests:?}");
    assert!(part_copies[0].contains("partNumber=3"), "{requests:?}");
    assert_eq!(stack.depth(&work).await, 0);
    assert_complete(&s3s, &dst, key, &data, &upload_id).await;
}

/// A tag change made while a first multipart copy runs (its own job finds no replica
/// yet, or one the completion then overwrites) is not lost: the completed replica has
/// the source's tags as they are at the end, not those read at the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_change_during_a_multipart_copy_is_not_lost() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let source = stack.bucket("src").await;
    let dst = other.bucket("dst").await;
    stack
        .s3
        .put_object()
        .bucket(&source)
        .key("big.bin")
        .tagging("stage=draft")
        .body(ByteStream::from(random_bytes(66 * MIB, 5)))
        .send()
        .await
        .unwrap();
    let (slow, replicator) =
        slowly_to_other(&stack, &source, &other, &dst, MultipartSettings::default()).await;
    let running = {
        let (replicator, job) = (replicator.clone(), put_job(&source, "big.bin", &dst));
        tokio::spawn(async move { replicator.run(&job).await })
    };
    slow.wait_for("partnumber=").await;
    stack.set_tag(&source, "big.bin", ("stage", "final")).await;
    let outcome = running.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    let tags = other
        .s3
        .get_object_tagging()
        .bucket(&dst)
        .key("big.bin")
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(tags, vec![("stage", "final")]);
}

/// A live upload (a paused copy's, waiting for its next invocation; here one made by
/// hand) is not aborted when a duplicate job for the key starts its own copy, however
/// old it is. Once that copy completes with what the source holds now, it supersedes
/// every other upload of the key, and they are aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_upload_survives_a_duplicate_jobs_start() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let source = stack.bucket("src").await;
    let dst = other.bucket("dst").await;
    let data = random_bytes(12 * MIB, 9);
    stack.put(&source, "big.bin", &data).await;
    let live = other
        .s3
        .create_multipart_upload()
        .bucket(&dst)
        .key("big.bin")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let settings = MultipartSettings {
        stream_threshold: 8 * MIB,
        concurrency: 1,
        ..MultipartSettings::default()
    };
    let (slow, replicator) = slowly_to_other(&stack, &source, &other, &dst, settings).await;
    let running = {
        let (replicator, job) = (replicator.clone(), put_job(&source, "big.bin", &dst));
        tokio::spawn(async move { replicator.run(&job).await })
    };
    let uploads = || async {
        let listed = other
            .s3
            .list_multipart_uploads()
            .bucket(&dst)
            .send()
            .await
            .unwrap();
        listed
            .uploads()
            .iter()
            .filter_map(|u| u.upload_id().map(str::to_string))
            .collect::<Vec<_>>()
    };
    slow.wait_for("partnumber=").await;
    // The duplicate's copy is under way: both uploads are there.
    let during = uploads().await;
    assert!(
        during.contains(&live),
        "the live upload was aborted: {during:?}"
    );
    assert_eq!(during.len(), 2, "{during:?}");
    let outcome = running.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    assert!(uploads().await.is_empty(), "superseded uploads are aborted");
    assert_eq!(
        object_state(&other.s3, &dst, "big.bin")
            .await
            .unwrap()
            .sha256,
        sha256(&data)
    );
}

/// A replicator to `dst` at the other provider through a proxy that holds each part
/// upload for a second, so a copy is under way long enough to act during it.
async fn slowly_to_other(
    stack: &Stack,
    source: &str,
    other: &Stack,
    dst: &str,
    settings: MultipartSettings,
) -> (
    integration_tests::fault_proxy::FaultProxy,
    std::sync::Arc<Replicator>,
) {
    use integration_tests::fault_proxy::{FaultProxy, Faults};
    let slow = FaultProxy::start(
        &other.endpoint,
        Faults {
            delay: 1.0,
            delay_for: Duration::from_secs(1),
            delay_only: Some("partnumber="),
            ..Faults::none()
        },
    )
    .await;
    let cfg = config(&one_rule(
        source,
        &format!(
            r#"{{"Bucket": "{dst}", "Replicator": {{"EndpointUrl": "{}", "ForcePathStyle": true, "AclMode": "none", "PartSize": 5242880,
                "Credentials": {{"DefaultChain": true}}}}}}"#,
            slow.endpoint
        ),
    ));
    let clients = S3Clients::build(&stack.sdk, stack.s3.clone(), &cfg, None)
        .await
        .unwrap();
    let mut replicator = Replicator::new(cfg, clients, stack.sqs.clone(), None);
    replicator.multipart = settings;
    (slow, std::sync::Arc::new(replicator))
}
