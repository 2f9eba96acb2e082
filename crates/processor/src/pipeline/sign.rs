//! Signing: starting the attempts of Batches and plans (nonce rule in the `signers`
//! crate), and the coordinator's signing requests, handled by the inbox handler.
//!
//! A signer's identity on the wire is its validator number, the one the coordinator and
//! operators know. Key shares are indexed by position in the key generation's final
//! participant list, which differs once a validator was excluded (validators [1, 3, 4]
//! hold indices 1, 2 and 3). [`Roster`] is the one translation, applied to every request
//! and reply here; the `signers` crate and the signing machines see only key indices.
use std::collections::BTreeMap;

use db::{Get, WriteTxn};
use key_gen::KeyGen;
use messages::{
    BatchReport, Participant, ProcessorMessage, Session, SignKind, SignRequest, SignResponse,
};
use signers::{Handled, Machine, Signers};
use task::TaskError;

use super::state::*;
use super::{Pipeline, PipelineNetwork, Refusal};

impl<N: PipelineNetwork> Pipeline<N> {
    /// The signing attempts, locked (a poisoned lock means a task panicked: fatal).
    pub fn lock_signers(&self) -> Result<std::sync::MutexGuard<'_, Option<Signers>>, TaskError> {
        self.signers.lock().map_err(|_| TaskError::fatal("signers lock poisoned"))
    }

    /// Marks `kind` done, if a session is active.
    pub fn complete_signing(&self, txn: &mut WriteTxn, kind: SignKind) -> Result<(), TaskError> {
        if let Some(signers) = self.lock_signers()?.as_mut() {
            signers.complete(txn, kind)?;
        }
        Ok(())
    }

    /// Starts signing `kind` (attempt 0) unless already attempted; sends the preprocess.
    pub fn start_signing(
        &self,
        txn: &mut WriteTxn,
        kind: SignKind,
        machine: Box<dyn Machine>,
    ) -> Result<(), TaskError> {
        let statement = machine.statement();
        // The coordinator may have asked for a later attempt before the item was made here.
        let key = primitives::codec::encode_body(&kind);
        let attempt = SIGN_ASKED.get(txn, &key)?.unwrap_or(0);
        SIGN_ASKED.del(txn, &key)?;
        let response = {
            let mut guard = self.lock_signers()?;
            let Some(signers) = guard.as_mut() else {
                return Err(TaskError::fatal("signing without an active session"));
            };
            signers.start_at(txn, kind, attempt, machine)?
        };
        if let Some(response) = response {
            self.metrics.attempts.inc();
            let id = match &response {
                SignResponse::Preprocess { id, .. } => Some(*id),
                _ => None,
            };
            self.send(txn, ProcessorMessage::Sign(response))?;
            // What we sign, after our first preprocess (which creates the item at the
            // coordinator): the coordinator checks every signer's share against it.
            if let (Some(id), Some(statement)) = (id, statement) {
                self.send(txn, ProcessorMessage::Sign(SignResponse::Statement { id, statement }))?;
            }
        }
        Ok(())
    }

    /// A fresh machine for `kind`, if it is still to be signed.
    pub fn machine(
        &self,
        txn: &impl Get,
        active: &Active,
        kind: SignKind,
    ) -> Result<Option<Box<dyn Machine>>, TaskError> {
        let keys = self.keys(txn, active.session)?;
        match kind {
            SignKind::Batch(id) => {
                let Some((batch, _)) = BATCHES.get(txn, &id)? else { return Ok(None) };
                Ok(Some(signers::batch_machine(keys.ristretto.clone(), &batch)))
            }
            SignKind::Plan(id) => {
                let Some(record) = PLANS.get(txn, &id)? else { return Ok(None) };
                if record.completed.is_some() {
                    return Ok(None);
                }
                let planned = self.plan(txn, &self.key(&keys)?, &record.tx, record.rate)?;
                self.plan_machine(&keys, planned.signable, id).map(Some)
            }
        }
    }
}

/// The validators holding a session's key shares, in key-index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster(Vec<u16>);

