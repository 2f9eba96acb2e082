//! The node as decoy selection reads it, with what does not change kept.
//!
//! monero-wallet picks a ring's decoys from the chain's output distribution, then asks for
//! the candidates and, for its deterministic selection, each candidate's transaction (to
//! read its timelock). Choosing the rings of a block's outputs, the processor keeps:
//! - the distribution, per block scanned (every output of a block gets its ring at the
//!   same height, and the distribution covers the whole chain);
//! - the node's height, per block scanned;
//! - each decoy transaction's timelock, for as long as the processor runs (bounded): a
//!   transaction's hash commits to its timelock, so it is the same for every ring.
//!
//! The decision is monero-wallet's rule for its deterministic selection, unchanged: an
//! output is usable at block `b` when it is 10 blocks old there (`o + 9 <= b`) and its
//! transaction's timelock is satisfied by block `b + 1` (monerod's accepted delta).
use std::collections::HashMap;
use std::future::Future;
use std::ops::RangeBounds;
use std::sync::Mutex;

use monero_wallet::ed25519::Point;
use monero_wallet::interface::{
    EvaluateUnlocked, InterfaceError, ProvidesBlockchainMeta, ProvidesOutputs,
    ProvidesTransactions, ProvidesUnvalidatedDecoys, TransactionsError,
};
use monero_wallet::transaction::Timelock;
use tokio::sync::OnceCell;

use crate::rpc::Daemon;

/// The most transaction timelocks kept (about 50 bytes each); past it, they start over.
const MOST_TIMELOCKS: usize = 200_000;

/// The timelocks of the transactions seen as decoy candidates, by hash.
#[derive(Debug, Default)]
pub(crate) struct Timelocks(Mutex<HashMap<[u8; 32], Timelock>>);

impl Timelocks {
    fn get(&self, hash: &[u8; 32]) -> Option<Timelock> {
        self.0.lock().ok().and_then(|t| t.get(hash).copied())
    }

    fn insert(&self, found: impl IntoIterator<Item = ([u8; 32], Timelock)>) {
        if let Ok(mut timelocks) = self.0.lock() {
            if timelocks.len() > MOST_TIMELOCKS {
                timelocks.clear();
            }
            timelocks.extend(found);
        }
    }
}

/// The daemon for the rings of one block's outputs.
pub(crate) struct DecoyCache<'a> {
    daemon: &'a Daemon,
    timelocks: &'a Timelocks,
    tip: OnceCell<usize>,
    /// Held while it is fetched: the rings of a block are chosen at once, and one fetch
    /// serves them all.
    distribution: tokio::sync::Mutex<Option<(String, Vec<u64>)>>,
}

impl<'a> DecoyCache<'a> {
    pub(crate) fn new(daemon: &'a Daemon, timelocks: &'a Timelocks) -> Self {
        DecoyCache {
            daemon,
            timelocks,
            tip: OnceCell::new(),
            distribution: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether each of `indexes` can be a decoy at `block_number`, and its key and
    /// commitment if so (module docs).
    async fn usable(
        &self,
        indexes: &[u64],
        block_number: usize,
    ) -> Result<Vec<Option<[Point; 2]>>, TransactionsError> {
        let outputs = ProvidesOutputs::ringct_outputs(self.daemon, indexes).await?;
        // This call's timelocks, from the cache or the node: the decision below reads only
        // these (the shared cache may be cleared meanwhile by another block's call).
        let mut timelocks: HashMap<[u8; 32], Timelock> = HashMap::new();
        let mut unknown: Vec<[u8; 32]> = vec![];
        for output in &outputs {
            if timelocks.contains_key(&output.transaction) || unknown.contains(&output.transaction)
            {
                continue;
            }
            match self.timelocks.get(&output.transaction) {
                Some(timelock) => {
                    timelocks.insert(output.transaction, timelock);
                }
                None => unknown.push(output.transaction),
            }
        }
        if !unknown.is_empty() {
            let txs = ProvidesTransactions::pruned_transactions(self.daemon, &unknown).await?;
            if txs.len() != unknown.len() {
                return Err(TransactionsError::InterfaceError(InterfaceError::InvalidInterface(
                    format!("asked for {} transactions, got {}", unknown.len(), txs.len()),
                )));
            }
            let fetched: Vec<([u8; 32], Timelock)> = unknown
                .iter()
                .copied()
                .zip(txs.iter().map(|t| t.prefix().additional_timelock))
                .collect();
            timelocks.extend(fetched.iter().copied());
            self.timelocks.insert(fetched);
        }
        outputs
            .iter()
            .map(|output| {
                let Some(key) = output.key.decompress() else { return Ok(None) };
                let timelock = *timelocks.get(&output.transaction).ok_or_else(|| {
                    TransactionsError::InterfaceError(InterfaceError::InternalError(
                        "a decoy's transaction timelock is missing".into(),
                    ))
                })?;
                let old_enough = output
                    .block_number
                    .checked_add(monero_wallet::DEFAULT_LOCK_WINDOW - 1)
                    .is_some_and(|unlocked| unlocked <= block_number);
                let timelock_passed = Timelock::Block(block_number.saturating_add(1)) >= timelock;
                Ok((old_enough && timelock_passed).then_some([key, output.commitment]))
            })
            .collect()
    }
}

impl ProvidesBlockchainMeta for DecoyCache<'_> {
    fn latest_block_number(&self) -> impl Send + Future<Output = Result<usize, InterfaceError>> {
        async move {
            self.tip
                .get_or_try_init(|| ProvidesBlockchainMeta::latest_block_number(self.daemon))
                .await
                .copied()
        }
    }
}

impl ProvidesUnvalidatedDecoys for DecoyCache<'_> {
    fn ringct_output_distribution(
        &self,
        range: impl Send + RangeBounds<usize>,
    ) -> impl Send + Future<Output = Result<Vec<u64>, InterfaceError>> {
        let key = format!("{:?}..{:?}", range.start_bound(), range.end_bound());
        async move {
            let mut cache = self.distribution.lock().await;
            if let Some((_, distribution)) = cache.as_ref().filter(|(k, _)| *k == key) {
                return Ok(distribution.clone());
            }
            let distribution =
                ProvidesUnvalidatedDecoys::ringct_output_distribution(self.daemon, range).await?;
            *cache = Some((key, distribution.clone()));
            Ok(distribution)
        }
    }

    fn unlocked_ringct_outputs(
        &self,
        indexes: &[u64],
        evaluate_unlocked: EvaluateUnlocked,
    ) -> impl Send + Future<Output = Result<Vec<Option<[Point; 2]>>, TransactionsError>> {
        async move {
            match evaluate_unlocked {
                EvaluateUnlocked::FingerprintableDeterministic { block_number } => {
                    self.usable(indexes, block_number).await
                }
                EvaluateUnlocked::Normal => {
                    ProvidesUnvalidatedDecoys::unlocked_ringct_outputs(
                        self.daemon,
                        indexes,
                        evaluate_unlocked,
                    )
                    .await
                }
            }
        }
    }
}
