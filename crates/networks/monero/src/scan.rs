//! Finding our outputs in a block: exactly monero-wallet's result, at a fraction of its
//! cost.
//!
//! monero-wallet's scanners compute the view key × transaction key product (a variable-base
//! scalar multiplication) for every output of every transaction, once per scanner, and the
//! processor runs two (the main address; the guaranteed subaddresses of our own outputs).
//! For each output that matches, they multiply again (the shared key by the base point,
//! without a table) and verify its amount commitment with two more. Here:
//! - the product is computed once per transaction key, and shared by both forms;
//! - each output's one-byte view tag is derived from it with one hash, and an output whose
//!   tag matches under none of its keys is done (the same for both forms: the guaranteed
//!   form binds the transaction's inputs into the shared key, not into the view tag);
//! - for the few left (ours, and one in 256 of the others by chance), the shared key is
//!   multiplied with the base point's precomputed table and the result looked up among our
//!   spend keys; only ours go on to the amount, whose commitment is verified with one
//!   variable-time double multiplication (it is public data).
//!
//! An output found is written in monero-wallet's own serialization and read back as its
//! `WalletOutput`, so the processor's rings and transactions are built by the crate as
//! before. Every step mirrors the crate's scanner, in its order (the keys tried, the first
//! that matches kept, an amount that does not open its commitment skipped, the errors it
//! returns); [`reference`] runs the crate's scanners, and `tests/scan.rs` checks on real
//! blocks that both return the same bytes.
use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::{EdwardsPoint, Scalar as DalekScalar};
use monero_wallet::address::SubaddressIndex;
use monero_wallet::ed25519::{Commitment, CompressedPoint, Point, Scalar as MoneroScalar};
use monero_wallet::extra::{Extra, PaymentId};
use monero_wallet::interface::prelude::ScannableBlock;
use monero_wallet::io::VarInt;
use monero_wallet::primitives::keccak256;
use monero_wallet::ringct::EncryptedAmount;
use monero_wallet::transaction::{Input, Pruned, Timelock, Transaction};
use monero_wallet::{GuaranteedScanner, ScanError, Scanner, WalletOutput};
use primitives::OutputKind;
use zeroize::Zeroizing;

use crate::keys::{self, Keys};

