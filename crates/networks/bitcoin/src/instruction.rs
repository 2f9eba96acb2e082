//! The deposit instruction carried in a transaction's OP_RETURN output.
//!
//! Encoding, version 1: the transaction's **first** OP_RETURN output is
//! `OP_RETURN <push: "TC" || InInstruction::encode()>`, where `InInstruction::encode()` is
//! the workspace's versioned encoding (a version byte, then borsh: the 32-byte settlement
//! account, then an optional return address as `0x01 || u32 LE length || script bytes` or
//! `0x00`). The whole push must fit the 80-byte OP_RETURN relay limit, which leaves 40
//! bytes for a return address (every standard script fits).
//!
//! A transaction with no OP_RETURN output has a [`Instruction::Missing`] instruction; one
//! whose first OP_RETURN does not decode exactly (wrong magic, unknown version, trailing
//! bytes, a non-standard return address, more than one push) has an
//! [`Instruction::Invalid`] one. Both are refunded when the spender is known.
use bitcoin::script::{Instruction as ScriptInstruction, PushBytesBuf};
use bitcoin::{opcodes, ScriptBuf, Transaction};
use primitives::{codec::Versioned, InInstruction};
use scanner::Instruction;

use crate::address::Address;

/// The magic bytes before the encoded instruction.
pub const MAGIC: &[u8; 2] = b"TC";
/// The largest OP_RETURN payload nodes relay by default.
pub const MAX_OP_RETURN_DATA: usize = 80;

/// Why an instruction cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// It does not fit in an OP_RETURN output.
    #[error(
        "encoded instruction of {0} bytes exceeds the {MAX_OP_RETURN_DATA}-byte OP_RETURN limit"
    )]
    TooLong(usize),
}

/// The OP_RETURN payload for an instruction.
pub fn encode(instruction: &InInstruction) -> Result<Vec<u8>, EncodeError> {
    let mut data = MAGIC.to_vec();
    data.extend(instruction.encode());
    if data.len() > MAX_OP_RETURN_DATA {
        return Err(EncodeError::TooLong(data.len()));
    }
    Ok(data)
}

/// The OP_RETURN output script for an instruction.
pub fn script(instruction: &InInstruction) -> Result<ScriptBuf, EncodeError> {
    let data = encode(instruction)?;
    let push =
        PushBytesBuf::try_from(data.clone()).map_err(|_| EncodeError::TooLong(data.len()))?;
    Ok(ScriptBuf::new_op_return(push))
}

/// Decodes an OP_RETURN payload.
pub fn decode(data: &[u8]) -> Instruction {
    let Some(body) = data.strip_prefix(MAGIC.as_slice()) else {
        return Instruction::Invalid;
    };
    match InInstruction::decode(body) {
        Ok(i) => {
            let standard_return =
                i.return_address.as_ref().is_none_or(|a| Address::from_external(a).is_ok());
            if standard_return {
                Instruction::Valid(i)
            } else {
                Instruction::Invalid
            }
        }
        Err(_) => Instruction::Invalid,
    }
}

/// The instruction a transaction carries.
pub fn of_transaction(tx: &Transaction) -> Instruction {
    let Some(op_return) = tx.output.iter().find(|o| o.script_pubkey.is_op_return()) else {
        return Instruction::Missing;
    };
    // Exactly OP_RETURN followed by one push.
    let mut parts = op_return.script_pubkey.instructions();
    match (parts.next(), parts.next(), parts.next()) {
        (
            Some(Ok(ScriptInstruction::Op(opcodes::all::OP_RETURN))),
            Some(Ok(ScriptInstruction::PushBytes(data))),
            None,
        ) => decode(data.as_bytes()),
        _ => Instruction::Invalid,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, TxOut};
    use primitives::{ExternalAddress, SettlementAccount};
    use proptest::prelude::*;

    use super::*;

    fn p2wpkh() -> ExternalAddress {
        ExternalAddress::new([&[0x00, 0x14][..], &[7u8; 20]].concat()).unwrap()
    }

    fn tx_with(outputs: Vec<ScriptBuf>) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![],
            output: outputs
                .into_iter()
                .map(|script_pubkey| TxOut { value: Amount::ZERO, script_pubkey })
                .collect(),
        }
    }

    proptest! {
        #[test]
        fn round_trips(account in any::<[u8; 32]>(), with_return in any::<bool>()) {
            let i = InInstruction {
                account: SettlementAccount(account),
                return_address: with_return.then(p2wpkh),
            };
            let tx = tx_with(vec![ScriptBuf::new(), script(&i).unwrap()]);
            prop_assert_eq!(of_transaction(&tx), Instruction::Valid(i));
        }

        #[test]
        fn random_payloads_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode(&data);
        }
    }

    #[test]
    fn missing_invalid_and_first_op_return_wins() {
        let i = InInstruction { account: SettlementAccount([1; 32]), return_address: None };
        assert_eq!(of_transaction(&tx_with(vec![ScriptBuf::new()])), Instruction::Missing);
        let junk = ScriptBuf::new_op_return(PushBytesBuf::try_from(b"hello".to_vec()).unwrap());
        // The first OP_RETURN is the one read, even if a later one is valid.
        assert_eq!(of_transaction(&tx_with(vec![junk, script(&i).unwrap()])), Instruction::Invalid);
        assert_eq!(
            of_transaction(&tx_with(vec![script(&i).unwrap(), ScriptBuf::new()])),
            Instruction::Valid(i.clone())
        );
        // Wrong magic, unknown version, trailing bytes.
        let good = encode(&i).unwrap();
        let mut wrong_magic = good.clone();
        wrong_magic[0] = b'X';
        assert_eq!(decode(&wrong_magic), Instruction::Invalid);
        let mut wrong_version = good.clone();
        wrong_version[2] = 9;
        assert_eq!(decode(&wrong_version), Instruction::Invalid);
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), Instruction::Invalid);
        assert_eq!(decode(&good[..good.len() - 1]), Instruction::Invalid);
        // A return address that is not a standard script.
        let odd = InInstruction {
            account: SettlementAccount([1; 32]),
            return_address: Some(ExternalAddress::new(vec![0x6a, 0x01, 0x00]).unwrap()),
        };
        assert_eq!(decode(&encode(&odd).unwrap()), Instruction::Invalid);
        // Two pushes after OP_RETURN.
        let two = bitcoin::script::Builder::new()
            .push_opcode(opcodes::all::OP_RETURN)
            .push_slice(PushBytesBuf::try_from(good.clone()).unwrap())
            .push_slice([1u8])
            .into_script();
        assert_eq!(of_transaction(&tx_with(vec![two])), Instruction::Invalid);
    }

    #[test]
    fn too_long_to_relay_is_refused() {
        let long = InInstruction {
            account: SettlementAccount([1; 32]),
            return_address: Some(ExternalAddress::new(vec![0; 41]).unwrap()),
        };
        assert!(matches!(encode(&long), Err(EncodeError::TooLong(_))));
        // Every standard return address fits (P2TR/P2WSH: 34 bytes).
        let p2tr = InInstruction {
            account: SettlementAccount([1; 32]),
            return_address: Some(
                ExternalAddress::new([&[0x51, 0x20][..], &[3; 32]].concat()).unwrap(),
            ),
        };
        assert!(encode(&p2tr).unwrap().len() <= MAX_OP_RETURN_DATA);
    }
}
