//! The connection to monerod: a lazily opened monero-daemon-rpc client, every call's
//! error classified for the task runner.
//!
//! Constructing a [`Node`] does not contact the daemon (the processor builds it while
//! checking its configuration); the first call connects, and a failed connection is
//! retried by the next call.
use std::time::Duration;

use monero_daemon_rpc::MoneroDaemon;
use monero_simple_request_rpc::SimpleRequestTransport;
use monero_wallet::block::Block;
use monero_wallet::interface::prelude::*;
use monero_wallet::transaction::{Pruned, Transaction};
use scanner::NetworkError;
use tokio::sync::OnceCell;

/// The largest `get_blocks.bin` answer read (monerod sends at most about 100 MB).
const MAX_ANSWER: usize = 100 * 1024 * 1024;

/// The monero-daemon-rpc client over simple-request.
pub type Daemon = MoneroDaemon<SimpleRequestTransport>;

/// An error talking to monerod.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The daemon could not be reached, or answered something unusable.
    #[error("monerod at {url}: {what}: {error}")]
    Call {
        /// The daemon's URL, without credentials.
        url: String,
        /// What was asked.
        what: &'static str,
        /// The error.
        error: String,
    },
    /// The daemon refused a transaction.
    #[error("monerod refused the transaction: {0}")]
    Refused(String),
}

impl From<RpcError> for NetworkError {
    fn from(e: RpcError) -> Self {
        // Nothing monerod answers is a misconfiguration by itself: a node that is down,
        // syncing or restarting recovers, and the task's backoff and /health show it.
        NetworkError::Transient(Box::new(e))
    }
}

/// A monerod RPC endpoint.
pub struct Node {
    address: String,
    shown: String,
    timeout: Duration,
    daemon: OnceCell<Daemon>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("url", &self.shown).finish_non_exhaustive()
    }
}

/// `url` without any `user:password@` part.
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        (None, Some(at)) => url[at + 1..].to_string(),
        _ => url.to_string(),
    }
}

impl Node {
    /// A node at `url` (`http://host:port`, credentials as `http://user:pass@host:port`),
    /// each request bounded by `timeout`.
    pub fn new(url: impl Into<String>, timeout: Duration) -> Node {
        let address = url.into();
        let shown = without_credentials(&address);
        Node { address, shown, timeout, daemon: OnceCell::new() }
    }

    /// The URL, without credentials (for logs).
    pub fn url(&self) -> &str {
        &self.shown
    }

    fn error(&self, what: &'static str, error: impl std::fmt::Display) -> RpcError {
        RpcError::Call { url: self.shown.clone(), what, error: error.to_string() }
    }

    /// The client, connecting on first use.
    pub async fn daemon(&self) -> Result<&Daemon, RpcError> {
        self.daemon
            .get_or_try_init(|| async {
                SimpleRequestTransport::with_custom_timeout(self.address.clone(), self.timeout)
                    .await
                    .map_err(|e| self.error("connect", e))
            })
            .await
    }

    /// The height of the node's best block.
    pub async fn tip(&self) -> Result<u64, RpcError> {
        let daemon = self.daemon().await?;
        let tip = ProvidesBlockchainMeta::latest_block_number(daemon)
            .await
            .map_err(|e| self.error("get_height", e))?;
        Ok(tip as u64)
    }

    /// Block `number` of the best chain (checked to be that block by the client).
    pub async fn block(&self, number: u64) -> Result<Block, RpcError> {
        let daemon = self.daemon().await?;
        let number = usize::try_from(number).map_err(|e| self.error("get_block", e))?;
        ProvidesBlockchain::block_by_number(daemon, number)
            .await
            .map_err(|e| self.error("get_block", e))
    }

    /// Block `number` with its transactions (pruned) and the index of its first RingCT
    /// output, checked to hold the transactions the block lists.
    pub async fn scannable_block(&self, number: u64) -> Result<ScannableBlock, RpcError> {
        let daemon = self.daemon().await?;
        let number = usize::try_from(number).map_err(|e| self.error("get_block", e))?;
        ProvidesScannableBlocks::scannable_block_by_number(daemon, number)
            .await
            .map_err(|e| self.error("scannable block", e))
    }

