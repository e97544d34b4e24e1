//! Why a job failed: a reason per failure S3 can answer with, whether a retry can
//! help, and the step of the copy it happened at.

use std::fmt;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::*;

/// Why a replication failed, in the vocabulary of S3's own replication failure
/// reasons where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FailureReason {
    SrcGetObjectNotPermitted,
    SrcHeadObjectNotPermitted,
    SrcGetObjectTaggingNotPermitted,
    SrcGetAclNotPermitted,
    /// A backfill or drift report could not list the source bucket.
    SrcListBucketNotPermitted,
    SrcBucketNotFound,
    /// The source object (or the version a copy was pinned to) went away under a copy:
    /// a race with a delete, which the copy settles by looking again.
    SrcObjectNotFound,
    SrcObjectInArchive,
    /// A bucket in another region than the request was sent to, that could not be
    /// followed there (a source in another region than the stack; a server that does
    /// not say which region).
    BucketInAnotherRegion,
    DstBucketNotFound,
    DstHeadObjectNotPermitted,
    DstPutObjectNotPermitted,
    DstDeleteObjectNotPermitted,
    DstPutTaggingNotPermitted,
    DstPutAclNotPermitted,
    /// Setting a replica's Object Lock retention or legal hold was refused.
    DstPutObjectLockNotPermitted,
    /// The source version is locked (Object Lock) and the destination bucket has no
    /// Object Lock: a replica there could be deleted or overwritten.
    DstObjectLockNotEnabled,
    /// The destination does not accept the keys it is written with (a wrong, rotated
    /// or expired key in the secret or profile): the secret is read again.
    DstCredentialsRejected,
    /// The process's own session keys expired under a request; the next has new ones.
    CredentialsExpired,
    InvalidStorageClass,
    InvalidRequest,
    PreconditionFailed,
    ChecksumMismatch,
    Throttled,
    ServiceUnavailable,
    Timeout,
    NetworkError,
    MalformedMessage,
    /// A job without the signature of this replicator's stages, or asking what the
    /// configuration would not (see `replicate::trust`): parked, never run.
    UntrustedJob,
    RuleNotConfigured,
    QueueSendFailed,
    LeaseExpired,
    Unknown,
}

