//! Wake-up handles between tasks.

use std::pin::pin;
use std::sync::Arc;

use tokio::sync::Notify;

/// Makes the owning task run its next iteration at once instead of waiting for its idle
/// poll.
///
/// Cloneable; clones wake the same task. Wakes coalesce: several wakes while the task is
/// busy cause one extra iteration. A wake that arrives before the task waits is not lost
/// (the semantics of [`Notify::notify_one`]).
#[derive(Debug, Clone, Default)]
pub struct TaskWaker(Arc<Notify>);

impl TaskWaker {
    /// A waker for a task that has not been started yet; pass it to [`run`](crate::run).
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the owning task to run again as soon as it is idle.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Waits for a wake (or returns at once if one is pending, consuming it).
    pub(crate) async fn woken(&self) {
        self.0.notified().await;
    }

    /// Consumes a pending wake, if any, without waiting. The runner calls this just before
    /// an iteration, which satisfies every wake issued so far.
    pub(crate) fn clear(&self) {
        let notified = pin!(self.0.notified());
        // `enable` consumes a stored permit. If it instead registers this future as a
        // waiter and a `notify_one` lands before it is dropped, `Notified`'s drop hands
        // the notification on (storing it again), so no wake is lost.
        notified.enable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn wake_before_wait_is_kept_and_coalesced() {
        let waker = TaskWaker::new();
        waker.wake();
        waker.clone().wake();
        tokio::time::timeout(Duration::from_secs(1), waker.woken()).await.expect("kept");
        // Two wakes coalesced into one permit.
        assert!(tokio::time::timeout(Duration::from_secs(1), waker.woken()).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn clear_consumes_a_pending_wake() {
        let waker = TaskWaker::new();
        waker.wake();
        waker.clear();
        assert!(tokio::time::timeout(Duration::from_secs(1), waker.woken()).await.is_err());
        // Clearing without a pending wake does not swallow a later one.
        waker.clear();
        waker.wake();
        tokio::time::timeout(Duration::from_secs(1), waker.woken()).await.expect("kept");
    }
}
