//! Trust only what can be verified: object metadata and queue messages can be written
//! by others. With a signing key, provenance ("this is a replica") and jobs ("copy
//! this") are believed only with the replicator's signature, and a job only for what
//! the configuration would ask anyway; a one-way rule deletes only replicas this source
//! made. Each case here was tried on the code before signatures, as an attacker would,
//! and worked for the attacker.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use integration_tests::{config, object_state, sqs_batch, Pipeline, Stack};
use replicator::config::keys::Signer;
use replicator::config::Config;
use replicator::copy::Outcome;
use replicator::errors::FailureReason;
use replicator::queues::job::{BackfillRef, Continuation, Job};
use replicator::replicate::Replicator;

fn signer() -> Signer {
    Signer::with_keys("integration-test-signing-key-0123456789abcdef", None).unwrap()
}

/// One rule, `prefix` only, to `destination`, deletes replicated, replica modifications
/// synced (which on S3 makes no rule two-way).
fn rule(source: &str, destination: &str, prefix: &str) -> Arc<Config> {
    config(&format!(
        r#"{{"Sources": [{{"Bucket": "{source}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "r", "Priority": 1, "Status": "Enabled", "Filter": {{"Prefix": "{prefix}"}},
              "DeleteMarkerReplication": {{"Status": "Enabled"}},
              "SourceSelectionCriteria": {{"ReplicaModifications": {{"Status": "Enabled"}}}},
              "Destination": {{"Bucket": "{destination}", "Replicator": {{"AclMode": "none"}}}}}}]}}}}]}}"#
    ))
}

async fn signed_replicator(p: &Pipeline, cfg: &Arc<Config>) -> Replicator {
    let mut r = p.replicator(cfg).await;
    r.signer = signer();
    r
}

fn ingest(p: &Pipeline, cfg: &Arc<Config>) -> replicator::ingest::Ingest {
    let mut i = p.ingest(cfg);
    i.signer = signer();
    i
}

/// A job as ingest would make it for a put of `key`, signed.
async fn job_for(p: &Pipeline, cfg: &Arc<Config>, key: &str) -> Job {
    let record = integration_tests::history::made_now(integration_tests::history::record(
        "ObjectCreated:Put",
        &p.source,
        key,
        None,
        None,
        None,
        "0010",
    ));
    let decoded =
        replicator::events::decode_text(&integration_tests::history::notification(&[record]))
            .unwrap();
    let mut jobs = ingest(p, cfg).jobs_for(&decoded.events[0]).await.unwrap();
    assert_eq!(jobs.len(), 1);
    jobs.remove(0)
}

/// (1) An object uploaded with `s3r-source` metadata of its own was taken for a replica
/// and never reached the backup: the uploader decided what is replicated. Unsigned,
/// it is the user's metadata: the object replicates like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_that_claims_to_be_a_replica_does_not_stop_replication() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = rule(&p.source, &dst, "");
    stack
        .s3
        .put_object()
        .bucket(&p.source)
        .key("ledger.csv")
        .metadata("s3r-source", "elsewhere")
        .metadata("s3r-sequencer", "FFFFFFFFFFFFFFFFFFFF")
        .body(ByteStream::from_static(b"what the backup must hold"))
        .send()
        .await
        .unwrap();
    let r = signed_replicator(&p, &cfg).await;
    let job = job_for(&p, &cfg, "ledger.csv").await;
    let outcome = r.run(&job).await.unwrap();
    assert!(matches!(outcome, Outcome::Replicated { .. }), "{outcome:?}");
    let replica = object_state(&stack.s3, &dst, "ledger.csv")
        .await
        .expect("replicated");
    assert_eq!(replica.size, 25);
    // The replica's own provenance is ours, signed: it names this source.
    let claimed = integration_tests::provenance(&stack.s3, &dst, "ledger.csv")
        .await
        .unwrap();
    assert_eq!(claimed.source_bucket, p.source);
}

