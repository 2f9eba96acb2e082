//! The key-generation rules, driven message by message through
//! `KeyGenCoordinator::handle` with opaque payloads (the coordinator never parses
//! commitments or shares; blame, which it does parse, is covered in `keygen.rs`). What it
//! sends is read back from its real outbox and opened as each recipient would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rig;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use coordinator_sim::{
    clock::ManualClock,
    config::SetConfig,
    keygen::{Outcome, SimError},
    status::StatusReport,
    Settings, Sim, SCHEMA,
};
use db::Db;
use messages::{
    CoordinatorMessage, Identity, KeyGenId, KeyGenRequest, KeyGenResponse, KeyRegistry, Party,
    Session, SettlementEvent,
};
use primitives::NetworkId;
use rand_core::OsRng;

const NET: NetworkId = NetworkId::Litecoin;
const TIMEOUT: Duration = Duration::from_secs(60);

struct Rig {
    dir: tempfile::TempDir,
    identity: Arc<Identity>,
    clock: ManualClock,
    sim: Sim,
    seen: BTreeSet<(u32, u64)>,
}

fn set(session: u32, threshold: u16, n: u16) -> SetConfig {
    SetConfig { network: NET, session, threshold, validators: (1..=n).collect() }
}

fn p(validator: u16) -> Party {
    Party::Processor { network: NET, validator }
}

fn id(session: u32, attempt: u32) -> KeyGenId {
    KeyGenId { session: Session(session), attempt }
}

impl Rig {
    /// Session 0: 3-of-{1..4}; session 1: 3-of-{1..5}.
    fn new() -> Self {
        Self::with(vec![set(0, 3, 4), set(1, 3, 5)])
    }

    fn with(sets: Vec<SetConfig>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let identity = Arc::new(Identity::generate(&mut OsRng));
        let clock = ManualClock::new(1_000_000);
        let sim = Self::open(&dir, &identity, &clock, sets).unwrap();
        Rig { dir, identity, clock, sim, seen: BTreeSet::new() }
    }

    fn open(
        dir: &tempfile::TempDir,
        identity: &Arc<Identity>,
        clock: &ManualClock,
        sets: Vec<SetConfig>,
    ) -> Result<Sim, SimError> {
        let db = Db::open(dir.path().join("sim.redb"), SCHEMA).unwrap();
        let settings = Settings { keygen_timeout: TIMEOUT, ..Settings::new(sets) };
        let sim = Sim::new(
            db,
            identity.clone(),
            KeyRegistry::new(),
            settings,
            Arc::new(clock.clone()),
            &mut prometheus_client::registry::Registry::default(),
        );
        sim.start()?;
        Ok(sim)
    }

    fn handle(&self, from: u16, response: KeyGenResponse) -> Outcome {
        let mut txn = self.sim.db().write().unwrap();
        let outcome = self.sim.keygen().handle(&mut txn, p(from), &response).unwrap();
        txn.commit().unwrap();
        outcome
    }

    fn status(&self) -> StatusReport {
        StatusReport::read(&self.sim.db().read().unwrap()).unwrap()
    }

    /// Messages queued since the last call, opened by their recipients, in route order.
    fn sent(&mut self) -> Vec<(u16, CoordinatorMessage)> {
        rig::opened_since(&self.sim, &self.identity, &mut self.seen)
    }

    /// Session 0, attempt `attempt`: every participant's commitments are `c<v>`.
    fn commit_all(&self, attempt: u32, participants: &[u16]) {
        for v in participants {
            let commitments = format!("c{v}").into_bytes();
            assert_eq!(
                self.handle(*v, KeyGenResponse::Commitments { id: id(0, attempt), commitments }),
                Outcome::Progress
            );
        }
    }

    /// Session 0: every participant's share for `r` is `<v>-><r>`.
    fn share_all(&self, attempt: u32, participants: &[u16]) {
        for v in participants {
            let shares = participants
                .iter()
                .filter(|r| *r != v)
                .map(|r| (*r, format!("{v}->{r}").into_bytes()))
                .collect();
            assert_eq!(
                self.handle(*v, KeyGenResponse::Shares { id: id(0, attempt), shares }),
                Outcome::Progress
            );
        }
    }
}

