//! Fees: the rate plans use, a function of one final block, and the fee of a transaction
//! of a given shape, known before its inputs' rings are.
//!
//! **Rate.** monerod (hard fork 15 onward) requires at least `R · 3000 / M²` piconero per
//! unit of weight (less 2%), where `R` is the base block reward and `M` the effective
//! median block weight, at least 300,000; its "low" fee estimate is that value. A final
//! block states its own base reward (the miner transaction's outputs less the fees of its
//! transactions), so [`block_rate`] computes the rate with `M = 300,000`: the highest the
//! requirement can be for that reward, the same on every processor, and never below what a
//! node asks while the median stays at the minimum, as it has on mainnet since 2018. The
//! network's configured floor and ceiling then apply.
//!
//! **Fee.** A Monero transaction's weight depends on its inputs' ring offsets (varints),
//! known only once each input is scanned, while the scheduler must know a transaction's
//! fee when it plans the branch that will fund it. [`shape_fee`] therefore charges the
//! weight of the same transaction with every ring offset at its longest (5 bytes, enough
//! for 34 billion outputs), rounded up to [`FEE_QUANTUM`]. The planner makes monero-wallet
//! pay exactly that fee by giving it the rate `(rate, mask = fee)`: any weight up to the
//! bound then rounds up to the one fee. What this overpays (a few dozen bytes' worth per
//! input) is the price of knowing every fee in advance, to the unit.
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::Scalar as DalekScalar;
use monero_wallet::address::{
    AddressType, MoneroAddress, Network as AddressNetwork, SubaddressIndex,
};
use monero_wallet::ed25519::{Point, Scalar};
use monero_wallet::interface::prelude::{FeeRate, ScannableBlock};
use monero_wallet::ringct::RctType;
use monero_wallet::send::{Change, SignableTransaction};
use monero_wallet::transaction::Transaction;
use monero_wallet::{OutputWithDecoys, ViewPair};
use zeroize::Zeroizing;

/// Monero's reference transaction weight in the fee formula.
pub const REFERENCE_WEIGHT: u128 = 3_000;
/// Monero's minimum median block weight (blocks of version 5 onward).
pub const MIN_MEDIAN_WEIGHT: u128 = 300_000;
/// Fees are rounded up to a multiple of this (monerod's quantization mask).
pub const FEE_QUANTUM: u64 = 10_000;
/// The ring size of every transaction since hard fork 15.
pub const RING_LEN: u8 = 16;
/// The bytes of the longest ring offset the fee bound allows (a varint below 2^35).
const LONGEST_OFFSET: u64 = 1 << 34;

/// The base reward a block states: its miner transaction's outputs less its transactions'
/// fees (`None` for a block that does not add up: a node lying about it).
pub fn base_reward(block: &ScannableBlock) -> Option<u64> {
    let minted = block
        .block
        .miner_transaction()
        .prefix()
        .outputs
        .iter()
        .try_fold(0u64, |sum, o| sum.checked_add(o.amount?))?;
    let fees = block.transactions.iter().try_fold(0u64, |sum, tx| match tx {
        Transaction::V2 { proofs: Some(proofs), .. } => sum.checked_add(proofs.base.fee),
        _ => Some(sum),
    })?;
    minted.checked_sub(fees)
}

/// The fee rate (piconero per weight) monerod requires for the base reward `reward` at the
/// minimum median: `reward · 3000 / 300,000²`, rounded up.
pub fn rate_for_reward(reward: u64) -> u64 {
    let rate =
        (u128::from(reward) * REFERENCE_WEIGHT).div_ceil(MIN_MEDIAN_WEIGHT * MIN_MEDIAN_WEIGHT);
    u64::try_from(rate).unwrap_or(u64::MAX)
}

/// The rate a final block implies (`None` when it does not add up).
pub fn block_rate(block: &ScannableBlock) -> Option<u64> {
    base_reward(block).map(rate_for_reward)
}

/// `x` rounded up to a multiple of [`FEE_QUANTUM`].
fn quantize(x: u128) -> u64 {
    u64::try_from(x.div_ceil(u128::from(FEE_QUANTUM)) * u128::from(FEE_QUANTUM)).unwrap_or(u64::MAX)
}

fn point(k: u64) -> Point {
    Point::from(ED25519_BASEPOINT_POINT * DalekScalar::from(k))
}

/// A stand-in input of the longest encoding: the weight of a transaction spending it
/// bounds that of any transaction spending a real output in its place.
fn stand_in_input(i: u64) -> OutputWithDecoys {
    stand_in(i, u64::MAX / 1024)
}

