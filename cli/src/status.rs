//! `s3-replicator status`: one screen for the pipeline. Each queue's backlog (visible,
//! in flight, delayed), the parked jobs by reason and by destination, and the recent
//! backfills with their progress. `--watch` refreshes it.

use std::collections::BTreeMap;
use std::time::Duration;

use replicator::config::settings::{ArchiveSettings, Queues, BACKFILL_REPORT_VAR};
use replicator::listing::record::ReportLocation;
use replicator::operator::backfill::report::{self, Status as Backfill};
use replicator::queues::dlq::{Archive, Failed, FailedQueue};
use serde::Serialize;

use crate::Output;

/// Backfills shown: the newest few.
const BACKFILLS: usize = 5;

#[derive(Serialize)]
struct QueueState {
    variable: &'static str,
    url: String,
    #[serde(flatten)]
    backlog: replicator::queues::backlog::Backlog,
}

#[derive(Serialize, Default)]
struct Parked {
    total: usize,
    by_reason: BTreeMap<String, usize>,
    by_destination: BTreeMap<String, usize>,
}

/// What a worker's metrics endpoint says: totals since it started, latency quantiles,
/// and (with `--watch`) the rate since the last refresh.
#[derive(Serialize, Default, Clone)]
struct Worker {
    replicated: f64,
    bytes: f64,
    failed: f64,
    skipped: f64,
    latency_p50_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replicated_per_s: Option<f64>,
}

#[derive(Serialize)]
struct Screen {
    #[serde(skip_serializing_if = "Option::is_none")]
    cloudwatch: Option<replicator::operator::recent::Recent>,
    /// Why CloudWatch could not be read (the rest of the screen stands).
    #[serde(skip_serializing_if = "Option::is_none")]
    cloudwatch_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker: Option<Worker>,
    queues: Vec<QueueState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parked: Option<Parked>,
    backfills: Vec<Backfill>,
}

pub async fn status(
    watch: Option<Duration>,
    metrics: Option<std::net::SocketAddr>,
    cloudwatch: Option<Duration>,
    output: Output,
) -> anyhow::Result<()> {
    let sdk = replicator::config::clients::load_sdk_config().await;
    let sqs = replicator::config::clients::sqs(&sdk);
    let cw = aws_sdk_cloudwatch::Client::new(&sdk);
    let s3 = replicator::config::clients::source_s3(&sdk, None);
    let queues = Queues::from_env();
    if queues.named().is_empty() {
        anyhow::bail!(
            "no queue to show: set WORK_QUEUE_URL (and EVENTS_, RETRY_, FAILED_QUEUE_URL)"
        );
    }
    let records = std::env::var(BACKFILL_REPORT_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|u| {
            ReportLocation::parse(&u).map_err(|e| anyhow::anyhow!("{BACKFILL_REPORT_VAR}: {e}"))
        })
        .transpose()?;
    let mut before: Option<(std::time::Instant, f64)> = None;
    loop {
        let mut screen = read(&sqs, &s3, &queues, records.as_ref()).await?;
        if let Some(addr) = metrics {
            let mut worker = scrape(addr).await?;
            let now = std::time::Instant::now();
            if let Some((then, replicated)) = before {
                let seconds = now.duration_since(then).as_secs_f64().max(0.001);
                worker.replicated_per_s = Some((worker.replicated - replicated).max(0.0) / seconds);
            }
            before = Some((now, worker.replicated));
            screen.worker = Some(worker);
        }
        if let Some(window) = cloudwatch {
            match replicator::operator::recent::from_cloudwatch(&cw, window).await {
                Ok(recent) => screen.cloudwatch = Some(recent),
                Err(e) => screen.cloudwatch_error = Some(e),
            }
        }
        match output {
            Output::Json => crate::outln!("{}", serde_json::to_string(&screen)?),
            Output::Table => {
                if watch.is_some() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    // Clear the screen and go home, as `watch` does.
                    print!("\x1b[2J\x1b[H");
                }
                print(&screen);
            }
        }
        match watch {
            Some(every) => tokio::time::sleep(every).await,
            None => return Ok(()),
        }
    }
}

