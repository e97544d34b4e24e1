//! Conditional writes: every write and delete of a replica names the replica state that
//! justified it — `If-Match` with the ETag a HEAD returned, or `If-None-Match: *` when
//! there was none — so a write that lost a race is a 412 to look at again, never a
//! stale replica.
//!
//! Not every S3 server checks them (moto ignores every condition on CopyObject), so
//! each destination learns, per kind of write, whether its conditions hold: AWS's S3 is
//! taken at its word; any other server is probed by the first write of each kind that
//! has a replica to match, sent once with an ETag no object has. A 412 says the
//! server checks; a success says it ignored the condition (and the write, which was
//! the one intended, happened). Writes to a server that ignores conditions are ordered
//! by the older fallback: a late write looks at the source again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

pub use crate::config::{PreconditionMode, WriteOrder};
use crate::errors::{FailureReason, ReplicationError};

/// The replica state a write is conditional on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// No object under the key: `If-None-Match: *`.
    Absent,
    /// The object whose ETag this is: `If-Match`.
    ETag(String),
}

impl Expect {
    /// What a HEAD of the replica found: the object's ETag, or nothing.
    pub fn from_etag(etag: Option<&str>) -> Expect {
        match etag {
            Some(e) => Expect::ETag(quoted(e)),
            None => Expect::Absent,
        }
    }

    /// The header a request carries: `(if_match, if_none_match)`.
    pub fn headers(&self) -> (Option<String>, Option<String>) {
        match self {
            Expect::Absent => (None, Some("*".to_string())),
            Expect::ETag(e) => (Some(e.clone()), None),
        }
    }
}

/// An ETag as a header carries it, in double quotes (some servers answer CopyObject
/// with a bare one).
pub fn quoted(etag: &str) -> String {
    let bare = etag.trim().trim_matches('"');
    format!("\"{bare}\"")
}

/// Whether two ETags name the same content, however each was quoted.
pub fn same_etag(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.trim().trim_matches('"') == b.trim().trim_matches('"'),
        _ => false,
    }
}

/// An ETag no object has (the MD5 of nothing is d41d8...): a condition that must fail.
const PROBE_ETAG: &str = "\"00000000000000000000000000000000\"";

/// How long a write waits for another's probe of the same kind before it probes too:
/// a probe that is a whole copy (a server that ignores the condition writes it) may
/// take as long as the copy, and must not hold up every other job.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The kinds of replica write whose conditions a server may or may not check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Copy = 0,
    Put = 1,
    Complete = 2,
    Delete = 3,
}

impl WriteKind {
    pub const ALL: [WriteKind; 4] = [
        WriteKind::Copy,
        WriteKind::Put,
        WriteKind::Complete,
        WriteKind::Delete,
    ];

    pub fn operation(&self) -> &'static str {
        match self {
            WriteKind::Copy => "CopyObject",
            WriteKind::Put => "PutObject",
            WriteKind::Complete => "CompleteMultipartUpload",
            WriteKind::Delete => "DeleteObject",
        }
    }
}

const UNKNOWN: u8 = 0;
const ENFORCED: u8 = 1;
const IGNORED: u8 = 2;

/// What one destination is known to do with conditions, and which order of requests
/// has served its writes best.
#[derive(Debug)]
pub struct DestinationConditions {
    known: [AtomicU8; 4],
    /// Held by the write that probes a kind: the jobs of a batch that start at once
    /// wait for its answer instead of each probing.
    probing: [tokio::sync::Mutex<()>; 4],
    /// The last write found no replica: try `If-None-Match: *` before reading the
    /// replica (one HEAD fewer for a new key, a failed copy more for an overwrite).
    expect_new: AtomicBool,
    /// Whether the order may adapt at all (`WriteOrder` in the document).
    order: WriteOrder,
}

