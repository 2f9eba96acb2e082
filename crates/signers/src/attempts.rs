//! The attempt manager: which attempt of which item this processor answers, with the
//! nonce rule (see the crate documentation for the guarantees).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use borsh::BorshDeserialize;
use db::{DbError, Get, Table, WriteTxn};
use messages::{Participant, Session, SignId, SignKind, SignRequest, SignResponse};
use primitives::codec::encode_body;

use crate::machine::{Completing, Machine, SignFailure, Signing};

/// A [`SignKind`] as a fixed-width key: its borsh encoding (5 bytes for a Batch, 33 for a
/// Plan), zero-padded to 33 bytes. Fixed width so that it can sit in the middle of a tuple
/// key, and injective because borsh's tag fixes the length.
type KindKey = [u8; KIND_KEY_LEN];
const KIND_KEY_LEN: usize = 33;

/// `(session, kind, attempt)` for every attempt this processor released a preprocess for
/// (committed in the same transaction as the preprocess's outgoing message).
const ATTEMPTED: Table<(u32, KindKey, u32), ()> = Table::new("signers/v1/attempted");
/// `(session, kind) -> the highest attempt in ATTEMPTED`: written with it, so that the
/// "never go back to an older attempt" rule is one lookup (tables have no range query).
const LATEST: Table<(u32, KindKey), u32> = Table::new("signers/v1/latest");
/// `(session, kind)` of every item that is done: never signed again.
const COMPLETE: Table<(u32, KindKey), ()> = Table::new("signers/v1/complete");

fn kind_key(kind: SignKind) -> KindKey {
    let mut out = [0u8; KIND_KEY_LEN];
    let body = encode_body(&kind);
    // Borsh of SignKind is at most 1 + 32 bytes.
    let len = body.len().min(KIND_KEY_LEN);
    out[..len].copy_from_slice(&body[..len]);
    out
}

fn kind_from_key(key: &KindKey) -> Result<SignKind, DbError> {
    let mut rest = key.as_slice();
    let kind = SignKind::deserialize(&mut rest).ok();
    match kind {
        Some(kind) if rest.iter().all(|b| *b == 0) => Ok(kind),
        _ => Err(DbError::Inconsistent {
            key: hex::encode(key),
            reason: "a stored sign kind does not decode",
        }),
    }
}

/// `batch/<id>` or `plan/<hex id>`: how kinds appear in logs.
pub fn kind_label(kind: &SignKind) -> String {
    match kind {
        SignKind::Batch(id) => format!("batch/{id}"),
        SignKind::Plan(id) => format!("plan/{}", hex::encode(id)),
    }
}

/// What [`Signers::handle`] did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Send this to the coordinator (in the same transaction as the handling).
    Reply(SignResponse),
    /// The attempt produced the signed item (aggregated and verified). Shares are the
    /// last round: there is nothing to reply; the caller acts on the item (e.g. sends a
    /// `SignedBatch`) and calls [`Signers::complete`] once it is accepted.
    Signed {
        /// The attempt that signed.
        id: SignId,
        /// The signed item's bytes (for a Batch: the 64-byte signature).
        signed: Vec<u8>,
    },
    /// The attempt's machine was consumed but failed without a culprit (e.g. a signing set
    /// below the threshold): nothing to send; the coordinator's timeout reattempts.
    Failed {
        /// The attempt.
        id: SignId,
        /// Why, for logs.
        reason: String,
    },
    /// Nothing changed: the request was stale, a duplicate, malformed or not for us.
    Ignored(&'static str),
}

/// Where one attempt of one item stands, in memory.
enum Stage {
    /// Nonces generated and `preprocess` released; waiting for the signing set.
    Preprocessed { machine: Box<dyn Signing>, preprocess: Vec<u8> },
    /// Our share released; waiting for the set's shares.
    Shared { machine: Box<dyn Completing>, set: BTreeSet<Participant> },
    /// The machine is gone (signed, blamed, failed): later messages for this attempt are
    /// duplicates.
    Done,
}

/// How many attempts of one item whose share was released are kept (their machines wait
/// for the set's shares): concurrent signing sessions (ROAST) may complete an earlier
/// attempt after a later one was released.
pub const KEPT_ATTEMPTS: usize = 4;

