//! Finding our outputs in a block: monero-wallet's result, at a fraction of its cost.
//!
//! monero-wallet's scanners compute the view key × transaction key product (a variable-base
//! scalar multiplication, the whole cost of scanning) for every output of every
//! transaction, and the processor runs two of them (the main address, and the guaranteed
//! subaddresses of our own outputs). Here the product is computed once per transaction
//! key and block; each output's one-byte view tag is derived from it with one hash; and
//! every output whose view tag matches under none of its transaction's keys is *hidden*
//! from the crate's scanners by replacing its one-time key with the identity, which they
//! skip before any multiplication. The crate's scanners then run on what is left (our
//! outputs, and by chance one in 256 of the others) and build the outputs as they always
//! do.
//!
//! Why the result is exactly the crate's (`tests/scan.rs` checks it on real blocks):
//! - an output is hidden only when it carries a view tag and, for every key the crate
//!   would try (each transaction key, then the output's additional key), the view tag
//!   derived from that key differs from it. The crate computes the same tag
//!   (`keccak("view_tag" || 8·a·R || o)[0]`, the same for both scanners: the guaranteed
//!   form binds its inputs into the shared key, not into the view tag) and skips the key
//!   when it differs, so for a hidden output it finds nothing and has no other effect;
//! - nothing else changes: outputs keep their positions (the indexes on the chain and in
//!   the transaction are counted as before), transaction hashes come from the block's
//!   list, not from the transactions; the miner transaction, whose hash the crate
//!   computes from its content, is changed only when all its outputs are hidden, so a
//!   changed hash never reaches an output;
//! - transactions the crate does not scan (version 1, an unreadable `extra`, no
//!   transaction key) and outputs without a view tag are left as they are.
use std::collections::BTreeSet;

use curve25519_dalek::{EdwardsPoint, Scalar as DalekScalar};
use monero_wallet::block::Block;
use monero_wallet::ed25519::{CompressedPoint, Point};
use monero_wallet::extra::Extra;
use monero_wallet::interface::prelude::ScannableBlock;
use monero_wallet::io::VarInt;
use monero_wallet::primitives::keccak256;
use monero_wallet::transaction::{PotentiallyPruned, Timelock, Transaction};
use monero_wallet::{GuaranteedScanner, ScanError, Scanner, WalletOutput};
use zeroize::Zeroizing;

use crate::keys::{self, Keys};
use primitives::OutputKind;

/// The outputs of a block paid to us, as monero-wallet's scanners report them (timelocked
/// ones included: [`Found::unlocked`] drops them).
pub struct Found {
    /// Outputs to the main address (deposits), from the standard scanner.
    pub external: Vec<WalletOutput>,
    /// Outputs to our guaranteed subaddresses (branch, change, forwarded).
    pub internal: Vec<WalletOutput>,
    /// How many outputs the block has.
    pub outputs: usize,
    /// How many of them the crate's scanners were shown.
    pub shown: usize,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("external", &self.external.len())
            .field("internal", &self.internal.len())
            .field("outputs", &self.outputs)
            .field("shown", &self.shown)
            .finish()
    }
}

impl Found {
    /// Ours, with no additional timelock (miner outputs have one: they are not spent):
    /// deposits first, then our own outputs, each in block order.
    pub fn unlocked(self) -> Vec<WalletOutput> {
        let Found { external, internal, .. } = self;
        external
            .into_iter()
            .chain(internal)
            .filter(|o| o.additional_timelock() == Timelock::None)
            .collect()
    }
}

/// Every output of `block` paid to `keys`: deposits to the main address, and our own
/// outputs to the guaranteed subaddresses. The same outputs, in the same order, as
/// monero-wallet's `Scanner` and `GuaranteedScanner` return ([`reference`]), computed
/// with one multiplication per transaction key (module docs).
pub fn ours(block: &ScannableBlock, keys: &Keys) -> Result<Found, ScanError> {
    let view = Zeroizing::new((*keys.view_key()).into());
    let (hidden, outputs, shown) = hide_others(block, &view);
    let (external, internal) = scan_with_crate(hidden, keys)?;
    Ok(Found { external, internal, outputs, shown })
}

/// monero-wallet's scanners on the whole block, as they are: what [`ours`] must equal
/// (the tests and the benchmark compare them).
pub fn reference(block: &ScannableBlock, keys: &Keys) -> Result<Found, ScanError> {
    let (external, internal) = scan_with_crate(block.clone(), keys)?;
    let outputs = std::iter::once(block.block.miner_transaction().prefix().outputs.len())
        .chain(block.transactions.iter().map(|t| t.prefix().outputs.len()))
        .sum();
    Ok(Found { external, internal, outputs, shown: outputs })
}

