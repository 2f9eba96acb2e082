//! Addresses: human-readable strings to and from output scripts.
//!
//! Payments and refunds travel as [`primitives::ExternalAddress`] holding the output
//! script (`scriptPubKey`) bytes, which are the same on every chain of a coin family; the
//! human-readable forms (bech32/bech32m with the chain's HRP, base58check with its
//! version bytes) exist only at the edges (CLI, logs).
//!
//! Only standard output types are accepted as payees: P2PKH, P2SH, P2WPKH, P2WSH and P2TR.
//! Anything else (future witness versions, bare scripts) is refused, so we never pay to a
//! script the network would not relay.
use std::fmt;

use bitcoin::bech32::{self, Hrp};
use bitcoin::hashes::Hash;
use bitcoin::{base58, ScriptBuf, WitnessVersion};
use primitives::ExternalAddress;

use crate::params::AddressParams;

/// A standard output script we can pay to.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(ScriptBuf);

/// Why a string or script is not a payable address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// Not valid bech32/bech32m or base58check.
    #[error("not a valid address encoding: {0}")]
    Encoding(String),
    /// Valid, but for another chain.
    #[error("address is for another chain (prefix {found:?}, expected {expected:?})")]
    WrongChain {
        /// What the address carried.
        found: String,
        /// What this chain uses.
        expected: String,
    },
    /// Valid, but not a standard output type we pay to.
    #[error("not a standard output type (P2PKH, P2SH, P2WPKH, P2WSH or P2TR)")]
    NonStandard,
}

/// Decodes a segwit address of any witness version (BIP173/BIP350 rules: bech32 for
/// version 0, bech32m otherwise, program lengths per BIP141), returning its HRP,
/// version and program.
pub fn decode_segwit(s: &str) -> Result<(String, u8, Vec<u8>), AddressError> {
    let (hrp, version, program) =
        bech32::segwit::decode(s).map_err(|e| AddressError::Encoding(e.to_string()))?;
    Ok((hrp.to_lowercase(), version.to_u8(), program))
}

impl Address {
    /// Accepts a script if it is one of the standard types.
    pub fn from_script(script: ScriptBuf) -> Result<Address, AddressError> {
        let standard = script.is_p2pkh()
            || script.is_p2sh()
            || script.is_p2wpkh()
            || script.is_p2wsh()
            || script.is_p2tr();
        if standard {
            Ok(Address(script))
        } else {
            Err(AddressError::NonStandard)
        }
    }

    /// Parses a human-readable address of `params`' chain.
    pub fn parse(params: &impl AsRef<AddressParams>, s: &str) -> Result<Address, AddressError> {
        let params = params.as_ref();
        let looks_segwit = s.to_lowercase().starts_with(&format!("{}1", params.hrp));
        if looks_segwit {
            let (hrp, version, program) = decode_segwit(s)?;
            if hrp != params.hrp {
                return Err(AddressError::WrongChain { found: hrp, expected: params.hrp.into() });
            }
            let version = WitnessVersion::try_from(version)
                .map_err(|e| AddressError::Encoding(e.to_string()))?;
            let mut script = bitcoin::script::Builder::new().push_opcode(version.into());
            let push = bitcoin::script::PushBytesBuf::try_from(program)
                .map_err(|e| AddressError::Encoding(e.to_string()))?;
            script = script.push_slice(push);
            return Address::from_script(script.into_script());
        }
        let data = base58::decode_check(s).map_err(|e| AddressError::Encoding(e.to_string()))?;
        let (&version, hash) = data
            .split_first()
            .ok_or_else(|| AddressError::Encoding("empty base58 payload".into()))?;
        let hash: [u8; 20] = hash
            .try_into()
            .map_err(|_| AddressError::Encoding("base58 payload is not a 20-byte hash".into()))?;
        let script = if version == params.p2pkh_version {
            ScriptBuf::new_p2pkh(&bitcoin::PubkeyHash::from_byte_array(hash))
        } else if params.p2sh_versions.contains(&version) {
            ScriptBuf::new_p2sh(&bitcoin::ScriptHash::from_byte_array(hash))
        } else {
            // Bech32 of another HRP lands here too; say which chain it is for when we can.
            return Err(AddressError::WrongChain {
                found: format!("base58 version {version:#04x}"),
                expected: format!(
                    "{:#04x} or {:?} or {}1...",
                    params.p2pkh_version, params.p2sh_versions, params.hrp
                ),
            });
        };
        Address::from_script(script)
    }

    /// The human-readable form on `params`' chain.
    pub fn display(&self, params: &impl AsRef<AddressParams>) -> String {
        let params = params.as_ref();
        let script = &self.0;
        let bytes = script.as_bytes();
        if script.is_p2pkh() {
            let mut data = vec![params.p2pkh_version];
            data.extend_from_slice(&bytes[3..23]);
            return base58::encode_check(&data);
        }
        if script.is_p2sh() {
            let mut data = vec![params.p2sh_versions[0]];
            data.extend_from_slice(&bytes[2..22]);
            return base58::encode_check(&data);
        }
        // Segwit: OP_n <program>. Standardness was checked at construction.
        let version = script.witness_version().map(|v| v.to_fe()).unwrap_or(bech32::Fe32::Q);
        let hrp = Hrp::parse_unchecked(params.hrp);
        bech32::segwit::encode(hrp, version, &bytes[2..])
            .unwrap_or_else(|e| format!("<unencodable: {e}>"))
    }

    /// The output script.
    pub fn script(&self) -> &ScriptBuf {
        &self.0
    }

    /// As carried in messages.
    pub fn to_external(&self) -> ExternalAddress {
        // Standard scripts are at most 34 bytes, far below the bound.
        ExternalAddress::new(self.0.to_bytes()).unwrap_or_else(|_| unreachable!())
    }

    /// From a message: must be a standard script.
    pub fn from_external(address: &ExternalAddress) -> Result<Address, AddressError> {
        Address::from_script(ScriptBuf::from_bytes(address.as_bytes().to_vec()))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.0.to_hex_string())
    }
}
