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
    // ... with SNS's and EventBridge's statements when they route to it.
    assert!(tf.contains(
        "source_policy_documents = compact([data.aws_iam_policy_document.tls_only[\"events\"].json, module.policies.events_queue_document])"
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

// ---------------------------------------------------------------- deploying to a real account

use serde_json::{json, Value};

fn infra_python() -> std::path::PathBuf {
    root().join(".venv-infra/bin/python")
}

fn run(cmd: &mut std::process::Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (make infra-venv)"))
}

/// The SAM template as CloudFormation sees it for `parameters` (on top of a source and
/// a destination bucket and an inline document): parameter errors, failed Rules
/// assertions, resources, environments and policies (scripts/render_policies.py
/// --template).
fn sam(parameters: &[(&str, &str)]) -> Value {
    let mut params = serde_json::Map::new();
    params.insert("SourceBucketNames".into(), "src".into());
    params.insert("DestinationBucketNames".into(), "dst".into());
    if !parameters.iter().any(|(k, _)| {
        [
            "ReplicatorConfig",
            "ConfigBucketName",
            "ConfigSsmParameterName",
        ]
        .contains(k)
    }) {
        params.insert("ReplicatorConfig".into(), r#"{"Sources": []}"#.into());
    }
    for (k, v) in parameters {
        params.insert(k.to_string(), v.to_string().into());
    }
    let context = json!({
        "Parameters": params,
        "Resources": {"EventsQueue": {"Arn": "arn:aws:sqs:us-east-1:123456789012:events"}},
        "AccountId": "123456789012",
        "Region": "us-east-1",
    });
    let file = std::env::temp_dir().join(integration_tests::unique("s3r-sam-context"));
    std::fs::write(&file, context.to_string()).unwrap();
    let out = run(std::process::Command::new(infra_python())
        .arg(root().join("scripts/render_policies.py"))
        .arg("--template")
        .arg(root().join("infra/sam/template.yaml"))
        .arg(&file));
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "render_policies.py --template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rendered template")
}

/// A Terraform file as JSON (python-hcl2, which checkov brings: every value in a list).
fn hcl(path: &str) -> Value {
    let out = run(std::process::Command::new(infra_python())
        .args([
            "-c",
            "import hcl2, json, sys; print(json.dumps(hcl2.load(open(sys.argv[1]))))",
        ])
        .arg(root().join(path)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `block` (resource, variable, data, ...) named `name` ("aws_iam_role.function", or a
/// variable's name) in a file read by [`hcl`].
fn block<'a>(file: &'a Value, kind: &str, name: &str) -> &'a Value {
    let mut path = name.split('.');
    let (first, second) = (path.next().unwrap(), path.next());
    file[kind]
        .as_array()
        .unwrap_or_else(|| panic!("no {kind} blocks"))
        .iter()
        .find_map(|b| {
            let b = b.get(first)?;
            match second {
                Some(s) => b.get(s),
                None => Some(b),
            }
        })
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The first value of an attribute as python-hcl2 gives it (every value in a list).
fn attr<'a>(block: &'a Value, name: &str) -> &'a Value {
    &block[name][0]
}

/// Runs `terraform` with `args` in `dir`: its status and all it printed.
fn terraform(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = run(std::process::Command::new("terraform")
        .args(args)
        .arg("-no-color")
        .current_dir(dir));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The signing key's secret [`terraform_policies`] is given.
const TF_SIGNING_KEY: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:s3r-signing-key-AbCdEf";

/// The outputs of the policies module for `inputs` (on top of a source, a destination,
/// the queues and the signing key), rendered offline with `terraform apply` (no
/// provider).
fn terraform_policies(inputs: Value) -> Value {
    let dir = std::env::temp_dir().join(integration_tests::unique("s3r-tf-policies"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut module = json!({
        "source": root().join("infra/terraform/modules/s3-replicator/policies").display().to_string(),
        "source_bucket_names": ["src"],
        "destination_bucket_names": ["dst"],
        "destination_account_ids": ["123456789012"],
        "kms_key_arns": [],
        "destination_secret_arns": [],
        "config_object_arn": "",
        "archive_objects_arn": "arn:aws:s3:::archive/failed-jobs/*",
        "backfill_records_arn": "arn:aws:s3:::archive/backfill-reports/*",
        "region": "us-east-1",
        "account_id": "123456789012",
        "signing_key_secret_arn": TF_SIGNING_KEY,
        "queue_arns": {
            "events": "arn:aws:sqs:us-east-1:123456789012:events",
            "work": "arn:aws:sqs:us-east-1:123456789012:work",
            "retry": "arn:aws:sqs:us-east-1:123456789012:retry",
            "failed": "arn:aws:sqs:us-east-1:123456789012:failed",
        },
        "log_group_arns": {"ingest": "arn:aws:logs:us-east-1:123456789012:log-group:i", "replicate": "arn:aws:logs:us-east-1:123456789012:log-group:r", "retry": "arn:aws:logs:us-east-1:123456789012:log-group:t"},
    });
    for (k, v) in inputs.as_object().unwrap() {
        module[k] = v.clone();
    }
    let root_module = json!({
        "module": {"policies": module},
        "output": {"all": {"value": "${module.policies}"}},
    });
    std::fs::write(dir.join("main.tf.json"), root_module.to_string()).unwrap();
    for args in [
        &["init", "-input=false"][..],
        &["apply", "-auto-approve", "-input=false"][..],
    ] {
        let (ok, text) = terraform(&dir, args);
        assert!(ok, "terraform {args:?}: {text}");
    }
    let out = run(std::process::Command::new("terraform")
        .args(["output", "-json", "all"])
        .current_dir(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_slice(&out.stdout).expect("terraform output -json")
}

/// Statements of a policy document given as JSON text or as a value.
fn statements(document: &Value) -> Vec<Value> {
    let doc: Value = match document {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    doc["Statement"].as_array().cloned().unwrap_or_default()
}

fn with_action<'a>(statements: &'a [Value], action: &str) -> Vec<&'a Value> {
    statements
        .iter()
        .filter(|st| st["Action"].to_string().contains(&format!("\"{action}\"")))
        .collect()
}

/// New accounts have a concurrency quota far below the 162 the templates used to
/// reserve, and Lambda's SQS poller ignores reserved concurrency anyway: each SQS
/// trigger is capped by its MaximumConcurrency, and nothing is reserved unless asked.
#[test]
fn sqs_triggers_are_capped_by_maximum_concurrency_and_nothing_is_reserved_by_default() {
    let expected = [("ingest", 10), ("replicate", 50), ("retry", 2)];
    let rendered = sam(&[]);
    assert_eq!(rendered["ParameterErrors"], json!([]));
    let functions: Vec<(&String, &Value)> = rendered["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .collect();
    assert_eq!(functions.len(), 3);
    let mut triggers = 0;
    for (id, function) in &functions {
        let props = &function["Properties"];
        assert!(
            props.get("ReservedConcurrentExecutions").is_none(),
            "{id} reserves concurrency by default: {props}"
        );
        let (name, cap) = expected
            .iter()
            .find(|(f, _)| id.to_lowercase().starts_with(f))
            .unwrap();
        for (event, e) in props["Events"].as_object().unwrap() {
            if e["Type"] == "SQS" {
                triggers += 1;
                assert_eq!(
                    e["Properties"]["ScalingConfig"]["MaximumConcurrency"],
                    json!(cap),
                    "{name} {event}"
                );
            }
        }
    }
    assert_eq!(triggers, 3, "one SQS trigger per function");
    for (f, _) in expected {
        let cap = &rendered["Parameters"]
            [format!("{}{}MaximumConcurrency", f[..1].to_uppercase(), &f[1..])];
        assert_eq!(
            (cap["MinValue"].as_i64(), cap["MaxValue"].as_i64()),
            (Some(2), Some(1000)),
            "{f}"
        );
    }
    // Reservation is an extra, per function, and refused below 1 or above the cap's bounds.
    let reserved = sam(&[
        ("IngestReservedConcurrency", "12"),
        ("ReplicateReservedConcurrency", "60"),
        ("RetryReservedConcurrency", "3"),
        ("ReplicateMaximumConcurrency", "60"),
    ]);
    for (id, n) in [
        ("IngestFunction", "12"),
        ("ReplicateFunction", "60"),
        ("RetryFunction", "3"),
    ] {
        assert_eq!(
            reserved["Resources"][id]["Properties"]["ReservedConcurrentExecutions"],
            json!(n),
            "{id}"
        );
    }
    assert_eq!(
        reserved["Resources"]["ReplicateFunction"]["Properties"]["Events"]["Jobs"]["Properties"]
            ["ScalingConfig"]["MaximumConcurrency"],
        json!("60")
    );
    for (k, v) in [
        ("ReplicateReservedConcurrency", "0"),
        ("ReplicateMaximumConcurrency", "1"),
        ("RetryMaximumConcurrency", "1001"),
    ] {
        assert_ne!(sam(&[(k, v)])["ParameterErrors"], json!([]), "{k}={v}");
    }

    // Terraform: the same, read off the module.
    let main = hcl("infra/terraform/modules/s3-replicator/main.tf");
    let mapping = block(
        &main,
        "resource",
        "aws_lambda_event_source_mapping.function",
    );
    assert_eq!(
        attr(attr(mapping, "scaling_config"), "maximum_concurrency"),
        "${each.value.max_concurrency}"
    );
    let function = block(&main, "resource", "aws_lambda_function.function");
    assert_eq!(
        attr(function, "reserved_concurrent_executions"),
        "${each.value.reserved == None ? -1 : each.value.reserved}",
        "-1: nothing reserved"
    );
    let locals = main["locals"].to_string();
    let variables = hcl("infra/terraform/modules/s3-replicator/variables.tf");
    for (f, cap) in expected {
        assert!(
            locals.contains(&format!("var.{f}_maximum_concurrency")),
            "{f}"
        );
        assert!(
            locals.contains(&format!("var.{f}_reserved_concurrency")),
            "{f}"
        );
        let max = block(&variables, "variable", &format!("{f}_maximum_concurrency"));
        assert_eq!(attr(max, "default"), &json!(cap), "{f}");
        let reserved = block(&variables, "variable", &format!("{f}_reserved_concurrency"));
        assert_eq!(
            attr(reserved, "default"),
            &Value::Null,
            "{f}: none reserved by default"
        );
    }
    let tf = variables_plan();
    for (var, value) in [
        ("replicate_maximum_concurrency", json!(1)),
        ("ingest_maximum_concurrency", json!(1001)),
        ("retry_reserved_concurrency", json!(0)),
    ] {
        let (ok, text) = tf(json!({ var: value }));
        assert!(!ok, "{var} = {value} accepted: {text}");
    }
    let (ok, text) =
        tf(json!({"replicate_reserved_concurrency": 60, "replicate_maximum_concurrency": 60}));
    assert!(ok, "{text}");
}

/// A `terraform plan` of the module's variables.tf alone (no provider, offline), which
/// runs every variable's validation: call the returned closure with the variables'
/// values (the required ones are filled in).
fn variables_plan() -> impl Fn(Value) -> (bool, String) {
    let dir = std::env::temp_dir().join(integration_tests::unique("s3r-tf-variables"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        root().join("infra/terraform/modules/s3-replicator/variables.tf"),
        dir.join("variables.tf"),
    )
    .unwrap();
    let (ok, text) = terraform(&dir, &["init", "-input=false"]);
    assert!(ok, "terraform init: {text}");
    move |values: Value| {
        let mut all = json!({
            "source_bucket_names": ["src"],
            "destination_bucket_names": ["dst"],
            "artifacts_dir": "target/lambda",
        });
        for (k, v) in values.as_object().unwrap() {
            all[k] = v.clone();
        }
        std::fs::write(dir.join("terraform.tfvars.json"), all.to_string()).unwrap();
        terraform(&dir, &["plan", "-input=false"])
    }
}

/// The document belongs in S3 (Lambda's environment holds 4 KB in all), pinned to a
/// version so that a change rolls the functions; CloudFormation refuses a stack with
/// no source, two sources, an unpinned one, or an inline document that is blank or
/// too long, before it changes anything.
#[test]
fn the_configuration_comes_from_one_pinned_source_checked_before_deploying() {
    let refused = |params: &[(&str, &str)], why: &str| {
        let r = sam(params);
        let problems = format!("{} {}", r["ParameterErrors"], r["Rules"]);
        assert!(
            problems.contains(why),
            "{params:?}: expected {why:?} in {problems}"
        );
    };
    refused(&[("ReplicatorConfig", "")], "No configuration document");
    refused(&[("ConfigBucketName", "ops")], "needs ConfigObjectKey");
    refused(
        &[
            ("ConfigBucketName", "ops"),
            ("ConfigObjectKey", "s3r/replication.json"),
        ],
        "needs ConfigVersion",
    );
    refused(
        &[("ConfigSsmParameterName", "/s3r/config")],
        "needs ConfigSsmParameterVersion",
    );
    refused(
        &[
            ("ConfigBucketName", "ops"),
            ("ConfigObjectKey", "k"),
            ("ConfigVersion", "v1"),
            ("ReplicatorConfig", r#"{"Sources": []}"#),
        ],
        "More than one configuration source",
    );
    refused(&[("ReplicatorConfig", "   ")], "ReplicatorConfig");
    let long = format!(r#"{{"Sources": [], "x": "{}"}}"#, "a".repeat(3000));
    refused(
        &[("ReplicatorConfig", &long)],
        "ReplicatorConfig: longer than 3000",
    );
    refused(
        &[
            ("ConfigBucketName", "ops"),
            ("ConfigObjectKey", "k"),
            ("ConfigVersion", "has space"),
        ],
        "ConfigVersion",
    );

    // The object, at a VersionId or at its ETag (with its quotes): every function
    // reads that version, and may read that object and nothing else of the bucket.
    for version in [
        "3HL4kqtJl.cpXroDTDm_JrmSpXd3dIbrHY",
        "\"d41d8cd98f00b204e9800998ecf8427e\"",
    ] {
        let r = sam(&[
            ("ConfigBucketName", "ops"),
            ("ConfigObjectKey", "s3r/replication.json"),
            ("ConfigVersion", version),
        ]);
        assert_eq!(
            (&r["ParameterErrors"], &r["Rules"]),
            (&json!([]), &json!([])),
            "{version}"
        );
        for f in ["ingest", "replicate", "retry"] {
            assert_eq!(
                r["Environment"][f]["REPLICATOR_CONFIG"],
                "s3://ops/s3r/replication.json"
            );
            assert_eq!(r["Environment"][f]["REPLICATOR_CONFIG_VERSION"], version);
            let st = statements(&r["Policies"][f]);
            let read: Vec<&Value> = st
                .iter()
                .filter(|s| s["Sid"] == "ReadConfiguration")
                .collect();
            assert_eq!(read.len(), 1, "{f}");
            assert_eq!(
                read[0]["Action"],
                json!(["s3:GetObject", "s3:GetObjectVersion"])
            );
            assert_eq!(read[0]["Resource"], "arn:aws:s3:::ops/s3r/replication.json");
        }
    }
    // SSM: a version is required, and is part of the value, so an edit deploys.
    let r = sam(&[
        ("ConfigSsmParameterName", "/s3r/config"),
        ("ConfigSsmParameterVersion", "4"),
    ]);
    assert_eq!(r["Rules"], json!([]));
    assert_eq!(
        r["Environment"]["replicate"]["REPLICATOR_CONFIG"],
        "{{resolve:ssm:/s3r/config:4}}"
    );
    // Inline: no version, no read of any object.
    let r = sam(&[]);
    assert_eq!(r["Environment"]["ingest"]["REPLICATOR_CONFIG_VERSION"], "");
    assert!(!r["Policies"].to_string().contains("ReadConfiguration"));

    // Terraform: an uploaded object (or one that exists) pins its version_id, or its
    // ETag in quotes; an inline document is minified; the variables refuse a blank or
    // oversized document, and the function refuses two sources or none.
    let main =
        std::fs::read_to_string(root().join("infra/terraform/modules/s3-replicator/main.tf"))
            .unwrap();
    for needle in [
        "resource \"aws_s3_object\" \"config\"",
        "data \"aws_s3_object\" \"config\"",
        "one(aws_s3_object.config[*].version_id)",
        "one(aws_s3_object.config[*].etag)",
        "\"\\\"${local.config_etag}\\\"\"",
        "REPLICATOR_CONFIG_VERSION = local.config_version",
        "\"s3://${var.config_bucket}/${local.config_key}\"",
        "jsonencode(jsondecode(var.replicator_config))",
        "condition     = (var.config_bucket != \"\") != (var.replicator_config != \"\")",
    ] {
        assert!(main.contains(needle), "main.tf lacks {needle}");
    }
    let tf = variables_plan();
    let pretty = format!(
        "{{\n{}\"Sources\": []\n}}",
        "                                                  \n".repeat(80)
    );
    assert!(pretty.len() > 3000);
    for (value, accepted) in [
        (json!({}), true),
        (json!({"replicator_config": r#"{"Sources": []}"#}), true),
        (json!({"replicator_config": pretty}), true),
        (json!({"replicator_config": "   "}), false),
        (json!({"replicator_config": "{}"}), false),
        (json!({"replicator_config": long}), false),
        (
            json!({"config_bucket": "ops", "config_file": root().join("infra/terraform/example/replication.json")}),
            true,
        ),
        (
            json!({"config_bucket": "ops", "config_file": root().join("Cargo.toml")}),
            false,
        ),
    ] {
        let (ok, text) = tf(value.clone());
        assert_eq!(ok, accepted, "{value}: {text}");
    }
}

/// Keys and secrets of real accounts: a destination's default-encryption key goes in
/// KmsKeyArns (used through S3 only); a secret under a customer key needs that key
/// through Secrets Manager in the stack's region, and only then; a secret may be named
/// by ARN or by name.
#[test]
fn kms_keys_are_used_only_through_their_service_and_secrets_are_granted_by_arn_or_name() {
    let s3_key = "arn:aws:kms:eu-west-1:210987654321:key/dst-default";
    let secret_key = "arn:aws:kms:us-east-1:123456789012:key/secrets";
    let secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:s3r/minio-AbCdEf";
    let named =
        |n: &str| format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{n}-??????");
    let names = ["s3r/ovh", "s3r/b", "s3r/c", "s3r/d", "s3r/e"];
    let sam_replicate = |params: &[(&str, &str)]| statements(&sam(params)["Policies"]["replicate"]);
    let tf_replicate =
        |inputs: Value| statements(&terraform_policies(inputs)["documents"]["replicate"]);

    let joined = names.join(",");
    let sam_with = sam_replicate(&[
        ("KmsKeyArns", s3_key),
        ("SecretKmsKeyArns", secret_key),
        ("DestinationSecretArns", secret_arn),
        ("DestinationSecretNames", &joined),
    ]);
    let tf_with = tf_replicate(json!({
        "kms_key_arns": [s3_key],
        "secret_kms_key_arns": [secret_key],
        "destination_secret_arns": [secret_arn],
        "destination_secret_names": names,
    }));
    for (template, st) in [("SAM", &sam_with), ("Terraform", &tf_with)] {
        let kms: Vec<&Value> = st
            .iter()
            .filter(|s| s["Action"].to_string().contains("kms:"))
            .collect();
        assert_eq!(kms.len(), 2, "{template}: {kms:#?}");
        for s in kms {
            let resources = s["Resource"].to_string();
            if resources.contains("dst-default") {
                assert_eq!(
                    s["Condition"]["StringLike"]["kms:ViaService"], "s3.*.amazonaws.com",
                    "{template}"
                );
                let mut actions: Vec<String> = serde_json::from_value(s["Action"].clone()).unwrap();
                actions.sort();
                assert_eq!(
                    actions,
                    ["kms:Decrypt", "kms:GenerateDataKey"],
                    "{template}"
                );
            } else {
                assert!(resources.contains("key/secrets"), "{template}: {s}");
                assert_eq!(
                    s["Condition"]["StringEquals"]["kms:ViaService"],
                    "secretsmanager.us-east-1.amazonaws.com",
                    "{template}"
                );
                assert_eq!(
                    s["Action"].to_string().replace(['[', ']'], ""),
                    "\"kms:Decrypt\"",
                    "{template}"
                );
            }
        }
        let mut readable: Vec<String> = with_action(st, "secretsmanager:GetSecretValue")
            .iter()
            .flat_map(|s| match &s["Resource"] {
                Value::Array(a) => a.iter().map(|r| r.as_str().unwrap().to_string()).collect(),
                r => vec![r.as_str().unwrap().to_string()],
            })
            .collect();
        readable.sort();
        // ... and the signing key (below), whatever the parameters.
        let signing_key = match template {
            "SAM" => "{SigningKeySecret}",
            _ => TF_SIGNING_KEY,
        };
        let mut expected: Vec<String> = names
            .iter()
            .map(|n| named(n))
            .chain([secret_arn.to_string(), signing_key.to_string()])
            .collect();
        expected.sort();
        assert_eq!(readable, expected, "{template}");
    }
    // None of it without the parameters: no key, and no secret but the signing key.
    for (template, st) in [
        ("SAM", sam_replicate(&[])),
        ("Terraform", tf_replicate(json!({}))),
    ] {
        let text = Value::Array(st.clone()).to_string();
        assert!(!text.contains("kms:"), "{template}: {text}");
        let secrets: Vec<&Value> = st
            .iter()
            .filter(|s| s["Action"].to_string().contains("secretsmanager:"))
            .collect();
        assert_eq!(secrets.len(), 1, "{template}: {secrets:#?}");
        assert_eq!(secrets[0]["Sid"], "ReadSigningKey", "{template}");
    }
}

/// Whether `statement` names `action` (its Action a string or a list).
fn allows(statement: &Value, action: &str) -> bool {
    match &statement["Action"] {
        Value::Array(a) => a.iter().any(|x| x == action),
        other => other == action,
    }
}

/// A statement's Resource as a list.
fn resources(statement: &Value) -> Vec<String> {
    match &statement["Resource"] {
        Value::Array(a) => a.iter().map(|r| r.as_str().unwrap().to_string()).collect(),
        r => vec![r.as_str().unwrap().to_string()],
    }
}

/// What the key that signs jobs and replicas' provenance needs: the templates create
/// the secret (`{"current": 64 characters}`, generated by Secrets Manager, kept when
/// the stack goes), or take an existing one (two deployments of a two-way pair share
/// it); ingest and replicate may read it, retry may not, and every function is told
/// where it is (with the account and the backfill records' place).
#[test]
fn the_signing_key_is_created_or_named_and_only_ingest_and_replicate_read_it() {
    let readers = |policies: &Value| -> BTreeSet<(String, Vec<String>)> {
        policies
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(f, p)| {
                statements(p)
                    .into_iter()
                    .filter(|st| allows(st, "secretsmanager:GetSecretValue"))
                    .map(move |st| (f.clone(), resources(&st)))
            })
            .collect()
    };
    let both = |secret: &str| -> BTreeSet<(String, Vec<String>)> {
        ["ingest", "replicate"]
            .iter()
            .map(|f| (f.to_string(), vec![secret.to_string()]))
            .collect()
    };

    // Created by the stack.
    let r = sam(&[]);
    assert_eq!(
        (&r["ParameterErrors"], &r["Rules"]),
        (&json!([]), &json!([]))
    );
    let secret = &r["Resources"]["SigningKeySecret"];
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    assert_eq!(
        secret["Properties"]["GenerateSecretString"],
        json!({"SecretStringTemplate": "{}", "GenerateStringKey": "current",
               "PasswordLength": 64, "ExcludePunctuation": true})
    );
    let text = read("infra/sam/template.yaml");
    let resource = &text[text
        .find("\n  SigningKeySecret:\n")
        .expect("SigningKeySecret")..];
    let resource = &resource[..resource[1..].find("\n\n").unwrap()];
    assert!(
        resource.contains("DeletionPolicy: Retain")
            && resource.contains("UpdateReplacePolicy: Retain"),
        "replicas signed with the key are recognised only with it: {resource}"
    );
    assert_eq!(readers(&r["Policies"]), both("{SigningKeySecret}"));
    for f in ["ingest", "replicate", "retry"] {
        let env = &r["Environment"][f];
        assert_eq!(
            env["REPLICATOR_SIGNING_KEY_SECRET"], "{SigningKeySecret}",
            "{f}"
        );
        assert_eq!(env["REPLICATOR_ACCOUNT"], "123456789012", "{f}");
        assert_eq!(
            env["BACKFILL_REPORT_URL"], "s3://{FailedArchiveBucket}/backfill-reports/",
            "{f}: the stack's BackfillReportUrl"
        );
    }
    assert!(text.contains(
        "BackfillReportUrl:\n    Description: Where backfills keep their record and completion report"
    ));
    let archive = sam(&[
        ("FailedArchiveBucketName", "ops-archive"),
        ("BackfillReportPrefix", "bf/"),
    ]);
    assert_eq!(
        archive["Environment"]["replicate"]["BACKFILL_REPORT_URL"],
        "s3://ops-archive/bf/"
    );

    // An existing one, by full ARN: nothing created, that one read.
    let shared = "arn:aws:secretsmanager:us-east-1:123456789012:secret:s3r/pair-key-AbCdEf";
    let r = sam(&[("SigningKeySecretArn", shared)]);
    assert_eq!(r["ParameterErrors"], json!([]));
    assert!(r["Resources"].get("SigningKeySecret").is_none());
    assert_eq!(readers(&r["Policies"]), both(shared));
    for f in ["ingest", "replicate", "retry"] {
        assert_eq!(r["Environment"][f]["REPLICATOR_SIGNING_KEY_SECRET"], shared);
    }
    for bad in [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:s3r/pair-key",
        "s3r/pair-key",
    ] {
        assert_ne!(
            sam(&[("SigningKeySecretArn", bad)])["ParameterErrors"],
            json!([]),
            "{bad}: a full ARN, with its suffix, is what IAM matches"
        );
    }
    // Under a customer key: ingest and replicate may decrypt it through Secrets
    // Manager, retry not.
    let r = sam(&[
        ("SigningKeySecretArn", shared),
        (
            "SecretKmsKeyArns",
            "arn:aws:kms:us-east-1:123456789012:key/k",
        ),
    ]);
    for (f, decrypts) in [("ingest", true), ("replicate", true), ("retry", false)] {
        let st = statements(&r["Policies"][f]);
        assert_eq!(
            st.iter().any(|s| s["Sid"] == "SecretKeys"
                && s["Condition"]["StringEquals"]["kms:ViaService"]
                    == "secretsmanager.us-east-1.amazonaws.com"),
            decrypts,
            "{f}"
        );
    }

    // Terraform: the same, with the aws provider alone (Secrets Manager's
    // GetRandomPassword); the version keeps the first key it was given.
    let outputs = terraform_policies(json!({}));
    let documents: Value = outputs["documents"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(f, d)| {
            (
                f.clone(),
                serde_json::from_str::<Value>(d.as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(readers(&documents), both(TF_SIGNING_KEY));
    let main = hcl("infra/terraform/modules/s3-replicator/main.tf");
    let created = block(&main, "resource", "aws_secretsmanager_secret.signing_key");
    assert_eq!(
        attr(created, "count"),
        "${var.signing_key_secret_arn == \"\" ? 1 : 0}"
    );
    let password = block(
        &main,
        "data",
        "aws_secretsmanager_random_password.signing_key",
    );
    assert_eq!(
        (
            attr(password, "password_length"),
            attr(password, "exclude_punctuation")
        ),
        (&json!(64), &json!(true))
    );
    let version = block(
        &main,
        "resource",
        "aws_secretsmanager_secret_version.signing_key",
    );
    let value = attr(version, "secret_string").to_string();
    assert!(
        value.contains("current")
            && value
                .contains("data.aws_secretsmanager_random_password.signing_key[0].random_password"),
        "{value}"
    );
    assert!(attr(version, "lifecycle")["ignore_changes"]
        .to_string()
        .contains("secret_string"));
    let tf = read("infra/terraform/modules/s3-replicator/main.tf");
    for needle in [
        "REPLICATOR_SIGNING_KEY_SECRET = local.signing_key_secret_arn",
        "REPLICATOR_ACCOUNT = local.account_id",
        "BACKFILL_REPORT_URL = local.backfill_url",
        "signing_key_secret_arn   = local.signing_key_secret_arn",
        "var.signing_key_secret_arn != \"\" ? var.signing_key_secret_arn : aws_secretsmanager_secret_version.signing_key[0].arn",
    ] {
        assert!(tf.contains(needle), "main.tf lacks {needle}");
    }
    let versions = hcl("infra/terraform/modules/s3-replicator/versions.tf");
    let providers = &versions["terraform"][0]["required_providers"][0];
    assert_eq!(
        providers.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["aws"],
        "the module needs no provider but aws"
    );
    let variables = variables_plan();
    for (value, accepted) in [
        (shared, true),
        (
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:s3r/pair-key",
            false,
        ),
    ] {
        let (ok, text) = variables(json!({ "signing_key_secret_arn": value }));
        assert_eq!(ok, accepted, "{value}: {text}");
    }
}

/// Every S3 grant holds only in the account that owns the bucket (`s3:ResourceAccount`):
/// a bucket name deleted and re-registered by a stranger is neither read nor written.
/// Destinations are their owners' (DestinationAccountIds), everything else — sources,
/// the configuration object, the archive, backfill records, inventories — this
/// account's.
#[test]
fn every_s3_grant_holds_only_in_its_owners_account() {
    const THIS: &str = "123456789012";
    const THEIRS: &str = "210987654321";
    let check = |template: &str, policies: &Value| {
        let mut kinds = BTreeSet::new();
        for (f, policy) in policies.as_object().unwrap() {
            for st in statements(policy) {
                let actions = st["Action"].to_string();
                if !actions.contains("\"s3:") {
                    continue;
                }
                let owners = match &st["Condition"]["StringEquals"]["s3:ResourceAccount"] {
                    Value::Array(a) => a.clone(),
                    Value::Null => panic!("{template} {f}: no s3:ResourceAccount: {st}"),
                    one => vec![one.clone()],
                };
                let on = resources(&st);
                let destination =
                    |r: &String| r == "arn:aws:s3:::dst" || r.starts_with("arn:aws:s3:::dst/");
                let expected = match on.iter().filter(|r| destination(r)).count() {
                    0 => THIS,
                    n if n == on.len() => THEIRS,
                    _ => panic!("{template} {f}: destinations beside other buckets: {st}"),
                };
                assert_eq!(owners, [json!(expected)], "{template} {f}: {st}");
                for r in &on {
                    let kind = r
                        .trim_start_matches("arn:aws:s3:::")
                        .split(['/', '*'])
                        .next()
                        .unwrap()
                        .to_string();
                    kinds.insert(kind);
                }
            }
        }
        kinds
    };
    let sam = sam(&[
        ("DestinationAccountIds", THEIRS),
        ("ConfigBucketName", "ops"),
        ("ConfigObjectKey", "s3r/replication.json"),
        ("ConfigVersion", "v1"),
        ("FailedArchiveBucketName", "archive"),
        ("InventoryBucketName", "inventories"),
    ]);
    let expected: BTreeSet<String> = ["src", "dst", "ops", "archive", "inventories"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(check("SAM", &sam["Policies"]), expected);
    let tf = terraform_policies(json!({
        "destination_account_ids": [THEIRS],
        "config_object_arn": "arn:aws:s3:::ops/s3r/replication.json",
        "inventory_objects_arn": "arn:aws:s3:::inventories/*",
    }));
    let documents: Value = tf["documents"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(f, d)| {
            (
                f.clone(),
                serde_json::from_str::<Value>(d.as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(check("Terraform", &documents), expected);
    // The module gives the policies the deploying account, and the destinations'
    // owners or, without them, that account.
    let tf = read("infra/terraform/modules/s3-replicator/main.tf");
    for needle in [
        "account_id               = local.account_id",
        "destination_account_ids  = length(var.destination_account_ids) > 0 ? var.destination_account_ids : [local.account_id]",
    ] {
        assert!(tf.contains(needle), "main.tf lacks {needle}");
    }
}

/// Backfills from an S3 Inventory run their list tasks in replicate, which reads the
/// inventory's files: granted on the location the deployment names (in this account),
/// and nowhere without one.
#[test]
fn replicate_reads_inventories_only_where_the_deployment_says() {
    let reads = |policies: &Value| -> Vec<(String, Value)> {
        policies
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(f, p)| {
                statements(p)
                    .into_iter()
                    .filter(|st| st["Sid"] == "ReadInventory")
                    .map(move |st| (f.clone(), st))
            })
            .collect()
    };
    assert!(reads(&sam(&[])["Policies"]).is_empty());
    let r = sam(&[
        ("InventoryBucketName", "inventories"),
        ("InventoryPrefix", "photos/"),
    ]);
    assert_eq!(
        (&r["ParameterErrors"], &r["Rules"]),
        (&json!([]), &json!([]))
    );
    let found = reads(&r["Policies"]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0, "replicate");
    assert_eq!(
        (&found[0].1["Action"], &found[0].1["Resource"]),
        (
            &json!("s3:GetObject"),
            &json!("arn:aws:s3:::inventories/photos/*")
        )
    );
    let whole = sam(&[("InventoryBucketName", "inventories")]);
    assert_eq!(
        reads(&whole["Policies"])[0].1["Resource"],
        "arn:aws:s3:::inventories/*"
    );
    let orphan = sam(&[("InventoryPrefix", "photos/")]);
    assert!(
        orphan["Rules"]
            .to_string()
            .contains("InventoryPrefix needs InventoryBucketName"),
        "{}",
        orphan["Rules"]
    );
    for bad in ["/photos/", "photos/*"] {
        assert_ne!(
            sam(&[
                ("InventoryBucketName", "inventories"),
                ("InventoryPrefix", bad)
            ])["ParameterErrors"],
            json!([]),
            "{bad}"
        );
    }

    let documents = |inputs: Value| -> Value {
        terraform_policies(inputs)["documents"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(f, d)| {
                (
                    f.clone(),
                    serde_json::from_str::<Value>(d.as_str().unwrap()).unwrap(),
                )
            })
            .collect()
    };
    assert!(reads(&documents(json!({}))).is_empty());
    let found = reads(&documents(
        json!({"inventory_objects_arn": "arn:aws:s3:::inventories/photos/*"}),
    ));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "replicate");
    assert_eq!(
        (&found[0].1["Action"], &found[0].1["Resource"]),
        (
            &json!(["s3:GetObject"]),
            &json!(["arn:aws:s3:::inventories/photos/*"])
        )
    );
    let tf = read("infra/terraform/modules/s3-replicator/main.tf");
    assert!(tf.contains(
        "inventory_objects_arn    = var.inventory_bucket_name == \"\" ? \"\" : \"arn:aws:s3:::${var.inventory_bucket_name}/${var.inventory_prefix}*\""
    ));
    let variables = variables_plan();
    for (value, accepted) in [
        (
            json!({"inventory_bucket_name": "inventories", "inventory_prefix": "photos/"}),
            true,
        ),
        (json!({"inventory_prefix": "/photos/"}), false),
        (json!({"inventory_bucket_name": "Inventories"}), false),
    ] {
        let (ok, text) = variables(value.clone());
        assert_eq!(ok, accepted, "{value}: {text}");
    }
}

/// When another consumer owns a bucket's notifications, they reach ingest through SNS
/// or EventBridge: the events queue (or ingest, under direct delivery) admits that
/// topic or the stack's rule, each by aws:SourceArn, and nothing of it otherwise.
#[test]
fn sns_and_eventbridge_deliver_only_from_their_own_source() {
    let topic = "arn:aws:sns:us-east-1:123456789012:photos-events";
    let queue_statements = |r: &Value| {
        statements(&r["Resources"]["EventsQueuePolicy"]["Properties"]["PolicyDocument"])
    };
    let by_principal = |st: &[Value], service: &str| -> Vec<Value> {
        st.iter()
            .filter(|s| s["Principal"]["Service"] == service)
            .cloned()
            .collect()
    };

    let plain = sam(&[]);
    let st = queue_statements(&plain);
    assert!(
        by_principal(&st, "sns.amazonaws.com").is_empty()
            && by_principal(&st, "events.amazonaws.com").is_empty()
    );
    for absent in [
        "NotificationTopicSubscription",
        "SourceBucketEvents",
        "IngestInvokedBySns",
        "IngestInvokedByEventBridge",
    ] {
        assert!(plain["Resources"].get(absent).is_none(), "{absent}");
    }

    // Through the events queue.
    let queued = sam(&[
        ("NotificationTopicArn", topic),
        ("EventBridgeNotifications", "enabled"),
    ]);
    let st = queue_statements(&queued);
    let sns = by_principal(&st, "sns.amazonaws.com");
    assert_eq!(sns.len(), 1);
    assert_eq!(sns[0]["Action"], "sqs:SendMessage");
    assert_eq!(
        sns[0]["Condition"],
        json!({"ArnEquals": {"aws:SourceArn": topic}})
    );
    let events = by_principal(&st, "events.amazonaws.com");
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["Condition"],
        json!({"ArnEquals": {"aws:SourceArn": "{SourceBucketEvents.Arn}"}})
    );
    let r = &queued["Resources"];
    assert_eq!(
        r["NotificationTopicSubscription"]["Properties"],
        json!({"TopicArn": topic, "Protocol": "sqs", "Endpoint": "arn:aws:sqs:us-east-1:123456789012:events"})
    );
    let rule = &r["SourceBucketEvents"]["Properties"];
    assert_eq!(rule["EventPattern"]["source"], json!(["aws.s3"]));
    assert_eq!(
        rule["EventPattern"]["detail-type"],
        json!([
            "Object Created",
            "Object Deleted",
            "Object Tags Added",
            "Object Tags Deleted",
            "Object ACL Updated"
        ])
    );
    assert_eq!(
        rule["EventPattern"]["detail"]["bucket"]["name"],
        json!(["src"])
    );
    assert_eq!(
        rule["Targets"][0]["Arn"],
        "arn:aws:sqs:us-east-1:123456789012:events"
    );
    assert!(r.get("IngestInvokedBySns").is_none() && r.get("IngestInvokedByEventBridge").is_none());

    // Direct delivery: to ingest, which only that topic and that rule may invoke.
    let direct = sam(&[
        ("NotificationTopicArn", topic),
        ("EventBridgeNotifications", "enabled"),
        ("NotificationDelivery", "direct"),
    ]);
    let st = queue_statements(&direct);
    assert!(
        by_principal(&st, "sns.amazonaws.com").is_empty()
            && by_principal(&st, "events.amazonaws.com").is_empty()
    );
    let r = &direct["Resources"];
    assert_eq!(
        r["NotificationTopicSubscription"]["Properties"]["Protocol"],
        "lambda"
    );
    assert_eq!(
        r["NotificationTopicSubscription"]["Properties"]["Endpoint"],
        "{IngestFunction.Arn}"
    );
    assert_eq!(
        r["SourceBucketEvents"]["Properties"]["Targets"][0]["Arn"],
        "{IngestFunction.Arn}"
    );
    for (permission, principal, source) in [
        ("IngestInvokedBySns", "sns.amazonaws.com", topic),
        (
            "IngestInvokedByEventBridge",
            "events.amazonaws.com",
            "{SourceBucketEvents.Arn}",
        ),
    ] {
        let p = &r[permission]["Properties"];
        assert_eq!(
            (&p["Principal"], &p["SourceArn"]),
            (&json!(principal), &json!(source)),
            "{permission}"
        );
    }

    // Terraform: the queue's statements come from the policies module, rendered here.
    let rule_arn = "arn:aws:events:us-east-1:123456789012:rule/s3-replicator-object-events";
    let outputs = terraform_policies(
        json!({"notification_topic_arn": topic, "eventbridge_rule_arn": rule_arn}),
    );
    let st = statements(&outputs["events_queue_document"]);
    assert_eq!(st.len(), 2, "{st:#?}");
    for (service, source) in [
        ("sns.amazonaws.com", topic),
        ("events.amazonaws.com", rule_arn),
    ] {
        let s = by_principal(&st, service);
        assert_eq!(s.len(), 1, "{service}");
        assert_eq!(
            s[0]["Condition"],
            json!({"ArnEquals": {"aws:SourceArn": source}})
        );
        assert_eq!(
            s[0]["Resource"],
            "arn:aws:sqs:us-east-1:123456789012:events"
        );
    }
    assert_eq!(terraform_policies(json!({}))["events_queue_document"], "");
    let main = hcl("infra/terraform/modules/s3-replicator/main.tf");
    let sns = block(&main, "resource", "aws_lambda_permission.ingest_from_sns");
    assert_eq!(
        (attr(sns, "principal"), attr(sns, "source_arn")),
        (
            &json!("sns.amazonaws.com"),
            &json!("${var.notification_topic_arn}")
        )
    );
    let eb = block(
        &main,
        "resource",
        "aws_lambda_permission.ingest_from_eventbridge",
    );
    assert_eq!(
        (attr(eb, "principal"), attr(eb, "source_arn")),
        (
            &json!("events.amazonaws.com"),
            &json!("${aws_cloudwatch_event_rule.object_events[0].arn}")
        )
    );
    let pattern = attr(
        block(&main, "resource", "aws_cloudwatch_event_rule.object_events"),
        "event_pattern",
    )
    .to_string();
    for detail in [
        "Object Created",
        "Object Deleted",
        "Object Tags Added",
        "Object Tags Deleted",
        "Object ACL Updated",
        "var.source_bucket_names",
    ] {
        assert!(pattern.contains(detail), "{detail}: {pattern}");
    }
    assert!(block(
        &main,
        "resource",
        "aws_sns_topic_subscription.notifications"
    )
    .is_object());
    let events = block(&main, "data", "aws_iam_policy_document.events_queue");
    assert!(attr(events, "source_policy_documents")
        .to_string()
        .contains("module.policies.events_queue_document"));
}

/// Statements that grow with the bucket lists are managed policies of their own (6,144
/// characters each), so the role's inline policies (10,240 in all) keep to what does
/// not grow: thirty sources and thirty destinations of the longest names fit.
#[test]
fn bucket_lists_live_in_managed_policies_that_fit_thirty_long_buckets() {
    let size = |doc: &Value| -> usize {
        let text = match doc {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        text.chars().filter(|c| !c.is_whitespace()).count()
    };
    let bucket = |prefix: char, i: usize| format!("{prefix}{i:02}{}", "x".repeat(60));
    let sources: Vec<String> = (0..30).map(|i| bucket('s', i)).collect();
    let destinations: Vec<String> = (0..30).map(|i| bucket('d', i)).collect();

    let r = sam(&[
        ("SourceBucketNames", &sources.join(",")),
        ("DestinationBucketNames", &destinations.join(",")),
    ]);
    let resources = r["Resources"].as_object().unwrap();
    let mut managed = 0;
    for (id, resource) in resources {
        match resource["Type"].as_str().unwrap() {
            "AWS::IAM::Role" => {
                let inline: usize = resource["Properties"]["Policies"]
                    .as_array()
                    .map(|p| p.iter().map(|p| size(&p["PolicyDocument"])).sum())
                    .unwrap_or(0);
                assert!(
                    inline < 10_240,
                    "{id}: inline policies of {inline} characters"
                );
                let text = resource["Properties"]["Policies"].to_string();
                assert!(
                    !text.contains(&sources[0]) && !text.contains(&destinations[0]),
                    "{id}: a bucket list inline"
                );
                for arn in resource["Properties"]["ManagedPolicyArns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let policy = arn.as_str().unwrap().trim_matches(|c| c == '{' || c == '}');
                    assert_eq!(
                        resources[policy]["Type"], "AWS::IAM::ManagedPolicy",
                        "{id} attaches {policy}"
                    );
                }
            }
            "AWS::IAM::ManagedPolicy" => {
                managed += 1;
                let n = size(&resource["Properties"]["PolicyDocument"]);
                assert!(n < 6_144, "{id}: {n} characters");
            }
            _ => {}
        }
    }
    assert_eq!(
        managed, 3,
        "ingest's sources, replicate's sources, replicate's destinations"
    );
    // The functions run under all of it (what tests/tests/deployed.rs enforces).
    let replicate = r["Policies"]["replicate"].to_string();
    assert!(
        replicate.contains(&format!("arn:aws:s3:::{}/*", sources[29]))
            && replicate.contains(&format!("arn:aws:s3:::{}/*", destinations[29]))
    );

    let outputs = terraform_policies(
        json!({"source_bucket_names": sources, "destination_bucket_names": destinations}),
    );
    for (f, doc) in outputs["inline_documents"].as_object().unwrap() {
        assert!(size(doc) < 10_240, "{f}: inline {}", size(doc));
        assert!(
            !doc.as_str().unwrap().contains(&sources[0]),
            "{f}: a bucket list inline"
        );
    }
    let managed = outputs["managed_documents"].as_object().unwrap();
    let mut keys: Vec<&String> = managed.keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ingest-sources",
            "replicate-destinations",
            "replicate-sources"
        ]
    );
    for (k, p) in managed {
        assert!(
            size(&p["document"]) < 6_144,
            "{k}: {}",
            size(&p["document"])
        );
    }
    let main = hcl("infra/terraform/modules/s3-replicator/main.tf");
    assert_eq!(
        attr(
            block(&main, "resource", "aws_iam_policy.function"),
            "for_each"
        ),
        "${module.policies.managed_documents}"
    );
    assert_eq!(
        attr(
            block(&main, "resource", "aws_iam_role_policy_attachment.function"),
            "for_each"
        ),
        "${module.policies.managed_documents}"
    );
    assert_eq!(
        attr(
            block(&main, "resource", "aws_iam_role_policy.function"),
            "policy"
        ),
        "${module.policies.inline_documents[each.key]}"
    );
}

/// Two deployments in one account: every name the module gives carries name_prefix,
/// and the global ones (IAM, the archive bucket) the region too. The provider is
/// bounded above.
#[test]
fn terraform_names_carry_the_prefix_and_the_provider_is_bounded() {
    let main = hcl("infra/terraform/modules/s3-replicator/main.tf");
    let mut named = 0;
    for resources in main["resource"].as_array().unwrap() {
        for (kind, blocks) in resources.as_object().unwrap() {
            for (name, b) in blocks.as_object().unwrap() {
                for key in [
                    "name",
                    "bucket",
                    "function_name",
                    "alarm_name",
                    "dashboard_name",
                ] {
                    let Some(value) = b.get(key).map(|v| v[0].as_str().unwrap_or_default()) else {
                        continue;
                    };
                    // References to another resource's name are not names given here.
                    if value.starts_with("${aws_") || value.starts_with("${var.config_bucket") {
                        continue;
                    }
                    named += 1;
                    assert!(
                        value.contains("${var.name_prefix}"),
                        "{kind}.{name}.{key} = {value}"
                    );
                    if ["aws_iam_role", "aws_iam_policy", "aws_s3_bucket"].contains(&kind.as_str())
                    {
                        assert!(
                            value.contains("${local.region}"),
                            "{kind}.{name}.{key} = {value}"
                        );
                    }
                }
            }
        }
    }
    assert!(named >= 15, "{named} names");
    let tf = variables_plan();
    for (prefix, accepted) in [
        ("s3r-prod", true),
        ("S3R_prod", false),
        ("a-prefix-far-too-long-for-s3", false),
    ] {
        let (ok, text) = tf(json!({ "name_prefix": prefix }));
        assert_eq!(ok, accepted, "{prefix}: {text}");
    }
    for file in [
        "infra/terraform/modules/s3-replicator/versions.tf",
        "infra/terraform/example/main.tf",
    ] {
        let versions = hcl(file);
        let aws = &versions["terraform"][0]["required_providers"][0]["aws"];
        let aws = if aws.is_array() { &aws[0] } else { aws };
        let constraint = aws["version"].as_str().unwrap_or_default();
        assert!(
            constraint.contains(">=") && constraint.contains("<"),
            "{file}: {constraint}"
        );
    }
}

/// `make deploy` builds with the pinned tools and `make sam-build` is that build alone.
#[test]
fn the_deploy_builds_with_the_pinned_tools() {
    let out = run(std::process::Command::new("make")
        .args([
            "-n",
            "-s",
            "sam-build",
            "SAM=/opt/sam",
            "CARGO_LAMBDA=/opt/cargo-lambda",
        ])
        .current_dir(root()));
    let recipe = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{recipe}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        ".venv-build/bin:",
        "SAM_CLI_BETA_RUST_CARGO_LAMBDA=1",
        "/opt/sam build",
    ] {
        assert!(
            recipe.contains(needle),
            "make sam-build: {needle} missing in {recipe}"
        );
    }
    let makefile = read("Makefile");
    let deploy = &makefile[makefile.find("\ndeploy:").expect("deploy target") + 1..];
    assert!(
        deploy.lines().next().unwrap().contains("sam-build"),
        "deploy depends on sam-build"
    );
    assert!(!deploy.contains("&& sam build"), "a bare sam build");
}