/// The outputs of a block paid to us, as monero-wallet's scanners report them (timelocked
/// ones included: [`Found::unlocked`] drops them).
pub struct Found {
    /// Outputs to the main address (deposits), from the standard scanner.
    pub external: Vec<WalletOutput>,
    /// Outputs to our guaranteed subaddresses (branch, change, forwarded).
    pub internal: Vec<WalletOutput>,
    /// How many outputs the block has.
    pub outputs: usize,
    /// How many of them passed the view-tag filter (had a matching tag under some key,
    /// or none): the only ones that cost more than a hash.
    pub passed: usize,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("external", &self.external.len())
            .field("internal", &self.internal.len())
            .field("outputs", &self.outputs)
            .field("passed", &self.passed)
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
/// outputs to the guaranteed subaddresses. The same outputs, in the same order and with
/// the same contents, as monero-wallet's `Scanner` and `GuaranteedScanner` return
/// ([`reference`]), at one multiplication per transaction key (module docs).
pub fn ours(block: &ScannableBlock, keys: &Keys) -> Result<Found, ScanError> {
    Searcher::new(keys).block(block)
}

/// monero-wallet's scanners on the whole block, as they are: what [`ours`] must equal
/// (the tests and the benchmark compare them).
pub fn reference(block: &ScannableBlock, keys: &Keys) -> Result<Found, ScanError> {
    let (external, internal) = scan_with_crate(block.clone(), keys)?;
    let outputs = outputs_in(block);
    Ok(Found { external, internal, outputs, passed: outputs })
}

/// The outputs of `block`, its miner transaction's included.
fn outputs_in(block: &ScannableBlock) -> usize {
    std::iter::once(block.block.miner_transaction().prefix().outputs.len())
        .chain(block.transactions.iter().map(|t| t.prefix().outputs.len()))
        .sum()
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

/// The two forms the processor scans for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// The main address, as any wallet pays it.
    Standard,
    /// Our guaranteed subaddresses (and the main address in that form, which the crate's
    /// guaranteed scanner also reports; filtered out by the caller as it is there).
    Guaranteed,
}

/// Our keys, prepared for scanning.
struct Searcher {
    view: Zeroizing<DalekScalar>,
    /// The spend keys each form looks for: the main one, then (guaranteed form) each
    /// registered subaddress with the derivation added to its key offset.
    /// Compared as points (projective coordinates: no inversion, unlike compressing).
    main: EdwardsPoint,
    subaddresses: Vec<(EdwardsPoint, SubaddressIndex, Zeroizing<DalekScalar>)>,
    h: EdwardsPoint,
}

/// An output of a transaction as one form finds it.
struct Hit {
    o: usize,
    key: EdwardsPoint,
    key_offset: Zeroizing<DalekScalar>,
    commitment: Commitment,
    subaddress: Option<SubaddressIndex>,
    payment_id: Option<PaymentId>,
}

/// What one transaction holds for us.
#[derive(Default)]
struct TxHits {
    /// The standard scanner's hits (deposits).
    external: Vec<Hit>,
    /// The guaranteed scanner's hits.
    internal: Vec<Hit>,
    /// Outputs that passed the view-tag filter.
    passed: usize,
    /// The transaction's arbitrary data (every output found carries it).
    data: Vec<Vec<u8>>,
}

/// Monero's hash to a scalar: Keccak-256, reduced (not wide) as monerod does.
fn hash_to_scalar(data: &[u8]) -> DalekScalar {
    DalekScalar::from_bytes_mod_order(keccak256(data))
}

impl Searcher {
    fn new(keys: &Keys) -> Searcher {
        let view: Zeroizing<DalekScalar> = Zeroizing::new((*keys.view_key()).into());
        let main = Point::into(keys.spend());
        let subaddresses = OutputKind::ALL
            .into_iter()
            .filter_map(keys::subaddress)
            .map(|index| {
                let mut preimage = Zeroizing::new(b"SubAddr\0".to_vec());
                preimage.extend_from_slice(view.as_bytes());
                preimage.extend_from_slice(&index.account().to_le_bytes());
                preimage.extend_from_slice(&index.address().to_le_bytes());
                let derivation = Zeroizing::new(hash_to_scalar(&preimage));
                let spend = Point::into(keys.spend()) + &*derivation * ED25519_BASEPOINT_TABLE;
                (spend, index, derivation)
            })
            .collect();
        let h = Point::into(CompressedPoint::H.decompress().expect("Monero's H is a point"));
        Searcher { view, main, subaddresses, h }
    }

    /// The whole block, as the crate's `InternalScanner::scan` goes through it.
    fn block(&self, block: &ScannableBlock) -> Result<Found, ScanError> {
        let outputs = outputs_in(block);
        let mut found = Found { external: vec![], internal: vec![], outputs, passed: 0 };
        if block.block.transactions.len() != block.transactions.len() {
            return Err(ScanError::InvalidScannableBlock(
                "scanning a ScannableBlock with more/less transactions than it should have",
            ));
        }
        let Some(mut index) = block.output_index_for_first_ringct_output else {
            return Ok(found);
        };
        if block.block.header.hardfork_version > 16 {
            return Err(ScanError::UnsupportedProtocol(block.block.header.hardfork_version));
        }
        let miner = Transaction::<Pruned>::from(block.block.miner_transaction().clone());
        let txs = std::iter::once((block.block.miner_transaction().hash(), &miner))
            .chain(block.block.transactions.iter().copied().zip(&block.transactions));
        // Unencrypted payment ids are dropped from version 12 on, as the crate does.
        let drop_unencrypted = block.block.header.hardfork_version >= 12;
        for (hash, tx) in txs {
            let TxHits { external, internal, passed, data } = self.transaction(tx)?;
            found.passed += passed;
            for (list, hits) in [(&mut found.external, external), (&mut found.internal, internal)] {
                for mut hit in hits {
                    if drop_unencrypted && matches!(hit.payment_id, Some(PaymentId::Unencrypted(_)))
                    {
                        hit.payment_id = None;
                    }
                    list.push(wallet_output(hash, index, tx, &data, hit)?);
                }
            }
            if matches!(tx, Transaction::V2 { .. }) {
                index = index.checked_add(tx.prefix().outputs.len() as u64).ok_or(
                    ScanError::InvalidScannableBlock("RingCT output indexes exceeded u64::MAX"),
                )?;
            }
        }
        // As the processor takes the crate's results: deposits are the main address's (the
        // standard scanner's); our own outputs are the guaranteed scanner's outputs to our
        // subaddresses, never its outputs to the main address (anyone can derive the main
        // address's guaranteed form and pay it: not a deposit, as with the crate).
        found.external.retain(|o| o.subaddress().is_none());
        found.internal.retain(|o| o.subaddress().is_some());
        Ok(found)
    }

