//! Where a replica came from, in a few bytes of its user metadata: the source bucket,
//! the source version, the sequencer of the event it was made from, and the bucket the
//! content was first written to when it travelled through a chain. The key is not
//! stored: a replica always has its source's key (keys may be 1,024 bytes, and user
//! metadata is limited to 2 KB).
//!
//! Ordering reads the sequencer (an older event never overwrites or deletes a newer
//! replica); ingest reads the buckets (a replica is never sent back where it came from).

use std::collections::HashMap;

use crate::replicate::ordering;

const SOURCE: &str = "s3r-source";
const VERSION: &str = "s3r-version";
const SEQUENCER: &str = "s3r-sequencer";
const ORIGIN: &str = "s3r-origin";
/// Our keys; any other, `s3r-` or not, is the user's and travels with the object.
const OURS: [&str; 4] = [SOURCE, VERSION, SEQUENCER, ORIGIN];

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

impl Provenance {
    /// The provenance recorded in an object's user metadata, if it is a replica.
    pub fn read(metadata: Option<&HashMap<String, String>>) -> Option<Provenance> {
        let metadata = metadata?;
        let source_bucket = metadata.get(SOURCE)?.clone();
        let get = |k: &str| metadata.get(k).filter(|v| !v.is_empty()).cloned();
        Some(Provenance {
            source_bucket,
            version_id: get(VERSION),
            sequencer: get(SEQUENCER).filter(|s| ordering::is_valid(s)),
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
        Some(ordering::compare(ours, theirs) != std::cmp::Ordering::Less)
    }

    /// The replica's user metadata: the source's own (minus any provenance it carried
    /// as a replica itself), plus ours, within S3's 2 KB. The user's metadata always
    /// travels whole; when ours does not fit beside it, the least needed keys are left
    /// out first: the version (informative), then the origin (loops through chains),
    /// then the sequencer (ordering); without the source bucket too, the replica is
    /// written as an unmarked copy. Returns what was left out.
    pub fn metadata_for(
        &self,
        source: Option<&HashMap<String, String>>,
    ) -> (HashMap<String, String>, Vec<&'static str>) {
        let mut out = user_metadata(source);
        let mut used = metadata_size(&out);
        let mut left_out = Vec::new();
        let by_need = [
            (SOURCE, Some(&self.source_bucket)),
            (SEQUENCER, self.sequencer.as_ref()),
            (ORIGIN, self.origin.as_ref()),
            (VERSION, self.version_id.as_ref()),
        ];
        for (key, value) in by_need {
            let Some(value) = value else { continue };
            // Nothing after a missing source bucket means anything.
            let fits = used + key.len() + value.len() <= USER_METADATA_LIMIT
                && (key == SOURCE || out.contains_key(SOURCE));
            if fits {
                used += key.len() + value.len();
                out.insert(key.into(), value.clone());
            } else {
                left_out.push(key);
            }
        }
        (out, left_out)
    }
}

impl Provenance {
    /// Whether a replica of an object with this metadata can be marked as one (its
    /// source bucket fits beside the object's own metadata).
    pub fn fits_beside(&self, source: Option<&HashMap<String, String>>) -> bool {
        !self.metadata_for(source).1.contains(&SOURCE)
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

    #[test]
    fn round_trips_through_metadata_and_keeps_the_users_own() {
        let user: HashMap<String, String> = [("owner".to_string(), "ana".to_string())].into();
        let p = Provenance::of_copy("photos", Some("v1"), Some("0055AED6DCD90281E5"), None);
        let (written, left_out) = p.metadata_for(Some(&user));
        assert!(left_out.is_empty());
        assert_eq!(written["owner"], "ana");
        assert_eq!(Provenance::read(Some(&written)), Some(p.clone()));
        assert_eq!(user_metadata(Some(&written)), user);
        assert_eq!(Provenance::read(Some(&user)), None);

        // A copy of the replica (photos -> backup -> archive) remembers the first bucket
        // and drops the old provenance keys.
        let chained = Provenance::of_copy("backup", None, None, Some(&p));
        let (rewritten, _) = chained.metadata_for(Some(&written));
        let read = Provenance::read(Some(&rewritten)).unwrap();
        assert_eq!(read.source_bucket, "backup");
        assert_eq!(read.origin_bucket(), "photos");
        assert!(read.came_from("photos") && read.came_from("backup") && !read.came_from("x"));
        assert!(!rewritten.contains_key(VERSION) && !rewritten.contains_key(SEQUENCER));
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
        // Plenty of room: everything.
        let (all, left_out) = p.metadata_for(Some(&user(100)));
        assert!(left_out.is_empty() && all["s3r-team"] == "data");
        assert_eq!(Provenance::read(Some(&all)), Some(p.clone()));
        let ours = metadata_size(&all) - metadata_size(&user(100));
        // Each step down leaves out the least needed key, never the user's.
        for (room_for, expected) in [
            (ours - 1, vec![VERSION]),
            (ours - "s3r-version".len() - 32 - 1, vec![ORIGIN, VERSION]),
            (
                "s3r-source".len() + "photos".len(),
                vec![SEQUENCER, ORIGIN, VERSION],
            ),
            (0, vec![SOURCE, SEQUENCER, ORIGIN, VERSION]),
        ] {
            let users = USER_METADATA_LIMIT - room_for;
            let padding = users - "s3r-team".len() - "data".len() - "note".len();
            let (written, left_out) = p.metadata_for(Some(&user(padding)));
            assert_eq!(left_out, expected, "room for {room_for}");
            assert!(metadata_size(&written) <= USER_METADATA_LIMIT);
            assert_eq!(user_metadata(Some(&written)), user(padding));
            let read = Provenance::read(Some(&written));
            assert_eq!(read.is_some(), !left_out.contains(&SOURCE));
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
