//! The nonce rule as a property: random interleavings of start, the coordinator's
//! requests (right, wrong, stale, duplicated), aborted transactions, restarts (a new
//! manager on the reopened database) and completion, with a fake in-memory machine whose
//! bytes name the nonces they come from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use db::{Db, Schema};
use messages::{Participant, Session, SignId, SignKind, SignRequest, SignResponse};
use proptest::prelude::*;
use signers::{Completing, Handled, Machine, SignFailure, Signers, Signing};

const SCHEMA: Schema = Schema { app: "tc-signers-prop", version: 1 };
const SESSION: Session = Session(1);
const ME: Participant = 1;
const OTHER: Participant = 2;
const KINDS: [SignKind; 3] = [SignKind::Batch(0), SignKind::Batch(1), SignKind::Plan([7; 32])];
/// Bytes from the other signer that the fake machines reject (blame).
const BAD: &[u8] = b"bad";

static NONCES: AtomicU64 = AtomicU64::new(1);

/// Preprocess = `P || nonce`, share = `S || nonce`, signed item = `nonce`.
struct Fake;
struct FakeSigning(u64);
struct FakeCompleting(u64);

fn tagged(tag: u8, nonce: u64) -> Vec<u8> {
    [&[tag][..], &nonce.to_le_bytes()].concat()
}

fn untag(tag: u8, bytes: &[u8]) -> u64 {
    assert_eq!(bytes.len(), 9);
    assert_eq!(bytes[0], tag);
    u64::from_le_bytes(bytes[1..].try_into().unwrap())
}

fn check(others: &HashMap<Participant, Vec<u8>>) -> Result<(), SignFailure> {
    assert!(!others.contains_key(&ME), "our own message must be removed");
    match others.iter().find(|(_, b)| b.as_slice() == BAD) {
        Some((p, _)) => Err(SignFailure::Blame(*p)),
        None => Ok(()),
    }
}

impl Machine for Fake {
    fn preprocess(self: Box<Self>) -> (Box<dyn Signing>, Vec<u8>) {
        let nonce = NONCES.fetch_add(1, Ordering::Relaxed);
        (Box::new(FakeSigning(nonce)), tagged(b'P', nonce))
    }
}

impl Signing for FakeSigning {
    fn sign(
        self: Box<Self>,
        others: HashMap<Participant, Vec<u8>>,
    ) -> Result<(Box<dyn Completing>, Vec<u8>), SignFailure> {
        check(&others)?;
        Ok((Box::new(FakeCompleting(self.0)), tagged(b'S', self.0)))
    }
}

impl Completing for FakeCompleting {
    fn complete(
        self: Box<Self>,
        shares: HashMap<Participant, Vec<u8>>,
    ) -> Result<Vec<u8>, SignFailure> {
        check(&shares)?;
        Ok(self.0.to_le_bytes().to_vec())
    }
}

#[derive(Clone, Debug)]
enum Op {
    Start {
        kind: usize,
        commit: bool,
    },
    /// `ours_real`: the coordinator echoes the preprocess we sent for that attempt (if
    /// any) rather than someone else's bytes; `bad`: the other signer misbehaves.
    Preprocesses {
        kind: usize,
        attempt: u32,
        ours_real: bool,
        bad: bool,
        commit: bool,
    },
    Shares {
        kind: usize,
        attempt: u32,
        ours_real: bool,
        bad: bool,
        commit: bool,
    },
    Reattempt {
        kind: usize,
        attempt: u32,
        commit: bool,
    },
    Restart,
    Complete {
        kind: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    // One kind in four is unknown to the machine factory.
    let kind = 0..4usize;
    let attempt = 0..5u32;
    let commit = prop::bool::weighted(0.85);
    let flags = || (prop::bool::weighted(0.8), prop::bool::weighted(0.1), commit);
    prop_oneof![
        3 => (kind.clone(), commit).prop_map(|(kind, commit)| Op::Start { kind, commit }),
        4 => (kind.clone(), attempt.clone(), flags())
            .prop_map(|(kind, attempt, (ours_real, bad, commit))| {
                Op::Preprocesses { kind, attempt, ours_real, bad, commit }
            }),
        4 => (kind.clone(), attempt.clone(), flags())
            .prop_map(|(kind, attempt, (ours_real, bad, commit))| {
                Op::Shares { kind, attempt, ours_real, bad, commit }
            }),
        3 => (kind.clone(), attempt, commit)
            .prop_map(|(kind, attempt, commit)| Op::Reattempt { kind, attempt, commit }),
        1 => Just(Op::Restart),
        1 => kind.prop_map(|kind| Op::Complete { kind }),
    ]
}

fn kind_of(i: usize) -> SignKind {
    KINDS.get(i).copied().unwrap_or(SignKind::Batch(99))
}

/// What a correct manager's in-memory state must be, derived from its outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    Pre(u64),
    Shared(u64),
    Done,
}