    /// Both forms' hits in `tx` (deposits, our own outputs), how many outputs had a view
    /// tag matching under some key (or none), and the transaction's arbitrary data.
    fn transaction(&self, tx: &Transaction<Pruned>) -> Result<TxHits, ScanError> {
        let none = Ok(TxHits::default());
        if tx.version() != 2 {
            return none;
        }
        let Ok(extra) = Extra::read(&mut tx.prefix().extra.as_slice()) else { return none };
        let Some((tx_keys, additional)) = extra.keys() else { return none };
        let payment_id = extra.payment_id();
        // One product per distinct transaction key (a repeated key gives the same one), in
        // the keys' order: the crate tries them all, then the output's additional key.
        let mut distinct: Vec<([u8; 32], usize)> = vec![];
        let mut derivations: Vec<Zeroizing<[u8; 32]>> = Vec::with_capacity(tx_keys.len());
        for key in &tx_keys {
            let compressed = key.compress().to_bytes();
            match distinct.iter().find(|(k, _)| *k == compressed) {
                Some((_, i)) => derivations.push(derivations[*i].clone()),
                None => {
                    distinct.push((compressed, derivations.len()));
                    derivations.push(self.derivation(key));
                }
            }
        }
        let uniqueness = uniqueness(&tx.prefix().inputs);
        let (mut external, mut internal, mut passed) = (vec![], vec![], 0);
        for (o, output) in tx.prefix().outputs.iter().enumerate() {
            if output.key == CompressedPoint::IDENTITY {
                continue;
            }
            let additional = additional.as_ref().and_then(|a| a.get(o)).map(|k| self.derivation(k));
            let tagged = |d: &&[u8; 32]| output.view_tag.is_none_or(|tag| view_tag(d, o) == tag);
            let keys = || derivations.iter().map(|d| &**d).chain(additional.as_deref());
            // Most outputs stop here, after one hash per key.
            if !keys().any(|d| tagged(&d)) {
                continue;
            }
            let tried: Vec<&[u8; 32]> = keys().filter(tagged).collect();
            passed += 1;
            let Some(output_key) = output.key.decompress() else { continue };
            for (form, hits) in [(Form::Standard, &mut external), (Form::Guaranteed, &mut internal)]
            {
                let unique = (form == Form::Guaranteed).then_some(&uniqueness);
                for derivation in &tried {
                    if let Some(hit) =
                        self.try_key(tx, o, output, output_key, form, unique, derivation)?
                    {
                        let payment_id = payment_id.map(|id| id ^ payment_id_xor(derivation));
                        hits.push(Hit { payment_id, ..hit });
                        break;
                    }
                }
            }
        }
        let data = if external.is_empty() && internal.is_empty() {
            vec![]
        } else {
            extra.arbitrary_data()
        };
        Ok(TxHits { external, internal, passed, data })
    }

