//! Error classes of the task contract.

use std::error::Error;
use std::fmt::Write as _;

/// Any error a task wraps; the class ([`TaskError`]) is what the runner acts on.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// How an iteration failed. Bugs are not errors: they are panics.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The same iteration may succeed later (node unreachable, timeout, busy DB):
    /// retried with capped exponential backoff.
    #[error("transient: {0}")]
    Transient(BoxError),
    /// Retrying cannot help (misconfiguration, incompatible DB): the runner stops.
    #[error("fatal: {0}")]
    Fatal(BoxError),
}

impl TaskError {
    /// A transient error (retried with backoff).
    pub fn transient(e: impl Into<BoxError>) -> Self {
        Self::Transient(e.into())
    }

    /// A fatal error (stops the runner).
    pub fn fatal(e: impl Into<BoxError>) -> Self {
        Self::Fatal(e.into())
    }
}

/// A task stopped on a [`TaskError::Fatal`].
#[derive(Debug, thiserror::Error)]
#[error("task {task} failed fatally: {source}")]
pub struct FatalError {
    /// [`Task::name`](crate::Task::name) of the task that failed.
    pub task: String,
    /// The error the task returned.
    #[source]
    pub source: BoxError,
}

/// `e` and its sources, `": "`-separated, for logs and the status endpoint.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Writing to a String cannot fail.
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_includes_every_source() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
    }

    #[test]
    fn constructors_pick_the_class() {
        assert!(matches!(TaskError::transient("x"), TaskError::Transient(_)));
        assert!(matches!(TaskError::fatal("x"), TaskError::Fatal(_)));
        assert_eq!(TaskError::fatal("bad config").to_string(), "fatal: bad config");
    }
}
