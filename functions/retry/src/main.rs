//! Lambda: the retry queue (the work queue's DLQ) in; jobs back to the work queue with
//! backoff, or to the failed queue with their reason. On an hourly schedule, it also
//! moves parked jobs that have waited long to the archive.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use replicator::bootstrap::{or_exit, Process};
use replicator::retry::RetryInput;

#[tokio::main]
async fn main() -> Result<(), Error> {
    replicator::telemetry::init();
    let retrier = Arc::new(or_exit(or_exit(Process::from_env(None).await).retrier()));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RetryInput>| {
        let retrier = retrier.clone();
        async move { retrier.invoke(event).await }
    }))
    .await
}
