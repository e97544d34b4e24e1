//! The replicate handler: a batch of jobs in, partial batch failures out, so one bad
//! job never makes its neighbours run again. Permanent failures go to the failed queue
//! at once (when one is configured) instead of burning receives.
//!
//! This module runs a job to its outcome; the operations live beside it: `copying`
//! (puts, and the copies other operations fall back on), `deletes`, `sync` (tag and
//! ACL changes) and `backfill` (list tasks); `settle` decides what happens to the
//! job's message after, and `trust` whether a job is believed at all.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use futures::stream::{self, StreamExt};
use lambda_runtime::LambdaEvent;

use crate::config::clients::S3Clients;
use crate::config::{Config, Destination};
use crate::copy::conditions::{ConditionsBook, DestinationConditions, PreconditionMode};
use crate::copy::lock::LockSupport;
use crate::copy::multipart::{self, MemoryBudget, MultipartSettings};
use crate::copy::{AclSupport, Outcome};
use crate::errors::is_not_found;
use crate::errors::{FailureReason, ReplicationError, S3Step};
use crate::listing::ListTask;
use crate::queues::batch::retry_these;
use crate::queues::job::{Job, Operation};
use crate::queues::lease::Lease;
use crate::queues::parking::Parking;
use crate::replicate::overlap::RecentWrites;

mod backfill;
mod copying;
mod deletes;
mod locks;
pub mod overlap;
mod settle;
mod sync;
mod trust;
mod writing;

use settle::PendingRow;
use sync::{Failed, ReplicaMissing};

/// Jobs of one batch run at once, at most this many.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Time kept back from a Lambda invocation's deadline: multipart copies start no new
/// part after that, and the parts in flight finish and are handed on in it.
pub const DEFAULT_PAUSE_RESERVE: Duration = Duration::from_secs(20);

/// Where a destination ignores the conditions replica writes carry (moto's CopyObject),
/// a copy whose write lands this long after its source was read looks at the source
/// again: a newer version's job may have finished in between. Another job's event must
/// travel S3 -> queue -> ingest -> queue -> HEAD -> write inside that window, which
/// takes longer than this; overlaps inside one process are caught whatever their
/// length. Destinations that check conditions need no such window.
pub const DEFAULT_RECHECK_AFTER: Duration = Duration::from_secs(1);

/// How many times a job looks again (a write that lost a race, a source that kept
/// changing) before it hands the job back to be retried.
const MAX_RECOPIES: usize = 3;

/// What replicate needs, built once per process.
#[derive(Debug)]
pub struct Replicator {
    pub config: Arc<Config>,
    pub s3: S3Clients,
    pub sqs: aws_sdk_sqs::Client,
    pub parking: Parking,
    /// Transient failures are forwarded here with their reason (the retry handler
    /// requeues them with backoff). Without it they are left for SQS to redeliver.
    pub retry_queue_url: Option<String>,
    /// Extends the visibility of messages whose job runs long.
    pub lease: Option<Lease>,
    pub concurrency: usize,
    /// When copies go multipart, and in what parts.
    pub multipart: MultipartSettings,
    /// Where a paused multipart copy's continuation goes (the work queue).
    pub work_queue_url: Option<String>,
    /// Kept back from each invocation's deadline; see [`DEFAULT_PAUSE_RESERVE`].
    pub pause_reserve: Duration,
    /// See [`DEFAULT_RECHECK_AFTER`].
    pub recheck_after: Duration,
    writes: RecentWrites,
    /// Set when the process is told to stop: multipart copies in flight pause after the
    /// parts under way and are handed on through the work queue, as at a Lambda
    /// deadline, instead of holding the process until they finish.
    pub stopping: Arc<AtomicBool>,
    /// Jobs being run right now.
    in_hand: AtomicUsize,
    /// Bytes of streamed parts in memory across all jobs, sized from `multipart` at
    /// the first streamed part.
    memory: OnceLock<MemoryBudget>,
    acls: AclSupport,
    /// Which destinations have Object Lock, learnt at the first locked source version.
    locks: LockSupport,
    /// What each destination does with conditional writes, learned at first use.
    conditions: ConditionsBook,
    /// The principals this replicator writes as (`REPLICATOR_PRINCIPALS`): a delete an
    /// event says one of them made is never sent back across a two-way pair.
    pub own_principals: Vec<String>,
    /// Signs the provenance of replicas and checks what objects claim (see
    /// [`crate::config::keys`]); unsigned unless a key is configured.
    pub signer: crate::config::keys::Signer,
    /// Where backfill records may be written (`BACKFILL_REPORT_URL`); a job or task
    /// that names another place is not believed.
    pub report_location: Option<String>,
    /// Backfill outcomes not yet written to their backfill's record.
    rows: Mutex<Vec<PendingRow>>,
}