impl Roster {
    /// The roster of `session`'s confirmed key.
    pub fn load(txn: &impl Get, session: u32) -> Result<Roster, TaskError> {
        let generated = KeyGen::generated(txn, Session(session))?.ok_or_else(|| {
            TaskError::fatal(format!("the active session {session} has no key generation record"))
        })?;
        Ok(Roster(generated.participants))
    }

    /// The key index of `validator`, if it holds a share.
    pub fn index(&self, validator: u16) -> Option<Participant> {
        let position = self.0.iter().position(|v| *v == validator)?;
        u16::try_from(position + 1).ok()
    }

    /// The validator holding key index `index`.
    pub fn validator(&self, index: Participant) -> Option<u16> {
        self.0.get(usize::from(index).checked_sub(1)?).copied()
    }

    /// A map keyed by validators, keyed by key indices instead; validators holding no share
    /// are dropped (the attempt then lacks a member and fails without a culprit).
    fn to_key(&self, map: &BTreeMap<u16, Vec<u8>>) -> BTreeMap<Participant, Vec<u8>> {
        map.iter().filter_map(|(v, m)| Some((self.index(*v)?, m.clone()))).collect()
    }

    /// A coordinator's request, with key indices where it names signers.
    pub fn request_to_key(&self, request: &SignRequest) -> SignRequest {
        match request {
            SignRequest::Preprocesses { id, preprocesses } => {
                SignRequest::Preprocesses { id: *id, preprocesses: self.to_key(preprocesses) }
            }
            SignRequest::Shares { id, shares } => {
                SignRequest::Shares { id: *id, shares: self.to_key(shares) }
            }
            other => other.clone(),
        }
    }

    /// A reply, with validators where it names signers; `None` for a blame of an index no
    /// validator holds (every index the signers name comes from a map `to_key` built, so
    /// this is a bug: nobody is accused).
    pub fn response_to_wire(&self, response: SignResponse) -> Option<SignResponse> {
        match response {
            SignResponse::Blame { id, accused } => match self.validator(accused) {
                Some(accused) => Some(SignResponse::Blame { id, accused }),
                None => {
                    tracing::error!(
                        ?id,
                        accused,
                        "a blame of a key index no validator holds: not sent"
                    );
                    None
                }
            },
            other => Some(other),
        }
    }
}

/// Our own Completed message for a plan.
pub fn completed(session: u32, plan: [u8; 32], tx: Vec<u8>) -> ProcessorMessage {
    ProcessorMessage::Sign(SignResponse::Completed { session: Session(session), plan, tx })
}