#[derive(Default)]
struct Model {
    /// Every preprocess that left (committed), across lifetimes, by (kind, attempt).
    sent: HashMap<(SignKind, u32), Vec<u8>>,
    /// Our shares that left, by (kind, attempt).
    shares: HashMap<(SignKind, u32), Vec<u8>>,
    /// Preprocesses released in this process lifetime (committed), with their nonce.
    lifetime: HashMap<(SignKind, u32), u64>,
    /// The manager's in-memory attempts per kind, as its outputs imply: a release drops
    /// every older attempt that did not share, and keeps the latest
    /// `signers::attempts::KEPT_ATTEMPTS` in all.
    current: HashMap<SignKind, BTreeMap<u32, Stage>>,
    /// Highest committed attempt per kind.
    latest: HashMap<SignKind, u32>,
    /// Nonces that produced a share (committed or not).
    used: HashSet<u64>,
    complete: HashSet<SignKind>,
}

impl Model {
    fn preprocess(&mut self, id: SignId, preprocess: Vec<u8>, commit: bool) {
        assert_eq!(id.session, SESSION);
        assert!(!self.complete.contains(&id.kind), "a preprocess for a complete kind");
        let nonce = untag(b'P', &preprocess);
        let attempts = self.current.entry(id.kind).or_default();
        attempts.retain(|_, stage| matches!(stage, Stage::Shared(_)));
        while attempts.len() > signers::attempts::KEPT_ATTEMPTS {
            attempts.pop_first();
        }
        attempts.insert(id.attempt, Stage::Pre(nonce));
        if commit {
            let key = (id.kind, id.attempt);
            assert!(!self.sent.contains_key(&key), "preprocess for {key:?} released twice");
            let latest = self.latest.entry(id.kind).or_insert(id.attempt);
            assert!(id.attempt >= *latest, "went back to an older attempt");
            *latest = id.attempt;
            self.sent.insert(key, preprocess);
            self.lifetime.insert(key, nonce);
        }
    }

    fn share(&mut self, id: SignId, share: &[u8], commit: bool) {
        assert!(!self.complete.contains(&id.kind), "a share for a complete kind");
        let nonce = untag(b'S', share);
        let key = (id.kind, id.attempt);
        assert_eq!(
            self.lifetime.get(&key),
            Some(&nonce),
            "a share for {key:?} from nonces not released for it in this lifetime"
        );
        assert!(self.used.insert(nonce), "nonce {nonce} used for two shares");
        self.current.entry(id.kind).or_default().insert(id.attempt, Stage::Shared(nonce));
        if commit {
            self.shares.insert(key, share.to_vec());
        }
    }

    fn stage(&self, kind: SignKind, attempt: u32) -> Option<Stage> {
        self.current.get(&kind).and_then(|attempts| attempts.get(&attempt)).copied()
    }

