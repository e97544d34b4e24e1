//! End to end on the local stack: S3 notifications land on the events queue, the
//! worker ingests and replicates, and every property of the replica is compared with
//! the source.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectCannedAcl, StorageClass};
use integration_tests::{config, grants, object_state, Pipeline, Stack};

fn rule(id: &str, priority: u32, filter: &str, destination: &str) -> String {
    format!(
        r#"{{"ID": "{id}", "Priority": {priority}, "Status": "Enabled", "Filter": {filter},
            "Destination": {destination}, "DeleteMarkerReplication": {{"Status": "Disabled"}}}}"#
    )
}

fn document(source: &str, rules: &[String]) -> String {
    format!(
        r#"{{"Sources": [{{"Bucket": "{source}", "ReplicationConfiguration": {{"Role": "ignored", "Rules": [{}]}}}}]}}"#,
        rules.join(",")
    )
}

async fn assert_same(p: &Pipeline, dst: &str, key: &str) {
    let source = object_state(&p.stack.s3, &p.source, key)
        .await
        .expect("source exists");
    let replica = object_state(&p.stack.s3, dst, key)
        .await
        .unwrap_or_else(|| panic!("{key:?} did not arrive in {dst}"));
    assert_eq!(
        replica, source,
        "replica of {key:?} differs from its source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_carry_bytes_headers_metadata_tags_and_class() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&document(
        &p.source,
        &[rule(
            "all",
            1,
            "{}",
            &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
        )],
    ));

    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    stack
        .s3
        .put_object()
        .bucket(&p.source)
        .key("docs/report.json.gz")
        .body(ByteStream::from(body))
        .content_type("application/json")
        .content_encoding("gzip")
        .content_language("fr-CA")
        .content_disposition("attachment; filename=\"rapport été.json.gz\"")
        .cache_control("max-age=3600, must-revalidate")
        .expires(DateTime::from_secs(1_900_000_000))
        .metadata("owner", "team-a")
        .metadata("checksum-note", "spaces and = signs")
        .tagging("project=phoenix&note=two%20words")
        .storage_class(StorageClass::StandardIa)
        .send()
        .await
        .unwrap();
    stack.put(&p.source, "plain.txt", b"plain").await;
    stack.put(&p.source, "empty", b"").await;

    p.run_worker(&cfg).await;

    for key in ["docs/report.json.gz", "plain.txt", "empty"] {
        assert_same(&p, &dst, key).await;
    }
    // The comparison is only as good as what it compares: spell out the rich one.
    let replica = object_state(&stack.s3, &dst, "docs/report.json.gz")
        .await
        .unwrap();
    assert_eq!(replica.size, 200_000);
    assert_eq!(replica.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(replica.content_language.as_deref(), Some("fr-CA"));
    assert_eq!(
        replica.cache_control.as_deref(),
        Some("max-age=3600, must-revalidate")
    );
    assert!(replica.expires.is_some());
    assert_eq!(
        replica.metadata.get("owner").map(String::as_str),
        Some("team-a")
    );
    let tags: BTreeMap<String, String> = [("note", "two words"), ("project", "phoenix")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(replica.tags, tags);
    assert_eq!(replica.storage_class, "STANDARD_IA");
    assert_eq!(
        object_state(&stack.s3, &dst, "empty").await.unwrap().size,
        0
    );
    assert!(stack.drain(&p.failed).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_need_encoding_arrive_under_the_same_key() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let dst = stack.bucket("dst").await;
    let cfg = config(&document(
        &p.source,
        &[rule(
            "all",
            1,
            "{}",
            &format!(r#"{{"Bucket": "{dst}", "Replicator": {{"AclMode": "none"}}}}"#),
        )],
    ));

    let long_ascii = format!("long/{}", "k".repeat(1024 - 5));
    let long_multibyte = "é".repeat(512); // 1,024 bytes in 512 characters
    let keys = [
        "with space.txt".to_string(),
        "plus+sign+.txt".to_string(),
        "percent%20literal%.txt".to_string(),
        "unicode/日本語/ファイル.txt".to_string(),
        "emoji 🎉/party.bin".to_string(),
        "deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p.txt".to_string(),
        "q?uery&and=eq#hash;semi:colon,comma.txt".to_string(),
        "trailing-slash-dir/".to_string(),
        long_ascii,
        long_multibyte,
    ];
    for (i, key) in keys.iter().enumerate() {
        assert!(key.len() <= 1024);
        stack
            .put(&p.source, key, format!("object {i}").as_bytes())
            .await;
    }
    p.run_worker(&cfg).await;
    for key in &keys {
        assert_same(&p, &dst, key).await;
    }
    assert_eq!(
        stack.keys(&dst, "").await.len(),
        keys.len(),
        "no extra keys (a wrongly decoded key would add one)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_classes_follow_rule_and_map_for_two_destinations() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let keep = stack.bucket("keep").await;
    let mapped = stack.bucket("mapped").await;
    let cfg = config(&document(
        &p.source,
        &[
            rule(
                "keep-class",
                1,
                "{}",
                &format!(r#"{{"Bucket": "{keep}", "Replicator": {{"AclMode": "none"}}}}"#),
            ),
            rule(
                "set-class",
                2,
                "{}",
                &format!(
                    r#"{{"Bucket": "arn:aws:s3:::{mapped}", "StorageClass": "ONEZONE_IA",
                        "Replicator": {{"AclMode": "none", "StorageClassMap": {{"STANDARD_IA": "GLACIER_IR"}}}}}}"#
                ),
            ),
        ],
    ));
    for (key, class) in [
        ("standard", StorageClass::Standard),
        ("ia", StorageClass::StandardIa),
        ("rrs", StorageClass::ReducedRedundancy),
    ] {
        stack
            .s3
            .put_object()
            .bucket(&p.source)
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .storage_class(class)
            .send()
            .await
            .unwrap();
    }
    p.run_worker(&cfg).await;

    let class = |bucket: String, key: &'static str| {
        let s3 = stack.s3.clone();
        async move {
            object_state(&s3, &bucket, key)
                .await
                .map(|s| s.storage_class)
        }
    };
    let expected = [
        // No StorageClass in the rule: the replica keeps the source's class.
        (&keep, "standard", "STANDARD"),
        (&keep, "ia", "STANDARD_IA"),
        (&keep, "rrs", "REDUCED_REDUNDANCY"),
        // The rule's class, unless the map has an entry for the source's class.
        (&mapped, "standard", "ONEZONE_IA"),
        (&mapped, "ia", "GLACIER_IR"),
        (&mapped, "rrs", "ONEZONE_IA"),
    ];
    for (bucket, key, want) in expected {
        assert_eq!(
            class(bucket.clone(), key).await.as_deref(),
            Some(want),
            "{bucket}/{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_modes_copy_override_or_leave_grants() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let copy = stack.bucket("acl-copy").await;
    let over = stack.bucket("acl-over").await;
    let none = stack.bucket("acl-none").await;
    let cfg = config(&document(
        &p.source,
        &[
            rule("copy", 1, "{}", &format!(r#"{{"Bucket": "{copy}"}}"#)),
            rule(
                "over",
                2,
                "{}",
                &format!(
                    r#"{{"Bucket": "{over}", "Account": "123456789012", "AccessControlTranslation": {{"Owner": "Destination"}}}}"#
                ),
            ),
            rule(
                "none",
                3,
                "{}",
                &format!(r#"{{"Bucket": "{none}", "Replicator": {{"AclMode": "none"}}}}"#),
            ),
        ],
    ));
    stack
        .s3
        .put_object()
        .bucket(&p.source)
        .key("public.txt")
        .body(ByteStream::from_static(b"hello"))
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    stack.put(&p.source, "private.txt", b"hello").await;
    p.run_worker(&cfg).await;

    let all_users_read = "http://acs.amazonaws.com/groups/global/AllUsers READ";
    let source_grants = grants(&stack.s3, &p.source, "public.txt").await;
    assert!(
        source_grants.iter().any(|g| g == all_users_read),
        "{source_grants:?}"
    );
    // copy: the replica has exactly the source's grants.
    assert_eq!(grants(&stack.s3, &copy, "public.txt").await, source_grants);
    assert_eq!(
        grants(&stack.s3, &copy, "private.txt").await,
        grants(&stack.s3, &p.source, "private.txt").await
    );
    // owner-override and none: the public grant does not travel.
    for bucket in [&over, &none] {
        let g = grants(&stack.s3, bucket, "public.txt").await;
        assert!(!g.iter().any(|g| g.contains("AllUsers")), "{bucket}: {g:?}");
        assert!(
            g.iter().any(|g| g.ends_with("FULL_CONTROL")),
            "{bucket}: the owner keeps full control: {g:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_tag_and_filters_and_disabled_rules() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let by_prefix = stack.bucket("by-prefix").await;
    let by_tag = stack.bucket("by-tag").await;
    let by_and = stack.bucket("by-and").await;
    let disabled = stack.bucket("disabled").await;
    let none = r#""Replicator": {"AclMode": "none"}"#;
    let mut off = rule(
        "off",
        4,
        "{}",
        &format!(r#"{{"Bucket": "{disabled}", {none}}}"#),
    );
    off = off.replace(r#""Status": "Enabled""#, r#""Status": "Disabled""#);
    let cfg = config(&document(
        &p.source,
        &[
            rule(
                "prefix",
                1,
                r#"{"Prefix": "docs/"}"#,
                &format!(r#"{{"Bucket": "{by_prefix}", {none}}}"#),
            ),
            rule(
                "tag",
                2,
                r#"{"Tag": {"Key": "env", "Value": "prod"}}"#,
                &format!(r#"{{"Bucket": "{by_tag}", {none}}}"#),
            ),
            rule(
                "and",
                3,
                r#"{"And": {"Prefix": "logs/", "Tags": [{"Key": "team", "Value": "a"}, {"Key": "keep", "Value": "yes"}]}}"#,
                &format!(r#"{{"Bucket": "{by_and}", {none}}}"#),
            ),
            off,
        ],
    ));
    let put = |key: &'static str, tagging: Option<&'static str>| {
        let s3 = stack.s3.clone();
        let bucket = p.source.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from_static(b"x"))
                .set_tagging(tagging.map(str::to_string))
                .send()
                .await
                .unwrap();
        }
    };
    put("docs/a.txt", None).await;
    put("img/b.png", Some("env=prod")).await;
    put("img/c.png", Some("env=dev")).await;
    put("logs/d.log", Some("team=a&keep=yes")).await;
    put("logs/e.log", Some("team=a")).await;
    put("other/f", None).await;
    p.run_worker(&cfg).await;

    assert_eq!(stack.keys(&by_prefix, "").await, vec!["docs/a.txt"]);
    assert_eq!(stack.keys(&by_tag, "").await, vec!["img/b.png"]);
    assert_eq!(stack.keys(&by_and, "").await, vec!["logs/d.log"]);
    assert!(stack.keys(&disabled, "").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_reach_only_destinations_whose_rule_replicates_them() {
    let stack = Stack::main().await;
    let p = Pipeline::new(&stack).await;
    let markers = stack.bucket("del-markers").await;
    let kept = stack.bucket("del-none").await;
    let mut with_deletes = rule(
        "markers",
        1,
        "{}",
        &format!(r#"{{"Bucket": "{markers}", "Replicator": {{"AclMode": "none"}}}}"#),
    );
    with_deletes = with_deletes.replace(
        r#""DeleteMarkerReplication": {"Status": "Disabled"}"#,
        r#""DeleteMarkerReplication": {"Status": "Enabled"}"#,
    );
    let cfg = config(&document(
        &p.source,
        &[
            with_deletes,
            rule(
                "none",
                2,
                "{}",
                &format!(r#"{{"Bucket": "{kept}", "Replicator": {{"AclMode": "none"}}}}"#),
            ),
        ],
    ));
    stack.put(&p.source, "doomed.txt", b"bye").await;
    stack.put(&p.source, "stays.txt", b"hi").await;
    p.run_worker(&cfg).await;
    assert!(object_state(&stack.s3, &markers, "doomed.txt")
        .await
        .is_some());

    stack
        .s3
        .delete_object()
        .bucket(&p.source)
        .key("doomed.txt")
        .send()
        .await
        .unwrap();
    p.run_worker(&cfg).await;
    assert!(
        object_state(&stack.s3, &markers, "doomed.txt")
            .await
            .is_none(),
        "delete replicated"
    );
    assert!(
        object_state(&stack.s3, &kept, "doomed.txt").await.is_some(),
        "delete mode none keeps the replica"
    );
    assert!(object_state(&stack.s3, &markers, "stays.txt")
        .await
        .is_some());
    assert!(stack.drain(&p.failed).await.is_empty());
}