/// (2) Anyone with sqs:SendMessage on the work queue could name a key outside every
/// rule (the replicate role reads the whole bucket) and have it copied to a
/// destination, another provider's too; or forge a part size, or a place to write
/// backfill records. Such jobs are parked as `UntrustedJob`, never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_jobs_are_parked_never_run() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = rule(&p.source, &dst, "public/");
    stack
        .put(&p.source, "secret/payroll.csv", b"salaries")
        .await;
    stack.put(&p.source, "public/a.txt", b"public").await;
    let r = signed_replicator(&p, &cfg).await;
    let genuine = job_for(&p, &cfg, "public/a.txt").await;

    // Unsigned, as anyone can send it, inside the rule or not.
    let mut outside = genuine.clone();
    outside.source.key = "secret/payroll.csv".into();
    outside.sig = None;
    let mut unsigned = genuine.clone();
    unsigned.sig = None;
    // Signed (as if by a stage), but asking what the configuration would not.
    let mut elsewhere = genuine.clone();
    elsewhere.destination.bucket = stack.bucket("attacker").await;
    elsewhere.sign(&signer());
    let mut prefix = genuine.clone();
    prefix.source.key = "secret/payroll.csv".into();
    prefix.sign(&signer());
    let mut huge_parts = genuine.clone();
    huge_parts.upload = Some(Continuation {
        upload_id: "u".into(),
        etag: "\"e\"".into(),
        version_id: None,
        size: 64 << 20,
        part_size: 5 << 30,
        checksum_algorithm: None,
        tagging: None,
        replica_etag: None,
        parts_done: 0,
        invocations: 1,
        sig: None,
    });
    huge_parts.sign(&signer());
    let mut records = genuine.clone();
    records.backfill = Some(BackfillRef {
        id: "bf-x".into(),
        report: Some("s3://someone-elses-bucket/rows".into()),
        absent: false,
    });
    records.sign(&signer());
    let forged = [outside, unsigned, elsewhere, prefix, huge_parts, records];
    let bodies: Vec<String> = forged.iter().map(Job::to_body).collect();
    let response = r.handle_batch(sqs_batch(&bodies)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "all parked, none retried"
    );
    let parked: Vec<Job> = stack
        .drain(&p.failed)
        .await
        .iter()
        .map(|b| Job::parse(b).unwrap())
        .collect();
    assert_eq!(parked.len(), forged.len());
    for job in &parked {
        let reason = job.last_error.as_ref().unwrap().reason;
        assert_eq!(reason, FailureReason::UntrustedJob, "{job:?}");
    }
    assert!(stack.keys(&dst, "").await.is_empty(), "nothing was copied");
    // The genuine job runs.
    let response = r.handle_batch(sqs_batch(&[genuine.to_body()])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stack.keys(&dst, "").await, vec!["public/a.txt".to_string()]);
    // A parked forgery is not redriven: it would still not be ours.
    let failed = replicator::queues::dlq::Failed {
        queue: replicator::queues::dlq::FailedQueue {
            sqs: stack.sqs.clone(),
            url: p.failed.url.clone(),
        },
        archive: None,
    };
    for job in &parked {
        stack.send(&p.failed, &job.to_body()).await;
    }
    let held = failed.scan().await.unwrap();
    assert_eq!(held.len(), parked.len());
    let moved = failed.redrive(&held, &p.work.url).await.unwrap();
    assert_eq!(moved, 0);
    assert_eq!(stack.depth(&p.work).await, 0);
}

