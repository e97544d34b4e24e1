//! `s3-replicator`: the operator's command. `run` is the long-lived worker (the same
//! handlers the Lambdas run); `config check` explains a configuration document.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use replicator::bootstrap::Process;
use replicator::worker::Worker;

/// `println!`, except that a reader gone (`| head`) ends the process quietly, as it
/// would any Unix tool (status 141, 128 + SIGPIPE), instead of a panic.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::print_line(format_args!($($arg)*))
    };
}

pub(crate) fn print_line(line: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("s3-replicator: cannot write the output: {e}");
        std::process::exit(1);
    }
}

mod backfill;
mod config_check;
mod dlq;
mod status;
mod verify;

#[derive(Parser)]
#[command(
    name = "s3-replicator",
    version,
    about = "Event-driven S3 replication: worker and operator tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr: text (the default at a terminal) or json (the default
    /// otherwise). RUST_LOG sets the level (info for run, warn for the others).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Poll the events and work queues and replicate, as the Lambdas would.
    Run {
        /// Stop once every queue has been empty this long: 30 (seconds), 30s, 5m, 1h.
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        exit_when_idle: Option<Duration>,
        /// Jobs replicated at once (at least 1); the worker receives more as they finish.
        #[arg(long, default_value_t = replicator::replicate::DEFAULT_CONCURRENCY, value_parser = at_least_one)]
        concurrency: usize,
        /// Serve the replication metrics for Prometheus here (text exposition format,
        /// any path), e.g. 127.0.0.1:9464.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Inspect the configuration document.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Wire buckets to the pipeline.
    Setup {
        #[command(subcommand)]
        command: SetupCommand,
    },
    /// Replicate objects that exist already.
    ///
    /// Sends list tasks to the work queue (WORK_QUEUE_URL); the replicate function, or
    /// `run`, lists each page and copies what the rules select, many prefixes at once.
    /// Safe to run again: replicas already up to date cost one HEAD each, no copy.
    /// `backfill status` follows one.
    #[command(args_conflicts_with_subcommands = true)]
    Backfill {
        #[command(subcommand)]
        command: Option<BackfillCommand>,
        #[command(flatten)]
        start: BackfillArgs,
    },
    /// One screen: queues' backlogs, parked jobs and backfills.
    ///
    /// Each queue's backlog (visible, in flight, delayed), parked jobs by reason and
    /// destination (FAILED_QUEUE_URL, and FAILED_ARCHIVE_URL), and the newest
    /// backfills with their progress (BACKFILL_REPORT_URL).
    Status {
        /// A worker's metrics endpoint (its `run --metrics-addr`): adds what it did,
        /// its latency, and with --watch its rate.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// Also the deployed functions' metrics from CloudWatch over the last DURATION
        /// (default 15m): replicated, bytes, failed, rate, latency p50 and p99.
        #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "15m", value_parser = duration)]
        cloudwatch: Option<Duration>,
        /// Refresh every DURATION (default 5s) until interrupted.
        #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "5s", value_parser = duration)]
        watch: Option<Duration>,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Compare each source with its destinations: the drift report.
    ///
    /// Each source is listed beside each destination, in key order. Reports per
    /// destination what is in sync, missing, differs (size, or an older write with
    /// another ETag) and extra (replicas this source made whose source is gone; objects
    /// written there directly are never extra). Exit status 0 when every destination is
    /// in sync, 3 when one drifts, 1 on an error.
    Verify {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Queue the jobs that fix each difference on the work queue (deletes only where
        /// the destination's delete mode allows them).
        #[arg(long)]
        repair: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Inspect and redrive parked jobs.
    ///
    /// The failed queue (FAILED_QUEUE_URL) and, when FAILED_ARCHIVE_URL is set, the
    /// archive that keeps them past SQS's retention.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
}

/// Which sources, rules and keys `backfill` and `verify` cover.
#[derive(clap::Args)]
struct ScopeArgs {
    /// A source bucket (repeat for several); every source of the configuration by default.
    #[arg(long)]
    bucket: Vec<String>,
    /// Only the destinations of this rule (its ID).
    #[arg(long)]
    rule: Option<String>,
    /// Only keys under this prefix.
    #[arg(long)]
    prefix: Option<String>,
}

impl ScopeArgs {
    fn scope(self) -> replicator::operator::backfill::Scope {
        replicator::operator::backfill::Scope {
            buckets: self.bucket,
            rule: self.rule,
            prefix: self.prefix,
            ..Default::default()
        }
    }
}

#[derive(clap::Args)]
struct BackfillArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// Only objects last modified at or after this time (RFC 3339: 2024-06-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    modified_after: Option<String>,
    /// Only objects last modified before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    modified_before: Option<String>,
    /// Levels of "/" below the prefix whose folders are listed as tasks of their own, in parallel.
    #[arg(long, default_value_t = replicator::operator::backfill::DEFAULT_SPLIT)]
    split: u8,
    /// Read the objects from this S3 Inventory (CSV) instead of listing the bucket:
    /// s3://BUCKET/PATH/manifest.json. For buckets of billions of objects.
    #[arg(long, value_name = "URL")]
    inventory: Option<String>,
    /// Where the backfill keeps its record and completion report, s3://BUCKET/PREFIX
    /// (default: BACKFILL_REPORT_URL). Without one, `backfill status` cannot follow it.
    #[arg(long, value_name = "URL")]
    report: Option<String>,
    /// List the scope here and print the objects, bytes and estimated request cost per
    /// destination; send nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Subcommand)]
enum BackfillCommand {
    /// Where a backfill stands.
    ///
    /// Pages listed, jobs queued, replicated, skipped, failed, and its rate. The first
    /// status that finds it complete writes its completion report (report.csv: one line
    /// per object and destination, with outcome and reason).
    Status {
        /// The backfill's id (printed when it started); the latest one by default.
        id: Option<String>,
        /// Where its record is, s3://BUCKET/PREFIX (default: BACKFILL_REPORT_URL).
        #[arg(long, value_name = "URL")]
        report: Option<String>,
        /// Refresh until it is complete (a progress bar on a terminal).
        #[arg(long)]
        wait: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Subcommand)]
enum SetupCommand {
    /// Create the worker's queues, as the templates do.
    ///
    /// NAME-events with its dead-letter queue NAME-events-dlq, NAME-work, NAME-retry
    /// and NAME-failed, with the redrive policies, visibility timeout and encryption the
    /// templates give them; S3 may send the source buckets' events to NAME-events. Safe
    /// to run again. Prints the variables `run` reads.
    Queues {
        /// The queues' name prefix.
        #[arg(long, default_value = "s3-replicator")]
        name: String,
        /// A source bucket whose events S3 may send (repeat for several); the sources
        /// of REPLICATOR_CONFIG by default.
        #[arg(long)]
        bucket: Vec<String>,
        /// Receives of a job before SQS moves it to the retry queue.
        #[arg(long, default_value_t = replicator::queues::setup::DEFAULT_MAX_RECEIVES, value_parser = clap::value_parser!(u32).range(1..=1000))]
        max_receive_count: u32,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Send a bucket's events to the pipeline, keeping its other notifications.
    ///
    /// Adds (or updates) one entry, to the events queue or the ingest function, and
    /// keeps every notification already configured on the bucket (topics, queues,
    /// Lambdas, EventBridge). Refuses a queue or function in another region than the
    /// bucket. Safe to run again.
    Notifications {
        /// The source bucket (repeat for several).
        #[arg(long, required = true)]
        bucket: Vec<String>,
        /// The events queue's ARN (the stack's EventsQueueArn output).
        #[arg(
            long,
            required_unless_present = "function_arn",
            conflicts_with = "function_arn"
        )]
        queue_arn: Option<String>,
        /// Direct delivery instead: the ingest function's ARN (the stack's
        /// IngestFunctionArn output, deployed with NotificationDelivery=direct).
        #[arg(long)]
        function_arn: Option<String>,
        /// Event types, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = replicator::events::notifications::DEFAULT_EVENTS.iter().map(|e| e.to_string()))]
        events: Vec<String>,
        /// Print the merged configuration; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write without S3 checking every destination of the bucket's notifications
        /// (its other ones included): for a bucket with a stale entry of its own.
        #[arg(long)]
        skip_destination_validation: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration document.
    ///
    /// Prints every problem with its JSON path (exit 1 if there is any), and notes on
    /// fields that parse but do nothing here; or a summary of the rules.
    Check {
        /// The document: a file, `-` (standard input), file://PATH or s3://BUCKET/KEY;
        /// without it, what REPLICATOR_CONFIG holds.
        path: Option<String>,
        /// The document is `aws s3api get-bucket-replication` output for this bucket.
        #[arg(long)]
        bucket: Option<String>,
        /// Also reach every destination with its credentials (HeadBucket) and read each
        /// source's notification configuration; exit 1 if any check fails.
        #[arg(long)]
        online: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

fn duration(text: &str) -> Result<Duration, String> {
    replicator::config::settings::parse_duration(text)
        .ok_or_else(|| format!("\"{text}\" is not a duration such as 30, 30s, 5m or 1h"))
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1: with 0 nothing would ever run".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("\"{text}\" is not a whole number")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Run { .. } => "info",
        _ => "warn",
    };
    replicator::telemetry::init_with(
        cli.log_format.map(|f| match f {
            LogFormatArg::Text => replicator::telemetry::LogFormat::Text,
            LogFormatArg::Json => replicator::telemetry::LogFormat::Json,
        }),
        level,
    );
    let result = match cli.command {
        Command::Run {
            exit_when_idle,
            concurrency,
            metrics_addr,
        } => run(exit_when_idle, concurrency, metrics_addr).await,
        Command::Config {
            command:
                ConfigCommand::Check {
                    path,
                    bucket,
                    online,
                    output,
                },
        } => return config_check::check(path, bucket, online, output).await,
        Command::Dlq { command } => dlq::dlq(command).await,
        Command::Status {
            watch,
            metrics,
            cloudwatch,
            output,
        } => status::status(watch, metrics, cloudwatch, output).await,
        Command::Verify {
            scope,
            repair,
            output,
        } => match verify::verify(scope.scope(), repair, output).await {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Backfill {
            command:
                Some(BackfillCommand::Status {
                    id,
                    report,
                    wait,
                    output,
                }),
            ..
        } => backfill::status(id, report, wait, output).await,
        Command::Backfill {
            command: None,
            start,
        } => {
            let scope = replicator::operator::backfill::Scope {
                modified_after: start.modified_after,
                modified_before: start.modified_before,
                split: start.split,
                ..start.scope.scope()
            };
            backfill::backfill(
                scope,
                start.inventory,
                start.report,
                start.dry_run,
                start.output,
            )
            .await
        }
        Command::Setup {
            command:
                SetupCommand::Queues {
                    name,
                    bucket,
                    max_receive_count,
                    output,
                },
        } => setup_queues(&name, bucket, max_receive_count, output).await,
        Command::Setup {
            command:
                SetupCommand::Notifications {
                    bucket,
                    queue_arn,
                    function_arn,
                    events,
                    dry_run,
                    skip_destination_validation,
                    output,
                },
        } => {
            use replicator::events::notifications::Target;
            let target = match (queue_arn, function_arn) {
                (Some(queue), _) => Some(Target::Queue(queue)),
                (None, Some(function)) => Some(Target::Function(function)),
                (None, None) => None,
            };
            match target {
                Some(target) => {
                    let skip = skip_destination_validation;
                    setup_notifications(&bucket, &target, &events, dry_run, skip, output).await
                }
                None => Err(anyhow::anyhow!("give --queue-arn or --function-arn")),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3-replicator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    exit_when_idle: Option<Duration>,
    concurrency: usize,
    metrics_addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    if let Some(addr) = metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("serving metrics on {addr}"))?;
    }
    let process = Process::from_env(None).await?;
    let work_queue_url = process.queues.require_work()?.to_string();
    Worker::check_queues(&process.sqs, &process.queues.named())
        .await
        .context("a queue the worker needs does not answer")?;
    let ingest = match &process.queues.events {
        Some(url) => Some((Arc::new(process.ingest().await?), url.clone())),
        None => None,
    };
    let retry = match &process.queues.retry {
        Some(url) => Some((Arc::new(process.retrier()?), url.clone())),
        None => None,
    };
    if let Some((retrier, _)) = retry.clone().filter(|(r, _)| r.failed.is_some()) {
        // As the deployed retry function: at start and then hourly, so a parked job
        // reaches the archive before SQS drops it.
        tokio::spawn(async move {
            loop {
                let _ = retrier.sweep(None).await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        });
    }
    let mut replicator = process.replicator().await?;
    replicator.concurrency = concurrency;
    let replicator = Arc::new(replicator);
    let worker = Arc::new(Worker {
        sqs: process.sqs.clone(),
        ingest,
        replicator: replicator.clone(),
        work_queue_url,
        retry,
        // Long polls keep an idle worker to about three receives a minute per queue;
        // with --exit-when-idle, short enough to notice idleness in time.
        wait: exit_when_idle
            .map(|idle| (idle / 2).clamp(Duration::from_secs(1), Duration::from_secs(20)))
            .unwrap_or(Duration::from_secs(20)),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        // Long copies pause after the parts under way and go back to the work queue
        // with their upload, as at a Lambda deadline; nothing new is received.
        replicator
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = stop_tx.send(true);
        tracing::info!(jobs_in_hand = replicator.in_hand(),
            "stopping: finishing the jobs in hand, pausing multipart copies; press Ctrl-C again to stop at once");
        shutdown_signal().await;
        tracing::warn!(
            jobs_in_hand = replicator.in_hand(),
            "stopped at once; the jobs in hand come back when their messages become visible again"
        );
        std::process::exit(130);
    });
    tracing::info!(events_queue = process.queues.events.as_deref().unwrap_or("-"), work_queue = %worker.work_queue_url,
        retry_queue = process.queues.retry.as_deref().unwrap_or("-"), "worker started");
    // A line a minute of what was done in it, and the totals at the end.
    let summary = tokio::spawn(async move {
        let mut before = replicator::metrics::TOTALS.read();
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let now = replicator::metrics::TOTALS.read();
            tracing::info!(
                replicated = now.0 - before.0,
                bytes = now.1 - before.1,
                skipped = now.2 - before.2,
                failed = now.3 - before.3,
                failed_attempts = now.4 - before.4,
                retries = now.5 - before.5,
                "the last minute"
            );
            before = now;
        }
    });
    let ran = worker.run(exit_when_idle, stop_rx).await;
    summary.abort();
    let t = replicator::metrics::TOTALS.read();
    tracing::info!(
        replicated = t.0,
        bytes = t.1,
        skipped = t.2,
        failed = t.3,
        failed_attempts = t.4,
        retries = t.5,
        "worker finished"
    );
    ran.context("worker stopped")?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

async fn setup_queues(
    name: &str,
    buckets: Vec<String>,
    max_receives: u32,
    output: Output,
) -> anyhow::Result<()> {
    let sdk = replicator::config::clients::load_sdk_config().await;
    let buckets = match buckets.is_empty() {
        false => buckets,
        true => {
            let source = replicator::config::source::ConfigSource::from_env()
                .context("name the source buckets with --bucket, or set REPLICATOR_CONFIG")?;
            let config = source
                .load(&replicator::config::clients::source_s3(&sdk, None))
                .await?;
            config.sources.iter().map(|s| s.bucket.clone()).collect()
        }
    };
    let sqs = replicator::config::clients::sqs(&sdk);
    let set = replicator::queues::setup::create(&sqs, name, &buckets, max_receives).await?;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&set)?),
        Output::Table => {
            outln!("export EVENTS_QUEUE_URL={}", set.events.url);
            outln!("export WORK_QUEUE_URL={}", set.work.url);
            outln!("export RETRY_QUEUE_URL={}", set.retry.url);
            outln!("export FAILED_QUEUE_URL={}", set.failed.url);
            outln!(
                "# then: s3-replicator setup notifications --bucket BUCKET --queue-arn {}",
                set.events.arn
            );
        }
    }
    Ok(())
}

async fn setup_notifications(
    buckets: &[String],
    target: &replicator::events::notifications::Target,
    events: &[String],
    dry_run: bool,
    skip_validation: bool,
    output: Output,
) -> anyhow::Result<()> {
    use replicator::events::notifications as n;
    let sdk = replicator::config::clients::load_sdk_config().await;
    let s3 = replicator::config::clients::source_s3(&sdk, None);
    let mut done = Vec::new();
    for bucket in buckets {
        n::same_region(&s3, bucket, target).await?;
        let plan = n::plan(&s3, bucket, n::our_entry(target, events))
            .await
            .with_context(|| format!("reading the notification configuration of {bucket}"))?;
        if dry_run {
            outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "Bucket": bucket,
                    "Changes": plan.changed,
                    "NotificationConfiguration": n::to_json(&plan.merged),
                }))?
            );
            continue;
        }
        n::apply(&s3, bucket, &plan, skip_validation)
            .await
            .with_context(|| format!("writing the notification configuration of {bucket}"))?;
        let kept = plan
            .current
            .queue_configurations()
            .iter()
            .filter(|q| q.id() != Some(n::NOTIFICATION_ID))
            .count()
            + plan.current.topic_configurations().len()
            + plan
                .current
                .lambda_function_configurations()
                .iter()
                .filter(|f| f.id() != Some(n::NOTIFICATION_ID))
                .count()
            + usize::from(plan.current.event_bridge_configuration().is_some());
        match (output, plan.changed) {
            (Output::Json, changed) => done.push(serde_json::json!({
                "bucket": bucket, "changed": changed, "target": target.arn(), "other_settings_kept": kept,
            })),
            (Output::Table, true) => outln!(
                "{bucket}: events now go to {} ({kept} other notification setting(s) kept)",
                target.arn()
            ),
            (Output::Table, false) => outln!("{bucket}: already configured; nothing changed"),
        }
    }
    if let (Output::Json, false) = (output, dry_run) {
        outln!("{}", serde_json::to_string_pretty(&done)?);
    }
    Ok(())
}
