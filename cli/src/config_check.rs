//! `s3-replicator config check`: explains a configuration document, from any place
//! REPLICATOR_CONFIG may name or standard input, and with `--online` checks that
//! every bucket it names answers and that each source's events are wired.

use std::io::Read;
use std::process::ExitCode;

use replicator::config::settings::CONFIG_VAR;
use replicator::config::source::ConfigSource;
use replicator::config::{Config, Problem};
use replicator::errors::ConfigError;
use serde_json::{json, Value};

use crate::Output;

pub async fn check(
    path: Option<String>,
    bucket: Option<String>,
    online: bool,
    output: Output,
) -> ExitCode {
    // The SDK (and its region and credential lookups) only where S3 is read.
    let needs_sdk = online || path.as_deref().is_none_or(|p| p.starts_with("s3://"));
    let sdk = match needs_sdk {
        true => Some(replicator::config::clients::load_sdk_config().await),
        false => None,
    };
    let s3 = sdk
        .as_ref()
        .map(|sdk| replicator::config::clients::source_s3(sdk, None));
    let text = match read(path, s3.as_ref()).await {
        Ok(text) => text,
        Err(e) => {
            eprintln!("s3-replicator: {e}");
            if matches!(e, ConfigError::Environment { .. }) {
                eprintln!("(pass a PATH, - for standard input, or set {CONFIG_VAR})");
            }
            return ExitCode::FAILURE;
        }
    };
    let text = match &bucket {
        Some(bucket) => Config::wrap_bucket_replication(&text, bucket),
        None => text,
    };
    let config = match Config::parse(&text) {
        Ok(config) => config,
        Err(ConfigError::Invalid { problems }) => {
            match output {
                Output::Json => crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"valid": false, "problems": entries(&problems)})
                    )
                    .unwrap_or_default()
                ),
                Output::Table => {
                    for p in &problems {
                        crate::outln!("{p}");
                    }
                }
            }
            eprintln!("{} problem(s) found", problems.len());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("s3-replicator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checks = match (&sdk, &s3) {
        (Some(sdk), Some(s3)) if online => match online_checks(sdk, s3, &config).await {
            Ok(checks) => checks,
            Err(e) => {
                eprintln!("s3-replicator: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => Vec::new(),
    };
    let failed = checks.iter().filter(|c| !c.ok).count();
    match output {
        Output::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "valid": true,
                "sources": summary(&config),
                "notes": entries(&config.notes),
                "online": online.then_some(&checks),
            }))
            .unwrap_or_default()
        ),
        Output::Table => {
            print_summary(&config);
            for note in &config.notes {
                crate::outln!("note: {note}");
            }
            for c in &checks {
                crate::outln!(
                    "{} {}: {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.what,
                    c.detail
                );
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} online check(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The document's text: a path, `-`, file://, s3://, or REPLICATOR_CONFIG.
async fn read(
    path: Option<String>,
    s3: Option<&aws_sdk_s3::Client>,
) -> Result<String, ConfigError> {
    let source = match path.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| ConfigError::Load {
                    location: "standard input".into(),
                    reason: e.to_string(),
                })?;
            return Ok(text);
        }
        Some(p) if p.starts_with("file://") || p.starts_with("s3://") => ConfigSource::parse(p)?,
        Some(p) => ConfigSource::File(p.to_string()),
        None => ConfigSource::from_env()?,
    };
    match s3 {
        Some(s3) => source.read(s3).await,
        None => {
            let sdk = replicator::config::clients::load_sdk_config().await;
            source
                .read(&replicator::config::clients::source_s3(&sdk, None))
                .await
        }
    }
}

fn entries(problems: &[Problem]) -> Vec<Value> {
    problems
        .iter()
        .map(|p| json!({"path": p.path, "message": p.message}))
        .collect()
}

