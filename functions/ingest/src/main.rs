//! Lambda: S3 notifications (direct, SQS, SNS or EventBridge) in, jobs out.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use replicator::bootstrap::{or_exit, Process};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    replicator::telemetry::init();
    let ingest = Arc::new(or_exit(
        or_exit(Process::from_env(None).await).ingest().await,
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let ingest = ingest.clone();
        async move { ingest.handle(event).await }
    }))
    .await
}
