//! The coordinator's side of key generation (docs/protocol.md §5): start an attempt,
//! gather each round from every participant and relay it, judge blame, time out silent
//! participants, and confirm the key pair once every participant reports the same one.
//!
//! Every method runs inside the caller's write transaction and sends through
//! [`Mailbox::send`] in that same transaction, so a state change and the messages it
//! causes commit together. Nothing here does I/O.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use borsh::{BorshDeserialize, BorshSerialize};
use bus::{Mailbox, SendError};
use ciphersuite::group::GroupEncoding;
use db::{DbError, Get, Table, WriteTxn};
use key_gen::{dkg::judge, KeyGenError, KeyGenParams};
use messages::{
    ChainSettings, CoordinatorMessage, KeyGenId, KeyGenRequest, KeyGenResponse, Participant, Party,
    Session, SettlementEvent,
};
use primitives::codec::Versioned;

use crate::{
    clock::Clock,
    config::SetConfig,
    metrics::KeyGenMetrics,
    state::{
        activation_block, answered, message_hash, prune_attempt, round, set_key, AttemptEnd,
        ByValidator, ConfirmedKeys, Exclusion, ReportedKeyPair, SetKey, SetState, Stage,
        COMMITMENTS, CONFLICTS, KEY_PAIRS, SEEN, SETS, SHARES, VERIFICATION_SHARES,
    },
};

/// Why a key-generation step failed. Nothing it wrote may be committed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A message could not be queued.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The configuration no longer matches what the database records for a set.
    #[error("{network} session {session}: the database records {stored}, the config says {configured}; restore the config or use a new data_dir")]
    ConfigChanged {
        /// The set's network.
        network: primitives::NetworkId,
        /// The set's session.
        session: u32,
        /// What the database holds.
        stored: String,
        /// What the config holds.
        configured: String,
    },
}

impl SimError {
    /// Whether retrying cannot help.
    pub fn is_fatal(&self) -> bool {
        match self {
            SimError::Db(e) | SimError::Send(SendError::Db(e)) => e.is_fatal(),
            SimError::Send(SendError::TooLarge { .. }) | SimError::ConfigChanged { .. } => true,
        }
    }
}

/// What [`KeyGenCoordinator::handle`] did with a message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// It advanced the set's key generation (stored, relayed, restarted or confirmed).
    Progress,
    /// Byte-identical to a message already received; nothing changed.
    Duplicate,
    /// It differs from the message already received for its (session, attempt, round)
    /// from its sender: counted in `conflicts`, otherwise ignored.
    Conflict,
    /// Ignored (recorded for conflict detection only, if from a set member); the reason.
    Ignored(&'static str),
}

/// Drives every configured set's key generation.
#[derive(Debug)]
pub struct KeyGenCoordinator {
    sets: Vec<SetConfig>,
    mailbox: Mailbox,
    clock: Arc<dyn Clock>,
    timeout_ms: u64,
    metrics: KeyGenMetrics,
    close_after: u64,
}

impl KeyGenCoordinator {
    /// A coordinator for `sets`, sending through `mailbox`.
    pub fn new(
        sets: Vec<SetConfig>,
        mailbox: Mailbox,
        clock: Arc<dyn Clock>,
        timeout: Duration,
        metrics: KeyGenMetrics,
    ) -> Self {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        KeyGenCoordinator { sets, mailbox, clock, timeout_ms, metrics, close_after: 20 }
    }

    /// A rotation's grace period: a set whose successor is confirmed with activation block
    /// `a` closes at block `a + blocks` (default 20).
    pub fn with_rotation_close_after(mut self, blocks: u64) -> Self {
        self.close_after = blocks;
        self
    }

    /// When a key is confirmed: the rotations it allows start ([`crate::rotation`]).
    fn rotate_to(&self, txn: &mut WriteTxn, state: &SetState) -> Result<(), SimError> {
        crate::rotation::reconcile(txn, &self.sets, &self.mailbox, state.network, self.close_after)
    }

