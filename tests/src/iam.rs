//! The shipped IAM policies, enforced: the IAM-checking moto server of the local stack
//! (`S3R_TEST_IAM_ENDPOINT`, an admin made at its start), the policies the templates
//! render for a test's buckets and queues, an IAM user per function holding exactly
//! that policy, and the IAM action each request needs, read off the wire.
//!
//! moto 5.2.5's enforcement differs from AWS's in ways bridged here, in the test, and
//! never by widening a template (see `bridge_for_moto`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::{unique, Stack, ACCOUNT, REGION};

/// Which template's policies to run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Sam,
    Terraform,
}

/// What a deployment's policies are rendered for.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    pub sources: Vec<String>,
    pub destinations: Vec<String>,
    /// Queue ARNs by role: events, work, retry, failed.
    pub queues: BTreeMap<&'static str, String>,
    pub secret_arns: Vec<String>,
    pub kms_key_arns: Vec<String>,
    /// Customer keys the secrets are encrypted under.
    pub secret_kms_key_arns: Vec<String>,
    /// The failed-job archive's bucket and prefix; empty: the one the template creates.
    pub archive_bucket: String,
    pub archive_prefix: String,
    /// The events dead-letter queue's ARN when S3 invokes ingest directly.
    pub direct_delivery_dlq: Option<String>,
    /// The signing key's secret, as the template creates it; `None`: a stand-in ARN.
    pub signing_key_secret: Option<String>,
    /// Where S3 Inventory delivers (bucket, prefix), for backfills from an inventory.
    pub inventory: Option<(String, String)>,
}

/// The name the test gives the archive bucket a template creates.
const CREATED_ARCHIVE: &str = "s3r-test-failed-jobs";

/// The signing key's secret when a test names none.
pub const STAND_IN_SIGNING_KEY: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:s3r-test-signing-key-AbCdEf";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn log_group_arn(function: &str) -> String {
    format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/s3r-test-{function}")
}

impl Deployment {
    fn archive_prefix(&self) -> &str {
        if self.archive_bucket.is_empty() {
            "failed-jobs/"
        } else {
            &self.archive_prefix
        }
    }

    fn signing_key_secret(&self) -> &str {
        self.signing_key_secret
            .as_deref()
            .unwrap_or(STAND_IN_SIGNING_KEY)
    }

