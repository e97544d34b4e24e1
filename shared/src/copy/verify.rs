//! Checks what a copy wrote against the source it was read from, and says what was
//! compared. An ETag is only evidence when both sides are plain MD5s (single part,
//! no KMS); a checksum only when both are full-object values of one algorithm; the
//! size always.

use std::fmt;

use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, ServerSideEncryption};

use crate::copy::SourceState;
use crate::errors::{FailureReason, ReplicationError};

/// What a verification compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Both ETags are MD5s of the content, and equal.
    ETag,
    /// Both sides report the same full-object checksum of this algorithm.
    Checksum(&'static str),
    /// Only the size could be compared.
    Size,
}

impl Verified {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verified::ETag => "etag",
            Verified::Checksum(algorithm) => algorithm,
            Verified::Size => "size",
        }
    }
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object's checksum values as S3 reports them (base64; composite ones end in -N).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checksums {
    pub crc64nvme: Option<String>,
    pub crc32c: Option<String>,
    pub crc32: Option<String>,
    pub sha256: Option<String>,
    pub sha1: Option<String>,
}

/// Reads the checksum fields that HeadObject, CopyObjectResult, PutObject and
/// CompleteMultipartUpload outputs all have under the same names.
#[macro_export]
macro_rules! checksums_of {
    ($out:expr) => {{
        let out = $out;
        $crate::copy::verify::Checksums {
            crc64nvme: out.checksum_crc64_nvme().map(str::to_string),
            crc32c: out.checksum_crc32_c().map(str::to_string),
            crc32: out.checksum_crc32().map(str::to_string),
            sha256: out.checksum_sha256().map(str::to_string),
            sha1: out.checksum_sha1().map(str::to_string),
        }
    }};
}

impl Checksums {
    pub fn get(&self, algorithm: &ChecksumAlgorithm) -> Option<&str> {
        match algorithm {
            ChecksumAlgorithm::Crc64Nvme => self.crc64nvme.as_deref(),
            ChecksumAlgorithm::Crc32C => self.crc32c.as_deref(),
            ChecksumAlgorithm::Crc32 => self.crc32.as_deref(),
            ChecksumAlgorithm::Sha256 => self.sha256.as_deref(),
            ChecksumAlgorithm::Sha1 => self.sha1.as_deref(),
            _ => None,
        }
    }

    /// The algorithm of the strongest checksum present, full-object or composite:
    /// the one a replica is written with.
    pub fn algorithm(&self) -> Option<ChecksumAlgorithm> {
        Self::STRONGEST_FIRST
            .into_iter()
            .find(|a| self.get(a).is_some())
    }

    /// The strongest full-object checksum present (a composite one describes parts,
    /// and parts differ between source and replica).
    pub fn full_object(&self) -> Option<(ChecksumAlgorithm, &str)> {
        Self::STRONGEST_FIRST.into_iter().find_map(|a| {
            let value = self.get(&a)?;
            (!value.contains('-')).then_some((a, value))
        })
    }

    const STRONGEST_FIRST: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha1,
    ];
}

/// What the destination reports about the object a copy wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    pub etag: Option<String>,
    pub checksums: Checksums,
    pub size: Option<u64>,
    /// The replica is encrypted with KMS: its ETag is not an MD5 of the content.
    pub kms: bool,
    /// The version the write made, on a versioned destination.
    pub version_id: Option<String>,
    /// The server refused the write's Object Lock headers, and it was sent without
    /// them: the replica's lock is set after (see [`crate::copy::lock`]).
    pub lock_dropped: bool,
    /// The replica's Object Lock, when the answer shows it (a HEAD's).
    pub lock: Option<crate::copy::lock::Lock>,
}

impl Written {
    pub fn kms(encryption: Option<&ServerSideEncryption>) -> bool {
        matches!(
            encryption,
            Some(ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)
        )
    }
}