impl FailureReason {
    /// Every reason, for the operator's tools (`dlq --reason`).
    pub const ALL: [FailureReason; 33] = [
        FailureReason::SrcGetObjectNotPermitted,
        FailureReason::SrcHeadObjectNotPermitted,
        FailureReason::SrcGetObjectTaggingNotPermitted,
        FailureReason::SrcGetAclNotPermitted,
        FailureReason::SrcListBucketNotPermitted,
        FailureReason::SrcBucketNotFound,
        FailureReason::SrcObjectNotFound,
        FailureReason::SrcObjectInArchive,
        FailureReason::BucketInAnotherRegion,
        FailureReason::DstBucketNotFound,
        FailureReason::DstHeadObjectNotPermitted,
        FailureReason::DstPutObjectNotPermitted,
        FailureReason::DstDeleteObjectNotPermitted,
        FailureReason::DstPutTaggingNotPermitted,
        FailureReason::DstPutAclNotPermitted,
        FailureReason::DstPutObjectLockNotPermitted,
        FailureReason::DstObjectLockNotEnabled,
        FailureReason::DstCredentialsRejected,
        FailureReason::CredentialsExpired,
        FailureReason::InvalidStorageClass,
        FailureReason::InvalidRequest,
        FailureReason::PreconditionFailed,
        FailureReason::ChecksumMismatch,
        FailureReason::Throttled,
        FailureReason::ServiceUnavailable,
        FailureReason::Timeout,
        FailureReason::NetworkError,
        FailureReason::MalformedMessage,
        FailureReason::UntrustedJob,
        FailureReason::RuleNotConfigured,
        FailureReason::QueueSendFailed,
        FailureReason::LeaseExpired,
        FailureReason::Unknown,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            FailureReason::SrcGetObjectNotPermitted => "SrcGetObjectNotPermitted",
            FailureReason::SrcHeadObjectNotPermitted => "SrcHeadObjectNotPermitted",
            FailureReason::SrcGetObjectTaggingNotPermitted => "SrcGetObjectTaggingNotPermitted",
            FailureReason::SrcGetAclNotPermitted => "SrcGetAclNotPermitted",
            FailureReason::SrcListBucketNotPermitted => "SrcListBucketNotPermitted",
            FailureReason::SrcBucketNotFound => "SrcBucketNotFound",
            FailureReason::SrcObjectNotFound => "SrcObjectNotFound",
            FailureReason::SrcObjectInArchive => "SrcObjectInArchive",
            FailureReason::BucketInAnotherRegion => "BucketInAnotherRegion",
            FailureReason::DstBucketNotFound => "DstBucketNotFound",
            FailureReason::DstHeadObjectNotPermitted => "DstHeadObjectNotPermitted",
            FailureReason::DstPutObjectNotPermitted => "DstPutObjectNotPermitted",
            FailureReason::DstDeleteObjectNotPermitted => "DstDeleteObjectNotPermitted",
            FailureReason::DstPutTaggingNotPermitted => "DstPutTaggingNotPermitted",
            FailureReason::DstPutAclNotPermitted => "DstPutAclNotPermitted",
            FailureReason::DstPutObjectLockNotPermitted => "DstPutObjectLockNotPermitted",
            FailureReason::DstObjectLockNotEnabled => "DstObjectLockNotEnabled",
            FailureReason::DstCredentialsRejected => "DstCredentialsRejected",
            FailureReason::CredentialsExpired => "CredentialsExpired",
            FailureReason::InvalidStorageClass => "InvalidStorageClass",
            FailureReason::InvalidRequest => "InvalidRequest",
            FailureReason::PreconditionFailed => "PreconditionFailed",
            FailureReason::ChecksumMismatch => "ChecksumMismatch",
            FailureReason::Throttled => "Throttled",
            FailureReason::ServiceUnavailable => "ServiceUnavailable",
            FailureReason::Timeout => "Timeout",
            FailureReason::NetworkError => "NetworkError",
            FailureReason::MalformedMessage => "MalformedMessage",
            FailureReason::UntrustedJob => "UntrustedJob",
            FailureReason::RuleNotConfigured => "RuleNotConfigured",
            FailureReason::QueueSendFailed => "QueueSendFailed",
            FailureReason::LeaseExpired => "LeaseExpired",
            FailureReason::Unknown => "Unknown",
        }
    }

    /// A destination refused the keys themselves (or a HEAD was refused, whose 403 has
    /// no body to say why): its secret may have been rotated, and is read again. A
    /// refusal that names its reason (a policy's or Object Lock's AccessDenied) is not:
    /// reading the keys again would not change it.
    pub fn is_destination_refusal(&self) -> bool {
        matches!(
            self,
            FailureReason::DstCredentialsRejected | FailureReason::DstHeadObjectNotPermitted
        )
    }

    /// Transient reasons can succeed on a later attempt without anyone changing
    /// anything; the rest need an operator. Rejected destination keys are retried:
    /// the secret may have been rotated (or temporary keys refreshed) since.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FailureReason::Throttled
                | FailureReason::CredentialsExpired
                | FailureReason::DstCredentialsRejected
                | FailureReason::ServiceUnavailable
                | FailureReason::Timeout
                | FailureReason::NetworkError
                | FailureReason::PreconditionFailed
                | FailureReason::SrcObjectNotFound
                // A transfer damaged on the way can succeed the next time; one that
                // never does ends in the failed queue with both values.
                | FailureReason::ChecksumMismatch
                | FailureReason::QueueSendFailed
                | FailureReason::LeaseExpired
                | FailureReason::Unknown
        )
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which request failed, so an error code can be turned into the right reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Step {
    SourceHead,
    SourceGet,
    SourceTagging,
    SourceAcl,
    /// Listing the source (backfill, drift report).
    SourceList,
    /// Reading the replica's provenance.
    DestinationHead,
    DestinationWrite,
    DestinationDelete,
    DestinationTagging,
    DestinationAcl,
    /// Object Lock at the destination: the bucket's configuration, a replica's
    /// retention and legal hold.
    DestinationLock,
}

