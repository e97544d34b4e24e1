//! Backfill on the local stack: objects that were there before anything was wired
//! reach every destination their rules select (another provider included), what the
//! rules leave out is counted with its reason, and a second backfill copies nothing.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::StorageClass;
use integration_tests::*;
use replicator::backfill::{self, Scope};

#[tokio::test]
async fn a_backfill_converges_and_a_second_one_copies_nothing() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let far = unique("far");
    other.s3.create_bucket().bucket(&far).send().await.unwrap();
    let cfg = config(&format!(
        r#"{{"Sources": [{{"Bucket": "{src}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "all", "Priority": 1, "Status": "Enabled", "Filter": {{}},
              "Destination": {{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}},
              "DeleteMarkerReplication": {{"Status": "Enabled"}}}},
            {{"ID": "kept-images", "Priority": 2, "Status": "Enabled",
              "Filter": {{"And": {{"Prefix": "img/", "Tags": [{{"Key": "keep", "Value": "yes"}}]}}}},
              "Destination": {{"Bucket": "{far}", "Replicator": {{"EndpointUrl": "{endpoint}", "ForcePathStyle": true,
                 "AclMode": "none", "Credentials": {{"DefaultChain": true}}}}}},
              "DeleteMarkerReplication": {{"Status": "Disabled"}}}}]}}}}]}}"#,
        src = p.source,
        endpoint = other.endpoint,
    ));

    // 150 objects over nested prefixes and the root; a third of the images tagged.
    let mut keys = Vec::new();
    for prefix in [
        "logs/2024/01/",
        "logs/2024/02/",
        "logs/2025/",
        "img/raw/",
        "img/",
        "top ",
    ] {
        keys.extend(put_many(&stack, &p.source, prefix, 25).await);
    }
    let kept: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("img/"))
        .step_by(3)
        .collect();
    for key in &kept {
        stack.set_tag(&p.source, key, ("keep", "yes")).await;
    }
    // One archived object: listed, never copied.
    stack
        .s3
        .put_object()
        .bucket(&p.source)
        .key("cold/archive.bin")
        .storage_class(StorageClass::Glacier)
        .body(ByteStream::from_static(b"frozen"))
        .send()
        .await
        .unwrap();
    // Stale copies written at the destination by someone else: different bytes.
    for key in keys.iter().take(5) {
        stack.put(&dst, key, b"stale").await;
    }
    // Already replicated by the pipeline (with provenance) before the backfill.
    let replicator = p.replicator(&cfg).await;
    for key in keys.iter().skip(5).take(10) {
        let mut job = put_job(&p.source, key, &dst);
        job.rule_id = "all".into();
        replicator.run(&job).await.unwrap();
    }

    let ingest = p.ingest(&cfg);
    let scope = Scope {
        split: backfill::DEFAULT_SPLIT,
        ..Scope::default()
    };
    let tasks = backfill::root_tasks(&cfg, &scope, "bf-test").unwrap();
    let plan = backfill::dry_run(&ingest, &tasks).await.unwrap();
    assert_eq!(plan.listed, 151);
    let planned: Vec<(&str, u64)> = plan
        .destinations
        .iter()
        .map(|d| (d.destination.as_str(), d.objects))
        .collect();
    let mut expected = vec![(dst.as_str(), 150), (far.as_str(), kept.len() as u64)];
    expected.sort();
    assert_eq!(planned, expected);
    assert_eq!(plan.skipped.get("ObjectInArchive"), Some(&1));
    assert_eq!(stack.depth(&p.work).await, 0, "a dry run sends nothing");

    // Narrowed to one rule, the untagged images are counted as matching no rule.
    let images = Scope {
        rule: Some("kept-images".into()),
        ..scope.clone()
    };
    let image_tasks = backfill::root_tasks(&cfg, &images, "bf-img").unwrap();
    assert_eq!(image_tasks.len(), 1);
    assert_eq!(image_tasks[0].prefix, "img/");
    let image_plan = backfill::dry_run(&ingest, &image_tasks).await.unwrap();
    assert_eq!(image_plan.listed, 50);
    assert_eq!(
        image_plan.skipped.get("NoRuleMatches"),
        Some(&(50 - kept.len() as u64))
    );

    // The backfill itself runs on the work queue, listing in parallel.
    backfill::start(&ingest, &tasks).await.unwrap();
    let (counted, log) = stack.counted_s3();
    p.run_worker_on(&cfg, counted.clone()).await;
    let first = log.take();
    let lists = first.iter().filter(|r| r.contains("list-type=2")).count();
    // The root and its folders (logs/, img/, cold/, then logs/2024/, logs/2025/,
    // img/raw/) each list at least once.
    assert!(lists >= 7, "{lists} listings");
    for key in &keys {
        let there = object_state(&stack.s3, &dst, key).await;
        assert_eq!(
            there,
            object_state(&stack.s3, &p.source, key).await,
            "{key}"
        );
    }
    for key in &kept {
        let there = object_without_tags(&other.s3, &far, key).await.expect(key);
        let here = object_without_tags(&stack.s3, &p.source, key)
            .await
            .unwrap();
        assert_eq!(
            (there.size, there.sha256),
            (here.size, here.sha256),
            "{key}"
        );
    }
    let far_count = other
        .s3
        .list_objects_v2()
        .bucket(&far)
        .send()
        .await
        .unwrap()
        .key_count()
        .unwrap_or(0);
    assert_eq!(far_count as usize, kept.len(), "only kept images go far");
    assert!(object_state(&stack.s3, &dst, "cold/archive.bin")
        .await
        .is_none());
    let copies = first.iter().filter(|r| r.ends_with(" copy")).count();
    // The ten replicated before cost a HEAD each, not a copy.
    assert_eq!(copies, 150 - 10, "copies at the same endpoint");
    assert_eq!(stack.depth(&p.failed).await, 0);

    // Again: every replica is up to date, found with one HEAD of it each.
    let again = backfill::root_tasks(&cfg, &scope, "bf-again").unwrap();
    backfill::start(&ingest, &again).await.unwrap();
    p.run_worker_on(&cfg, counted).await;
    let second = log.take();
    let copies = second.iter().filter(|r| r.ends_with(" copy")).count();
    let writes = second
        .iter()
        .filter(|r| r.starts_with("PUT") || r.starts_with("POST") || r.starts_with("DELETE"))
        .count();
    assert_eq!((copies, writes), (0, 0), "{second:?}");
    let heads = second.iter().filter(|r| r.starts_with("HEAD")).count();
    assert_eq!(
        heads, 150,
        "one HEAD per object at the same-endpoint destination"
    );
}
