//! The one task contract of the processor, and the runner that drives it.
//!
//! The processor is a set of tasks connected by durable DB queues (DESIGN §4). A task
//! implements [`Task::run_iteration`]; [`run`] calls it in a loop, retries transient
//! errors with capped exponential backoff, idles when there is nothing to do, wakes
//! downstream tasks when it made progress, and stops on [`Shutdown`] or a fatal error.
//!
//! # What a task guarantees (implementors)
//! - An iteration MUST be atomic: fetch (no DB write transaction open) -> one write
//!   transaction -> commit. It either commits entirely or not at all, so running it again
//!   after a crash, an error or a restart is always correct.
//! - An iteration MUST return `Ok(true)` only when it committed something (progress), and
//!   `Ok(false)` when there was nothing to do. A task returning `Ok(true)` forever starves
//!   nothing (the runner yields) but burns a core.
//! - Errors are classified, never stringly typed:
//!   - [`TaskError::Transient`]: the same iteration may succeed later (node down, timeout).
//!   - [`TaskError::Fatal`]: retrying cannot help (misconfiguration, incompatible DB); the
//!     process SHOULD stop with the message.
//!   - *Bugs* (a broken invariant) are panics. The runner does not catch them: a panic
//!     unwinds out of [`run`] (or fails the Tokio task it was spawned on).
//!
//! # What the runner guarantees ([`run`])
//! - It MUST NOT cancel an iteration: the iteration future is always awaited to
//!   completion. Shutdown is observed only between iterations.
//! - After [`Shutdown::trigger`], it MUST return `Ok(())` at its next wait (idle poll or
//!   backoff) or, if an iteration is running, right after that iteration; it starts no
//!   new iteration.
//! - Transient errors MUST be retried after a delay from [`Backoff`]: equal jitter in
//!   `[d/2, d]` where `d = min(cap, base * 2^(failures - 1))`, never above `cap`, never
//!   overflowing. Any `Ok` resets the backoff. Backoff sleeps are interrupted by shutdown,
//!   not by wake-ups (a wake during backoff is kept and honoured afterwards).
//! - A fatal error MUST stop the runner with a [`FatalError`] naming the task.
//! - On `Ok(true)` it MUST wake every dependent [`TaskWaker`] and run again at once.
//! - On `Ok(false)` it waits for its own [`TaskWaker`], the idle poll, or shutdown. A wake
//!   that arrives while an iteration runs is not lost; wakes that arrive before an
//!   iteration starts are satisfied by that iteration; several wakes coalesce into one.
//! - [`TaskStats`] counters are updated after every iteration, for metrics and health.
#![deny(missing_docs)]

mod backoff;
mod error;
mod runner;
mod shutdown;
mod stats;
mod waker;

pub use backoff::Backoff;
pub use error::{error_chain, BoxError, FatalError, TaskError};
pub use runner::{run, RunConfig};
pub use shutdown::Shutdown;
pub use stats::TaskStats;
pub use waker::TaskWaker;

use std::future::Future;

/// A unit of the processor's work, driven by [`run`].
pub trait Task: Send + 'static {
    /// Stable name for logs and metrics (e.g. `"scanner/bitcoin"`).
    fn name(&self) -> &str;

    /// One iteration: fetch (no DB transaction open) -> one write transaction -> commit.
    ///
    /// Returns `Ok(true)` if it made progress (the runner calls it again at once), or
    /// `Ok(false)` if there was nothing to do (the runner waits for a wake-up or the idle
    /// poll). Panics signal bugs (broken invariants).
    fn run_iteration(&mut self) -> impl Future<Output = Result<bool, TaskError>> + Send;
}
