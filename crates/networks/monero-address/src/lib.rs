//! Monero addresses payments can go to, and their canonical binary form on the settlement
//! layer ([`primitives::ExternalAddress`]).
//!
//! Binary form, version 1: one type byte (`0` standard, `1` subaddress, `2` guaranteed
//! subaddress), then the 32-byte public spend key and the 32-byte public view key (65
//! bytes). The network (mainnet,
//! stagenet, testnet) is not encoded: the processor's configuration names it, as Bitcoin
//! scripts do not carry theirs either.
//!
//! Keys with a small-order component, and the identity, are refused: no wallet holds them.
//!
//! Integrated addresses (with a payment id) and featured addresses with a payment id are
//! refused: a Monero transaction can carry one payment id only, so two burns to them could
//! never share a transaction, and a plan must never be unbuildable. A guaranteed featured
//! subaddress without a payment id is payable: it is what a retiring key forwards to (its
//! successor's Forwarded address, docs/rotation.md), and what the processor's own branch,
//! change and forwarded outputs use (immune to the burning bug).
#![deny(missing_docs)]

use monero_address::AddressType;
pub use monero_address::{MoneroAddress, Network};
use monero_ed25519::CompressedPoint;
use primitives::ExternalAddress;

const STANDARD: u8 = 0;
const SUBADDRESS: u8 = 1;
const GUARANTEED_SUBADDRESS: u8 = 2;

/// The featured address type of a guaranteed subaddress without a payment id.
const GUARANTEED: AddressType =
    AddressType::Featured { subaddress: true, payment_id: None, guaranteed: true };

/// A payable Monero address (standard, subaddress, or guaranteed subaddress).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Address(MoneroAddress);

/// Why an address is not payable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// Not 65 bytes of a known type with valid keys.
    #[error("not a Monero address in the binary form (type byte, spend key, view key)")]
    Malformed,
    /// An integrated or featured address.
    #[error("integrated and featured addresses are not supported; pay a standard address or a subaddress")]
    Unsupported,
    /// The text did not parse for this network.
    #[error("not a Monero address of this network: {0}")]
    Text(String),
}

impl Address {
    /// Wraps a parsed address, refusing integrated ones and featured ones other than a
    /// guaranteed subaddress without a payment id.
    pub fn new(address: MoneroAddress) -> Result<Address, AddressError> {
        match address.kind() {
            AddressType::Legacy | AddressType::Subaddress => Ok(Address(address)),
            kind if *kind == GUARANTEED => Ok(Address(address)),
            _ => Err(AddressError::Unsupported),
        }
    }

    /// Parses an address's text (base58) for `network`.
    pub fn from_str(network: Network, text: &str) -> Result<Address, AddressError> {
        let parsed = MoneroAddress::from_str(network, text)
            .map_err(|e| AddressError::Text(e.to_string()))?;
        Address::new(parsed)
    }

    /// Decodes the binary form, for `network`.
    pub fn from_external(
        network: Network,
        address: &ExternalAddress,
    ) -> Result<Address, AddressError> {
        let bytes = address.as_bytes();
        if bytes.len() != 65 {
            return Err(AddressError::Malformed);
        }
        let kind = match bytes[0] {
            STANDARD => AddressType::Legacy,
            SUBADDRESS => AddressType::Subaddress,
            GUARANTEED_SUBADDRESS => GUARANTEED,
            _ => return Err(AddressError::Malformed),
        };
        let point = |b: &[u8]| {
            let array: [u8; 32] = b.try_into().map_err(|_| AddressError::Malformed)?;
            let point = CompressedPoint::from(array).decompress().ok_or(AddressError::Malformed)?;
            // A key with a small-order component (or the identity) is no key a wallet
            // holds: paying it would burn the funds, or pay us under another encoding.
            let inner = point.into();
            if !inner.is_torsion_free() || curve25519_dalek::traits::IsIdentity::is_identity(&inner)
            {
                return Err(AddressError::Malformed);
            }
            Ok(point)
        };
        let spend = point(&bytes[1..33])?;
        let view = point(&bytes[33..65])?;
        // The canonical encoding only: a key that decompresses from a non-canonical
        // encoding would give two binary forms for one address.
        if spend.compress().to_bytes() != bytes[1..33]
            || view.compress().to_bytes() != bytes[33..65]
        {
            return Err(AddressError::Malformed);
        }
        Ok(Address(MoneroAddress::new(network, kind, spend, view)))
    }

    /// The binary form.
    pub fn to_external(&self) -> ExternalAddress {
        let mut bytes = Vec::with_capacity(65);
        bytes.push(match self.0.kind() {
            AddressType::Legacy => STANDARD,
            AddressType::Subaddress => SUBADDRESS,
            // `new` admits no other featured address.
            _ => GUARANTEED_SUBADDRESS,
        });
        bytes.extend(self.0.spend().compress().to_bytes());
        bytes.extend(self.0.view().compress().to_bytes());
        ExternalAddress::new(bytes).expect("65 bytes is under the address limit")
    }

    /// The address as monero-wallet takes it.
    pub fn monero(&self) -> MoneroAddress {
        self.0
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use monero_ed25519::Point;

    fn key(seed: u64) -> Point {
        use curve25519_dalek::{constants::ED25519_BASEPOINT_POINT, Scalar};
        Point::from(ED25519_BASEPOINT_POINT * Scalar::from(seed))
    }

    /// Every payable type round-trips through its binary form, each to its own type byte;
    /// featured addresses with a payment id, or not guaranteed, are refused.
    #[test]
    fn binary_forms_round_trip_and_unpayable_types_are_refused() {
        let (spend, view) = (key(7), key(11));
        for (kind, byte) in [
            (AddressType::Legacy, STANDARD),
            (AddressType::Subaddress, SUBADDRESS),
            (GUARANTEED, GUARANTEED_SUBADDRESS),
        ] {
            let address =
                Address::new(MoneroAddress::new(Network::Mainnet, kind, spend, view)).unwrap();
            let external = address.to_external();
            assert_eq!(external.as_bytes()[0], byte);
            let back = Address::from_external(Network::Mainnet, &external).unwrap();
            assert_eq!(back, address);
            assert_eq!(back.monero().kind(), &kind);
        }
        for kind in [
            AddressType::LegacyIntegrated([1; 8]),
            AddressType::Featured { subaddress: true, payment_id: Some([1; 8]), guaranteed: true },
            AddressType::Featured { subaddress: true, payment_id: None, guaranteed: false },
            AddressType::Featured { subaddress: false, payment_id: None, guaranteed: true },
        ] {
            let address = MoneroAddress::new(Network::Mainnet, kind, spend, view);
            assert_eq!(Address::new(address), Err(AddressError::Unsupported), "{kind:?}");
        }
        let mut bytes = Address::new(MoneroAddress::new(Network::Mainnet, GUARANTEED, spend, view))
            .unwrap()
            .to_external()
            .as_bytes()
            .to_vec();
        bytes[0] = 3;
        let unknown = ExternalAddress::new(bytes).unwrap();
        assert_eq!(
            Address::from_external(Network::Mainnet, &unknown),
            Err(AddressError::Malformed)
        );
    }
}
