//! The signing rig: a real simulator on a redb file driven message by message, a real
//! 3-of-4 key pair from a real DKG, and what the simulator sends opened as each recipient
//! would. Shared by the signing and blame tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unused_imports)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, OnceLock},
    time::Duration,
};

use bitcoin_address::{Address, AddressParams};
use bus::Mailbox;
use std::collections::HashMap;

use ciphersuite::group::ff::PrimeField;
use coordinator_sim::config::Selection;
use coordinator_sim::{
    clock::ManualClock,
    config::SetConfig,
    http::HttpState,
    ledger::{BurnRequest, LedgerReport},
    signing::{signing_set, SignOutcome},
    status::StatusReport,
    Settings, Sim, SCHEMA,
};
use db::Db;
use key_gen::{
    dkg::{commitments, complete, shares, KeyGenParams},
    GeneratedKeys,
};
use messages::{
    open, BatchReport, Content, CoordinatorMessage, Identity, KeyGenId, KeyGenResponse,
    KeyRegistry, Party, Session, SettlementEvent, SignId, SignKind, SignRequest, SignResponse,
};
use modular_frost::curve::{Ciphersuite, Ristretto};
use primitives::{
    Amount, Balance, Batch, BlockHash, Coin, InInstruction, InInstructionWithBalance, NetworkId,
    Payment, SettlementAccount,
};
use rand_core::OsRng;
use signers::{batch_machine, Signing};

pub const NET: NetworkId = NetworkId::Litecoin;
pub const SIGN_TIMEOUT: Duration = Duration::from_secs(30);
pub const HOLDERS: [u16; 4] = [1, 2, 3, 4];

/// A real 3-of-4 DKG for session 0 (computed once per test binary): every validator's
/// round-1 message and keys.
type Dkg = (BTreeMap<u16, Vec<u8>>, BTreeMap<u16, GeneratedKeys>);

fn dkg() -> &'static Dkg {
    static DKG: OnceLock<Dkg> = OnceLock::new();
    DKG.get_or_init(|| {
        let params = |me| KeyGenParams {
            id: KeyGenId { session: Session(0), attempt: 0 },
            network: NET,
            threshold: 3,
            participants: HOLDERS.to_vec(),
            me,
        };
        let entropy = |v: u16| [v as u8; 32];
        let r1: BTreeMap<u16, Vec<u8>> =
            HOLDERS.iter().map(|v| (*v, commitments(&entropy(*v), &params(*v)).unwrap())).collect();
        let others = |me: u16| -> BTreeMap<u16, Vec<u8>> {
            r1.iter().filter(|(v, _)| **v != me).map(|(v, m)| (*v, m.clone())).collect()
        };
        let r2: BTreeMap<u16, BTreeMap<u16, Vec<u8>>> = HOLDERS
            .iter()
            .map(|v| (*v, shares(&entropy(*v), &params(*v), &others(*v)).unwrap().unwrap()))
            .collect();
        let keys = HOLDERS
            .iter()
            .map(|me| {
                let inbound =
                    r2.iter().filter(|(s, _)| *s != me).map(|(s, m)| (*s, m[me].clone())).collect();
                let keys =
                    complete(&entropy(*me), &params(*me), &others(*me), &inbound, None).unwrap();
                (*me, keys.unwrap())
            })
            .collect();
        (r1, keys)
    })
}

/// The real 3-of-4 key pair of session 0, by validator.
pub fn keys() -> &'static BTreeMap<u16, GeneratedKeys> {
    &dkg().1
}

/// The round-1 message each validator sent to make [`keys`].
pub fn round1() -> &'static BTreeMap<u16, Vec<u8>> {
    &dkg().0
}

pub fn ristretto_key() -> [u8; 32] {
    keys()[&1].ristretto_key()
}

/// A real signature of `batch` by validators 1, 2 and 3.
pub fn sign_batch(batch: &Batch) -> [u8; 64] {
    let signers: Vec<_> = [1u16, 2, 3].iter().map(|v| keys()[v].ristretto.clone()).collect();
    let signature = key_gen::testing::sign::<_, signers::batch::BatchHram>(
        &signers,
        &signers::batch::message(batch),
    );
    signers::batch::signature_bytes(&signature)
}

pub fn account(a: u8) -> [u8; 32] {
    [a; 32]
}

