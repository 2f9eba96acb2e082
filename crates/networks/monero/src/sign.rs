//! monero-wallet's multisig transaction machine behind the `signers` crate's object-safe
//! traits: the processor's attempt manager (and its nonce rule) signs Monero transactions
//! without knowing what they are.
//!
//! A Monero transaction's signers are checked by no third party yet: [`PlanMachine`]
//! states nothing, so the coordinator treats a blame on a Monero plan as a dispute.
use std::collections::HashMap;

use messages::Participant;
use modular_frost::sign::{PreprocessMachine, SignMachine, SignatureMachine, Writable};
use monero_wallet::send::{
    TransactionMachine, TransactionSignMachine, TransactionSignatureMachine,
};
use signers::machine::{frost_failure as failure, parse_all as parse};
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
