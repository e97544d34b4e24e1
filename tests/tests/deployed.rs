//! The functions as they are deployed: the `ingest`, `replicate` and `retry` binaries
//! under the Lambda Runtime API (tests/src/lambda.rs), each signing with the keys of
//! an IAM user that holds exactly the policy the SAM template (or the Terraform
//! module) renders for it, against the IAM-enforcing moto server of the local stack.
//! The worker runs under the union of the three.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use integration_tests::fault_proxy::{FaultProxy, Faults};
use integration_tests::iam::{self, Deployment, Template};
use integration_tests::lambda::{binary, LambdaFunction};
use integration_tests::{object_state, put_job, sqs_batch, unique, Queue, Stack, ACCOUNT, REGION};
use replicator::config::keys::Signer;
use serde_json::Value;
use sha2::{Digest, Sha256};

const KEY: &str = "photos/2024/beach day+1.jpg";
const LONG: Duration = Duration::from_secs(120);
/// The key in the signing key's secret (the templates generate 64 such characters).
const SIGNING_KEY: &str = "deployed0signing0key0of0sixty0four0characters0abcdefghijklmnopqr";

/// Buckets, queues, a secret-keyed destination at s3s-fs, and one IAM principal per
/// function holding its shipped policy.
struct Deployed {
    admin: Stack,
    proxy: FaultProxy,
    source: String,
    replica: String,
    strict: String,
    strict_stack: Stack,
    queues: BTreeMap<&'static str, Queue>,
    /// The failed-job archive's bucket (prefix `parked/`; backfill records under
    /// `backfill-reports/`, the templates' default).
    archive: String,
    /// Where S3 Inventory delivers (prefix `inv/`).
    inventory: String,
    /// The secret holding the signing key, and a signer with that key (what the test
    /// sends as a stage of the replicator would).
    signing_key_secret: String,
    signer: Signer,
    config: String,
    policies: BTreeMap<String, Value>,
    keys: BTreeMap<String, (String, String)>,
}