/// (3) A one-way rule with delete markers replicated and replica modifications synced:
/// a delete at the source of a key the destination holds on its own (written there,
/// no provenance of this source) deleted it. `ReplicaModifications` makes no rule
/// two-way; only a replica this source made is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_rule_never_deletes_what_it_did_not_write() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = rule(&p.source, &dst, "");
    stack
        .put(&dst, "theirs.txt", b"written at the destination")
        .await;
    stack
        .put(&p.source, "theirs.txt", b"written at the source")
        .await;
    stack.delete(&p.source, "theirs.txt").await;
    let r = signed_replicator(&p, &cfg).await;
    let mut delete = job_for(&p, &cfg, "theirs.txt").await;
    delete.op = replicator::queues::job::Operation::Delete;
    delete.source.delete_marker = true;
    delete.source.event_time = Some("2099-01-01T00:00:00.000Z".into());
    delete.sign(&signer());
    let outcome = r.run(&delete).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Skipped {
            reason: "NotAReplicaOfSource"
        }
    );
    assert_eq!(
        object_state(&stack.s3, &dst, "theirs.txt")
            .await
            .unwrap()
            .size,
        26
    );
}

/// (4) A job names its destination's bucket, never its URL: a URL in a message could
/// carry keys into the queues, the failed-job archive and the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_name_no_endpoint() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let cfg = config(&integration_tests::one_rule(
        &p.source,
        r#"{"Bucket": "far-away", "Replicator": {"EndpointUrl": "https://s3.far.example", "Credentials": {"Profile": "far"}}}"#,
    ));
    let job = job_for(&p, &cfg, "k").await;
    let body = job.to_body();
    assert!(!body.contains("far.example"), "{body}");
}

/// An ACL change toward a bucket whose ACLs are disabled (Object Ownership "bucket
/// owner enforced") was parked as InvalidRequest: S3 answers
/// AccessControlListNotSupported (moto accepts the ACL; a proxy answers as S3 does).
/// There is no ACL to set; it is a stated skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_change_toward_a_bucket_without_acls_is_a_skip() {
    use integration_tests::fault_proxy::{Answer, FaultProxy, Faults};
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&integration_tests::one_rule(
        &p.source,
        &format!(
            r#"{{"Bucket": "{dst}", "Account": "123456789012", "AccessControlTranslation": {{"Owner": "Destination"}}}}"#
        ),
    ));
    stack.put(&p.source, "k", b"x").await;
    stack.put(&dst, "k", b"x").await;
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            answer: Some(Answer {
                matching: "put && ?acl",
                status: "400 Bad Request",
                code: "AccessControlListNotSupported",
                message: "The bucket does not allow ACLs",
                headers: "",
                times: 0,
            }),
            ..Faults::none()
        },
    )
    .await;
    let r = p
        .replicator_on(&cfg, stack.s3_through(&proxy.endpoint))
        .await;
    let mut acl = integration_tests::put_job(&p.source, "k", &dst);
    acl.op = replicator::queues::job::Operation::Acl;
    let outcome = r.run(&acl).await;
    assert_eq!(
        outcome.unwrap(),
        Outcome::Skipped {
            reason: "DestinationAclsDisabled"
        }
    );
}

/// Temporary keys in a destination's secret, expired: the destination answers
/// `400 ExpiredToken`, which was classified InvalidRequest and parked every job (and
/// fired the alarm). It is the keys' refusal: the secret is read again and the job
/// retried, not parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_retried_not_parked() {
    use integration_tests::fault_proxy::{Answer, FaultProxy, Faults};
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&integration_tests::one_rule(
        &p.source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    stack.put(&p.source, "k", b"x").await;
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            answer: Some(Answer {
                matching: "x-amz-copy-source",
                status: "400 Bad Request",
                code: "ExpiredToken",
                message: "The provided token has expired.",
                headers: "",
                times: 0,
            }),
            ..Faults::none()
        },
    )
    .await;
    let r = p
        .replicator_on(&cfg, stack.s3_through(&proxy.endpoint))
        .await;
    let job = integration_tests::put_job(&p.source, "k", &dst);
    let err = r.run(&job).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::DstCredentialsRejected, "{err}");
    assert!(err.is_retryable());
    let response = r.handle_batch(sqs_batch(&[job.to_body()])).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(stack.drain(&p.failed).await.is_empty(), "not parked");
    assert_eq!(
        stack.drain(&p.retry).await.len(),
        1,
        "handed to the retry queue"
    );
}