    /// The mailbox messages leave through.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// The round timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// At startup: starts attempt 0 of every configured set the database does not know,
    /// and refuses a set whose configuration changed. A running attempt whose deadline
    /// passed while the simulator was down gets a full timeout from now, so processors
    /// whose answers waited in the broker are not blamed for the simulator's downtime.
    pub fn start(&self, txn: &mut WriteTxn) -> Result<(), SimError> {
        let now = self.clock.now_ms();
        self.metrics.conflicts.inc_by(crate::state::conflicts(txn)?);
        for config in &self.sets {
            let key = config.key();
            let Some(mut state) = SETS.get(txn, &key)? else {
                let state = SetState {
                    network: config.network,
                    session: config.session,
                    threshold: config.threshold,
                    validators: config.validators.clone(),
                    attempt: 0,
                    participants: config.validators.clone(),
                    stage: Stage::Commitments,
                    last_progress_ms: now,
                    started_ms: now,
                    excluded: vec![],
                    history: vec![],
                    confirmed: None,
                    failure: None,
                };
                tracing::info!(network = %config.network, session = config.session, threshold = config.threshold, validators = ?config.validators, "starting key generation");
                self.begin_attempt(txn, &state)?;
                SETS.put(txn, &key, &state)?;
                continue;
            };
            if state.threshold != config.threshold || state.validators != config.validators {
                return Err(SimError::ConfigChanged {
                    network: config.network,
                    session: config.session,
                    stored: format!("threshold {} of {:?}", state.threshold, state.validators),
                    configured: format!(
                        "threshold {} of {:?}",
                        config.threshold, config.validators
                    ),
                });
            }
            if state.stage.in_progress()
                && now.saturating_sub(state.last_progress_ms) >= self.timeout_ms
            {
                tracing::info!(network = %state.network, session = state.session, attempt = state.attempt, "the round's deadline passed while stopped; allowing a full timeout from now");
                state.last_progress_ms = now;
                SETS.put(txn, &key, &state)?;
            }
        }
        Ok(())
    }

    fn configured(&self, key: SetKey) -> bool {
        self.sets.iter().any(|s| s.key() == key)
    }

    fn send(
        &self,
        txn: &mut WriteTxn,
        state: &SetState,
        to: Participant,
        message: CoordinatorMessage,
    ) -> Result<(), SimError> {
        let recipient = Party::Processor { network: state.network, validator: to };
        self.mailbox.send(txn, recipient, message.encode())?;
        Ok(())
    }

    fn id(state: &SetState) -> KeyGenId {
        KeyGenId { session: Session(state.session), attempt: state.attempt }
    }

    fn begin_attempt(&self, txn: &mut WriteTxn, state: &SetState) -> Result<(), SimError> {
        self.metrics.attempts.inc();
        for me in &state.participants {
            let request = KeyGenRequest::GenerateKey {
                id: Self::id(state),
                network: state.network,
                threshold: state.threshold,
                participants: state.participants.clone(),
                me: *me,
            };
            self.send(txn, state, *me, CoordinatorMessage::KeyGen(request))?;
        }
        Ok(())
    }

