//! The job message: one object, one destination, one operation. Versioned JSON so a
//! queue full of old jobs survives an upgrade, and self-describing so an operator
//! reading the failed queue needs nothing else.

use serde::{Deserialize, Serialize};

use crate::config::keys::Signer;
use crate::errors::{FailureReason, ReplicationError};
use crate::events::{Change, ObjectEvent};
use crate::metrics::Dimensions;

pub const JOB_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Put,
    Delete,
    Tags,
    Acl,
    /// The replica's Object Lock retention and legal hold become the source's.
    Lock,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceObject {
    pub bucket: String,
    /// Decoded: exactly the key S3 stores.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// For deletes: a delete marker (or plain delete) rather than a version removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
    /// Who made the change, as the event said (see `ObjectEvent::requester`): a
    /// delete this replicator made is never sent back as if a user had made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
}

/// A job names its destination's bucket; where it lives (an endpoint, its keys) is the
/// rule's to say, never the message's: a URL in a queue message could carry keys, and a
/// message could name any URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDestination {
    pub bucket: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub v: u32,
    pub op: Operation,
    pub source: SourceObject,
    pub rule_id: String,
    pub destination: JobDestination,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Set when the replicate handler forwards its own failure to the retry queue (the
    /// attempt is already counted). A job that reaches the retry queue without it was
    /// redriven there by SQS: the worker holding it crashed or timed out, and that
    /// attempt is counted by the retry handler.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// A multipart copy that did not finish in one Lambda invocation: the next one
    /// carries on from the parts already uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Continuation>,
    /// The backfill that listed this object, when no event did. Its `etag`, `size`
    /// and `event_time` (the last-modified time) are what the listing said, so a
    /// replica already up to date is recognised with one HEAD of the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillRef>,
    /// The signature of what the job asks (see [`Job::sign`]), made by the stage that
    /// made the job. Anyone with `sqs:SendMessage` can put a message on a queue; only
    /// the key holder can sign one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

/// The backfill a job belongs to, and where its outcome is recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillRef {
    pub id: String,
    /// `s3://BUCKET/PREFIX` of the backfill's record, when it keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// The destination's listing showed no object at this key: there is no replica
    /// to read before copying.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
}

/// A multipart copy in progress. Which parts are done is not stored: ListParts on the
/// upload says, so a crash after the last checkpoint loses nothing, and a 10,000-part
/// upload still fits in a queue message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Continuation {
    pub upload_id: String,
    /// The source state every part is pinned to.
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub size: u64,
    pub part_size: u64,
    /// The checksum algorithm the upload was created with (the source's), which every
    /// part must be sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    /// The source's tags the upload was created with (a query string), so a tag change
    /// made while the copy ran is applied when it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagging: Option<String>,
    /// The ETag of the replica this copy replaces, or none when there was no replica:
    /// the upload completes only if the replica is still that (If-Match), or still
    /// absent (If-None-Match), so a newer write that landed meanwhile wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_etag: Option<String>,
    /// Parts done when this was written, for the log.
    pub parts_done: u32,
    /// Invocations the copy has run in so far.
    pub invocations: u32,
    /// The signature of the continuation with its job's (see [`Job::sign`]): an upload
    /// id names parts someone else may have uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    pub reason: FailureReason,
    pub detail: String,
}

impl Job {
    pub fn from_event(
        event: &ObjectEvent,
        op: Operation,
        rule_id: &str,
        destination: JobDestination,
    ) -> Job {
        Job {
            v: JOB_VERSION,
            op,
            source: SourceObject {
                bucket: event.bucket.clone(),
                key: event.key.clone(),
                version_id: event.version_id.clone(),
                etag: event.etag.clone(),
                size: event.size,
                sequencer: event.sequencer.clone(),
                event_time: event.event_time.clone(),
                delete_marker: event.change == Change::DeleteMarker,
                requester: event.requester.clone(),
            },
            rule_id: rule_id.to_string(),
            destination,
            attempts: 0,
            first_failure: None,
            last_error: None,
            forwarded: false,
            upload: None,
            backfill: None,
            sig: None,
        }
    }