    /// Blocks `from..=to` as [`Node::scannable_block`] gives them, in as few requests as
    /// the node allows (`get_blocks.bin`, checked by [`crate::blocks`]). Block 0 (which
    /// `get_blocks.bin` cannot start from) comes alone.
    pub async fn scannable_blocks(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<ScannableBlock>, RpcError> {
        let mut blocks =
            Vec::with_capacity(usize::try_from(to.saturating_sub(from) + 1).unwrap_or(0));
        let mut next = from;
        if next == 0 && to >= next {
            blocks.push(self.scannable_block(0).await?);
            next = 1;
        }
        let daemon = self.daemon().await?;
        while next <= to {
            let count = to - next + 1;
            let answer = daemon
                .bin_call("get_blocks.bin", crate::blocks::request(next, count), MAX_ANSWER)
                .await
                .map_err(|e| self.error("get_blocks.bin", e))?;
            let got =
                crate::blocks::parse(&answer, next, usize::try_from(count).unwrap_or(usize::MAX))
                    .map_err(|e| self.error("get_blocks.bin", e))?;
            if got.is_empty() {
                return Err(self.error("get_blocks.bin", format!("no block sent from {next}")));
            }
            next += got.len() as u64;
            blocks.extend(got);
        }
        Ok(blocks)
    }

    /// The node's fee estimate (the lowest priority, the rate monerod requires).
    pub async fn fee_rate(&self) -> Result<FeeRate, RpcError> {
        let daemon = self.daemon().await?;
        ProvidesFeeRates::fee_rate(daemon, FeePriority::Unimportant, u64::MAX)
            .await
            .map_err(|e| self.error("get_fee_estimate", e))
    }

    /// Transaction `hash`, pruned, if the node knows it (in its pool or its chain).
    async fn pruned(&self, hash: [u8; 32]) -> Result<Option<Transaction<Pruned>>, RpcError> {
        let daemon = self.daemon().await?;
        match ProvidesTransactions::pruned_transactions(daemon, &[hash]).await {
            Ok(found) => Ok(found.into_iter().next()),
            Err(TransactionsError::TransactionNotFound) => Ok(None),
            Err(e) => Err(self.error("get_transactions", e)),
        }
    }

    /// Whether the node knows transaction `hash` (in its pool or its chain).
    pub async fn knows(&self, hash: [u8; 32]) -> Result<bool, RpcError> {
        Ok(self.pruned(hash).await?.is_some())
    }

    /// The fee transaction `hash` paid (`None`: unknown to the node, or not RingCT).
    pub async fn fee_of(&self, hash: [u8; 32]) -> Result<Option<u64>, RpcError> {
        Ok(self.pruned(hash).await?.and_then(|tx| match tx {
            Transaction::V2 { proofs: Some(p), .. } => Some(p.base.fee),
            _ => None,
        }))
    }

    /// Publishes `tx`; a transaction the node already has (in its pool or chain) is
    /// success.
    pub async fn publish(&self, tx: &Transaction) -> Result<(), RpcError> {
        let daemon = self.daemon().await?;
        match PublishTransaction::publish_transaction(daemon, tx).await {
            Ok(()) => Ok(()),
            Err(PublishTransactionError::TransactionRejected(reason)) => {
                // monerod refuses a transaction it already holds as a double spend of
                // itself: ask whether it is ours before calling it refused.
                if self.knows(tx.hash()).await? {
                    Ok(())
                } else {
                    Err(RpcError::Refused(reason))
                }
            }
            Err(PublishTransactionError::InterfaceError(e)) => {
                Err(self.error("send_raw_transaction", e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn credentials_never_shown() {
        assert_eq!(without_credentials("http://u:p@127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(without_credentials("u:p@127.0.0.1:1"), "127.0.0.1:1");
        assert_eq!(without_credentials("http://127.0.0.1:1"), "http://127.0.0.1:1");
    }
}
