//! Backfill on the local stack: objects that were there before anything was wired
//! reach every destination their rules select (another provider included), what the
//! rules leave out is counted with its reason, and a second backfill copies nothing.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::StorageClass;
use integration_tests::*;
use replicator::copy::Outcome;
use replicator::operator::backfill::{self, Scope};

/// A destination bucket at the other provider, reached with the default chain's keys.
fn at_other(other: &Stack, bucket: &str) -> String {
    format!(
        r#"{{"Bucket": "{bucket}", "Replicator": {{"EndpointUrl": "{}", "ForcePathStyle": true,
            "AclMode": "none", "Credentials": {{"DefaultChain": true}}}}}}"#,
        other.endpoint
    )
}

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
              "Destination": {far},
              "DeleteMarkerReplication": {{"Status": "Disabled"}}}}]}}}}]}}"#,
        src = p.source,
        far = at_other(&other, &far),
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
    // Beside the destinations' listings: the ten replicated before are up to date, the
    // five stale ones are not.
    let plan = backfill::dry_run(&ingest, Some(&replicator.s3), &tasks)
        .await
        .unwrap();
    assert_eq!(plan.listed, 151);
    let planned: Vec<(&str, u64, u64)> = plan
        .destinations
        .iter()
        .map(|d| (d.destination.as_str(), d.objects, d.up_to_date))
        .collect();
    let mut expected = vec![
        (dst.as_str(), 140, 10),
        (far.as_str(), kept.len() as u64, 0),
    ];
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
    let image_plan = backfill::dry_run(&ingest, None, &image_tasks)
        .await
        .unwrap();
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
    // 151 objects fit in one page: one task lists the whole bucket, once here and
    // once at the same-endpoint destination, and splits into no folder tasks.
    assert_eq!(lists, 2, "{lists} listings");
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
    let far_count = other.keys(&far, "").await.len();
    assert_eq!(far_count, kept.len(), "only kept images go far");
    assert!(object_state(&stack.s3, &dst, "cold/archive.bin")
        .await
        .is_none());
    let copies = first.iter().filter(|r| r.ends_with(" copy")).count();
    // The ten replicated before cost nothing of their own: the destination's listing
    // shows them. The others: a HEAD of the source and the copy, in their list task.
    assert_eq!(copies, 150 - 10, "copies at the same endpoint");
    // Only the five stale replicas (listed, but different) are read before a copy; a
    // replica the listing does not show is not looked for.
    let replica_heads = first
        .iter()
        .filter(|r| r.starts_with(&format!("HEAD /{dst}/")))
        .count();
    assert_eq!(replica_heads, 5);
    let source_heads = first
        .iter()
        .filter(|r| r.starts_with(&format!("HEAD /{}/", p.source)))
        .count();
    assert!(source_heads >= 140 + kept.len(), "{source_heads}");
    assert_eq!(stack.depth(&p.failed).await, 0);

    // Again: every replica is up to date, and the listings alone show it.
    let again = backfill::root_tasks(&cfg, &scope, "bf-again").unwrap();
    backfill::start(&ingest, &again).await.unwrap();
    p.run_worker_on(&cfg, counted).await;
    let second = log.take();
    // Per object, only what the rules need: the tags of the objects a tag filter
    // could select.
    let tag_reads = second.iter().filter(|r| r.ends_with("?tagging")).count();
    assert_eq!(tag_reads, 50, "the images' tags");
    let per_object: Vec<&String> = second
        .iter()
        .filter(|r| !r.contains("list-type=2") && !r.ends_with("?tagging"))
        .collect();
    assert!(per_object.is_empty(), "{per_object:#?}");
    assert!(
        second.len() - tag_reads < 30,
        "{} listings for 151 objects",
        second.len() - tag_reads
    );
}

