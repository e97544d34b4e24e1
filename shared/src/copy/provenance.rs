//! Where a replica came from, in a few bytes of its user metadata: the source bucket,
//! the source version, the sequencer of the event it was made from, and the bucket the
//! content was first written to when it travelled through a chain. The key is not
//! stored: a replica always has its source's key (keys may be 1,024 bytes, and user
//! metadata is limited to 2 KB).
//!
//! Ordering reads the sequencer (an older event never overwrites or deletes a newer
//! replica); ingest reads the buckets (a replica is never sent back where it came from);
//! deletes read the source bucket (only a replica this source made is deleted). Since
//! anyone who can write an object can write its metadata, the provenance is signed
//! (`s3r-sig`, see [`crate::config::keys`]) over what it says and where it is (the
//! bucket that holds it, and its key): provenance without a good signature is not ours,
//! and decides nothing. The `s3r-` keys are reserved: on a replica they hold ours.

use std::collections::HashMap;

use crate::config::keys::Signer;
use crate::events::sequencer;

const SOURCE: &str = "s3r-source";
const VERSION: &str = "s3r-version";
const SEQUENCER: &str = "s3r-sequencer";
const ORIGIN: &str = "s3r-origin";
const SIG: &str = "s3r-sig";
/// Our keys; any other, `s3r-` or not, is the user's and travels with the object.
const OURS: [&str; 5] = [SOURCE, VERSION, SEQUENCER, ORIGIN, SIG];
/// What a signature of provenance signs (never a job's).
const DOMAIN: &str = "s3-replicator/provenance/v1";
/// A signature's length in the metadata (128 bits in hex).
const SIG_LEN: usize = 32;

/// S3's limit on user metadata: the UTF-8 bytes of every key and value, summed.
pub const USER_METADATA_LIMIT: usize = 2048;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The bucket the replica was copied from.
    pub source_bucket: String,
    pub version_id: Option<String>,
    /// A sequencer the copied state is at least as new as: the event that described
    /// exactly this content, or a delete it was restored after. Absent when unknown.
    pub sequencer: Option<String>,
    /// The first bucket of a chain (A in A -> B -> C), when it is not the source.
    pub origin: Option<String>,
}

/// What a provenance's signature binds it to: the bucket that holds the replica and
/// its key, so the metadata copied onto another object is not believed there.
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
}

impl Provenance {
    /// The provenance recorded in an object's user metadata, when it is a replica's and
    /// its signature holds (when the signer signs); `None` for anything else, whatever
    /// `s3r-` keys it carries.
    pub fn read(
        metadata: Option<&HashMap<String, String>>,
        holder: Holder<'_>,
        signer: &Signer,
    ) -> Option<Provenance> {
        let metadata = metadata?;
        let p = Provenance::read_unverified(Some(metadata))?;
        let get = |k: &str| metadata.get(k).map(String::as_str).unwrap_or("");
        let parts = [
            holder.bucket,
            holder.key,
            get(SOURCE),
            get(VERSION),
            get(SEQUENCER),
            get(ORIGIN),
        ];
        signer
            .verify(DOMAIN, &parts, metadata.get(SIG).map(String::as_str))
            .then_some(p)
    }

    /// What the `s3r-` keys say, signed or not: for tests and reports that show what
    /// an object claims, never for a decision.
    pub fn read_unverified(metadata: Option<&HashMap<String, String>>) -> Option<Provenance> {
        let metadata = metadata?;
        let source_bucket = metadata.get(SOURCE)?.clone();
        let get = |k: &str| metadata.get(k).filter(|v| !v.is_empty()).cloned();
        Some(Provenance {
            source_bucket,
            version_id: get(VERSION),
            sequencer: get(SEQUENCER).filter(|s| sequencer::is_valid(s)),
            origin: get(ORIGIN),
        })
    }

    /// The provenance of a copy of `object` (with its own provenance, if any) taken
    /// from `bucket`.
    pub fn of_copy(
        bucket: &str,
        version_id: Option<&str>,
        sequencer: Option<&str>,
        object: Option<&Provenance>,
    ) -> Provenance {
        Provenance {
            source_bucket: bucket.to_string(),
            version_id: version_id.map(str::to_string),
            sequencer: sequencer.map(str::to_string),
            origin: object.map(|p| p.origin_bucket().to_string()),
        }
    }

    /// The bucket the content was first written to.
    pub fn origin_bucket(&self) -> &str {
        self.origin.as_deref().unwrap_or(&self.source_bucket)
    }

    /// Whether this content came from (or through) `bucket`: sending it there again
    /// would start a loop.
    pub fn came_from(&self, bucket: &str) -> bool {
        self.source_bucket == bucket || self.origin_bucket() == bucket
    }

    /// Whether the replica was made from an event of `bucket` at least as recent as
    /// `sequencer`. Unknown when either side has no sequencer, or the replica came
    /// from another bucket (sequencers only order events of one key of one bucket).
    pub fn is_at_least(&self, bucket: &str, sequencer: Option<&str>) -> Option<bool> {
        if self.source_bucket != bucket {
            return None;
        }
        let (ours, theirs) = (self.sequencer.as_deref()?, sequencer?);
        Some(sequencer::compare(ours, theirs) != std::cmp::Ordering::Less)
    }

