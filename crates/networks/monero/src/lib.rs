//! Monero over monerod, through the monero-oxide crates (`monero-wallet` with its FROST
//! multisig, `monero-daemon-rpc`).
//!
//! Guarantees:
//! - The group's spend key is the key generation's Ed25519 group key; its view key is
//!   derived from that public key ([`keys`]), so every key holder, and anyone who knows
//!   the group key, can scan. Deposits are reported publicly in Batches anyway, but a
//!   public view key has a cost: anyone can copy a deposit's one-time key into an output
//!   of their own that lands first (the "burning bug"), and only the first is credited.
//!   docs/protocol.md ("Monero") states the risk; a view key shared by the set only is
//!   the remedy.
//! - Every output kind has its own address: deposits go to the main address; branch,
//!   change and forwarded outputs go to their own subaddresses in monero-wallet's
//!   *guaranteed* form, whose output keys derive from the paying transaction's inputs,
//!   so no copy of our own outputs can scan as ours and the scanner tells the kinds apart
//!   from the chain alone.
//! - Only blocks with the configured confirmations are read as final: 19 by default,
//!   Monero's usual 10 plus the 9 blocks of its spend lock, never fewer than 10.
//! - An output is identified by its one-time key: a second output reusing a key (the
//!   "burning bug") has the same id, and the processor credits an id once.
//! - Each of our outputs gets its ring when it is scanned, chosen deterministically among
//!   the outputs unlocked at the first block it is spendable in (`b + 9`, itself 10 times
//!   confirmed by default), so every processor of the set picks the same decoys; it keeps
//!   that ring for every transaction that ever spends it, so two signed transactions for
//!   one output never reveal the real input by intersecting their rings. The cost: the
//!   real input is among the youngest members of its ring, as for any wallet that spends
//!   soon after receiving (docs/protocol.md, "Monero").
//! - Planning is pure: the same plan and fee rate give the same transaction on every
//!   processor; the fee is a function of the transaction's shape only, so the scheduler
//!   knows it exactly before the outputs exist.
//! - A transaction is recognised by monero-wallet's `Eventuality` (its outputs, keys and
//!   amounts, bound to its inputs), whoever published it.
#![deny(missing_docs)]

pub mod blocks;
mod decoys;
pub mod fee;
pub mod instruction;
pub mod keys;
pub mod network;
pub mod rpc;
pub mod scan;
pub mod sign;
#[cfg(feature = "testing")]
pub mod testing;

pub use keys::GroupKey;
pub use monero_addr::{self as address, Address};
pub use network::{Block, Eventuality, Monero, Output, Params};