/// The crate's two scanners over `block`: deposits (main address) and our own outputs
/// (registered guaranteed subaddresses).
fn scan_with_crate(
    block: ScannableBlock,
    keys: &Keys,
) -> Result<(Vec<WalletOutput>, Vec<WalletOutput>), ScanError> {
    let mut deposits = Scanner::new(keys.view_pair().clone());
    let mut internal = GuaranteedScanner::new(keys.guaranteed().clone());
    for kind in OutputKind::ALL {
        if let Some(index) = keys::subaddress(kind) {
            internal.register_subaddress(index);
        }
    }
    let external = deposits.scan(block.clone())?.ignore_additional_timelock();
    let ours = internal.scan(block)?.ignore_additional_timelock();
    Ok((
        external.into_iter().filter(|o| o.subaddress().is_none()).collect(),
        ours.into_iter().filter(|o| o.subaddress().is_some()).collect(),
    ))
}

/// `block` with every output that cannot be ours hidden (its key replaced by the
/// identity), the number of outputs, and the number left shown.
fn hide_others(block: &ScannableBlock, view: &DalekScalar) -> (ScannableBlock, usize, usize) {
    let mut hidden = block.clone();
    let (mut outputs, mut shown) = (0, 0);
    for tx in &mut hidden.transactions {
        let (o, s) = hide(tx, view);
        outputs += o;
        shown += s;
    }
    let mut miner = block.block.miner_transaction().clone();
    let (o, s) = hide(&mut miner, view);
    outputs += o;
    shown += s;
    if s == 0 {
        // Every output hidden: nothing of the miner transaction can be found, so its
        // changed hash reaches no output.
        if let Some(rebuilt) =
            Block::new(block.block.header.clone(), miner, block.block.transactions.clone())
        {
            hidden.block = rebuilt;
        }
    }
    (hidden, outputs, shown)
}

/// Hides the outputs of `tx` that no key of it can make ours; returns its number of
/// outputs and how many are left shown.
fn hide<P: PotentiallyPruned>(tx: &mut Transaction<P>, view: &DalekScalar) -> (usize, usize) {
    let outputs = tx.prefix().outputs.len();
    // What the crate does not scan is left as it is.
    if !matches!(tx, Transaction::V2 { .. }) {
        return (outputs, outputs);
    }
    let Ok(extra) = Extra::read(&mut tx.prefix().extra.as_slice()) else {
        return (outputs, outputs);
    };
    let Some((tx_keys, additional)) = extra.keys() else { return (outputs, outputs) };
    // One multiplication per distinct key (a repeated key gives the same tags).
    let mut distinct = BTreeSet::new();
    let derivations: Vec<Zeroizing<[u8; 32]>> = tx_keys
        .iter()
        .filter(|k| distinct.insert(k.compress().to_bytes()))
        .map(|k| derivation(view, *k))
        .collect();
    let mut shown = 0;
    for (o, output) in tx.prefix_mut().outputs.iter_mut().enumerate() {
        if output.key == CompressedPoint::IDENTITY {
            // The crate skips it already.
            continue;
        }
        let Some(tag) = output.view_tag else {
            shown += 1;
            continue;
        };
        let extra_key = additional.as_ref().and_then(|a| a.get(o)).map(|k| derivation(view, *k));
        if derivations.iter().chain(extra_key.iter()).any(|d| view_tag(d, o) == tag) {
            shown += 1;
        } else {
            output.key = CompressedPoint::IDENTITY;
        }
    }
    (outputs, shown)
}

/// `8·a·R`, compressed: the derivation every output of a transaction key shares.
fn derivation(view: &DalekScalar, key: Point) -> Zeroizing<[u8; 32]> {
    let product: Zeroizing<EdwardsPoint> = Zeroizing::new(view * key.into());
    Zeroizing::new(product.mul_by_cofactor().compress().to_bytes())
}

/// Output `o`'s view tag under `derivation`: `keccak("view_tag" || derivation || o)[0]`.
fn view_tag(derivation: &[u8; 32], o: usize) -> u8 {
    let mut preimage = Zeroizing::new(Vec::with_capacity(8 + 32 + 10));
    preimage.extend_from_slice(b"view_tag");
    preimage.extend_from_slice(derivation);
    VarInt::write(&o, &mut *preimage).expect("writing to a Vec cannot fail");
    keccak256(preimage.as_slice())[0]
}