fn bytes(pairs: &[(u16, &str)]) -> BTreeMap<u16, Vec<u8>> {
    pairs.iter().map(|(v, s)| (*v, s.as_bytes().to_vec())).collect()
}

#[test]
fn rounds_are_relayed_once_complete_and_the_agreed_pair_is_confirmed() {
    let mut rig = Rig::new();
    let start = rig.sent();
    assert_eq!(start.len(), 9, "GenerateKey to 4 + 5 processors");
    for (to, message) in start.iter().filter(|(_, m)| {
        matches!(m, CoordinatorMessage::KeyGen(KeyGenRequest::GenerateKey { id, .. }) if id.session.0 == 0)
    }) {
        let expected = KeyGenRequest::GenerateKey {
            id: id(0, 0),
            network: NET,
            threshold: 3,
            participants: vec![1, 2, 3, 4],
            me: *to,
        };
        assert_eq!(*message, CoordinatorMessage::KeyGen(expected));
    }

    rig.commit_all(0, &[1, 2, 3]);
    assert!(rig.sent().is_empty(), "relayed before every commitment was in");
    assert_eq!(rig.status().sets[0].waiting_for, vec![4]);
    rig.commit_all(0, &[4]);
    let relayed = rig.sent();
    assert_eq!(relayed.len(), 4);
    for (to, message) in relayed {
        let others: Vec<_> = [1, 2, 3, 4].into_iter().filter(|v| *v != to).collect();
        let commitments = others.iter().map(|v| (*v, format!("c{v}").into_bytes())).collect();
        let expected = KeyGenRequest::Commitments { id: id(0, 0), commitments };
        assert_eq!(message, CoordinatorMessage::KeyGen(expected));
    }

    rig.share_all(0, &[1, 2, 3, 4]);
    let relayed = rig.sent();
    assert_eq!(relayed.len(), 4);
    for (to, message) in relayed {
        let shares = [1, 2, 3, 4]
            .into_iter()
            .filter(|v| *v != to)
            .map(|v| (v, format!("{v}->{to}").into_bytes()))
            .collect();
        assert_eq!(
            message,
            CoordinatorMessage::KeyGen(KeyGenRequest::Shares { id: id(0, 0), shares })
        );
    }

    // The proposals differ (and one processor has none): the lower median of those made,
    // [120, 130, 500] -> 130, is what every participant is told to scan from.
    let proposals = [Some(130), None, Some(500), Some(120)];
    for v in [1, 2, 3, 4] {
        let pair = KeyGenResponse::GeneratedKeyPair {
            id: id(0, 0),
            ristretto_key: [9; 32],
            network_key: vec![3; 33],
            proposed_activation: proposals[usize::from(v) - 1],
            settings: None,
        };
        assert_eq!(rig.handle(v, pair), Outcome::Progress);
    }
    let confirms = rig.sent();
    assert_eq!(confirms.iter().map(|(to, _)| *to).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    for (_, message) in confirms {
        let event = SettlementEvent::ConfirmKeyPair {
            session: Session(0),
            ristretto_key: [9; 32],
            network_key: vec![3; 33],
            activation_block: Some(130),
            // Nobody reported settings (keys only).
            settings: None,
        };
        assert_eq!(message, CoordinatorMessage::Settlement(event));
    }
    let s = rig.status().sets[0].clone();
    assert_eq!(s.stage, "confirmed");
    let keys = s.confirmed.unwrap();
    assert_eq!(
        (keys.ristretto_key, keys.network_key, keys.activation_block),
        (hex::encode([9; 32]), hex::encode([3; 33]), Some(130))
    );
    // Session 1 was untouched by all of this.
    assert_eq!(rig.status().sets[1].stage, "commitments");
}

#[test]
fn a_conflict_mid_round_is_counted_and_the_first_message_stands() {
    let mut rig = Rig::new();
    rig.sent();
    let first = KeyGenResponse::Commitments { id: id(0, 0), commitments: b"first".to_vec() };
    assert_eq!(rig.handle(1, first.clone()), Outcome::Progress);
    assert_eq!(rig.handle(1, first), Outcome::Duplicate);
    let second = KeyGenResponse::Commitments { id: id(0, 0), commitments: b"second".to_vec() };
    assert_eq!(rig.handle(1, second), Outcome::Conflict);
    assert_eq!(rig.status().conflicts, 1);
    rig.commit_all(0, &[2, 3, 4]);
    let relayed = rig.sent();
    let (_, to_2) = relayed.iter().find(|(to, _)| *to == 2).unwrap();
    let CoordinatorMessage::KeyGen(KeyGenRequest::Commitments { commitments, .. }) = to_2 else {
        panic!("{to_2:?}")
    };
    assert_eq!(commitments[&1], b"first");

    // After its shares, a blame is the sender's round-3 answer: not a conflict (it is
    // judged, unfounded, and excludes its sender).
    let shares = bytes(&[(2, "1->2"), (3, "1->3"), (4, "1->4")]);
    assert_eq!(rig.handle(1, KeyGenResponse::Shares { id: id(0, 0), shares }), Outcome::Progress);
    let blame = KeyGenResponse::Blame { id: id(0, 0), accused: 2, evidence: vec![] };
    assert_eq!(rig.handle(1, blame), Outcome::Progress);
    assert_eq!(rig.status().conflicts, 1);
    assert_eq!(rig.status().sets[0].excluded[0].validator, 1);
    // Different shares for the round it already answered: a conflict.
    let other_shares =
        KeyGenResponse::Shares { id: id(0, 0), shares: bytes(&[(2, "x"), (3, "y"), (4, "z")]) };
    assert_eq!(rig.handle(1, other_shares), Outcome::Conflict);
    assert_eq!(rig.status().conflicts, 2);
    // The counter survives a restart of the simulator.
    drop(rig.sim);
    let sim = Rig::open(&rig.dir, &rig.identity, &rig.clock, vec![set(0, 3, 4), set(1, 3, 5)]);
    assert_eq!(StatusReport::read(&sim.unwrap().db().read().unwrap()).unwrap().conflicts, 2);
}

#[test]
fn strangers_unknown_sessions_and_stale_attempts_change_nothing() {
    let mut rig = Rig::new();
    rig.sent();
    let before = rig.status();
    let c = |session, attempt| KeyGenResponse::Commitments {
        id: id(session, attempt),
        commitments: vec![1],
    };
    // Validator 5 is in session 1's set, not session 0's.
    assert_eq!(rig.handle(5, c(0, 0)), Outcome::Ignored("not_in_set"));
    assert_eq!(rig.handle(1, c(7, 0)), Outcome::Ignored("unknown_session"));
    assert_eq!(rig.handle(1, c(0, 3)), Outcome::Ignored("other_attempt"));
    let mut txn = rig.sim.db().write().unwrap();
    let coordinator = rig.sim.keygen().handle(&mut txn, Party::Coordinator, &c(0, 0)).unwrap();
    assert_eq!(coordinator, Outcome::Ignored("not_a_processor"));
    // A processor of another network with the same session number.
    let bitcoin = Party::Processor { network: NetworkId::Bitcoin, validator: 1 };
    assert_eq!(
        rig.sim.keygen().handle(&mut txn, bitcoin, &c(0, 0)).unwrap(),
        Outcome::Ignored("unknown_session")
    );
    txn.commit().unwrap();
    assert_eq!(rig.status(), before);
    assert!(rig.sent().is_empty());
}

#[test]
fn disagreeing_key_pairs_restart_with_the_same_participants() {
    let mut rig = Rig::new();
    rig.commit_all(0, &[1, 2, 3, 4]);
    rig.share_all(0, &[1, 2, 3, 4]);
    rig.sent();
    for v in [1, 2, 3, 4] {
        let pair = KeyGenResponse::GeneratedKeyPair {
            id: id(0, 0),
            ristretto_key: [if v == 4 { 8 } else { 9 }; 32],
            network_key: vec![3; 33],
            proposed_activation: None,
            settings: None,
        };
        rig.handle(v, pair);
    }
    let s = rig.status().sets[0].clone();
    assert_eq!((s.attempt, s.stage.as_str()), (1, "commitments"));
    assert_eq!(s.participants, vec![1, 2, 3, 4]);
    assert!(s.excluded.is_empty());
    assert!(s.confirmed.is_none());
    assert!(s.history[0].outcome.starts_with("key pairs disagreed"), "{}", s.history[0].outcome);
    let sent = rig.sent();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|(_, m)| matches!(m,
        CoordinatorMessage::KeyGen(KeyGenRequest::GenerateKey { id, participants, .. })
            if id.attempt == 1 && participants == &vec![1, 2, 3, 4])));
    // Attempt 0's key pairs are now stale.
    let late = KeyGenResponse::Commitments { id: id(0, 0), commitments: vec![5] };
    assert_eq!(rig.handle(1, late), Outcome::Conflict, "attempt 0 round 1 was c1");
}

