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
    #[error("encoded instruction of {0} bytes exceeds the {MAX_OP_RETURN_DATA}-byte OP_RETURN limit")]
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
    let push = PushBytesBuf::try_from(data.clone()).map_err(|_| EncodeError::TooLong(data.len()))?;
    Ok(ScriptBuf::new_op_return(push))
}

/// Decodes an OP_RETURN payload.
pub fn decode(data: &[u8]) -> Instruction {
    let Some(body) = data.strip_prefix(MAGIC.as_slice()) else {
        return Instruction::Invalid;
    };
    match InInstruction::decode(body) {
        Ok(i) => {
            let standard_return = i
                .return_address
                .as_ref()
                .is_none_or(|a| Address::from_external(a).is_ok());
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