async fn read(
    sqs: &aws_sdk_sqs::Client,
    s3: &aws_sdk_s3::Client,
    queues: &Queues,
    records: Option<&ReportLocation>,
) -> anyhow::Result<Screen> {
    let mut states = Vec::new();
    for (variable, url) in queues.named() {
        let backlog = replicator::queues::backlog::of(sqs, url).await?;
        states.push(QueueState {
            variable,
            url: url.to_string(),
            backlog,
        });
    }
    let parked = match &queues.failed {
        Some(url) => {
            let failed = Failed {
                queue: FailedQueue {
                    sqs: sqs.clone(),
                    url: url.clone(),
                },
                archive: ArchiveSettings::from_env()?.map(|settings| Archive {
                    s3: s3.clone(),
                    settings,
                }),
            };
            let all = failed.scan().await?;
            failed.release(&all).await?;
            let mut parked = Parked {
                total: all.len(),
                ..Parked::default()
            };
            for p in &all {
                *parked.by_reason.entry(p.reason.clone()).or_default() += 1;
                let destination = p
                    .destination
                    .clone()
                    .unwrap_or_else(|| format!("({})", p.kind));
                *parked.by_destination.entry(destination).or_default() += 1;
            }
            Some(parked)
        }
        None => None,
    };
    let mut backfills = Vec::new();
    if let Some(at) = records {
        for id in report::recent(s3, at, BACKFILLS).await? {
            backfills.push(report::status(s3, at, &id).await?);
        }
    }
    Ok(Screen {
        cloudwatch: None,
        cloudwatch_error: None,
        worker: None,
        queues: states,
        parked,
        backfills,
    })
}

/// Reads a worker's Prometheus endpoint (`run --metrics-addr`).
async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<Worker> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let read = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        Ok::<String, std::io::Error>(text)
    };
    let text = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| anyhow::anyhow!("the worker's metrics at {addr} did not answer in 5 s"))?
        .map_err(|e| anyhow::anyhow!("the worker's metrics at {addr}: {e}"))?;
    // Samples without labels are the totals (`NAME VALUE`), or a summary's quantile.
    let value = |series: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    Ok(Worker {
        replicated: value("OperationsReplicated").unwrap_or(0.0),
        bytes: value("BytesReplicated").unwrap_or(0.0),
        failed: value("OperationsFailedReplication").unwrap_or(0.0),
        skipped: value("OperationsSkipped").unwrap_or(0.0),
        latency_p50_ms: value("ReplicationLatency{quantile=\"0.5\"}"),
        latency_p99_ms: value("ReplicationLatency{quantile=\"0.99\"}"),
        replicated_per_s: None,
    })
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} ms"))
        .unwrap_or_else(|| "-".into())
}

fn print(screen: &Screen) {
    if let Some(e) = &screen.cloudwatch_error {
        crate::outln!("CloudWatch: unavailable ({e})");
        crate::outln!("");
    }
    if let Some(r) = &screen.cloudwatch {
        crate::outln!(
            "last {} min (CloudWatch): {} replicated ({:.2}/s, {} bytes), {} failed; latency p50 {}, p99 {}",
            r.minutes,
            r.replicated,
            r.replicated_per_s,
            r.bytes,
            r.failed,
            ms(r.latency_p50_ms),
            ms(r.latency_p99_ms)
        );
        if let Some(note) = &r.note {
            crate::outln!("  ({note})");
        }
        crate::outln!("");
    }
    if let Some(w) = &screen.worker {
        crate::outln!(
            "worker: {} replicated ({} bytes), {} skipped, {} failed since it started; latency p50 {}, p99 {}{}",
            w.replicated,
            w.bytes,
            w.skipped,
            w.failed,
            ms(w.latency_p50_ms),
            ms(w.latency_p99_ms),
            w.replicated_per_s.map(|r| format!("; {r:.1} replicated/s lately")).unwrap_or_default()
        );
        crate::outln!("");
    }
    crate::outln!(
        "{:<18} {:>9} {:>10} {:>8}",
        "QUEUE",
        "VISIBLE",
        "IN FLIGHT",
        "DELAYED"
    );
    for q in &screen.queues {
        let name = q.variable.trim_end_matches("_QUEUE_URL").to_lowercase();
        crate::outln!(
            "{:<18} {:>9} {:>10} {:>8}",
            name,
            q.backlog.visible,
            q.backlog.in_flight,
            q.backlog.delayed
        );
    }
    if let Some(parked) = &screen.parked {
        crate::outln!("");
        crate::outln!("parked jobs: {}", parked.total);
        for (reason, n) in &parked.by_reason {
            crate::outln!("  {n:>6}  {reason}");
        }
        for (destination, n) in &parked.by_destination {
            crate::outln!("  {n:>6}  to {destination}");
        }
    }
    if !screen.backfills.is_empty() {
        crate::outln!("");
        crate::outln!(
            "{:<26} {:>11} {:>8} {:>10} {:>10} {:>7} {:>7}  STATE",
            "BACKFILL",
            "PAGES",
            "LISTED",
            "UP TO DATE",
            "REPLICATED",
            "SKIPPED",
            "FAILED"
        );
        for b in &screen.backfills {
            crate::outln!(
                "{:<26} {:>11} {:>8} {:>10} {:>10} {:>7} {:>7}  {}",
                b.id,
                format!("{}/{}", b.pages_listed, b.pages_expected),
                b.listed,
                b.up_to_date,
                b.replicated,
                b.skipped,
                b.failed,
                if b.complete { "complete" } else { "running" }
            );
        }
    }
}