impl Deployed {
    async fn new(template: Template) -> Deployed {
        let admin = Stack::iam_admin().await;
        // Every request of the functions passes a recording proxy: the actions they
        // need are read off the wire.
        let proxy = FaultProxy::start(&admin.endpoint, Faults::none()).await;
        // Both with Object Lock: a locked version's replica is locked too.
        let source = unique("deployed-src");
        let replica = unique("deployed-dst");
        for bucket in [&source, &replica] {
            admin
                .s3
                .create_bucket()
                .bucket(bucket)
                .object_lock_enabled_for_bucket(true)
                .send()
                .await
                .unwrap();
        }
        admin
            .s3
            .put_bucket_versioning()
            .bucket(&source)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let archive = admin.bucket("deployed-archive").await;
        let inventory = admin.bucket("deployed-inventory").await;
        // The signing key, as the templates create it (a secret on the IAM-enforcing
        // server): ingest and replicate read it at start.
        let signing_key_secret = aws_sdk_secretsmanager::Client::new(&admin.sdk)
            .create_secret()
            .name(unique("signing-key"))
            .secret_string(serde_json::json!({ "current": SIGNING_KEY }).to_string())
            .send()
            .await
            .expect("the signing key's secret")
            .arn()
            .expect("its ARN")
            .to_string();
        let mut queues = BTreeMap::new();
        for role in ["events", "work", "retry", "failed"] {
            queues.insert(role, admin.queue(&format!("deployed-{role}")).await);
        }
        // Keys of another provider (s3s-fs, which checks signatures), kept in a
        // secret on the IAM-enforcing server.
        let strict_stack = Stack::s3s_fs().await;
        let strict = unique("deployed-strict");
        strict_stack
            .s3
            .create_bucket()
            .bucket(&strict)
            .send()
            .await
            .unwrap();
        let (secret, secret_arn) = integration_tests::s3s_secret(&admin).await;
        let config = format!(
            r#"{{"Sources": [{{"Bucket": "{source}", "ReplicationConfiguration": {{"Role": "x", "Rules": [
  {{"ID": "same", "Priority": 1, "Status": "Enabled", "Filter": {{"Prefix": "photos/"}},
    "Destination": {{"Bucket": "arn:aws:s3:::{replica}", "Account": "{ACCOUNT}"}},
    "DeleteMarkerReplication": {{"Status": "Enabled"}}}},
  {{"ID": "strict", "Priority": 2, "Status": "Enabled",
    "Filter": {{"And": {{"Prefix": "photos/", "Tags": [{{"Key": "trip", "Value": "beach"}}]}}}},
    "Destination": {{"Bucket": "{strict}", "Replicator": {{"EndpointUrl": "{}", "ForcePathStyle": true,
      "AclMode": "none", "Credentials": {{"Secret": "{secret}"}}}}}},
    "DeleteMarkerReplication": {{"Status": "Disabled"}}}},
  {{"ID": "unreachable", "Priority": 3, "Status": "Enabled", "Filter": {{"Prefix": "unreachable/"}},
    "Destination": {{"Bucket": "nowhere", "Replicator": {{"EndpointUrl": "http://127.0.0.1:9", "ForcePathStyle": true,
      "AclMode": "none", "Credentials": {{"DefaultChain": true}}}}}},
    "DeleteMarkerReplication": {{"Status": "Disabled"}}}}]}}}}]}}"#,
            strict_stack.endpoint
        );
        let deployment = Deployment {
            sources: vec![source.clone()],
            destinations: vec![replica.clone(), strict.clone(), "nowhere".into()],
            queues: queues.iter().map(|(k, q)| (*k, q.arn.clone())).collect(),
            secret_arns: vec![secret_arn],
            // Granted, never used by a request of the functions (see
            // expected_unexercised): S3 and Secrets Manager use them on their behalf.
            kms_key_arns: vec![format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/objects")],
            secret_kms_key_arns: vec![format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/secrets")],
            archive_bucket: archive.clone(),
            archive_prefix: "parked/".into(),
            direct_delivery_dlq: None,
            signing_key_secret: Some(signing_key_secret.clone()),
            inventory: Some((inventory.clone(), "inv/".into())),
        };
        let policies = deployment.render(template);
        assert_eq!(
            policies.keys().collect::<Vec<_>>(),
            ["ingest", "replicate", "retry"],
            "the template deploys these functions"
        );
        let mut keys = BTreeMap::new();
        for (function, policy) in &policies {
            let keys_of = iam::principal(&admin, function, &iam::bridge_for_moto(policy)).await;
            keys.insert(function.clone(), keys_of);
        }
        Deployed {
            admin,
            proxy,
            source,
            replica,
            strict,
            strict_stack,
            queues,
            archive,
            inventory,
            signing_key_secret,
            signer: Signer::with_keys(SIGNING_KEY, None).expect("a key long enough"),
            config,
            policies,
            keys,
        }
    }

    /// The environment the templates give a function, with `keys` as its role.
    fn env(&self, keys: &(String, String)) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.proxy.endpoint.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", keys.0.clone()),
            ("AWS_SECRET_ACCESS_KEY", keys.1.clone()),
            ("REPLICATOR_CONFIG", self.config.clone()),
            // An inline document has no version.
            ("REPLICATOR_CONFIG_VERSION", String::new()),
            ("WORK_QUEUE_URL", self.queues["work"].url.clone()),
            ("RETRY_QUEUE_URL", self.queues["retry"].url.clone()),
            ("FAILED_QUEUE_URL", self.queues["failed"].url.clone()),
            ("RETRY_MAX_ATTEMPTS", "3".into()),
            ("RETRY_BASE_DELAY_SECONDS", "1".into()),
            // The deploying account, moto's: every request to its buckets names it.
            ("REPLICATOR_ACCOUNT", ACCOUNT.into()),
            // The stack's BackfillReportUrl: the archive bucket, the default prefix
            // (what the backfill below records under, and the policies grant).
            ("BACKFILL_REPORT_URL", self.records()),
            (
                "REPLICATOR_SIGNING_KEY_SECRET",
                self.signing_key_secret.clone(),
            ),
        ]
    }

    /// Where the templates let backfills keep their records.
    fn records(&self) -> String {
        format!("s3://{}/backfill-reports/", self.archive)
    }

    async fn start(&self, function: &str) -> LambdaFunction {
        let mut env = self.env(&self.keys[function]);
        if function == "retry" {
            // Only retry sweeps; here every parked job is old enough.
            env.push((
                "FAILED_ARCHIVE_URL",
                format!("s3://{}/parked/", self.archive),
            ));
            env.push(("FAILED_ARCHIVE_AFTER", "0s".into()));
        }
        let f = LambdaFunction::start(function, &binary(function), &env).await;
        assert!(
            f.ready(Duration::from_secs(30)).await.is_some(),
            "{function} did not start under its shipped policy: {:?}\n{}",
            f.init_error(),
            f.logs().join("\n")
        );
        f
    }

    /// A fixture notification, made to describe the test's object (every delivery of
    /// the one write carries the same sequencer, as S3's do).
    fn notification(&self, fixture: &str, etag: &str, version: &str) -> Value {
        let text = fixture
            .replace("617f08299329d189", "0C0F6F405D6ED209E1")
            .replace("amzn-s3-demo-bucket", &self.source)
            .replace("b21b84d653bb07b05b1e6b33684dc11b", etag)
            .replace("096fKKXTRTtl3on89fVO.nfljtsv6qko", version)
            .replace("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", version);
        serde_json::from_str(&text).expect("fixture")
    }

    /// Receives everything on a queue as Lambda's SQS trigger would hand it over.
    async fn batch(&self, role: &str) -> (Value, Vec<String>) {
        let bodies = self.admin.drain(&self.queues[role]).await;
        (serde_json::to_value(sqs_batch(&bodies)).unwrap(), bodies)
    }

    /// The actions each principal's requests needed, from the proxy's record.
    fn exercised(&self) -> BTreeMap<String, BTreeSet<String>> {
        let by_key: BTreeMap<&String, &String> = self
            .keys
            .iter()
            .map(|(f, (access, _))| (access, f))
            .collect();
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for head in self.proxy.heads.lock().unwrap().iter() {
            for a in iam::actions_of(head) {
                if let Some(f) = by_key.get(&a.access_key) {
                    out.entry((*f).clone()).or_default().insert(a.action);
                }
            }
        }
        out
    }
}

