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
    let metrics = replicator::metrics::install_emf();
    let retrier = Arc::new(or_exit(or_exit(Process::from_env(None).await).retrier()));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RetryInput>| {
        let retrier = retrier.clone();
        async move {
            let result = retrier.invoke(event).await;
            replicator::metrics::flush_emf(metrics);
            result
        }
    }))
    .await
}
