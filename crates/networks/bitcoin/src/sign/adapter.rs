//! The transaction machines behind the `signers` crate's object-safe traits, so that the
//! processor's attempt manager signs Bitcoin transactions without knowing what they are.
use std::collections::HashMap;

use messages::Participant;
use signers::{Completing, Machine, SignFailure, Signing};

use super::{SignError, TransactionMachine, TransactionSignMachine, TransactionSignatureMachine};

/// [`TransactionMachine`] as a [`signers::Machine`]; it completes with the signed
/// transaction's consensus encoding.
#[derive(Debug)]
pub struct PlanMachine(pub TransactionMachine);
struct PlanSigning(TransactionSignMachine);
struct PlanCompleting(TransactionSignatureMachine);

/// The FROST participant of a wire index (0 is no participant: dropped, which makes the
/// set incomplete and the attempt fail without a culprit).
fn frost_map(map: HashMap<Participant, Vec<u8>>) -> HashMap<modular_frost::Participant, Vec<u8>> {
    map.into_iter()
        .filter_map(|(i, v)| modular_frost::Participant::new(i).map(|p| (p, v)))
        .collect()
}

fn failure(e: SignError) -> SignFailure {
    match e {
        SignError::InvalidPreprocess(p) | SignError::InvalidShare(p) => {
            SignFailure::Blame(u16::from(p))
        }
        e => SignFailure::Failed(e.to_string()),
    }
}

impl Machine for PlanMachine {
    fn preprocess(self: Box<Self>) -> (Box<dyn Signing>, Vec<u8>) {
        let (machine, preprocess) = self.0.preprocess(&mut rand_core::OsRng);
        (Box::new(PlanSigning(machine)), preprocess)
    }

    fn statement(&self) -> Option<Vec<u8>> {
        Some(self.0.statement().encode())
    }
}

impl Signing for PlanSigning {
    fn sign(
        self: Box<Self>,
        others: HashMap<Participant, Vec<u8>>,
    ) -> Result<(Box<dyn Completing>, Vec<u8>), SignFailure> {
        let (machine, share) = self.0.sign(frost_map(others)).map_err(failure)?;
        Ok((Box::new(PlanCompleting(machine)), share))
    }
}

impl Completing for PlanCompleting {
    fn complete(
        self: Box<Self>,
        shares: HashMap<Participant, Vec<u8>>,
    ) -> Result<Vec<u8>, SignFailure> {
        let tx = self.0.complete(frost_map(shares)).map_err(failure)?;
        Ok(bitcoin::consensus::serialize(&tx))
    }
}