/// A backfill fed by an S3 Inventory instead of a listing: gzip CSV files named by a
/// manifest, URL-encoded keys, old versions and delete markers left out, and a file
/// longer than one task reads.
#[tokio::test]
async fn an_inventory_feeds_a_backfill() {
    use std::io::Write;
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let inventories = stack.bucket("inventories").await;
    let cfg = config(&one_rule(
        &p.source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let mut keys = put_many(&stack, &p.source, "inv/", 20).await;
    for key in ["inv/a b+c.txt", "inv/100% sure.txt", "elsewhere/x"] {
        stack.put(&p.source, key, key.as_bytes()).await;
        keys.push(key.to_string());
    }
    let listed = stack
        .s3
        .list_objects_v2()
        .bucket(&p.source)
        .send()
        .await
        .unwrap();
    let row = |o: &aws_sdk_s3::types::Object, latest: bool, marker: bool| {
        let key: String = form_urlencoded::byte_serialize(o.key().unwrap().as_bytes()).collect();
        format!(
            "\"{}\",\"{key}\",\"v1\",\"{latest}\",\"{marker}\",\"{}\",\"{}\",\"{}\",\"STANDARD\"\n",
            p.source,
            o.size().unwrap(),
            o.last_modified()
                .unwrap()
                .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
                .unwrap(),
            o.e_tag().unwrap().trim_matches('"'),
        )
    };
    let gz = |text: &str| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap()
    };
    let objects = listed.contents();
    // File 1: half the objects, an old version and a delete marker of a key, and a row
    // of another bucket.
    let mut first = String::new();
    for o in &objects[..objects.len() / 2] {
        first.push_str(&row(o, true, false));
    }
    first.push_str(&row(&objects[0], false, false));
    first.push_str(&row(&objects[1], true, true).replace("inv", "deleted"));
    first.push_str(&row(&objects[2], true, false).replace(&p.source, "another-bucket"));
    // File 2: more rows of old versions than one task reads, then the other half.
    let mut second = row(&objects[3], false, false).repeat(10_000);
    for o in &objects[objects.len() / 2..] {
        second.push_str(&row(o, true, false));
    }
    for (key, text) in [
        ("inv/data/1.csv.gz", &first),
        ("inv/data/2.csv.gz", &second),
    ] {
        stack
            .s3
            .put_object()
            .bucket(&inventories)
            .key(key)
            .body(ByteStream::from(gz(text)))
            .send()
            .await
            .unwrap();
    }
    let manifest = serde_json::json!({
        "sourceBucket": p.source, "destinationBucket": format!("arn:aws:s3:::{inventories}"),
        "version": "2016-11-30", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass",
        "files": [{"key": "inv/data/1.csv.gz", "size": 1, "MD5checksum": "x"},
                  {"key": "inv/data/2.csv.gz", "size": 1, "MD5checksum": "x"}]
    });
    stack
        .put(
            &inventories,
            "inv/manifest.json",
            manifest.to_string().as_bytes(),
        )
        .await;

    let ingest = p.ingest(&cfg);
    let url = format!("s3://{inventories}/inv/manifest.json");
    let (bucket, manifest) = backfill::inventory::read_manifest(&stack.s3, &url)
        .await
        .unwrap();
    let scope = Scope {
        prefix: Some("inv/".into()),
        ..Scope::default()
    };
    let tasks = backfill::inventory::tasks(&cfg, &scope, "bf-inv", &bucket, &manifest).unwrap();
    assert_eq!(tasks.len(), 2);
    let plan = backfill::dry_run(&ingest, None, &tasks).await.unwrap();
    assert_eq!(
        plan.listed, 22,
        "the current objects under inv/, once each: {plan:?}"
    );
    assert_eq!(plan.list_requests, 3, "file 2 takes two tasks");
    backfill::start(&ingest, &tasks).await.unwrap();
    p.run_worker(&cfg).await;
    for key in &keys {
        let there = object_state(&stack.s3, &dst, key).await;
        match key.starts_with("inv/") {
            true => assert_eq!(
                there,
                object_state(&stack.s3, &p.source, key).await,
                "{key}"
            ),
            false => assert!(there.is_none(), "{key} is outside --prefix"),
        }
    }
    assert_eq!(stack.depth(&p.failed).await, 0);

    // A manifest of another format, or of a bucket not configured, is refused.
    stack
        .put(
            &inventories,
            "orc/manifest.json",
            manifest_of("ORC", &p.source).as_bytes(),
        )
        .await;
    let err = backfill::inventory::read_manifest(
        &stack.s3,
        &format!("s3://{inventories}/orc/manifest.json"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("only CSV"), "{err}");
    stack
        .put(
            &inventories,
            "other/manifest.json",
            manifest_of("CSV", "not-a-source").as_bytes(),
        )
        .await;
    let (b, m) = backfill::inventory::read_manifest(
        &stack.s3,
        &format!("s3://{inventories}/other/manifest.json"),
    )
    .await
    .unwrap();
    let err = backfill::inventory::tasks(&cfg, &Scope::default(), "bf-x", &b, &m)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a source"), "{err}");
}

fn manifest_of(format: &str, bucket: &str) -> String {
    serde_json::json!({"sourceBucket": bucket, "fileFormat": format, "fileSchema": "Bucket, Key", "files": []})
        .to_string()
}

/// `verify`'s reports for every source and destination of the document.
async fn verify(
    p: &Pipeline,
    cfg: &std::sync::Arc<replicator::config::Config>,
    replicator: &replicator::replicate::Replicator,
) -> Vec<replicator::operator::drift::DestinationReport> {
    let progress = replicator::operator::drift::Progress::default();
    replicator::operator::drift::Drift {
        config: cfg,
        ingest: &p.ingest(cfg),
        clients: &replicator.s3,
        progress: &progress,
    }
    .run(&Scope::default(), false)
    .await
    .unwrap()
}

/// Thousands of objects over many folders, as the issue asks: more than a page, so the
/// bucket splits into folder tasks listed in parallel; some replicas already there,
/// some stale, a tag filter, another provider. `verify` reports the drift before and
/// none after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_objects_converge_and_verify_agrees() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let tagged = stack.bucket("tagged").await;
    let far = unique("far");
    other.s3.create_bucket().bucket(&far).send().await.unwrap();
    let cfg = config(&format!(
        r#"{{"Sources": [{{"Bucket": "{src}", "ReplicationConfiguration": {{"Rules": [
            {{"ID": "all", "Priority": 1, "Status": "Enabled", "Filter": {{}},
              "Destination": {{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}},
              "DeleteMarkerReplication": {{"Status": "Disabled"}}}},
            {{"ID": "far", "Priority": 2, "Status": "Enabled", "Filter": {{"Prefix": "d1"}},
              "Destination": {far},
              "DeleteMarkerReplication": {{"Status": "Disabled"}}}},
            {{"ID": "tagged", "Priority": 3, "Status": "Enabled",
              "Filter": {{"And": {{"Prefix": "d2", "Tags": [{{"Key": "keep", "Value": "yes"}}]}}}},
              "Destination": {{"Bucket": "{tagged}", "Replicator": {{"AclMode": "none"}}}},
              "DeleteMarkerReplication": {{"Status": "Disabled"}}}}]}}}}]}}"#,
        src = p.source,
        far = at_other(&other, &far),
    ));
    let mut keys = Vec::new();
    for folder in 0..24 {
        keys.extend(put_many(&stack, &p.source, &format!("d{folder:02}/"), 100).await);
    }
    let kept: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("d2"))
        .step_by(10)
        .collect();
    for key in &kept {
        stack.set_tag(&p.source, key, ("keep", "yes")).await;
    }
    let replicator = p.replicator(&cfg).await;
    for key in keys.iter().step_by(24).take(100) {
        let mut job = put_job(&p.source, key, &dst);
        job.rule_id = "all".into();
        replicator.run(&job).await.unwrap();
    }
    let stale: Vec<&String> = keys.iter().skip(1).step_by(24).take(20).collect();
    for key in &stale {
        stack.put(&dst, key, b"stale").await;
    }

    let ingest = p.ingest(&cfg);
    let counts = |reports: &[replicator::operator::drift::DestinationReport]| -> Vec<(String, u64, usize, usize, usize)> {
        reports
            .iter()
            .map(|r| (r.destination.clone(), r.in_sync, r.missing.len(), r.differs.len(), r.extra.len()))
            .collect()
    };
    let before = verify(&p, &cfg, &replicator).await;
    let mut expected = vec![
        (dst.clone(), 100, 2400 - 100 - 20, 20, 0),
        (far.clone(), 0, 1000, 0, 0),
        (tagged.clone(), 0, kept.len(), 0, 0),
    ];
    expected.sort();
    let mut got = counts(&before);
    got.sort();
    assert_eq!(got, expected);

    let scope = Scope {
        split: backfill::DEFAULT_SPLIT,
        ..Scope::default()
    };
    let tasks = backfill::root_tasks(&cfg, &scope, "bf-thousands").unwrap();
    backfill::start(&ingest, &tasks).await.unwrap();
    let (counted, log) = stack.counted_s3();
    p.run_worker_on(&cfg, counted).await;
    let lists = log
        .take()
        .iter()
        .filter(|r| r.starts_with(&format!("GET /{}", p.source)) && r.contains("list-type=2"))
        .count();
    // More than a page: the root splits, and each of the 24 folders lists on its own.
    assert!(lists >= 24, "{lists} listings of the source");
    assert_eq!(stack.depth(&p.failed).await, 0);

    let after = verify(&p, &cfg, &replicator).await;
    let mut got = counts(&after);
    got.sort();
    let mut expected = vec![
        (dst.clone(), 2400, 0, 0, 0),
        (far.clone(), 1000, 0, 0, 0),
        (tagged.clone(), kept.len() as u64, 0, 0, 0),
    ];
    expected.sort();
    assert_eq!(got, expected);
    for key in keys.iter().step_by(97) {
        assert_eq!(
            object_state(&stack.s3, &dst, key).await,
            object_state(&stack.s3, &p.source, key).await,
            "{key}"
        );
    }
}

