//! Multipart copies: server-side (UploadPartCopy) within one endpoint, streamed (ranged
//! GET, then UploadPart) to another, parts in parallel with bounded concurrency, every
//! part pinned to the source's ETag so a concurrent overwrite fails the copy instead of
//! mixing two objects.
//!
//! A copy that cannot finish before its Lambda invocation ends starts no new part once
//! the deadline has passed and pauses; the next invocation carries on from what
//! ListParts says is done. Every way out of a copy either completes the upload or
//! aborts it: abandoned parts are billed as storage.
//!
//! [`upload`] holds an upload's lifecycle (start, carry on, complete, abort), [`parts`]
//! the part copies and the memory streamed parts may hold, [`pause`] when copies stop
//! starting parts.

mod parts;
mod pause;
mod upload;

pub use parts::MemoryBudget;
pub use pause::{return_freed_part_buffers, until_stopped, within};
pub use upload::{abort, expected_replica, proceed, start, written_object, Progress};

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;
/// S3's most parts per upload.
pub const MAX_PARTS: u64 = 10_000;

/// When copies go multipart, and in what pieces. The defaults come from `make bench`
/// (see doc/LARGE_OBJECTS.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultipartSettings {
    /// Same endpoint: objects larger than this are copied part by part
    /// (UploadPartCopy); smaller ones with one CopyObject, which stops at 5 GiB.
    pub copy_threshold: u64,
    /// Same endpoint: bytes per UploadPartCopy. Nothing passes through memory, so
    /// parts are large: fewer requests.
    pub copy_part_size: u64,
    /// Another endpoint: objects larger than this stream in parts (and can continue
    /// in a later invocation); smaller ones stream through one PutObject.
    pub stream_threshold: u64,
    /// Another endpoint: bytes per part. Memory holds part size × concurrency.
    pub stream_part_size: u64,
    /// Parts in flight at once.
    pub concurrency: usize,
}

impl Default for MultipartSettings {
    fn default() -> Self {
        MultipartSettings {
            copy_threshold: GIB,
            copy_part_size: 256 * MIB,
            stream_threshold: 64 * MIB,
            stream_part_size: 16 * MIB,
            concurrency: 8,
        }
    }
}

impl MultipartSettings {
    /// Bytes of streamed parts one process holds at once, whatever the number of
    /// copies running: part size × concurrency.
    pub fn memory_budget(&self) -> u64 {
        self.stream_part_size
            .saturating_mul(self.concurrency.max(1) as u64)
    }

    pub fn threshold(&self, same_endpoint: bool) -> u64 {
        if same_endpoint {
            self.copy_threshold
        } else {
            self.stream_threshold
        }
    }

    /// The part size for an object of `size` bytes: the destination's PartSize, or
    /// ours, grown if 10,000 parts would not cover the object.
    pub fn part_size(&self, same_endpoint: bool, destination: Option<u64>, size: u64) -> u64 {
        let ours = if same_endpoint {
            self.copy_part_size
        } else {
            self.stream_part_size
        };
        destination
            .unwrap_or(ours)
            .max(size.div_ceil(MAX_PARTS))
            .max(1)
    }
}