    /// Parses a queue message body. Anything else than a v1 job is a permanent
    /// `MalformedMessage` failure with the reason spelled out.
    pub fn parse(body: &str) -> Result<Job, ReplicationError> {
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| {
            ReplicationError::new(
                FailureReason::MalformedMessage,
                format!("job body is not JSON: {e}"),
            )
        })?;
        match value.get("v").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(JOB_VERSION) => {}
            Some(v) => {
                return Err(ReplicationError::new(
                    FailureReason::MalformedMessage,
                    format!("job version {v} is not understood by this release (it reads version {JOB_VERSION})"),
                ))
            }
            None => {
                return Err(ReplicationError::new(
                    FailureReason::MalformedMessage,
                    "job has no version field \"v\"; is this queue fed by s3-replicator's ingest?",
                ))
            }
        }
        let job: Job = serde_json::from_value(value).map_err(|e| {
            ReplicationError::new(
                FailureReason::MalformedMessage,
                format!("job does not parse: {e}"),
            )
        })?;
        if job.source.key.is_empty()
            || job.source.bucket.is_empty()
            || job.destination.bucket.is_empty()
        {
            return Err(ReplicationError::new(
                FailureReason::MalformedMessage,
                "job names an empty bucket or key",
            ));
        }
        Ok(job)
    }

    /// The event's sequencer, when it has one that can be compared.
    pub fn sequencer(&self) -> Option<&str> {
        self.source
            .sequencer
            .as_deref()
            .filter(|s| crate::events::sequencer::is_valid(s))
    }

    /// Whom the job's metrics are about.
    pub fn dimensions(&self) -> Dimensions {
        Dimensions {
            source_bucket: self.source.bucket.clone(),
            destination_bucket: self.destination.bucket.clone(),
            rule_id: self.rule_id.clone(),
        }
    }

    /// From the event (S3's eventTime) to now, in milliseconds. A backfill's job has no
    /// event (its time is the object's last modification, maybe years ago): it has no
    /// replication latency, and would only bury the events' in the percentiles.
    pub fn latency_ms(&self) -> Option<f64> {
        if self.backfill.is_some() {
            return None;
        }
        let at = self.source.event_time.as_deref()?;
        let at =
            aws_smithy_types::DateTime::from_str(at, aws_smithy_types::date_time::Format::DateTime)
                .ok()?;
        let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
        let ms = (now.as_secs_f64() - at.as_secs_f64()) * 1000.0;
        (ms >= 0.0).then_some(ms)
    }

    /// Counts a failed attempt and keeps its reason; the first failure's time stays.
    pub fn record_failure(&mut self, err: &ReplicationError) {
        self.attempts += 1;
        self.first_failure.get_or_insert_with(now_rfc3339);
        self.last_error = Some(LastError {
            reason: err.reason,
            detail: err.detail.clone(),
        });
    }

    /// The same job with no multipart copy in progress (after its upload was aborted).
    pub fn without_upload(&self) -> Job {
        Job {
            upload: None,
            ..self.clone()
        }
    }

    /// Back to a fresh job, for a redrive after the cause was fixed.
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.first_failure = None;
        self.last_error = None;
        self.forwarded = false;
    }

    /// The message body. Characters SQS refuses in a message (U+FFFE and U+FFFF, valid
    /// in S3 keys; and controls but tab and line breaks) are written as JSON escapes,
    /// which read back as the same key.
    pub fn to_body(&self) -> String {
        sqs_safe(serde_json::to_string(self).expect("a Job always serializes"))
    }

    /// What the signature covers: everything an event or a listing decided (the
    /// object, the rule, the destination, the backfill and its record), and nothing a
    /// later stage adds (attempts, errors, the continuation, which has its own).
    fn signed_parts(&self) -> Vec<String> {
        let o = |v: &Option<String>| match v {
            Some(v) => format!("={v}"),
            None => String::new(),
        };
        let s = &self.source;
        let b = self.backfill.as_ref();
        vec![
            self.v.to_string(),
            format!("{:?}", self.op),
            s.bucket.clone(),
            s.key.clone(),
            o(&s.version_id),
            o(&s.etag),
            o(&s.size.map(|n| n.to_string())),
            o(&s.sequencer),
            o(&s.event_time),
            s.delete_marker.to_string(),
            o(&s.requester),
            self.rule_id.clone(),
            self.destination.bucket.clone(),
            o(&b.map(|b| b.id.clone())),
            o(&b.and_then(|b| b.report.clone())),
            b.is_some_and(|b| b.absent).to_string(),
        ]
    }

    fn upload_parts(&self, upload: &Continuation) -> Vec<String> {
        vec![
            self.sig.clone().unwrap_or_default(),
            upload.upload_id.clone(),
            upload.etag.clone(),
            upload.version_id.clone().unwrap_or_default(),
            upload.size.to_string(),
            upload.part_size.to_string(),
            upload.checksum_algorithm.clone().unwrap_or_default(),
            upload.tagging.clone().unwrap_or_default(),
            upload.replica_etag.clone().unwrap_or_default(),
        ]
    }

    /// Signs the job (and its continuation, if any) with `signer`; unsigned, nothing.
    pub fn sign(&mut self, signer: &Signer) {
        let parts = self.signed_parts();
        self.sig = signer.sign(JOB_DOMAIN, &refs(&parts));
        if let Some(upload) = self.upload.take() {
            let parts = self.upload_parts(&upload);
            let sig = signer.sign(UPLOAD_DOMAIN, &refs(&parts));
            self.upload = Some(Continuation { sig, ..upload });
        }
    }

    /// Whether the job (and its continuation) carries the signature of a stage of this
    /// replicator; always, unsigned.
    pub fn verify(&self, signer: &Signer) -> bool {
        let parts = self.signed_parts();
        if !signer.verify(JOB_DOMAIN, &refs(&parts), self.sig.as_deref()) {
            return false;
        }
        self.upload.as_ref().is_none_or(|upload| {
            let parts = self.upload_parts(upload);
            signer.verify(UPLOAD_DOMAIN, &refs(&parts), upload.sig.as_deref())
        })
    }
}