fn failures(response: &Value) -> Vec<Value> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not an SQS batch response: {response}"))
        .clone()
}

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

async fn run_as_deployed(template: Template) {
    let d = Deployed::new(template).await;
    // All three start under their shipped policies with a secret-keyed destination in
    // the configuration: only replicate reads that secret; ingest and replicate read
    // the signing key's.
    let ingest = d.start("ingest").await;
    let replicate = d.start("replicate").await;
    let retry = d.start("retry").await;

    let body: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let put = d
        .admin
        .s3
        .put_object()
        .bucket(&d.source)
        .key(KEY)
        .body(ByteStream::from(body.clone()))
        .content_type("image/jpeg")
        .metadata("camera", "x100")
        .tagging("trip=beach")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().trim_matches('"').to_string();
    let version = put.version_id().unwrap().to_string();

    // ingest: a notification delivered directly, in SQS, in SNS, from EventBridge.
    for (fixture, expect_batch) in [
        (include_str!("../fixtures/events/s3-put.json"), false),
        (include_str!("../fixtures/events/sqs-s3.json"), true),
        (include_str!("../fixtures/events/sns-s3.json"), false),
        (
            include_str!("../fixtures/events/eventbridge-created.json"),
            false,
        ),
    ] {
        let payload = d.notification(fixture, &etag, &version);
        let response = ingest.invoke(&payload, LONG).await.response();
        if expect_batch {
            assert!(failures(&response).is_empty(), "{response}");
        }
    }
    let (_, bodies) = d.batch("work").await;
    // Two destinations match the key; the SQS fixture also holds an s3:TestEvent.
    assert_eq!(bodies.len(), 8, "{bodies:#?}");
    assert_eq!(
        bodies.iter().filter(|b| b.contains("\"same\"")).count(),
        4,
        "{bodies:#?}"
    );

    // replicate: the jobs, a job whose destination cannot be reached (transient: to
    // the retry queue) and a message that is no job (permanent: parked).
    let mut batch: Vec<String> = bodies.clone();
    let mut unreachable = put_job(&d.source, "unreachable/x", "nowhere");
    unreachable.rule_id = "unreachable".into();
    // Signed as ingest would: replicate believes no other.
    unreachable.sign(&d.signer);
    d.admin.put(&d.source, "unreachable/x", b"x").await;
    batch.push(unreachable.to_body());
    batch.push("{\"v\": 1, \"op\": \"put\"".into());
    let response = replicate
        .invoke(&serde_json::to_value(sqs_batch(&batch)).unwrap(), LONG)
        .await
        .response();
    assert!(failures(&response).is_empty(), "{response}");

    let replica = object_state(&d.admin.s3, &d.replica, KEY)
        .await
        .expect("replica");
    assert_eq!(replica.sha256, sha(&body));
    assert_eq!(replica.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(
        replica.metadata.get("camera").map(String::as_str),
        Some("x100")
    );
    assert_eq!(replica.tags.get("trip").map(String::as_str), Some("beach"));
    let strict = d
        .strict_stack
        .s3
        .get_object()
        .bucket(&d.strict)
        .key(KEY)
        .send()
        .await
        .expect("the replica at the other provider, written with the secret's keys");
    assert_eq!(
        sha(&strict.body.collect().await.unwrap().into_bytes()),
        sha(&body)
    );
    let logs = replicate.json_logs();
    assert!(
        logs.iter()
            .any(|l| l["outcome"] == "replicated" && l["key"] == KEY),
        "no replicated line for {KEY}: {logs:#?}"
    );
    // The invocation's metrics, as CloudWatch Embedded Metric Format documents on
    // stdout: per source, destination and rule, and in total.
    let emf: Vec<&Value> = logs.iter().filter(|l| l.get("_aws").is_some()).collect();
    let to_replica = emf
        .iter()
        .find(|doc| {
            doc["DestinationBucket"] == d.replica.as_str()
                && doc.get("OperationsReplicated").is_some()
        })
        .unwrap_or_else(|| panic!("no EMF document for {}: {emf:#?}", d.replica));
    let directive = &to_replica["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "S3Replicator");
    let mut dimensions: Vec<&str> = directive["Dimensions"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    dimensions.sort();
    assert_eq!(dimensions, ["DestinationBucket", "RuleId", "SourceBucket"]);
    assert_eq!(to_replica["SourceBucket"], d.source.as_str());
    // Four deliveries of one event: copied at least once, each copy 70,000 bytes.
    let copies = to_replica["OperationsReplicated"].as_u64().unwrap_or(0);
    assert!(copies >= 1, "{to_replica}");
    assert_eq!(
        to_replica["BytesReplicated"].as_u64(),
        Some(copies * 70_000),
        "{to_replica}"
    );
    assert!(
        to_replica.get("ReplicationLatency").is_some(),
        "{to_replica}"
    );
    assert!(
        emf.iter().any(|doc| doc.get("DestinationBucket").is_none()
            && doc["OperationsReplicated"].as_u64() >= Some(copies)),
        "no total: {emf:#?}"
    );

    // A tag change (the tags removed at the source) and a delete marker reach the
    // replica through the same functions.
    d.admin
        .s3
        .delete_object_tagging()
        .bucket(&d.source)
        .key(KEY)
        .send()
        .await
        .unwrap();
    let tags_event = d.notification(
        include_str!("../fixtures/events/eventbridge-tags.json"),
        &etag,
        &version,
    );
    ingest.invoke(&tags_event, LONG).await.response();
    let (tag_jobs, bodies) = d.batch("work").await;
    assert_eq!(
        bodies.len(),
        1,
        "the tag filter no longer matches at the other provider: {bodies:#?}"
    );
    let response = replicate.invoke(&tag_jobs, LONG).await.response();
    assert!(failures(&response).is_empty(), "{response}");
    let replica = object_state(&d.admin.s3, &d.replica, KEY)
        .await
        .expect("replica");
    assert!(replica.tags.is_empty(), "{:?}", replica.tags);
    let marker = d
        .admin
        .delete(&d.source, KEY)
        .await
        .expect("a delete marker");
    let delete_event = d.notification(
        &include_str!("../fixtures/events/s3-delete-marker.json")
            .replace("1fjGXn2fT0pzWzNCVdvvhlZA2dV9wRPG", &marker),
        &etag,
        &version,
    );
    ingest.invoke(&delete_event, LONG).await.response();
    let (delete_jobs, bodies) = d.batch("work").await;
    assert!(!bodies.is_empty());
    let response = replicate.invoke(&delete_jobs, LONG).await.response();
    assert!(failures(&response).is_empty(), "{response}");
    assert!(
        object_state(&d.admin.s3, &d.replica, KEY).await.is_none(),
        "the delete marker did not reach the replica: {bodies:#?}\n{}",
        replicate.logs().join("\n")
    );

    // A locked version: its replica holds the same retention and legal hold. moto
    // refuses a copy's lock headers, so the lock is set after the copy: the grants of
    // both ways are used (the headers' by the refused copy).
    let until = aws_sdk_s3::primitives::DateTime::from_secs(
        aws_sdk_s3::primitives::DateTime::from(std::time::SystemTime::now()).secs() + 86_400,
    );
    d.admin
        .s3
        .put_object()
        .bucket(&d.source)
        .key("photos/locked.jpg")
        .body(ByteStream::from_static(b"kept for the auditors"))
        .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Governance)
        .object_lock_retain_until_date(until)
        .object_lock_legal_hold_status(aws_sdk_s3::types::ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .unwrap();
    let mut locked = put_job(&d.source, "photos/locked.jpg", &d.replica);
    locked.rule_id = "same".into();
    locked.sign(&d.signer);
    let response = replicate
        .invoke(
            &serde_json::to_value(sqs_batch(&[locked.to_body()])).unwrap(),
            LONG,
        )
        .await
        .response();
    assert!(failures(&response).is_empty(), "{response}");
    let lock = |bucket: String| {
        let s3 = d.admin.s3.clone();
        async move {
            replicator::copy::lock::Lock::of(
                &s3.head_object()
                    .bucket(bucket)
                    .key("photos/locked.jpg")
                    .send()
                    .await
                    .expect("the locked object and its replica"),
            )
        }
    };
    let wanted = lock(d.source.clone()).await;
    assert!(wanted.is_some() && wanted.legal_hold, "{wanted:?}");
    assert_eq!(lock(d.replica.clone()).await, wanted);

    // A backfill under the same policy: replicate runs a list task, which lists the
    // source and the destination and copies what is missing.
    let old: Vec<u8> = (0..5_000u32).map(|i| (i % 13) as u8).collect();
    d.admin.put(&d.source, "photos/old/1999.jpg", &old).await;
    let mut list = replicator::listing::ListTask::root("bf-deployed", &d.source, "photos/old/", 1);
    let records = d.records();
    list.report = Some(records.clone());
    let response = replicate
        .invoke(
            &serde_json::to_value(sqs_batch(&[list.to_body()])).unwrap(),
            LONG,
        )
        .await
        .response();
    assert!(
        failures(&response).is_empty(),
        "{response}\n{}",
        replicate.logs().join("\n")
    );
    // Copied in the task (the other destination's rule filters on a tag this object
    // does not have): nothing is left for the work queue.
    let (_, bodies) = d.batch("work").await;
    assert!(bodies.is_empty(), "{bodies:#?}");
    let replica = object_state(&d.admin.s3, &d.replica, "photos/old/1999.jpg")
        .await
        .expect("the backfilled replica");
    assert_eq!(replica.sha256, sha(&old));
    // The page and the job's outcome are in the backfill's record.
    let recorded = d
        .admin
        .keys(&d.archive, "backfill-reports/bf-deployed/")
        .await;
    assert!(
        recorded
            .iter()
            .any(|k| k.contains("/pages/") && k.contains("_j1_")),
        "{recorded:?}"
    );
    assert!(
        recorded
            .iter()
            .any(|k| k.contains("/results/") && k.contains("_r1_")),
        "{recorded:?}"
    );

    // A backfill from an S3 Inventory: the list task reads the inventory's file where
    // the deployment says inventories are delivered (InventoryBucketName/Prefix).
    let listed_in_inventory: Vec<u8> = b"listed in an inventory".to_vec();
    d.admin
        .put(&d.source, "photos/old/2001.jpg", &listed_in_inventory)
        .await;
    d.admin
        .put(
            &d.inventory,
            "inv/deployed-src/all/data/1.csv",
            format!(
                "\"{}\",\"photos/old/2001.jpg\",\"{}\"\n",
                d.source,
                listed_in_inventory.len()
            )
            .as_bytes(),
        )
        .await;
    let mut from_inventory =
        replicator::listing::ListTask::root("bf-inventory", &d.source, "photos/old/", 0);
    from_inventory.inventory = Some(replicator::listing::task::InventoryFile {
        bucket: d.inventory.clone(),
        key: "inv/deployed-src/all/data/1.csv".into(),
        schema: vec!["Bucket".into(), "Key".into(), "Size".into()],
        skip: 0,
    });
    from_inventory.report = Some(records.clone());
    let response = replicate
        .invoke(
            &serde_json::to_value(sqs_batch(&[from_inventory.to_body()])).unwrap(),
            LONG,
        )
        .await
        .response();
    assert!(
        failures(&response).is_empty(),
        "{response}\n{}",
        replicate.logs().join("\n")
    );
    let (_, bodies) = d.batch("work").await;
    assert!(bodies.is_empty(), "{bodies:#?}");
    let replica = object_state(&d.admin.s3, &d.replica, "photos/old/2001.jpg")
        .await
        .unwrap_or_else(|| {
            panic!(
                "the replica of what the inventory lists\n{}",
                replicate.logs().join("\n")
            )
        });
    assert_eq!(replica.sha256, sha(&listed_in_inventory));

    // Every request to a bucket carries its owner: the destination's Account, and
    // REPLICATOR_ACCOUNT for the rest (sources, the archive, the inventory).
    let heads = d.proxy.heads.lock().unwrap().clone();
    let to_replica: Vec<&String> = heads
        .iter()
        .filter(|h| {
            h.split(' ')
                .nth(1)
                .is_some_and(|t| t.starts_with(&format!("/{}", d.replica)))
        })
        .collect();
    assert!(!to_replica.is_empty());
    for head in &to_replica {
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("x-amz-expected-bucket-owner: {ACCOUNT}")),
            "a request to the destination without its expected owner:\n{head}"
        );
    }
    let to_buckets: Vec<&String> = heads
        .iter()
        .filter(|h| {
            !h.to_ascii_lowercase().contains("\r\nx-amz-target:")
                && h.split(' ').nth(1).is_some_and(|t| t.len() > 1)
        })
        .collect();
    for bucket in [&d.source, &d.archive, &d.inventory] {
        assert!(
            to_buckets.iter().any(|h| h
                .split(' ')
                .nth(1)
                .is_some_and(|t| t.starts_with(&format!("/{bucket}/")))),
            "no request to {bucket}"
        );
    }
    for head in &to_buckets {
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("x-amz-expected-bucket-owner: {ACCOUNT}")),
            "a request to a bucket without its expected owner:\n{head}"
        );
    }

    // retry: the transient failure goes back to work with a delay; a spent budget
    // is parked with its reason.
    let (_, retried) = d.batch("retry").await;
    assert_eq!(retried.len(), 1, "{retried:#?}");
    assert!(
        retried[0].contains("NetworkError") || retried[0].contains("Timeout"),
        "{}",
        retried[0]
    );
    let mut spent = replicator::queues::job::Job::parse(&retried[0]).unwrap();
    spent.attempts = 3;
    // A backfill's job, parked: recorded as failed in its backfill's record first.
    spent.backfill = Some(replicator::queues::job::BackfillRef {
        id: "bf-deployed".into(),
        report: Some(records.clone()),
        absent: false,
    });
    spent.sign(&d.signer);
    let response = retry
        .invoke(
            &serde_json::to_value(sqs_batch(&[retried[0].clone(), spent.to_body()])).unwrap(),
            LONG,
        )
        .await
        .response();
    assert!(failures(&response).is_empty(), "{response}");
    let parked = d.admin.drain(&d.queues["failed"]).await;
    assert_eq!(
        parked.len(),
        2,
        "the unparsable message and the spent job: {parked:#?}"
    );
    assert!(
        parked.iter().any(|p| p.contains("MalformedMessage")),
        "{parked:#?}"
    );
    let failed_rows = d
        .admin
        .keys(&d.archive, "backfill-reports/bf-deployed/results/")
        .await
        .iter()
        .filter(|k| k.contains("_f1.csv"))
        .count();
    assert_eq!(
        failed_rows, 1,
        "the parked backfill job is recorded as failed"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requeued = d.admin.drain(&d.queues["work"]).await;
    assert_eq!(requeued.len(), 1, "{requeued:#?}");
    assert!(requeued[0].contains("unreachable/x"));

    // The hourly schedule: retry moves what has waited long enough (here: all) from
    // the failed queue to the archive, body for body.
    for body in &parked {
        d.admin.send(&d.queues["failed"], body).await;
    }
    let scheduled: Value = serde_json::from_str(include_str!(
        "../fixtures/events/eventbridge-scheduled.json"
    ))
    .unwrap();
    let response = retry.invoke(&scheduled, LONG).await.response();
    assert_eq!(
        response,
        serde_json::json!({"archived": 2, "kept": 0, "unfinished": false}),
        "{}",
        retry.logs().join("\n")
    );
    assert!(d.admin.drain(&d.queues["failed"]).await.is_empty());
    let listed = d
        .admin
        .s3
        .list_objects_v2()
        .bucket(&d.archive)
        .prefix("parked/")
        .send()
        .await
        .unwrap();
    let mut archived = Vec::new();
    for o in listed.contents() {
        let got = d
            .admin
            .s3
            .get_object()
            .bucket(&d.archive)
            .key(o.key().unwrap())
            .send()
            .await
            .unwrap();
        archived.push(String::from_utf8(got.body.collect().await.unwrap().to_vec()).unwrap());
    }
    let (mut want, mut got) = (parked.clone(), archived);
    want.sort();
    got.sort();
    assert_eq!(got, want);

    // What a request above needed, as AWS would check it, that the shipped policy does
    // not grant: moto maps some requests to other actions (a lock's PutObjectRetention
    // is its PutObject), so its enforcement alone would not see them missing.
    let exercised = d.exercised();
    let ungranted: Vec<String> = exercised
        .iter()
        .flat_map(|(f, actions)| {
            let granted: BTreeSet<String> = d
                .policies
                .get(f)
                .map(|p| {
                    iam::granted_actions(p)
                        .into_iter()
                        .map(|(_, a)| a)
                        .collect()
                })
                .unwrap_or_default();
            actions
                .iter()
                .filter(move |a| !granted.contains(*a))
                .map(move |a| format!("{f} {a}"))
        })
        .collect();
    assert!(
        ungranted.is_empty(),
        "needed but not granted by the shipped policies:\n{}",
        ungranted.join("\n")
    );

    // What the shipped policies grant and no request above needed. Each exception
    // says why it cannot be seen here.
    let unexercised: Vec<String> = d
        .policies
        .iter()
        .flat_map(|(f, policy)| {
            let seen = exercised.get(f).cloned().unwrap_or_default();
            iam::granted_actions(policy)
                .into_iter()
                .filter(move |(sid, a)| !seen.contains(a) && !expected_unexercised(f, sid, a))
                .map(move |(sid, a)| format!("{f} {sid} {a}"))
        })
        .collect();
    assert!(
        unexercised.is_empty(),
        "granted but never exercised (remove them, or exercise them here):\n{}",
        unexercised.join("\n")
    );
}

