//! Durable FIFO queues between two tasks.

use std::fmt;
use std::marker::PhantomData;

use borsh::{BorshDeserialize, BorshSerialize};
use primitives::codec::{decode_body, encode_body};

use crate::db::{Get, WriteTxn};
use crate::error::DbError;
use crate::table::{namespace_in, valid_prefix};

/// Key tags under the queue's namespace. `HEAD` and `TAIL` are single keys; items are
/// `ITEM || index (u64 big-endian)`, so they iterate in index order.
const HEAD: u8 = b'h';
const TAIL: u8 = b't';
const ITEM: u8 = b'i';

/// A durable FIFO queue from one task (the writer, which only [`push`](Queue::push)es) to
/// one other task (the reader, which only [`peek`](Queue::peek)s and
/// [`pop`](Queue::pop)s).
///
/// Every operation takes the caller's transaction, so a reader can pop its input, write
/// its outputs (possibly pushing to another queue) and advance its cursor in ONE
/// [`WriteTxn`], which commits all of it or none of it.
///
/// Guarantees (given one writer and one reader, and a unique name):
/// - Indices are assigned from 0, contiguously, in push order, and are never reused, even
///   after the queue empties (head and tail counters are stored, not derived).
/// - A committed push is delivered exactly once: it stays pending until a committed pop
///   removes it; pushes and pops of transactions that did not commit leave no trace.
/// - The pending items are exactly the indices `head..tail`; anything else is reported as
///   [`DbError::Inconsistent`].
///
/// Stored layout under `name || 0x00`: `'h'` → head (borsh u64, next index to pop), `'t'`
/// → tail (borsh u64, next index to push), `'i' || index_be` → borsh body of the item.
/// The name shares the namespace of [`crate::Table`] prefixes and MUST differ from all
/// of them; it SHOULD be versioned (`"scanner/v1/to_scheduler"`).
///
/// A queue declared with [`Queue::scoped`] is one independent queue per scope (session),
/// as for [`crate::Table::scoped`].
pub struct Queue<T> {
    name: &'static str,
    scoped: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Queue<T> {}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Queue").field(&self.name).finish()
    }
}

impl<T> Queue<T> {
    /// Declares a queue. Panics (a compile error when used in a `const`) if `name` is
    /// empty or contains 0x00.
    pub const fn new(name: &'static str) -> Self {
        assert!(valid_prefix(name), "a queue name must be non-empty and must not contain 0x00");
        Queue { name, scoped: false, _item: PhantomData }
    }

    /// Declares a queue scoped by session (one queue per scope). The same rules for `name`
    /// as [`Queue::new`].
    pub const fn scoped(name: &'static str) -> Self {
        assert!(valid_prefix(name), "a queue name must be non-empty and must not contain 0x00");
        Queue { name, scoped: true, _item: PhantomData }
    }

    /// Whether the queue is scoped by session.
    pub const fn is_scoped(&self) -> bool {
        self.scoped
    }