impl S3Step {
    fn not_permitted(self) -> FailureReason {
        match self {
            S3Step::SourceHead => FailureReason::SrcHeadObjectNotPermitted,
            S3Step::SourceGet => FailureReason::SrcGetObjectNotPermitted,
            S3Step::SourceTagging => FailureReason::SrcGetObjectTaggingNotPermitted,
            S3Step::SourceAcl => FailureReason::SrcGetAclNotPermitted,
            S3Step::SourceList => FailureReason::SrcListBucketNotPermitted,
            S3Step::DestinationHead => FailureReason::DstHeadObjectNotPermitted,
            S3Step::DestinationWrite => FailureReason::DstPutObjectNotPermitted,
            S3Step::DestinationDelete => FailureReason::DstDeleteObjectNotPermitted,
            S3Step::DestinationTagging => FailureReason::DstPutTaggingNotPermitted,
            S3Step::DestinationAcl => FailureReason::DstPutAclNotPermitted,
            S3Step::DestinationLock => FailureReason::DstPutObjectLockNotPermitted,
        }
    }

    fn is_source(self) -> bool {
        matches!(
            self,
            S3Step::SourceHead
                | S3Step::SourceGet
                | S3Step::SourceTagging
                | S3Step::SourceAcl
                | S3Step::SourceList
        )
    }
}

/// A replication that did not complete.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct ReplicationError {
    pub reason: FailureReason,
    pub detail: String,
    /// The region S3 said the bucket is in (`x-amz-bucket-region`), when it answered a
    /// request sent to another region's endpoint.
    pub bucket_region: Option<String>,
}

