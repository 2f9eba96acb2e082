//! The network seam and the generic scanning machinery.
//!
//! - [`network`]: the narrow traits every external network implements (reading finalized
//!   blocks, scanning them for our outputs, planning, publishing, eventualities).
//! - [`disposition`]: what a deposit is for (report, refund, unattributed, dust).
//! - [`index`]: the finalized-block index; every indexed block's parent MUST equal the
//!   previously indexed block, so a reorg deeper than the confirmation depth is detected
//!   and reported as a fatal error, never silently followed.
//! - `conformance` (feature `conformance`): the suite every network runs against its real
//!   node.
#![deny(missing_docs)]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod disposition;
pub mod index;
pub mod network;
pub mod utxo;
pub use network::*;