/// The signing attempts of one session's key at one processor.
///
/// The machines (nonces) live only in this value: dropping it (a restart) forfeits every
/// attempt in progress; the coordinator's `Reattempt` resumes with a fresh attempt.
pub struct Signers {
    session: Session,
    me: Participant,
    /// Per kind, the attempts still in memory: at most one unused preprocess (the latest
    /// release) and up to [`KEPT_ATTEMPTS`] that shared.
    current: HashMap<SignKind, BTreeMap<u32, Stage>>,
}

impl fmt::Debug for Signers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts: Vec<_> = self
            .current
            .iter()
            .map(|(k, c)| (kind_label(k), c.keys().copied().collect::<Vec<_>>()))
            .collect();
        f.debug_struct("Signers")
            .field("session", &self.session)
            .field("me", &self.me)
            .field("in_memory", &attempts)
            .finish()
    }
}

impl Signers {
    /// A manager for `session`'s key, where this processor is participant `me` (the key's
    /// 1-based index). It holds no machine: attempts released before (in an earlier
    /// process) are never answered again.
    pub fn new(session: Session, me: Participant) -> Self {
        Signers { session, me, current: HashMap::new() }
    }

    /// The session.
    pub fn session(&self) -> Session {
        self.session
    }

    /// Our participant index.
    pub fn me(&self) -> Participant {
        self.me
    }

    /// Starts signing `kind`. If no attempt of it was ever released, records attempt 0 as
    /// attempted in `txn` and returns the `Preprocess` to send: the caller MUST queue it in
    /// the same `txn` and commit before it leaves. Otherwise (a restart, a duplicate start,
    /// or a `Reattempt` already started a later attempt) returns `None`: the coordinator's
    /// next `Reattempt` is answered. Completed kinds return `None`.
    pub fn start(
        &mut self,
        txn: &mut WriteTxn,
        kind: SignKind,
        machine: Box<dyn Machine>,
    ) -> Result<Option<SignResponse>, DbError> {
        self.start_at(txn, kind, 0, machine)
    }

    /// [`Signers::start`] at `attempt` instead of 0: the coordinator asked for that
    /// attempt before this processor had the item (its request was ignored then). The same
    /// rules: nothing is released if any attempt of `kind` ever was.
    pub fn start_at(
        &mut self,
        txn: &mut WriteTxn,
        kind: SignKind,
        attempt: u32,
        machine: Box<dyn Machine>,
    ) -> Result<Option<SignResponse>, DbError> {
        if Self::is_complete(txn, self.session, kind)? {
            return Ok(None);
        }
        if LATEST.get(txn, &(self.session.0, kind_key(kind)))?.is_some() {
            return Ok(None);
        }
        let id = SignId { session: self.session, kind, attempt };
        self.release(txn, id, machine).map(Some)
    }

    /// Records `id` as attempted, then generates its nonces and returns its preprocess.
    fn release(
        &mut self,
        txn: &mut WriteTxn,
        id: SignId,
        machine: Box<dyn Machine>,
    ) -> Result<SignResponse, DbError> {
        let kind = kind_key(id.kind);
        ATTEMPTED.put(txn, &(id.session.0, kind, id.attempt), &())?;
        let latest = LATEST.get(txn, &(id.session.0, kind))?.unwrap_or(0).max(id.attempt);
        LATEST.put(txn, &(id.session.0, kind), &latest)?;
        // An older attempt's unused machine is dropped here, its nonces with it (at most one
        // pending preprocess per item); older attempts that shared keep their machines, up
        // to KEPT_ATTEMPTS, so that their sessions can still aggregate.
        let (machine, preprocess) = machine.preprocess();
        let attempts = self.current.entry(id.kind).or_default();
        attempts.retain(|_, stage| matches!(stage, Stage::Shared { .. }));
        while attempts.len() > KEPT_ATTEMPTS {
            attempts.pop_first();
        }
        attempts
            .insert(id.attempt, Stage::Preprocessed { machine, preprocess: preprocess.clone() });
        tracing::info!(
            target: "tc::nonce",
            session = id.session.0,
            kind = %kind_label(&id.kind),
            attempt = id.attempt,
            "preprocess released"
        );
        Ok(SignResponse::Preprocess { id, preprocess })
    }

