//! Bitcoin and Litecoin over a Bitcoin Core-compatible node.
#![deny(missing_docs)]

pub mod rpc;
pub mod sign;
#[cfg(feature = "testing")]
pub mod testing;
