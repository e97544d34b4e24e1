//! `s3-replicator`: the operator's command. `run` is the long-lived worker (the same
//! handlers the Lambdas run); `config check` explains a configuration document.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use replicator::bootstrap::Process;
use replicator::config::Config;
use replicator::errors::ConfigError;
use replicator::settings::{ConfigSource, CONFIG_VAR};
use replicator::worker::Worker;

#[derive(Parser)]
#[command(
    name = "s3-replicator",
    version,
    about = "Event-driven S3 replication: worker and operator tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Poll the events and work queues and replicate, as the Lambdas would.
    Run {
        /// Stop once every queue has been empty this many seconds.
        #[arg(long, value_name = "SECONDS")]
        exit_when_idle: Option<u64>,
        /// Jobs of one batch replicated at once.
        #[arg(long, default_value_t = replicator::replicate::DEFAULT_CONCURRENCY)]
        concurrency: usize,
    },
    /// Inspect the configuration document.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every problem with its JSON path; exit 1 if there is any.
    Check {
        /// A file to check; without it, what REPLICATOR_CONFIG points to.
        path: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            exit_when_idle,
            concurrency,
        } => run(exit_when_idle.map(Duration::from_secs), concurrency).await,
        Command::Config {
            command: ConfigCommand::Check { path },
        } => return check(path).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3-replicator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(exit_when_idle: Option<Duration>, concurrency: usize) -> anyhow::Result<()> {
    replicator::telemetry::init();
    let process = Process::from_env(None).await?;
    let work_queue_url = process.queues.require_work()?.to_string();
    let ingest = match &process.queues.events {
        Some(url) => Some((Arc::new(process.ingest()?), url.clone())),
        None => None,
    };
    let mut replicator = process.replicator();
    replicator.concurrency = concurrency;
    let worker = Arc::new(Worker {
        sqs: process.sqs.clone(),
        ingest,
        replicator: Arc::new(replicator),
        work_queue_url,
        wait: Duration::from_secs(1),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping after the batches in hand");
        let _ = stop_tx.send(true);
    });
    tracing::info!(events_queue = ?process.queues.events, work_queue = %worker.work_queue_url, "worker started");
    worker
        .run(exit_when_idle, stop_rx)
        .await
        .context("worker stopped")?;
    tracing::info!("worker finished");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

async fn check(path: Option<String>) -> ExitCode {
    let loaded: Result<Config, ConfigError> = match path {
        Some(path) => std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::Load {
                location: path.clone(),
                reason: e.to_string(),
            })
            .and_then(|text| Config::parse(&text)),
        None => match ConfigSource::from_env() {
            Ok(source) => {
                let sdk = replicator::clients::load_sdk_config().await;
                source
                    .load(&replicator::clients::source_s3(&sdk, None))
                    .await
            }
            Err(e) => Err(e),
        },
    };
    match loaded {
        Ok(config) => {
            print_summary(&config);
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid { problems }) => {
            for p in &problems {
                println!("{p}");
            }
            eprintln!("{} problem(s) found", problems.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("s3-replicator: {e}");
            if matches!(e, ConfigError::Environment { .. }) {
                eprintln!("(pass a PATH, or set {CONFIG_VAR})");
            }
            ExitCode::FAILURE
        }
    }
}

fn print_summary(config: &Config) {
    println!(
        "configuration is valid: {} source bucket(s)",
        config.sources.len()
    );
    for source in &config.sources {
        println!("  {}", source.bucket);
        for rule in &source.rules {
            let d = &rule.destination;
            let tags: Vec<String> = rule
                .filter
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "    {:<24} {:<8} priority {:<4} prefix {:?}{} -> {}{} class {} deletes {} acl {:?}",
                rule.id,
                if rule.enabled { "enabled" } else { "DISABLED" },
                rule.priority.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                rule.filter.prefix,
                if tags.is_empty() { String::new() } else { format!(" tags {}", tags.join(",")) },
                d.bucket,
                d.endpoint.endpoint_url.as_deref().map(|u| format!(" at {u}")).unwrap_or_default(),
                d.storage_class.as_deref().unwrap_or("as source"),
                d.delete_mode,
                d.acl_mode,
            );
        }
    }
}