#[test]
fn malformed_shares_and_premature_blame_exclude_their_sender() {
    let mut rig = Rig::new();
    // A blame before any commitments were relayed cannot be founded.
    let blame = KeyGenResponse::Blame { id: id(0, 0), accused: 1, evidence: vec![] };
    assert_eq!(rig.handle(2, blame), Outcome::Progress);
    let s = rig.status().sets[0].clone();
    assert_eq!((s.attempt, s.participants.clone()), (1, vec![1, 3, 4]));
    assert_eq!(s.excluded[0].validator, 2);
    assert!(s.excluded[0].reason.contains("before any commitments"), "{}", s.excluded[0].reason);

    rig.commit_all(1, &[1, 3, 4]);
    // Shares addressed to a non-participant (and missing one).
    let shares = bytes(&[(2, "x"), (3, "y")]);
    assert_eq!(rig.handle(1, KeyGenResponse::Shares { id: id(0, 1), shares }), Outcome::Progress);
    let s = rig.status().sets[0].clone();
    // Two participants remain, below the threshold of 3: the set fails, loudly.
    assert_eq!(s.participants, vec![3, 4]);
    assert_eq!(
        s.excluded.iter().map(|e| (e.validator, e.attempt)).collect::<Vec<_>>(),
        vec![(2, 0), (1, 1)]
    );
    assert!(s.failed);
    assert_eq!(s.stage, "failed");
    rig.sent();
    assert_eq!(
        rig.handle(3, KeyGenResponse::Commitments { id: id(0, 2), commitments: vec![1] }),
        Outcome::Ignored("ended")
    );
    assert!(rig.sent().is_empty());
}

