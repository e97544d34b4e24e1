//! The document's parse and checks, against fixtures and inline documents.

use super::*;

fn problems(text: &str) -> Vec<String> {
    match Config::parse(text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems }) => problems.iter().map(|p| p.to_string()).collect(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[test]
fn parses_a_rule_pasted_from_put_bucket_replication() {
    let config = Config::parse(include_str!("../../../tests/fixtures/config/full.json")).unwrap();
    let photos = config.source("photos").unwrap();
    assert_eq!(photos.rules.len(), 3);
    let r = &photos.rules[0];
    assert_eq!(r.id, "raw-to-archive");
    assert_eq!(r.priority, Some(2));
    assert!(r.enabled);
    assert_eq!(r.filter.prefix, "raw/");
    assert_eq!(r.filter.tags, vec![("keep".to_string(), "yes".to_string())]);
    assert_eq!(r.destination.bucket, "photos-archive");
    assert_eq!(r.destination.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(r.destination.acl_mode, AclMode::OwnerOverride);
    assert_eq!(r.destination.delete_mode, DeleteMode::None);
    assert!(r.replica_modifications);
    let offsite = &photos.rules[2];
    assert_eq!(
        offsite.destination.endpoint.endpoint_url.as_deref(),
        Some("https://s3.gra.io.cloud.ovh.net")
    );
    assert_eq!(offsite.destination.delete_mode, DeleteMode::All);
    assert_eq!(
        offsite
            .destination
            .storage_class_map
            .get("GLACIER")
            .map(String::as_str),
        Some("STANDARD")
    );
    assert_eq!(
        offsite.destination.replica_storage_class("GLACIER"),
        "STANDARD"
    );
    assert_eq!(
        offsite.destination.replica_storage_class("STANDARD_IA"),
        "STANDARD_IA"
    );
    assert!(!photos.rules[1].enabled);
    assert_eq!(photos.rules[1].destination.delete_mode, DeleteMode::Markers);
    assert_eq!(config.endpoints().len(), 2);
}

#[test]
fn reports_every_problem_with_its_path() {
    let found = problems(include_str!("../../../tests/fixtures/config/broken.json"));
    let expected = [
        "$.Sources[0].Bucket: \"Bad_Bucket\" is not a valid bucket name",
        "$.Sources[0].ReplicationConfiguration.Rules[0].Filter.Prefx: unknown field",
        "$.Sources[0].ReplicationConfiguration.Rules[0].Status: must be \"Enabled\" or \"Disabled\", found \"On\"",
        "$.Sources[0].ReplicationConfiguration.Rules[1].Destination.StorageClass: \"COLD\" is not an S3 storage class",
        "$.Sources[0].ReplicationConfiguration.Rules[1].Destination.Replicator.DeleteMode: \"some\" is not one of: none, markers, all",
        "$.Sources[0].ReplicationConfiguration.Rules[1].Destination.Replicator.Credentials.SecretAccessKey: keys never belong",
        "$.Sources[0].ReplicationConfiguration.Rules[1].Destination.Replicator.Credentials: name one of Secret, Profile or DefaultChain, not several",
        "$.Sources[0].ReplicationConfiguration.Rules[2].Destination: is required",
        "$.Sources[0].ReplicationConfiguration.Rules[3].DeleteMarkerReplication: cannot be Enabled on a rule with a tag filter",
        "$.Sources[0].ReplicationConfiguration.Rules[3].Priority: Priority 1 is also used by Rules[1]",
    ];
    for e in expected {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing problem {e:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn two_way_and_cyclic_replication_are_accepted_and_their_paths_known() {
    let rule = |to: &str| {
        format!(
            r#"{{"Status": "Enabled", "Priority": 1, "Filter": {{}}, "Destination": {{"Bucket": "{to}"}}}}"#
        )
    };
    let doc = |pairs: &[(&str, &str)]| {
        let sources: Vec<String> = pairs
            .iter()
            .map(|(from, to)| {
                format!(
                    r#"{{"Bucket": "{from}", "ReplicationConfiguration": {{"Rules": [{}]}}}}"#,
                    rule(to)
                )
            })
            .collect();
        format!(r#"{{"Sources": [{}]}}"#, sources.join(","))
    };
    // Provenance lets these settle, so they are valid documents.
    let three = Config::parse(&doc(&[("aaa", "bbb"), ("bbb", "ccc"), ("ccc", "aaa")])).unwrap();
    assert!(three.reaches("bbb", "aaa") && three.reaches("ccc", "bbb"));
    let chain = Config::parse(&doc(&[("aaa", "bbb"), ("bbb", "ccc")])).unwrap();
    assert!(
        chain.reaches("bbb", "ccc") && !chain.reaches("bbb", "aaa") && !chain.reaches("ccc", "aaa")
    );
    // A same-named bucket at another provider is another bucket.
    let elsewhere = doc(&[("aaa", "bbb"), ("bbb", "aaa")]).replacen(
        r#""Bucket": "aaa"}"#,
        r#""Bucket": "aaa", "Replicator": {"EndpointUrl": "https://minio.example", "Credentials": {"Profile": "minio"}}}"#,
        1,
    );
    assert!(!Config::parse(&elsewhere).unwrap().reaches("bbb", "aaa"));
}

#[test]
fn the_process_keys_reach_another_endpoint_only_when_asked() {
    let doc = |replicator: &str| {
        format!(
            r#"{{"Sources": [{{"Bucket": "src", "ReplicationConfiguration": {{"Rules": [
            {{"Status": "Enabled", "Priority": 1, "Filter": {{}},
              "Destination": {{"Bucket": "dst", "Account": "444455556666", "Replicator": {replicator}}}}}]}}}}]}}"#
        )
    };
    let at = "Rules[0].Destination.Replicator.Credentials";
    let found = problems(&doc(r#"{"EndpointUrl": "https://minio.example"}"#));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains(&format!("{at}: is required with EndpointUrl"))
            && found[0].contains("https://minio.example"),
        "{found:?}"
    );
    let explicit = Config::parse(&doc(
        r#"{"EndpointUrl": "https://minio.example", "Credentials": {"DefaultChain": true}}"#,
    ))
    .unwrap();
    let d = &explicit.sources[0].rules[0].destination;
    assert_eq!(d.endpoint.credentials, CredentialSource::DefaultChain);
    assert_eq!(d.account.as_deref(), Some("444455556666"));
    // Another AWS region is AWS: the process's own credentials are implied.
    let region = Config::parse(&doc(r#"{"Region": "eu-west-1"}"#)).unwrap();
    assert_eq!(
        region.sources[0].rules[0].destination.endpoint.credentials,
        CredentialSource::DefaultChain
    );
    for (replicator, problem) in [
        (r#"{"Credentials": {}}"#, "name a Secret, a Profile"),
        (
            r#"{"Credentials": {"Profile": "p", "DefaultChain": true}}"#,
            "not several",
        ),
    ] {
        let found = problems(&doc(replicator));
        assert!(
            found.len() == 1 && found[0].contains(problem),
            "{replicator}: {found:?}"
        );
    }
    let found = problems(&doc(r#"{}"#).replace("444455556666", "4444-5555"));
    assert!(
        found.len() == 1 && found[0].contains("Account: \"4444-5555\" is not an AWS account ID"),
        "{found:?}"
    );
}

#[test]
fn malformed_documents_are_errors_not_panics() {
    for text in [
        "",
        "[]",
        "{\"Sources\": 3}",
        "{\"Sources\": [{}]}",
        "{\"Sources\": [null]}",
        "not json",
    ] {
        assert!(!problems(text).is_empty(), "{text:?} should be rejected");
    }
}

/// What S3 itself checks of a rule set, and how it reads the older schema.
#[test]
fn rules_as_s3_reads_them() {
    let doc = |rules: &str| {
        format!(
            r#"{{"Sources":[{{"Bucket":"src","ReplicationConfiguration":{{"Rules":[{rules}]}}}}]}}"#
        )
    };
    // The older schema replicates delete markers; DeleteMode can still say none.
    let legacy = Config::parse(&doc(
        r#"{"Status":"Enabled","Prefix":"a/","Destination":{"Bucket":"dst"}}"#,
    ))
    .unwrap();
    assert_eq!(
        legacy.sources[0].rules[0].destination.delete_mode,
        DeleteMode::Markers
    );
    let quiet = Config::parse(&doc(
        r#"{"Status":"Enabled","Prefix":"a/","Destination":{"Bucket":"dst","Replicator":{"DeleteMode":"none"}}}"#,
    ))
    .unwrap();
    assert_eq!(
        quiet.sources[0].rules[0].destination.delete_mode,
        DeleteMode::None
    );
    // A V2 rule without DeleteMarkerReplication does not.
    let v2 = Config::parse(&doc(
        r#"{"Status":"Enabled","Priority":0,"Filter":{},"Destination":{"Bucket":"dst"}}"#,
    ))
    .unwrap();
    assert_eq!(
        v2.sources[0].rules[0].destination.delete_mode,
        DeleteMode::None
    );
    assert!(!v2.sources[0].rules[0].destination.replicate_replicas);

    for (rules, expected) in [
        (
            r#"{"Status":"Enabled","Priority":1,"Filter":{},"Destination":{"Bucket":"src"}}"#,
            "Rules[0].Destination.Bucket: is the rule's own source bucket",
        ),
        (
            r#"{"Status":"Enabled","Priority":-1,"Filter":{},"Destination":{"Bucket":"dst"}}"#,
            "Rules[0].Priority: -1 is negative",
        ),
        (
            r#"{"Status":"Enabled","Priority":1,"Filter":{"And":{"Prefix":"a/"}},"Destination":{"Bucket":"dst"}}"#,
            "Rules[0].Filter.And: has 1 condition(s)",
        ),
        (
            r#"{"Status":"Enabled","Priority":1,"Filter":{"And":{"Tags":[{"Key":"k","Value":"v"}]}},"Destination":{"Bucket":"dst"}}"#,
            "Rules[0].Filter.And: has 1 condition(s)",
        ),
        (
            r#"{"Status":"Enabled","Priority":1,"Filter":{},"SourceSelectionCriteria":{"SseKmsEncryptedObjects":{"Status":"Enabled"}},"Destination":{"Bucket":"dst"}}"#,
            "Rules[0].Destination.EncryptionConfiguration.ReplicaKmsKeyID: is required when SourceSelectionCriteria.SseKmsEncryptedObjects is Enabled",
        ),
    ] {
        let found = problems(&doc(rules));
        assert!(
            found.len() == 1 && found[0].contains(expected),
            "{rules}: {found:?}"
        );
    }
    // The same bucket name at another endpoint is another bucket.
    let elsewhere = doc(
        r#"{"Status":"Enabled","Priority":1,"Filter":{},"Destination":{"Bucket":"src","Replicator":{"Region":"eu-west-1"}}}"#,
    );
    assert!(problems(&elsewhere).is_empty());
    let both = Config::parse(&doc(
        r#"{"Status":"Enabled","Priority":1,"Filter":{"And":{"Prefix":"a/","Tags":[{"Key":"k","Value":"v"}]}},
            "SourceSelectionCriteria":{"SseKmsEncryptedObjects":{"Status":"Enabled"}},
            "Destination":{"Bucket":"dst","EncryptionConfiguration":{"ReplicaKmsKeyID":"arn:aws:kms:us-east-1:111122223333:key/k"},
                           "Replicator":{"ReplicateReplicas":true}}}"#,
    ))
    .unwrap();
    let rule = &both.sources[0].rules[0];
    assert!(rule.sse_kms_objects && rule.destination.replicate_replicas);

    let many: Vec<String> = (0..1001)
        .map(|i| format!(r#"{{"ID":"r{i}","Status":"Enabled","Priority":{i},"Filter":{{}},"Destination":{{"Bucket":"dst"}}}}"#))
        .collect();
    let found = problems(&doc(&many.join(",")));
    assert!(
        found.len() == 1 && found[0].contains("lists 1001 rules; S3 allows at most 1000"),
        "{found:?}"
    );
}

#[test]
fn legacy_prefix_rules_and_mixing() {
    let doc = r#"{"Sources":[{"Bucket":"src","ReplicationConfiguration":{"Rules":[
        {"Status":"Enabled","Prefix":"a/","Destination":{"Bucket":"arn:aws:s3:::dst"}},
        {"Status":"Enabled","Prefix":"a/b","Destination":{"Bucket":"dst"}}]}}]}"#;
    let found = problems(doc);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("Rules[1].Prefix: overlaps"), "{found:?}");
    let doc = r#"{"Sources":[{"Bucket":"src","ReplicationConfiguration":{"Rules":[
        {"Status":"Enabled","Prefix":"a/","Destination":{"Bucket":"arn:aws:s3:::dst"}},
        {"Status":"Enabled","Filter":{},"Priority":1,"Destination":{"Bucket":"dst"}}]}}]}"#;
    assert!(problems(doc).iter().any(|p| p.contains("mixes rules")));
}

/// A part to another endpoint passes through memory whole: more than the deployed
/// function can hold is refused, saying why; a server-side part copy may be large.
#[test]
fn streamed_parts_that_cannot_fit_in_memory_are_refused() {
    let doc = |endpoint: &str, part: u64| {
        format!(
            r#"{{"Sources": [{{"Bucket": "src", "ReplicationConfiguration": {{"Rules": [
            {{"Status": "Enabled", "Priority": 1, "Filter": {{}}, "Destination": {{"Bucket": "dst",
             "Replicator": {{{endpoint}"PartSize": {part}}}}}}}]}}}}]}}"#
        )
    };
    let far = r#""EndpointUrl": "https://s3.example.com", "Credentials": {"Profile": "far"}, "#;
    let mib = 1024 * 1024;
    assert!(problems(&doc(far, 64 * mib)).is_empty());
    let refused = problems(&doc(far, 400 * mib));
    assert!(
        refused.len() == 1 && refused[0].contains("PartSize") && refused[0].contains("memory"),
        "{refused:?}"
    );
    assert!(problems(&doc("", 2048 * mib)).is_empty());
}