impl DestinationConditions {
    /// The right to probe `kind`, once the probe under way (if any) has answered or
    /// [`PROBE_WAIT`] has passed; `None` after the wait (the caller probes as well).
    async fn wait_for_probe(&self, kind: WriteKind) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        tokio::time::timeout(PROBE_WAIT, self.probing[kind as usize].lock())
            .await
            .ok()
    }

    pub fn new(mode: PreconditionMode, order: WriteOrder) -> Self {
        let start = match mode {
            PreconditionMode::Probe => UNKNOWN,
            PreconditionMode::Enforced => ENFORCED,
            PreconditionMode::Ignored => IGNORED,
        };
        DestinationConditions {
            known: std::array::from_fn(|_| AtomicU8::new(start)),
            probing: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            expect_new: AtomicBool::new(true),
            order,
        }
    }

    fn state(&self, kind: WriteKind) -> u8 {
        self.known[kind as usize].load(Ordering::Relaxed)
    }

    /// True when the server is known to check this kind of write's conditions.
    pub fn enforced(&self, kind: WriteKind) -> bool {
        self.state(kind) == ENFORCED
    }

    /// True when the server is known to ignore them: writes of this kind are ordered
    /// by the fallback.
    pub fn ignored(&self, kind: WriteKind) -> bool {
        self.state(kind) == IGNORED
    }

    /// What is known, for `config check` and the logs: enforced, ignored or unknown.
    pub fn describe(&self, kind: WriteKind) -> &'static str {
        match self.state(kind) {
            ENFORCED => "enforced",
            IGNORED => "ignored",
            _ => "not yet known",
        }
    }

    fn learn(&self, kind: WriteKind, enforced: bool) {
        let value = if enforced { ENFORCED } else { IGNORED };
        let was = self.known[kind as usize].swap(value, Ordering::Relaxed);
        if was != value {
            if enforced {
                tracing::info!(
                    operation = kind.operation(),
                    "the destination checks conditions on this request: replica writes are ordered exactly"
                );
            } else {
                tracing::warn!(
                    operation = kind.operation(),
                    "the destination ignores conditions on this request: its replica writes are ordered by looking at the source again when they land late"
                );
            }
        }
    }

    /// Whether a new object's write should go out before the replica is read.
    pub fn try_new_key_first(&self, kind: WriteKind) -> bool {
        self.enforced(kind)
            && match self.order {
                WriteOrder::Adaptive => self.expect_new.load(Ordering::Relaxed),
                WriteOrder::ReplicaFirst => false,
                WriteOrder::NewKeysFirst => true,
            }
    }

    /// A write (or a read of the replica) found a replica there, or none.
    pub fn saw_replica(&self, present: bool) {
        self.expect_new.store(!present, Ordering::Relaxed);
    }
}

/// Each destination's [`DestinationConditions`], made at first use.
#[derive(Debug, Default)]
pub struct ConditionsBook {
    by_destination: Mutex<HashMap<String, Arc<DestinationConditions>>>,
}

impl ConditionsBook {
    pub fn get(
        &self,
        key: &str,
        make: impl FnOnce() -> DestinationConditions,
    ) -> Arc<DestinationConditions> {
        self.by_destination
            .lock()
            .expect("conditions lock")
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }
}

/// What came of a conditional write.
#[derive(Debug)]
pub enum Sent<T> {
    /// Written; `checked` says whether the server is known to have checked the
    /// condition (when not, the caller orders it by the fallback).
    Written { out: T, checked: bool },
    /// The replica was not in the expected state: someone wrote (or deleted) first.
    Lost,
}

/// Whether an error means the condition did not hold: a 412 (or S3's 409
/// ConditionalRequestConflict, classified alike), or for an `If-Match` on a key that
/// has gone, a 404.
fn lost(err: &ReplicationError, kind: WriteKind, expect: &Expect) -> bool {
    match err.reason {
        FailureReason::PreconditionFailed => true,
        // A copy's 404 may be its source's: the caller looks again either way.
        FailureReason::SrcObjectNotFound => {
            matches!(expect, Expect::ETag(_)) && kind != WriteKind::Copy
        }
        _ => false,
    }
}