/// Grants no test here can exercise, and why.
fn expected_unexercised(function: &str, sid: &str, action: &str) -> bool {
    // Used by the Lambda service for the function, not by its code: CloudWatch Logs,
    // and what the SQS trigger reads of its queue (the worker test exercises those).
    if sid == "Logs"
        || (sid.starts_with("ConsumeTrigger")
            && [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
            ]
            .contains(&action))
    {
        return true;
    }
    matches!(
        (function, action),
        // No request is a listing: S3 needs ListBucket to answer a HEAD of a missing
        // key with 404 instead of 403 (moto answers 404 regardless).
        (_, "s3:ListBucket")
        // ingest HEADs an object only when a destination can replicate back into its
        // bucket (two-way), and reads tags without a version only for events that
        // carry none; the source here is versioned and one-way.
        | ("ingest", "s3:GetObject" | "s3:GetObjectTagging")
        // The same for replicate's reads of an unversioned source.
        | ("replicate", "s3:GetObjectAcl")
        // Multipart copies at the same endpoint start above 1 GiB; their requests
        // (and the lease extension of a job that outlasts half the visibility
        // timeout) are exercised against the same code by tests/tests/large_objects.rs
        // and the deadline test below, not under IAM.
        | ("replicate", "s3:ListMultipartUploadParts" | "s3:AbortMultipartUpload"
            | "s3:ListBucketMultipartUploads" | "sqs:ChangeMessageVisibility")
        // S3 shows a version's Object Lock in a HEAD (s3:GetObject) only to a caller
        // granted these; no request names them.
        | ("replicate", "s3:GetObjectRetention" | "s3:GetObjectLegalHold")
        // KMS keys are used by S3 (SSE-KMS objects) and Secrets Manager (secrets under
        // a customer key, the signing key's among them) on the function's behalf,
        // never by a request of its own (kms:ViaService; tests/tests/templates.rs
        // checks the conditions): on AWS as here, the function sends no KMS request.
        | ("replicate", "kms:Decrypt" | "kms:GenerateDataKey")
        | ("ingest", "kms:Decrypt")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_run_as_lambdas_under_the_sam_policies() {
    run_as_deployed(Template::Sam).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_run_as_lambdas_under_the_terraform_policies() {
    run_as_deployed(Template::Terraform).await;
}

/// `s3-replicator run` under the union of the three policies: S3 notifications in,
/// replicas out, and the SQS trigger's own actions (receive, delete, attributes)
/// exercised on each function's queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_under_the_union_of_the_three() {
    let mut d = Deployed::new(Template::Sam).await;
    let union = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": d.policies.iter().flat_map(|(f, p)| {
            p["Statement"].as_array().cloned().unwrap_or_default().into_iter().map(move |mut st| {
                st["Sid"] = format!("{f}{}", st["Sid"].as_str().unwrap_or_default()).into();
                st
            })
        }).collect::<Vec<_>>(),
    });
    let keys = iam::principal(&d.admin, "worker", &iam::bridge_for_moto(&union)).await;
    d.keys.insert("worker".into(), keys.clone());
    d.admin.notify(&d.source, &d.queues["events"]).await;
    let body = b"replicated by the worker".to_vec();
    d.admin
        .s3
        .put_object()
        .bucket(&d.source)
        .key("photos/worker.txt")
        .body(ByteStream::from(body.clone()))
        .tagging("trip=beach")
        .send()
        .await
        .unwrap();
    let mut env = d.env(&keys);
    env.push(("EVENTS_QUEUE_URL", d.queues["events"].url.clone()));
    let out = tokio::process::Command::new(binary("s3-replicator"))
        .args(["run", "--exit-when-idle", "3"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env)
        .output();
    let out = tokio::time::timeout(LONG, out)
        .await
        .expect("the worker stops when idle")
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{logs}", out.status);
    for (s3, bucket) in [(&d.admin.s3, &d.replica), (&d.strict_stack.s3, &d.strict)] {
        let got = s3
            .get_object()
            .bucket(bucket)
            .key("photos/worker.txt")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{bucket}: {}\n{logs}", replicator::errors::describe(&e)));
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().to_vec(),
            body
        );
    }
    let worker = d.exercised().remove("worker").unwrap_or_default();
    for action in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ] {
        assert!(worker.contains(action), "{action}: {worker:?}");
    }
}

