//! Typed tables under versioned prefixes.

use std::fmt;
use std::marker::PhantomData;

use borsh::{BorshDeserialize, BorshSerialize};
use primitives::codec::{decode_body, encode_body};

use crate::db::{Get, WriteTxn};
use crate::error::DbError;
use crate::key::DbKey;

/// Separates a prefix (or queue name) from the rest of the key. Prefixes cannot contain
/// it, so no prefix's keys can start with another prefix's namespace.
pub(crate) const SEPARATOR: u8 = 0x00;

/// Whether `prefix` is a valid table prefix or queue name: non-empty, without 0x00.
pub(crate) const fn valid_prefix(prefix: &str) -> bool {
    let bytes = prefix.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == SEPARATOR {
            return false;
        }
        i += 1;
    }
    true
}

/// `prefix || 0x00`: the first bytes of every key of that table or queue.
pub(crate) fn namespace(prefix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 13);
    out.extend_from_slice(prefix.as_bytes());
    out.push(SEPARATOR);
    out
}

/// The namespace of a table or queue in `txn`: `prefix || 0x00`, followed, for a scoped
/// one, by the transaction's scope (u32 big-endian).
pub(crate) fn namespace_in(
    prefix: &'static str,
    scoped: bool,
    txn: &impl Get,
) -> Result<Vec<u8>, DbError> {
    let mut out = namespace(prefix);
    if scoped {
        let scope = txn.scope().ok_or(DbError::Unscoped { prefix })?;
        out.extend_from_slice(&scope.to_be_bytes());
    }
    Ok(out)
}

/// The namespace of `scope`'s entries of a scoped table or queue named `prefix`: what
/// [`WriteTxn::del_range_raw`] removes when a scope is retired.
pub fn scope_namespace(prefix: &str, scope: u32) -> Vec<u8> {
    let mut out = namespace(prefix);
    out.extend_from_slice(&scope.to_be_bytes());
    out
}

/// A typed family of entries under a versioned prefix, e.g.
/// `Table::<u64, Block>::new("scanner/v1/blocks")`.
///
/// Every table lives in the one redb table of the database; an entry's stored key is
/// `prefix || 0x00 || key.write_key()` and its value is the borsh body of `V`
/// ([`encode_body`]). Prefixes MUST be distinct across all tables and queues of a
/// database (a [`crate::Queue`]'s name is its prefix), SHOULD carry a version
/// (`"…/v1/…"`) bumped when `K` or `V` changes encoding, and MUST NOT be empty or contain
/// 0x00 ([`Table::new`] panics, at compile time in a `const`).
///
/// Two tables with prefixes `"a/v1/x"` and `"a/v1/xy"` never see each other's entries.
///
/// A table declared with [`Table::scoped`] keeps one independent set of entries per
/// *scope* (a session): stored under `prefix || 0x00 || scope (u32 BE) || key`, where the
/// scope is the transaction's ([`Get::scope`]). A scoped table used in a transaction
/// without a scope is [`DbError::Unscoped`].
pub struct Table<K, V> {
    prefix: &'static str,
    scoped: bool,
    // `fn() -> _` so the table is Send + Sync + Copy whatever K and V are.
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Table<K, V> {}

impl<K, V> fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Table").field(&self.prefix).field(&self.scoped).finish()
    }
}

impl<K, V> Table<K, V> {
    /// Declares a table. Panics (a compile error when used in a `const`) if `prefix` is
    /// empty or contains 0x00.
    pub const fn new(prefix: &'static str) -> Self {
        assert!(valid_prefix(prefix), "a table prefix must be non-empty and must not contain 0x00");
        Table { prefix, scoped: false, _types: PhantomData }
    }

    /// Declares a table scoped by session (see the type's documentation). The same rules
    /// for `prefix` as [`Table::new`].
    pub const fn scoped(prefix: &'static str) -> Self {
        assert!(valid_prefix(prefix), "a table prefix must be non-empty and must not contain 0x00");
        Table { prefix, scoped: true, _types: PhantomData }
    }

    /// Whether the table is scoped by session.
    pub const fn is_scoped(&self) -> bool {
        self.scoped
    }

    /// The prefix given to [`Table::new`].
    pub const fn prefix(&self) -> &'static str {
        self.prefix
    }
}

impl<K: DbKey, V: BorshSerialize + BorshDeserialize> Table<K, V> {
    /// The full stored key of `key` in `txn`'s scope.
    pub(crate) fn raw_key(&self, txn: &impl Get, key: &K) -> Result<Vec<u8>, DbError> {
        let mut out = namespace_in(self.prefix, self.scoped, txn)?;
        key.write_key(&mut out);
        Ok(out)
    }

    /// The value under `key`. A stored value that does not decode is
    /// [`DbError::Corrupt`].
    pub fn get(&self, txn: &impl Get, key: &K) -> Result<Option<V>, DbError> {
        let raw = self.raw_key(txn, key)?;
        txn.get_raw(&raw)?
            .map(|bytes| decode_body(&bytes).map_err(|e| DbError::corrupt(&raw, e)))
            .transpose()
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub fn put(&self, txn: &mut WriteTxn, key: &K, value: &V) -> Result<(), DbError> {
        let raw = self.raw_key(txn, key)?;
        txn.put_raw(&raw, &encode_body(value))
    }

    /// Removes `key`; returns whether it was present.
    pub fn del(&self, txn: &mut WriteTxn, key: &K) -> Result<bool, DbError> {
        let raw = self.raw_key(txn, key)?;
        txn.del_raw(&raw)
    }

    /// Every entry, in ascending key order (which is value order, see [`DbKey`]). Loads
    /// them all into memory.
    pub fn iter(&self, txn: &impl Get) -> Result<Vec<(K, V)>, DbError> {
        let ns = namespace_in(self.prefix, self.scoped, txn)?;
        txn.range_raw(&ns)?
            .into_iter()
            .map(|(raw, bytes)| {
                let key_bytes = raw.get(ns.len()..).unwrap_or_default();
                // Report the full stored key, not just the part that failed.
                let key = K::read_key(key_bytes).map_err(|e| match e {
                    DbError::BadKey { reason, .. } => DbError::bad_key(&raw, reason),
                    other => other,
                })?;
                let value = decode_body(&bytes).map_err(|e| DbError::corrupt(&raw, e))?;
                Ok((key, value))
            })
            .collect()
    }
}
