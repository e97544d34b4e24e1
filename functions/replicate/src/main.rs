//! Lambda: batches of jobs from the work queue in, partial batch failures out.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use replicator::bootstrap::{or_exit, Process};

#[tokio::main]
async fn main() -> Result<(), Error> {
    replicator::telemetry::init();
    let metrics = replicator::metrics::install_emf();
    let replicator = Arc::new(or_exit(
        or_exit(Process::from_env(None).await).replicator().await,
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let replicator = replicator.clone();
        async move {
            let result = replicator.handle(event).await;
            replicator::metrics::flush_emf(metrics);
            result
        }
    }))
    .await
}
