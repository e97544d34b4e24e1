//! What every process builds once at cold start, from the environment: the SDK
//! configuration, the clients, the configuration document, the queue URLs. The Lambdas
//! and `s3-replicator run` share it so they read the same variables.

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::config::clients::{self, RequestLog, S3Clients};
use crate::config::keys::Signer;
use crate::config::settings::{ArchiveSettings, Queues};
use crate::config::source::ConfigSource;
use crate::config::Config;
use crate::errors::ConfigError;
use crate::ingest::Ingest;
use crate::queues::dlq::{Archive, Failed, FailedQueue};
use crate::queues::lease::Lease;
use crate::queues::parking::Parking;
use crate::replicate::Replicator;
use crate::retry::{Retrier, RetryPolicy};

/// The value of a start-up step, or the end of a process that cannot start: one
/// readable error line (the configuration's path, the destination's name), then exit
/// status 1, which Lambda reports as the init error.
pub fn or_exit<T>(result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot start");
        std::process::exit(1)
    })
}

pub struct Process {
    pub config: Arc<Config>,
    sdk: SdkConfig,
    log: Option<RequestLog>,
    /// The source side's client (sources, and destinations on the same endpoint).
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub queues: Queues,
    /// Read at first need: only ingest and the replicator sign and check.
    signer: tokio::sync::OnceCell<Signer>,
}

impl Process {
    /// Reads the environment and loads the configuration (REPLICATOR_CONFIG).
    /// Destination clients and their credentials are not built here: only the
    /// replicator writes to destinations, and only its role may read their secrets.
    pub async fn from_env(log: Option<&RequestLog>) -> Result<Process, ConfigError> {
        crate::copy::multipart::return_freed_part_buffers();
        let sdk = clients::load_sdk_config().await;
        if sdk.region().is_none() {
            return Err(ConfigError::Environment {
                name: "AWS_REGION",
                reason: "is not set, and no profile names a region: S3 and SQS cannot be reached without one".into(),
            });
        }
        let source = clients::source_s3(&sdk, log);
        let config = ConfigSource::from_env()?.load(&source).await?;
        Ok(Process {
            config: Arc::new(config),
            sqs: clients::sqs(&sdk),
            s3: source,
            sdk,
            log: log.cloned(),
            queues: Queues::from_env(),
            signer: tokio::sync::OnceCell::new(),
        })
    }

    /// The signing key the environment names (see [`crate::config::keys`]), read once.
    pub async fn signer(&self) -> Result<Signer, ConfigError> {
        self.signer
            .get_or_try_init(|| Signer::from_env(&self.sdk))
            .await
            .cloned()
    }

    pub async fn ingest(&self) -> Result<Ingest, ConfigError> {
        Ok(Ingest {
            config: self.config.clone(),
            s3: self.s3.clone(),
            sqs: self.sqs.clone(),
            work_queue_url: self.queues.require_work()?.to_string(),
            failed_queue_url: self.queues.failed.clone(),
            signer: self.signer().await?,
        })
    }

    /// The replicate handler: builds the destination clients (reading their secrets
    /// or profiles; a missing one fails here, naming the destination) and reads the
    /// work queue's visibility timeout once, so long jobs can extend their lease.
    pub async fn replicator(&self) -> Result<Replicator, ConfigError> {
        let s3 = self.s3_clients().await?;
        let mut replicator = Replicator::new(
            self.config.clone(),
            s3,
            self.sqs.clone(),
            self.queues.failed.clone(),
        );
        replicator.retry_queue_url = self.queues.retry.clone();
        replicator.work_queue_url = Some(self.queues.require_work()?.to_string());
        replicator.lease = Lease::for_queue(&self.sqs, self.queues.require_work()?).await;
        replicator.own_principals = crate::config::settings::own_principals();
        replicator.signer = self.signer().await?;
        replicator.report_location = std::env::var(crate::config::settings::BACKFILL_REPORT_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty());
        Ok(replicator)
    }

    /// A client per endpoint the configuration writes to (reading destinations'
    /// secrets or profiles), as the replicator builds them.
    pub async fn s3_clients(&self) -> Result<S3Clients, ConfigError> {
        S3Clients::build(&self.sdk, self.s3.clone(), &self.config, self.log.as_ref()).await
    }

    /// The failed queue with its archive, when one is configured (`FAILED_ARCHIVE_URL`).
    pub fn failed(&self) -> Result<Option<Failed>, ConfigError> {
        let Some(settings) = ArchiveSettings::from_env()? else {
            return Ok(None);
        };
        Ok(Some(Failed {
            queue: FailedQueue {
                sqs: self.sqs.clone(),
                url: self.queues.require_failed()?.to_string(),
            },
            archive: Some(Archive {
                s3: self.s3.clone(),
                settings,
            }),
        }))
    }

    pub fn retrier(&self) -> Result<Retrier, ConfigError> {
        Ok(Retrier {
            sqs: self.sqs.clone(),
            s3: self.s3.clone(),
            work_queue_url: self.queues.require_work()?.to_string(),
            parking: Parking {
                sqs: self.sqs.clone(),
                failed_queue_url: Some(self.queues.require_failed()?.to_string()),
            },
            policy: RetryPolicy::from_env()?,
            failed: self.failed()?,
        })
    }
}
