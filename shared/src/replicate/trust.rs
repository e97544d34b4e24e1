//! What a job on a queue must show before anything is read for it. Anyone with
//! `sqs:SendMessage` on the work or retry queue can put a message there, and the
//! replicate role may read every source object and write every destination: a job is
//! believed only with a signature our stages made (when a signing key is configured),
//! and only for what the configuration would ask anyway — its rule's destination, a key
//! inside the rule's prefix, a continuation within the bounds our own copies use, and a
//! backfill record where this process keeps them. One that fails is parked as
//! `UntrustedJob`, never run.

use super::Replicator;
use crate::copy::multipart::{MAX_PARTS, MIB};
use crate::errors::{FailureReason, ReplicationError};
use crate::queues::job::Job;

impl Replicator {
    /// Why the job cannot be believed, if it cannot.
    pub(super) fn untrusted(&self, job: &Job) -> Option<ReplicationError> {
        let refuse =
            |detail: String| Some(ReplicationError::new(FailureReason::UntrustedJob, detail));
        if !job.verify(&self.signer) {
            return refuse(
                "the job carries no signature of this replicator's stages: it was not made by ingest, a backfill or the replicator itself".into(),
            );
        }
        // A rule that is gone is the configuration's change, said as such later.
        let rule = self.config.rule(&job.source.bucket, &job.rule_id)?;
        if rule.destination.bucket != job.destination.bucket {
            return refuse(format!(
                "the job names destination {}, but rule {:?} replicates to {}",
                job.destination.bucket, rule.id, rule.destination.bucket
            ));
        }
        if !rule.filter.matches_key(&job.source.key) {
            return refuse(format!(
                "the key is outside rule {:?}'s filter (prefix {:?})",
                rule.id, rule.filter.prefix
            ));
        }
        if let Some(upload) = &job.upload {
            let same = rule.destination.is_same_endpoint();
            let ours = self
                .multipart
                .part_size(same, rule.destination.part_size, upload.size);
            let largest = ours.max(upload.size.div_ceil(MAX_PARTS));
            if upload.part_size < 5 * MIB || upload.part_size > largest {
                return refuse(format!(
                    "the continuation's part size {} is outside what this copy uses (5 MiB to {largest})",
                    upload.part_size
                ));
            }
        }
        if let Some(report) = job.backfill.as_ref().and_then(|b| b.report.as_deref()) {
            if let Err(detail) = self.report_allowed(report) {
                return refuse(detail);
            }
        }
        None
    }

    /// Whether backfill records may be written at `report`: under this process's own
    /// `BACKFILL_REPORT_URL`, and nowhere when it names none.
    pub(super) fn report_allowed(&self, report: &str) -> Result<(), String> {
        let var = crate::config::settings::BACKFILL_REPORT_VAR;
        match &self.report_location {
            Some(ours) if report.trim_end_matches('/') == ours.trim_end_matches('/') => Ok(()),
            Some(ours) => Err(format!(
                "the backfill record is to be written at {report}, but {var} is {ours}"
            )),
            None => Err(format!(
                "the backfill record is to be written at {report}, but {var} is not set here: backfill records go only where the process's environment says"
            )),
        }
    }
}