impl Replicator {
    pub fn new(
        config: Arc<Config>,
        s3: S3Clients,
        sqs: aws_sdk_sqs::Client,
        failed_queue_url: Option<String>,
    ) -> Self {
        Replicator {
            config,
            s3,
            parking: Parking {
                sqs: sqs.clone(),
                failed_queue_url,
            },
            sqs,
            retry_queue_url: None,
            lease: None,
            concurrency: DEFAULT_CONCURRENCY,
            multipart: MultipartSettings::default(),
            work_queue_url: None,
            pause_reserve: DEFAULT_PAUSE_RESERVE,
            recheck_after: DEFAULT_RECHECK_AFTER,
            stopping: Arc::default(),
            in_hand: AtomicUsize::new(0),
            writes: RecentWrites::default(),
            memory: OnceLock::new(),
            acls: AclSupport::default(),
            locks: LockSupport::default(),
            conditions: ConditionsBook::default(),
            own_principals: Vec::new(),
            signer: crate::config::keys::Signer::unsigned(),
            report_location: None,
            rows: Mutex::default(),
        }
    }

    /// The Lambda entry point. Multipart copies pause before the invocation's deadline
    /// (less the reserve) and continue in a later one.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        // Stop starting parts this long before the deadline.
        let deadline =
            crate::queues::batch::before_deadline(event.context.deadline, self.pause_reserve);
        Ok(multipart::within(deadline, self.handle_batch(event.payload)).await)
    }

    /// Runs a batch, then records its backfill jobs' outcomes; a job whose outcome
    /// could not be recorded is delivered again rather than deleted unrecorded.
    pub async fn handle_batch(&self, batch: SqsEvent) -> SqsBatchResponse {
        let mut failures = self.run_batch(batch).await;
        failures.extend(self.flush_rows().await);
        failures.sort();
        failures.dedup();
        retry_these(failures)
    }

    /// Runs a batch; returns the ids of the messages to deliver again. Backfill
    /// outcomes wait in memory for [`Replicator::flush_rows`].
    pub async fn run_batch(&self, batch: SqsEvent) -> Vec<String> {
        let run = stream::iter(batch.records)
            .map(|message| self.handle_message(message))
            .buffer_unordered(self.concurrency.max(1))
            .collect::<Vec<Option<String>>>();
        let failures = multipart::until_stopped(self.stopping.clone(), run).await;
        failures.into_iter().flatten().collect()
    }

    /// How many jobs are being run right now.
    pub fn in_hand(&self) -> usize {
        self.in_hand.load(Ordering::Relaxed)
    }

    /// Runs one message; returns its id when it must be delivered again.
    async fn handle_message(&self, message: SqsMessage) -> Option<String> {
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.as_deref().unwrap_or("");
        let receives: u32 = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        if let Some(task) = ListTask::sniff(body) {
            // A task copies its page: it holds its message the while, or SQS hands the
            // same page to another poller and its objects are copied twice.
            let listing = self.handle_list(id, body, task);
            return match (&self.lease, message.receipt_handle.as_deref()) {
                (Some(lease), Some(receipt)) => lease.hold(&self.sqs, receipt, listing).await,
                _ => listing.await,
            };
        }
        let job = match Job::parse(body) {
            Ok(job) => job,
            Err(err) => {
                let parked = self.parking.park_raw(body, &err).await;
                return (!parked).then_some(id);
            }
        };
        if let Some(err) = self.untrusted(&job) {
            tracing::warn!(bucket = %job.source.bucket, key = %job.source.key, destination = %job.destination.bucket,
                rule = %job.rule_id, outcome = "failed", reason = %err.reason, error = %err.detail, "job not believed");
            let parked = self.parking.park_job(&job, &err).await;
            settle::count_outcome(&job, &Err(err), parked);
            return (!parked).then_some(id);
        }
        let started = Instant::now();
        self.in_hand.fetch_add(1, Ordering::Relaxed);
        let result = match (&self.lease, message.receipt_handle.as_deref()) {
            (Some(lease), Some(receipt)) => lease.hold(&self.sqs, receipt, self.run(&job)).await,
            _ => self.run(&job).await,
        };
        self.in_hand.fetch_sub(1, Ordering::Relaxed);
        settle::log_outcome(&job, &result, started, receives);
        let done = self.settle(&id, &job, result).await;
        (!done).then_some(id)
    }

    /// What `destination` is known to do with conditional writes. AWS's own S3 (no
    /// endpoint of another provider, and none set for the process) checks them;
    /// anywhere else the first writes find out, unless the document says.
    pub fn conditions(&self, destination: &Destination) -> std::sync::Arc<DestinationConditions> {
        let key = format!(
            "{}@{}",
            destination.bucket,
            destination.endpoint.endpoint_url.as_deref().unwrap_or("")
        );
        self.conditions.get(&key, || {
            let aws = destination.endpoint.endpoint_url.is_none() && self.s3.on_aws;
            let mode = match destination.preconditions {
                PreconditionMode::Probe if aws => PreconditionMode::Enforced,
                mode => mode,
            };
            DestinationConditions::new(mode, destination.write_order)
        })
    }

    fn destination_of(&self, job: &Job) -> Option<(&Destination, &aws_sdk_s3::Client)> {
        let rule = self.config.rule(&job.source.bucket, &job.rule_id)?;
        let dst = self.s3.for_destination(&rule.destination.endpoint)?;
        Some((&rule.destination, dst))
    }

    /// Runs one job to its outcome. A destination that refuses a request signed with
    /// keys read from its secret (rotated under a running process) gets the secret read
    /// again, once, and the job run again, instead of every job failing until the keys
    /// expire. A refusal that stays is a permanent failure as before.
    pub async fn run(&self, job: &Job) -> Result<Outcome, ReplicationError> {
        let endpoint = self
            .config
            .rule(&job.source.bucket, &job.rule_id)
            .map(|r| &r.destination.endpoint);
        let generation = endpoint.and_then(|e| self.s3.keys_generation(e));
        // Boxed: a job's future (a multipart copy's above all) is large, and debug
        // builds poll it on a worker thread's 2 MiB stack.
        match Box::pin(self.run_once(job)).await {
            // A destination on S3 in another region: S3 says which (a 301 with the
            // bucket's region), and the job runs again through a client for it.
            Err(e)
                if e.reason == FailureReason::BucketInAnotherRegion
                    && endpoint
                        .is_some_and(|e| *e == crate::config::EndpointSettings::default())
                    && e.bucket_region
                        .as_deref()
                        .is_some_and(|r| self.s3.learn_region(&job.destination.bucket, r)) =>
            {
                Box::pin(self.run_once(job)).await
            }
            Err(e) if e.reason.is_destination_refusal() => {
                let (Some(endpoint), Some(generation)) = (endpoint, generation) else {
                    return Err(e);
                };
                if self.s3.forget_keys(endpoint, generation) {
                    tracing::info!(destination = %job.destination.bucket, error = %e.detail,
                        "the destination rejected the keys from its secret; reading the secret again");
                }
                Box::pin(self.run_once(job)).await
            }
            other => other,
        }
    }

    async fn run_once(&self, job: &Job) -> Result<Outcome, ReplicationError> {
        let Some(rule) = self.config.rule(&job.source.bucket, &job.rule_id) else {
            // The configuration changed since ingest: nothing says where this goes now.
            return Err(ReplicationError::new(
                FailureReason::RuleNotConfigured,
                format!(
                    "no rule \"{}\" for bucket {} in the configuration",
                    job.rule_id, job.source.bucket
                ),
            ));
        };
        if !rule.enabled {
            return Ok(Outcome::Skipped {
                reason: "RuleDisabled",
            });
        }
        let destination = &rule.destination;
        let Some(dst) = &self
            .s3
            .for_destination_bucket(&destination.endpoint, &destination.bucket)
        else {
            return Err(ReplicationError::new(
                FailureReason::RuleNotConfigured,
                "no client for the destination endpoint (configuration changed without a restart?)",
            ));
        };
        if let Some(upload) = &job.upload {
            return self.resume(job, destination, dst, upload).await;
        }
        match job.op {
            Operation::Put => self.put(job, destination, dst).await,
            Operation::Delete if job.source.delete_marker => {
                self.delete(job, destination, dst).await
            }
            // A version removed for good may have been the current one (the previous
            // version is current now) or an old one (nothing changes): either way the
            // replica should become what the source holds now.
            Operation::Delete => self.reconcile(job, destination, dst).await,
            Operation::Lock => self.sync_lock(job, destination, dst).await,
            Operation::Tags | Operation::Acl => {
                if let Some(reason) = self.modification_not_synced(job, rule).await? {
                    return Ok(Outcome::Skipped { reason });
                }
                let synced = if job.op == Operation::Tags {
                    self.sync_tags(job, rule, dst).await
                } else {
                    self.sync_acl(job, destination, dst).await
                };
                match synced {
                    // Events arrive in any order: a tag or ACL change can come before
                    // the object's own replica exists. Copying it whole converges.
                    Err(ReplicaMissing) => {
                        let aim = copying::Aim::Current;
                        Box::pin(self.converge(job, destination, dst, aim, None)).await
                    }
                    Ok(outcome) => Ok(outcome),
                    Err(Failed(e)) => Err(e),
                }
            }
        }
    }
}