    fn done(&mut self, id: SignId) {
        self.current.entry(id.kind).or_default().insert(id.attempt, Stage::Done);
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prop.redb");
    let mut db = Some(Db::open(&path, SCHEMA).unwrap());
    let mut signers = Signers::new(SESSION, ME);
    let mut model = Model::default();
    let factory = |kind: SignKind| -> Option<Box<dyn Machine>> {
        KINDS.contains(&kind).then(|| Box::new(Fake) as Box<dyn Machine>)
    };

    for op in ops {
        let txn_db = db.as_ref().unwrap();
        match op {
            Op::Restart => {
                drop(db.take());
                signers = Signers::new(SESSION, ME);
                db = Some(Db::open(&path, SCHEMA).unwrap());
                model.lifetime.clear();
                model.current.clear();
            }
            Op::Complete { kind } => {
                let kind = kind_of(kind);
                let mut txn = txn_db.write().unwrap();
                signers.complete(&mut txn, kind).unwrap();
                txn.commit().unwrap();
                model.complete.insert(kind);
                model.current.remove(&kind);
            }
            Op::Start { kind, commit } => {
                let kind = kind_of(kind);
                let mut txn = txn_db.write().unwrap();
                let out = signers.start(&mut txn, kind, Box::new(Fake)).unwrap();
                let expected = !model.complete.contains(&kind) && !model.latest.contains_key(&kind);
                match out {
                    Some(SignResponse::Preprocess { id, preprocess }) => {
                        assert!(expected, "start released a preprocess it must not");
                        assert_eq!((id.kind, id.attempt), (kind, 0));
                        model.preprocess(id, preprocess, commit);
                    }
                    None => assert!(!expected, "start of a fresh item released nothing"),
                    Some(other) => panic!("start returned {other:?}"),
                }
                if commit {
                    txn.commit().unwrap();
                }
            }
            Op::Reattempt { kind, attempt, commit } => {
                let kind = kind_of(kind);
                let id = SignId { session: SESSION, kind, attempt };
                let mut txn = txn_db.write().unwrap();
                let handled =
                    signers.handle(&mut txn, &SignRequest::Reattempt { id }, factory).unwrap();
                let expected = KINDS.contains(&kind)
                    && !model.complete.contains(&kind)
                    && model.latest.get(&kind).is_none_or(|l| attempt > *l);
                match handled {
                    Handled::Reply(SignResponse::Preprocess { id: got, preprocess }) => {
                        assert!(expected, "answered a reattempt it must not: {id:?}");
                        assert_eq!(got, id);
                        model.preprocess(id, preprocess, commit);
                    }
                    Handled::Ignored(_) => assert!(!expected, "ignored a fresh reattempt {id:?}"),
                    other => panic!("reattempt gave {other:?}"),
                }
                if commit {
                    txn.commit().unwrap();
                }
            }
            Op::Preprocesses { kind, attempt, ours_real, bad, commit } => {
                let kind = kind_of(kind);
                let id = SignId { session: SESSION, kind, attempt };
                let real = model.sent.get(&(kind, attempt)).filter(|_| ours_real).cloned();
                let echoed = real.is_some();
                let ours = real.unwrap_or_else(|| tagged(b'P', 0));
                let other = if bad { BAD.to_vec() } else { b"other preprocess".to_vec() };
                let request = SignRequest::Preprocesses {
                    id,
                    preprocesses: BTreeMap::from([(ME, ours), (OTHER, other)]),
                };
                let mut txn = txn_db.write().unwrap();
                let handled = signers.handle(&mut txn, &request, factory).unwrap();
                let live = echoed
                    && !model.complete.contains(&kind)
                    && matches!(model.stage(kind, attempt), Some(Stage::Pre(n))
                        if model.lifetime.get(&(kind, attempt)) == Some(&n));
                match handled {
                    Handled::Reply(SignResponse::Share { id: got, share }) => {
                        assert_eq!(got, id);
                        assert!(!bad);
                        model.share(id, &share, commit);
                    }
                    Handled::Reply(SignResponse::Blame { id: got, accused }) => {
                        assert_eq!((got, accused), (id, OTHER));
                        assert!(bad && live, "blame without a live machine");
                        model.done(id);
                    }
                    Handled::Ignored(_) => {
                        assert!(!live, "ignored the preprocesses of a live attempt")
                    }
                    other => panic!("preprocesses gave {other:?}"),
                }
                if live && !bad {
                    assert!(matches!(model.stage(kind, attempt), Some(Stage::Shared(_))));
                }
                if commit {
                    txn.commit().unwrap();
                }
            }
            Op::Shares { kind, attempt, ours_real, bad, commit } => {
                let kind = kind_of(kind);
                let id = SignId { session: SESSION, kind, attempt };
                let real = model.shares.get(&(kind, attempt)).filter(|_| ours_real).cloned();
                let echoed = real.is_some();
                let ours = real.unwrap_or_else(|| tagged(b'S', 0));
                let other = if bad { BAD.to_vec() } else { b"other share".to_vec() };
                let request = SignRequest::Shares {
                    id,
                    shares: BTreeMap::from([(ME, ours), (OTHER, other)]),
                };
                let mut txn = txn_db.write().unwrap();
                let handled = signers.handle(&mut txn, &request, factory).unwrap();
                let state = model.stage(kind, attempt);
                let live =
                    !model.complete.contains(&kind) && matches!(state, Some(Stage::Shared(_)));
                match handled {
                    Handled::Signed { id: got, signed } => {
                        assert_eq!(got, id);
                        assert!(live && !bad, "signed without a live machine");
                        let Some(Stage::Shared(nonce)) = state else { unreachable!() };
                        assert_eq!(signed, nonce.to_le_bytes().to_vec());
                        model.done(id);
                    }
                    Handled::Reply(SignResponse::Blame { id: got, accused }) => {
                        assert_eq!((got, accused), (id, OTHER));
                        assert!(live && bad, "blame without a live machine");
                        model.done(id);
                    }
                    Handled::Ignored(_) => {
                        assert!(!(live && echoed), "ignored the shares of a live attempt")
                    }
                    other => panic!("shares gave {other:?}"),
                }
                if commit {
                    txn.commit().unwrap();
                }
            }
        }
        // The database agrees with what left.
        let read = db.as_ref().unwrap().read().unwrap();
        for (kind, attempt) in model.sent.keys() {
            assert!(Signers::attempted(
                &read,
                &SignId { session: SESSION, kind: *kind, attempt: *attempt }
            )
            .unwrap());
        }
        let status = Signers::attempts(&read, SESSION).unwrap();
        let expected: Vec<_> = (0..4)
            .map(kind_of)
            .filter_map(|k| model.latest.get(&k).map(|l| (k, *l, model.complete.contains(&k))))
            .collect();
        let mut status_sorted = status.clone();
        status_sorted.sort();
        let mut expected_sorted = expected;
        expected_sorted.sort();
        assert_eq!(status_sorted, expected_sorted);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn no_attempt_is_preprocessed_twice_and_shares_use_this_lifetimes_nonces(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        run(ops);
    }
}

/// A scripted run through every rule, so that the property's generator is known to reach
/// them: restart mid-attempt, stale and duplicate requests, blame, completion.
#[test]
fn scripted_sequence() {
    use Op::*;
    run(vec![
        Start { kind: 0, commit: true },
        Preprocesses { kind: 0, attempt: 0, ours_real: true, bad: false, commit: true },
        Preprocesses { kind: 0, attempt: 0, ours_real: true, bad: false, commit: true },
        Restart,
        Start { kind: 0, commit: true },
        Shares { kind: 0, attempt: 0, ours_real: true, bad: false, commit: true },
        Reattempt { kind: 0, attempt: 0, commit: true },
        Reattempt { kind: 0, attempt: 2, commit: false },
        Reattempt { kind: 0, attempt: 1, commit: true },
        Preprocesses { kind: 0, attempt: 1, ours_real: true, bad: true, commit: true },
        Reattempt { kind: 0, attempt: 2, commit: true },
        Preprocesses { kind: 0, attempt: 2, ours_real: true, bad: false, commit: true },
        Shares { kind: 0, attempt: 2, ours_real: true, bad: false, commit: true },
        Shares { kind: 0, attempt: 2, ours_real: true, bad: false, commit: true },
        Complete { kind: 0 },
        Reattempt { kind: 0, attempt: 3, commit: true },
        Start { kind: 1, commit: false },
        Start { kind: 1, commit: true },
        Reattempt { kind: 3, attempt: 1, commit: true },
    ]);
}
