//! The processor's main job on a Bitcoin-family network: scan final blocks, report their
//! deposits as Batches, and, once the settlement layer acknowledges them, schedule and
//! sign the payments it orders, publish them, and watch for their eventualities.
//!
//! Guarantees:
//! - Every step is one DB transaction: a scanned block (its outputs, Batches, completed
//!   plans, new change) commits at once, as does an acknowledgement (confirmed outputs,
//!   queued payments, new plans). Messages caused by a step are queued in its
//!   transaction (the outbox), so a crash loses nothing and repeats nothing in effect.
//! - Network I/O (blocks, fee rates, publishing) happens before a write transaction
//!   opens, never while it is open.
//! - Plans are a deterministic function of the acknowledged blocks, the burns and the
//!   final blocks' fee rates, so every processor of the set derives the same ones.
//! - The scanner runs at most `window` unacknowledged Batches ahead.
//! - A payment is planned exactly once: it leaves the scheduler's queue in the same
//!   transaction that records the plan paying it.

pub mod glue;
pub mod publish;
pub mod scan;
pub mod settle;
pub mod state;

/// The network implementation the pipeline runs (Bitcoin and Litecoin).
pub type Net = bitcoin_network::Bitcoin<bitcoin_network::rpc::RestBlocks>;
