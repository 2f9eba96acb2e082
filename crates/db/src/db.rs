//! The database handle and its transactions.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};
use primitives::codec::{decode_body, encode_body};
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableError, WriteTransaction,
};

use crate::error::DbError;

/// The one redb table holding every [`crate::Table`] and [`crate::Queue`] entry.
const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tc/data");
/// Bookkeeping of this crate (the schema record).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("tc/meta");
/// The key of the schema record in [`META`].
const SCHEMA_KEY: &str = "schema";

/// Which application and which layout of its entries a database holds.
///
/// Bump `version` whenever a stored encoding or key layout changes incompatibly; an old
/// database is then refused ([`DbError::IncompatibleSchema`]) instead of misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// The application's name, e.g. `"tc-processor"`.
    pub app: &'static str,
    /// The schema version.
    pub version: u32,
}

/// The schema as stored (borsh body).
#[derive(BorshSerialize, BorshDeserialize)]
struct SchemaRecord {
    app: String,
    version: u32,
}

/// A handle on an open database. Cheap to clone; every clone is the same database. The
/// file stays locked (no other process, nor another `Db::open` in this process, can open
/// it) until the last clone is dropped.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Database>,
    path: Arc<PathBuf>,
    /// The scope the transactions it begins work in ([`Db::scoped`]).
    scope: Option<u32>,
    #[cfg(feature = "fault-injection")]
    fault: Arc<fault::Fault>,
}

#[cfg(feature = "fault-injection")]
mod fault {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::DbError;

    /// Commits counted through a database's handles, and where to stop.
    #[derive(Debug, Default)]
    pub(super) struct Fault {
        commits: AtomicU64,
        crash_at: AtomicU64,
        crashed: AtomicBool,
    }

    impl Fault {
        pub(super) fn check(&self) -> Result<(), DbError> {
            if self.crashed.load(Ordering::SeqCst) {
                return Err(DbError::Crashed { commit: self.crash_at.load(Ordering::SeqCst) });
            }
            Ok(())
        }

        pub(super) fn committed(&self) {
            let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
            if n == self.crash_at.load(Ordering::SeqCst) {
                self.crashed.store(true, Ordering::SeqCst);
            }
        }

        pub(super) fn commits(&self) -> u64 {
            self.commits.load(Ordering::SeqCst)
        }

        pub(super) fn crash_after(&self, commit: u64) {
            self.crash_at.store(commit, Ordering::SeqCst);
        }

        pub(super) fn crashed(&self) -> bool {
            self.crashed.load(Ordering::SeqCst)
        }
    }
}

/// Fault injection for tests (feature `fault-injection`): simulates a process crash right
/// after a given commit. The commit itself completes; from then on every transaction of
/// this handle (and its clones) fails with [`DbError::Crashed`], so nothing the crashed
/// code does afterwards reaches the file. Drop every clone and open the file again to
/// "restart".
#[cfg(feature = "fault-injection")]
impl Db {
    /// Commits made through this database's handles since it was opened.
    pub fn commits(&self) -> u64 {
        self.fault.commits()
    }

    /// Stops the database right after its `commit`-th commit (counted from opening).
    pub fn crash_after(&self, commit: u64) {
        self.fault.crash_after(commit);
    }

