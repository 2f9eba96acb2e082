//! A fatal error stops the processor once, not in a loop.
//!
//! A fatal error is one that retrying cannot fix: a planner that disagrees with the
//! scheduler, a reorg deeper than the confirmations, a database that does not decode. The
//! task returns it before committing, so whatever it was handling (an inbox message, a
//! queued acknowledgement, a block) is still there after a restart, and a supervisor that
//! restarts the process would handle it again and fail again, for ever, each time at a
//! different place in the logs.
//!
//! Instead, the first fatal error is recorded in the database ([`record`]), and a later
//! start refuses to run any task while the record is there ([`check`]): it prints the
//! recorded error, when it happened and what to do, and exits with [`EXIT_HALTED`], which a
//! service manager can be told not to restart on (systemd's `RestartPreventExitStatus`).
//! The operator fixes the cause (usually a new build, or the node) and runs `processor
//! resume`, which removes the record ([`resume`]); the next start tries the work that
//! failed again from the state it left, since nothing of it was committed.
//!
//! A panic is a halt too (recorded once every task has stopped, then re-raised).
//!
//! Guarantee: while a halt is recorded, a processor started through [`crate::run`] commits
//! nothing (it stops before opening its tasks).
use borsh::{BorshDeserialize, BorshSerialize};
use db::{Db, DbError, Table};
use task::TaskError;

/// The recorded halt (at most one: the first).
pub const HALT: Table<(), Halt> = Table::new("processor/v1/halt");

/// The process exit code of a processor that refuses to start because it is halted (78,
/// `EX_CONFIG` in sysexits.h: an operator must act before a restart can help).
pub const EXIT_HALTED: u8 = 78;

/// A fatal error, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Halt {
    /// The task that failed.
    pub task: String,
    /// Its error, with every source.
    pub error: String,
    /// When, in seconds since the Unix epoch.
    pub at_unix: u64,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "halted since {} (unix seconds) by a fatal error in task {}: {}. Nothing of the \
             failed work was committed. Fix the cause (see docs/operations.md, \"Halted\"), \
             then run `processor resume` and start it again to try that work again",
            self.at_unix, self.task, self.error
        )
    }
}

/// Records `task`'s fatal `error`, unless a halt is recorded already (the first one is
/// the cause; later ones are its consequences). Best effort: a database that cannot take
/// the record (it may be the cause) is logged, and the error is still returned to the
/// caller as it was.
pub fn record(db: &Db, task: &str, error: &str) -> Option<Halt> {
    let halt = Halt {
        task: task.to_string(),
        error: error.to_string(),
        at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let written = (|| -> Result<bool, DbError> {
        let mut txn = db.write()?;
        if HALT.get(&txn, &())?.is_some() {
            return Ok(false);
        }
        HALT.put(&mut txn, &(), &halt)?;
        txn.commit()?;
        Ok(true)
    })();
    match written {
        Ok(true) => {
            tracing::error!(
                task,
                error,
                "HALTED: recorded; later starts refuse until `processor resume`"
            );
            Some(halt)
        }
        Ok(false) => None,
        Err(e) => {
            tracing::error!(task, error, db = %e, "fatal error, and the halt could not be recorded");
            None
        }
    }
}

/// The recorded halt, if any.
pub fn check(db: &Db) -> Result<Option<Halt>, DbError> {
    HALT.get(&db.read()?, &())
}

/// Removes the recorded halt (the operator's `processor resume`); returns it.
pub fn resume(db: &Db) -> Result<Option<Halt>, DbError> {
    let mut txn = db.write()?;
    let halt = HALT.get(&txn, &())?;
    if halt.is_some() {
        HALT.del(&mut txn, &())?;
        txn.commit()?;
    }
    Ok(halt)
}

/// A fatal error met while doing one queued unit of work (an inbox message, an
/// acknowledgement): the work stays queued, so the error would repeat on every restart.
/// Only these (and panics) are recorded as a halt; other fatal errors (configuration, the
/// node, opening the database) exit as they are, since a restart may well fix them.
#[derive(Debug, thiserror::Error)]
#[error("{work}: {error}")]
pub struct WorkFailed {
    /// What was being done.
    pub work: String,
    /// The error, with its sources.
    pub error: String,
}

/// `e`, if fatal, as a [`WorkFailed`] naming `work`.
pub fn naming(e: TaskError, work: impl std::fmt::Display) -> TaskError {
    match e {
        TaskError::Fatal(e) => {
            TaskError::fatal(WorkFailed { work: work.to_string(), error: task::error_chain(&*e) })
        }
        transient => transient,
    }
}

/// Whether a task's fatal `error` is recorded as a halt: a [`WorkFailed`], or a panic
/// (`panicked`).
pub fn halts(error: &(dyn std::error::Error + 'static), panicked: bool) -> bool {
    panicked || error.downcast_ref::<WorkFailed>().is_some()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fatal(e: TaskError) -> task::FatalError {
        match e {
            TaskError::Fatal(source) => task::FatalError { task: "t".into(), source },
            TaskError::Transient(_) => panic!("not fatal"),
        }
    }

    #[test]
    fn only_failed_queued_work_and_panics_halt() {
        let named = naming(TaskError::fatal("planner disagrees"), "the burns of block 2");
        let named = fatal(named);
        assert_eq!(named.source.to_string(), "the burns of block 2: planner disagrees");
        assert!(halts(&*named.source, false));
        let plain = fatal(TaskError::fatal("node unauthorized"));
        assert!(!halts(&*plain.source, false));
        assert!(halts(&*plain.source, true));
        assert!(matches!(naming(TaskError::transient("busy"), "x"), TaskError::Transient(_)));
    }

    #[test]
    fn the_first_halt_is_kept_until_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("db.redb"), crate::SCHEMA).unwrap();
        assert_eq!(check(&db).unwrap(), None);
        let first = record(&db, "acknowledger", "first").unwrap();
        assert_eq!(record(&db, "scanner", "second"), None);
        assert_eq!(check(&db).unwrap(), Some(first.clone()));
        assert_eq!(resume(&db).unwrap(), Some(first));
        assert_eq!(check(&db).unwrap(), None);
        assert_eq!(resume(&db).unwrap(), None);
    }
}