    /// The name given to [`Queue::new`].
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T: BorshSerialize + BorshDeserialize> Queue<T> {
    pub(crate) fn tag_key(&self, txn: &impl Get, tag: u8) -> Result<Vec<u8>, DbError> {
        let mut key = namespace_in(self.name, self.scoped, txn)?;
        key.push(tag);
        Ok(key)
    }

    fn item_key(&self, txn: &impl Get, index: u64) -> Result<Vec<u8>, DbError> {
        let mut key = self.tag_key(txn, ITEM)?;
        key.extend_from_slice(&index.to_be_bytes());
        Ok(key)
    }

    fn counter(&self, txn: &impl Get, tag: u8) -> Result<u64, DbError> {
        let key = self.tag_key(txn, tag)?;
        match txn.get_raw(&key)? {
            None => Ok(0),
            Some(bytes) => decode_body(&bytes).map_err(|e| DbError::corrupt(&key, e)),
        }
    }

    /// `(head, tail)`, checked to be ordered.
    fn bounds(&self, txn: &impl Get) -> Result<(u64, u64), DbError> {
        let head = self.counter(txn, HEAD)?;
        let tail = self.counter(txn, TAIL)?;
        if head > tail {
            let key = self.tag_key(txn, HEAD)?;
            return Err(DbError::inconsistent(&key, "queue head is past its tail"));
        }
        Ok((head, tail))
    }

    /// Appends `item`; returns the index it was assigned (the previous push's + 1, or 0).
    /// Safe from any task (write transactions are serialized), but a queue should have
    /// one owner that documents who pushes.
    pub fn push(&self, txn: &mut WriteTxn, item: &T) -> Result<u64, DbError> {
        let tail_key = self.tag_key(txn, TAIL)?;
        let index = self.counter(txn, TAIL)?;
        let next = index
            .checked_add(1)
            .ok_or_else(|| DbError::inconsistent(&tail_key, "queue index space exhausted"))?;
        let item_key = self.item_key(txn, index)?;
        txn.put_raw(&item_key, &encode_body(item))?;
        txn.put_raw(&tail_key, &encode_body(&next))?;
        Ok(index)
    }

    /// The oldest pending item and its index, without removing it.
    pub fn peek(&self, txn: &impl Get) -> Result<Option<(u64, T)>, DbError> {
        let (head, tail) = self.bounds(txn)?;
        if head == tail {
            return Ok(None);
        }
        let key = self.item_key(txn, head)?;
        let bytes = txn.get_raw(&key)?.ok_or_else(|| {
            DbError::inconsistent(&key, "queue item between head and tail is missing")
        })?;
        let item = decode_body(&bytes).map_err(|e| DbError::corrupt(&key, e))?;
        Ok(Some((head, item)))
    }

    /// Removes and returns the oldest pending item and its index. Only the queue's reader
    /// calls this, in the transaction that also records what it did with the item.
    pub fn pop(&self, txn: &mut WriteTxn) -> Result<Option<(u64, T)>, DbError> {
        let Some((index, item)) = self.peek(txn)? else {
            return Ok(None);
        };
        let key = self.item_key(txn, index)?;
        if !txn.del_raw(&key)? {
            return Err(DbError::inconsistent(&key, "queue item vanished between peek and pop"));
        }
        // `index < tail <= u64::MAX`, so this cannot overflow.
        let head_key = self.tag_key(txn, HEAD)?;
        txn.put_raw(&head_key, &encode_body(&(index + 1)))?;
        Ok(Some((index, item)))
    }

    /// How many items are pending.
    pub fn len(&self, txn: &impl Get) -> Result<u64, DbError> {
        let (head, tail) = self.bounds(txn)?;
        Ok(tail - head)
    }

    /// Whether no item is pending.
    pub fn is_empty(&self, txn: &impl Get) -> Result<bool, DbError> {
        Ok(self.len(txn)? == 0)
    }

    /// Every pending item with its index, oldest first. Checks that the stored items are
    /// exactly `head..tail`.
    pub fn items(&self, txn: &impl Get) -> Result<Vec<(u64, T)>, DbError> {
        let (head, tail) = self.bounds(txn)?;
        let prefix = self.tag_key(txn, ITEM)?;
        let entries = txn.range_raw(&prefix)?;
        let mut out = Vec::with_capacity(entries.len());
        let mut expected = head;
        for (key, bytes) in entries {
            let index = key
                .get(prefix.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| DbError::inconsistent(&key, "queue item key is malformed"))?;
            if index != expected || index >= tail {
                return Err(DbError::inconsistent(&key, "queue items are not exactly head..tail"));
            }
            expected += 1;
            out.push((index, decode_body(&bytes).map_err(|e| DbError::corrupt(&key, e))?));
        }
        if expected != tail {
            return Err(DbError::inconsistent(
                &self.item_key(txn, expected)?,
                "queue item between head and tail is missing",
            ));
        }
        Ok(out)
    }
}
