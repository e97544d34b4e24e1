//! s3-replicator's library: everything the Lambdas and the CLI share, one folder per
//! stage of the pipeline.
//!
//! - [`config`]: the configuration document and its checks, the environment, and the
//!   clients and secrets a process builds from them at cold start
//! - [`events`]: S3 notifications in any envelope, decoded; bucket notification wiring
//! - [`ingest`]: the ingest handler, and which rules apply to an event
//! - [`replicate`]: the replicate handler, by operation (puts, deletes, tag and ACL
//!   changes, a backfill's list tasks), with ordering by sequencer, the provenance a
//!   replica records, and which keys this process just wrote
//! - [`copy`]: the copy engine, its multipart copies (which continue across
//!   invocations), and the check of what was written
//! - [`queues`]: the job message, the worker, retries, the failed queue and `dlq`
//! - [`operator`]: backfill, the drift report, and `status`'s recent metrics
//! - [`errors`], [`metrics`], [`telemetry`]: what every stage shares

pub mod config;
pub mod copy;
pub mod errors;
pub mod events;
pub mod ingest;
pub mod metrics;
pub mod operator;
pub mod queues;
pub mod replicate;
pub mod telemetry;
