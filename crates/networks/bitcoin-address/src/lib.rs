//! Bitcoin and Litecoin addresses without a node: which coin and chain, how each chain
//! writes addresses ([`AddressParams`]), and [`Address`], a standard output script with
//! its human-readable forms.
//!
//! Guarantees:
//! - An [`Address`] MUST be a standard output script (P2PKH, P2SH, P2WPKH, P2WSH or
//!   P2TR), however it was made; anything else is [`AddressError::NonStandard`].
//! - Parsing follows BIP173/BIP350 (bech32 for witness version 0, bech32m otherwise) and
//!   base58check, and refuses an HRP or version byte that is not the chain's
//!   ([`AddressError::WrongChain`]). Chains that share version bytes (the test chains)
//!   share base58 addresses; their segwit HRPs all differ.
//! - [`Address::display`] writes the canonical form: lowercase bech32, and the first
//!   P2SH version byte of the chain.
//!
//! No RPC, signing or async runtime: this crate is what a program that only reads and
//! shows addresses (the coordinator simulator) needs of the Bitcoin family.
#![deny(missing_docs)]

mod address;
mod params;

pub use address::{decode_segwit, Address, AddressError};
pub use params::{AddressParams, Chain, Coin};