pub fn batch(id: u32, deposits: &[(u8, u64)]) -> Batch {
    Batch {
        network: NET,
        session: 0,
        id,
        block: BlockHash([id as u8 + 100; 32]),
        number: u64::from(id) + 100,
        instructions: deposits
            .iter()
            .map(|(a, amount)| InInstructionWithBalance {
                instruction: InInstruction {
                    account: SettlementAccount(account(*a)),
                    return_address: None,
                },
                balance: Balance { coin: Coin::Litecoin, amount: Amount(*amount) },
            })
            .collect(),
    }
}

pub fn p(validator: u16) -> Party {
    Party::Processor { network: NET, validator }
}

pub fn sid(kind: SignKind, attempt: u32) -> SignId {
    SignId { session: Session(0), kind, attempt }
}

pub fn pre(v: u16, attempt: u32) -> Vec<u8> {
    format!("pre{v}@{attempt}").into_bytes()
}

pub fn share(v: u16, attempt: u32) -> Vec<u8> {
    format!("share{v}@{attempt}").into_bytes()
}

/// A regtest Litecoin P2WPKH address (and its script).
pub fn address(tag: u8) -> (String, Vec<u8>) {
    let mut script = vec![0x00, 0x14];
    script.extend([tag; 20]);
    let address = Address::from_script(bitcoin::ScriptBuf::from_bytes(script.clone())).unwrap();
    (address.display(&AddressParams::from_names("litecoin", "regtest").unwrap()), script)
}

/// The messages `sim` queued that are not in `seen` (added to it), opened by their
/// recipients, in route order.
pub fn opened_since(
    sim: &Sim,
    identity: &Identity,
    seen: &mut BTreeSet<(u32, u64)>,
) -> Vec<(u16, CoordinatorMessage)> {
    let mut registry = KeyRegistry::new();
    registry.insert(Party::Coordinator, identity.public());
    let pending = Mailbox::pending(&sim.db().read().unwrap()).unwrap();
    let mut out = vec![];
    for (key, outgoing) in pending {
        if !seen.insert(key) {
            continue;
        }
        let opened = open(&outgoing.envelope, &registry, outgoing.recipient).unwrap();
        let Content::Coordinator(message) = opened.content else { panic!("not a message") };
        let Party::Processor { validator, .. } = outgoing.recipient else { panic!() };
        out.push((validator, message));
    }
    out
}

pub struct Rig {
    pub selection: Selection,
    pub dir: tempfile::TempDir,
    pub identity: Arc<Identity>,
    pub clock: ManualClock,
    pub sim: Sim,
    pub seen: BTreeSet<(u32, u64)>,
    pub holders: Vec<u16>,
}

impl Rig {
    /// Litecoin session 0, 3-of-{1..4}, its key pair confirmed, the outbox read.
    pub fn confirmed() -> Self {
        Self::confirmed_with(&HOLDERS)
    }

    /// The same with other key holders (3 of them sign), and opaque round-1 messages: the
    /// simulator cannot check signing shares then.
    pub fn confirmed_with(holders: &[u16]) -> Self {
        Self::confirm(holders, |v| vec![v as u8])
    }

    /// [`Rig::confirmed`] with the real round-1 messages that made [`keys`]: the simulator
    /// knows the verification shares and checks Batch shares and blame.
    pub fn confirmed_checking() -> Self {
        Self::confirm(&HOLDERS, |v| round1()[&v].clone())
    }

    fn confirm(holders: &[u16], commitments: impl Fn(u16) -> Vec<u8>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let identity = Arc::new(Identity::generate(&mut OsRng));
        let clock = ManualClock::new(1_000_000);
        let selection = Selection::Responsive;
        let sim = Self::open(&dir, &identity, &clock, holders, selection);
        let holders = holders.to_vec();
        let mut rig = Rig { dir, identity, clock, sim, seen: BTreeSet::new(), holders, selection };
        let id = KeyGenId { session: Session(0), attempt: 0 };
        let all = rig.holders.clone();
        for v in all.iter().copied() {
            rig.keygen(v, KeyGenResponse::Commitments { id, commitments: commitments(v) });
        }
        for v in all.iter().copied() {
            let shares = all.iter().filter(|r| **r != v).map(|r| (*r, vec![*r as u8])).collect();
            rig.keygen(v, KeyGenResponse::Shares { id, shares });
        }
        for v in all.iter().copied() {
            let pair = KeyGenResponse::GeneratedKeyPair {
                id,
                ristretto_key: ristretto_key(),
                network_key: keys()[&1].network_key(),
                proposed_activation: Some(7),
                settings: None,
            };
            rig.keygen(v, pair);
        }
        assert_eq!(rig.status().sets[0].stage, "confirmed");
        rig.sent();
        rig
    }

