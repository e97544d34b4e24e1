//! Lambda's partial batch response for SQS triggers: only the listed messages are
//! delivered again.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};

pub fn item_failure(message_id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id;
    failure
}

/// A response asking for these messages again, and no others.
pub fn retry_these(message_ids: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response
        .batch_item_failures
        .extend(message_ids.into_iter().map(item_failure));
    response
}
