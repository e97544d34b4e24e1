//! `s3-replicator backfill`: starts a backfill (list tasks on the work queue) or, with
//! `--dry-run`, lists the scope here and says what it would send and cost.

use std::io::IsTerminal;
use std::time::Duration;

use replicator::bootstrap::Process;
use replicator::config::settings::BACKFILL_REPORT_VAR;
use replicator::listing::record::{self, Manifest, ReportLocation};
use replicator::operator::backfill::report::{self, Status};
use replicator::operator::backfill::{self, Plan, Scope};

use crate::Output;

/// List prices (us-east-1, standard) the estimate uses, in dollars per request.
const S3_WRITE: f64 = 0.005 / 1000.0; // PUT, COPY, LIST
const S3_READ: f64 = 0.0004 / 1000.0; // GET, HEAD
const SQS: f64 = 0.40 / 1_000_000.0;

/// Requests per object to copy (small, same endpoint, copied in its list task): HEAD
/// source and COPY. An object the destination's listing shows up to date costs only
/// its share of the listings.
const COPIED: (f64, f64) = (1.0, 1.0);

/// The record's location: `--report`, else BACKFILL_REPORT_URL, else none.
fn location(report: Option<String>) -> anyhow::Result<Option<ReportLocation>> {
    let url = report.or_else(|| {
        std::env::var(BACKFILL_REPORT_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())
    });
    url.map(|u| {
        ReportLocation::parse(&u)
            .map_err(|e| anyhow::anyhow!("--report / {BACKFILL_REPORT_VAR}: {e}"))
    })
    .transpose()
}

pub async fn backfill(
    scope: Scope,
    inventory: Option<String>,
    report: Option<String>,
    dry_run: bool,
    output: Output,
) -> anyhow::Result<()> {
    let process = Process::from_env(None).await?;
    let ingest = process.ingest().await?;
    let id = backfill::new_id();
    let at = location(report)?;
    let mut tasks = match &inventory {
        Some(url) => {
            let (bucket, manifest) = backfill::inventory::read_manifest(&ingest.s3, url).await?;
            backfill::inventory::tasks(&process.config, &scope, &id, &bucket, &manifest)?
        }
        None => backfill::root_tasks(&process.config, &scope, &id)?,
    };
    for task in &mut tasks {
        task.report = at.as_ref().map(ReportLocation::url);
    }
    if dry_run {
        let clients = process.s3_clients().await?;
        let plan = backfill::dry_run(&ingest, Some(&clients), &tasks).await?;
        match output {
            Output::Json => crate::outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "dry_run": true,
                    "plan": plan,
                    "estimated_cost_usd": cost(&plan),
                }))?
            ),
            Output::Table => print_plan(&plan),
        }
        return Ok(());
    }
    if let Some(at) = &at {
        let manifest = Manifest {
            id: id.clone(),
            started: replicator::queues::job::now_rfc3339(),
            tasks: tasks.len() as u64,
            scope: serde_json::json!({
                "buckets": tasks.iter().map(|t| t.bucket.clone()).collect::<std::collections::BTreeSet<_>>(),
                "prefixes": tasks.iter().map(|t| t.prefix.clone()).collect::<std::collections::BTreeSet<_>>(),
                "inventory": inventory,
                "rule": scope.rule, "modified_after": scope.modified_after, "modified_before": scope.modified_before,
            }),
        };
        record::write_manifest(&ingest.s3, at, &manifest)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the backfill's record: {e}"))?;
    }
    backfill::start(&ingest, &tasks).await?;
    match output {
        Output::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "backfill": id,
                "tasks": tasks.len(),
                "work_queue": ingest.work_queue_url,
                "report": at.as_ref().map(|a| format!("{}{id}/", a.url())),
            }))?
        ),
        Output::Table => {
            crate::outln!(
                "backfill {id} started: {} list task(s) on the work queue",
                tasks.len()
            );
            for task in &tasks {
                match &task.inventory {
                    Some(file) => crate::outln!(
                        "  s3://{}/{} (inventory of {})",
                        file.bucket,
                        file.key,
                        task.bucket
                    ),
                    None => crate::outln!("  s3://{}/{}", task.bucket, task.prefix),
                }
            }
            crate::outln!("the replicate function (or `s3-replicator run`) lists and copies; its log lines carry backfill={id}");
            match &at {
                Some(at) => crate::outln!("follow it with `s3-replicator backfill status {id}`; its record is under {}{id}/", at.url()),
                None => crate::outln!("no --report or {BACKFILL_REPORT_VAR}: this backfill keeps no record, so `backfill status` cannot follow it"),
            }
        }
    }
    Ok(())
}

