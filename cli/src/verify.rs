//! `s3-replicator verify`: the drift report, as a table or JSON, with exit status 0
//! only when every destination is in sync.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use replicator::bootstrap::Process;
use replicator::operator::backfill::Scope;
use replicator::operator::drift::{DestinationReport, Drift, Drifted, Progress, SHOWN};

use crate::Output;

/// The exit status when some destination drifts (1 is any error).
pub const DRIFT: u8 = 3;

pub async fn verify(scope: Scope, repair: bool, output: Output) -> anyhow::Result<ExitCode> {
    let process = Process::from_env(None).await?;
    // Only --repair sends anything; without it the work queue need not be set.
    let mut ingest = match repair {
        true => process.ingest().await?,
        false => replicator::ingest::Ingest {
            config: process.config.clone(),
            s3: process.s3.clone(),
            sqs: process.sqs.clone(),
            work_queue_url: String::new(),
            failed_queue_url: None,
            signer: process.signer().await?,
        },
    };
    ingest.failed_queue_url = None;
    let clients = process.s3_clients().await?;
    let progress = Arc::new(Progress::default());
    let ticker = std::io::stderr().is_terminal().then(|| {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                eprint!(
                    "\rlisted {} source and {} destination object(s)",
                    progress.source.load(Ordering::Relaxed),
                    progress.destination.load(Ordering::Relaxed)
                );
            }
        })
    });
    let drift = Drift {
        config: &process.config,
        ingest: &ingest,
        clients: &clients,
        progress: &progress,
    };
    let reports = drift.run(&scope, repair).await;
    if let Some(ticker) = ticker {
        ticker.abort();
        eprintln!();
    }
    let reports = reports?;
    match output {
        Output::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "in_sync": !reports.iter().any(DestinationReport::drifts),
                "destinations": reports,
            }))?
        ),
        Output::Table => print(&reports),
    }
    Ok(match reports.iter().any(DestinationReport::drifts) {
        true => ExitCode::from(DRIFT),
        false => ExitCode::SUCCESS,
    })
}

fn print(reports: &[DestinationReport]) {
    crate::outln!(
        "{:<24} {:<24} {:>9} {:>8} {:>8} {:>6} {:>6} {:>9} {:>9}",
        "SOURCE",
        "DESTINATION",
        "IN SYNC",
        "MISSING",
        "DIFFERS",
        "EXTRA",
        "LOCKS",
        "NOT REPL",
        "NOT OURS"
    );
    for r in reports {
        crate::outln!(
            "{:<24} {:<24} {:>9} {:>8} {:>8} {:>6} {:>6} {:>9} {:>9}",
            r.source_bucket,
            r.destination,
            r.in_sync,
            r.missing.len(),
            r.differs.len(),
            r.extra.len(),
            r.locks.len(),
            r.not_replicated.values().sum::<u64>(),
            r.not_ours
        );
    }
    for r in reports {
        for (kind, list) in [
            ("missing", &r.missing),
            ("differs", &r.differs),
            ("extra", &r.extra),
            ("lock", &r.locks),
        ] {
            show(r, kind, list);
        }
        if !r.not_replicated.is_empty() {
            let reasons: Vec<String> = r
                .not_replicated
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            crate::outln!(
                "{} -> {}: not replicated, as S3 would not: {}",
                r.source_bucket,
                r.destination,
                reasons.join(", ")
            );
        }
        if let Some(n) = r.repair_jobs {
            crate::outln!(
                "{} -> {}: queued {n} repair job(s)",
                r.source_bucket,
                r.destination
            );
        }
    }
    let drifting = reports.iter().filter(|r| r.drifts()).count();
    match drifting {
        0 => crate::outln!("in sync: {} destination(s)", reports.len()),
        n => crate::outln!("{n} of {} destination(s) drift (exit status {DRIFT}); --repair queues the jobs that fix it", reports.len()),
    }
}

fn show(r: &DestinationReport, kind: &str, list: &[Drifted]) {
    for d in list.iter().take(SHOWN) {
        let why = d
            .why
            .as_deref()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        crate::outln!("  {kind:<8} s3://{}/{}{why}", r.destination, d.key);
    }
    if list.len() > SHOWN {
        crate::outln!(
            "  {kind:<8} ... and {} more (--output json lists every key)",
            list.len() - SHOWN
        );
    }
}