/// Sends a write conditional on `expect`. `send` builds and sends the request with the
/// `(if_match, if_none_match)` headers it is given.
///
/// The first write of a kind to a destination whose conditions are not known yet is
/// sent once with an ETag no object has: a 412 (or a 404 for a request that names no
/// source) teaches that the server checks, and the write is sent again as meant; a
/// success teaches that it does not (the write happened as meant, unconditionally). A
/// multipart completion is probed only over a replica that exists: a server that
/// refused it on a missing key might drop the upload with it.
pub async fn send<T, F, Fut>(
    conditions: &DestinationConditions,
    kind: WriteKind,
    expect: &Expect,
    send: F,
) -> Result<Sent<T>, ReplicationError>
where
    F: Fn(Option<String>, Option<String>) -> Fut,
    Fut: Future<Output = Result<T, ReplicationError>>,
{
    // A PutObject is probed apart (see [`probe`]): its body cannot be sent twice.
    let probe = kind != WriteKind::Put
        && (matches!(expect, Expect::ETag(_)) || kind != WriteKind::Complete);
    if probe && conditions.state(kind) == UNKNOWN {
        let _probing = conditions.wait_for_probe(kind).await;
        if conditions.state(kind) == UNKNOWN {
            match send(Some(PROBE_ETAG.to_string()), None).await {
                Ok(out) => {
                    conditions.learn(kind, false);
                    return Ok(Sent::Written {
                        out,
                        checked: false,
                    });
                }
                Err(e) if e.reason == FailureReason::PreconditionFailed => {
                    conditions.learn(kind, true)
                }
                Err(e) if lost(&e, kind, &Expect::ETag(String::new())) => {
                    conditions.learn(kind, true)
                }
                // A copy's 404 may be its source's, not the condition's: learn nothing.
                Err(e) if e.reason == FailureReason::SrcObjectNotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    let (if_match, if_none_match) = expect.headers();
    match send(if_match, if_none_match).await {
        Ok(out) => Ok(Sent::Written {
            out,
            checked: conditions.enforced(kind),
        }),
        Err(e) if lost(&e, kind, expect) => Ok(Sent::Lost),
        Err(e) => Err(e),
    }
}

/// Learns whether a destination checks PutObject's conditions, when that is not known
/// yet, with `probe`: an empty PutObject of the key about to be written, conditional on
/// an ETag no object has. A server that checks answers 412 (or 404: no such key) and
/// writes nothing; one that does not writes an empty object, which the write that
/// follows replaces. A streamed body cannot be the probe: a server that refuses the
/// condition closes the connection while the body is still being sent.
pub async fn probe<F, Fut, T>(
    conditions: &DestinationConditions,
    kind: WriteKind,
    probe: F,
) -> Result<(), ReplicationError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<T, ReplicationError>>,
{
    if conditions.state(kind) != UNKNOWN {
        return Ok(());
    }
    let _probing = conditions.wait_for_probe(kind).await;
    if conditions.state(kind) != UNKNOWN {
        return Ok(());
    }
    match probe(PROBE_ETAG.to_string()).await {
        Ok(_) => conditions.learn(kind, false),
        Err(e) if lost(&e, kind, &Expect::ETag(String::new())) => conditions.learn(kind, true),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// What a destination does with the conditions of each kind of write, found out with
/// one empty object under `.s3-replicator-probe/` that is written and removed again:
/// a PutObject conditional on an ETag no object has (a 412 or 404 says the server
/// checks; a success that it does not, and made the object), a CopyObject of the
/// object onto itself and a DeleteObject, each conditional on that ETag, then an
/// unconditional delete. For `config check --online`; the replicator learns the same
/// from its first writes. Multipart completions are not probed here.
pub async fn probe_destination(
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Vec<(WriteKind, bool)>, String> {
    use aws_sdk_s3::types::MetadataDirective;
    let key = format!(".s3-replicator-probe/{:016x}", rand::random::<u64>());
    use crate::errors::http_status as status;
    let checked = |status: Option<u16>| matches!(status, Some(404 | 409 | 412));
    let mut found = Vec::new();
    let put = client
        .put_object()
        .bucket(bucket)
        .key(&key)
        .if_match(PROBE_ETAG)
        .send()
        .await;
    match put {
        Ok(_) => found.push((WriteKind::Put, false)),
        Err(e) if checked(status(&e)) => {
            found.push((WriteKind::Put, true));
            client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| format!("PutObject: {}", crate::errors::describe(&e)))?;
        }
        Err(e) => return Err(format!("PutObject: {}", crate::errors::describe(&e))),
    }
    let copy = client
        .copy_object()
        .bucket(bucket)
        .key(&key)
        .copy_source(crate::copy::copy_source(bucket, &key, None))
        .metadata_directive(MetadataDirective::Replace)
        .if_match(PROBE_ETAG)
        .send()
        .await;
    let copy_result = match copy {
        Ok(_) => Ok(false),
        Err(e) if checked(status(&e)) => Ok(true),
        Err(e) => Err(format!("CopyObject: {}", crate::errors::describe(&e))),
    };
    let delete = client
        .delete_object()
        .bucket(bucket)
        .key(&key)
        .if_match(PROBE_ETAG)
        .send()
        .await;
    let delete_result = match delete {
        Ok(_) => Ok(false),
        Err(e) if checked(status(&e)) => Ok(true),
        Err(e) => Err(format!("DeleteObject: {}", crate::errors::describe(&e))),
    };
    // Whatever the answers, the probe object goes.
    let removed = client.delete_object().bucket(bucket).key(&key).send().await;
    found.push((WriteKind::Copy, copy_result?));
    found.push((WriteKind::Delete, delete_result?));
    removed.map_err(|e| format!("DeleteObject: {}", crate::errors::describe(&e)))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn precondition_failed() -> ReplicationError {
        ReplicationError::new(FailureReason::PreconditionFailed, "412")
    }

    #[test]
    fn etags_compare_and_quote_however_they_were_written() {
        assert_eq!(quoted("abc"), "\"abc\"");
        assert_eq!(quoted("\"abc\""), "\"abc\"");
        assert!(same_etag(Some("abc"), Some("\"abc\"")));
        assert!(!same_etag(Some("abc"), None));
        assert_eq!(
            Expect::from_etag(Some("abc")).headers(),
            (Some("\"abc\"".into()), None)
        );
        assert_eq!(Expect::Absent.headers(), (None, Some("*".into())));
    }

    /// A server that checks conditions answers the probe with a 412: learned once, and
    /// the write goes out as meant. One that ignores them accepts the probe, which was
    /// the write: learned, never probed again, and the caller is told it was unchecked.
    #[tokio::test]
    async fn the_first_write_with_a_replica_to_match_learns_what_the_server_does() {
        for server_checks in [true, false] {
            let book = DestinationConditions::new(PreconditionMode::Probe, WriteOrder::Adaptive);
            let sent = AtomicUsize::new(0);
            let expect = Expect::ETag("\"e1\"".into());
            for _ in 0..2 {
                let outcome = send(&book, WriteKind::Copy, &expect, |if_match, _| {
                    sent.fetch_add(1, Ordering::Relaxed);
                    let matches = if_match.as_deref() == Some("\"e1\"");
                    async move {
                        if server_checks && !matches {
                            Err(precondition_failed())
                        } else {
                            Ok(())
                        }
                    }
                })
                .await
                .unwrap();
                assert!(
                    matches!(outcome, Sent::Written { checked, .. } if checked == server_checks)
                );
            }
            // Checking: probe + write, then the write alone. Ignoring: the probe was
            // the first write; the second goes out alone.
            assert_eq!(
                sent.load(Ordering::Relaxed),
                if server_checks { 3 } else { 2 }
            );
            assert_eq!(
                book.describe(WriteKind::Copy),
                if server_checks { "enforced" } else { "ignored" }
            );
            assert_eq!(book.describe(WriteKind::Delete), "not yet known");
        }
    }

    /// A lost condition is a `Lost` to look at again, not an error; a completion
    /// without a replica to match is not probed.
    #[tokio::test]
    async fn a_lost_race_is_reported_as_such() {
        let book = DestinationConditions::new(PreconditionMode::Enforced, WriteOrder::Adaptive);
        let outcome = send(
            &book,
            WriteKind::Put,
            &Expect::Absent,
            |_, inm| async move {
                assert_eq!(inm.as_deref(), Some("*"));
                Err::<(), _>(precondition_failed())
            },
        )
        .await
        .unwrap();
        assert!(matches!(outcome, Sent::Lost));
        let probe = DestinationConditions::new(PreconditionMode::Probe, WriteOrder::Adaptive);
        let calls = AtomicUsize::new(0);
        send(&probe, WriteKind::Complete, &Expect::Absent, |_, _| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(probe.describe(WriteKind::Complete), "not yet known");
        // A copy's 404 may be its source's: it teaches nothing, and the write goes out.
        let calls = AtomicUsize::new(0);
        send(&probe, WriteKind::Copy, &Expect::Absent, |if_match, _| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                match if_match {
                    Some(_) => Err(ReplicationError::new(
                        FailureReason::SrcObjectNotFound,
                        "404",
                    )),
                    None => Ok(()),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert_eq!(probe.describe(WriteKind::Copy), "not yet known");
        // Other failures are the caller's.
        let err = send(&book, WriteKind::Copy, &Expect::Absent, |_, _| async {
            Err::<(), _>(ReplicationError::new(FailureReason::Throttled, "503"))
        })
        .await
        .unwrap_err();
        assert_eq!(err.reason, FailureReason::Throttled);
    }

    #[test]
    fn the_order_adapts_to_what_writes_find() {
        let book = DestinationConditions::new(PreconditionMode::Enforced, WriteOrder::Adaptive);
        assert!(book.try_new_key_first(WriteKind::Copy));
        book.saw_replica(true);
        assert!(!book.try_new_key_first(WriteKind::Copy));
        book.saw_replica(false);
        assert!(book.try_new_key_first(WriteKind::Copy));
        // Never before the server is known to check If-None-Match.
        let unknown = DestinationConditions::new(PreconditionMode::Probe, WriteOrder::NewKeysFirst);
        assert!(!unknown.try_new_key_first(WriteKind::Copy));
        let fixed =
            DestinationConditions::new(PreconditionMode::Enforced, WriteOrder::ReplicaFirst);
        assert!(!fixed.try_new_key_first(WriteKind::Copy));
    }
}