impl ReplicationError {
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> Self {
        ReplicationError {
            reason,
            detail: detail.into(),
            bucket_region: None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.reason.is_retryable()
    }

    /// Turns an SDK error into a reason. `step` says which request it was, since S3
    /// answers "AccessDenied" alike for a source read and a destination write.
    pub fn from_sdk<E>(step: S3Step, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let detail = format!("{step:?}: {}", describe(err));
        let reason = match err {
            SdkError::TimeoutError(_) => FailureReason::Timeout,
            SdkError::DispatchFailure(_) => FailureReason::NetworkError,
            SdkError::ResponseError(_) => FailureReason::ServiceUnavailable,
            SdkError::ConstructionFailure(_) => FailureReason::InvalidRequest,
            SdkError::ServiceError(service) => classify_code(
                step,
                service.err().code(),
                Some(service.raw().status().as_u16()),
            ),
            _ => FailureReason::Unknown,
        };
        let bucket_region = err
            .raw_response()
            .and_then(|r| r.headers().get("x-amz-bucket-region"))
            .map(str::to_string);
        let mut detail = detail;
        if let (FailureReason::BucketInAnotherRegion, Some(region)) = (reason, &bucket_region) {
            detail.push_str(&format!(" (the bucket is in {region})"));
        }
        ReplicationError {
            reason,
            detail,
            bucket_region,
        }
    }
}

/// The reason for an S3 error code (or, for HEAD, which has no body, the status).
pub fn classify_code(step: S3Step, code: Option<&str>, status: Option<u16>) -> FailureReason {
    match code {
        // Keys that expired or were rotated (temporary keys in a destination's secret):
        // read again and retried, never parked.
        Some(
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired",
        ) if !step.is_source() => FailureReason::DstCredentialsRejected,
        // The process's own session expired under a request: the SDK refreshes it.
        Some("ExpiredToken" | "InvalidToken" | "TokenRefreshRequired") => {
            FailureReason::CredentialsExpired
        }
        Some(
            "AccessDenied"
            | "AllAccessDisabled"
            | "AccountProblem"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch",
        ) => step.not_permitted(),
        // The bucket is in another region than the request was sent to. The
        // replicator follows it for a destination on S3 (a client for its region);
        // one it cannot follow stays this.
        Some("PermanentRedirect" | "AuthorizationHeaderMalformed") => {
            FailureReason::BucketInAnotherRegion
        }
        Some("NoSuchBucket") if step.is_source() => FailureReason::SrcBucketNotFound,
        Some("NoSuchBucket") => FailureReason::DstBucketNotFound,
        Some("InvalidStorageClass") => FailureReason::InvalidStorageClass,
        Some("InvalidObjectState") => FailureReason::SrcObjectInArchive,
        // Every request of a copy names the source's key: a missing key is the source's.
        Some("NoSuchKey" | "NoSuchVersion") => FailureReason::SrcObjectNotFound,
        Some(
            "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequests",
        ) => FailureReason::Throttled,
        Some("RequestTimeout" | "RequestTimeTooSkewed") => FailureReason::Timeout,
        Some("InternalError" | "ServiceUnavailable" | "OperationAborted") => {
            FailureReason::ServiceUnavailable
        }
        // An upload aborted under a running copy (a crashed attempt's cleanup, a
        // lifecycle rule): the copy starts again, like a pin that failed.
        // A 409 ConditionalRequestConflict: another conditional write of the key was
        // under way; like a 412, the state the write counted on did not hold.
        Some("PreconditionFailed" | "NoSuchUpload" | "ConditionalRequestConflict") => {
            FailureReason::PreconditionFailed
        }
        Some(
            "InvalidArgument" | "InvalidRequest" | "KeyTooLongError" | "MetadataTooLarge"
            | "InvalidTag" | "EntityTooLarge",
        ) => FailureReason::InvalidRequest,
        _ => match status {
            Some(301) => FailureReason::BucketInAnotherRegion,
            Some(403) => step.not_permitted(),
            Some(412) => FailureReason::PreconditionFailed,
            Some(429 | 503) => FailureReason::Throttled,
            Some(408) => FailureReason::Timeout,
            Some(s) if s >= 500 => FailureReason::ServiceUnavailable,
            Some(s) if (400..500).contains(&s) => FailureReason::InvalidRequest,
            _ => FailureReason::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ALL holds every reason once: a reason added to the enum and not to ALL fails
    /// here, since `as_str` must then be matched for it.
    #[test]
    fn every_reason_is_listed_once() {
        let names: std::collections::BTreeSet<&str> =
            FailureReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), FailureReason::ALL.len());
        for r in FailureReason::ALL {
            let parsed: FailureReason =
                serde_json::from_value(serde_json::Value::String(r.as_str().into())).unwrap();
            assert_eq!(parsed, r);
        }
    }

    #[test]
    fn codes_map_to_reasons() {
        use FailureReason::*;
        let cases = [
            (
                S3Step::SourceGet,
                Some("AccessDenied"),
                Some(403),
                SrcGetObjectNotPermitted,
                false,
            ),
            (
                S3Step::DestinationWrite,
                Some("AccessDenied"),
                Some(403),
                DstPutObjectNotPermitted,
                false,
            ),
            (
                S3Step::DestinationWrite,
                Some("NoSuchBucket"),
                Some(404),
                DstBucketNotFound,
                false,
            ),
            (
                S3Step::DestinationWrite,
                Some("InvalidStorageClass"),
                Some(400),
                InvalidStorageClass,
                false,
            ),
            (
                S3Step::DestinationWrite,
                Some("SlowDown"),
                Some(503),
                Throttled,
                true,
            ),
            (
                S3Step::DestinationWrite,
                Some("InternalError"),
                Some(500),
                ServiceUnavailable,
                true,
            ),
            (
                S3Step::SourceHead,
                None,
                Some(403),
                SrcHeadObjectNotPermitted,
                false,
            ),
            (S3Step::SourceHead, None, Some(503), Throttled, true),
            (
                S3Step::DestinationAcl,
                None,
                Some(502),
                ServiceUnavailable,
                true,
            ),
            (
                S3Step::DestinationTagging,
                Some("AccessDenied"),
                None,
                DstPutTaggingNotPermitted,
                false,
            ),
            (
                S3Step::DestinationWrite,
                Some("PreconditionFailed"),
                Some(412),
                PreconditionFailed,
                true,
            ),
            (
                S3Step::DestinationWrite,
                Some("ConditionalRequestConflict"),
                Some(409),
                PreconditionFailed,
                true,
            ),
            // Temporary keys in a destination's secret, expired or rotated: the secret
            // is read again and the job retried, not parked as a bad request.
            (
                S3Step::DestinationWrite,
                Some("ExpiredToken"),
                Some(400),
                DstCredentialsRejected,
                true,
            ),
            (
                S3Step::DestinationDelete,
                Some("InvalidToken"),
                Some(400),
                DstCredentialsRejected,
                true,
            ),
            (
                S3Step::SourceHead,
                Some("TokenRefreshRequired"),
                Some(400),
                CredentialsExpired,
                true,
            ),
        ];
        for (step, code, status, reason, retryable) in cases {
            let got = classify_code(step, code, status);
            assert_eq!(got, reason, "{step:?} {code:?} {status:?}");
            assert_eq!(got.is_retryable(), retryable, "{reason}");
        }
    }
}