/// A content MD5 as an ETag: 32 hex digits, quoted or not. Multipart ETags end in -N.
fn plain_md5(etag: &str) -> Option<String> {
    let bare = etag.trim_matches('"');
    (bare.len() == 32 && bare.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| bare.to_ascii_lowercase())
}

/// What can be compared without asking the destination again; `None` when only the
/// size is left and the write did not report it (a HEAD of the replica will).
pub fn verify(
    source: &SourceState,
    written: &Written,
) -> Option<Result<Verified, ReplicationError>> {
    let head = &source.head;
    let expected_size = source.size();
    if let Some(size) = written.size {
        if size != expected_size {
            return Some(Err(mismatch(format!(
                "size: the source has {expected_size} bytes, the replica {size}"
            ))));
        }
    }
    let source_kms =
        Written::kms(head.server_side_encryption()) || head.sse_customer_algorithm().is_some();
    let etags = (
        head.e_tag().and_then(plain_md5),
        written.etag.as_deref().and_then(plain_md5),
    );
    if let (Some(source_md5), Some(replica_md5), false, false) =
        (&etags.0, &etags.1, source_kms, written.kms)
    {
        return Some(if source_md5 == replica_md5 {
            Ok(Verified::ETag)
        } else {
            Err(mismatch(format!(
                "ETag (content MD5): the source has {source_md5}, the replica {replica_md5}"
            )))
        });
    }
    let source_sums = checksums_of!(head);
    if let Some((algorithm, expected)) = source_full_object(head, &source_sums) {
        if let Some(actual) = written.checksums.get(&algorithm) {
            if !actual.contains('-') {
                let name = checksum_name(&algorithm);
                return Some(if actual == expected {
                    Ok(Verified::Checksum(name))
                } else {
                    Err(mismatch(format!(
                        "{name}: the source has {expected}, the replica {actual}"
                    )))
                });
            }
        }
    }
    written.size.map(|_| Ok(Verified::Size))
}

/// The source's full-object checksum, if it has one. S3 says which kind a checksum is
/// with `x-amz-checksum-type`; without it (older objects, moto), an object written in
/// parts (an ETag ending in `-N`) has a composite checksum of its parts, whether or not
/// the value carries the `-N` suffix, unless the algorithm is CRC64NVME, which is always
/// full-object.
pub fn source_full_object<'a>(
    head: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
    sums: &'a Checksums,
) -> Option<(ChecksumAlgorithm, &'a str)> {
    let (algorithm, value) = sums.full_object()?;
    let full = match head.checksum_type() {
        Some(ChecksumType::FullObject) => true,
        Some(ChecksumType::Composite) => false,
        _ => {
            algorithm == ChecksumAlgorithm::Crc64Nvme
                || !head.e_tag().is_some_and(is_multipart_etag)
        }
    };
    full.then_some((algorithm, value))
}

/// A multipart upload's ETag: an MD5 of the parts' MD5s, then `-` and the part count.
fn is_multipart_etag(etag: &str) -> bool {
    etag.trim_matches('"')
        .rsplit_once('-')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub fn checksum_name(algorithm: &ChecksumAlgorithm) -> &'static str {
    match algorithm {
        ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
        ChecksumAlgorithm::Crc32C => "CRC32C",
        ChecksumAlgorithm::Crc32 => "CRC32",
        ChecksumAlgorithm::Sha256 => "SHA256",
        ChecksumAlgorithm::Sha1 => "SHA1",
        _ => "checksum",
    }
}

