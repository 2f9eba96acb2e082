//! The traits at the network seam.
use borsh::{BorshDeserialize, BorshSerialize};

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