    /// The replica's user metadata: the source's own (minus any `s3r-` keys, which are
    /// ours), plus our provenance, signed for where it will be (`holder`), within S3's
    /// 2 KB. The user's metadata always travels whole; when ours does not fit beside
    /// it, the least needed keys are left out first: the version (informative), then
    /// the origin (loops through chains), then the sequencer (ordering); without the
    /// source bucket (or, signing, its signature) too, the replica is written as an
    /// unmarked copy. Returns what was left out.
    pub fn metadata_for(
        &self,
        source: Option<&HashMap<String, String>>,
        holder: Holder<'_>,
        signer: &Signer,
    ) -> (HashMap<String, String>, Vec<&'static str>) {
        let mut out = user_metadata(source);
        let mut used = metadata_size(&out);
        let mut left_out = Vec::new();
        // The signature is sized in with the source bucket: one without the other
        // marks nothing.
        let marker = SOURCE.len()
            + self.source_bucket.len()
            + if signer.signs() {
                SIG.len() + SIG_LEN
            } else {
                0
            };
        if used + marker > USER_METADATA_LIMIT {
            left_out.push(SOURCE);
        } else {
            used += marker;
            out.insert(SOURCE.into(), self.source_bucket.clone());
            for (key, value) in [
                (SEQUENCER, self.sequencer.as_ref()),
                (ORIGIN, self.origin.as_ref()),
                (VERSION, self.version_id.as_ref()),
            ] {
                let Some(value) = value else { continue };
                if used + key.len() + value.len() <= USER_METADATA_LIMIT {
                    used += key.len() + value.len();
                    out.insert(key.into(), value.clone());
                } else {
                    left_out.push(key);
                }
            }
            let get = |k: &str| out.get(k).map(String::as_str).unwrap_or("");
            let parts = [
                holder.bucket,
                holder.key,
                get(SOURCE),
                get(VERSION),
                get(SEQUENCER),
                get(ORIGIN),
            ];
            if let Some(sig) = signer.sign(DOMAIN, &parts) {
                out.insert(SIG.into(), sig);
            }
        }
        if left_out.contains(&SOURCE) {
            left_out.extend(
                [SEQUENCER, ORIGIN, VERSION]
                    .into_iter()
                    .filter(|k| match *k {
                        SEQUENCER => self.sequencer.is_some(),
                        ORIGIN => self.origin.is_some(),
                        _ => self.version_id.is_some(),
                    }),
            );
        }
        (out, left_out)
    }

    /// Whether a replica of an object with this metadata can be marked as one (its
    /// source bucket, and signature, fit beside the object's own metadata).
    pub fn fits_beside(&self, source: Option<&HashMap<String, String>>, signer: &Signer) -> bool {
        let holder = Holder {
            bucket: "",
            key: "",
        };
        !self
            .metadata_for(source, holder, signer)
            .1
            .contains(&SOURCE)
    }
}

