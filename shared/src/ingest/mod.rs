//! The ingest handler: notification in, one job per (object, destination) out on the
//! work queue. It never reads object bytes; it reads tags only when a rule filters on
//! them.

pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{stream, StreamExt};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::config::{Config, Rule};
use crate::copy::provenance::Provenance;
use crate::errors::is_not_found;
use crate::errors::{describe, EventError, FailureReason, QueueError, ReplicationError, S3Step};
use crate::events::{self, Change, Decoded, ObjectEvent};
use crate::queues::batch::item_failure;
use crate::queues::job::{Job, JobDestination, Operation};
use crate::queues::parking::{parked_raw, Parking};

/// Notifications of a batch whose jobs are made at once (each reads tags or HEADs at
/// most once per destination rule; a Lambda batch holds ten).
const PREPARED_AT_ONCE: usize = 10;

/// What ingest needs, built once per process.
#[derive(Clone, Debug)]
pub struct Ingest {
    pub config: Arc<Config>,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub work_queue_url: String,
    /// Malformed notifications are parked here with their reason, when set.
    pub failed_queue_url: Option<String>,
    /// Checks the provenance objects claim (only a replica this replicator made is
    /// held back from where it came from), and signs the jobs.
    pub signer: crate::config::keys::Signer,
}

/// Why one notification could not be ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Malformed(#[from] EventError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("reading tags of s3://{bucket}/{key}: {source}")]
    Tags {
        bucket: String,
        key: String,
        source: ReplicationError,
    },
    #[error("reading the provenance of s3://{bucket}/{key}: {source}")]
    Source {
        bucket: String,
        key: String,
        source: ReplicationError,
    },
}

impl IngestError {
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Malformed(_) => false,
            IngestError::Queue(e) => e.is_retryable(),
            IngestError::Tags { source, .. } | IngestError::Source { source, .. } => {
                source.is_retryable()
            }
        }
    }
}

/// What came of one notification.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct IngestSummary {
    pub events: usize,
    pub jobs: usize,
    pub ignored: usize,
}