    /// `8·a·R`, compressed: the derivation every output of transaction key `R` shares.
    fn derivation(&self, key: &Point) -> Zeroizing<[u8; 32]> {
        let product: Zeroizing<EdwardsPoint> = Zeroizing::new(*self.view * Point::into(*key));
        Zeroizing::new(product.mul_by_cofactor().compress().to_bytes())
    }

    /// Output `o` of `tx` under one key and form, as the crate's loop body decides it:
    /// `None` to try the next key.
    #[allow(clippy::too_many_arguments)]
    fn try_key(
        &self,
        tx: &Transaction<Pruned>,
        o: usize,
        output: &monero_wallet::transaction::Output,
        output_key: Point,
        form: Form,
        uniqueness: Option<&[u8; 32]>,
        derivation: &[u8; 32],
    ) -> Result<Option<Hit>, ScanError> {
        let mut preimage = Zeroizing::new(Vec::with_capacity(32 + 32 + 10));
        if let Some(unique) = uniqueness {
            preimage.extend_from_slice(unique);
        }
        preimage.extend_from_slice(derivation);
        VarInt::write(&o, &mut *preimage).expect("writing to a Vec cannot fail");
        let shared = Zeroizing::new(hash_to_scalar(&preimage));
        let key: EdwardsPoint = Point::into(output_key);
        let spend = key - &*shared * ED25519_BASEPOINT_TABLE;
        let (subaddress, extra_offset) = if spend == self.main {
            (None, None)
        } else {
            match (form, self.subaddresses.iter().find(|(s, _, _)| *s == spend)) {
                (Form::Guaranteed, Some((_, index, derivation))) => {
                    (Some(*index), Some(derivation))
                }
                _ => return Ok(None),
            }
        };
        let key_offset = Zeroizing::new(*shared + extra_offset.map_or(DalekScalar::ZERO, |d| **d));
        let commitment = if let Some(amount) = output.amount {
            let mut commitment = Commitment::zero();
            commitment.amount = amount;
            commitment
        } else {
            let Transaction::V2 { proofs: Some(proofs), .. } = tx else {
                return Err(ScanError::InvalidScannableBlock(
                    "non-miner v2 transaction without RCT proofs",
                ));
            };
            let Some(encrypted) = proofs.base.encrypted_amounts.get(o) else {
                return Err(ScanError::InvalidScannableBlock(
                    "RCT proofs without an encrypted amount per output",
                ));
            };
            let (mask, amount) = decrypt(&shared, encrypted);
            // The amount must open the output's commitment (public data: variable time).
            let committed = EdwardsPoint::vartime_double_scalar_mul_basepoint(
                &DalekScalar::from(amount),
                &self.h,
                &mask,
            );
            if Some(&CompressedPoint::from(committed.compress().to_bytes()))
                != proofs.base.commitments.get(o)
            {
                return Ok(None);
            }
            Commitment::new(MoneroScalar::from(mask), amount)
        };
        Ok(Some(Hit { o, key, key_offset, commitment, subaddress, payment_id: None }))
    }
}

/// `keccak("uniqueness" || each input)`: what binds a guaranteed output's key to the
/// transaction's inputs (the miner's height, or each key image).
fn uniqueness(inputs: &[Input]) -> [u8; 32] {
    let mut preimage = b"uniqueness".to_vec();
    for input in inputs {
        match input {
            Input::Gen(height) => {
                VarInt::write(height, &mut preimage).expect("writing to a Vec cannot fail")
            }
            Input::ToKey { key_image, .. } => preimage.extend_from_slice(&key_image.to_bytes()),
        }
    }
    keccak256(&preimage)
}

/// The payment id's XOR pad: `keccak(derivation || 0x8d)[..8]`.
fn payment_id_xor(derivation: &[u8; 32]) -> [u8; 8] {
    let mut preimage = Zeroizing::new(derivation.to_vec());
    preimage.push(0x8d);
    let hash = Zeroizing::new(keccak256(preimage.as_slice()));
    let mut pad = [0; 8];
    pad.copy_from_slice(&hash[..8]);
    pad
}

/// An encrypted amount's mask and amount under `shared`.
fn decrypt(shared: &DalekScalar, encrypted: &EncryptedAmount) -> (DalekScalar, u64) {
    let shared_bytes = Zeroizing::new(shared.to_bytes());
    match encrypted {
        EncryptedAmount::Compact { amount } => {
            let mut preimage = Zeroizing::new(b"commitment_mask".to_vec());
            preimage.extend_from_slice(shared_bytes.as_slice());
            let mask = hash_to_scalar(&preimage);
            let mut preimage = Zeroizing::new(b"amount".to_vec());
            preimage.extend_from_slice(shared_bytes.as_slice());
            let pad = Zeroizing::new(keccak256(preimage.as_slice()));
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&pad[..8]);
            (mask, u64::from_le_bytes(*amount) ^ u64::from_le_bytes(bytes))
        }
        EncryptedAmount::Original { mask, amount } => {
            let mask_pad = Zeroizing::new(hash_to_scalar(shared_bytes.as_slice()));
            let amount_pad = Zeroizing::new(hash_to_scalar(&mask_pad.to_bytes()));
            let mask = DalekScalar::from_bytes_mod_order(*mask) - *mask_pad;
            let amount = Zeroizing::new(DalekScalar::from_bytes_mod_order(*amount) - *amount_pad);
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&amount.to_bytes()[..8]);
            (mask, u64::from_le_bytes(bytes))
        }
    }
}

