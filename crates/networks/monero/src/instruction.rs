//! The deposit instruction carried in a transaction's `extra`, as arbitrary data.
//!
//! Encoding, version 1: the **first** arbitrary-data field of the transaction's `extra` (a
//! nonce field whose first byte is `0x7f`, monero-wallet's arbitrary-data marker) holds
//! `"TC" || InInstruction::encode()`: the workspace's
//! versioned encoding (a version byte, then borsh: the 32-byte settlement account, then an
//! optional return address in the binary form of [`crate::address`]). The field is at most
//! 255 bytes, which every instruction fits.
//!
//! Monero shows no sender: a deposit is refundable only when its instruction carries a
//! return address. A transaction with no arbitrary-data field has a
//! [`Instruction::Missing`] instruction; one whose first field does not decode exactly
//! (wrong magic, unknown version, trailing bytes, a return address that is not a payable
//! address of this network) has an [`Instruction::Invalid`] one. Neither can be refunded: both are
//! recorded, and the funds stay with the group (see docs/protocol.md).
use monero_wallet::address::Network as AddressNetwork;
use primitives::{codec::Versioned, InInstruction};
use scanner::Instruction;

use crate::Address;

/// The magic bytes before the encoded instruction.
pub const MAGIC: &[u8; 2] = b"TC";
/// The longest arbitrary-data field monero-wallet writes.
pub const MAX_DATA: usize = 255;

/// Why an instruction cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// It does not fit one arbitrary-data field.
    #[error("encoded instruction of {0} bytes exceeds the {MAX_DATA}-byte field limit")]
    TooLong(usize),
}

/// The arbitrary-data field for an instruction.
pub fn encode(instruction: &InInstruction) -> Result<Vec<u8>, EncodeError> {
    let mut data = MAGIC.to_vec();
    data.extend(instruction.encode());
    if data.len() > MAX_DATA {
        return Err(EncodeError::TooLong(data.len()));
    }
    Ok(data)
}

/// Decodes one arbitrary-data field that starts with [`MAGIC`].
pub fn decode(network: AddressNetwork, data: &[u8]) -> Instruction {
    let Some(body) = data.strip_prefix(MAGIC.as_slice()) else {
        return Instruction::Invalid;
    };
    match InInstruction::decode(body) {
        Ok(i) => {
            let payable = i
                .return_address
                .as_ref()
                .is_none_or(|a| Address::from_external(network, a).is_ok());
            if payable {
                Instruction::Valid(i)
            } else {
                Instruction::Invalid
            }
        }
        Err(_) => Instruction::Invalid,
    }
}

/// The instruction of a transaction with these arbitrary-data fields.
pub fn of_data(network: AddressNetwork, fields: &[Vec<u8>]) -> Instruction {
    match fields.first() {
        Some(field) => decode(network, field),
        None => Instruction::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use primitives::{ExternalAddress, SettlementAccount};

    #[test]
    fn round_trip_and_refusals() {
        let plain = InInstruction { account: SettlementAccount([3; 32]), return_address: None };
        let data = encode(&plain).unwrap();
        assert_eq!(
            of_data(AddressNetwork::Mainnet, std::slice::from_ref(&data)),
            Instruction::Valid(plain)
        );
        // Only the first field counts: other data there is invalid, none is missing.
        assert_eq!(
            of_data(AddressNetwork::Mainnet, &[b"other".to_vec(), data.clone()]),
            Instruction::Invalid
        );
        assert_eq!(
            of_data(AddressNetwork::Mainnet, &[data.clone(), b"other".to_vec()]),
            of_data(AddressNetwork::Mainnet, std::slice::from_ref(&data))
        );
        assert_eq!(of_data(AddressNetwork::Mainnet, &[]), Instruction::Missing);
        // Trailing bytes, a truncated body, an unpayable return address: invalid.
        let mut trailing = data.clone();
        trailing.push(0);
        assert_eq!(decode(AddressNetwork::Mainnet, &trailing), Instruction::Invalid);
        assert_eq!(decode(AddressNetwork::Mainnet, &data[..10]), Instruction::Invalid);
        let bad_return = InInstruction {
            account: SettlementAccount([3; 32]),
            return_address: Some(ExternalAddress::new(vec![9; 65]).unwrap()),
        };
        assert_eq!(
            decode(AddressNetwork::Mainnet, &encode(&bad_return).unwrap()),
            Instruction::Invalid
        );
    }
}
