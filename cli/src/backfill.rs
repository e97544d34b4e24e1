//! `s3-replicator backfill`: starts a backfill (list tasks on the work queue) or, with
//! `--dry-run`, lists the scope here and says what it would send and cost.

use replicator::backfill::{self, Plan, Scope};
use replicator::bootstrap::Process;

use crate::Output;

/// List prices (us-east-1, standard) the estimate uses, in dollars per request.
const S3_WRITE: f64 = 0.005 / 1000.0; // PUT, COPY, LIST
const S3_READ: f64 = 0.0004 / 1000.0; // GET, HEAD
const SQS: f64 = 0.40 / 1_000_000.0;

/// Requests per object at one destination when it must be copied: HEAD replica, HEAD
/// source, COPY; and the job's SQS send (a tenth of a batch), receive and delete.
const COPIED: (f64, f64, f64) = (1.0, 2.0, 0.3);
/// ... and when its replica is up to date already: one HEAD.
const UP_TO_DATE: (f64, f64, f64) = (0.0, 1.0, 0.3);

pub async fn backfill(scope: Scope, dry_run: bool, output: Output) -> anyhow::Result<()> {
    let process = Process::from_env(None).await?;
    let ingest = process.ingest()?;
    let id = backfill::new_id();
    let tasks = backfill::root_tasks(&process.config, &scope, &id)?;
    if dry_run {
        let plan = backfill::dry_run(&ingest, &tasks).await?;
        match output {
            Output::Json => crate::outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "dry_run": true,
                    "plan": plan,
                    "cost_usd": {"all_copied": cost(&plan, COPIED), "all_up_to_date": cost(&plan, UP_TO_DATE)},
                }))?
            ),
            Output::Table => print_plan(&plan),
        }
        return Ok(());
    }
    backfill::start(&ingest, &tasks).await?;
    match output {
        Output::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "backfill": id,
                "tasks": tasks.len(),
                "work_queue": ingest.work_queue_url,
            }))?
        ),
        Output::Table => {
            crate::outln!(
                "backfill {id} started: {} list task(s) on the work queue",
                tasks.len()
            );
            for task in &tasks {
                crate::outln!("  s3://{}/{}", task.bucket, task.prefix);
            }
            crate::outln!("the replicate function (or `s3-replicator run`) lists and copies; its log lines carry backfill={id}");
        }
    }
    Ok(())
}

/// Dollars for what the plan lists, with `per_object` requests (S3 writes, S3 reads,
/// SQS) per object and destination.
fn cost(plan: &Plan, per_object: (f64, f64, f64)) -> f64 {
    let objects: u64 = plan.destinations.iter().map(|d| d.objects).sum();
    let n = objects as f64;
    // The backfill lists once more than the dry run did, and sends a task per page.
    let listing = plan.list_requests as f64 * (S3_WRITE + 3.0 * SQS);
    listing + n * (per_object.0 * S3_WRITE + per_object.1 * S3_READ + per_object.2 * SQS)
}

fn print_plan(plan: &Plan) {
    crate::outln!(
        "{:<24} {:<24} {:>10} {:>12}",
        "SOURCE",
        "DESTINATION",
        "OBJECTS",
        "BYTES"
    );
    for d in &plan.destinations {
        crate::outln!(
            "{:<24} {:<24} {:>10} {:>12}",
            d.source_bucket,
            d.destination,
            d.objects,
            bytes(d.bytes)
        );
    }
    let skipped: Vec<String> = plan
        .skipped
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    crate::outln!(
        "{} object(s) listed in {} request(s); skipped: {}",
        plan.listed,
        plan.list_requests,
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        }
    );
    crate::outln!(
        "estimated request cost: ${:.4} if every object is copied (3 S3 requests each, same endpoint), ${:.4} if every replica is up to date (1 HEAD each); sent nothing (--dry-run)",
        cost(plan, COPIED),
        cost(plan, UP_TO_DATE)
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