    /// Handles `Preprocesses`, `Shares` and `Reattempt` (`Completed` is the caller's
    /// business: it calls [`Signers::complete`]). `machine` makes a fresh machine for a
    /// kind that is still to be signed (`None`: unknown or done); it is only called for a
    /// `Reattempt` that will be answered. A `Reply` MUST be queued in the same `txn`,
    /// committed before it leaves.
    ///
    /// If `txn` is then dropped without commit, a consumed machine is not restored: that
    /// attempt is lost here (safe; the coordinator reattempts).
    pub fn handle(
        &mut self,
        txn: &mut WriteTxn,
        request: &SignRequest,
        machine: impl FnOnce(SignKind) -> Option<Box<dyn Machine>>,
    ) -> Result<Handled, DbError> {
        let id = match request {
            SignRequest::Completed { .. } => {
                return Ok(Handled::Ignored("Completed is handled by the caller"))
            }
            SignRequest::Preprocesses { id, .. }
            | SignRequest::Shares { id, .. }
            | SignRequest::Reattempt { id } => *id,
        };
        if id.session != self.session {
            return Ok(Handled::Ignored("another session"));
        }
        if Self::is_complete(txn, self.session, id.kind)? {
            self.current.remove(&id.kind);
            return Ok(Handled::Ignored("the item is complete"));
        }
        match request {
            SignRequest::Reattempt { .. } => self.reattempt(txn, id, machine),
            SignRequest::Preprocesses { preprocesses, .. } => Ok(self.sign(id, preprocesses)),
            SignRequest::Shares { shares, .. } => Ok(self.aggregate(id, shares)),
            SignRequest::Completed { .. } => {
                Ok(Handled::Ignored("Completed is handled by the caller"))
            }
        }
    }

    fn reattempt(
        &mut self,
        txn: &mut WriteTxn,
        id: SignId,
        machine: impl FnOnce(SignKind) -> Option<Box<dyn Machine>>,
    ) -> Result<Handled, DbError> {
        if Self::attempted(txn, &id)? {
            return Ok(Handled::Ignored("attempt already released"));
        }
        if let Some(latest) = LATEST.get(txn, &(id.session.0, kind_key(id.kind)))? {
            if id.attempt <= latest {
                return Ok(Handled::Ignored("older than the latest attempt"));
            }
        }
        let Some(machine) = machine(id.kind) else {
            return Ok(Handled::Ignored("unknown or finished item"));
        };
        self.release(txn, id, machine).map(Handled::Reply)
    }