const SOURCE_DELETED_REASON: &str = "SourceDeleted";
/// The destination holds an object this source did not make: deletes leave it alone.
const NOT_OURS: &str = "NotAReplicaOfSource";
const SOURCE_DELETED: Outcome = Outcome::Skipped {
    reason: SOURCE_DELETED_REASON,
};

/// The provenance a replica records, when this replicator made it (by its signature).
fn replica_provenance(
    replicator: &Replicator,
    head: &HeadObjectOutput,
    destination: &Destination,
    key: &str,
) -> Option<crate::copy::provenance::Provenance> {
    let holder = crate::copy::provenance::Holder {
        bucket: &destination.bucket,
        key,
    };
    crate::copy::provenance::Provenance::read(head.metadata(), holder, &replicator.signer)
}

/// HEADs the replica; `None` when there is none.
async fn replica_head(
    dst: &aws_sdk_s3::Client,
    destination: &Destination,
    key: &str,
) -> Result<Option<HeadObjectOutput>, ReplicationError> {
    match dst
        .head_object()
        .bucket(&destination.bucket)
        .key(key)
        .send()
        .await
    {
        Ok(head) => Ok(Some(head)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(ReplicationError::from_sdk(S3Step::DestinationHead, &e)),
    }
}

/// A replica under Object Lock that a delete could not remove: S3 writes a delete
/// marker over a locked version, but answers AccessDenied for the version itself (and
/// a server may refuse either). Nothing an operator or a retry can change before the
/// retention ends: a stated outcome.
const REPLICA_LOCKED: Outcome = Outcome::Skipped {
    reason: "ReplicaLocked",
};

/// Whether a delete's refusal is the replica's lock's doing.
fn refused_for_its_lock(err: &ReplicationError, replica: &HeadObjectOutput) -> bool {
    err.reason == FailureReason::DstDeleteObjectNotPermitted
        && crate::copy::lock::Lock::of(replica).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::verify::Verified;
    use crate::listing::record::Row;
    use aws_sdk_s3::operation::head_object::HeadObjectOutput;
    use aws_sdk_sqs::operation::send_message::SendMessageOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use std::sync::Mutex;

    fn s3_error(status: u16, code: &str) -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected</Message></Error>")),
        )
    }

    fn replicator(s3: aws_sdk_s3::Client, sqs: aws_sdk_sqs::Client) -> Replicator {
        let doc = r#"{"Sources": [{"Bucket": "photos", "ReplicationConfiguration": {"Rules": [
            {"ID": "everything", "Status": "Enabled", "Priority": 1, "Filter": {},
             "Destination": {"Bucket": "photos-replica", "Replicator": {"AclMode": "none"}},
             "DeleteMarkerReplication": {"Status": "Disabled"}}]}}]}"#;
        let config = Arc::new(Config::parse(doc).unwrap());
        Replicator::new(
            config,
            S3Clients::same_endpoint(s3),
            sqs,
            Some("https://sqs.us-east-1.amazonaws.com/1/failed".into()),
        )
    }

    /// The source "photos" holds 1,024 bytes whose ETag is a plain MD5.
    fn source_of_1024_bytes() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_s3::Client::head_object)
            .match_requests(|r| r.bucket() == Some("photos"))
            .then_output(|| {
                HeadObjectOutput::builder()
                    .content_length(1024)
                    .e_tag("\"d41d8cd98f00b204e9800998ecf8427e\"")
                    .build()
            })
    }

    fn batch() -> SqsEvent {
        let mut m = SqsMessage::default();
        m.message_id = Some("m1".into());
        m.body = Some(include_str!("../../../tests/fixtures/jobs/put.json").to_string());
        let mut e = SqsEvent::default();
        e.records.push(m);
        e
    }

    /// Access denied is what a local server cannot be made to say: each side's refusal
    /// gets its own reason and is parked at once.
    #[tokio::test]
    async fn access_denied_is_permanent_and_names_the_side() {
        for (head_status, copy_status, expected) in [
            (Some(403), None, "SrcHeadObjectNotPermitted"),
            (None, Some(403), "DstPutObjectNotPermitted"),
            (None, Some(404), "DstBucketNotFound"),
        ] {
            let head = match head_status {
                Some(status) => {
                    mock!(aws_sdk_s3::Client::head_object).then_http_response(move || {
                        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
                    })
                }
                None => mock!(aws_sdk_s3::Client::head_object).then_output(|| {
                    HeadObjectOutput::builder()
                        .content_length(1024)
                        .e_tag("\"d41d8cd98f00b204e9800998ecf8427e\"")
                        .build()
                }),
            };
            // The job has a sequencer, so the replica is read first: there is none.
            let no_replica = mock!(aws_sdk_s3::Client::head_object)
                .match_requests(|r| r.bucket() == Some("photos-replica"))
                .then_http_response(|| {
                    HttpResponse::new(StatusCode::try_from(404).unwrap(), SdkBody::empty())
                });
            let code = if copy_status == Some(404) {
                "NoSuchBucket"
            } else {
                "AccessDenied"
            };
            let copy = mock!(aws_sdk_s3::Client::copy_object)
                .then_http_response(move || s3_error(copy_status.unwrap_or(500), code));
            let parked = Arc::new(Mutex::new(Vec::new()));
            let seen = parked.clone();
            let send = mock!(aws_sdk_sqs::Client::send_message)
                .match_requests(move |r| {
                    seen.lock()
                        .unwrap()
                        .push(r.message_body().unwrap_or("").to_string());
                    true
                })
                .then_output(|| SendMessageOutput::builder().message_id("x").build());
            let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&no_replica, &head, &copy]);
            // Parking then reads the failed queue's depth for its log line.
            let depth = mock!(aws_sdk_sqs::Client::get_queue_attributes).then_output(|| {
                aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesOutput::builder()
                    .build()
            });
            let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&send, &depth]);
            let response = replicator(s3, sqs).handle_batch(batch()).await;
            assert!(
                response.batch_item_failures.is_empty(),
                "{expected}: parked, not retried"
            );
            let bodies = parked.lock().unwrap().clone();
            assert_eq!(bodies.len(), 1, "{expected}");
            let job = Job::parse(&bodies[0]).unwrap();
            assert_eq!(job.last_error.as_ref().unwrap().reason.as_str(), expected);
            assert_eq!(job.attempts, 1);
        }
    }

    /// An SSE-C object cannot be read without the customer's key: S3 answers its HEAD
    /// with a bare 400, and a GET says why. It is skipped with that reason (S3 does not
    /// replicate SSE-C objects either), not parked; any other 400 stays a failure.
    #[tokio::test]
    async fn an_sse_c_object_is_skipped_with_its_reason() {
        use aws_sdk_s3::operation::get_object::GetObjectOutput;
        for (get_code, get_message, expected) in [
            (
                "InvalidRequest",
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
                Ok("SseCustomerKeyEncrypted"),
            ),
            ("InvalidArgument", "Invalid argument.", Err(())),
        ] {
            let no_replica = mock!(aws_sdk_s3::Client::head_object)
                .match_requests(|r| r.bucket() == Some("photos-replica"))
                .then_http_response(|| {
                    HttpResponse::new(StatusCode::try_from(404).unwrap(), SdkBody::empty())
                });
            let head = mock!(aws_sdk_s3::Client::head_object)
                .match_requests(|r| r.bucket() == Some("photos"))
                .then_http_response(|| {
                    HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::empty())
                });
            let get = mock!(aws_sdk_s3::Client::get_object)
                .match_requests(|r| r.range() == Some("bytes=0-0"))
                .then_http_response(move || {
                    HttpResponse::new(
                        StatusCode::try_from(400).unwrap(),
                        SdkBody::from(format!("<?xml version=\"1.0\"?><Error><Code>{get_code}</Code><Message>{get_message}</Message></Error>")),
                    )
                });
            let never = mock!(aws_sdk_s3::Client::get_object)
                .match_requests(|r| r.range().is_none())
                .then_output(|| GetObjectOutput::builder().build());
            let copy = mock!(aws_sdk_s3::Client::copy_object).then_http_response(|| {
                HttpResponse::new(StatusCode::try_from(500).unwrap(), SdkBody::empty())
            });
            let s3 = mock_client!(
                aws_sdk_s3,
                RuleMode::MatchAny,
                [&no_replica, &head, &get, &never, &copy]
            );
            let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, []);
            let job = Job::parse(include_str!("../../../tests/fixtures/jobs/put.json")).unwrap();
            let result = replicator(s3, sqs).run(&job).await;
            match expected {
                Ok(reason) => assert_eq!(result.unwrap(), Outcome::Skipped { reason }),
                Err(()) => {
                    let err = result.unwrap_err();
                    assert_eq!(err.reason, FailureReason::InvalidRequest, "{err}");
                }
            }
            assert_eq!((get.num_calls(), copy.num_calls(), never.num_calls()), (1, 0, 0));
        }
    }

    /// What a copy wrote is checked against the source: a different ETag is a
    /// `ChecksumMismatch` naming both; a KMS replica (whose ETag is not an MD5) costs a
    /// HEAD, and then its size decides.
    #[tokio::test]
    async fn a_replica_that_differs_from_its_source_is_a_checksum_mismatch() {
        use aws_sdk_s3::operation::copy_object::CopyObjectOutput;
        use aws_sdk_s3::types::{CopyObjectResult, ServerSideEncryption};
        const MD5: &str = "\"d41d8cd98f00b204e9800998ecf8427e\"";
        for (copy_etag, kms, replica_size, expected) in [
            (
                "\"00000000000000000000000000000000\"",
                false,
                None,
                Err("ETag"),
            ),
            (MD5, false, None, Ok(Verified::ETag)),
            (
                "\"5f1d7a84db00d2fce00b31a7fc73224f\"",
                true,
                Some(1024),
                Ok(Verified::Size),
            ),
            (
                "\"5f1d7a84db00d2fce00b31a7fc73224f\"",
                true,
                Some(1000),
                Err("size"),
            ),
        ] {
            let source = source_of_1024_bytes();
            // First the replica's provenance (none yet); after the copy, what it is.
            let replica = mock!(aws_sdk_s3::Client::head_object)
                .match_requests(|r| r.bucket() == Some("photos-replica"))
                .sequence()
                .http_response(|| {
                    HttpResponse::new(StatusCode::try_from(404).unwrap(), SdkBody::empty())
                })
                .output(move || {
                    HeadObjectOutput::builder()
                        .set_content_length(replica_size)
                        .e_tag(copy_etag)
                        .server_side_encryption(ServerSideEncryption::AwsKms)
                        .build()
                })
                .build();
            let copy = mock!(aws_sdk_s3::Client::copy_object).then_output(move || {
                CopyObjectOutput::builder()
                    .copy_object_result(CopyObjectResult::builder().e_tag(copy_etag).build())
                    .set_server_side_encryption(kms.then_some(ServerSideEncryption::AwsKms))
                    .build()
            });
            let delete = mock!(aws_sdk_s3::Client::delete_object)
                .match_requests(|r| r.bucket() == Some("photos-replica"))
                .then_output(|| {
                    aws_sdk_s3::operation::delete_object::DeleteObjectOutput::builder().build()
                });
            let s3 = mock_client!(
                aws_sdk_s3,
                RuleMode::MatchAny,
                [&source, &replica, &copy, &delete]
            );
            let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, []);
            let job = Job::parse(include_str!("../../../tests/fixtures/jobs/put.json")).unwrap();
            let result = replicator(s3, sqs).run(&job).await;
            // A replica that fails its check is removed, so nothing takes it for good.
            assert_eq!(
                delete.num_calls(),
                usize::from(expected.is_err()),
                "{copy_etag}"
            );
            match expected {
                Ok(verified) => assert_eq!(
                    result.unwrap(),
                    Outcome::Replicated {
                        bytes: 1024,
                        verified
                    }
                ),
                Err(compared) => {
                    let err = result.unwrap_err();
                    assert_eq!(err.reason, FailureReason::ChecksumMismatch, "{err}");
                    assert!(err.is_retryable());
                    assert!(err.detail.contains(compared), "{err}");
                }
            }
            assert_eq!(replica.num_calls(), if kms { 2 } else { 1 }, "{copy_etag}");
        }
    }

    /// The retry of a job whose copy failed its check copies again, even when the
    /// replica (whose delete failed) claims the job's event: after a failed check the
    /// record proves nothing. A job without that history stops at the record.
    #[tokio::test]
    async fn after_a_failed_check_the_replicas_record_is_not_trusted() {
        use aws_sdk_s3::operation::copy_object::CopyObjectOutput;
        use aws_sdk_s3::types::CopyObjectResult;
        const MD5: &str = "\"d41d8cd98f00b204e9800998ecf8427e\"";
        for (history, expected) in [
            (None, "skipped"),
            (Some(FailureReason::ChecksumMismatch), "copied"),
        ] {
            let claims_the_event = mock!(aws_sdk_s3::Client::head_object)
                .match_requests(|r| r.bucket() == Some("photos-replica"))
                .then_output(|| {
                    HeadObjectOutput::builder()
                        .content_length(1024)
                        .metadata("s3r-source", "photos")
                        .metadata("s3r-sequencer", "0055AED6DCD90281E5")
                        .build()
                });
            let source = source_of_1024_bytes();
            let copy = mock!(aws_sdk_s3::Client::copy_object).then_output(|| {
                CopyObjectOutput::builder()
                    .copy_object_result(CopyObjectResult::builder().e_tag(MD5).build())
                    .build()
            });
            let s3 = mock_client!(
                aws_sdk_s3,
                RuleMode::MatchAny,
                [&claims_the_event, &source, &copy]
            );
            let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, []);
            let mut job =
                Job::parse(include_str!("../../../tests/fixtures/jobs/put.json")).unwrap();
            job.source.version_id = None;
            job.source.etag = None;
            if let Some(reason) = history {
                job.record_failure(&ReplicationError::new(reason, "injected"));
            }
            let outcome = replicator(s3, sqs).run(&job).await.unwrap();
            let got = match outcome {
                Outcome::Skipped {
                    reason: "ReplicaUpToDate",
                } => "skipped",
                Outcome::Replicated { .. } => "copied",
                other => panic!("{other:?}"),
            };
            assert_eq!(got, expected, "{history:?}");
            assert_eq!(copy.num_calls(), usize::from(expected == "copied"));
        }
    }

    /// A worker settles messages while others still run: a failed record write for the
    /// settled ones returns them to be delivered again, and leaves the rows of the
    /// messages still running where they were (they were taken, and lost with it).
    #[tokio::test]
    async fn a_failed_flush_leaves_the_rows_of_running_messages() {
        let put = mock!(aws_sdk_s3::Client::put_object)
            .then_http_response(|| s3_error(500, "InternalError"));
        let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put]);
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, []);
        let r = replicator(s3, sqs);
        for message in ["settled", "running"] {
            r.rows.lock().unwrap().push(PendingRow {
                message_id: message.into(),
                report: "s3://records/backfills/".into(),
                backfill: "bf-1".into(),
                row: Row {
                    bucket: "photos".into(),
                    key: format!("{message}.jpg"),
                    destination: "photos-replica".into(),
                    outcome: "replicated".into(),
                    reason: String::new(),
                    bytes: 1,
                },
            });
        }
        let unwritten = r.flush_rows_of(Some(&["settled".to_string()])).await;
        assert_eq!(unwritten, vec!["settled".to_string()]);
        let left: Vec<String> = r
            .rows
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.message_id.clone())
            .collect();
        assert_eq!(left, vec!["running".to_string()]);
    }
}
