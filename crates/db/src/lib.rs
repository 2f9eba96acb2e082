//! Durable storage for the processor: one redb database file holding typed [`Table`]s
//! under versioned prefixes and durable single-writer/single-reader [`Queue`]s, all
//! written through one [`WriteTxn`] per task iteration.
//!
//! ```
//! use db::{Db, Queue, Schema, Table};
//!
//! const SCHEMA: Schema = Schema { app: "example", version: 1 };
//! const CURSOR: Table<(), u64> = Table::new("scanner/v1/next_to_scan");
//! const OUT: Queue<Vec<u8>> = Queue::new("scanner/v1/to_scheduler");
//!
//! # fn main() -> Result<(), db::DbError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path().join("db.redb"), SCHEMA)?;
//! // One iteration: write outputs and advance the cursor, atomically.
//! let mut txn = db.write()?;
//! let next = CURSOR.get(&txn, &())?.unwrap_or(0);
//! OUT.push(&mut txn, &b"block contents".to_vec())?;
//! CURSOR.put(&mut txn, &(), &(next + 1))?;
//! txn.commit()?;
//! assert_eq!(OUT.len(&db.read()?)?, 1);
//! # Ok(()) }
//! ```
//!
//! # Crash-safety contract
//!
//! After a crash at any point (process killed, or power lost on storage that honours
//! fsync), reopening the database with [`Db::open`] yields:
//! - every transaction whose [`WriteTxn::commit`] returned `Ok`, entirely (commits are
//!   fsynced before `commit` returns: redb's default `Immediate` durability);
//! - nothing of a transaction that was dropped without commit or had not started
//!   committing;
//! - a transaction whose commit was in progress either entirely or not at all, never in
//!   part;
//! - if the crash happened while [`Db::open`] was creating the database: either no
//!   database (the next open creates it) or a complete one with its schema record;
//! - for every [`Queue`]: pending items exactly at indices `head..tail`, contiguous, each
//!   committed push present exactly once until a committed pop removes it, and no index
//!   ever assigned twice.
//!
//! A [`ReadTxn`] sees one committed state and nothing of any write in progress.
//!
//! Users MUST:
//! - do an iteration's reads and writes (consume input, write output, advance cursor) in
//!   one [`WriteTxn`], so that a crash leaves a state from which the same iteration simply
//!   runs again;
//! - not do network I/O while a [`WriteTxn`] is open: there is one writer at a time and
//!   [`Db::write`] blocks until the current one is done;
//! - give each [`Queue`] exactly one writer task and one reader task, and every table
//!   prefix and queue name a unique, versioned string (declared as constants in one
//!   place);
//! - bump [`Schema::version`] when a stored encoding changes incompatibly.
//!
//! # Errors
//!
//! [`DbError::is_fatal`] splits errors into fatal (stop with the error's message:
//! unusable or foreign file, incompatible schema, undecodable data) and transient (retry:
//! I/O, contention). Undecodable stored data is always an error, never a panic.
#![deny(missing_docs)]

mod db;
mod error;
mod key;
mod queue;
mod table;

pub use db::{in_scope, Db, Get, InScope, RawEntries, ReadTxn, Schema, WriteTxn};
pub use error::{DbError, KeyError};
pub use key::DbKey;
pub use queue::Queue;
pub use table::{scope_namespace, Table};

#[cfg(test)]
mod tests;