impl Ingest {
    /// The Lambda entry point: an SQS batch (from the events queue) gets partial batch
    /// failures; anything else (S3 invoking directly, SNS, EventBridge) is one
    /// notification and fails as a whole so Lambda's retry applies.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
        let payload = event.payload;
        let is_sqs = payload
            .pointer("/Records/0/eventSource")
            .and_then(Value::as_str)
            == Some("aws:sqs");
        if is_sqs {
            let batch: SqsEvent = serde_json::from_value(payload)
                .map_err(|e| EventError::new("$", format!("SQS event: {e}")))?;
            let response = self.handle_sqs(batch).await;
            return Ok(serde_json::to_value(response)?);
        }
        let summary = self.ingest(&payload).await?;
        Ok(serde_json::to_value(summary)?)
    }

    /// Ingests a batch: the jobs of every notification are made at once (tag reads and
    /// HEADs overlap), then sent ten to a request across notifications (S3 sends one
    /// record per notification, so per-notification sends would be one job a request).
    /// Returns the ids to redeliver: a notification is reported failed unless every
    /// one of its jobs was sent, so none is lost; redelivering it may send its other
    /// jobs again, which replicate handles as any SQS duplicate.
    pub async fn handle_sqs(&self, batch: SqsEvent) -> SqsBatchResponse {
        let prepared: Vec<(String, String, Result<Vec<Job>, IngestError>)> =
            stream::iter(batch.records)
                .map(|message| async move {
                    let id = message.message_id.clone().unwrap_or_default();
                    let body = message.body.unwrap_or_default();
                    let decoded = match body.is_empty() {
                        true => Err(EventError::new("$", "message has no body")),
                        false => events::decode_text(&body),
                    };
                    let jobs = match decoded {
                        Ok(decoded) => self.prepare(decoded).await.map(|(jobs, _)| jobs),
                        Err(e) => Err(e.into()),
                    };
                    (id, body, jobs)
                })
                .buffered(PREPARED_AT_ONCE)
                .collect()
                .await;
        let owned: Vec<(usize, &Job)> = prepared
            .iter()
            .enumerate()
            .filter_map(|(i, (_, _, jobs))| jobs.as_ref().ok().map(|jobs| (i, jobs)))
            .flat_map(|(i, jobs)| jobs.iter().map(move |job| (i, job)))
            .collect();
        let mut unsent = self.send_owned(&owned).await;
        let mut response = SqsBatchResponse::default();
        for (i, (id, body, jobs)) in prepared.into_iter().enumerate() {
            let err = match jobs {
                Ok(_) => match unsent.remove(&i) {
                    Some(e) => IngestError::Queue(e),
                    None => continue,
                },
                Err(err) => err,
            };
            // Only a notification that can never be read is parked (as MalformedMessage,
            // which redrive refuses). A refused tag read or HEAD is the bucket's policy,
            // or a moment's trouble: SQS delivers it again, and the events queue's own
            // dead-letter queue keeps it, whole and redrivable, if that never helps.
            let malformed = matches!(err, IngestError::Malformed(_));
            if malformed && self.park(&body, &err).await {
                continue;
            }
            tracing::error!(message_id = %id, error = %err, retryable = err.is_retryable(), "notification not ingested");
            response.batch_item_failures.push(item_failure(id));
        }
        response
    }

    /// Ingests one notification in any envelope.
    pub async fn ingest(&self, payload: &Value) -> Result<IngestSummary, IngestError> {
        let decoded = events::decode(payload)?;
        self.ingest_decoded(decoded).await
    }

    async fn ingest_decoded(&self, decoded: Decoded) -> Result<IngestSummary, IngestError> {
        let (jobs, summary) = self.prepare(decoded).await?;
        self.send(&jobs).await?;
        Ok(summary)
    }

    /// The jobs of one decoded notification, not yet sent.
    async fn prepare(&self, decoded: Decoded) -> Result<(Vec<Job>, IngestSummary), IngestError> {
        for ignored in &decoded.ignored {
            tracing::info!(event = %ignored.event_name, outcome = "ignored", reason = ignored.reason, "notification ignored");
        }
        let mut jobs = Vec::new();
        for event in &decoded.events {
            jobs.extend(self.jobs_for(event).await?);
        }
        let summary = IngestSummary {
            events: decoded.events.len(),
            jobs: jobs.len(),
            ignored: decoded.ignored.len(),
        };
        Ok((jobs, summary))
    }

    /// The jobs one event makes, one per destination whose winning rule applies.
    pub async fn jobs_for(&self, event: &ObjectEvent) -> Result<Vec<Job>, IngestError> {
        let Some(source) = self.config.source(&event.bucket) else {
            tracing::warn!(bucket = %event.bucket, key = %event.key, outcome = "skipped", reason = "BucketNotConfigured",
                "event for a bucket the configuration does not list");
            return Ok(Vec::new());
        };
        let candidates = rules::candidates(source, &event.key, event.change);
        let tags = if rules::needs_tags(&candidates) {
            self.tags(event).await?
        } else {
            Vec::new()
        };
        let winners = rules::select(&candidates, &tags, event.change);
        if winners.is_empty() {
            tracing::info!(bucket = %event.bucket, key = %event.key, event = %event.event_name, outcome = "skipped",
                reason = "NoRuleMatches", "no enabled rule replicates this event");
        }
        let winners = self.not_sent_back(event, winners).await?;
        let op = match event.change {
            Change::Created => Operation::Put,
            Change::DeleteMarker | Change::VersionDeleted => Operation::Delete,
            Change::TagsChanged => Operation::Tags,
            Change::AclChanged => Operation::Acl,
            Change::LockChanged => Operation::Lock,
        };
        Ok(winners
            .into_iter()
            .map(|rule| {
                let destination = JobDestination {
                    bucket: rule.destination.bucket.clone(),
                };
                let mut job = Job::from_event(event, op, &rule.id, destination);
                job.sign(&self.signer);
                job
            })
            .collect())
    }

    /// Drops the destinations an object came from. Only when some destination could
    /// hold replicas of this bucket (two-way or cyclic rules) is there anything to
    /// check, and then one HEAD reads the object's provenance: a replica goes on down
    /// a chain, never back where it came from. Tag changes on a replica do go back when
    /// that rule syncs replica modifications (the sync writes only a real change, so
    /// it settles). A deleted object cannot be read; its delete job removes only
    /// replicas a source made, so an original is never deleted in its place.
    async fn not_sent_back<'a>(
        &self,
        event: &ObjectEvent,
        winners: Vec<&'a Rule>,
    ) -> Result<Vec<&'a Rule>, IngestError> {
        let deleted = matches!(event.change, Change::DeleteMarker | Change::VersionDeleted);
        let may_loop = winners.iter().any(|w| {
            w.destination.is_same_endpoint()
                && self.config.reaches(&w.destination.bucket, &event.bucket)
        });
        if deleted || !may_loop {
            return Ok(winners);
        }
        let head = self
            .s3
            .head_object()
            .bucket(&event.bucket)
            .key(&event.key)
            .send()
            .await;
        let provenance = match head {
            Ok(head) => {
                let holder = crate::copy::provenance::Holder {
                    bucket: &event.bucket,
                    key: &event.key,
                };
                Provenance::read(head.metadata(), holder, &self.signer)
            }
            // Gone already: its job will find that out and say so.
            Err(e) if is_not_found(&e) => None,
            Err(e) => {
                return Err(IngestError::Source {
                    bucket: event.bucket.clone(),
                    key: event.key.clone(),
                    source: ReplicationError::from_sdk(S3Step::SourceHead, &e),
                })
            }
        };
        let Some(provenance) = provenance else {
            return Ok(winners);
        };
        Ok(winners
            .into_iter()
            .filter(|w| {
                let back = w.destination.is_same_endpoint() && provenance.came_from(&w.destination.bucket);
                let synced_back = event.change == Change::TagsChanged && w.replica_modifications;
                if back && !synced_back {
                    tracing::info!(bucket = %event.bucket, key = %event.key, destination = %w.destination.bucket,
                        rule = %w.id, event = %event.event_name, outcome = "skipped", reason = "ReplicaOfDestination",
                        "a replica is not sent back where it came from");
                }
                !back || synced_back
            })
            .collect())
    }

    /// The object's tags, for tag filters. A vanished object has none: its jobs will
    /// find it gone and say so.
    async fn tags(&self, event: &ObjectEvent) -> Result<Vec<(String, String)>, IngestError> {
        let result = self
            .s3
            .get_object_tagging()
            .bucket(&event.bucket)
            .key(&event.key)
            .set_version_id(event.version_id.clone())
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()),
            Err(err) => {
                let failure = ReplicationError::from_sdk(S3Step::SourceTagging, &err);
                if is_not_found(&err) {
                    return Ok(Vec::new());
                }
                Err(IngestError::Tags {
                    bucket: event.bucket.clone(),
                    key: event.key.clone(),
                    source: failure,
                })
            }
        }
    }

    /// SendMessageBatch, ten at a time, resending only the entries SQS refused.
    pub async fn send(&self, jobs: &[Job]) -> Result<(), QueueError> {
        self.send_bodies(jobs.iter().map(Job::to_body)).await
    }

    /// Any messages of the work queue (jobs, list tasks), as [`Ingest::send`] sends jobs.
    pub async fn send_bodies(
        &self,
        bodies: impl IntoIterator<Item = String>,
    ) -> Result<(), QueueError> {
        let owned: Vec<(usize, String)> = bodies.into_iter().map(|body| (0, body)).collect();
        for chunk in owned.chunks(10) {
            self.send_chunk(chunk).await.map_err(|(_, e)| e)?;
        }
        Ok(())
    }

    /// Sends jobs that belong to notifications (the `usize`), ten to a request,
    /// resending only the entries SQS refused. Returns the notifications with a job
    /// that was not sent, each with why.
    async fn send_owned(&self, jobs: &[(usize, &Job)]) -> HashMap<usize, QueueError> {
        let bodies: Vec<(usize, String)> = jobs
            .iter()
            .map(|(owner, job)| (*owner, job.to_body()))
            .collect();
        let mut unsent = HashMap::new();
        for chunk in bodies.chunks(10) {
            if let Err((failed, e)) = self.send_chunk(chunk).await {
                for owner in failed {
                    unsent.entry(owner).or_insert_with(|| e.clone());
                }
            }
        }
        unsent
    }

    /// One SendMessageBatch of at most ten, with up to three resends of the entries SQS
    /// refused for its own reasons. On failure: the owners of the entries not sent.
    async fn send_chunk(&self, chunk: &[(usize, String)]) -> Result<(), (Vec<usize>, QueueError)> {
        let mut pending: Vec<(String, usize, String)> = chunk
            .iter()
            .enumerate()
            .map(|(i, (owner, body))| (i.to_string(), *owner, body.clone()))
            .collect();
        let owners = |pending: &[(String, usize, String)]| pending.iter().map(|p| p.1).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let entries = pending
                .iter()
                .map(|(id, _, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(body)
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let out = match self
                .sqs
                .send_message_batch()
                .queue_url(&self.work_queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    let e = QueueError::Request {
                        operation: "SendMessageBatch",
                        queue: self.work_queue_url.clone(),
                        detail: describe(&e),
                    };
                    return Err((owners(&pending), e));
                }
            };
            let failed: Vec<_> = out.failed().to_vec();
            if failed.is_empty() {
                break;
            }
            pending.retain(|(id, _, _)| failed.iter().any(|f| f.id() == id));
            // Entries SQS blames on us will fail the same way again.
            let sender_fault = failed.iter().find(|f| f.sender_fault());
            if attempt >= 4 || sender_fault.is_some() {
                let f = sender_fault.unwrap_or(&failed[0]);
                let e = QueueError::EntriesRejected {
                    queue: self.work_queue_url.clone(),
                    count: failed.len(),
                    detail: format!("{}: {}", f.code(), f.message().unwrap_or("")),
                };
                return Err((owners(&pending), e));
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        Ok(())
    }

    /// Parks an unusable notification in the failed queue with its reason. Returns
    /// whether it was parked (else it is left for the queue's own redrive).
    async fn park(&self, body: &str, err: &IngestError) -> bool {
        let parking = Parking {
            sqs: self.sqs.clone(),
            failed_queue_url: self.failed_queue_url.clone(),
        };
        let reason = ReplicationError::new(FailureReason::MalformedMessage, err.to_string());
        let parked = parking
            .send(parked_raw("notification", body, &reason))
            .await;
        if parked {
            tracing::error!(outcome = "failed", reason = "MalformedMessage", error = %err, "notification parked in the failed queue");
        }
        parked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn ingest(sqs: aws_sdk_sqs::Client) -> Ingest {
        ingest_on(mock_client!(aws_sdk_s3, []), sqs)
    }

    fn ingest_on(s3: aws_sdk_s3::Client, sqs: aws_sdk_sqs::Client) -> Ingest {
        let config =
            Config::parse(include_str!("../../../tests/fixtures/config/matching.json")).unwrap();
        Ingest {
            config: Arc::new(config),
            s3,
            sqs,
            work_queue_url: "https://sqs.us-east-1.amazonaws.com/111122223333/work".into(),
            failed_queue_url: None,
            signer: crate::config::keys::Signer::unsigned(),
        }
    }

    fn jobs(n: usize) -> Vec<Job> {
        let text = include_str!("../../../tests/fixtures/jobs/put.json");
        (0..n)
            .map(|i| {
                let mut job = Job::parse(text).unwrap();
                job.source.key = format!("key-{i}");
                job
            })
            .collect()
    }

    fn failed(id: &str, sender_fault: bool) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .sender_fault(sender_fault)
            .code(if sender_fault {
                "InvalidParameterValue"
            } else {
                "InternalError"
            })
            .message("injected")
            .build()
            .unwrap()
    }

    fn ok(id: &str) -> SendMessageBatchResultEntry {
        SendMessageBatchResultEntry::builder()
            .id(id)
            .message_id(format!("m-{id}"))
            .md5_of_message_body("x")
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn only_the_entries_sqs_refused_are_sent_again() {
        // Twelve jobs: a batch of ten (entry 3 refused, then accepted) and one of two.
        let first = mock!(aws_sdk_sqs::Client::send_message_batch)
            .match_requests(|r| r.entries().len() == 10)
            .then_compute_output(|r| {
                SendMessageBatchOutput::builder()
                    .set_successful(Some(
                        r.entries()
                            .iter()
                            .filter(|e| e.id() != "3")
                            .map(|e| ok(e.id()))
                            .collect(),
                    ))
                    .set_failed(Some(vec![failed("3", false)]))
                    .build()
                    .unwrap()
            });
        let resend = mock!(aws_sdk_sqs::Client::send_message_batch)
            .match_requests(|r| {
                r.entries().len() == 1
                    && r.entries()[0].id() == "3"
                    && r.entries()[0].message_body().contains("key-3")
            })
            .then_output(|| {
                SendMessageBatchOutput::builder()
                    .successful(ok("3"))
                    .set_failed(Some(vec![]))
                    .build()
                    .unwrap()
            });
        let second_chunk = mock!(aws_sdk_sqs::Client::send_message_batch)
            .match_requests(|r| r.entries().len() == 2)
            .then_compute_output(|r| {
                SendMessageBatchOutput::builder()
                    .set_successful(Some(r.entries().iter().map(|e| ok(e.id())).collect()))
                    .set_failed(Some(vec![]))
                    .build()
                    .unwrap()
            });
        let sqs = mock_client!(
            aws_sdk_sqs,
            RuleMode::MatchAny,
            [&first, &resend, &second_chunk]
        );
        ingest(sqs).send(&jobs(12)).await.unwrap();
        assert_eq!(
            (
                first.num_calls(),
                resend.num_calls(),
                second_chunk.num_calls()
            ),
            (1, 1, 1)
        );
    }

    /// S3 sends one record per notification: a batch of twelve makes 24 jobs, sent in
    /// three requests (not twelve), and only the notification whose jobs SQS refused
    /// is redelivered.
    #[tokio::test]
    async fn a_batch_sends_its_jobs_together_and_redelivers_only_what_was_not_sent() {
        let send = mock!(aws_sdk_sqs::Client::send_message_batch).then_compute_output(|r| {
            let refused = |e: &&SendMessageBatchRequestEntry| e.message_body().contains("k05");
            SendMessageBatchOutput::builder()
                .set_successful(Some(
                    r.entries()
                        .iter()
                        .filter(|e| !refused(e))
                        .map(|e| ok(e.id()))
                        .collect(),
                ))
                .set_failed(Some(
                    r.entries()
                        .iter()
                        .filter(refused)
                        .map(|e| failed(e.id(), true))
                        .collect(),
                ))
                .build()
                .unwrap()
        });
        let ingest = ingest(mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&send]));
        let records: Vec<Value> = (0..12)
            .map(|i| {
                let body = include_str!("../../../tests/fixtures/events/s3-put.json")
                    .replace("amzn-s3-demo-bucket", "src")
                    .replace("photos%2F2024%2Fbeach+day%2B1.jpg", &format!("k{i:02}"));
                serde_json::json!({"messageId": format!("n{i:02}"), "eventSource": "aws:sqs", "body": body})
            })
            .collect();
        let batch: SqsEvent =
            serde_json::from_value(serde_json::json!({"Records": records})).unwrap();
        let response = ingest.handle_sqs(batch).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["n05"]);
        assert_eq!(send.num_calls(), 3, "24 jobs, ten to a request");
    }

    #[tokio::test]
    async fn an_entry_sqs_blames_on_the_sender_is_not_resent() {
        let rule = mock!(aws_sdk_sqs::Client::send_message_batch).then_output(|| {
            SendMessageBatchOutput::builder()
                .set_successful(Some(vec![]))
                .set_failed(Some(vec![failed("0", true)]))
                .build()
                .unwrap()
        });
        let sqs = mock_client!(aws_sdk_sqs, [&rule]);
        let err = ingest(sqs).send(&jobs(1)).await.unwrap_err();
        assert!(
            matches!(err, QueueError::EntriesRejected { count: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("InvalidParameterValue"), "{err}");
        assert_eq!(rule.num_calls(), 1);
    }

    /// A tag read the bucket refuses (a rule filters on tags) is no malformed
    /// notification: it is not parked as one (redrive would refuse it), but left to
    /// SQS's redelivery and the events queue's dead-letter queue, whole.
    #[tokio::test]
    async fn a_refused_tag_read_is_redelivered_not_parked_as_malformed() {
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        let denied = mock!(aws_sdk_s3::Client::get_object_tagging).then_http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(403).unwrap(),
                SdkBody::from("<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>denied</Message></Error>"),
            )
        });
        let parked = mock!(aws_sdk_sqs::Client::send_message).then_output(|| {
            aws_sdk_sqs::operation::send_message::SendMessageOutput::builder().build()
        });
        let sent = mock!(aws_sdk_sqs::Client::send_message_batch)
            .then_output(|| SendMessageBatchOutput::builder().build().unwrap());
        let mut ingest = ingest_on(
            mock_client!(aws_sdk_s3, [&denied]),
            mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&parked, &sent]),
        );
        ingest.failed_queue_url = Some("https://sqs.us-east-1.amazonaws.com/1/failed".into());
        // A put under docs/ in "src": the "secret" rule filters on tags.
        let body = include_str!("../../../tests/fixtures/events/s3-put.json")
            .replace("amzn-s3-demo-bucket", "src")
            .replace("photos%2F2024", "docs%2F2024");
        let batch: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "n1", "eventSource": "aws:sqs", "body": body}
        ]}))
        .unwrap();
        let response = ingest.handle_sqs(batch).await;
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(response.batch_item_failures[0].item_identifier, "n1");
        assert_eq!(
            (denied.num_calls(), parked.num_calls(), sent.num_calls()),
            (1, 0, 0)
        );
    }

    #[tokio::test]
    async fn a_payload_that_is_no_notification_fails_clearly() {
        let ingest = ingest(mock_client!(aws_sdk_sqs, []));
        let err = ingest
            .handle(LambdaEvent::new(
                serde_json::json!({"detail": 1}),
                lambda_runtime::Context::default(),
            ))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not an S3 event"), "{err}");
        // An SQS batch whose bodies are not notifications: each is reported, none panics.
        let batch = serde_json::json!({"Records": [
            {"messageId": "a", "eventSource": "aws:sqs", "body": "{}"},
            {"messageId": "b", "eventSource": "aws:sqs", "body": "[1, 2"}
        ]});
        let out = ingest
            .handle(LambdaEvent::new(batch, lambda_runtime::Context::default()))
            .await
            .unwrap();
        assert_eq!(
            out["batchItemFailures"],
            serde_json::json!([{"itemIdentifier": "a"}, {"itemIdentifier": "b"}])
        );
    }
}
