//! The deployment templates and the code agree: each template sets exactly the
//! environment variables the Lambdas read, and deploys exactly the function crates.

use std::collections::BTreeSet;
use std::path::Path;

use replicator::config::settings::{
    LAMBDA_RUNTIME_VARS, LAMBDA_VARS, OPERATOR_VARS, WORKER_ONLY_VARS,
};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn set<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    items.into_iter().map(str::to_string).collect()
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Keys of every `Variables:` mapping in the SAM template.
fn sam_variables(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut block_indent: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if let Some(at) = block_indent {
            if indent > at && !trimmed.is_empty() {
                if let Some((key, _)) = trimmed.split_once(':') {
                    if indent == at + 2 && is_var_name(key) {
                        out.insert(key.to_string());
                    }
                }
                continue;
            }
            block_indent = None;
        }
        if trimmed == "Variables:" {
            block_indent = Some(indent);
        }
    }
    out
}

/// Keys assigned in upper case in the Terraform module: only environment variables are.
fn terraform_variables(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim().split_once('=').map(|(k, _)| k.trim()))
        .filter(|k| is_var_name(k) && k.len() > 3)
        .map(str::to_string)
        .collect()
}

#[test]
fn templates_set_exactly_the_variables_the_lambdas_read() {
    let expected = set(LAMBDA_VARS.iter().copied());
    let sam = sam_variables(&read("infra/sam/template.yaml"));
    assert_eq!(sam, expected, "infra/sam/template.yaml");
    let tf = terraform_variables(&read("infra/terraform/modules/s3-replicator/main.tf"));
    assert_eq!(
        tf, expected,
        "infra/terraform/modules/s3-replicator/main.tf"
    );
    for worker_only in WORKER_ONLY_VARS {
        assert!(!sam.contains(*worker_only) && !tf.contains(*worker_only));
    }
}

#[test]
fn the_lists_name_every_variable_the_code_defines() {
    // Every `..._VAR: &str = "NAME"` in the library is listed as a Lambda's or the
    // worker's, so a new variable cannot be read without the templates being checked.
    let mut defined = BTreeSet::new();
    let mut files = Vec::new();
    let mut folders = vec![root().join("shared/src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("pub const ") && line.contains("_VAR: &str = \"") {
                defined.insert(line.split('"').nth(1).unwrap().to_string());
            }
        }
    }
    let listed = set(LAMBDA_VARS
        .iter()
        .chain(WORKER_ONLY_VARS)
        .chain(OPERATOR_VARS)
        .chain(LAMBDA_RUNTIME_VARS)
        .copied());
    assert_eq!(defined, listed);
}

#[test]
fn every_function_in_the_templates_is_a_crate() {
    let mut crates = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let manifest = std::fs::read_to_string(entry.unwrap().path().join("Cargo.toml")).unwrap();
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .unwrap()
            .trim_end_matches('"');
        crates.insert(name.to_string());
    }
    let sam: BTreeSet<String> = read("infra/sam/template.yaml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Binary: ").map(str::to_string))
        .collect();
    assert_eq!(
        sam, crates,
        "SAM functions (BuildProperties.Binary) and crates under functions/"
    );
    let main_tf = read("infra/terraform/modules/s3-replicator/main.tf");
    let block = main_tf
        .split("  functions = {")
        .nth(1)
        .expect("local.functions")
        .split("\n  }\n")
        .next()
        .unwrap();
    let tf: BTreeSet<String> = block
        .lines()
        .filter(|l| {
            l.starts_with("    ") && !l.starts_with("     ") && l.trim_end().ends_with("= {")
        })
        .map(|l| l.trim().trim_end_matches("= {").trim().to_string())
        .collect();
    assert_eq!(
        tf, crates,
        "Terraform local.functions and crates under functions/"
    );
}

