//! `s3-replicator dlq`: the operator's view of parked jobs, in the failed queue and
//! its archive: list, show, redrive, purge and archive, each narrowed by reason,
//! destination, source bucket or rule.

use clap::Subcommand;
use replicator::config::settings::{ArchiveSettings, Queues};
use replicator::queues::dlq::{Archive, Failed, FailedQueue, Parked};

use crate::Output;

/// Which parked jobs a command acts on: all of the given conditions hold.
#[derive(clap::Args, Clone, Default)]
pub struct Filter {
    /// Only jobs that failed for this reason (e.g. DstBucketNotFound).
    #[arg(long, value_parser = known_reason)]
    reason: Option<String>,
    /// Only jobs to this destination bucket.
    #[arg(long, value_name = "BUCKET")]
    destination: Option<String>,
    /// Only jobs from this source bucket.
    #[arg(long)]
    bucket: Option<String>,
    /// Only jobs of this rule (its ID).
    #[arg(long, value_name = "ID")]
    rule: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.reason.is_none()
            && self.destination.is_none()
            && self.bucket.is_none()
            && self.rule.is_none()
    }

    fn matches(&self, p: &Parked) -> bool {
        let is = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        is(&self.reason, Some(p.reason.as_str()))
            && is(&self.destination, p.destination.as_deref())
            && is(&self.bucket, p.bucket.as_deref())
            && is(&self.rule, p.job.as_ref().map(|j| j.rule_id.as_str()))
    }

    /// " with reason X, to destination Y", for messages.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (label, value) in [
            ("reason", &self.reason),
            ("to destination", &self.destination),
            ("from bucket", &self.bucket),
            ("of rule", &self.rule),
        ] {
            if let Some(v) = value {
                parts.push(format!("{label} {v}"));
            }
        }
        match parts.is_empty() {
            true => String::new(),
            false => format!(" {}", parts.join(", ")),
        }
    }
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Every failed job: reason, key, destination, attempts, age. Consumes nothing.
    List {
        #[command(flatten)]
        filter: Filter,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// One failed message in full (JSON).
    Show {
        /// Its id, or enough of its start to name one message.
        id: String,
    },
    /// Send failed jobs back to the work queue (WORK_QUEUE_URL) with attempts reset.
    Redrive {
        #[command(flatten)]
        filter: Filter,
        /// Every job, whatever its reason.
        #[arg(long, conflicts_with_all = ["reason", "destination", "bucket", "rule"])]
        all: bool,
        /// List what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Delete failed messages for good (at least one condition says which).
    Purge {
        #[command(flatten)]
        filter: Filter,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Move jobs parked longer than FAILED_ARCHIVE_AFTER (default 7d) to the archive
    /// (FAILED_ARCHIVE_URL) now; the deployed retry function does this hourly.
    Archive,
}

/// A failure reason `dlq` knows (they are the `reason` of `dlq list`).
fn known_reason(text: &str) -> Result<String, String> {
    use replicator::errors::FailureReason;
    match serde_json::from_value::<FailureReason>(serde_json::Value::String(text.into())) {
        Ok(reason) => Ok(reason.as_str().to_string()),
        Err(_) => Err(format!(
            "unknown reason; one of: {}",
            FailureReason::ALL
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

pub async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    let queues = Queues::from_env();
    let archive = ArchiveSettings::from_env()?;
    let sdk = replicator::config::clients::load_sdk_config().await;
    let failed = Failed {
        queue: FailedQueue {
            sqs: replicator::config::clients::sqs(&sdk),
            url: queues.require_failed()?.to_string(),
        },
        archive: archive.map(|settings| Archive {
            s3: replicator::config::clients::source_s3(&sdk, None),
            settings,
        }),
    };
    // Everything that can be refused is refused before the scan hides the queue.
    match &command {
        DlqCommand::Redrive { filter, all, .. } => {
            if filter.is_empty() && !all {
                anyhow::bail!(
                    "say which jobs: --reason, --destination, --bucket or --rule, or --all"
                );
            }
            queues.require_work()?;
        }
        DlqCommand::Purge { filter, .. } if filter.is_empty() => {
            anyhow::bail!("say which messages: --reason, --destination, --bucket or --rule");
        }
        _ => {}
    }
    if let DlqCommand::Archive = command {
        let Some(archive) = &failed.archive else {
            anyhow::bail!(
                "{} is not set: name the archive, s3://BUCKET/PREFIX",
                replicator::config::settings::FAILED_ARCHIVE_VAR
            );
        };
        let swept = failed.sweep(None).await?;
        crate::outln!(
            "archived {} job(s) parked {} or longer to {}; {} younger stay in the failed queue",
            swept.archived,
            human(archive.settings.after.as_secs()),
            archive.settings.url(),
            swept.kept
        );
        return Ok(());
    }
    let all = failed.scan().await?;
    let matching = |filter: &Filter| -> Vec<Parked> {
        all.iter().filter(|p| filter.matches(p)).cloned().collect()
    };
    match command {
        DlqCommand::List { filter, output } => {
            failed.release(&all).await?;
            let shown = matching(&filter);
            let oldest = shown.iter().map(|p| p.age_seconds).max().unwrap_or(0);
            let elsewhere = failed.in_flight().await?;
            match output {
                Output::Json => crate::outln!("{}", serde_json::to_string_pretty(&shown)?),
                Output::Table => print_parked(&shown),
            }
            eprintln!(
                "{} failed message(s){}; oldest first failed {} ago",
                shown.len(),
                filter.describe(),
                human(oldest)
            );
            if elsewhere > 0 {
                eprintln!("{elsewhere} more held elsewhere right now (a redrive or another listing in progress), not listed");
            }
        }
        DlqCommand::Show { id } => {
            failed.release(&all).await?;
            let matching: Vec<&Parked> = all.iter().filter(|p| p.id.starts_with(&id)).collect();
            let p = match matching[..] {
                [p] => p,
                [] => anyhow::bail!("no message {id} in the failed queue or the archive"),
                _ => anyhow::bail!(
                    "{} messages start with {id}; give more of the id",
                    matching.len()
                ),
            };
            let body: serde_json::Value = serde_json::from_str(&p.body)
                .unwrap_or_else(|_| serde_json::Value::String(p.body.clone()));
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"summary": p, "message": body}))?
            );
        }
        DlqCommand::Redrive {
            filter,
            dry_run: true,
            output,
            ..
        } => {
            failed.release(&all).await?;
            let chosen: Vec<Parked> = matching(&filter)
                .into_iter()
                .filter(|p| p.job.is_some())
                .collect();
            match output {
                Output::Json => crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"dry_run": true, "would_redrive": chosen})
                    )?
                ),
                Output::Table => {
                    print_parked(&chosen);
                    crate::outln!(
                        "would redrive {} job(s); sent nothing (--dry-run)",
                        chosen.len()
                    );
                }
            }
        }
        DlqCommand::Redrive { filter, output, .. } => {
            let chosen = matching(&filter);
            let work = queues.require_work()?;
            let sent = failed.redrive(&chosen, work).await;
            failed.release(&all).await?;
            let sent = sent?;
            let left = chosen.iter().filter(|p| p.job.is_none()).count();
            match output {
                Output::Json => crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"redriven": sent, "not_jobs": left})
                    )?
                ),
                Output::Table => {
                    crate::outln!("redrove {sent} job(s) to the work queue");
                    if left > 0 {
                        crate::outln!("{left} message(s) are not jobs (unparsable bodies or notifications) and stay; see `dlq show ID`");
                    }
                }
            }
        }
        DlqCommand::Purge {
            filter,
            yes,
            output,
        } => {
            let chosen = matching(&filter);
            let which = filter.describe();
            if chosen.is_empty() {
                failed.release(&all).await?;
                match output {
                    Output::Json => crate::outln!("{}", serde_json::json!({"deleted": 0})),
                    Output::Table => crate::outln!("nothing to purge{which}"),
                }
                return Ok(());
            }
            if !yes
                && !confirm(&format!(
                    "delete {} failed message(s){which} for good?",
                    chosen.len()
                ))
            {
                failed.release(&all).await?;
                anyhow::bail!("not confirmed; nothing deleted (pass --yes when not at a terminal)");
            }
            let deleted = failed.delete(&chosen).await;
            failed.release(&all).await?;
            deleted?;
            match output {
                Output::Json => crate::outln!("{}", serde_json::json!({"deleted": chosen.len()})),
                Output::Table => crate::outln!("deleted {} message(s)", chosen.len()),
            }
        }
        DlqCommand::Archive => unreachable!("answered before the scan"),
    }
    Ok(())
}

fn confirm(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    print!("{question} type yes: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == "yes"
}

fn print_parked(parked: &[Parked]) {
    crate::outln!(
        "{:<38} {:<26} {:<6} {:>8} {:>9} {:<13}  {:<24} KEY",
        "ID",
        "REASON",
        "OP",
        "ATTEMPTS",
        "AGE",
        "STORED",
        "DESTINATION"
    );
    for p in parked {
        crate::outln!(
            "{:<38} {:<26} {:<6} {:>8} {:>9} {:<13}  {:<24} {}",
            p.id,
            p.reason,
            p.op.as_deref().unwrap_or("-"),
            p.attempts,
            human(p.age_seconds),
            p.stored.join("+"),
            p.destination.as_deref().unwrap_or("-"),
            p.key
                .as_deref()
                .map(|k| format!("{}/{}", p.bucket.as_deref().unwrap_or(""), k))
                .unwrap_or_else(|| format!("({})", p.kind)),
        );
    }
}

fn human(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
