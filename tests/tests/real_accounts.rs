//! What a real AWS account does that the local servers do not, and the replicator must
//! take as S3 means it: a destination bucket in another region (S3 answers 301
//! PermanentRedirect with the bucket's region), a HEAD with checksums of an SSE-KMS
//! object refused without kms:Decrypt, and a destination whose default encryption is a
//! customer key. A proxy answers as S3 does where moto cannot.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use integration_tests::fault_proxy::{Answer, FaultProxy, Faults};
use integration_tests::{config, object_state, one_rule, put_job, sqs_batch, Pipeline, Stack};
use replicator::copy::Outcome;
use replicator::errors::FailureReason;
use replicator::queues::job::Job;

fn redirect(matching: &'static str, headers: &'static str) -> Faults {
    Faults {
        answer: Some(Answer {
            matching,
            status: "301 Moved Permanently",
            code: "PermanentRedirect",
            message: "The bucket you are attempting to access must be addressed using the specified endpoint.",
            headers,
            times: 0,
        }),
        ..Faults::none()
    }
}

/// A rule pasted from another region's bucket: same endpoint (S3), the destination in
/// eu-west-1, the function in us-east-1. Every request to it was answered 301, which
/// was taken for a moment's trouble: retried for hours, then parked. S3 says where the
/// bucket is; the job runs again through a client for that region, and the next goes
/// there at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_in_another_region_is_followed_there() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst-eu").await;
    let cfg = config(&one_rule(
        &p.source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    // Requests to the destination signed for us-east-1 are redirected; eu-west-1 pass.
    let matching = Box::leak(format!("/{dst}/ && /us-east-1/s3/aws4_request").into_boxed_str());
    let proxy = FaultProxy::start(
        &stack.endpoint,
        redirect(matching, "x-amz-bucket-region: eu-west-1\r\n"),
    )
    .await;
    let r = p
        .replicator_on(&cfg, stack.s3_through(&proxy.endpoint))
        .await;
    for key in ["first", "second"] {
        stack.put(&p.source, key, b"payload").await;
        let outcome = r.run(&put_job(&p.source, key, &dst)).await;
        let heads: Vec<String> = proxy
            .heads
            .lock()
            .unwrap()
            .iter()
            .map(|h| {
                let first = h.lines().next().unwrap_or("").to_string();
                let cred = h
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("authorization"))
                    .and_then(|l| l.split("Credential=").nth(1))
                    .map(|c| c.split(',').next().unwrap_or("").to_string())
                    .unwrap_or_default();
                format!("{first} {cred}")
            })
            .collect();
        let outcome = outcome.unwrap_or_else(|e| panic!("{e}\n{}", heads.join("\n")));
        assert!(
            matches!(outcome, Outcome::Replicated { .. }),
            "{key}: {outcome:?}"
        );
        assert!(object_state(&stack.s3, &dst, key).await.is_some(), "{key}");
    }
    assert_eq!(
        proxy
            .counts
            .answered
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one redirect, then straight to eu-west-1"
    );
}

/// A redirect that cannot be followed (no region said; a source in another region than
/// the stack) is a permanent failure with its own name, parked at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_that_cannot_be_followed_is_parked_by_name() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&one_rule(
        &p.source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let matching = Box::leak(format!("/{dst}/").into_boxed_str());
    let proxy = FaultProxy::start(&stack.endpoint, redirect(matching, "")).await;
    stack.put(&p.source, "k", b"x").await;
    let r = p
        .replicator_on(&cfg, stack.s3_through(&proxy.endpoint))
        .await;
    let job = put_job(&p.source, "k", &dst);
    let err = r.run(&job).await.unwrap_err();
    assert_eq!(err.reason, FailureReason::BucketInAnotherRegion, "{err}");
    assert!(!err.is_retryable());
    r.handle_batch(sqs_batch(&[job.to_body()])).await;
    let parked: Vec<Job> = stack
        .drain(&p.failed)
        .await
        .iter()
        .map(|b| Job::parse(b).unwrap())
        .collect();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].last_error.as_ref().unwrap().reason,
        FailureReason::BucketInAnotherRegion
    );
}

/// The source's HEAD asks for checksums, which for an SSE-KMS object needs kms:Decrypt
/// on its key: a role that replicates no KMS objects is refused (403), and the object
/// was parked as SrcHeadObjectNotPermitted instead of skipped as S3 skips it. Without
/// checksums the HEAD says what it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_object_the_rule_does_not_select_is_skipped_even_without_kms_decrypt() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&one_rule(
        &p.source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    stack
        .s3
        .put_object()
        .bucket(&p.source)
        .key("sealed")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("arn:aws:kms:us-east-1:123456789012:key/source-key")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .unwrap();
    let matching =
        Box::leak(format!("head /{}/sealed && x-amz-checksum-mode", p.source).into_boxed_str());
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            answer: Some(Answer {
                matching,
                status: "403 Forbidden",
                code: "AccessDenied",
                message: "",
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
    let outcome = r.run(&put_job(&p.source, "sealed", &dst)).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Skipped {
            reason: "SseKmsNotSelected"
        }
    );
    assert!(
        proxy
            .counts
            .answered
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

/// An SSE-S3 source's replica was written with an explicit AES256, overriding a
/// destination whose default is a customer key (and refused by the common bucket policy
/// that requires aws:kms). It takes the destination's default, which on S3 is never
/// weaker than SSE-S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_takes_the_destinations_default_encryption() {
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    const DEFAULT_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/destination-default";
    let (kms_dst, s3_dst) = (stack.bucket("dst-kms").await, stack.bucket("dst-s3").await);
    for (bucket, algorithm, key) in [
        (&kms_dst, ServerSideEncryption::AwsKms, Some(DEFAULT_KEY)),
        (&s3_dst, ServerSideEncryption::Aes256, None),
    ] {
        let default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(algorithm)
            .set_kms_master_key_id(key.map(str::to_string))
            .build()
            .unwrap();
        stack
            .s3
            .put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(
                        ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(default)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    stack
        .s3
        .put_object()
        .bucket(&p.source)
        .key("doc")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    for (dst, expected, key) in [
        (&kms_dst, ServerSideEncryption::AwsKms, Some(DEFAULT_KEY)),
        (&s3_dst, ServerSideEncryption::Aes256, None),
    ] {
        let cfg = config(&one_rule(
            &p.source,
            &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
        ));
        let r = p.replicator(&cfg).await;
        r.run(&put_job(&p.source, "doc", dst)).await.unwrap();
        let head = stack
            .s3
            .head_object()
            .bucket(dst)
            .key("doc")
            .send()
            .await
            .unwrap();
        assert_eq!(head.server_side_encryption(), Some(&expected), "{dst}");
        assert_eq!(head.ssekms_key_id(), key, "{dst}");
    }
}