    pub fn open(
        dir: &tempfile::TempDir,
        identity: &Arc<Identity>,
        clock: &ManualClock,
        holders: &[u16],
        selection: Selection,
    ) -> Sim {
        let db = Db::open(dir.path().join("sim.redb"), SCHEMA).unwrap();
        let set =
            SetConfig { network: NET, session: 0, threshold: 3, validators: holders.to_vec() };
        let settings =
            Settings { sign_timeout: SIGN_TIMEOUT, selection, ..Settings::new(vec![set]) };
        let sim = Sim::new(
            db,
            identity.clone(),
            KeyRegistry::new(),
            settings,
            Arc::new(clock.clone()),
            &mut prometheus_client::registry::Registry::default(),
        );
        sim.start().unwrap();
        sim
    }

    /// Closes the database and opens it again in a new simulator.
    pub fn restart(mut self) -> Self {
        drop(self.sim);
        self.sim =
            Self::open(&self.dir, &self.identity, &self.clock, &self.holders, self.selection);
        self
    }

    /// The same simulator (database), now choosing signing sets with `selection`.
    pub fn with_selection(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self.restart()
    }

    pub fn keygen(&self, from: u16, response: KeyGenResponse) {
        let mut txn = self.sim.db().write().unwrap();
        self.sim.keygen().handle(&mut txn, p(from), &response).unwrap();
        txn.commit().unwrap();
    }

    pub fn sign(&self, from: u16, response: SignResponse) -> SignOutcome {
        let mut txn = self.sim.db().write().unwrap();
        let outcome = self.sim.sign().handle_sign(&mut txn, p(from), &response).unwrap();
        txn.commit().unwrap();
        outcome
    }

    pub fn report(&self, from: u16, report: BatchReport) -> SignOutcome {
        let mut txn = self.sim.db().write().unwrap();
        let outcome = self.sim.sign().handle_batch(&mut txn, p(from), &report).unwrap();
        txn.commit().unwrap();
        outcome
    }

    pub fn preprocess(&self, v: u16, kind: SignKind, attempt: u32) -> SignOutcome {
        self.sign(
            v,
            SignResponse::Preprocess { id: sid(kind, attempt), preprocess: pre(v, attempt) },
        )
    }

    pub fn share(&self, v: u16, kind: SignKind, attempt: u32) -> SignOutcome {
        self.sign(v, SignResponse::Share { id: sid(kind, attempt), share: share(v, attempt) })
    }

    pub fn signed(&self, from: u16, batch: &Batch) -> SignOutcome {
        let signature = sign_batch(batch);
        self.report(from, BatchReport::SignedBatch { batch: batch.clone(), signature })
    }

    pub fn status(&self) -> StatusReport {
        StatusReport::read(&self.sim.db().read().unwrap()).unwrap()
    }

    pub fn ledger(&self) -> LedgerReport {
        LedgerReport::read(&self.sim.db().read().unwrap()).unwrap()
    }

    pub fn timeout_due(&self) -> bool {
        self.sim.sign().timeout_due(&self.sim.db().read().unwrap()).unwrap()
    }

    pub fn check_timeouts(&self) -> bool {
        let mut txn = self.sim.db().write().unwrap();
        let changed = self.sim.sign().check_timeouts(&mut txn).unwrap();
        txn.commit().unwrap();
        changed
    }

    /// Messages queued since the last call, opened by their recipients, in route order.
    pub fn sent(&mut self) -> Vec<(u16, CoordinatorMessage)> {
        opened_since(&self.sim, &self.identity, &mut self.seen)
    }

    /// Every selected member preprocesses and shares attempt `attempt` of `kind`.
    pub fn sign_round(&mut self, kind: SignKind, attempt: u32) -> Vec<u16> {
        let selected = signing_set(&kind, attempt, &HOLDERS, &[], 3);
        for v in &selected {
            assert_eq!(self.preprocess(*v, kind, attempt), SignOutcome::Progress);
        }
        for v in &selected {
            assert_eq!(self.share(*v, kind, attempt), SignOutcome::Progress);
        }
        self.sent();
        selected
    }
}