    /// Whether the database was stopped.
    pub fn crashed(&self) -> bool {
        self.fault.crashed()
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Db {
    /// Opens the database at `path`, creating it (and recording `schema`) if the file does
    /// not exist or is empty.
    ///
    /// Creation is atomic: the database is built and its schema committed in
    /// `<path>.creating`, which is then renamed to `path` (and the directory fsynced), so
    /// a crash during the first start leaves either no database or a complete one, never
    /// a half-initialized file that would refuse to open. A stale `<path>.creating` is
    /// replaced.
    ///
    /// Errors (all fatal): [`DbError::Open`] if the file is not a redb database, is
    /// corrupt beyond repair, is in use (by another process, or by another [`Db`] of this
    /// process), or cannot be read/written; [`DbError::IncompatibleSchema`] if it records
    /// another `schema.app` or `schema.version`; [`DbError::NoSchema`] if it is a redb
    /// database without a schema record. On a schema error no transaction is committed
    /// (redb may still repair its own bookkeeping after an unclean shutdown).
    ///
    /// After a crash, opening may take longer while redb repairs its allocator state; the
    /// committed contents are unaffected (see the crate's crash-safety contract).
    pub fn open(path: impl AsRef<Path>, schema: Schema) -> Result<Db, DbError> {
        Self::open_inner(path.as_ref(), schema, true)
    }

    /// Like [`Db::open`], but never creates: a missing file is [`DbError::Missing`]. For
    /// tools that only inspect (a status command pointed at the wrong path must say so,
    /// not report an empty database).
    pub fn open_existing(path: impl AsRef<Path>, schema: Schema) -> Result<Db, DbError> {
        Self::open_inner(path.as_ref(), schema, false)
    }

    fn open_inner(path: &Path, schema: Schema, may_create: bool) -> Result<Db, DbError> {
        let path = path.to_path_buf();
        if !may_create && !path.is_file() {
            return Err(DbError::Missing { path });
        }
        let open_err = |source: redb::DatabaseError| DbError::Open { path: path.clone(), source };

        let create = match std::fs::metadata(&path) {
            Ok(meta) => meta.is_file() && meta.len() == 0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(open_err(e.into())),
        };
        if create {
            create_atomically(&path, schema)?;
        }
        // `open`, not `create`: an existing file is never initialized in place.
        let db = Database::open(&path).map_err(open_err)?;

        let read = db.begin_read()?;
        let found = match read.open_table(META) {
            Ok(meta) => meta.get(SCHEMA_KEY)?.map(|v| v.value().to_vec()),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        drop(read);
        let Some(bytes) = found else {
            return Err(DbError::NoSchema { path });
        };
        let rec: SchemaRecord =
            decode_body(&bytes).map_err(|e| DbError::corrupt(SCHEMA_KEY.as_bytes(), e))?;
        if rec.app != schema.app || rec.version != schema.version {
            return Err(DbError::IncompatibleSchema {
                path,
                found_app: rec.app,
                found_version: rec.version,
                expected_app: schema.app,
                expected_version: schema.version,
            });
        }
        Ok(Db {
            scope: None,
            inner: Arc::new(db),
            path: Arc::new(path),
            #[cfg(feature = "fault-injection")]
            fault: Arc::default(),
        })
    }

    /// A handle on the same database whose transactions work in `scope`: scoped tables
    /// and queues ([`crate::Table::scoped`]) read and write that session's entries.
    pub fn scoped(&self, scope: u32) -> Db {
        Db { scope: Some(scope), ..self.clone() }
    }

    /// The scope of this handle's transactions, if any.
    pub fn scope(&self) -> Option<u32> {
        self.scope
    }

    /// The path this database was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Begins a read transaction: a consistent snapshot of the last commit, unaffected by
    /// later commits. Never blocks on writers.
    pub fn read(&self) -> Result<ReadTxn, DbError> {
        #[cfg(feature = "fault-injection")]
        self.fault.check()?;
        let txn = self.inner.begin_read()?;
        let table = txn.open_table(DATA)?;
        Ok(ReadTxn { table, _txn: txn, scope: self.scope })
    }

    /// Begins the write transaction. There is at most one at a time per database: this
    /// BLOCKS the calling thread until the current one commits or is dropped, so keep write
    /// transactions short and never hold one across network I/O (or an `.await` that
    /// waits on another task's writes).
    ///
    /// Commits are durable when [`WriteTxn::commit`] returns (redb's default `Immediate`
    /// durability: fsync on commit).
    pub fn write(&self) -> Result<WriteTxn, DbError> {
        #[cfg(feature = "fault-injection")]
        self.fault.check()?;
        Ok(WriteTxn {
            txn: self.inner.begin_write()?,
            scope: self.scope,
            #[cfg(feature = "fault-injection")]
            fault: self.fault.clone(),
        })
    }
}

/// Builds a database with its schema record at `<path>.creating`, then renames it to
/// `path` and fsyncs the directory, so `path` only ever names a complete database.
fn create_atomically(path: &Path, schema: Schema) -> Result<(), DbError> {
    let open_err = |e: io::Error| DbError::Open { path: path.to_path_buf(), source: e.into() };
    let mut name = path
        .file_name()
        .ok_or_else(|| open_err(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?
        .to_os_string();
    name.push(".creating");
    let tmp = path.with_file_name(name);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(open_err(e)),
        _ => {}
    }
    {
        let db = Database::create(&tmp)
            .map_err(|source| DbError::Open { path: path.to_path_buf(), source })?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let rec = SchemaRecord { app: schema.app.to_owned(), version: schema.version };
            meta.insert(SCHEMA_KEY, encode_body(&rec).as_slice())?;
            // Created now so that read transactions can always open it.
            txn.open_table(DATA)?;
        }
        txn.commit()?;
    } // Closed (and unlocked) before the rename.
    std::fs::rename(&tmp, path).map_err(open_err)?;
    sync_dir(path).map_err(open_err)
}

/// Makes a rename in `path`'s directory durable.
#[cfg(unix)]
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// Directories cannot be opened for fsync here; the rename is durable once the file system
/// commits its metadata.
#[cfg(not(unix))]
fn sync_dir(_: &Path) -> io::Result<()> {
    Ok(())
}

/// Raw `(key, value)` pairs, as returned by [`Get::range_raw`].
pub type RawEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads available in both [`ReadTxn`] and [`WriteTxn`], so readers work in either. In a
/// `WriteTxn` they see that transaction's own uncommitted writes.
pub trait Get {
    /// The value stored under `key`, if any.
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError>;

    /// Every entry whose key starts with `prefix`, in ascending key order.
    fn range_raw(&self, prefix: &[u8]) -> Result<RawEntries, DbError>;

    /// The session this transaction works for: what [`crate::Table::scoped`] tables and
    /// [`crate::Queue::scoped`] queues read and write under. `None` until set with
    /// `scope`; a scoped table used without one is [`DbError::Unscoped`].
    fn scope(&self) -> Option<u32>;
}

/// A read view of `G` in another scope: scoped tables read `scope`'s entries through
/// it ([`in_scope`]).
#[derive(Debug)]
pub struct InScope<'a, G: Get + ?Sized> {
    inner: &'a G,
    scope: u32,
}

/// Reads through `txn` as if it were scoped to `scope` (for readers that look at several
/// sessions' state in one snapshot, such as a status report).
pub fn in_scope<G: Get + ?Sized>(txn: &G, scope: u32) -> InScope<'_, G> {
    InScope { inner: txn, scope }
}

impl<G: Get + ?Sized> Get for InScope<'_, G> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        self.inner.get_raw(key)
    }
    fn range_raw(&self, prefix: &[u8]) -> Result<RawEntries, DbError> {
        self.inner.range_raw(prefix)
    }
    fn scope(&self) -> Option<u32> {
        Some(self.scope)
    }
}

