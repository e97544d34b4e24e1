//! When copies stop starting parts: a Lambda invocation's end (less a reserve), or a
//! worker told to stop.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// When copies stop starting parts and pause: a Lambda invocation's end (less a
/// reserve), or a worker told to stop.
#[derive(Clone, Debug, Default)]
pub(super) struct PauseWhen {
    deadline: Option<Instant>,
    stopping: Option<Arc<AtomicBool>>,
}

tokio::task_local! {
    static PAUSE: PauseWhen;
}

/// Runs `work` under a deadline (a Lambda invocation's end, less a reserve): copies
/// inside it start no new part once it has passed, and pause instead. Without one,
/// copies run to the end, or until [`until_stopped`] says.
pub async fn within<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    let stopping = PAUSE.try_with(|p| p.stopping.clone()).ok().flatten();
    PAUSE.scope(PauseWhen { deadline, stopping }, work).await
}

/// Runs `work` so that copies inside it pause once `stopping` turns true (a worker
/// told to stop hands its long copies on instead of finishing them). Any deadline
/// already in force still holds.
pub async fn until_stopped<F: Future>(stopping: Arc<AtomicBool>, work: F) -> F::Output {
    let deadline = PAUSE.try_with(|p| p.deadline).ok().flatten();
    let pause = PauseWhen {
        deadline,
        stopping: Some(stopping),
    };
    PAUSE.scope(pause, work).await
}

pub(super) fn out_of_time() -> bool {
    PAUSE
        .try_with(|p| {
            p.deadline.is_some_and(|d| Instant::now() >= d)
                || p.stopping
                    .as_ref()
                    .is_some_and(|s| s.load(Ordering::Relaxed))
        })
        .unwrap_or(false)
}

/// Makes freed part buffers go back to the system at once. glibc serves a large
/// allocation with mmap and unmaps it on free, but after the first such free it raises
/// its threshold to that size, so later part buffers (8-16 MiB) come from heap arenas
/// that keep what is freed: a worker's resident memory then sits well above the parts'
/// budget. A fixed threshold below the smallest part (5 MiB) keeps every part buffer
/// mmapped. Called once at cold start; other allocators are left as they are.
pub fn return_freed_part_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called at cold start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