/// The byte ranges (inclusive) of the parts of an object of `size` bytes.
pub fn ranges(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    let part = part_size.max(1);
    (0..size.div_ceil(part))
        .map(|i| (i * part, ((i + 1) * part).min(size) - 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parts::*;
    use super::pause::*;
    use super::*;

    use crate::copy::conditions::DestinationConditions;
    use crate::errors::FailureReason;
    use crate::queues::job::{Continuation, Job};
    use aws_sdk_s3::Client;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use std::time::Instant;

    #[test]
    fn parts_cover_the_object_exactly() {
        assert_eq!(ranges(25, 10), vec![(0, 9), (10, 19), (20, 24)]);
        assert_eq!(ranges(20, 10), vec![(0, 9), (10, 19)]);
        let s = MultipartSettings::default();
        assert_eq!(s.part_size(false, Some(20), 25), 20);
        // 5 TiB in 256 MiB parts would be 20,480 parts: the part grows to fit 10,000.
        let size = 5 * 1024 * GIB;
        let parts = ranges(size, s.part_size(true, None, size));
        assert!(parts.len() <= 10_000);
        assert_eq!(parts.last().unwrap().1, size - 1);
        assert!(parts.windows(2).all(|w| w[1].0 == w[0].1 + 1));
    }

    #[tokio::test]
    async fn a_deadline_is_seen_only_inside_its_scope() {
        assert!(!out_of_time());
        within(Some(Instant::now()), async { assert!(out_of_time()) }).await;
        within(Some(Instant::now() + Duration::from_secs(60)), async {
            assert!(!out_of_time())
        })
        .await;
        within(None, async { assert!(!out_of_time()) }).await;
    }

    #[tokio::test]
    async fn a_stop_pauses_copies_and_keeps_any_deadline() {
        let stopping = Arc::new(AtomicBool::new(false));
        until_stopped(stopping.clone(), async {
            assert!(!out_of_time());
            stopping.store(true, Ordering::Relaxed);
            assert!(out_of_time());
            stopping.store(false, Ordering::Relaxed);
            // A Lambda deadline inside the worker's scope: both hold.
            within(Some(Instant::now()), async { assert!(out_of_time()) }).await;
            within(Some(Instant::now() + Duration::from_secs(60)), async {
                stopping.store(true, Ordering::Relaxed);
                assert!(out_of_time());
            })
            .await;
        })
        .await;
    }

    #[tokio::test]
    async fn a_failed_part_aborts_the_upload_and_never_completes_it() {
        use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput;
        use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;

        let part = mock!(Client::upload_part_copy)
            .sequence()
            .http_response(|| {
                HttpResponse::new(
                    StatusCode::try_from(500).unwrap(),
                    SdkBody::from(
                        "<Error><Code>InternalError</Code><Message>injected</Message></Error>",
                    ),
                )
            })
            .repeatedly()
            .build();
        let complete = mock!(Client::complete_multipart_upload)
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        let abort = mock!(Client::abort_multipart_upload)
            .match_requests(|r| r.upload_id() == Some("u-1"))
            .then_output(|| AbortMultipartUploadOutput::builder().build());
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&part, &complete, &abort]);

        let config = crate::config::Config::parse(
            r#"{"Sources": [{"Bucket": "photos", "ReplicationConfiguration": {"Rules": [{"ID": "everything", "Status": "Enabled",
                "Priority": 1, "Filter": {}, "Destination": {"Bucket": "photos-replica", "Replicator": {"AclMode": "none"}},
                "DeleteMarkerReplication": {"Status": "Disabled"}}]}}]}"#,
        )
        .unwrap();
        let destination = &config.rule("photos", "everything").unwrap().destination;
        let job = Job::parse(include_str!("../../../../tests/fixtures/jobs/put.json")).unwrap();
        let upload = Continuation {
            upload_id: "u-1".into(),
            etag: "\"abc\"".into(),
            version_id: None,
            size: 25,
            part_size: 10,
            checksum_algorithm: None,
            tagging: None,
            replica_etag: None,
            parts_done: 0,
            invocations: 0,
            sig: None,
        };
        let memory = MemoryBudget::new(20);
        let conditions = DestinationConditions::new(
            crate::copy::conditions::PreconditionMode::Enforced,
            crate::copy::conditions::WriteOrder::Adaptive,
        );
        let err = proceed(
            &client,
            &client,
            &job,
            destination,
            &upload,
            2,
            &memory,
            &conditions,
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason, FailureReason::ServiceUnavailable);
        assert!(err.is_retryable());
        assert_eq!(
            (abort.num_calls(), complete.num_calls()),
            (1, 0),
            "aborted, never completed"
        );
    }
}