    /// Ends the current attempt: records `culprits` as excluded and `outcome` in the
    /// history, then starts the next attempt without them, or fails the set if fewer than
    /// `threshold` participants remain.
    fn restart(
        &self,
        txn: &mut WriteTxn,
        state: &mut SetState,
        culprits: Vec<(Participant, String)>,
        outcome: String,
    ) -> Result<(), SimError> {
        prune_attempt(txn, state)?;
        state.history.push(AttemptEnd {
            attempt: state.attempt,
            participants: state.participants.clone(),
            outcome,
        });
        for (validator, reason) in culprits {
            tracing::warn!(network = %state.network, session = state.session, attempt = state.attempt, validator, %reason, "excluding a participant");
            self.metrics.exclusions.inc();
            state.participants.retain(|p| *p != validator);
            state.excluded.push(Exclusion { validator, attempt: state.attempt, reason });
        }
        let failure = if state.participants.len() < usize::from(state.threshold) {
            Some(format!(
                "only {} participants remain ({:?}) after attempt {}, fewer than the threshold {}",
                state.participants.len(),
                state.participants,
                state.attempt,
                state.threshold
            ))
        } else if state.attempt == u32::MAX {
            Some("no attempt numbers left".to_string())
        } else {
            None
        };
        if let Some(failure) = failure {
            tracing::error!(network = %state.network, session = state.session, %failure, "KEY GENERATION FAILED for this set: it has no key; reconfigure the set");
            self.metrics.failed.inc();
            state.stage = Stage::Failed;
            state.failure = Some(failure);
            return Ok(());
        }
        state.attempt += 1;
        state.stage = Stage::Commitments;
        state.last_progress_ms = self.clock.now_ms();
        tracing::info!(network = %state.network, session = state.session, attempt = state.attempt, participants = ?state.participants, "restarting key generation");
        self.begin_attempt(txn, state)
    }

    /// Handles one key-generation message from `sender`, inside `txn`. On `Err`, the
    /// caller MUST drop `txn` uncommitted (it may hold part of the change).
    pub fn handle(
        &self,
        txn: &mut WriteTxn,
        sender: Party,
        response: &KeyGenResponse,
    ) -> Result<Outcome, SimError> {
        let outcome = self.handle_inner(txn, sender, response)?;
        if let Outcome::Ignored(reason) = outcome {
            self.metrics.ignored(reason);
        }
        Ok(outcome)
    }

    fn handle_inner(
        &self,
        txn: &mut WriteTxn,
        sender: Party,
        response: &KeyGenResponse,
    ) -> Result<Outcome, SimError> {
        let Party::Processor { network, validator } = sender else {
            return Ok(Outcome::Ignored("not_a_processor"));
        };
        let id = response_id(response);
        let key = set_key(network, id.session.0);
        let span = tracing::info_span!("keygen", %network, session = id.session.0, attempt = id.attempt, validator);
        let _enter = span.enter();
        let state = match SETS.get(txn, &key)? {
            Some(state) if self.configured(key) => state,
            _ => {
                tracing::warn!("key-generation message for an unknown session; ignored");
                return Ok(Outcome::Ignored("unknown_session"));
            }
        };
        if !state.validators.contains(&validator) {
            tracing::warn!("key-generation message from a validator outside the set; ignored");
            return Ok(Outcome::Ignored("not_in_set"));
        }

        // Remember what this sender said in this round; a different second message is a
        // conflict, whatever the attempt's state.
        let round = match response {
            // A refusal answers the request in place of the commitments.
            KeyGenResponse::Commitments { .. } | KeyGenResponse::Refused { .. } => {
                round::COMMITMENTS
            }
            KeyGenResponse::Shares { .. } => round::SHARES,
            KeyGenResponse::GeneratedKeyPair { .. } => round::KEY_PAIR,
            // A blame answers the commitments (round 2) unless shares were sent already.
            KeyGenResponse::Blame { .. } => {
                if SEEN.get(txn, &((key, id.attempt), round::SHARES, validator))?.is_some() {
                    round::KEY_PAIR
                } else {
                    round::SHARES
                }
            }
        };
        let seen_key = ((key, id.attempt), round, validator);
        let hash = message_hash(response);
        match SEEN.get(txn, &seen_key)? {
            Some(previous) if previous == hash => {
                tracing::debug!(round, "duplicate key-generation message; ignored");
                return Ok(Outcome::Duplicate);
            }
            Some(_) => {
                let count = crate::state::conflicts(txn)? + 1;
                CONFLICTS.put(txn, &(), &count)?;
                self.metrics.conflicts.inc();
                tracing::error!(round, conflicts = count, "CONFLICT: a second, different message for the same (session, attempt, round); ignored");
                return Ok(Outcome::Conflict);
            }
            None => SEEN.put(txn, &seen_key, &hash)?,
        }

        if !state.stage.in_progress() {
            tracing::info!(
                stage = state.stage.name(),
                "message after the set's key generation ended; ignored"
            );
            return Ok(Outcome::Ignored("ended"));
        }
        if id.attempt != state.attempt {
            tracing::info!(current = state.attempt, "message for another attempt; ignored");
            return Ok(Outcome::Ignored("other_attempt"));
        }
        if !state.participants.contains(&validator) {
            tracing::info!("message from a validator excluded from this attempt; ignored");
            return Ok(Outcome::Ignored("not_a_participant"));
        }
        let mut state = state;
        let outcome = match response {
            KeyGenResponse::Commitments { commitments, .. } => {
                self.on_commitments(txn, &mut state, validator, commitments)?
            }
            KeyGenResponse::Shares { shares, .. } => {
                self.on_shares(txn, &mut state, validator, shares)?
            }
            KeyGenResponse::Blame { accused, evidence, .. } => {
                self.on_blame(txn, &mut state, validator, *accused, evidence)?
            }
            KeyGenResponse::Refused { reason, .. } => {
                // Its operator's policy refuses the parameters: it will not take part, so
                // the attempt restarts without it now rather than after a timeout.
                let reason = format!("refused the parameters: {}", bounded(reason));
                let outcome = format!("validator {validator} {reason}");
                self.restart(txn, &mut state, vec![(validator, reason)], outcome)?;
                Outcome::Progress
            }
            KeyGenResponse::GeneratedKeyPair {
                ristretto_key,
                network_key,
                proposed_activation,
                settings,
                ..
            } => self.on_key_pair(
                txn,
                &mut state,
                validator,
                ((*ristretto_key, network_key.clone()), *proposed_activation, *settings),
            )?,
        };
        if outcome == Outcome::Progress {
            SETS.put(txn, &key, &state)?;
        }
        Ok(outcome)
    }

