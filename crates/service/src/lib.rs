//! Daemon plumbing shared by the processor and the coordinator simulator, so that both
//! binaries load configuration, handle secrets, log, serve HTTP and stop the same way.
//!
//! Guarantees:
//! - Secrets are read only from the environment or from a file readable by its owner
//!   alone (mode `0600`); anything else is refused with a message naming the fix. They are
//!   held in [`zeroize::Zeroizing`] buffers and never logged.
//! - [`config::write_identity_file`] never overwrites a file and creates it with mode
//!   `0600` from the start, so the key is never readable by others.
//! - Every error is a typed value ([`config::ConfigError`], [`run::Stopped`], ...);
//!   nothing in this crate panics on input from outside.
//! - The HTTP endpoint ([`http`]) only reads: `/metrics`, `/health` and `/status` open a
//!   read transaction and never write.
//! - [`run::supervise`] stops every task when one fails fatally, and reports the first
//!   failure.
#![deny(missing_docs)]

pub mod cli;
pub mod client;
pub mod config;
pub mod http;
pub mod log;
pub mod run;

use bus::{Received, SendError, INBOX};
use db::{Db, DbError, WriteTxn};
use task::TaskError;

/// Maps a database error to the task error class it belongs to.
pub fn db_error(e: DbError) -> TaskError {
    e.into()
}

/// Queueing an outgoing message failed: an oversized message is a bug in the caller, so
/// fatal; a database error keeps its class.
pub fn send_error(e: SendError) -> TaskError {
    match e {
        SendError::Db(e) => db_error(e),
        e @ SendError::TooLarge { .. } => TaskError::fatal(e),
    }
}

/// Opens a write transaction and pops the oldest inbox message in it: what an inbox
/// handler's iteration starts with. `None` when the inbox is empty. The message leaves the
/// inbox only if the caller commits the transaction.
pub fn pop_inbox(db: &Db) -> Result<Option<(WriteTxn, Received)>, TaskError> {
    let mut txn = db.write()?;
    let popped = INBOX.pop(&mut txn)?;
    Ok(popped.map(|(_, received)| (txn, received)))
}
