//! Shared test harness: PedPoP keys in process, processors on real redb files, and the
//! coordinator played through bytes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use db::{Db, Schema};
use dkg_pedpop::{
    Commitments, EncryptedMessage, EncryptionKeyMessage, KeyGenMachine, Participant, SecretShare,
    ThresholdParams,
};
use messages::{Session, SignId, SignKind, SignRequest, SignResponse};
use modular_frost::curve::{Ciphersuite, Ristretto};
use modular_frost::ThresholdKeys;
use primitives::{Batch, BlockHash, NetworkId};
use rand_core::OsRng;
use signers::{batch_machine, Handled, Signers};

pub const SCHEMA: Schema = Schema { app: "tc-signers-test", version: 1 };
pub const SESSION: Session = Session(3);

type R1 = EncryptionKeyMessage<Ristretto, Commitments<Ristretto>>;
type R2 = EncryptedMessage<Ristretto, SecretShare<<Ristretto as Ciphersuite>::F>>;

/// A t-of-n Ristretto key via PedPoP, every message through bytes. Index i-1 holds i's keys.
pub fn keys(t: u16, n: u16) -> Vec<ThresholdKeys<Ristretto>> {
    let p = |i: u16| Participant::new(i).unwrap();
    let params = |i: u16| ThresholdParams::new(t, n, p(i)).unwrap();
    let context = [0x5a; 32];
    let mut machines = BTreeMap::new();
    let mut r1 = BTreeMap::new();
    for i in 1..=n {
        let (m, msg) =
            KeyGenMachine::<Ristretto>::new(params(i), context).generate_coefficients(&mut OsRng);
        machines.insert(i, m);
        r1.insert(i, msg.serialize());
    }
    let mut key_machines = BTreeMap::new();
    let mut r2: BTreeMap<u16, BTreeMap<u16, Vec<u8>>> = BTreeMap::new();
    for (i, m) in machines {
        let others: HashMap<_, _> = r1
            .iter()
            .filter(|(l, _)| **l != i)
            .map(|(l, b)| (p(*l), R1::read(&mut b.as_slice(), params(i)).unwrap()))
            .collect();
        let (km, shares) = m.generate_secret_shares(&mut OsRng, others).unwrap();
        key_machines.insert(i, km);
        for (to, share) in shares {
            r2.entry(u16::from(to)).or_default().insert(i, share.serialize());
        }
    }
    key_machines
        .into_iter()
        .map(|(i, km)| {
            let shares: HashMap<_, _> = r2[&i]
                .iter()
                .map(|(from, b)| (p(*from), R2::read(&mut b.as_slice(), params(i)).unwrap()))
                .collect();
            km.calculate_share(&mut OsRng, shares).unwrap().complete()
        })
        .collect()
}

pub fn group_key(keys: &ThresholdKeys<Ristretto>) -> [u8; 32] {
    use ciphersuite::group::GroupEncoding;
    keys.group_key().to_bytes()
}

pub fn batch(id: u32) -> Batch {
    Batch {
        network: NetworkId::Bitcoin,
        session: 0,
        id,
        block: BlockHash([id as u8; 32]),
        number: u64::from(id),
        instructions: vec![],
    }
}

/// One processor: its database file and its manager (the in-memory part of a process).
pub struct Node {
    pub me: u16,
    pub path: PathBuf,
    pub db: Option<Db>,
    pub signers: Signers,
    pub keys: ThresholdKeys<Ristretto>,
}

impl Node {
    pub fn new(dir: &tempfile::TempDir, keys: ThresholdKeys<Ristretto>) -> Node {
        let me = u16::from(keys.params().i());
        let path = dir.path().join(format!("node-{me}.redb"));
        let db = Db::open(&path, SCHEMA).unwrap();
        Node { me, path, db: Some(db), signers: Signers::new(SESSION, me), keys }
    }

    pub fn db(&self) -> &Db {
        self.db.as_ref().unwrap()
    }