    /// Whether every participant answered the current round; records progress.
    fn round_complete(&self, txn: &impl Get, state: &mut SetState) -> Result<bool, SimError> {
        state.last_progress_ms = self.clock.now_ms();
        for v in &state.participants {
            if !answered(txn, state, *v)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn on_commitments(
        &self,
        txn: &mut WriteTxn,
        state: &mut SetState,
        validator: Participant,
        commitments: &[u8],
    ) -> Result<Outcome, SimError> {
        if state.stage != Stage::Commitments {
            return Ok(Outcome::Ignored("out_of_order"));
        }
        COMMITMENTS.put(txn, &(state.key(), state.attempt, validator), &commitments.to_vec())?;
        if !self.round_complete(txn, state)? {
            return Ok(Outcome::Progress);
        }
        let all = Self::gather(txn, state, COMMITMENTS)?;
        for to in &state.participants {
            let mut others = all.clone();
            others.remove(to);
            let request = KeyGenRequest::Commitments { id: Self::id(state), commitments: others };
            self.send(txn, state, *to, CoordinatorMessage::KeyGen(request))?;
        }
        state.stage = Stage::Shares;
        tracing::info!("all commitments in; relayed");
        Ok(Outcome::Progress)
    }

    fn on_shares(
        &self,
        txn: &mut WriteTxn,
        state: &mut SetState,
        validator: Participant,
        shares: &BTreeMap<Participant, Vec<u8>>,
    ) -> Result<Outcome, SimError> {
        if state.stage != Stage::Shares {
            return Ok(Outcome::Ignored("out_of_order"));
        }
        let expected: Vec<Participant> =
            state.participants.iter().copied().filter(|p| *p != validator).collect();
        let recipients: Vec<Participant> = shares.keys().copied().collect();
        if recipients != expected {
            // Signed by its sender and checkable by anyone: provable misbehaviour.
            let reason = format!("sent shares for {recipients:?} instead of {expected:?}");
            let outcome = format!("validator {validator} sent malformed shares");
            self.restart(txn, state, vec![(validator, reason)], outcome)?;
            return Ok(Outcome::Progress);
        }
        SHARES.put(txn, &(state.key(), state.attempt, validator), shares)?;
        if !self.round_complete(txn, state)? {
            return Ok(Outcome::Progress);
        }
        let all = Self::gather(txn, state, SHARES)?;
        for to in &state.participants {
            let for_recipient: BTreeMap<Participant, Vec<u8>> = all
                .iter()
                .filter(|(from, _)| *from != to)
                .filter_map(|(from, shares)| shares.get(to).map(|s| (*from, s.clone())))
                .collect();
            let request = KeyGenRequest::Shares { id: Self::id(state), shares: for_recipient };
            self.send(txn, state, *to, CoordinatorMessage::KeyGen(request))?;
        }
        state.stage = Stage::KeyPairs;
        tracing::info!("all shares in; relayed");
        Ok(Outcome::Progress)
    }

    fn on_blame(
        &self,
        txn: &mut WriteTxn,
        state: &mut SetState,
        accuser: Participant,
        accused: Participant,
        evidence: &[u8],
    ) -> Result<Outcome, SimError> {
        let (culprit, reason) = if state.stage == Stage::Commitments {
            // Nothing was relayed yet: there is nothing the accuser can have checked.
            (accuser, format!("blamed validator {accused} before any commitments were relayed"))
        } else {
            let commitments = Self::gather(txn, state, COMMITMENTS)?;
            // The share the accused sent the accuser, if it was relayed already.
            let share = if state.stage == Stage::KeyPairs {
                SHARES
                    .get(txn, &(state.key(), state.attempt, accused))?
                    .and_then(|shares| shares.get(&accuser).cloned())
            } else {
                None
            };
            let params = KeyGenParams {
                id: Self::id(state),
                network: state.network,
                threshold: state.threshold,
                participants: state.participants.clone(),
                me: accuser,
            };
            match judge(&params, &commitments, accuser, accused, evidence, share.as_deref()) {
                Ok(culprit) if culprit == accused => {
                    (accused, format!("blamed by validator {accuser}; the evidence holds"))
                }
                Ok(culprit) if culprit == accuser => {
                    (accuser, format!("falsely accused validator {accused}"))
                }
                Ok(culprit) => (
                    culprit,
                    format!("proved faulty while judging validator {accuser}'s blame of validator {accused}"),
                ),
                // The accuser cites a message it cannot have received.
                Err(KeyGenError::MissingMessage(_)) => (
                    accuser,
                    format!("blamed validator {accused} for a share that was never relayed"),
                ),
                Err(e) => {
                    // No one can be blamed for our inability to check; the round timeout
                    // removes whoever stops answering.
                    tracing::error!(accuser, accused, error = %e, "cannot judge a blame; ignored");
                    return Ok(Outcome::Ignored("unjudgeable_blame"));
                }
            }
        };
        tracing::warn!(accuser, accused, culprit, %reason, "blame judged");
        let outcome = format!("validator {accuser} blamed validator {accused}; culprit {culprit}");
        self.restart(txn, state, vec![(culprit, reason)], outcome)?;
        Ok(Outcome::Progress)
    }

    fn on_key_pair(
        &self,
        txn: &mut WriteTxn,
        state: &mut SetState,
        validator: Participant,
        report: ReportedKeyPair,
    ) -> Result<Outcome, SimError> {
        if state.stage != Stage::KeyPairs {
            return Ok(Outcome::Ignored("out_of_order"));
        }
        let pair = report.0.clone();
        KEY_PAIRS.put(txn, &(state.key(), state.attempt, validator), &report)?;
        if !self.round_complete(txn, state)? {
            return Ok(Outcome::Progress);
        }
        let all = Self::gather(txn, state, KEY_PAIRS)?;
        if all.values().any(|(reported, _, _)| *reported != pair) {
            let reported: Vec<String> = all
                .iter()
                .map(|(v, ((r, n), _, _))| format!("{v}: {}/{}", hex::encode(r), hex::encode(n)))
                .collect();
            tracing::error!(?reported, "participants generated different key pairs; restarting");
            let outcome = format!("key pairs disagreed ({})", reported.join(", "));
            self.restart(txn, state, vec![], outcome)?;
            return Ok(Outcome::Progress);
        }
        let settings: BTreeMap<Participant, ChainSettings> =
            all.iter().filter_map(|(v, (_, _, s))| Some((*v, (*s)?))).collect();
        let culprits = mismatched_settings(&settings);
        if !culprits.is_empty() {
            for (v, reason) in &culprits {
                tracing::error!(validator = v, %reason, "a participant's settings differ from the set's: it would make Batches and plans the others never sign");
            }
            let outcome = format!(
                "settings disagreed ({})",
                culprits
                    .iter()
                    .map(|(v, r)| format!("validator {v}: {r}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            self.restart(txn, state, culprits, outcome)?;
            return Ok(Outcome::Progress);
        }
        let activation_block = activation_block(all.values().map(|(_, proposal, _)| *proposal));
        // No culprit: every participant that reported settings reported these.
        let agreed = settings.values().next().copied();
        let (ristretto_key, network_key) = pair;
        for to in &state.participants {
            let event = SettlementEvent::ConfirmKeyPair {
                session: Session(state.session),
                ristretto_key,
                network_key: network_key.clone(),
                activation_block,
                settings: agreed,
            };
            self.send(txn, state, *to, CoordinatorMessage::Settlement(event))?;
        }
        self.record_verification_shares(txn, state, &ristretto_key)?;
        prune_attempt(txn, state)?;
        state.history.push(AttemptEnd {
            attempt: state.attempt,
            participants: state.participants.clone(),
            outcome: "confirmed".into(),
        });
        state.stage = Stage::Confirmed;
        state.confirmed = Some(ConfirmedKeys {
            attempt: state.attempt,
            ristretto_key,
            network_key: network_key.clone(),
            started_ms: state.started_ms,
            confirmed_ms: self.clock.now_ms(),
            activation_block,
        });
        self.metrics.confirmed.inc();
        tracing::info!(ristretto_key = %hex::encode(ristretto_key), network_key = %hex::encode(network_key), ?activation_block, "key pair confirmed");
        // Recorded now (the caller records it again) so that the rotations see it.
        SETS.put(txn, &set_key(state.network, state.session), state)?;
        self.rotate_to(txn, state)?;
        Ok(Outcome::Progress)
    }

    /// Computes the confirmed attempt's verification shares from its relayed round-1
    /// messages and stores them if they make the confirmed Ristretto key. Otherwise
    /// signing blame cannot be checked for this set, and is handled as disputes.
    fn record_verification_shares(
        &self,
        txn: &mut WriteTxn,
        state: &SetState,
        ristretto_key: &[u8; 32],
    ) -> Result<(), SimError> {
        let Some(me) = state.participants.first().copied() else { return Ok(()) };
        let params = KeyGenParams {
            id: Self::id(state),
            network: state.network,
            threshold: state.threshold,
            participants: state.participants.clone(),
            me,
        };
        let commitments = Self::gather(txn, state, COMMITMENTS)?;
        let shares = match key_gen::dkg::verification_shares(&params, &commitments) {
            Ok(shares) => shares,
            Err(e) => {
                tracing::warn!(error = %e, "no verification shares from the round-1 messages; signing blame will be handled as disputes");
                return Ok(());
            }
        };
        let group_key = signers::public::PublicKeys::<modular_frost::curve::Ristretto>::read(
            shares.threshold,
            &shares.ristretto,
        )
        .and_then(|keys| keys.group_key());
        match group_key {
            Ok(key) if key.to_bytes() == *ristretto_key => {
                VERIFICATION_SHARES.put(txn, &state.key(), &shares)?;
            }
            _ => tracing::error!(
                "the verification shares from the round-1 messages do not make the confirmed key; signing blame will be handled as disputes"
            ),
        }
        Ok(())
    }

    /// Every participant's stored message of the current attempt, from `table`.
    fn gather<V: BorshSerialize + BorshDeserialize>(
        txn: &impl Get,
        state: &SetState,
        table: Table<ByValidator, V>,
    ) -> Result<BTreeMap<Participant, V>, SimError> {
        let mut out = BTreeMap::new();
        for v in &state.participants {
            if let Some(value) = table.get(txn, &(state.key(), state.attempt, *v))? {
                out.insert(*v, value);
            }
        }
        Ok(out)
    }

    /// Whether some running attempt's round is past its deadline (read-only).
    pub fn timeout_due(&self, txn: &impl Get) -> Result<bool, SimError> {
        let now = self.clock.now_ms();
        for config in &self.sets {
            if let Some(state) = SETS.get(txn, &config.key())? {
                if self.overdue(&state, now) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn overdue(&self, state: &SetState, now: u64) -> bool {
        state.stage.in_progress() && now.saturating_sub(state.last_progress_ms) >= self.timeout_ms
    }

    /// Restarts every attempt whose round is past its deadline, without the participants
    /// that did not answer it. Returns whether anything changed.
    pub fn check_timeouts(&self, txn: &mut WriteTxn) -> Result<bool, SimError> {
        let now = self.clock.now_ms();
        let mut changed = false;
        for config in &self.sets {
            let key = config.key();
            let Some(mut state) = SETS.get(txn, &key)? else { continue };
            if !self.overdue(&state, now) {
                continue;
            }
            let stage = state.stage.name();
            let silent = crate::state::waiting_for(txn, &state)?;
            let reason = format!("did not answer the {stage} round within {} ms", self.timeout_ms);
            tracing::warn!(network = %state.network, session = state.session, attempt = state.attempt, ?silent, "round timed out");
            let culprits = silent.iter().map(|v| (*v, reason.clone())).collect();
            let outcome = format!("timed out in the {stage} round waiting for {silent:?}");
            self.restart(txn, &mut state, culprits, outcome)?;
            SETS.put(txn, &key, &state)?;
            changed = true;
        }
        Ok(changed)
    }
}

fn response_id(response: &KeyGenResponse) -> KeyGenId {
    match response {
        KeyGenResponse::Commitments { id, .. }
        | KeyGenResponse::Shares { id, .. }
        | KeyGenResponse::Blame { id, .. }
        | KeyGenResponse::GeneratedKeyPair { id, .. }
        | KeyGenResponse::Refused { id, .. } => *id,
    }
}

/// The participants whose settings differ from the set's, each with the settings that
/// differ. The set's settings are those a strict majority of the reporting participants
/// reported; participants running without a node report none and are not compared.
/// Without a strict majority nobody can be told apart from the rest: every reporter is
/// named (against the lowest validator's settings), which leaves the set without enough
/// participants and fails it loudly, for the operators to agree.
pub fn mismatched_settings(
    settings: &BTreeMap<Participant, ChainSettings>,
) -> Vec<(Participant, String)> {
    let mut counts: Vec<(ChainSettings, usize)> = vec![];
    for s in settings.values() {
        match counts.iter_mut().find(|(c, _)| c == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((*s, 1)),
        }
    }
    // `counts` is in validator order of first appearance; `max_by_key` keeps the last
    // maximum, so search from the back for the first.
    let Some((set, most)) = counts.iter().rev().max_by_key(|(_, n)| *n) else { return vec![] };
    if counts.len() > 1 && *most * 2 <= settings.len() {
        return settings
            .iter()
            .map(|(v, s)| {
                let differences = s.differences(set);
                let against = if differences.is_empty() {
                    "its settings".to_string()
                } else {
                    differences.join(", ")
                };
                (*v, format!("no majority of the participants agree on settings ({against})"))
            })
            .collect();
    }
    settings
        .iter()
        .filter(|(_, s)| *s != set)
        .map(|(v, s)| (*v, format!("settings differ: {}", s.differences(set).join(", "))))
        .collect()
}

/// A processor's free-text reason, as recorded: at most 200 characters, control
/// characters replaced (it ends up in logs and the status).
fn bounded(reason: &str) -> String {
    reason.chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect()
}
