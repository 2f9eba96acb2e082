//! The loop that drives a [`Task`].

use std::sync::Arc;
use std::time::Duration;

use rand::{rngs::StdRng, SeedableRng};
use tracing::Instrument;

use crate::error::error_chain;
use crate::{Backoff, FatalError, Shutdown, Task, TaskError, TaskStats, TaskWaker};

/// Timing of a runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    /// How long an idle task (last iteration returned `Ok(false)`) waits for a wake-up
    /// before polling again anyway. Catches inputs nobody wakes it for (a new block).
    pub idle_poll: Duration,
    /// First backoff delay after a transient error (SHOULD be nonzero).
    pub backoff_base: Duration,
    /// Largest backoff delay.
    pub backoff_cap: Duration,
}

impl Default for RunConfig {
    /// 5 s idle poll; backoff from 100 ms up to 30 s.
    fn default() -> Self {
        Self {
            idle_poll: Duration::from_secs(5),
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(30),
        }
    }
}

/// Runs `task` until `shutdown` is triggered (`Ok(())`) or it fails fatally.
///
/// - `Ok(true)`: wakes every waker in `dependents` (downstream tasks), resets the backoff,
///   yields to the scheduler and runs again.
/// - `Ok(false)`: resets the backoff and waits for `waker`, `config.idle_poll` or shutdown.
/// - [`TaskError::Transient`]: logs a warning and sleeps a [`Backoff`] delay; shutdown
///   interrupts the sleep, wakes do not (they are kept for later).
/// - [`TaskError::Fatal`]: logs an error and returns [`FatalError`].
///
/// An iteration is never cancelled: shutdown is only observed between iterations. Panics
/// in the task (bugs) propagate. `stats` is updated after each iteration.
pub async fn run<T: Task>(
    task: T,
    config: RunConfig,
    waker: TaskWaker,
    dependents: Vec<TaskWaker>,
    shutdown: Shutdown,
    stats: Arc<TaskStats>,
) -> Result<(), FatalError> {
    let span = tracing::info_span!("task", name = task.name());
    run_inner(task, config, waker, dependents, shutdown, stats).instrument(span).await
}

async fn run_inner<T: Task>(
    mut task: T,
    config: RunConfig,
    waker: TaskWaker,
    dependents: Vec<TaskWaker>,
    shutdown: Shutdown,
    stats: Arc<TaskStats>,
) -> Result<(), FatalError> {
    tracing::info!("task started");
    let mut backoff = Backoff::new(config.backoff_base, config.backoff_cap);
    let mut rng = StdRng::from_entropy();
    loop {
        if shutdown.is_triggered() {
            tracing::info!("task stopped: shutdown");
            return Ok(());
        }
        // This iteration sees every input announced so far, so pending wakes are satisfied.
        // Wakes that arrive while it runs stay pending and make the next wait return at once.
        waker.clear();

        // Awaited to completion, never raced against shutdown: the iteration is the unit of
        // atomicity.
        match task.run_iteration().await {
            Ok(true) => {
                stats.record_success(true);
                backoff.reset();
                for dependent in &dependents {
                    dependent.wake();
                }
                tracing::trace!("iteration made progress");
                // Fairness: a task that always has work must not starve the others.
                tokio::task::yield_now().await;
            }
            Ok(false) => {
                stats.record_success(false);
                backoff.reset();
                tokio::select! {
                    biased;
                    () = shutdown.wait() => {}
                    () = waker.woken() => {}
                    () = tokio::time::sleep(config.idle_poll) => {}
                }
            }
            Err(TaskError::Transient(error)) => {
                let delay = backoff.next_delay(&mut rng);
                let failures = backoff.failures();
                let error = error_chain(&*error);
                tracing::warn!(failures, ?delay, %error, "transient error, backing off");
                stats.record_transient(failures, error);
                tokio::select! {
                    biased;
                    () = shutdown.wait() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Err(TaskError::Fatal(source)) => {
                let error = error_chain(&*source);
                tracing::error!(%error, "task stopped: fatal error");
                stats.record_fatal(error);
                return Err(FatalError { task: task.name().to_owned(), source });
            }
        }
    }
}
