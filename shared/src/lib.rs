//! s3-replicator's library: everything the Lambdas and the CLI share.
//!
//! - [`config`]: the configuration document and its checks
//! - [`events`]: S3 notifications in any envelope, decoded
//! - [`rules`]: which rules apply to an event
//! - [`job`]: the job message on the work queue
//! - [`ingest`], [`replicate`]: the handlers
//! - [`copy`], [`multipart`], [`verify`]: the copy engine, its multipart copies
//!   (which continue across invocations), and the check of what was written
//! - [`secrets`]: destination credentials from AWS Secrets Manager
//! - [`ordering`], [`provenance`], [`overlap`]: sequencers, what a replica records of its
//!   source, and which keys this process just wrote
//! - [`backfill`]: replicating what exists already, as list tasks on the work queue
//! - [`drift`]: the drift report, sources and destinations listed side by side
//! - [`worker`]: the long-lived poller behind `s3-replicator run`
//! - [`retry`], [`parking`], [`dlq`]: retries with backoff, the failed queue, and the
//!   operator's view of parked jobs in that queue and in the archive that keeps them
//!   past SQS's retention

pub mod backfill;
pub mod backlog;
pub mod batch;
pub mod bootstrap;
pub mod clients;
pub mod config;
pub mod copy;
pub mod dlq;
pub mod drift;
pub mod errors;
pub mod events;
pub mod ingest;
pub mod job;
pub mod lease;
pub mod metrics;
pub mod multipart;
pub mod notifications;
pub mod ordering;
pub mod overlap;
pub mod parking;
pub mod provenance;
pub mod queue_setup;
pub mod recent;
pub mod replicate;
pub mod retry;
pub mod rules;
pub mod secrets;
pub mod settings;
pub mod storage_class;
pub mod telemetry;
pub mod verify;
pub mod worker;