/// Handles a signing request from the coordinator.
pub fn sign<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    request: &SignRequest,
) -> Result<Result<(), Refusal>, TaskError> {
    let Some(active) = p.active(txn)? else { return Ok(Err(Refusal::NoActiveKey)) };
    let id = match request {
        SignRequest::Preprocesses { id, .. }
        | SignRequest::Shares { id, .. }
        | SignRequest::Reattempt { id } => *id,
        SignRequest::Completed { session, plan, tx } => {
            // Another signer published it; we stop once we see it on chain ourselves.
            tracing::info!(session = session.0, plan = %hex::encode(plan), tx = %p.network_tx(tx), "a signer reports the plan completed");
            return Ok(Ok(()));
        }
    };
    if id.session.0 != active.session {
        return Ok(Err(Refusal::WrongSession { got: id.session.0, active: active.session }));
    }
    if let Some(blame) = false_blame(p, request) {
        // Test misbehaviour (`[testing] malice = "false-blame:V"`): no share, a lie.
        tracing::warn!(?id, "TEST MISBEHAVIOUR: blaming a signer that did nothing wrong");
        p.send(txn, ProcessorMessage::Sign(blame))?;
        return Ok(Ok(()));
    }
    let machine = match request {
        SignRequest::Reattempt { .. } => p.machine(txn, &active, id.kind)?,
        _ => None,
    };
    if let (SignRequest::Reattempt { .. }, None) = (request, &machine) {
        // Not made yet here (or done): remembered, so that the item starts at this attempt.
        let key = primitives::codec::encode_body(&id.kind);
        let asked = SIGN_ASKED.get(txn, &key)?.unwrap_or(0).max(id.attempt);
        SIGN_ASKED.put(txn, &key, &asked)?;
    }
    let roster = Roster::load(txn, active.session)?;
    let request = roster.request_to_key(request);
    let handled = {
        let mut guard = p.lock_signers()?;
        let Some(signers) = guard.as_mut() else { return Ok(Err(Refusal::NoActiveKey)) };
        signers.handle(txn, &request, |_| machine)?
    };
    match handled {
        Handled::Reply(response) => {
            let Some(response) = roster.response_to_wire(response) else {
                return Ok(Ok(()));
            };
            if matches!(response, SignResponse::Preprocess { .. }) {
                p.metrics.attempts.inc();
                p.metrics.reattempts.inc();
            }
            if let Some(response) = misbehave(p, response) {
                p.send(txn, ProcessorMessage::Sign(response))?;
            }
        }
        Handled::Signed { id, signed } => {
            match id.kind {
                SignKind::Batch(batch_id) => {
                    let (batch, _) = BATCHES.get(txn, &batch_id)?.ok_or_else(|| {
                        TaskError::fatal(format!("signed unknown batch {batch_id}"))
                    })?;
                    let signature: [u8; 64] = signed
                        .try_into()
                        .map_err(|_| TaskError::fatal("a Batch signature is not 64 bytes"))?;
                    tracing::info!(batch = batch_id, attempt = id.attempt, "batch signed");
                    p.metrics.batches_signed.inc();
                    p.metrics.batch_sign_seconds.end(p.session, &batch_id.to_be_bytes());
                    p.send(
                        txn,
                        ProcessorMessage::Batch(BatchReport::SignedBatch { batch, signature }),
                    )?;
                }
                SignKind::Plan(plan) => {
                    tracing::info!(plan = %hex::encode(plan), attempt = id.attempt, "transaction signed");
                    TO_PUBLISH.push(txn, &(plan, signed))?;
                }
            }
            p.complete_signing(txn, id.kind)?;
        }
        Handled::Failed { id, reason } => {
            tracing::warn!(
                ?id,
                reason,
                "signing attempt failed without a culprit; waiting for a reattempt"
            );
        }
        Handled::Ignored(reason) => {
            tracing::info!(?id, reason, "signing request ignored");
        }
    }
    Ok(Ok(()))
}

/// The reply as test misbehaviour changes it: with `Malice::WrongShare` a share altered
/// (its first byte's lowest bit flipped) so that it no longer signs (`[testing] malice =
/// "wrong-share:0"`); with `Malice::WithholdShare` none (`"withhold-share:0"`).
fn misbehave<N: PipelineNetwork>(p: &Pipeline<N>, response: SignResponse) -> Option<SignResponse> {
    match (p.keygen.malice(), response) {
        (key_gen::Malice::WrongShare(_), SignResponse::Share { id, mut share }) => {
            tracing::warn!(?id, "TEST MISBEHAVIOUR: sending a wrong signature share");
            if let Some(first) = share.first_mut() {
                *first ^= 1;
            }
            Some(SignResponse::Share { id, share })
        }
        (key_gen::Malice::WithholdShare(_), SignResponse::Share { id, .. }) => {
            tracing::warn!(?id, "TEST MISBEHAVIOUR: withholding a signature share");
            None
        }
        (_, response) => Some(response),
    }
}

/// With `Malice::FalseBlame(victim)`, the false blame this processor sends instead of its
/// share when `victim` is in the signing set (wire numbers throughout).
fn false_blame<N: PipelineNetwork>(p: &Pipeline<N>, request: &SignRequest) -> Option<SignResponse> {
    let key_gen::Malice::FalseBlame(victim) = p.keygen.malice() else { return None };
    let SignRequest::Preprocesses { id, preprocesses } = request else { return None };
    let accused = match victim {
        0 => preprocesses.keys().copied().find(|v| *v != p.validator)?,
        v => preprocesses.contains_key(&v).then_some(v)?,
    };
    Some(SignResponse::Blame { id: *id, accused })
}