    /// A crash and restart: the manager and the database handle are dropped, the file is
    /// reopened.
    pub fn restart(&mut self) {
        self.db = None;
        self.signers = Signers::new(SESSION, self.me);
        self.db = Some(Db::open(&self.path, SCHEMA).unwrap());
    }

    /// `start` in a committed transaction.
    pub fn start(&mut self, b: &Batch) -> Option<SignResponse> {
        let mut txn = self.db().write().unwrap();
        let out = self
            .signers
            .start(&mut txn, SignKind::Batch(b.id), batch_machine(self.keys.clone(), b))
            .unwrap();
        txn.commit().unwrap();
        out
    }

    /// `handle` in a committed transaction; the node knows `b` (and no other item).
    pub fn handle(&mut self, b: &Batch, request: &SignRequest) -> Handled {
        let mut txn = self.db().write().unwrap();
        let keys = self.keys.clone();
        let known = SignKind::Batch(b.id);
        let out = self
            .signers
            .handle(&mut txn, request, |kind| (kind == known).then(|| batch_machine(keys, b)))
            .unwrap();
        txn.commit().unwrap();
        out
    }

    pub fn complete(&mut self, kind: SignKind) {
        let mut txn = self.db().write().unwrap();
        self.signers.complete(&mut txn, kind).unwrap();
        txn.commit().unwrap();
    }
}

pub fn nodes(dir: &tempfile::TempDir, t: u16, n: u16) -> Vec<Node> {
    keys(t, n).into_iter().map(|k| Node::new(dir, k)).collect()
}

pub fn node(nodes: &mut [Node], me: u16) -> &mut Node {
    nodes.iter_mut().find(|n| n.me == me).unwrap()
}

pub fn id(b: &Batch, attempt: u32) -> SignId {
    SignId { session: SESSION, kind: SignKind::Batch(b.id), attempt }
}

pub fn preprocess_of(response: Option<SignResponse>, expected: SignId) -> Vec<u8> {
    match response {
        Some(SignResponse::Preprocess { id, preprocess }) => {
            assert_eq!(id, expected);
            preprocess
        }
        other => panic!("expected a preprocess for {expected:?}, got {other:?}"),
    }
}

pub fn reply(handled: Handled) -> SignResponse {
    match handled {
        Handled::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

pub fn share_of(handled: Handled, expected: SignId) -> Vec<u8> {
    match reply(handled) {
        SignResponse::Share { id, share } => {
            assert_eq!(id, expected);
            share
        }
        other => panic!("expected a share, got {other:?}"),
    }
}

pub fn signed_of(handled: Handled, expected: SignId) -> [u8; 64] {
    match handled {
        Handled::Signed { id, signed } => {
            assert_eq!(id, expected);
            signed.try_into().unwrap()
        }
        other => panic!("expected a signature, got {other:?}"),
    }
}

pub fn subset(all: &BTreeMap<u16, Vec<u8>>, set: &[u16]) -> BTreeMap<u16, Vec<u8>> {
    set.iter().map(|i| (*i, all[i].clone())).collect()
}

/// Rounds 2 and 3 of attempt `id` with signing set `set`, given everyone's preprocesses:
/// every member's signature (all equal).
pub fn sign_with(
    nodes: &mut [Node],
    b: &Batch,
    id: SignId,
    preprocesses: &BTreeMap<u16, Vec<u8>>,
    set: &[u16],
) -> [u8; 64] {
    let request = SignRequest::Preprocesses { id, preprocesses: subset(preprocesses, set) };
    let shares: BTreeMap<u16, Vec<u8>> =
        set.iter().map(|i| (*i, share_of(node(nodes, *i).handle(b, &request), id))).collect();
    let request = SignRequest::Shares { id, shares };
    let signatures: Vec<[u8; 64]> =
        set.iter().map(|i| signed_of(node(nodes, *i).handle(b, &request), id)).collect();
    assert!(signatures.windows(2).all(|w| w[0] == w[1]), "the signers disagree");
    signatures[0]
}