/// What moto cannot enforce, read off the rendered policies of both templates: every
/// grant on a destination bucket is conditioned on the owner's account, KMS keys are
/// usable only through S3, and every queue refuses requests without TLS.
#[test]
fn destination_grants_name_their_owner_and_kms_goes_through_s3() {
    use integration_tests::iam::{Deployment, Template};
    let deployment = Deployment {
        sources: vec!["src".into()],
        destinations: vec!["dst".into()],
        queues: ["events", "work", "retry", "failed"]
            .into_iter()
            .map(|q| (q, format!("arn:aws:sqs:us-east-1:123456789012:{q}")))
            .collect(),
        secret_arns: vec!["arn:aws:secretsmanager:us-east-1:123456789012:secret:k".into()],
        kms_key_arns: vec!["arn:aws:kms:us-east-1:123456789012:key/k".into()],
        ..Deployment::default()
    };
    for template in [Template::Sam, Template::Terraform] {
        let policies = deployment.render(template);
        // The archive a template creates: retry writes parked jobs under their prefix,
        // and replicate and retry write backfills' records under theirs; nothing else.
        let mut archive_writes: Vec<(String, String)> = policies
            .iter()
            .flat_map(|(f, p)| {
                p["Statement"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|st| st["Resource"].to_string().contains("s3r-test-failed-jobs/"))
                    .map(move |st| {
                        (
                            f.clone(),
                            st["Resource"].to_string().replace(['"', '[', ']'], ""),
                        )
                    })
            })
            .collect();
        archive_writes.sort();
        let expected: Vec<(String, String)> = [
            ("replicate", "backfill-reports/*"),
            ("retry", "backfill-reports/*"),
            ("retry", "failed-jobs/*"),
        ]
        .iter()
        .map(|(f, p)| {
            (
                f.to_string(),
                format!("arn:aws:s3:::s3r-test-failed-jobs/{p}"),
            )
        })
        .collect();
        assert_eq!(archive_writes, expected, "{template:?}");
        // Direct delivery: ingest's role may send to the events DLQ (Lambda's
        // on-failure destination uses it), and only then.
        let dlq = "arn:aws:sqs:us-east-1:123456789012:events-dlq";
        let sends_to_dlq = |policies: &std::collections::BTreeMap<String, serde_json::Value>| {
            policies
                .iter()
                .filter(|(_, p)| {
                    p["Statement"].as_array().unwrap().iter().any(|st| {
                        st["Resource"].to_string().contains(dlq)
                            && st["Action"].to_string().contains("sqs:SendMessage")
                    })
                })
                .map(|(f, _)| f.clone())
                .collect::<Vec<_>>()
        };
        assert!(sends_to_dlq(&policies).is_empty());
        let direct = Deployment {
            direct_delivery_dlq: Some(dlq.into()),
            ..deployment.clone()
        };
        assert_eq!(
            sends_to_dlq(&direct.render(template)),
            ["ingest"],
            "{template:?}"
        );
        let mut kms = 0;
        for (function, policy) in &policies {
            for st in policy["Statement"].as_array().unwrap() {
                let text = st["Resource"].to_string();
                if text.contains("arn:aws:s3:::dst") {
                    assert_eq!(
                        st["Condition"]["StringEquals"]["s3:ResourceAccount"],
                        serde_json::json!(["123456789012"]),
                        "{template:?} {function}: {st}"
                    );
                }
                if st["Action"].to_string().contains("kms:") {
                    kms += 1;
                    assert_eq!(
                        st["Condition"]["StringLike"]["kms:ViaService"], "s3.*.amazonaws.com",
                        "{template:?} {function}: {st}"
                    );
                }
            }
        }
        assert_eq!(kms, 1, "{template:?}: one KMS statement, replicate's");
    }
    let sam = read("infra/sam/template.yaml");
    let tf = read("infra/terraform/modules/s3-replicator/main.tf");
    // SAM: the events queue's policy, and one over the other four queues.
    assert_eq!(sam.matches("aws:SecureTransport").count(), 2);
    assert!(sam.contains(
        "Queues: [!Ref EventsDeadLetterQueue, !Ref WorkQueue, !Ref RetryQueue, !Ref FailedQueue]"
    ));
    // One statement for every queue; the events queue's policy includes it.
    assert_eq!(tf.matches("aws:SecureTransport").count(), 1);
    let tls_only = &tf[tf
        .find("data \"aws_iam_policy_document\" \"tls_only\"")
        .unwrap()..];
    let for_each = &tls_only[..tls_only.find('}').unwrap()];
    for q in ["events", "events_dlq", "work", "retry", "failed"] {
        assert!(
            for_each.contains(&format!("= aws_sqs_queue.{q}.arn")),
            "{q}: {for_each}"
        );
    }
    assert!(tf.contains(
        "source_policy_documents = [data.aws_iam_policy_document.tls_only[\"events\"].json]"
    ));
}

/// Both templates ship the dashboard and the four alarms, and every metric of ours they
/// name is one the functions emit.
#[test]
fn the_dashboard_and_alarms_watch_metrics_the_code_emits() {
    use replicator::metrics as m;
    let emitted = [
        m::REPLICATED,
        m::BYTES,
        m::LATENCY,
        m::FAILED,
        m::FAILED_ATTEMPTS,
        m::SKIPPED,
        m::PAUSED,
        m::RETRIES,
        m::REQUEUED_AGE,
    ];
    let sam = read("infra/sam/template.yaml");
    let tf = read("infra/terraform/modules/s3-replicator/main.tf");
    assert_eq!(sam.matches("Type: AWS::CloudWatch::Alarm").count(), 4);
    assert_eq!(
        tf.matches("resource \"aws_cloudwatch_metric_alarm\"")
            .count(),
        4
    );
    assert!(sam.contains("Type: AWS::CloudWatch::Dashboard"));
    assert!(tf.contains("resource \"aws_cloudwatch_dashboard\""));
    for text in [&sam, &tf] {
        assert!(text.contains(m::NAMESPACE));
        // Every name after our namespace in a metric reference is one we emit.
        for (i, _) in text.match_indices("\"S3Replicator\", \"") {
            let rest = &text[i + "\"S3Replicator\", \"".len()..];
            let name = &rest[..rest.find('"').unwrap()];
            assert!(emitted.contains(&name), "{name} is not emitted");
        }
        for used in [m::LATENCY, m::REQUEUED_AGE, m::FAILED, m::REPLICATED] {
            assert!(text.contains(used), "{used}");
        }
    }
}
