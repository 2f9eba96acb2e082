//! A deterministic in-memory blockchain implementing [`scanner::Network`], for functional
//! tests that run several processors in one process over one shared [`Chain`].
//!
//! # What it models
//! - A UTXO chain: transactions spend output ids (`tx id || index as u32 LE`) and create
//!   outputs (raw address bytes + amount). A transaction id is a domain-separated
//!   Blake2b-256 of the transaction without its signature, so a plan's eventuality is
//!   known before it is signed.
//! - Our keys: each [`scanner::OutputKind`] of a group key has its own 34-byte address (a
//!   hash of the key and the kind); every input of our transactions is authorised by one
//!   IETF Schnorr signature of the transaction id under the group key, produced by FROST
//!   ([`MemoryNetwork`]'s `sign`).
//! - Deposits from outside ([`Chain::deposit`]) spend fresh outputs of an unbounded faucet
//!   that lives outside the chain, carry an optional instruction payload and an optional
//!   refund address, and pay no fee.
//! - Mining, finality (`tip + 1 - confirmations`), fee rates recorded per block and
//!   clamped to the params' bounds, reorgs of any depth (the disconnected transactions go
//!   back to the mempool), and injected transient failures ([`Chain::fail_next`]).
//! - Planning with Bitcoin's semantics exactly (same Empty / TooLarge / Dust checks; with
//!   change requested the fee is the with-change fee and change below dust goes to the
//!   fee, which must still cover the without-change fee), over a linear size model
//!   ([`network::vsize`]); outputs in the order payments, branches, change.
//!
//! # Guarantees
//! - MUST be deterministic: the same calls on two chains give the same block ids,
//!   transaction ids, scans, plans and check results (signatures differ: FROST nonces
//!   are random, but ids never include signatures). Nothing returned depends on `HashMap`
//!   iteration order.
//! - Every block mined after a reorg has an id no disconnected block had (the reorg count
//!   is part of block ids).
//! - `publish` accepts only a transaction whose inputs all exist unspent (on the best
//!   chain or in the mempool), are paid to one of its signer's addresses, whose signature
//!   verifies under the signer, and whose outputs do not exceed its inputs; anything else
//!   is a `NetworkError::Transient` (and a warning in the log). A transaction already in
//!   the mempool or on the best chain is success.
//! - A block includes every mempool transaction still valid, in mempool order; invalid
//!   ones (double spends left over from a reorg) are dropped.
//! - The lock is a std `Mutex`, held only inside synchronous sections: every call takes
//!   microseconds and no future holds it across an `.await`.
//!
//! # What it does not model
//! - Real scripts, sizes, or relay policy (no dust relay limit, no minimum relay fee).
//!   Replacement is modelled simply: a transaction of ours spending what a mempool
//!   transaction of ours spends replaces it if it pays a higher fee, and is refused
//!   otherwise (no BIP125 increment rule); a mining floor
//!   ([`Chain::set_mining_floor`]) leaves our low-fee transactions unmined.
//! - Coinbase outputs, block rewards, maturity, timestamps, difficulty, or a mempool
//!   limit; fees simply vanish.
//! - Several competing forks: there is one best chain, and `reorg` replaces its top.
//! - Faucet outputs are not chain outputs: [`scanner::Network::spends`] reports a
//!   deposit's faucet input like any other, and it never matches an output of ours.
#![deny(missing_docs)]

mod chain;
pub mod network;
mod types;

pub use chain::{Chain, Refused};
pub use network::MemoryNetwork;
pub use types::*;
