//! The crate's error type.

use std::path::PathBuf;

use primitives::codec::CodecError;

/// Why a stored key was not accepted as a [`crate::DbKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A fixed-width component (or the whole key) had the wrong length.
    #[error("expected {expected} bytes, found {found}")]
    WrongLength {
        /// The width the key type requires.
        expected: usize,
        /// The width found.
        found: usize,
    },
    /// A `String` component was not UTF-8.
    #[error("string component is not UTF-8")]
    NotUtf8,
}

/// Everything that can go wrong in this crate.
///
/// Use [`DbError::is_fatal`] to decide between retrying (transient) and stopping the
/// process with the error's message (fatal).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The process "crashed" here: a test's fault injection ([`crate::Db::crash_after`],
    /// feature `fault-injection`) stopped this database after a commit. Fatal.
    #[error("database stopped by fault injection after commit {commit}")]
    Crashed {
        /// The commit after which it stopped.
        commit: u64,
    },
    /// [`crate::Db::open_existing`] found no database file. Fatal.
    #[error("no database at {}: is this the right data directory?", path.display())]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },
    /// The file could not be opened as a redb database (not a redb file, corrupt, locked by
    /// another process or another `Db` in this process, unreadable). Fatal.
    #[error(
        "cannot open the database at {}: {source} (check that the path is a data directory \
         file of this processor, that no other process is using it, and that it is readable \
         and writable)",
        path.display()
    )]
    Open {
        /// The path given to [`crate::Db::open`].
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: redb::DatabaseError,
    },
    /// The database was created by another application or another schema version. Fatal.
    #[error(
        "the database at {} holds schema '{found_app}' version {found_version}, but this build \
         expects schema '{expected_app}' version {expected_version}; point the processor at the \
         data directory that belongs to it, or migrate this database to version \
         {expected_version} first (do not delete it: it may hold state that cannot be rebuilt)",
        path.display()
    )]
    IncompatibleSchema {
        /// The database's path.
        path: PathBuf,
        /// The application recorded in the database.
        found_app: String,
        /// The schema version recorded in the database.
        found_version: u32,
        /// The application this build is.
        expected_app: &'static str,
        /// The schema version this build reads and writes.
        expected_version: u32,
    },
    /// The file is a redb database without a schema record: it was not created by
    /// [`crate::Db::open`]. Fatal.
    #[error(
        "the database at {} was not created by this processor (it is a redb database without \
         a schema record); point the processor at its own data directory",
        path.display()
    )]
    NoSchema {
        /// The database's path.
        path: PathBuf,
    },
    /// A stored value did not decode as its type. Fatal.
    #[error("the value stored under key {key} does not decode: {source}")]
    Corrupt {
        /// Hex of the full stored key.
        key: String,
        /// Why it did not decode.
        #[source]
        source: CodecError,
    },
    /// A stored key did not decode as its key type. Fatal.
    #[error("the stored key {key} does not decode: {reason}")]
    BadKey {
        /// Hex of the bytes that did not decode.
        key: String,
        /// Why.
        #[source]
        reason: KeyError,
    },
    /// Stored entries contradict an invariant of this crate (e.g. a queue item between head
    /// and tail is missing). Fatal.
    #[error("database invariant broken at key {key}: {reason}")]
    Inconsistent {
        /// Hex of the key concerned.
        key: String,
        /// Which invariant.
        reason: &'static str,
    },
    /// A session-scoped table or queue was used in a transaction that names no session
    /// ([`crate::WriteTxn::scoped`]). A bug. Fatal.
    #[error("the session-scoped table {prefix} was used in a transaction without a session")]
    Unscoped {
        /// The table's prefix or queue's name.
        prefix: &'static str,
    },
    /// redb failed during a transaction. Transient or fatal depending on the cause; see
    /// [`DbError::is_fatal`].
    #[error("database storage error: {0}")]
    Storage(#[source] redb::Error),
}

impl DbError {
    /// Whether retrying cannot help, so the process should stop with this error's message.
    ///
    /// Fatal: [`Open`](Self::Open), [`IncompatibleSchema`](Self::IncompatibleSchema),
    /// [`NoSchema`](Self::NoSchema), [`Corrupt`](Self::Corrupt), [`BadKey`](Self::BadKey),
    /// [`Inconsistent`](Self::Inconsistent), and storage errors that redb documents as
    /// needing a reopen or a repair (corruption, an earlier I/O failure, a closed database,
    /// a poisoned lock, a value too large) or that are programming errors (table type
    /// mismatches). Transient: I/O errors and transaction contention.
    pub fn is_fatal(&self) -> bool {
        match self {
            DbError::Open { .. }
            | DbError::Crashed { .. }
            | DbError::Missing { .. }
            | DbError::IncompatibleSchema { .. }
            | DbError::NoSchema { .. }
            | DbError::Corrupt { .. }
            | DbError::BadKey { .. }
            | DbError::Inconsistent { .. }
            | DbError::Unscoped { .. } => true,
            DbError::Storage(e) => !matches!(
                e,
                redb::Error::Io(_)
                    | redb::Error::Backend(_)
                    | redb::Error::WouldBlock
                    | redb::Error::TransactionInProgress
                    | redb::Error::ReadTransactionStillInUse(_)
            ),
        }
    }

    pub(crate) fn bad_key(bytes: &[u8], reason: KeyError) -> Self {
        DbError::BadKey { key: hex::encode(bytes), reason }
    }

    pub(crate) fn corrupt(key: &[u8], source: CodecError) -> Self {
        DbError::Corrupt { key: hex::encode(key), source }
    }

    pub(crate) fn inconsistent(key: &[u8], reason: &'static str) -> Self {
        DbError::Inconsistent { key: hex::encode(key), reason }
    }
}

/// redb's specific errors all convert into `redb::Error`; route them into
/// [`DbError::Storage`].
macro_rules! storage_from {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                DbError::Storage(e.into())
            }
        }
    )*};
}
storage_from!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
);

/// A storage error inside a task keeps its class: fatal ones stop the process, the others
/// are retried. The one conversion every task uses (`?` on a [`DbError`]).
impl From<DbError> for task::TaskError {
    fn from(e: DbError) -> Self {
        if e.is_fatal() {
            task::TaskError::fatal(e)
        } else {
            task::TaskError::transient(e)
        }
    }
}
