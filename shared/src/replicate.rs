//! The replicate handler: a batch of jobs in, partial batch failures out, so one bad
//! job never makes its neighbours run again. Permanent failures go to the failed queue
//! at once (when one is configured) instead of burning receives.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{ObjectCannedAcl, Tagging};
use futures::stream::{self, StreamExt};
use lambda_runtime::LambdaEvent;

use crate::batch::retry_these;
use crate::clients::S3Clients;
use crate::config::{AclMode, Config, Destination, Rule};
use crate::copy::{self, AclSupport, Outcome};
use crate::errors::{describe, FailureReason, ReplicationError, S3Step};
use crate::job::{Continuation, Job, Operation};
use crate::lease::Lease;
use crate::multipart::{self, MemoryBudget, MultipartSettings, Progress};
use crate::parking::Parking;
use crate::provenance::Provenance;
use crate::verify::{self, Verified, Written};

/// Jobs of one batch run at once, at most this many.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Time kept back from a Lambda invocation's deadline: multipart copies start no new
/// part after that, and the parts in flight finish and are handed on in it.
pub const DEFAULT_PAUSE_RESERVE: Duration = Duration::from_secs(20);

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
    /// Bytes of streamed parts in memory across all jobs, sized from `multipart` at
    /// the first streamed part.
    memory: OnceLock<MemoryBudget>,
    acls: AclSupport,
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
            memory: OnceLock::new(),
            acls: AclSupport::default(),
        }
    }

    /// The Lambda entry point. Multipart copies pause before the invocation's deadline
    /// (less the reserve) and continue in a later one.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let deadline = self.deadline(event.context.deadline);
        Ok(multipart::within(deadline, self.handle_batch(event.payload)).await)
    }

    /// The moment to stop starting parts, from the context's deadline (milliseconds
    /// since the epoch; 0 when unknown, as in a hand-made context).
    fn deadline(&self, deadline_ms: u64) -> Option<Instant> {
        if deadline_ms == 0 {
            return None;
        }
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        Some(Instant::now() + left.saturating_sub(self.pause_reserve))
    }

    pub async fn handle_batch(&self, batch: SqsEvent) -> SqsBatchResponse {
        let failures: Vec<Option<String>> = stream::iter(batch.records)
            .map(|message| self.handle_message(message))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        retry_these(failures.into_iter().flatten())
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
        let job = match Job::parse(body) {
            Ok(job) => job,
            Err(err) => {
                let parked = self.parking.park_raw(body, &err).await;
                return (!parked).then_some(id);
            }
        };
        let started = Instant::now();
        let result = match (&self.lease, message.receipt_handle.as_deref()) {
            (Some(lease), Some(receipt)) => lease.hold(&self.sqs, receipt, self.run(&job)).await,
            _ => self.run(&job).await,
        };
        log_outcome(&job, &result, started, receives);
        let done = match result {
            Ok(Outcome::Paused(upload)) => self.continue_later(&job, *upload).await,
            Ok(_) => true,
            // A failed copy has aborted its upload: whatever runs next starts afresh.
            Err(err) if err.is_retryable() => {
                self.forward_for_retry(&job.without_upload(), &err).await
            }
            Err(err) => self.parking.park_job(&job.without_upload(), &err).await,
        };
        (!done).then_some(id)
    }

    /// Hands a paused copy to the next invocation through the work queue. If that
    /// fails the upload is aborted and the message delivered again, to start afresh:
    /// an upload no job knows of would only cost money.
    async fn continue_later(&self, job: &Job, upload: Continuation) -> bool {
        let mut next = job.clone();
        let upload_id = upload.upload_id.clone();
        next.upload = Some(upload);
        let sent = match &self.work_queue_url {
            Some(url) => self
                .sqs
                .send_message()
                .queue_url(url)
                .message_body(next.to_body())
                .send()
                .await
                .map_err(|e| describe(&e)),
            None => Err(format!("{} is not set", crate::settings::WORK_QUEUE_VAR)),
        };
        match sent {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(key = %job.source.key, error = %e, "cannot hand a paused copy on; aborting its upload, the job will start again");
                if let Some((destination, dst)) = self.destination_of(job) {
                    multipart::abort(dst, destination, &job.source.key, &upload_id).await;
                }
                false
            }
        }
    }

    fn destination_of(&self, job: &Job) -> Option<(&Destination, &aws_sdk_s3::Client)> {
        let rule = self.config.rule(&job.source.bucket, &job.rule_id)?;
        let dst = self.s3.for_destination(&rule.destination.endpoint)?;
        Some((&rule.destination, dst))
    }

    /// Hands a transient failure, with its reason, to the retry queue.
    async fn forward_for_retry(&self, job: &Job, err: &ReplicationError) -> bool {
        let Some(url) = &self.retry_queue_url else {
            return false;
        };
        let mut failed = job.clone();
        failed.record_failure(err);
        let sent = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(failed.to_body())
            .send()
            .await;
        match sent {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %describe(&e), "could not forward a failed job to the retry queue; SQS will redeliver it");
                false
            }
        }
    }

    /// Runs one job to its outcome.
    pub async fn run(&self, job: &Job) -> Result<Outcome, ReplicationError> {
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
        let Some(dst) = self.s3.for_destination(&destination.endpoint) else {
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
            Operation::Tags | Operation::Acl => {
                let synced = if job.op == Operation::Tags {
                    self.sync_tags(job, rule, dst).await
                } else {
                    self.sync_acl(job, destination, dst).await
                };
                match synced {
                    // Events arrive in any order: a tag or ACL change can come before
                    // the object's own replica exists. Copying it whole converges.
                    Err(ReplicaMissing) => match copy::head_source(&self.s3.source, job).await? {
                        Some(state) => self.copy(job, destination, dst, state, None).await,
                        None => Ok(SOURCE_DELETED),
                    },
                    Ok(outcome) => Ok(outcome),
                    Err(Failed(e)) => Err(e),
                }
            }
        }
    }

    /// A created object. Copies what the source holds now. When the event carries a
    /// sequencer it is ordered against the replica first: an event no newer than the
    /// replica was done already (one HEAD, nothing written), and an event the source
    /// has since moved past is superseded (the newer write's own event copies it).
    async fn put(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        let sequencer = job.sequencer();
        if sequencer.is_some() {
            let replica = replica_provenance(dst, destination, &job.source.key).await?;
            let newer = replica.and_then(|p| p.is_at_least(&job.source.bucket, sequencer));
            if newer == Some(true) {
                return Ok(Outcome::Skipped {
                    reason: "ReplicaUpToDate",
                });
            }
        }
        let Some(state) = copy::head_source(&self.s3.source, job).await? else {
            return Ok(SOURCE_DELETED);
        };
        let current = describes_current(job, &state.head);
        if sequencer.is_some() && !current {
            return Ok(Outcome::Skipped {
                reason: "Superseded",
            });
        }
        // Here a sequencer, if any, is that of an event describing exactly this state.
        self.copy(job, destination, dst, state, sequencer).await
    }

    /// Copies the source's current state, recording its provenance on the replica.
    /// `sequencer` says the copied state is at least as new as that event (the event
    /// described exactly this state, or happened before it was read); `None` when
    /// nothing is known.
    async fn copy(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        mut state: copy::SourceState,
        sequencer: Option<&str>,
    ) -> Result<Outcome, ReplicationError> {
        let own = state.own_provenance();
        // Two-way replication: this object is itself a copy of what the destination
        // holds. Sending it back would start the loop that provenance exists to stop.
        if destination.is_same_endpoint()
            && own
                .as_ref()
                .is_some_and(|p| p.came_from(&destination.bucket))
        {
            return Ok(Outcome::Skipped {
                reason: "ReplicaOfDestination",
            });
        }
        let version = state.head.version_id().map(str::to_string);
        state.provenance = Some(Provenance::of_copy(
            &job.source.bucket,
            version.as_deref(),
            sequencer,
            own.as_ref(),
        ));
        let src = &self.s3.source;
        let grants = self
            .grants_to_copy(job, destination, dst, version.as_deref())
            .await?;
        let same = destination.is_same_endpoint();
        if state.size() > self.multipart.threshold(same) {
            let upload =
                multipart::start(src, dst, job, destination, &state, grants, &self.multipart)
                    .await?;
            return self.proceed(job, destination, dst, &upload).await;
        }
        let written = if same {
            copy::copy_same_endpoint(src, job, destination, &state, grants).await?
        } else {
            copy::copy_streamed(src, dst, job, destination, &state, grants).await?
        };
        self.verified(job, destination, dst, &state, written).await
    }

    /// Checks what a copy wrote against its source. When the write's answer holds
    /// nothing comparable (a KMS-encrypted or multipart-sourced object without a
    /// full-object checksum), one HEAD of the replica gives at least its size.
    async fn verified(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        source: &copy::SourceState,
        written: Written,
    ) -> Result<Outcome, ReplicationError> {
        let verified = match verify::verify(source, &written) {
            Some(result) => result?,
            None => {
                let written = multipart::written_object(dst, destination, &job.source.key).await?;
                verify::verify(source, &written).unwrap_or(Ok(Verified::Size))?
            }
        };
        Ok(Outcome::Replicated {
            bytes: source.size(),
            verified,
        })
    }

    /// Runs a new multipart copy's parts until it completes or pauses.
    async fn proceed(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        upload: &Continuation,
    ) -> Result<Outcome, ReplicationError> {
        let progress = self.run_parts(job, destination, dst, upload).await?;
        self.outcome_of(job, destination, dst, progress).await
    }

    async fn run_parts(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        upload: &Continuation,
    ) -> Result<Progress, ReplicationError> {
        let settings = &self.multipart;
        let memory = self
            .memory
            .get_or_init(|| MemoryBudget::new(settings.memory_budget()));
        let src = &self.s3.source;
        multipart::proceed(
            src,
            dst,
            job,
            destination,
            upload,
            settings.concurrency,
            memory,
        )
        .await
    }

    async fn outcome_of(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        progress: Progress,
    ) -> Result<Outcome, ReplicationError> {
        match progress {
            Progress::Done { written, source } => {
                self.verified(job, destination, dst, &source, written).await
            }
            Progress::Paused(upload) => Ok(Outcome::Paused(Box::new(upload))),
            Progress::Skipped(reason) => Ok(Outcome::Skipped { reason }),
            Progress::UploadGone => Err(ReplicationError::new(
                FailureReason::PreconditionFailed,
                "the multipart upload is gone (aborted by a cleanup or a lifecycle rule)",
            )),
        }
    }

    /// A continuation: the parts ListParts does not show are uploaded, then the upload
    /// completes. An upload that is gone makes the job start afresh, as a put.
    async fn resume(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        upload: &Continuation,
    ) -> Result<Outcome, ReplicationError> {
        tracing::info!(key = %job.source.key, upload_id = %upload.upload_id, parts_done = upload.parts_done,
            invocation = upload.invocations + 1, "continuing a multipart copy");
        let progress = self.run_parts(job, destination, dst, upload).await?;
        match progress {
            Progress::UploadGone => self.put(&job.without_upload(), destination, dst).await,
            progress => self.outcome_of(job, destination, dst, progress).await,
        }
    }

    /// The source's grants, when the mode copies them and both buckets use ACLs.
    async fn grants_to_copy(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
        version: Option<&str>,
    ) -> Result<Option<copy::GrantHeaders>, ReplicationError> {
        if destination.acl_mode != AclMode::Copy
            || !self
                .acls
                .uses_acls(&self.s3.source, &job.source.bucket)
                .await
            || !self.acls.uses_acls(dst, &destination.bucket).await
        {
            return Ok(None);
        }
        copy::source_grants(&self.s3.source, job, version).await
    }

    /// A delete marker, or a plain delete on an unversioned source. It removes only a
    /// replica this source made, and never one newer than the delete: sequencers
    /// decide when both sides have one, otherwise the source does (if it holds an
    /// object under the key again, the delete is stale).
    async fn delete(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        let replica = match self.our_replica(job, destination, dst).await? {
            Ok(replica) => replica,
            Err(skipped) => return Ok(skipped),
        };
        match replica.is_at_least(&job.source.bucket, job.sequencer()) {
            Some(true) => Ok(Outcome::Skipped {
                reason: "ReplicaNewer",
            }),
            Some(false) => self.delete_replica(job, destination, dst).await,
            None if copy::head_source(&self.s3.source, job).await?.is_some() => {
                Ok(Outcome::Skipped {
                    reason: "SupersededBySourceObject",
                })
            }
            None => self.delete_replica(job, destination, dst).await,
        }
    }

    /// Makes the replica what the source holds now: a copy of the current version, or
    /// no replica when there is none. Costs two HEADs when nothing needs doing.
    async fn reconcile(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        let source = copy::head_source(&self.s3.source, job).await?;
        let replica = match self.our_replica(job, destination, dst).await? {
            Ok(replica) => Some(replica),
            Err(skipped) if source.is_none() => return Ok(skipped),
            Err(_) => None,
        };
        match (source, replica) {
            (None, _) => self.delete_replica(job, destination, dst).await,
            (Some(state), Some(replica))
                if replica.version_id.is_some()
                    && replica.version_id.as_deref() == state.head.version_id() =>
            {
                Ok(Outcome::Skipped {
                    reason: "ReplicaUpToDate",
                })
            }
            // The version is gone, so what is current now is at least as new as the
            // event: its sequencer bounds the replica's recency from below.
            (Some(state), _) => {
                self.copy(job, destination, dst, state, job.sequencer())
                    .await
            }
        }
    }

    /// The replica's provenance when it is a replica this source made; otherwise the
    /// reason to leave the destination alone (nothing there, or an object some one
    /// else wrote: we delete only what we replicated).
    async fn our_replica(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Result<Provenance, Outcome>, ReplicationError> {
        let Some(head) = replica_head(dst, destination, &job.source.key).await? else {
            return Ok(Err(Outcome::Skipped {
                reason: "ReplicaAbsent",
            }));
        };
        match Provenance::read(head.metadata()) {
            Some(p) if p.source_bucket == job.source.bucket => Ok(Ok(p)),
            _ => Ok(Err(Outcome::Skipped {
                reason: "NotAReplicaOfSource",
            })),
        }
    }

    /// Deletes the replica, then looks at the source once more: a put that raced this
    /// delete may have copied an object the delete just removed. If the source holds
    /// an object now, the replica becomes a copy of it again.
    async fn delete_replica(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, ReplicationError> {
        dst.delete_object()
            .bucket(&destination.bucket)
            .key(&job.source.key)
            .send()
            .await
            .map_err(|e| ReplicationError::from_sdk(S3Step::DestinationDelete, &e))?;
        match copy::head_source(&self.s3.source, job).await? {
            // What the source holds after this delete is newer than it: the delete's
            // sequencer is a safe lower bound for the restored replica.
            Some(state) => {
                self.copy(job, destination, dst, state, job.sequencer())
                    .await
            }
            None => Ok(Outcome::Deleted),
        }
    }

    /// Tag changes: the replica's tags become the source's, no bytes copied.
    async fn sync_tags(
        &self,
        job: &Job,
        rule: &Rule,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, SyncError> {
        let destination = &rule.destination;
        let result = self
            .s3
            .source
            .get_object_tagging()
            .bucket(&job.source.bucket)
            .key(&job.source.key)
            .send()
            .await;
        let tags = match result {
            Ok(out) => out.tag_set().to_vec(),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {
                return Ok(SOURCE_DELETED)
            }
            Err(e) => {
                return Err(Failed(ReplicationError::from_sdk(
                    S3Step::SourceTagging,
                    &e,
                )))
            }
        };
        let step = S3Step::DestinationTagging;
        // A rule that syncs replica modifications is one half of two-way replication:
        // writing unchanged tags would raise an event on the other side, and so on
        // forever. Compare first, and write only a change.
        if rule.replica_modifications {
            let replica = dst
                .get_object_tagging()
                .bucket(&destination.bucket)
                .key(&job.source.key)
                .send()
                .await
                .map_err(|e| SyncError::from_destination(step, &e))?;
            if same_tags(replica.tag_set(), &tags) {
                return Ok(Outcome::Skipped {
                    reason: "TagsUnchanged",
                });
            }
        }
        if tags.is_empty() {
            dst.delete_object_tagging()
                .bucket(&destination.bucket)
                .key(&job.source.key)
                .send()
                .await
                .map_err(|e| SyncError::from_destination(step, &e))?;
        } else {
            let tagging = Tagging::builder()
                .set_tag_set(Some(tags))
                .build()
                .map_err(|e| {
                    Failed(ReplicationError::new(
                        FailureReason::InvalidRequest,
                        e.to_string(),
                    ))
                })?;
            dst.put_object_tagging()
                .bucket(&destination.bucket)
                .key(&job.source.key)
                .tagging(tagging)
                .send()
                .await
                .map_err(|e| SyncError::from_destination(step, &e))?;
        }
        Ok(Outcome::Updated)
    }

    /// ACL changes: the replica's ACL becomes what the mode says, no bytes copied.
    async fn sync_acl(
        &self,
        job: &Job,
        destination: &Destination,
        dst: &aws_sdk_s3::Client,
    ) -> Result<Outcome, SyncError> {
        let step = S3Step::DestinationAcl;
        let request = dst
            .put_object_acl()
            .bucket(&destination.bucket)
            .key(&job.source.key);
        let request = match destination.acl_mode {
            AclMode::None => {
                return Ok(Outcome::Skipped {
                    reason: "AclModeNone",
                })
            }
            AclMode::OwnerOverride => request.acl(ObjectCannedAcl::BucketOwnerFullControl),
            AclMode::Copy => match self.grants_to_copy(job, destination, dst, None).await {
                Ok(Some(g)) => request
                    .set_grant_full_control(g.full_control)
                    .set_grant_read(g.read)
                    .set_grant_read_acp(g.read_acp)
                    .set_grant_write_acp(g.write_acp),
                Ok(None) => request.acl(ObjectCannedAcl::Private),
                Err(e) => return Err(Failed(e)),
            },
        };
        request
            .send()
            .await
            .map_err(|e| SyncError::from_destination(step, &e))?;
        Ok(Outcome::Updated)
    }
}

const SOURCE_DELETED: Outcome = Outcome::Skipped {
    reason: "SourceDeleted",
};

/// Whether the event describes what the source holds now: the same version, or (on
/// an unversioned source) the same ETag. An event that says neither is taken at its word.
fn describes_current(job: &Job, head: &HeadObjectOutput) -> bool {
    let unquote = |s: &str| s.trim_matches('"').to_string();
    if let (Some(event), Some(now)) = (job.source.version_id.as_deref(), head.version_id()) {
        if now != "null" {
            return event == now;
        }
    }
    match (job.source.etag.as_deref(), head.e_tag()) {
        (Some(event), Some(now)) => unquote(event) == unquote(now),
        _ => true,
    }
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
        Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
        Err(e) => Err(ReplicationError::from_sdk(S3Step::DestinationHead, &e)),
    }
}

/// The provenance the replica records, when there is a replica and it has one.
async fn replica_provenance(
    dst: &aws_sdk_s3::Client,
    destination: &Destination,
    key: &str,
) -> Result<Option<Provenance>, ReplicationError> {
    Ok(replica_head(dst, destination, key)
        .await?
        .and_then(|head| Provenance::read(head.metadata())))
}

fn same_tags(a: &[aws_sdk_s3::types::Tag], b: &[aws_sdk_s3::types::Tag]) -> bool {
    let pairs = |tags: &[aws_sdk_s3::types::Tag]| {
        let mut v: Vec<(String, String)> = tags
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        v.sort();
        v
    };
    pairs(a) == pairs(b)
}

/// A tag or ACL sync either fails, or finds no replica to update yet.
enum SyncError {
    ReplicaMissing,
    Failed(ReplicationError),
}
use SyncError::{Failed, ReplicaMissing};

impl SyncError {
    fn from_destination<E>(
        step: S3Step,
        err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Self
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = match err {
            aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().code(),
            _ => None,
        };
        if code == Some("NoSuchKey") {
            ReplicaMissing
        } else {
            Failed(ReplicationError::from_sdk(step, err))
        }
    }
}

/// One line per job outcome.
fn log_outcome(
    job: &Job,
    result: &Result<Outcome, ReplicationError>,
    started: Instant,
    receives: u32,
) {
    let latency_ms = started.elapsed().as_millis() as u64;
    let op = format!("{:?}", job.op).to_lowercase();
    let (bucket, key, dest) = (&job.source.bucket, &job.source.key, &job.destination.bucket);
    match result {
        Ok(Outcome::Replicated { bytes, verified }) => tracing::info!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes, latency_ms, outcome = "replicated", verified = %verified, "job done"),
        Ok(Outcome::Updated) => tracing::info!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes = 0u64, latency_ms, outcome = "updated", "job done"),
        Ok(Outcome::Paused(upload)) => tracing::info!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes = 0u64, latency_ms, outcome = "paused", parts_done = upload.parts_done,
            upload_id = %upload.upload_id, "multipart copy continues in the next invocation"),
        Ok(Outcome::Deleted) => tracing::info!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes = 0u64, latency_ms, outcome = "deleted", "job done"),
        Ok(Outcome::Skipped { reason }) => tracing::info!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes = 0u64, latency_ms, outcome = "skipped", reason = %reason, "job done"),
        Err(err) => tracing::warn!(
            bucket = %bucket, key = %key, destination = %dest, rule = %job.rule_id, op = %op,
            bytes = 0u64, latency_ms, outcome = "failed", reason = %err.reason, retryable = err.is_retryable(),
            receives, error = %err.detail, "job failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn batch() -> SqsEvent {
        let mut m = SqsMessage::default();
        m.message_id = Some("m1".into());
        m.body = Some(include_str!("../../tests/fixtures/jobs/put.json").to_string());
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
            let source = mock!(aws_sdk_s3::Client::head_object)
                .match_requests(|r| r.bucket() == Some("photos"))
                .then_output(|| {
                    HeadObjectOutput::builder()
                        .content_length(1024)
                        .e_tag(MD5)
                        .build()
                });
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
            let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&source, &replica, &copy]);
            let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, []);
            let job = Job::parse(include_str!("../../tests/fixtures/jobs/put.json")).unwrap();
            let result = replicator(s3, sqs).run(&job).await;
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
}