/// A paused multipart copy, as Lambda's deadline makes it: the invocation whose
/// `Lambda-Runtime-Deadline-Ms` is near hands the copy on through the work queue,
/// and the next invocation finishes it from the parts already uploaded (s3s-fs:
/// moto 5.2.5's ListParts answer is one the SDK refuses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_near_deadline_pauses_a_multipart_copy_and_the_next_invocation_finishes_it() {
    let stack = Stack::main().await;
    let s3s = Stack::s3s_fs().await;
    let source = stack.bucket("deadline-src").await;
    let work = stack.queue("deadline-work").await;
    let failed = stack.queue("deadline-failed").await;
    let (dst, destination) =
        integration_tests::s3s_destination(&stack, &s3s, r#", "PartSize": 5242880"#).await;
    let config = integration_tests::one_rule(&source, &destination);
    // Above the 64 MiB threshold of streamed copies: 14 parts of 5 MiB, eight at once.
    let body = integration_tests::parts_body();
    stack.put(&source, "big.bin", &body).await;
    let env = vec![
        ("AWS_ENDPOINT_URL", stack.endpoint.clone()),
        ("AWS_REGION", REGION.into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("REPLICATOR_CONFIG", config),
        ("WORK_QUEUE_URL", work.url.clone()),
        ("FAILED_QUEUE_URL", failed.url.clone()),
    ];
    let replicate = LambdaFunction::start("replicate", &binary("replicate"), &env).await;
    let job = put_job(&source, "big.bin", &dst).to_body();
    // Less than the 20 s the handler keeps in reserve: one round of parts, then pause.
    let response = replicate
        .invoke(
            &serde_json::to_value(sqs_batch(&[job])).unwrap(),
            Duration::from_secs(5),
        )
        .await
        .response();
    assert!(failures(&response).is_empty(), "{response}");
    let handed_on = stack.drain(&work).await;
    assert_eq!(handed_on.len(), 1, "{handed_on:?}");
    let continuation: Value = serde_json::from_str(&handed_on[0]).unwrap();
    assert!(
        continuation["upload"]["upload_id"].is_string(),
        "{continuation}"
    );
    assert!(
        s3s.s3
            .head_object()
            .bucket(&dst)
            .key("big.bin")
            .send()
            .await
            .is_err(),
        "no replica before the copy completes"
    );
    let logs = replicate.json_logs();
    assert!(logs.iter().any(|l| l["outcome"] == "paused"), "{logs:#?}");

    let response = replicate
        .invoke(&serde_json::to_value(sqs_batch(&handed_on)).unwrap(), LONG)
        .await
        .response();
    assert!(failures(&response).is_empty(), "{response}");
    let got = s3s
        .s3
        .get_object()
        .bucket(&dst)
        .key("big.bin")
        .send()
        .await
        .expect("replica");
    assert_eq!(
        sha(&got.body.collect().await.unwrap().into_bytes()),
        sha(&body)
    );
    assert_eq!(
        integration_tests::part_count(&s3s.s3, &dst, "big.bin").await,
        14
    );
    assert!(stack.drain(&work).await.is_empty());
}

/// `Credentials: {"Profile": ...}` signs with that profile even when the
/// environment holds other keys; a profile or secret that cannot be read stops the
/// start with the destination's name (ingest and retry never read them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_credentials_come_from_what_the_document_names_and_nothing_else() {
    let stack = Stack::main().await;
    let s3s = Stack::s3s_fs().await;
    let source = stack.bucket("profile-src").await;
    let work = stack.queue("profile-work").await;
    let dst = unique("profile-dst");
    s3s.s3.create_bucket().bucket(&dst).send().await.unwrap();
    let dir = std::env::temp_dir().join(unique("aws-config"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("credentials"),
        format!(
            "[strict]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            std::env::var("S3R_TEST_S3S_ACCESS_KEY").unwrap(),
            std::env::var("S3R_TEST_S3S_SECRET_KEY").unwrap()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("config"), "").unwrap();
    let config = |credentials: &str| {
        integration_tests::one_rule(
            &source,
            &format!(
                r#"{{"Bucket": "{dst}", "Replicator": {{"EndpointUrl": "{}", "ForcePathStyle": true,
                    "AclMode": "none", "Credentials": {credentials}}}}}"#,
                s3s.endpoint
            ),
        )
    };
    let env = |config: String| {
        vec![
            ("AWS_ENDPOINT_URL", stack.endpoint.clone()),
            ("AWS_REGION", REGION.to_string()),
            // The environment's keys: the default chain would pick these.
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join("credentials").display().to_string(),
            ),
            ("AWS_CONFIG_FILE", dir.join("config").display().to_string()),
            ("REPLICATOR_CONFIG", config),
            ("WORK_QUEUE_URL", work.url.clone()),
        ]
    };
    stack.put(&source, "p.txt", b"signed by the profile").await;
    let replicate = LambdaFunction::start(
        "replicate",
        &binary("replicate"),
        &env(config(r#"{"Profile": "strict"}"#)),
    )
    .await;
    let job = put_job(&source, "p.txt", &dst).to_body();
    let response = replicate
        .invoke(&serde_json::to_value(sqs_batch(&[job])).unwrap(), LONG)
        .await
        .response();
    assert!(failures(&response).is_empty(), "{response}");
    s3s.s3
        .head_object()
        .bucket(&dst)
        .key("p.txt")
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "s3s-fs accepted the profile's signature: {}\n{:#?}",
                replicator::errors::describe(&e),
                replicate.logs()
            )
        });

    for (credentials, named) in [
        (r#"{"Profile": "absent"}"#, "profile \"absent\""),
        (r#"{"Secret": "s3r/absent"}"#, "secret \"s3r/absent\""),
    ] {
        let replicate =
            LambdaFunction::start("replicate", &binary("replicate"), &env(config(credentials)))
                .await;
        let status = replicate.exit_status(Duration::from_secs(30)).await;
        assert!(
            status.is_some(),
            "replicate started without its destination's keys"
        );
        // One readable line says why, naming the destination and its keys' source.
        let logs = replicate.json_logs();
        let error = logs
            .iter()
            .find(|l| l["message"] == "cannot start")
            .and_then(|l| l["error"].as_str())
            .unwrap_or_else(|| panic!("no start error in {logs:#?}"));
        assert!(error.contains(&dst) && error.contains(named), "{error}");
        // ingest and retry start: they never write to destinations.
        for function in ["ingest", "retry"] {
            let mut env = env(config(credentials));
            env.push(("FAILED_QUEUE_URL", work.url.clone()));
            let f = LambdaFunction::start(function, &binary(function), &env).await;
            assert!(
                f.ready(Duration::from_secs(30)).await.is_some(),
                "{function}: {:?}\n{}",
                f.init_error(),
                f.logs().join("\n")
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Lambda's logging controls: JSON by default; `AWS_LAMBDA_LOG_FORMAT=Text` and
/// `AWS_LAMBDA_LOG_LEVEL` as the function's LoggingConfig sets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_honour_lambdas_logging_controls() {
    let stack = Stack::main().await;
    let source = stack.bucket("logs-src").await;
    let work = stack.queue("logs-work").await;
    let config = integration_tests::one_rule(&source, r#"{"Bucket": "logs-dst"}"#);
    let env = |extra: &[(&'static str, &str)]| {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", stack.endpoint.clone()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("REPLICATOR_CONFIG", config.clone()),
            ("WORK_QUEUE_URL", work.url.clone()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        env
    };
    // A job that does not parse: an error line (the message is parked nowhere).
    let batch = serde_json::to_value(sqs_batch(&["not a job".to_string()])).unwrap();
    let put = serde_json::to_value(sqs_batch(&[
        put_job(&source, "absent", "logs-dst").to_body()
    ]))
    .unwrap();
    for (extra, json, info_lines) in [
        (&[][..], true, true),
        (
            &[
                ("AWS_LAMBDA_LOG_FORMAT", "Text"),
                ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
            ][..],
            false,
            false,
        ),
        (
            &[
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
                ("AWS_LAMBDA_LOG_LEVEL", "ERROR"),
            ][..],
            true,
            false,
        ),
    ] {
        let f = LambdaFunction::start("replicate", &binary("replicate"), &env(extra)).await;
        f.invoke(&batch, LONG).await.response();
        f.invoke(&put, LONG).await.response();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let logs = f.logs();
        let error = logs
            .iter()
            .find(|l| l.contains("does not parse"))
            .unwrap_or_else(|| panic!("{extra:?}: no error line in {logs:#?}"));
        assert_eq!(
            serde_json::from_str::<Value>(error).is_ok(),
            json,
            "{extra:?}: {error}"
        );
        // The skipped job's outcome is an INFO line (its metric, an EMF document on
        // stdout, is written whatever the level).
        let info = logs
            .iter()
            .filter(|l| !l.contains("\"_aws\""))
            .any(|l| l.contains("SourceDeleted"));
        assert!(
            logs.iter()
                .any(|l| l.contains("\"_aws\"") && l.contains("OperationsSkipped")),
            "{extra:?}: {logs:#?}"
        );
        assert_eq!(info, info_lines, "{extra:?}: {logs:#?}");
    }
}