/// `verify` against a strict provider (s3s-fs): a multipart replica, whose ETag is not
/// its source's, is compared by checksum and provenance (two HEADs) and is in sync; an
/// object written over a replica at the destination, same size, later, differs; one
/// written there directly is not ours; an object not yet replicated is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_compares_a_strict_providers_replicas_by_checksum_and_provenance() {
    let stack = Stack::main().await;
    let s3s = Stack::s3s_fs().await;
    let p = Pipeline::unwired(&stack).await;
    let (dst, destination) = s3s_destination(&stack, &s3s, r#", "PartSize": 5242880"#).await;
    let cfg = config(&one_rule(&p.source, &destination));
    let replicator = p.replicator(&cfg).await;
    // A source written in parts: its ETag ends in -2, its replica's (one PutObject, or
    // s3s-fs's own multipart ETag) does not.
    let part = random_bytes(5 * 1024 * 1024, 3);
    stack
        .put_in_parts(
            &p.source,
            "big/parts.bin",
            &[part.clone(), part[..1000].to_vec()],
        )
        .await;
    for key in ["same/1.txt", "same/2.txt", "over/written.txt"] {
        stack.put(&p.source, key, key.as_bytes()).await;
    }
    for key in [
        "big/parts.bin",
        "same/1.txt",
        "same/2.txt",
        "over/written.txt",
    ] {
        let outcome = replicator
            .run(&put_job(&p.source, key, &dst))
            .await
            .unwrap();
        assert!(
            matches!(outcome, Outcome::Replicated { .. }),
            "{key}: {outcome:?}"
        );
    }
    let etag = |s3: aws_sdk_s3::Client, bucket: String| async move {
        s3.head_object()
            .bucket(bucket)
            .key("big/parts.bin")
            .send()
            .await
            .unwrap()
            .e_tag()
            .map(str::to_string)
    };
    let (here, there) = (
        etag(stack.s3.clone(), p.source.clone()).await,
        etag(s3s.s3.clone(), dst.clone()).await,
    );
    assert_ne!(here, there, "the listings alone cannot settle this pair");
    // S3's Last-Modified has one-second grain: the overwrite is later by more.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s3s.put(&dst, "over/written.txt", b"OVER/WRITTEN.TXT").await;
    s3s.put(&dst, "direct.txt", b"not from the source").await;
    stack
        .put(&p.source, "late.txt", b"not replicated yet")
        .await;

    let reports = verify(&p, &cfg, &replicator).await;
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let r = &reports[0];
    let keys = |list: &[replicator::operator::drift::Drifted]| -> Vec<String> {
        list.iter().map(|d| d.key.clone()).collect()
    };
    assert_eq!(r.in_sync, 3, "{r:#?}");
    assert_eq!(keys(&r.missing), ["late.txt"], "{r:#?}");
    assert_eq!(keys(&r.differs), ["over/written.txt"], "{r:#?}");
    assert!(
        r.differs[0]
            .why
            .as_deref()
            .is_some_and(|w| w.contains("written at the destination")),
        "{r:#?}"
    );
    assert!(r.extra.is_empty(), "{r:#?}");
    assert_eq!(r.not_ours, 1, "{r:#?}");
}

