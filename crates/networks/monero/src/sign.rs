//! monero-wallet's multisig transaction machine behind the `signers` crate's object-safe
//! traits: the processor's attempt manager (and its nonce rule) signs Monero transactions
//! without knowing what they are.
//!
//! A Monero transaction's signers are checked by no third party yet: [`PlanMachine`]
//! states nothing, so the coordinator treats a blame on a Monero plan as a dispute.
use std::collections::{BTreeMap, HashMap};

use messages::Participant;
use modular_frost::sign::{PreprocessMachine, SignMachine, SignatureMachine, Writable};
use modular_frost::FrostError;
use monero_wallet::send::{
    TransactionMachine, TransactionSignMachine, TransactionSignatureMachine,
};
use signers::{Completing, Machine, SignFailure, Signing};

/// [`TransactionMachine`] as a [`signers::Machine`]; it completes with the signed
/// transaction's serialization.
pub struct PlanMachine(pub TransactionMachine);
struct PlanSigning(TransactionSignMachine);
struct PlanCompleting(TransactionSignatureMachine);

impl std::fmt::Debug for PlanMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanMachine").finish_non_exhaustive()
    }
}

fn failure(e: FrostError) -> SignFailure {
    match e {
        FrostError::InvalidPreprocess(p) | FrostError::InvalidShare(p) => {
            SignFailure::Blame(u16::from(p))
        }
        other => SignFailure::Failed(other.to_string()),
    }
}

/// Reads every message (in participant order, so the culprit among several is
/// deterministic); an unreadable or over-long one blames its sender, index 0 fails.
fn parse<T>(
    messages: HashMap<Participant, Vec<u8>>,
    read: impl Fn(&mut &[u8]) -> std::io::Result<T>,
) -> Result<HashMap<modular_frost::Participant, T>, SignFailure> {
    let sorted: BTreeMap<_, _> = messages.into_iter().collect();
    let mut out = HashMap::with_capacity(sorted.len());
    for (p, bytes) in sorted {
        let index = modular_frost::Participant::new(p)
            .ok_or_else(|| SignFailure::Failed("participant index 0".into()))?;
        let mut reader = bytes.as_slice();
        let parsed = read(&mut reader).map_err(|_| SignFailure::Blame(p))?;
        if !reader.is_empty() {
            return Err(SignFailure::Blame(p));
        }
        out.insert(index, parsed);
    }
    Ok(out)
}

impl Machine for PlanMachine {
    fn preprocess(self: Box<Self>) -> (Box<dyn Signing>, Vec<u8>) {
        let (machine, preprocess) = self.0.preprocess(&mut rand_core::OsRng);
        (Box::new(PlanSigning(machine)), preprocess.serialize())
    }
}

impl Signing for PlanSigning {
    fn sign(
        self: Box<Self>,
        others: HashMap<Participant, Vec<u8>>,
    ) -> Result<(Box<dyn Completing>, Vec<u8>), SignFailure> {
        let machine = self.0;
        let others = parse(others, |r| machine.read_preprocess(r))?;
        // monero-wallet builds its own message (the transaction's signature hash).
        let (machine, share) = machine.sign(others, &[]).map_err(failure)?;
        Ok((Box::new(PlanCompleting(machine)), share.serialize()))
    }
}

impl Completing for PlanCompleting {
    fn complete(
        self: Box<Self>,
        shares: HashMap<Participant, Vec<u8>>,
    ) -> Result<Vec<u8>, SignFailure> {
        let machine = self.0;
        let shares = parse(shares, |r| machine.read_share(r))?;
        // monero-wallet verifies every CLSAG before it returns the transaction.
        let tx = machine.complete(shares).map_err(failure)?;
        Ok(tx.serialize())
    }
}