/// A stand-in spendable output of key `(i + 1)·G` holding `amount`, with a ring of the
/// longest encoding (for tests of planning without a node; it can never be signed for).
pub fn stand_in(i: u64, amount: u64) -> OutputWithDecoys {
    let mut bytes = vec![];
    bytes.extend(point(i + 1).compress().to_bytes());
    bytes.extend([0u8; 32]); // key offset
    bytes.extend([1u8].iter().chain([0u8; 31].iter())); // mask 1
    bytes.extend(amount.to_le_bytes());
    bytes.push(RING_LEN);
    for _ in 0..RING_LEN {
        // Each offset's varint is 5 bytes.
        let mut v = LONGEST_OFFSET;
        while v >= 0x80 {
            bytes.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        bytes.push(v as u8);
    }
    bytes.push(0); // the real member's position
    for m in 0..u64::from(RING_LEN) {
        bytes.extend(point(1_000 + m).compress().to_bytes());
        bytes.extend(point(2_000 + m).compress().to_bytes());
    }
    OutputWithDecoys::read(&mut bytes.as_slice()).expect("the stand-in input is well formed")
}

/// A stand-in view pair (for the change output's and branch subaddresses' shape).
fn stand_in_pair() -> ViewPair {
    ViewPair::new(point(7), Zeroizing::new(Scalar::from(DalekScalar::from(11u64))))
        .expect("a basepoint multiple is a valid spend key")
}

/// What a transaction pays to, for its weight: external addresses, then the number of
/// branch outputs (to our branch subaddress), whether it has change, and, when it has
/// only one output otherwise, the zero-value output Monero's two-output minimum needs.
#[derive(Clone, Debug)]
pub struct Shape<'a> {
    /// Inputs.
    pub inputs: usize,
    /// External payments' addresses.
    pub payments: &'a [MoneroAddress],
    /// Outputs to our branch subaddress.
    pub branches: usize,
    /// A change output.
    pub change: bool,
}

impl Shape<'_> {
    /// Whether the transaction needs a zero-value filler output to have two outputs.
    pub fn needs_filler(&self) -> bool {
        self.payments.len() + self.branches + usize::from(self.change) < 2
    }
}

/// The exact fee [`crate::network::Monero`]'s planner charges a transaction of `shape` at
/// `rate` (see the module docs); `None` when monero-wallet refuses the shape (too many
/// outputs, too large).
pub fn shape_fee(shape: &Shape<'_>, rate: u64) -> Option<u64> {
    let pair = stand_in_pair();
    let network = AddressNetwork::Mainnet;
    let branch = pair.subaddress(network, SubaddressIndex::new(0, 1)?);
    let inputs = (0..shape.inputs as u64).map(stand_in_input).collect();
    let mut payments: Vec<(MoneroAddress, u64)> = shape.payments.iter().map(|a| (*a, 1)).collect();
    payments.extend((0..shape.branches).map(|_| (branch, 1)));
    if shape.needs_filler() {
        payments.push((filler_address(&[0; 32]), 0));
    }
    let change = if shape.change {
        Change::new(pair, SubaddressIndex::new(0, 2))
    } else {
        Change::fingerprintable(None)
    };
    let tx = SignableTransaction::new(
        RctType::ClsagBulletproofPlus,
        Zeroizing::new([0; 32]),
        inputs,
        payments,
        change,
        vec![],
        FeeRate::new(rate.max(1), 1)?,
    )
    .ok()?;
    // The weight at this bound (the fee at mask 1 is rate x weight), plus 2 for the
    // fee's own varint growing when rounded up.
    let weight = u128::from(tx.necessary_fee()) / u128::from(rate.max(1));
    Some(quantize((weight + 2) * u128::from(rate.max(1))))
}

/// The address of the zero-value output a one-output transaction adds: a pair of points
/// derived from `seed`, whose secret keys nobody knows.
pub fn filler_address(seed: &[u8; 32]) -> MoneroAddress {
    let spend = Point::biased_hash(primitives::hash(b"tc-monero/v1/filler-spend", &[seed]));
    let view = Point::biased_hash(primitives::hash(b"tc-monero/v1/filler-view", &[seed]));
    MoneroAddress::new(AddressNetwork::Mainnet, AddressType::Legacy, spend, view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_follows_the_reward() {
        // Mainnet's tail emission (0.6 XMR) gives its well-known 20,000 piconero/weight.
        assert_eq!(rate_for_reward(600_000_000_000), 20_000);
        assert!(rate_for_reward(600_000_000_001) > 20_000);
        assert_eq!(rate_for_reward(0), 0);
    }

    #[test]
    fn fees_grow_with_the_shape_and_are_quantized() {
        let to = filler_address(&[1; 32]);
        let fee = |inputs, payments: &[MoneroAddress], branches, change| {
            shape_fee(&Shape { inputs, payments, branches, change }, 20_000).unwrap()
        };
        let one = fee(1, &[to], 0, true);
        assert_eq!(one % FEE_QUANTUM, 0);
        assert!(fee(2, &[to], 0, true) > one, "an input costs");
        assert!(fee(1, &[to, to], 0, true) > one, "an output costs");
        assert!(fee(1, &[to], 1, true) > one, "a branch costs");
        // A lone payment without change still pays for two outputs (the filler).
        assert_eq!(fee(1, &[to], 0, false), one);
        // Monero's 16-output limit.
        let many = vec![to; 16];
        assert!(shape_fee(
            &Shape { inputs: 1, payments: &many, branches: 0, change: true },
            20_000
        )
        .is_none());
        assert!(shape_fee(
            &Shape { inputs: 1, payments: &many, branches: 0, change: false },
            20_000
        )
        .is_some());
    }
}