/// A list task copies its page's objects itself. While it did, it held its message no
/// longer than the queue's visibility timeout: SQS handed the same page to another
/// poller, which copied it again (a worker killed during a 3,000-object backfill left
/// 87 objects copied twice). It holds its message as jobs do, however long the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_list_task_holds_its_message_while_it_copies_its_page() {
    use integration_tests::fault_proxy::{FaultProxy, Faults};
    use std::time::Duration;
    let fast = Stack::fast().await;
    let p = Pipeline::unwired(&fast).await;
    fast.set_visibility(&p.work, 2).await;
    let dst = fast.bucket("dst").await;
    let cfg = config(&one_rule(
        &p.source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let keys = put_many(&fast, &p.source, "page/", 40).await;
    let tasks = backfill::root_tasks(&cfg, &Scope::default(), "bf-lease").unwrap();
    backfill::start(&p.ingest(&cfg), &tasks).await.unwrap();
    // Every copy takes a second: the page takes longer than the visibility timeout.
    let slow = || {
        FaultProxy::start(
            &fast.endpoint,
            Faults {
                delay: 1.0,
                delay_for: Duration::from_millis(1000),
                delay_only: Some("x-amz-copy-source"),
                ..Faults::none()
            },
        )
    };
    let (one, two) = (slow().await, slow().await);
    tokio::join!(
        p.run_worker_on(&cfg, fast.s3_through(&one.endpoint)),
        p.run_worker_on(&cfg, fast.s3_through(&two.endpoint)),
    );
    assert_eq!(fast.keys(&dst, "").await.len(), keys.len());
    // Not counting the first copy's probe of the server's conditions (an ETag no
    // object has, answered 412).
    let probes = one.count("00000000000000000000000000000000")
        + two.count("00000000000000000000000000000000");
    let copies = one.count("x-amz-copy-source") + two.count("x-amz-copy-source") - probes;
    assert_eq!(copies, keys.len(), "each object copied once");
}

/// A copy that fails in its list task and cannot be forwarded for retry (no retry
/// queue) goes on as a job of its own. It was counted twice in the page's record (as
/// copied in the task and as sent), so `backfill status` never saw the backfill
/// complete. It is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_handed_on_by_its_list_task_is_counted_once() {
    use integration_tests::fault_proxy::{Answer, FaultProxy, Faults};
    use replicator::config::clients::S3Clients;
    use replicator::replicate::Replicator;
    let stack = Stack::main().await;
    let p = Pipeline::unwired(&stack).await;
    let dst = stack.bucket("dst").await;
    let records = stack.bucket("records").await;
    let report = format!("s3://{records}/backfills/");
    let cfg = config(&one_rule(
        &p.source,
        &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
    ));
    let keys = put_many(&stack, &p.source, "few/", 5).await;
    let failing = Box::leak(
        format!(
            "x-amz-copy-source && /{dst}/{}",
            keys[0].replace(' ', "%20")
        )
        .into_boxed_str(),
    );
    let proxy = FaultProxy::start(
        &stack.endpoint,
        Faults {
            answer: Some(Answer {
                matching: failing,
                status: "500 Internal Server Error",
                code: "InternalError",
                message: "injected",
                headers: "",
                times: 0,
            }),
            ..Faults::none()
        },
    )
    .await;
    let mut task = backfill::root_tasks(&cfg, &Scope::default(), "bf-once")
        .unwrap()
        .remove(0);
    task.report = Some(report.clone());
    let mut r = Replicator::new(
        cfg.clone(),
        S3Clients::same_endpoint(stack.s3_through(&proxy.endpoint)),
        stack.sqs.clone(),
        Some(p.failed.url.clone()),
    );
    r.work_queue_url = Some(p.work.url.clone());
    r.report_location = Some(report.clone());
    let response = r.handle_batch(sqs_batch(&[task.to_body()])).await;
    assert!(response.batch_item_failures.is_empty());
    let handed_on = stack.drain(&p.work).await;
    assert_eq!(handed_on.len(), 1, "the failed copy goes on as a job");
    let pages = stack.keys(&records, "backfills/bf-once/pages/").await;
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert!(
        pages[0].contains(&format!("_j{}_", keys.len())),
        "{} jobs, each once: {}",
        keys.len(),
        pages[0]
    );
}