fn mismatch(detail: String) -> ReplicationError {
    ReplicationError::new(
        FailureReason::ChecksumMismatch,
        format!("the replica does not match its source: {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::head_object::HeadObjectOutput;

    fn source(etag: &str, crc32: Option<&str>) -> SourceState {
        SourceState::new(
            HeadObjectOutput::builder()
                .content_length(10)
                .e_tag(etag)
                .set_checksum_crc32(crc32.map(str::to_string))
                .build(),
        )
    }

    const MD5: &str = "\"9e107d9d372bb6826bd81d3542a419d6\"";

    #[test]
    fn compares_what_both_sides_can_vouch_for() {
        let written = |etag: &str, crc32: Option<&str>, size: Option<u64>, kms: bool| Written {
            etag: Some(etag.into()),
            checksums: Checksums {
                crc32: crc32.map(str::to_string),
                ..Default::default()
            },
            size,
            kms,
            ..Default::default()
        };
        // Plain MD5s on both sides: the ETag decides, case and quotes aside.
        let v = verify(
            &source(MD5, None),
            &written(&MD5.to_uppercase(), None, None, false),
        );
        assert_eq!(v.unwrap().unwrap(), Verified::ETag);
        let v = verify(
            &source(MD5, None),
            &written("\"00000000000000000000000000000000\"", None, None, false),
        );
        let err = v.unwrap().unwrap_err();
        assert_eq!(err.reason, FailureReason::ChecksumMismatch);
        assert!(err.detail.contains("ETag"), "{err}");
        // A multipart replica: its ETag says nothing of the content; the checksum does.
        let v = verify(
            &source(MD5, Some("AAAAAA==")),
            &written("\"abc-3\"", Some("AAAAAA=="), None, false),
        );
        assert_eq!(v.unwrap().unwrap(), Verified::Checksum("CRC32"));
        let v = verify(
            &source(MD5, Some("AAAAAA==")),
            &written("\"abc-3\"", Some("BBBBBB=="), None, false),
        );
        assert!(v.unwrap().unwrap_err().detail.contains("CRC32"));
        // KMS at the destination: the ETag is not an MD5; a composite checksum is no
        // evidence either; without the size nothing is known yet.
        assert!(verify(
            &source(MD5, Some("AAAAAA==")),
            &written(MD5, Some("CCCC==-3"), None, true)
        )
        .is_none());
        let v = verify(
            &source(MD5, None),
            &written("\"abc-3\"", None, Some(10), false),
        );
        assert_eq!(v.unwrap().unwrap(), Verified::Size);
        let v = verify(
            &source(MD5, None),
            &written("\"abc-3\"", None, Some(9), false),
        );
        assert!(v.unwrap().unwrap_err().detail.contains("size"));
    }

    /// A multipart CRC32 upload (the AWS CLI's and boto3's default above 8 MiB) has a
    /// composite checksum, which no single-part replica can match: it is no evidence,
    /// whether S3 marks it with a `-N` suffix and `x-amz-checksum-type` or, as moto
    /// 5.2.5 does, with neither. A full-object type says otherwise.
    #[test]
    fn composite_checksums_are_recognised_by_type_and_part_count() {
        let replica = Written {
            etag: Some("\"abc-2\"".into()),
            checksums: Checksums {
                crc32: Some("BBBBBB==".into()),
                ..Default::default()
            },
            size: Some(10),
            kms: false,
            ..Default::default()
        };
        let head = |kind: Option<ChecksumType>| {
            SourceState::new(
                HeadObjectOutput::builder()
                    .content_length(10)
                    .e_tag("\"3f025a3c3053e7d9169797b811dea893-3\"")
                    .checksum_crc32("4KQh4Q==")
                    .set_checksum_type(kind)
                    .build(),
            )
        };
        for kind in [None, Some(ChecksumType::Composite)] {
            let v = verify(&head(kind.clone()), &replica);
            assert_eq!(v.unwrap().unwrap(), Verified::Size, "{kind:?}");
        }
        let v = verify(&head(Some(ChecksumType::FullObject)), &replica);
        assert!(v.unwrap().unwrap_err().detail.contains("CRC32"));
        assert!(
            is_multipart_etag("\"abc-12\"") && !is_multipart_etag(MD5) && !is_multipart_etag("a-")
        );
    }
}
