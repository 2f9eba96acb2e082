//! The finalized-block index: block numbers to ids, each link checked.
//!
//! Guarantees:
//! - A block is indexed only once it is finalized (has the network's confirmations), and
//!   only if its parent is the block indexed just below it. Anything else means the chain
//!   reorganized deeper than the confirmation depth: [`IndexError::DeepReorg`], a fatal
//!   error, and nothing is written.
//! - A block is scanned only if it is still the indexed block ([`Index::expect`]), so
//!   nothing is ever reported from a block off the finalized chain.
//! - One block per commit: a crash between commits re-runs the same step.
//! - The index is scoped by session ([`db::Table::scoped`]): each session's pipeline
//!   indexes from its own activation block, in a `Db` scoped to it.
use db::{Db, DbError, Get, Table, WriteTxn};

use crate::{BlockRef, ChainBlock, Network, NetworkError};

/// Block number → the indexed block.
pub const INDEXED: Table<u64, BlockRef> = Table::scoped("scanner/v1/index");
/// The highest indexed block number.
pub const INDEX_TIP: Table<(), u64> = Table::scoped("scanner/v1/index_tip");

/// Why the index cannot advance.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The node's chain contradicts a block we already indexed as final.
    #[error(
        "block {number}'s parent is {found} but the finalized block {below} indexed below it \
         is {indexed}: the chain reorganized deeper than the confirmation depth \
         ({confirmations}). Refusing to continue: blocks already reported may be gone. \
         Investigate the node (is it on the right chain?) before restarting"
    )]
    DeepReorg {
        /// The block whose parent does not match.
        number: u64,
        /// The block below it.
        below: u64,
        /// Its parent's id on the node's chain, as the node shows it.
        found: String,
        /// What we indexed, as the node shows it.
        indexed: String,
        /// The confirmation depth in force.
        confirmations: u64,
    },
    /// The network could not answer.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The DB failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl IndexError {
    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        match self {
            IndexError::DeepReorg { .. } => false,
            IndexError::Network(e) => e.is_transient(),
            IndexError::Db(e) => !e.is_fatal(),
        }
    }
}

impl From<IndexError> for task::TaskError {
    fn from(e: IndexError) -> Self {
        if e.is_transient() {
            task::TaskError::transient(e)
        } else {
            task::TaskError::fatal(e)
        }
    }
}

/// The index, starting at a given block (the first block that can hold our outputs).
#[derive(Clone, Copy, Debug)]
pub struct Index {
    start: u64,
}

impl Index {
    /// An index whose first block is `start`.
    pub fn new(start: u64) -> Self {
        Index { start }
    }

    /// The highest indexed block number, if any.
    pub fn tip(&self, txn: &impl Get) -> Result<Option<u64>, DbError> {
        INDEX_TIP.get(txn, &())
    }

    /// The indexed block `number`, if indexed.
    pub fn get(&self, txn: &impl Get, number: u64) -> Result<Option<BlockRef>, DbError> {
        INDEXED.get(txn, &number)
    }

    /// Indexes the next finalized block, if there is one. Returns it, or `None` when the
    /// index is at the finalized tip. Fetches before it opens the write transaction.
    pub async fn advance<N: Network>(
        &self,
        network: &N,
        db: &Db,
    ) -> Result<Option<BlockRef>, IndexError> {
        let tip = self.tip(&db.read()?)?;
        let next = tip.map_or(self.start, |t| t + 1);
        match network.latest_finalized().await? {
            Some(latest) if latest >= next => {}
            _ => return Ok(None),
        }
        let block = network.block_ref(next).await?;
        let mut txn = db.write()?;
        // Re-read inside the transaction: a concurrent writer is a bug, not a race.
        assert_eq!(self.tip(&txn)?, tip, "the index has a single writer");
        self.check_link(&txn, network, block)?;
        self.put(&mut txn, block)?;
        txn.commit()?;
        Ok(Some(block))
    }

    /// Indexes, in one commit, those of `blocks` (consecutive, all final: fetched by the
    /// caller) that follow the index tip, each checked to link to the one below it as
    /// [`Index::advance`] does. Blocks at or below the tip are left to [`Index::expect`].
    pub fn extend<N: Network>(
        &self,
        db: &Db,
        network: &N,
        blocks: &[BlockRef],
    ) -> Result<(), IndexError> {
        let mut txn = db.write()?;
        let next = self.tip(&txn)?.map_or(self.start, |t| t + 1);
        let mut added = false;
        // Those that follow the tip, consecutively (a gap is left for a later advance).
        let following = blocks.iter().skip_while(|b| b.number < next);
        for (expected, block) in (next..).zip(following) {
            if block.number != expected {
                break;
            }
            self.check_link(&txn, network, *block)?;
            self.put(&mut txn, *block)?;
            added = true;
        }
        if added {
            txn.commit()?;
        }
        Ok(())
    }

    /// Indexes `block` as the next block inside the caller's transaction, checking its
    /// parent link (for callers that fetch blocks themselves).
    pub fn put(&self, txn: &mut WriteTxn, block: BlockRef) -> Result<(), DbError> {
        INDEXED.put(txn, &block.number, &block)?;
        INDEX_TIP.put(txn, &(), &block.number)
    }

    fn check_link<N: Network>(
        &self,
        txn: &impl Get,
        network: &N,
        block: BlockRef,
    ) -> Result<(), IndexError> {
        if block.number == self.start {
            return Ok(());
        }
        let below = block.number - 1;
        let indexed = INDEXED.get(txn, &below)?;
        match indexed {
            Some(indexed) if indexed.id == block.parent => Ok(()),
            Some(indexed) => Err(IndexError::DeepReorg {
                number: block.number,
                below,
                found: network.display_block_id(&block.parent),
                indexed: network.display_block_id(&indexed.id),
                confirmations: network.params().confirmations,
            }),
            // The tip is `below`, so it is indexed; a hole is corruption.
            None => Err(DbError::Inconsistent {
                key: format!("{}/{below}", INDEXED.prefix()),
                reason: "a block below the index tip is missing",
            }
            .into()),
        }
    }

    /// Checks that a fetched block is the indexed one (it may have been fetched after a
    /// reorg). Anything else is a [`IndexError::DeepReorg`].
    pub fn expect<N: Network>(
        &self,
        txn: &impl Get,
        network: &N,
        block: &N::Block,
    ) -> Result<(), IndexError> {
        self.expect_ref(txn, network, block.block_ref())
    }

    /// [`Index::expect`] for a block's links alone (as [`Network::block_ref`] reads them
    /// from the node now).
    pub fn expect_ref<N: Network>(
        &self,
        txn: &impl Get,
        network: &N,
        got: BlockRef,
    ) -> Result<(), IndexError> {
        match INDEXED.get(txn, &got.number)? {
            Some(indexed) if indexed == got => Ok(()),
            Some(indexed) => Err(IndexError::DeepReorg {
                number: got.number + 1,
                below: got.number,
                found: network.display_block_id(&got.id),
                indexed: network.display_block_id(&indexed.id),
                confirmations: network.params().confirmations,
            }),
            None => Err(DbError::Inconsistent {
                key: format!("{}/{}", INDEXED.prefix(), got.number),
                reason: "asked to check a block that was never indexed",
            }
            .into()),
        }
    }
}
