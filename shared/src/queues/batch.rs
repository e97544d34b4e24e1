//! What a Lambda invocation gives and asks: the partial batch response of SQS triggers
//! (only the listed messages are delivered again), and the invocation's deadline.

use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};

/// The moment `reserve` before an invocation's deadline (milliseconds since the epoch,
/// as the Context gives it; 0 when unknown, as in a hand-made context: no deadline).
pub fn before_deadline(deadline_ms: u64, reserve: Duration) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Some(Instant::now() + left.saturating_sub(reserve))
}

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