#[test]
fn a_round_times_out_on_the_stored_clock_even_across_a_restart() {
    let sets = || vec![set(0, 3, 4)];
    let mut rig = Rig::with(sets());
    let timeout = TIMEOUT.as_millis() as u64;
    rig.commit_all(0, &[1, 2]);
    rig.clock.advance(timeout - 1);
    let due = |rig: &Rig| rig.sim.keygen().timeout_due(&rig.sim.db().read().unwrap()).unwrap();
    assert!(!due(&rig));
    rig.commit_all(0, &[3]); // progress: the deadline moves
    rig.clock.advance(timeout - 1);
    assert!(!due(&rig));

    // A restart keeps the remaining time.
    drop(rig.sim);
    rig.sim = Rig::open(&rig.dir, &rig.identity, &rig.clock, sets()).unwrap();
    assert!(!due(&rig));
    rig.clock.advance(1);
    assert!(due(&rig));
    rig.sent();
    let mut txn = rig.sim.db().write().unwrap();
    assert!(rig.sim.keygen().check_timeouts(&mut txn).unwrap());
    txn.commit().unwrap();
    let s = rig.status().sets[0].clone();
    assert_eq!((s.attempt, s.participants.clone()), (1, vec![1, 2, 3]));
    assert_eq!(s.excluded[0].validator, 4);
    assert_eq!(s.history[0].outcome, "timed out in the commitments round waiting for [4]");
    let sent: Vec<u16> = rig.sent().into_iter().map(|(to, _)| to).collect();
    assert_eq!(sent, vec![1, 2, 3], "GenerateKey for attempt 1");

    // Down for longer than the timeout: a full timeout from the restart, not instant blame.
    drop(rig.sim);
    rig.clock.advance(10 * timeout);
    rig.sim = Rig::open(&rig.dir, &rig.identity, &rig.clock, sets()).unwrap();
    assert!(!due(&rig));
    rig.clock.advance(timeout);
    assert!(due(&rig));
}