/// The size S3 counts for user metadata.
pub fn metadata_size(metadata: &HashMap<String, String>) -> usize {
    metadata.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// User metadata without our provenance keys: what a user wrote.
pub fn user_metadata(metadata: Option<&HashMap<String, String>>) -> HashMap<String, String> {
    metadata
        .into_iter()
        .flatten()
        .filter(|(k, _)| !OURS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Holder<'static> = Holder {
        bucket: "photos-replica",
        key: "a/b.jpg",
    };

    fn signer() -> Signer {
        Signer::with_keys("0123456789abcdef0123456789abcdef-test", None).unwrap()
    }

    #[test]
    fn round_trips_through_metadata_and_keeps_the_users_own() {
        for signer in [Signer::unsigned(), signer()] {
            let user: HashMap<String, String> = [("owner".to_string(), "ana".to_string())].into();
            let p = Provenance::of_copy("photos", Some("v1"), Some("0055AED6DCD90281E5"), None);
            let (written, left_out) = p.metadata_for(Some(&user), AT, &signer);
            assert!(left_out.is_empty());
            assert_eq!(written["owner"], "ana");
            assert_eq!(written.contains_key(SIG), signer.signs());
            assert_eq!(
                Provenance::read(Some(&written), AT, &signer),
                Some(p.clone())
            );
            assert_eq!(user_metadata(Some(&written)), user);
            assert_eq!(Provenance::read(Some(&user), AT, &signer), None);

            // A copy of the replica (photos -> backup -> archive) remembers the first
            // bucket and drops the old provenance keys.
            let chained = Provenance::of_copy("backup", None, None, Some(&p));
            let (rewritten, _) = chained.metadata_for(Some(&written), AT, &signer);
            let read = Provenance::read(Some(&rewritten), AT, &signer).unwrap();
            assert_eq!(read.source_bucket, "backup");
            assert_eq!(read.origin_bucket(), "photos");
            assert!(read.came_from("photos") && read.came_from("backup") && !read.came_from("x"));
            assert!(!rewritten.contains_key(VERSION) && !rewritten.contains_key(SEQUENCER));
        }
    }

    /// Anyone can write `s3r-` metadata; only a signature made with the key makes it
    /// provenance. Unsigned, forged, edited, or moved to another bucket or key: not ours.
    #[test]
    fn provenance_holds_only_with_its_signature_where_it_was_written() {
        let signer = signer();
        let p = Provenance::of_copy("photos", Some("v1"), Some("0055AED6DCD90281E5"), None);
        let (written, _) = p.metadata_for(None, AT, &signer);
        assert!(Provenance::read(Some(&written), AT, &signer).is_some());
        let forged: HashMap<String, String> = [(SOURCE.to_string(), "photos".to_string())].into();
        assert_eq!(Provenance::read(Some(&forged), AT, &signer), None);
        let mut edited = written.clone();
        edited.insert(SEQUENCER.into(), "FFFFFFFFFFFFFFFFFFFF".into());
        assert_eq!(Provenance::read(Some(&edited), AT, &signer), None);
        for elsewhere in [
            Holder {
                bucket: "other",
                key: AT.key,
            },
            Holder {
                bucket: AT.bucket,
                key: "other.jpg",
            },
        ] {
            assert_eq!(Provenance::read(Some(&written), elsewhere, &signer), None);
        }
        let stranger = Signer::with_keys("another-key-of-more-than-thirty-two", None).unwrap();
        let (theirs, _) = p.metadata_for(None, AT, &stranger);
        assert_eq!(Provenance::read(Some(&theirs), AT, &signer), None);
        // What it claims can still be shown.
        assert_eq!(
            Provenance::read_unverified(Some(&forged))
                .unwrap()
                .source_bucket,
            "photos"
        );
    }

    /// Metadata legal on S3 but near its 2 KB limit replicates whole, with as much
    /// provenance as fits; a user's own `s3r-` keys are theirs and travel too.
    #[test]
    fn the_users_metadata_always_fits_and_provenance_degrades() {
        let p = Provenance::of_copy(
            "photos",
            Some("096fKKXTRTtl3on89fVO.nfljtsv6qko"),
            Some("0055AED6DCD90281E5"),
            Some(&Provenance::of_copy("origin-bucket", None, None, None)),
        );
        let user = |value_len: usize| -> HashMap<String, String> {
            [
                ("s3r-team".to_string(), "data".to_string()),
                ("note".to_string(), "x".repeat(value_len)),
            ]
            .into()
        };
        for signer in [Signer::unsigned(), signer()] {
            let sig = if signer.signs() {
                SIG.len() + SIG_LEN
            } else {
                0
            };
            // Plenty of room: everything.
            let (all, left_out) = p.metadata_for(Some(&user(100)), AT, &signer);
            assert!(left_out.is_empty() && all["s3r-team"] == "data");
            assert_eq!(Provenance::read(Some(&all), AT, &signer), Some(p.clone()));
            let ours = metadata_size(&all) - metadata_size(&user(100));
            // Each step down leaves out the least needed key, never the user's.
            for (room_for, expected) in [
                (ours - 1, vec![VERSION]),
                (ours - "s3r-version".len() - 32 - 1, vec![ORIGIN, VERSION]),
                (
                    "s3r-source".len() + "photos".len() + sig,
                    vec![SEQUENCER, ORIGIN, VERSION],
                ),
                (0, vec![SOURCE, SEQUENCER, ORIGIN, VERSION]),
            ] {
                let users = USER_METADATA_LIMIT - room_for;
                let padding = users - "s3r-team".len() - "data".len() - "note".len();
                let (written, left_out) = p.metadata_for(Some(&user(padding)), AT, &signer);
                assert_eq!(left_out, expected, "room for {room_for}");
                assert!(metadata_size(&written) <= USER_METADATA_LIMIT);
                assert_eq!(user_metadata(Some(&written)), user(padding));
                let read = Provenance::read(Some(&written), AT, &signer);
                assert_eq!(read.is_some(), !left_out.contains(&SOURCE));
            }
        }
    }

    #[test]
    fn ordering_only_within_one_source_bucket_and_with_both_sequencers() {
        let p = Provenance::of_copy("photos", None, Some("0055AED6DCD90281E5"), None);
        assert_eq!(
            p.is_at_least("photos", Some("0055AED6DCD90281E500")),
            Some(true)
        );
        assert_eq!(
            p.is_at_least("photos", Some("0055AED6DCD90281E501")),
            Some(false)
        );
        assert_eq!(
            p.is_at_least("photos", Some("0055AED6DCD90281E4")),
            Some(true)
        );
        assert_eq!(p.is_at_least("other", Some("00")), None);
        assert_eq!(p.is_at_least("photos", None), None);
        let unordered = Provenance::of_copy("photos", None, None, None);
        assert_eq!(unordered.is_at_least("photos", Some("00")), None);
    }
}