/// `hit` as monero-wallet's `WalletOutput`: written in the crate's serialization and read
/// back, so the crate builds rings and transactions from it as from its own.
fn wallet_output(
    hash: [u8; 32],
    first_index: u64,
    tx: &Transaction<Pruned>,
    data: &[Vec<u8>],
    hit: Hit,
) -> Result<WalletOutput, ScanError> {
    let invalid = |_| ScanError::InvalidScannableBlock("an output found cannot be represented");
    let o = hit.o as u64;
    let mut bytes = Zeroizing::new(Vec::with_capacity(256));
    let w = &mut *bytes;
    w.extend_from_slice(&hash);
    w.extend_from_slice(&o.to_le_bytes());
    let index = first_index.checked_add(o).ok_or(ScanError::InvalidScannableBlock(
        "transaction's output's index isn't representable as a u64",
    ))?;
    w.extend_from_slice(&index.to_le_bytes());
    w.extend_from_slice(&hit.key.compress().to_bytes());
    w.extend_from_slice(hit.key_offset.as_bytes());
    hit.commitment.write(w).map_err(invalid)?;
    tx.prefix().additional_timelock.write(w).map_err(invalid)?;
    match hit.subaddress {
        Some(index) => {
            w.push(1);
            w.extend_from_slice(&index.account().to_le_bytes());
            w.extend_from_slice(&index.address().to_le_bytes());
        }
        None => w.push(0),
    }
    match hit.payment_id {
        Some(id) => {
            w.push(1);
            id.write(w).map_err(invalid)?;
        }
        None => w.push(0),
    }
    VarInt::write(&data.len(), w).map_err(invalid)?;
    for part in data {
        w.push(u8::try_from(part.len()).map_err(|_| {
            ScanError::InvalidScannableBlock("a piece of arbitrary data is too long")
        })?);
        w.extend_from_slice(part);
    }
    WalletOutput::read(&mut bytes.as_slice()).map_err(invalid)
}

/// Output `o`'s view tag under `derivation`: `keccak("view_tag" || derivation || o)[0]`.
fn view_tag(derivation: &[u8; 32], o: usize) -> u8 {
    // On the stack: it is computed for every output of every transaction.
    let mut preimage = Zeroizing::new([0u8; 8 + 32 + 10]);
    preimage[..8].copy_from_slice(b"view_tag");
    preimage[8..40].copy_from_slice(derivation);
    let mut index = [0u8; 10];
    let mut rest = &mut index[..];
    VarInt::write(&o, &mut rest).expect("a usize fits 10 bytes of varint");
    let written = 10 - rest.len();
    preimage[40..40 + written].copy_from_slice(&index[..written]);
    keccak256(&preimage[..40 + written])[0]
}