/// Dollars for what the plan lists: every page listed at the source and at each
/// destination, sent and received as a task; every object to copy, copied.
fn cost(plan: &Plan) -> f64 {
    let copies: u64 = plan.destinations.iter().map(|d| d.objects).sum();
    let destinations = plan.destinations.len().max(1) as f64;
    let listing = plan.list_requests as f64 * ((1.0 + destinations) * S3_WRITE + 3.0 * SQS);
    listing + copies as f64 * (COPIED.0 * S3_WRITE + COPIED.1 * S3_READ)
}

fn print_plan(plan: &Plan) {
    crate::outln!(
        "{:<24} {:<24} {:>10} {:>12} {:>11}",
        "SOURCE",
        "DESTINATION",
        "TO COPY",
        "BYTES",
        "UP TO DATE"
    );
    for d in &plan.destinations {
        crate::outln!(
            "{:<24} {:<24} {:>10} {:>12} {:>11}",
            d.source_bucket,
            d.destination,
            d.objects,
            bytes(d.bytes),
            d.up_to_date
        );
    }
    let skipped: Vec<String> = plan
        .skipped
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    crate::outln!(
        "{} object(s) listed in {} page(s); skipped: {}",
        plan.listed,
        plan.list_requests,
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        }
    );
    crate::outln!(
        "estimated request cost: ${:.4} (listings, then a HEAD and a copy per object to copy; same endpoint, small objects); sent nothing (--dry-run)",
        cost(plan)
    );
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// `backfill status`: reads the record (one LIST per thousand parts), and with `--wait`
/// refreshes until the backfill is complete.
pub async fn status(
    id: Option<String>,
    report: Option<String>,
    wait: bool,
    output: Output,
) -> anyhow::Result<()> {
    let Some(at) = location(report)? else {
        anyhow::bail!("say where backfills keep their record: --report s3://BUCKET/PREFIX, or {BACKFILL_REPORT_VAR}");
    };
    let sdk = replicator::config::clients::load_sdk_config().await;
    let s3 = replicator::config::clients::source_s3(&sdk, None);
    let id = match id {
        Some(id) => id,
        None => report::latest(&s3, &at)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no backfill under {}", at.url()))?,
    };
    let terminal = std::io::stderr().is_terminal();
    loop {
        let status = report::status(&s3, &at, &id).await?;
        if wait && !status.complete {
            if terminal {
                eprint!("\r{}", bar(&status));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        if wait && terminal {
            eprintln!("\r{}", bar(&status));
        }
        match output {
            Output::Json => crate::outln!("{}", serde_json::to_string_pretty(&status)?),
            Output::Table => print_status(&status),
        }
        return Ok(());
    }
}

fn bar(status: &Status) -> String {
    let total = status.queued.max(1);
    let done = status.finished_jobs().min(total);
    let width = 30;
    let filled = (done * width / total) as usize;
    format!(
        "[{}{}] {done}/{} jobs, pages {}/{}, {:.1}/s ",
        "#".repeat(filled),
        ".".repeat(width as usize - filled),
        status.queued,
        status.pages_listed,
        status.pages_expected,
        rate(status)
    )
}

fn rate(status: &Status) -> f64 {
    status.finished_jobs() as f64 / status.elapsed_s.max(1) as f64
}

fn print_status(s: &Status) {
    crate::outln!(
        "backfill {} started {} ({} s ago)",
        s.id,
        s.started,
        s.elapsed_s
    );
    crate::outln!(
        "  listing    {}/{} page(s), {} object(s) listed, {} skipped when listed",
        s.pages_listed,
        s.pages_expected,
        s.listed,
        s.skipped_at_listing
    );
    crate::outln!(
        "  jobs       {} queued: {} replicated, {} skipped, {} failed, {} to go",
        s.queued,
        s.replicated,
        s.skipped,
        s.failed,
        s.queued.saturating_sub(s.finished_jobs())
    );
    crate::outln!("  rate       {:.1} job(s)/s", rate(s));
    match &s.report {
        Some(report) => crate::outln!("complete; report: {report}"),
        None => crate::outln!("in progress"),
    }
}