fn get_in(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<Vec<u8>>, DbError> {
    Ok(table.get(key)?.map(|v| v.value().to_vec()))
}

fn range_in(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
) -> Result<RawEntries, DbError> {
    let mut out = Vec::new();
    for entry in table.range::<&[u8]>(prefix..)? {
        let (k, v) = entry?;
        let k = k.value();
        if !k.starts_with(prefix) {
            break;
        }
        out.push((k.to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

/// A read-only snapshot. Dropping it releases the snapshot.
pub struct ReadTxn {
    // Declared first so it is dropped before the transaction it reads from.
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
    _txn: ReadTransaction,
    scope: Option<u32>,
}

impl ReadTxn {
    /// This snapshot, reading scoped tables under `scope` (see [`Get::scope`]).
    pub fn scoped(mut self, scope: u32) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Sets the scope scoped tables read under (`None`: none).
    pub fn set_scope(&mut self, scope: Option<u32>) {
        self.scope = scope;
    }
}

impl fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadTxn").finish_non_exhaustive()
    }
}

impl Get for ReadTxn {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        get_in(&self.table, key)
    }
    fn range_raw(&self, prefix: &[u8]) -> Result<RawEntries, DbError> {
        range_in(&self.table, prefix)
    }
    fn scope(&self) -> Option<u32> {
        self.scope
    }
}

/// The write transaction: everything written through it becomes visible and durable at
/// once on [`commit`](WriteTxn::commit), or not at all if it is dropped without commit
/// (or the process dies first).
pub struct WriteTxn {
    txn: WriteTransaction,
    scope: Option<u32>,
    #[cfg(feature = "fault-injection")]
    fault: Arc<fault::Fault>,
}

impl fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteTxn").finish_non_exhaustive()
    }
}

impl WriteTxn {
    /// This transaction, reading and writing scoped tables under `scope` (see
    /// [`Get::scope`]).
    pub fn scoped(mut self, scope: u32) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Sets the scope scoped tables read and write under (`None`: none). Returns the
    /// previous one, so a caller lending the transaction to another session's code can
    /// put it back.
    pub fn set_scope(&mut self, scope: Option<u32>) -> Option<u32> {
        std::mem::replace(&mut self.scope, scope)
    }

    /// Removes every entry whose key starts with `prefix`; returns how many.
    pub fn del_range_raw(&mut self, prefix: &[u8]) -> Result<u64, DbError> {
        let keys: Vec<Vec<u8>> = self.range_raw(prefix)?.into_iter().map(|(k, _)| k).collect();
        let mut table = self.txn.open_table(DATA)?;
        for key in &keys {
            table.remove(key.as_slice())?;
        }
        Ok(keys.len() as u64)
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub fn put_raw(&mut self, key: &[u8], value: &[u8]) -> Result<(), DbError> {
        self.txn.open_table(DATA)?.insert(key, value)?;
        Ok(())
    }

    /// Removes `key`; returns whether it was present.
    pub fn del_raw(&mut self, key: &[u8]) -> Result<bool, DbError> {
        Ok(self.txn.open_table(DATA)?.remove(key)?.is_some())
    }

    /// Makes every write of this transaction durable and visible, atomically. When this
    /// returns `Ok`, the data is on disk (fsync). On `Err` the outcome is unknown until the
    /// database is reopened (an fsync may have failed after the data was written), but it
    /// is all-or-nothing: after reopening, the transaction is either entirely present or
    /// entirely absent.
    pub fn commit(self) -> Result<(), DbError> {
        #[cfg(feature = "fault-injection")]
        self.fault.check()?;
        self.txn.commit()?;
        #[cfg(feature = "fault-injection")]
        self.fault.committed();
        Ok(())
    }
}

impl Get for WriteTxn {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        get_in(&self.txn.open_table(DATA)?, key)
    }
    fn range_raw(&self, prefix: &[u8]) -> Result<RawEntries, DbError> {
        range_in(&self.txn.open_table(DATA)?, prefix)
    }
    fn scope(&self) -> Option<u32> {
        self.scope
    }
}