pub fn reattempts(sent: &[(u16, CoordinatorMessage)]) -> Vec<(u16, SignId)> {
    sent.iter()
        .map(|(to, m)| match m {
            CoordinatorMessage::Sign(SignRequest::Reattempt { id }) => (*to, *id),
            other => panic!("expected a Reattempt, got {other:?}"),
        })
        .collect()
}

/// `(recipient, settlement block, network block, batches, burns)`.
type Ack = (u16, u64, BlockHash, Vec<u32>, Vec<Payment>);

pub fn acks(sent: &[(u16, CoordinatorMessage)]) -> Vec<Ack> {
    sent.iter()
        .map(|(to, m)| match m {
            CoordinatorMessage::Settlement(SettlementEvent::BlockAcknowledged {
                session,
                settlement_block,
                network_block,
                batches,
                burns,
            }) => {
                assert_eq!(*session, Session(0), "the one set's session");
                (*to, *settlement_block, *network_block, batches.clone(), burns.clone())
            }
            other => panic!("expected a BlockAcknowledged, got {other:?}"),
        })
        .collect()
}

/// One attempt's signers, machines holding their nonces.
pub struct Attempt {
    pub signing: BTreeMap<u16, Box<dyn Signing>>,
    pub preprocesses: BTreeMap<u16, Vec<u8>>,
}

impl Attempt {
    /// Each of `set` preprocesses (sent to the simulator, which takes every one).
    pub fn preprocess(rig: &mut Rig, batch: &Batch, attempt: u32, set: &[u16]) -> Attempt {
        let kind = SignKind::Batch(batch.id);
        let mut signing = BTreeMap::new();
        let mut preprocesses = BTreeMap::new();
        for v in set {
            let (machine, preprocess) =
                batch_machine(keys()[v].ristretto.clone(), batch).preprocess();
            let id = sid(kind, attempt);
            let outcome =
                rig.sign(*v, SignResponse::Preprocess { id, preprocess: preprocess.clone() });
            // A late one is stored, or (ROAST: the next attempt already forms) ignored.
            assert!(
                matches!(
                    outcome,
                    SignOutcome::Progress
                        | SignOutcome::Stored
                        | SignOutcome::Ignored("other_attempt")
                ),
                "{outcome:?}"
            );
            signing.insert(*v, machine);
            preprocesses.insert(*v, preprocess);
        }
        Attempt { signing, preprocesses }
    }

    /// Keeps only the members of the set the simulator fixed.
    pub fn only(mut self, set: &[u16]) -> Attempt {
        self.signing.retain(|v, _| set.contains(v));
        self.preprocesses.retain(|v, _| set.contains(v));
        self
    }

    /// Every member's honest share.
    pub fn shares(self) -> BTreeMap<u16, Vec<u8>> {
        let mut out = BTreeMap::new();
        for (v, machine) in self.signing {
            let others: HashMap<u16, Vec<u8>> = self
                .preprocesses
                .iter()
                .filter(|(l, _)| **l != v)
                .map(|(l, p)| (*l, p.clone()))
                .collect();
            let (_, share) = machine.sign(others).unwrap();
            out.insert(v, share);
        }
        out
    }
}

pub fn report_everywhere(rig: &Rig, batch: &Batch) {
    for v in HOLDERS {
        assert_eq!(rig.report(v, BatchReport::Batch(batch.clone())), SignOutcome::Noted);
    }
}

pub fn tampered(share: &[u8]) -> Vec<u8> {
    let mut reader = share;
    let s = <Ristretto as Ciphersuite>::read_F(&mut reader).unwrap();
    let bumped = s + <Ristretto as Ciphersuite>::F::from(1u64);
    bumped.to_repr().to_vec()
}

pub fn relayed_shares(sent: &[(u16, CoordinatorMessage)]) -> usize {
    sent.iter()
        .filter(|(_, m)| matches!(m, CoordinatorMessage::Sign(SignRequest::Shares { .. })))
        .count()
}

/// The sets every later item and attempt picks leave `culprit` out.
pub fn left_out(rig: &Rig, culprit: u16) {
    let status = rig.status();
    for item in &status.sets[0].signing.in_progress {
        assert!(!item.selected.contains(&culprit), "{item:?}");
    }
    rig.preprocess(1, SignKind::Batch(9), 0);
    let item =
        rig.status().sets[0].signing.in_progress.iter().find(|i| i.id == "9").cloned().unwrap();
    assert!(!item.selected.contains(&culprit), "{item:?}");
}