    /// Each function's policy document as `template` renders it, by binary name.
    pub fn render(&self, template: Template) -> BTreeMap<String, Value> {
        let dir = std::env::temp_dir().join(unique("s3r-policies"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let out = match template {
            Template::Sam => {
                let resources: BTreeMap<String, Value> = [
                    ("EventsQueue", "events"),
                    ("WorkQueue", "work"),
                    ("RetryQueue", "retry"),
                    ("FailedQueue", "failed"),
                ]
                .into_iter()
                .map(|(id, q)| (id.to_string(), json!({"Arn": self.queues[q]})))
                .chain([
                    (
                        "FailedArchiveBucket".to_string(),
                        json!({"Ref": CREATED_ARCHIVE}),
                    ),
                    // What CloudFormation's Ref of the created secret gives: its ARN.
                    (
                        "SigningKeySecret".to_string(),
                        json!({"Ref": self.signing_key_secret()}),
                    ),
                ])
                .chain(
                    self.direct_delivery_dlq
                        .iter()
                        .map(|arn| ("EventsDeadLetterQueue".to_string(), json!({"Arn": arn}))),
                )
                .chain(["ingest", "replicate", "retry"].into_iter().map(|f| {
                    let id = format!("{}{}LogGroup", f[..1].to_uppercase(), &f[1..]);
                    // CloudFormation's LogGroup Arn attribute ends in ":*".
                    (id, json!({"Arn": format!("{}:*", log_group_arn(f))}))
                }))
                .collect();
                let context = json!({
                    "Parameters": {
                        "SourceBucketNames": self.sources.join(","),
                        "DestinationBucketNames": self.destinations.join(","),
                        "DestinationSecretArns": self.secret_arns.join(","),
                        "KmsKeyArns": self.kms_key_arns.join(","),
                        "SecretKmsKeyArns": self.secret_kms_key_arns.join(","),
                        "FailedArchiveBucketName": self.archive_bucket,
                        "FailedArchivePrefix": self.archive_prefix(),
                        "NotificationDelivery": if self.direct_delivery_dlq.is_some() { "direct" } else { "queue" },
                        "InventoryBucketName": self.inventory.as_ref().map(|(b, _)| b.as_str()).unwrap_or_default(),
                        "InventoryPrefix": self.inventory.as_ref().map(|(_, p)| p.as_str()).unwrap_or_default(),
                    },
                    "Resources": resources,
                    "AccountId": ACCOUNT,
                    "Region": REGION,
                });
                let context_file = dir.join("context.json");
                std::fs::write(&context_file, context.to_string()).expect("context");
                let out = std::process::Command::new(repo().join(".venv-infra/bin/python"))
                    .arg(repo().join("scripts/render_policies.py"))
                    .arg(repo().join("infra/sam/template.yaml"))
                    .arg(&context_file)
                    .output()
                    .expect("run scripts/render_policies.py (make infra-venv)");
                assert!(
                    out.status.success(),
                    "render_policies.py: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                serde_json::from_slice::<BTreeMap<String, Value>>(&out.stdout)
                    .expect("rendered policies")
            }
            Template::Terraform => {
                let module = repo().join("infra/terraform/modules/s3-replicator/policies");
                let list = |v: &[String]| serde_json::to_string(v).expect("list");
                let root = format!(
                    r#"module "policies" {{
  source                   = "{}"
  source_bucket_names      = {}
  destination_bucket_names = {}
  destination_account_ids  = ["{ACCOUNT}"]
  kms_key_arns             = {}
  destination_secret_arns  = {}
  secret_kms_key_arns      = {}
  region                   = "{REGION}"
  account_id               = "{ACCOUNT}"
  signing_key_secret_arn   = "{}"
  inventory_objects_arn    = "{}"
  config_object_arn        = ""
  archive_objects_arn      = "arn:aws:s3:::{}/{}*"
  backfill_records_arn     = "arn:aws:s3:::{}/backfill-reports/*"
  direct_delivery_dlq_arn  = "{}"
  queue_arns = {{ events = "{}", work = "{}", retry = "{}", failed = "{}" }}
  log_group_arns = {{ ingest = "{}", replicate = "{}", retry = "{}" }}
}}
output "documents" {{
  value = module.policies.documents
}}
"#,
                    module.display(),
                    list(&self.sources),
                    list(&self.destinations),
                    list(&self.kms_key_arns),
                    list(&self.secret_arns),
                    list(&self.secret_kms_key_arns),
                    self.signing_key_secret(),
                    self.inventory
                        .as_ref()
                        .map(|(b, p)| format!("arn:aws:s3:::{b}/{p}*"))
                        .unwrap_or_default(),
                    if self.archive_bucket.is_empty() {
                        CREATED_ARCHIVE
                    } else {
                        &self.archive_bucket
                    },
                    self.archive_prefix(),
                    if self.archive_bucket.is_empty() {
                        CREATED_ARCHIVE
                    } else {
                        &self.archive_bucket
                    },
                    self.direct_delivery_dlq.as_deref().unwrap_or_default(),
                    self.queues["events"],
                    self.queues["work"],
                    self.queues["retry"],
                    self.queues["failed"],
                    log_group_arn("ingest"),
                    log_group_arn("replicate"),
                    log_group_arn("retry"),
                );
                std::fs::write(dir.join("main.tf"), root).expect("main.tf");
                for args in [
                    &["init", "-input=false", "-no-color"][..],
                    &["apply", "-auto-approve", "-input=false", "-no-color"][..],
                ] {
                    let out = std::process::Command::new("terraform")
                        .args(args)
                        .current_dir(&dir)
                        .output()
                        .expect("run terraform");
                    assert!(
                        out.status.success(),
                        "terraform {args:?}: {}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let out = std::process::Command::new("terraform")
                    .args(["output", "-json", "documents"])
                    .current_dir(&dir)
                    .output()
                    .expect("terraform output");
                let documents: BTreeMap<String, String> =
                    serde_json::from_slice(&out.stdout).expect("terraform output -json");
                documents
                    .into_iter()
                    .map(|(f, doc)| (f, serde_json::from_str(&doc).expect("policy JSON")))
                    .collect()
            }
        };
        let _ = std::fs::remove_dir_all(&dir);
        out
    }
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Every action a policy document allows (no wildcards in ours: lint_iam.py).
pub fn granted_actions(policy: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for st in as_list(&policy["Statement"]) {
        if st["Effect"] != "Allow" {
            continue;
        }
        let sid = st["Sid"].as_str().unwrap_or("?").to_string();
        for action in as_list(&st["Action"]) {
            out.insert((sid.clone(), action.as_str().unwrap_or_default().to_string()));
        }
    }
    out
}

/// moto 5.2.5 checks some requests against other actions or resources than AWS does.
/// Each bridge adds what moto asks for beside what AWS asks for, so a request the
/// shipped policy allows on AWS is allowed here too; nothing the policy denies on
/// AWS becomes allowed, except as listed:
/// - SendMessageBatch, DeleteMessageBatch and ChangeMessageVisibilityBatch are their
///   own actions in moto (AWS: the action without "Batch");
/// - a GET of an object's tagging or ACL with a versionId is `GetObjectVersion` in
///   moto (AWS: `GetObjectVersionTagging`, `GetObjectVersionAcl`);
/// - HeadBucket is `s3:HeadBucket` in moto (AWS: `s3:ListBucket`);
/// - moto matches Secrets Manager requests against the resource "*" only, so a
///   statement naming secrets is widened to "*" here (the tests then show retry
///   reading no secret at all, since it has no such statement; ingest's one, the
///   signing key's, is widened like replicate's);
/// - moto evaluates no conditions (`s3:ResourceAccount`, `kms:ViaService`): a
///   statement with a condition applies as if it held. The conditions themselves
///   are checked on the templates' text (tests/tests/templates.rs).
pub fn bridge_for_moto(policy: &Value) -> Value {
    let mut policy = policy.clone();
    let statements = as_list(&policy["Statement"]);
    let bridged: Vec<Value> = statements
        .into_iter()
        .map(|mut st| {
            let mut actions: Vec<String> = as_list(&st["Action"])
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            let extra: Vec<String> = actions
                .iter()
                .flat_map(|a| match a.as_str() {
                    "sqs:SendMessage" => vec!["sqs:SendMessageBatch"],
                    "sqs:DeleteMessage" => vec!["sqs:DeleteMessageBatch"],
                    "sqs:ChangeMessageVisibility" => vec!["sqs:ChangeMessageVisibilityBatch"],
                    "s3:GetObjectVersionTagging" | "s3:GetObjectVersionAcl" => {
                        vec!["s3:GetObjectVersion"]
                    }
                    "s3:ListBucket" => vec!["s3:HeadBucket"],
                    _ => vec![],
                })
                .map(str::to_string)
                .collect();
            actions.extend(extra);
            actions.sort();
            actions.dedup();
            if actions.iter().any(|a| a.starts_with("secretsmanager:")) {
                st["Resource"] = json!("*");
            }
            st["Action"] = json!(actions);
            st
        })
        .collect();
    policy["Statement"] = json!(bridged);
    policy
}

/// An IAM user of the enforcing server holding exactly `policy`; its keys. The IAM
/// API is reached through boto3 in the stack's venv (the SDK's IAM client is not a
/// dependency for three calls).
pub async fn principal(admin: &Stack, name: &str, policy: &Value) -> (String, String) {
    let user = unique(name);
    let script = r#"
import json, os, sys, boto3
iam = boto3.client("iam", endpoint_url=os.environ["EP"], region_name="us-east-1",
                   aws_access_key_id=os.environ["AK"], aws_secret_access_key=os.environ["SK"])
user, policy = sys.argv[1], sys.stdin.read()
iam.create_user(UserName=user)
iam.put_user_policy(UserName=user, PolicyName="shipped", PolicyDocument=policy)
key = iam.create_access_key(UserName=user)["AccessKey"]
print(json.dumps([key["AccessKeyId"], key["SecretAccessKey"]]))
"#;
    let mut child = tokio::process::Command::new(repo().join(".venv/bin/python"))
        .args(["-c", script, &user])
        .env("EP", &admin.endpoint)
        .env(
            "AK",
            std::env::var("S3R_TEST_IAM_ACCESS_KEY").expect("admin key"),
        )
        .env(
            "SK",
            std::env::var("S3R_TEST_IAM_SECRET_KEY").expect("admin key"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python (make venv)");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(policy.to_string().as_bytes())
            .await
            .expect("policy to stdin");
    }
    let out = child.wait_with_output().await.expect("iam script");
    assert!(
        out.status.success(),
        "creating IAM user {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("keys")
}

/// One request as IAM sees it: who sent it and which actions it needs (a copy needs
/// a read of its source besides the write).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Authorized {
    pub access_key: String,
    pub action: String,
    pub target: String,
}

/// The IAM actions AWS requires for a request, read from its head (request line and
/// headers) as the recording proxy saw it. S3 path-style requests, and the JSON
/// protocol's `X-Amz-Target` for SQS and Secrets Manager.
pub fn actions_of(head: &str) -> Vec<Authorized> {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let access_key = headers
        .get("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .unwrap_or("anonymous")
        .to_string();
    let one = |action: String, on: &str| Authorized {
        access_key: access_key.clone(),
        action,
        target: on.to_string(),
    };
    if let Some(t) = headers.get("x-amz-target") {
        let (service, op) = t.split_once('.').unwrap_or(("", t));
        let action = match service {
            "AmazonSQS" => format!("sqs:{}", op.trim_end_matches("Batch")),
            "secretsmanager" => format!("secretsmanager:{op}"),
            other => format!("{other}:{op}"),
        };
        return vec![one(action, "")];
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let params: BTreeSet<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split('=').next().unwrap_or_default().to_string())
        .collect();
    let has = |p: &str| params.contains(p);
    let path = path.trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let resource = if key.is_empty() {
        bucket.to_string()
    } else {
        format!("{bucket}/{key}")
    };
    let version = if has("versionId") { "Version" } else { "" };
    let s3 = |a: &str| format!("s3:{a}");
    let mut out = Vec::new();
    if key.is_empty() {
        let action = match method.as_str() {
            "GET" if has("uploads") => "ListBucketMultipartUploads",
            "GET" if has("ownershipControls") => "GetBucketOwnershipControls",
            "GET" if has("notification") => "GetBucketNotification",
            "GET" if has("versions") => "ListBucketVersions",
            "GET" if has("location") => "GetBucketLocation",
            "GET" if has("object-lock") => "GetBucketObjectLockConfiguration",
            "GET" | "HEAD" => "ListBucket",
            "PUT" if has("notification") => "PutBucketNotification",
            "POST" if has("delete") => "DeleteObject",
            "PUT" => "CreateBucket",
            "DELETE" => "DeleteBucket",
            _ => "Unknown",
        };
        out.push(one(s3(action), &resource));
        return out;
    }
    let action = match method.as_str() {
        "GET" | "HEAD" if has("uploadId") => "ListMultipartUploadParts".to_string(),
        "GET" | "HEAD" if has("tagging") => format!("GetObject{version}Tagging"),
        "GET" | "HEAD" if has("acl") => format!("GetObject{version}Acl"),
        "GET" if has("retention") => "GetObjectRetention".to_string(),
        "GET" if has("legal-hold") => "GetObjectLegalHold".to_string(),
        "GET" | "HEAD" => format!("GetObject{version}"),
        "PUT" if has("tagging") => format!("PutObject{version}Tagging"),
        "PUT" if has("acl") => format!("PutObject{version}Acl"),
        "PUT" if has("retention") => "PutObjectRetention".to_string(),
        "PUT" if has("legal-hold") => "PutObjectLegalHold".to_string(),
        "PUT" | "POST" => "PutObject".to_string(),
        "DELETE" if has("uploadId") => "AbortMultipartUpload".to_string(),
        "DELETE" if has("tagging") => format!("DeleteObject{version}Tagging"),
        "DELETE" => format!("DeleteObject{version}"),
        _ => "Unknown".to_string(),
    };
    out.push(one(s3(&action), &resource));
    // A write (or an upload's start) that sets an Object Lock needs its actions too.
    let writes = (method == "PUT" && !has("retention") && !has("legal-hold"))
        || (method == "POST" && has("uploads"));
    if writes {
        if headers.contains_key("x-amz-object-lock-mode")
            || headers.contains_key("x-amz-object-lock-retain-until-date")
        {
            out.push(one(s3("PutObjectRetention"), &resource));
        }
        if headers.contains_key("x-amz-object-lock-legal-hold") {
            out.push(one(s3("PutObjectLegalHold"), &resource));
        }
    }
    if method == "PUT" && !has("tagging") && !has("acl") && !has("retention") && !has("legal-hold")
    {
        // A write that sets an ACL or tags needs those actions too.
        if headers
            .keys()
            .any(|h| h == "x-amz-acl" || h.starts_with("x-amz-grant-"))
        {
            out.push(one(s3("PutObjectAcl"), &resource));
        }
        let copy_tags = headers
            .get("x-amz-tagging-directive")
            .is_some_and(|d| d.eq_ignore_ascii_case("COPY"));
        if headers.contains_key("x-amz-tagging") || (copy_tags && !has("partNumber")) {
            out.push(one(s3("PutObjectTagging"), &resource));
        }
        if let Some(source) = headers.get("x-amz-copy-source") {
            let source = source.trim_start_matches('/');
            let (source_path, source_query) = source.split_once('?').unwrap_or((source, ""));
            let v = if source_query.contains("versionId=") {
                "Version"
            } else {
                ""
            };
            out.push(one(s3(&format!("GetObject{v}")), source_path));
            if copy_tags && !has("partNumber") {
                out.push(one(s3(&format!("GetObject{v}Tagging")), source_path));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_the_actions_aws_checks() {
        let head = |line: &str, headers: &str| {
            format!("{line} HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAX/20261122/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n{headers}\r\n")
        };
        let actions =
            |h: String| -> Vec<String> { actions_of(&h).into_iter().map(|a| a.action).collect() };
        assert_eq!(actions(head("HEAD /b/k", "")), ["s3:GetObject"]);
        assert_eq!(
            actions(head("GET /b/k?tagging&versionId=3", "")),
            ["s3:GetObjectVersionTagging"]
        );
        assert_eq!(
            actions(head(
                "PUT /d/k",
                "x-amz-copy-source: /s/k?versionId=1\r\nx-amz-tagging-directive: COPY\r\nx-amz-acl: private\r\n"
            )),
            [
                "s3:PutObject",
                "s3:PutObjectAcl",
                "s3:PutObjectTagging",
                "s3:GetObjectVersion",
                "s3:GetObjectVersionTagging"
            ]
        );
        assert_eq!(
            actions(head("GET /d?uploads&prefix=k", "")),
            ["s3:ListBucketMultipartUploads"]
        );
        // Object Lock: its own requests, and the headers of a write or an upload.
        assert_eq!(
            actions(head("GET /d?object-lock", "")),
            ["s3:GetBucketObjectLockConfiguration"]
        );
        assert_eq!(
            actions(head("PUT /d/k?retention&versionId=2", "")),
            ["s3:PutObjectRetention"]
        );
        assert_eq!(
            actions(head("PUT /d/k?legal-hold", "")),
            ["s3:PutObjectLegalHold"]
        );
        assert_eq!(
            actions(head(
                "POST /d/k?uploads",
                "x-amz-object-lock-mode: GOVERNANCE\r\nx-amz-object-lock-retain-until-date: 2030-01-01T00:00:00Z\r\nx-amz-object-lock-legal-hold: ON\r\n"
            )),
            ["s3:PutObject", "s3:PutObjectRetention", "s3:PutObjectLegalHold"]
        );
        assert_eq!(
            actions(head(
                "POST /",
                "X-Amz-Target: AmazonSQS.SendMessageBatch\r\n"
            )),
            ["sqs:SendMessage"]
        );
        assert_eq!(actions_of(&head("HEAD /b/k", ""))[0].access_key, "AKIAX");
    }
}
