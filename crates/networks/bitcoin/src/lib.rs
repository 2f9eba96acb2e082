//! Bitcoin and Litecoin over a Bitcoin Core-compatible node.
//!
//! Guarantees:
//! - Only blocks with the configured confirmations are read as final; block bodies are
//!   checked against their hash and merkle root whatever transport fetched them.
//! - Litecoin blocks with MWEB active decode ([`mweb`]): the extension block's header is
//!   checked against the HogEx's commitment and its height against the block's; outputs
//!   to our addresses are found wherever they are, peg-outs included (with no refund
//!   address: an MWEB sender is not visible).
//! - Every output kind (External, Branch, Change, Forwarded) has its own key-path-only
//!   taproot address, an additive offset of the group key, so the scanner tells them apart
//!   from the chain alone.
//! - Planning is pure and deterministic: the same plan and fee rate give the same
//!   transaction on every processor, with an exactly computed size.
//! - Every aggregated signature is verified by libsecp256k1 before a transaction is
//!   returned for publishing; publishing a transaction already in the mempool or chain is
//!   success.
//! - A block that spends a plan's inputs in any transaction other than the planned one
//!   is reported as a [`scanner::Completion::Conflict`].
#![deny(missing_docs)]

pub mod address;
pub mod instruction;
pub mod mweb;
pub mod network;
pub mod params;
pub mod rpc;
pub mod sign;
#[cfg(feature = "testing")]
pub mod testing;

pub use address::Address;
pub use network::{Bitcoin, Block, Eventuality, GroupKey, Output};
pub use params::{Chain, Coin, Params};
