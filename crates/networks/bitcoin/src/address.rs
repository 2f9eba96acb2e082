//! Addresses: human-readable strings to and from output scripts. The code is in
//! `bitcoin-address` (usable without a node); re-exported here so `bitcoin_network::address`
//! paths keep working.
pub use bitcoin_address::{decode_segwit, Address, AddressError, AddressParams};
