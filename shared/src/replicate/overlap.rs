//! Which keys this process has just written, so that a copy that overlapped another
//! write of the same key knows to look at the source again: an older version's copy
//! that stalls (SDK retries, a slow ACL read) can land after the newer one's.
//!
//! A fixed array of counters indexed by a hash of (bucket, key): no growth in a
//! long-lived worker, and a collision only costs one extra HEAD.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

const SLOTS: usize = 4096;

#[derive(Debug)]
pub struct RecentWrites {
    slots: Vec<AtomicU64>,
}

impl Default for RecentWrites {
    fn default() -> Self {
        RecentWrites {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl RecentWrites {
    fn slot(&self, bucket: &str, key: &str) -> &AtomicU64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (bucket, key).hash(&mut h);
        &self.slots[(h.finish() as usize) % SLOTS]
    }

    /// A stamp to compare with after a write: different if another write of the key
    /// finished in between.
    pub fn stamp(&self, bucket: &str, key: &str) -> u64 {
        self.slot(bucket, key).load(Ordering::Acquire)
    }

    /// Records a finished write of the key.
    pub fn wrote(&self, bucket: &str, key: &str) {
        self.slot(bucket, key).fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_of_the_key_changes_its_stamp_and_only_its() {
        let w = RecentWrites::default();
        let (a, b) = (w.stamp("dst", "a"), w.stamp("dst", "b"));
        w.wrote("dst", "a");
        assert_ne!(w.stamp("dst", "a"), a);
        // Another key changes only when it shares the slot (one extra HEAD, no harm).
        let same_slot = std::ptr::eq(w.slot("dst", "a"), w.slot("dst", "b"));
        assert_eq!(w.stamp("dst", "b") != b, same_slot);
    }
}