    /// The in-memory stage of exactly `id`'s attempt, or why there is none.
    fn stage(&mut self, id: SignId) -> Result<&mut Stage, &'static str> {
        self.current
            .get_mut(&id.kind)
            .and_then(|attempts| attempts.get_mut(&id.attempt))
            .ok_or("no machine for this attempt")
    }

    fn sign(&mut self, id: SignId, preprocesses: &BTreeMap<Participant, Vec<u8>>) -> Handled {
        let me = self.me;
        let stage = match self.stage(id) {
            Ok(stage) => stage,
            Err(reason) => return Handled::Ignored(reason),
        };
        let Stage::Preprocessed { preprocess, .. } = stage else {
            return Handled::Ignored("attempt already answered (duplicate)");
        };
        match preprocesses.get(&me) {
            None => return Handled::Ignored("not in the signing set"),
            // The others bind our share to the commitments they were given: if those are
            // not ours, our share would be invalid (and we blamed). Keep the machine.
            Some(ours) if ours != preprocess => {
                return Handled::Ignored("the set's preprocess for us is not ours")
            }
            Some(_) => {}
        }
        if preprocesses.len() < 2 {
            return Handled::Ignored("no other signer");
        }
        let Stage::Preprocessed { machine, .. } = std::mem::replace(stage, Stage::Done) else {
            return Handled::Ignored("attempt already answered (duplicate)");
        };
        let others: HashMap<_, _> =
            preprocesses.iter().filter(|(p, _)| **p != me).map(|(p, b)| (*p, b.clone())).collect();
        match machine.sign(others) {
            Ok((machine, share)) => {
                *stage = Stage::Shared { machine, set: preprocesses.keys().copied().collect() };
                Handled::Reply(SignResponse::Share { id, share })
            }
            Err(failure) => failed(id, failure),
        }
    }

    fn aggregate(&mut self, id: SignId, shares: &BTreeMap<Participant, Vec<u8>>) -> Handled {
        let me = self.me;
        let stage = match self.stage(id) {
            Ok(stage) => stage,
            Err(reason) => return Handled::Ignored(reason),
        };
        let Stage::Shared { set, .. } = stage else {
            return match stage {
                Stage::Done => Handled::Ignored("attempt already answered (duplicate)"),
                _ => Handled::Ignored("shares before our share"),
            };
        };
        // A partial or foreign set would burn the machine for nothing: keep it.
        if !shares.keys().eq(set.iter()) {
            return Handled::Ignored("shares are not the signing set's");
        }
        let Stage::Shared { machine, .. } = std::mem::replace(stage, Stage::Done) else {
            return Handled::Ignored("attempt already answered (duplicate)");
        };
        let others: HashMap<_, _> =
            shares.iter().filter(|(p, _)| **p != me).map(|(p, b)| (*p, b.clone())).collect();
        match machine.complete(others) {
            Ok(signed) => Handled::Signed { id, signed },
            Err(failure) => failed(id, failure),
        }
    }

    /// The item is done (signed and accepted, or its eventuality seen): it is never signed
    /// again, and its machines are dropped. Takes effect when `txn` commits (the machines
    /// are dropped at once).
    pub fn complete(&mut self, txn: &mut WriteTxn, kind: SignKind) -> Result<(), DbError> {
        COMPLETE.put(txn, &(self.session.0, kind_key(kind)), &())?;
        self.current.remove(&kind);
        Ok(())
    }

    /// Whether a preprocess was released (committed) for exactly this attempt.
    pub fn attempted(txn: &impl Get, id: &SignId) -> Result<bool, DbError> {
        Ok(ATTEMPTED.get(txn, &(id.session.0, kind_key(id.kind), id.attempt))?.is_some())
    }

    /// Whether `kind` is done for `session`.
    pub fn is_complete(txn: &impl Get, session: Session, kind: SignKind) -> Result<bool, DbError> {
        Ok(COMPLETE.get(txn, &(session.0, kind_key(kind)))?.is_some())
    }

    /// For status: every kind of `session` with at least one attempt released, its highest
    /// attempt, and whether it is complete (in key order). Reads the whole attempt index.
    pub fn attempts(
        txn: &impl Get,
        session: Session,
    ) -> Result<Vec<(SignKind, u32, bool)>, DbError> {
        LATEST
            .iter(txn)?
            .into_iter()
            .filter(|((s, _), _)| *s == session.0)
            .map(|((_, key), latest)| {
                let kind = kind_from_key(&key)?;
                Ok((kind, latest, Self::is_complete(txn, session, kind)?))
            })
            .collect()
    }
}

fn failed(id: SignId, failure: SignFailure) -> Handled {
    match failure {
        SignFailure::Blame(accused) => Handled::Reply(SignResponse::Blame { id, accused }),
        SignFailure::Failed(reason) => Handled::Failed { id, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_keys_round_trip_and_are_distinct() {
        let kinds = [
            SignKind::Batch(0),
            SignKind::Batch(u32::MAX),
            SignKind::Plan([0; 32]),
            SignKind::Plan([0xff; 32]),
        ];
        let keys: BTreeSet<_> = kinds.iter().map(|k| kind_key(*k)).collect();
        assert_eq!(keys.len(), kinds.len());
        for kind in kinds {
            assert_eq!(kind_from_key(&kind_key(kind)).ok(), Some(kind));
        }
        let mut bad = kind_key(SignKind::Batch(1));
        bad[10] = 1;
        assert!(kind_from_key(&bad).is_err());
    }
}
