//! s3-replicator's library: everything the Lambdas and the CLI share, one module per
//! stage of the pipeline. A stage uses only the stages listed before it
//! (`doc/DEVELOPMENT.md` draws them; `shared/tests/layout.rs` holds the code to it).
//!
//! - [`errors`], [`metrics`], [`telemetry`]: what every stage shares
//! - [`config`]: the configuration document and its checks, the environment, and the
//!   clients and secrets a process builds from them at cold start
//! - [`events`]: S3 notifications in any envelope, decoded; bucket notification wiring
//! - [`queues`]: the job message, parking, leases and batches; the failed queue
//! - [`copy`]: the copy engine, its multipart copies (which continue across
//!   invocations), the conditions replica writes carry, provenance, and the check of
//!   what was written
//! - [`ingest`]: the ingest handler, and which rules apply to an event
//! - [`listing`]: a backfill's list tasks and its record
//! - [`replicate`]: the replicate handler, by operation (puts, deletes, tag and ACL
//!   changes, list tasks), and how each outcome is settled
//! - [`retry`]: the retry handler
//! - [`worker`]: `s3-replicator run`, every handler in one long-lived process
//! - [`operator`]: backfill, the drift report, and `status`'s recent metrics
//! - [`bootstrap`]: what a process builds at cold start, from the environment

pub mod errors;
pub mod metrics;
pub mod telemetry;

pub mod config;
pub mod events;
pub mod queues;

pub mod copy;

pub mod ingest;
pub mod listing;
pub mod replicate;
pub mod retry;

pub mod operator;
pub mod worker;

pub mod bootstrap;
