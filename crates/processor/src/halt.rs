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
//! The operator fixes the cause (usually a new build, or the node) and starts once with
//! `--resume`, which removes the record ([`resume`]); the work that failed is then tried
//! again from the state it left, since nothing of it was committed.
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
             then start once with --resume to try it again",
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
            tracing::error!(task, error, "HALTED: recorded; later starts refuse until --resume");
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

/// Removes the recorded halt (the operator's `--resume`); returns it.
pub fn resume(db: &Db) -> Result<Option<Halt>, DbError> {
    let mut txn = db.write()?;
    let halt = HALT.get(&txn, &())?;
    if halt.is_some() {
        HALT.del(&mut txn, &())?;
        txn.commit()?;
    }
    Ok(halt)
}

/// `e`, if fatal, prefixed with the work it stopped (a message, an acknowledgement): that
/// work is still queued, and the halt record must say what to look at.
pub fn naming(e: TaskError, work: impl std::fmt::Display) -> TaskError {
    match e {
        TaskError::Fatal(e) => TaskError::fatal(format!("{work}: {}", task::error_chain(&*e))),
        transient => transient,
    }
}