fn summary(config: &Config) -> Vec<Value> {
    config
        .sources
        .iter()
        .map(|s| {
            json!({
                "bucket": s.bucket,
                "rules": s.rules.iter().map(|r| json!({
                    "id": r.id,
                    "enabled": r.enabled,
                    "priority": r.priority,
                    "prefix": r.filter.prefix,
                    "tags": r.filter.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
                    "destination": r.destination.bucket,
                    "endpoint": r.destination.endpoint.endpoint_url,
                    "storage_class": r.destination.storage_class,
                    "delete_mode": r.destination.delete_mode.to_string(),
                    "acl_mode": r.destination.acl_mode.to_string(),
                    "skips": r.skipped_objects(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// One online check.
#[derive(serde::Serialize)]
struct Check {
    what: String,
    ok: bool,
    detail: String,
}

/// Every destination answers a HeadBucket with the keys it is written with; every
/// source answers, and has our notification entry.
async fn online_checks(
    sdk: &aws_config::SdkConfig,
    s3: &aws_sdk_s3::Client,
    config: &Config,
) -> Result<Vec<Check>, ConfigError> {
    let clients =
        replicator::config::clients::S3Clients::build(sdk, s3.clone(), config, None).await?;
    let mut checks = Vec::new();
    let head = |client: &aws_sdk_s3::Client, bucket: &str| {
        let (client, bucket) = (client.clone(), bucket.to_string());
        async move {
            match client.head_bucket().bucket(&bucket).send().await {
                Ok(out) => match out.bucket_region() {
                    Some(region) => (true, format!("answers, in {region}")),
                    None => (true, "answers".to_string()),
                },
                // S3 says where a bucket is even when the request went elsewhere.
                Err(e) => match e
                    .raw_response()
                    .and_then(|r| r.headers().get("x-amz-bucket-region"))
                {
                    Some(region) if replicator::errors::http_status(&e) == Some(301) => (
                        true,
                        format!("answers, in {region} (another region: its requests go there)"),
                    ),
                    _ => (false, replicator::errors::describe(&e)),
                },
            }
        }
    };
    for source in &config.sources {
        let (ok, detail) = head(s3, &source.bucket).await;
        checks.push(Check {
            what: format!("source {}", source.bucket),
            ok,
            detail,
        });
        // S3 refuses a replication configuration from a bucket with Object Lock to
        // one without it: a replica there could be deleted or overwritten.
        let source_locked = match ok {
            true => bucket_lock(s3, &source.bucket).await,
            false => Ok(false),
        };
        let (ok, detail) = match replicator::events::notifications::current(s3, &source.bucket).await {
            Ok(c) => match replicator::events::notifications::our_target(&c) {
                Some((arn, events)) => (true, format!("events ({}) go to {arn}", events.join(", "))),
                None => (false, format!("no s3-replicator notification: run `s3-replicator setup notifications --bucket {} --queue-arn EVENTS_QUEUE_ARN`", source.bucket)),
            },
            Err(e) => (false, e.detail),
        };
        checks.push(Check {
            what: format!("notifications of {}", source.bucket),
            ok,
            detail,
        });
        let mut seen = std::collections::BTreeSet::new();
        for rule in source.rules.iter().filter(|r| r.enabled) {
            let d = &rule.destination;
            if !seen.insert((d.bucket.clone(), d.endpoint.endpoint_url.clone())) {
                continue;
            }
            let Some(client) = clients.for_destination(&d.endpoint) else {
                continue;
            };
            let (ok, detail) = head(client, &d.bucket).await;
            let at = d
                .endpoint
                .endpoint_url
                .as_deref()
                .map(|u| format!(" at {u}"))
                .unwrap_or_default();
            checks.push(Check {
                what: format!("destination {}{at} (rule {})", d.bucket, rule.id),
                ok,
                detail,
            });
            if ok {
                checks.push(ordering(&clients, d, client).await);
                if let Some(check) = object_lock(&source_locked, &source.bucket, d, client).await {
                    checks.push(check);
                }
            }
        }
    }
    Ok(checks)
}

async fn bucket_lock(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, String> {
    replicator::copy::lock::bucket_lock_enabled(s3, bucket)
        .await
        .map_err(|e| e.detail)
}

/// A source with Object Lock needs it at each destination (its versions' locks are
/// replicated, never weakened); `None` when the source has none.
async fn object_lock(
    source_locked: &Result<bool, String>,
    source: &str,
    d: &replicator::config::Destination,
    client: &aws_sdk_s3::Client,
) -> Option<Check> {
    let what = format!("Object Lock of {}", d.bucket);
    let (ok, detail) = match source_locked {
        Ok(false) => return None,
        Err(e) => (
            false,
            format!("cannot read the Object Lock configuration of source {source}: {e}"),
        ),
        Ok(true) => match bucket_lock(client, &d.bucket).await {
            Ok(true) => (
                true,
                format!("enabled, as at {source}: locks are replicated"),
            ),
            Ok(false) => (
                false,
                format!(
                "{source} has Object Lock and {} has not: its locked versions would be refused \
                 (DstObjectLockNotEnabled), as S3 refuses such a rule; create the destination \
                 with Object Lock enabled",
                d.bucket
            ),
            ),
            Err(e) => (
                false,
                format!("cannot read its Object Lock configuration: {e}"),
            ),
        },
    };
    Some(Check { what, ok, detail })
}

/// How replica writes to a destination are ordered: exactly, where the server checks
/// conditional writes, or by the fallback (a write that lands late looks at the source
/// again) where it ignores them. AWS's S3 checks them; another server is probed with
/// one empty object written and removed under `.s3-replicator-probe/`.
async fn ordering(
    clients: &replicator::config::clients::S3Clients,
    d: &replicator::config::Destination,
    client: &aws_sdk_s3::Client,
) -> Check {
    use replicator::config::PreconditionMode;
    let what = format!("ordering of writes to {}", d.bucket);
    let on_aws = d.endpoint.endpoint_url.is_none() && clients.on_aws;
    let detail = match d.preconditions {
        PreconditionMode::Enforced => {
            "exact: conditional writes (Preconditions: enforced)".to_string()
        }
        PreconditionMode::Ignored => {
            "by recheck: a write that lands late looks at the source again (Preconditions: ignored)"
                .to_string()
        }
        PreconditionMode::Probe if on_aws => "exact: S3 checks conditional writes".to_string(),
        PreconditionMode::Probe => {
            match replicator::copy::conditions::probe_destination(client, &d.bucket).await {
                Err(e) => {
                    return Check {
                        what,
                        ok: false,
                        detail: format!("cannot probe its conditional writes: {e}"),
                    }
                }
                Ok(found) => {
                    let ignored: Vec<&str> = found
                        .iter()
                        .filter(|(_, checked)| !checked)
                        .map(|(kind, _)| kind.operation())
                        .collect();
                    if ignored.is_empty() {
                        "exact: the server checks conditional writes (PutObject, CopyObject, DeleteObject)".to_string()
                    } else {
                        format!(
                            "by recheck where the server ignores conditions ({}): a write that lands more than a second late looks at the source again",
                            ignored.join(", ")
                        )
                    }
                }
            }
        }
    };
    Check {
        what,
        ok: true,
        detail,
    }
}

fn print_summary(config: &Config) {
    crate::outln!(
        "configuration is valid: {} source bucket(s)",
        config.sources.len()
    );
    for source in &config.sources {
        crate::outln!("  {}", source.bucket);
        for rule in &source.rules {
            let d = &rule.destination;
            let tags: Vec<String> = rule
                .filter
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            crate::outln!(
                "    {:<24} {:<8} priority {:<4} prefix {:?}{} -> {}{} class {} deletes {} acl {}{}",
                rule.id,
                if rule.enabled { "enabled" } else { "DISABLED" },
                rule.priority
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
                rule.filter.prefix,
                if tags.is_empty() {
                    String::new()
                } else {
                    format!(" tags {}", tags.join(","))
                },
                d.bucket,
                d.endpoint
                    .endpoint_url
                    .as_deref()
                    .map(|u| format!(" at {u}"))
                    .unwrap_or_default(),
                d.storage_class.as_deref().unwrap_or("as source"),
                d.delete_mode,
                d.acl_mode,
                credentials_note(d),
            );
            if let Some(key) = d.replica_kms_key_id.as_deref() {
                crate::outln!("      replicas encrypted with KMS key {key}");
            }
            crate::outln!("      skips {}", rule.skipped_objects().join("; "));
        }
    }
}

/// Whose keys a destination is written with, and whose bucket it must be.
fn credentials_note(d: &replicator::config::Destination) -> String {
    let mut note = String::new();
    if d.endpoint.endpoint_url.is_some() {
        note.push_str(&format!(" keys {}", d.endpoint.credentials));
        if d.endpoint.credentials == replicator::config::CredentialSource::DefaultChain {
            note.push_str(" (sent to that endpoint on purpose: DefaultChain)");
        }
    } else if d.endpoint.credentials != replicator::config::CredentialSource::DefaultChain {
        note.push_str(&format!(" keys {}", d.endpoint.credentials));
    }
    if let Some(account) = &d.account {
        note.push_str(&format!(" owner {account}"));
    }
    note
}
