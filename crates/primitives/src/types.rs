use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::codec::{encode_body, Versioned};

/// An external network a processor serves.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum NetworkId {
    /// Bitcoin.
    Bitcoin = 0,
    /// Litecoin.
    Litecoin = 1,
    /// Monero.
    Monero = 2,
    /// Ethereum.
    Ethereum = 3,
}

impl NetworkId {
    /// Every network, in canonical order.
    pub const ALL: [NetworkId; 4] =
        [NetworkId::Bitcoin, NetworkId::Litecoin, NetworkId::Monero, NetworkId::Ethereum];

    /// The lowercase name used in configs, subjects and logs.
    pub fn name(self) -> &'static str {
        match self {
            NetworkId::Bitcoin => "bitcoin",
            NetworkId::Litecoin => "litecoin",
            NetworkId::Monero => "monero",
            NetworkId::Ethereum => "ethereum",
        }
    }

    /// Parses [`NetworkId::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.name() == name)
    }

    /// The coin native to this network.
    pub fn native_coin(self) -> Coin {
        match self {
            NetworkId::Bitcoin => Coin::Bitcoin,
            NetworkId::Litecoin => Coin::Litecoin,
            NetworkId::Monero => Coin::Monero,
            NetworkId::Ethereum => Coin::Ether,
        }
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An asset held on an external network.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum Coin {
    /// BTC.
    Bitcoin = 0,
    /// LTC.
    Litecoin = 1,
    /// XMR.
    Monero = 2,
    /// ETH.
    Ether = 3,
}

impl Coin {
    /// The network this coin lives on.
    pub fn network(self) -> NetworkId {
        match self {
            Coin::Bitcoin => NetworkId::Bitcoin,
            Coin::Litecoin => NetworkId::Litecoin,
            Coin::Monero => NetworkId::Monero,
            Coin::Ether => NetworkId::Ethereum,
        }
    }
}

/// An amount in the coin's smallest unit (satoshi, piconero, ...).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct Amount(pub u64);

/// Arithmetic on amounts that would leave the representable range.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum AmountError {
    /// The result exceeds `u64::MAX`.
    #[error("amount overflow")]
    Overflow,
    /// The result is below zero.
    #[error("amount underflow")]
    Underflow,
    /// Division by zero.
    #[error("division of an amount by zero")]
    DivisionByZero,
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`, or [`AmountError::Overflow`].
    pub fn checked_add(self, other: Amount) -> Result<Amount, AmountError> {
        self.0.checked_add(other.0).map(Amount).ok_or(AmountError::Overflow)
    }

    /// `self - other`, or [`AmountError::Underflow`].
    pub fn checked_sub(self, other: Amount) -> Result<Amount, AmountError> {
        self.0.checked_sub(other.0).map(Amount).ok_or(AmountError::Underflow)
    }

    /// `self * n`, or [`AmountError::Overflow`].
    pub fn checked_mul(self, n: u64) -> Result<Amount, AmountError> {
        self.0.checked_mul(n).map(Amount).ok_or(AmountError::Overflow)
    }

    /// `(self / n, self % n)`, or [`AmountError::DivisionByZero`].
    pub fn div_rem(self, n: u64) -> Result<(Amount, Amount), AmountError> {
        if n == 0 {
            return Err(AmountError::DivisionByZero);
        }
        Ok((Amount(self.0 / n), Amount(self.0 % n)))
    }

    /// The checked sum of many amounts.
    pub fn sum<'a>(amounts: impl IntoIterator<Item = &'a Amount>) -> Result<Amount, AmountError> {
        amounts.into_iter().try_fold(Amount::ZERO, |acc, a| acc.checked_add(*a))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An amount of a specific coin.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub struct Balance {
    /// Which coin.
    pub coin: Coin,
    /// How much of it.
    pub amount: Amount,
}

/// The longest external address accepted, in bytes.
pub const MAX_ADDRESS_LEN: usize = 128;

/// An address on an external network, in that network's canonical binary form
/// (a scriptPubKey for Bitcoin-family, the spend and view keys for Monero).
///
/// Never longer than [`MAX_ADDRESS_LEN`]: construction and decoding enforce it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize)]
pub struct ExternalAddress(Vec<u8>);

/// An external address exceeded [`MAX_ADDRESS_LEN`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("address of {0} bytes exceeds the limit of {MAX_ADDRESS_LEN}")]
pub struct AddressTooLong(pub usize);

impl ExternalAddress {
    /// Wraps bytes, refusing more than [`MAX_ADDRESS_LEN`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, AddressTooLong> {
        if bytes.len() > MAX_ADDRESS_LEN {
            return Err(AddressTooLong(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The address bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl BorshDeserialize for ExternalAddress {
    fn deserialize_reader<R: borsh::io::Read>(reader: &mut R) -> borsh::io::Result<Self> {
        let len = u32::deserialize_reader(reader)? as usize;
        if len > MAX_ADDRESS_LEN {
            return Err(borsh::io::Error::new(
                borsh::io::ErrorKind::InvalidData,
                AddressTooLong(len).to_string(),
            ));
        }
        let mut bytes = vec![0; len];
        reader.read_exact(&mut bytes)?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for ExternalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExternalAddress({})", hex::encode(&self.0))
    }
}

/// An account on the settlement layer, to be credited with a deposit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct SettlementAccount(pub [u8; 32]);

impl fmt::Debug for SettlementAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SettlementAccount({})", hex::encode(self.0))
    }
}

/// What a deposit asks for: which settlement account to credit, and where to refund if
/// the deposit cannot be honoured.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct InInstruction {
    /// The account credited.
    pub account: SettlementAccount,
    /// Where to return the funds, if they are ever returned.
    pub return_address: Option<ExternalAddress>,
}

impl Versioned for InInstruction {
    const VERSION: u8 = 1;
    // version + account + option tag + u32 length + address
    const MAX_ENCODED_LEN: usize = 1 + 32 + 1 + 4 + MAX_ADDRESS_LEN;
}

/// An instruction with the balance it carries, as reported in a [`Batch`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct InInstructionWithBalance {
    /// The instruction.
    pub instruction: InInstruction,
    /// The deposited balance.
    pub balance: Balance,
}

/// A payment out, ordered by the settlement layer (a Burn).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct Payment {
    /// The payee.
    pub address: ExternalAddress,
    /// What to pay, before its share of the fee.
    pub balance: Balance,
}

/// A block hash on an external network.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct BlockHash(pub [u8; 32]);

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash({})", hex::encode(self.0))
    }
}

/// The largest encoded Batch, version byte included.
pub const MAX_BATCH_SIZE: usize = 25_000;

/// The deposits of (part of) one external block, reported to the settlement layer.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Batch {
    /// The external network.
    pub network: NetworkId,
    /// The session whose key reported it (and signs it): each session of a network has
    /// its own sequence of Batches.
    pub session: u32,
    /// Contiguous per (network, session), from 0.
    pub id: u32,
    /// The external block the instructions come from.
    pub block: BlockHash,
    /// That block's number (the settlement layer's stage rules are stated in block
    /// numbers: docs/rotation.md).
    pub number: u64,
    /// The deposits, in the order they appear in the block.
    pub instructions: Vec<InInstructionWithBalance>,
}

impl Versioned for Batch {
    const VERSION: u8 = 2;
    const MAX_ENCODED_LEN: usize = MAX_BATCH_SIZE;
}

/// Encoded size of a Batch with no instructions: version, network, session, id, block,
/// number, length.
const EMPTY_BATCH_LEN: usize = 1 + 1 + 4 + 4 + 32 + 8 + 4;

impl Batch {
    /// Splits a block's instructions into as few Batches as fit [`MAX_BATCH_SIZE`], with
    /// ids `first_id, first_id + 1, ...` and the instructions' order kept. A block with no
    /// instructions yields one empty Batch. Every returned Batch's encoding is within the
    /// bound, because each instruction is bounded (by [`MAX_ADDRESS_LEN`]) far below it.
    pub fn split(
        network: NetworkId,
        session: u32,
        first_id: u32,
        (block, number): (BlockHash, u64),
        instructions: Vec<InInstructionWithBalance>,
    ) -> Vec<Batch> {
        let mut batches = vec![];
        let mut current = vec![];
        let mut size = EMPTY_BATCH_LEN;
        for instruction in instructions {
            let len = encode_body(&instruction).len();
            if size + len > MAX_BATCH_SIZE {
                batches.push(std::mem::take(&mut current));
                size = EMPTY_BATCH_LEN;
            }
            size += len;
            current.push(instruction);
        }
        batches.push(current);
        batches
            .into_iter()
            .zip(first_id..)
            .map(|(instructions, id)| Batch { network, session, id, block, number, instructions })
            .collect()
    }
}

/// What an output paid to one of our keys is for. Each kind has its own address (an
/// additive offset of the group key), so a scanner tells them apart from the chain alone.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum OutputKind {
    /// A deposit from outside: carries an InInstruction (or gets refunded).
    External = 0,
    /// An output of one of our transactions that funds a later transaction of a payment
    /// tree (created when payments exceed a transaction's output limit).
    Branch = 1,
    /// Change of one of our transactions, back to ourselves.
    Change = 2,
    /// Funds forwarded from a retiring key to its successor.
    Forwarded = 3,
}

impl OutputKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OutputKind; 4] =
        [OutputKind::External, OutputKind::Branch, OutputKind::Change, OutputKind::Forwarded];
}