#[test]
fn a_changed_set_is_refused_at_startup() {
    let rig = Rig::new();
    drop(rig.sim);
    let changed = Rig::open(&rig.dir, &rig.identity, &rig.clock, vec![set(0, 2, 4)]);
    let Err(e) = changed else { panic!("a changed threshold was accepted") };
    assert!(e.is_fatal());
    assert!(e.to_string().contains("threshold 3 of [1, 2, 3, 4]"), "{e}");
}

/// Litecoin's default settings.
fn ltc_settings() -> messages::ChainSettings {
    messages::ChainSettings {
        confirmations: 12,
        max_inputs: 500,
        max_outputs: 500,
        dust: 10_000,
        min_fee_rate: 10_000,
        max_fee_rate: 1_000_000,
        max_money: 84_000_000 * 100_000_000,
    }
}

/// Runs attempt 0's first two rounds among [1, 2, 3, 4], then has each report the same key
/// pair with its `settings`; returns what coordinator-sim sent in answer.
fn key_pairs_with(
    rig: &mut Rig,
    settings: [Option<messages::ChainSettings>; 4],
) -> Vec<(u16, CoordinatorMessage)> {
    rig.sent();
    rig.commit_all(0, &[1, 2, 3, 4]);
    rig.share_all(0, &[1, 2, 3, 4]);
    rig.sent();
    for (v, settings) in (1..=4).zip(settings) {
        let pair = KeyGenResponse::GeneratedKeyPair {
            id: id(0, 0),
            ristretto_key: [9; 32],
            network_key: vec![3; 33],
            proposed_activation: Some(100),
            settings,
        };
        assert_eq!(rig.handle(v, pair), Outcome::Progress);
    }
    let sent = rig.sent();
    assert!(
        !sent.iter().any(|(_, m)| matches!(m, CoordinatorMessage::Settlement(_))),
        "a key confirmed despite different settings: {sent:?}"
    );
    sent
}

/// The settings every processor of a set must share travel with the key pair: one
/// validator whose confirmations and dust differ from the others' is excluded (the key is
/// not confirmed), named with the settings that differ, and the set reattempts without
/// it. A processor without a node (no settings) is not compared.
#[test]
fn a_participant_with_other_settings_is_excluded_and_named() {
    let mut rig = Rig::new();
    let set = ltc_settings();
    let other = messages::ChainSettings { confirmations: 6, dust: 5_000, ..set };
    let sent = key_pairs_with(&mut rig, [Some(set), Some(other), None, Some(set)]);
    let s = rig.status().sets[0].clone();
    assert_eq!(s.attempt, 1);
    assert_eq!(s.participants, vec![1, 3, 4]);
    let excluded = &s.excluded[0];
    assert_eq!((excluded.validator, excluded.attempt), (2, 0));
    assert!(
        excluded.reason.contains("confirmations 6 (the set's 12)")
            && excluded.reason.contains("dust 5000 (the set's 10000)"),
        "{}",
        excluded.reason
    );
    // The next attempt goes to the others only.
    let restarted: Vec<u16> = sent
        .iter()
        .filter(|(_, m)| matches!(m, CoordinatorMessage::KeyGen(KeyGenRequest::GenerateKey { .. })))
        .map(|(to, _)| *to)
        .collect();
    assert_eq!(restarted, vec![1, 3, 4]);
}

/// Two against two: no strict majority agrees on the settings, so nobody can be told
/// apart from the rest: every reporter is excluded with that reason and the set fails
/// loudly, instead of naming two possibly correct validators as culprits.
#[test]
fn settings_without_a_majority_fail_the_set_loudly() {
    let mut rig = Rig::new();
    let a = ltc_settings();
    let b = messages::ChainSettings { confirmations: 6, ..a };
    key_pairs_with(&mut rig, [Some(a), Some(b), Some(a), Some(b)]);
    let s = rig.status().sets[0].clone();
    assert!(s.failed, "{s:?}");
    assert_eq!(s.excluded.len(), 4);
    assert!(s.excluded.iter().all(|e| e.reason.contains("no majority")), "{:?}", s.excluded);
}
