//! Counters a binary exports as metrics and shows on its health endpoint.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

/// Per-task counters, updated by [`run`](crate::run) after every iteration.
///
/// Share it with an `Arc`; reads are lock-free except [`TaskStats::last_error`].
#[derive(Debug, Default)]
pub struct TaskStats {
    iterations: AtomicU64,
    progress_iterations: AtomicU64,
    transient_errors: AtomicU64,
    consecutive_failures: AtomicU32,
    last_error: Mutex<Option<String>>,
}

impl TaskStats {
    /// Completed iterations, whatever their outcome (counter).
    pub fn iterations(&self) -> u64 {
        self.iterations.load(Ordering::Relaxed)
    }

    /// Iterations that returned `Ok(true)` (counter).
    pub fn progress_iterations(&self) -> u64 {
        self.progress_iterations.load(Ordering::Relaxed)
    }

    /// Iterations that returned a transient error (counter).
    pub fn transient_errors(&self) -> u64 {
        self.transient_errors.load(Ordering::Relaxed)
    }

    /// Transient errors since the last successful iteration (gauge; 0 when healthy).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// The last error (transient or fatal) with its sources, kept after recovery; read it
    /// together with [`TaskStats::consecutive_failures`] to know whether it is current.
    pub fn last_error(&self) -> Option<String> {
        self.lock_last_error().clone()
    }

    pub(crate) fn record_success(&self, progress: bool) {
        self.iterations.fetch_add(1, Ordering::Relaxed);
        if progress {
            self.progress_iterations.fetch_add(1, Ordering::Relaxed);
        }
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    pub(crate) fn record_transient(&self, consecutive_failures: u32, error: String) {
        self.iterations.fetch_add(1, Ordering::Relaxed);
        self.transient_errors.fetch_add(1, Ordering::Relaxed);
        self.consecutive_failures.store(consecutive_failures, Ordering::Relaxed);
        *self.lock_last_error() = Some(error);
    }

    pub(crate) fn record_fatal(&self, error: String) {
        self.iterations.fetch_add(1, Ordering::Relaxed);
        *self.lock_last_error() = Some(error);
    }

    fn lock_last_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // The guarded value is a plain Option<String>, valid even if a holder panicked.
        self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
