//! List tasks: a backfill's work on the work queue. Each task lists one page of a
//! source bucket (or reads rows of an S3 Inventory file), makes the page's jobs, and
//! sends on what remains; the backfill's record is written as they go. The replicate
//! handler and the worker run them beside jobs; `operator::backfill` only starts them
//! and reads the record.
//!
//! - [`task`]: the task message
//! - [`list`]: one page, and which of its objects make jobs
//! - [`run`]: a task run from its page to its record
//! - [`inventory`]: a task's rows of an inventory file
//! - [`record`]: the backfill's record (`backfill.json`, pages, results)

pub mod csv;
pub mod inventory;
pub mod list;
pub mod record;
pub mod run;
pub mod task;

pub use task::{ListTask, WorkItem};