const JOB_DOMAIN: &str = "s3-replicator/job/v1";
const UPLOAD_DOMAIN: &str = "s3-replicator/continuation/v1";

fn refs(parts: &[String]) -> Vec<&str> {
    parts.iter().map(String::as_str).collect()
}

/// Now, as S3 and SQS write times (`2026-01-01T00:00:00Z`).
pub fn now_rfc3339() -> String {
    aws_smithy_types::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// JSON text with every character SQS does not accept in a message written as a
/// `\uXXXX` escape. Such characters can only be inside strings here (the JSON around
/// them is ASCII), where the escape means the same character.
pub fn sqs_safe(json: String) -> String {
    let refused = |c: char| !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    if !json.chars().any(refused) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if refused(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_runs_from_the_event_and_a_backfill_has_none() {
        let mut job = Job::parse(include_str!("../../../tests/fixtures/jobs/put.json")).unwrap();
        let a_minute_ago = aws_smithy_types::DateTime::from(
            std::time::SystemTime::now() - std::time::Duration::from_secs(60),
        );
        job.source.event_time = Some(
            a_minute_ago
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap(),
        );
        let ms = job.latency_ms().unwrap();
        assert!((59_000.0..61_000.0).contains(&ms), "{ms}");
        job.backfill = Some(BackfillRef {
            id: "bf-1".into(),
            report: None,
            absent: false,
        });
        assert_eq!(job.latency_ms(), None);
        job.backfill = None;
        job.source.event_time = None;
        assert_eq!(job.latency_ms(), None);
    }

    #[test]
    fn round_trips_and_rejects_what_is_not_a_job() {
        let text = include_str!("../../../tests/fixtures/jobs/put.json");
        let job = Job::parse(text).unwrap();
        assert_eq!(job.op, Operation::Put);
        assert_eq!(job.source.key, "photos/2024/beach day+1.jpg");
        assert_eq!(Job::parse(&job.to_body()).unwrap(), job);

        for (body, needle) in [
            ("", "not JSON"),
            ("{}", "no version"),
            ("{\"v\": 2}", "version 2"),
            ("{\"v\": 1, \"op\": \"put\"}", "does not parse"),
            ("{\"v\": 1, \"op\": \"move\", \"source\": {\"bucket\": \"a\", \"key\": \"k\"}, \"rule_id\": \"r\", \"destination\": {\"bucket\": \"b\"}}", "does not parse"),
            ("{\"v\": 1, \"op\": \"put\", \"source\": {\"bucket\": \"a\", \"key\": \"\"}, \"rule_id\": \"r\", \"destination\": {\"bucket\": \"b\"}}", "empty"),
        ] {
            let err = Job::parse(body).unwrap_err();
            assert_eq!(err.reason, FailureReason::MalformedMessage);
            assert!(!err.is_retryable());
            assert!(err.detail.contains(needle), "{body}: {err}");
        }
    }

    /// A job that anyone could have sent is believed only with a stage's signature:
    /// changing what it asks (the key, the sequencer, the destination, where a backfill
    /// is recorded, an upload) breaks it; what later stages count does not.
    #[test]
    fn a_signature_covers_what_the_job_asks() {
        let signer = Signer::with_keys("0123456789abcdef0123456789abcdef-jobs", None).unwrap();
        let mut job = Job::parse(include_str!("../../../tests/fixtures/jobs/put.json")).unwrap();
        assert!(!job.verify(&signer));
        job.sign(&signer);
        assert!(job.verify(&signer));
        let parsed = Job::parse(&job.to_body()).unwrap();
        assert!(parsed.verify(&signer));
        let mut counted = parsed.clone();
        counted.record_failure(&ReplicationError::new(FailureReason::Throttled, "503"));
        counted.forwarded = true;
        assert!(counted.verify(&signer));
        let forged: [fn(&mut Job); 5] = [
            |j| j.source.key = "secrets/payroll.csv".into(),
            |j| j.source.sequencer = Some("FFFFFFFFFFFFFFFFFFFF".into()),
            |j| j.destination.bucket = "exfiltration".into(),
            |j| j.rule_id = "another".into(),
            |j| {
                j.backfill = Some(BackfillRef {
                    id: "b".into(),
                    report: Some("s3://elsewhere/x".into()),
                    absent: false,
                })
            },
        ];
        for change in forged {
            let mut j = job.clone();
            change(&mut j);
            assert!(!j.verify(&signer), "{j:?}");
        }
        // A continuation is signed with its job; parking drops it and the job holds.
        let mut paused = job.clone();
        paused.upload = Some(Continuation {
            upload_id: "u".into(),
            etag: "\"e\"".into(),
            version_id: None,
            size: 10,
            part_size: 5,
            checksum_algorithm: None,
            tagging: None,
            replica_etag: None,
            parts_done: 1,
            invocations: 1,
            sig: None,
        });
        assert!(!paused.verify(&signer));
        paused.sign(&signer);
        assert!(paused.verify(&signer));
        let mut bigger = paused.clone();
        bigger.upload.as_mut().unwrap().part_size = 1 << 40;
        assert!(!bigger.verify(&signer));
        assert!(paused.without_upload().verify(&signer));
    }

    /// Keys S3 allows and SQS refuses in a message body travel escaped.
    #[test]
    fn keys_sqs_refuses_travel_escaped() {
        let mut job = Job::parse(include_str!("../../../tests/fixtures/jobs/put.json")).unwrap();
        job.source.key = "odd\u{FFFE}key\u{FFFF}\u{1}".into();
        let body = job.to_body();
        assert!(
            !body.contains('\u{FFFE}') && !body.contains('\u{FFFF}') && !body.contains('\u{1}')
        );
        assert!(
            body.contains("\\ufffe") && body.contains("\\u0001"),
            "{body}"
        );
        assert_eq!(Job::parse(&body).unwrap().source.key, job.source.key);
    }
}
