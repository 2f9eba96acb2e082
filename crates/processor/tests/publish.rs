//! The publisher against a real litecoind (or `$BITCOIND`) in regtest, on a redb file:
//! one signed transaction the node keeps refusing does not hold back the others, a plan
//! another transaction conflicted with is never published, and what was published is
//! published again until its plan is seen on chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin_network::params::{Chain, Coin, Params};
use bitcoin_network::rpc::RestBlocks;
use bitcoin_network::testing::node::Node;
use bitcoin_network::Bitcoin;
use bus::{BusMetrics, Mailbox};
use db::Db;
use messages::{Identity, KeyRegistry, Party};
use primitives::{Amount, NetworkId};
use processor::pipeline::publish::PublishTask;
use processor::pipeline::state::{
    Active, PlanRecord, ACTIVE, BROADCAST, CONFLICTS, PLANS, TO_PUBLISH,
};
use processor::pipeline::{Pipeline, PipelineMetrics};
use rand_core::OsRng;
use serde_json::json;
use task::Task;

struct Harness {
    node: Node,
    db: Db,
    task: PublishTask<Bitcoin<RestBlocks>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    let node = Node::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("processor.redb"), processor::SCHEMA).unwrap().scoped(0);
    let sealer = Arc::new(key_gen::Sealer::unlock(&db, b"a long enough sealing secret").unwrap());
    let keygen = Arc::new(
        key_gen::KeyGen::open(&db, sealer, NetworkId::Litecoin, 1, key_gen::Malice::None).unwrap(),
    );
    let mut registry = KeyRegistry::new();
    registry.insert(Party::Coordinator, Identity::generate(&mut OsRng).public());
    let mailbox = Mailbox::new(
        Party::Processor { network: NetworkId::Litecoin, validator: 1 },
        Arc::new(Identity::generate(&mut OsRng)),
        Arc::new(registry),
        BusMetrics::default(),
    );
    let coin = if node.is_litecoin() { Coin::Litecoin } else { Coin::Bitcoin };
    let network = Bitcoin::new(
        node.rpc().clone(),
        RestBlocks::new(node.rest_url()).unwrap(),
        Params::new(coin, Chain::Regtest),
    );
    let pipeline = Pipeline {
        session: 0,
        network: Arc::new(network),
        keygen,
        signers: Arc::new(Mutex::new(None)),
        mailbox,
        window: 10,
        validator: 1,
        metrics: PipelineMetrics::default(),
        proposal: Arc::default(),
    };
    let mut txn = db.write().unwrap();
    ACTIVE.put(&mut txn, &(), &Active { session: 0, me: 1, start: Some(0) }).unwrap();
    txn.commit().unwrap();
    // A re-broadcast pass whenever the queue is empty.
    let task = PublishTask::rebroadcasting_every(db.clone(), pipeline, Duration::ZERO);
    Harness { node, db, task, _dir: dir }
}

/// A transaction the node's wallet funds and signs (not sent).
async fn signed(node: &Node) -> bitcoin::Transaction {
    let to = node.new_address().await;
    node.signed_payment(node.wallet(), &to, 10_000_000, None).await
}

async fn in_mempool(node: &Node, tx: &bitcoin::Transaction) -> bool {
    let pool: Vec<String> = node.rpc().call("getrawmempool", json!([])).await.unwrap();
    pool.contains(&tx.compute_txid().to_string())
}

fn queue(h: &Harness, plan: [u8; 32], tx: &bitcoin::Transaction) {
    let mut txn = h.db.write().unwrap();
    let record = PlanRecord {
        tx: scheduler::Tx {
            id: plan,
            inputs: vec![],
            payments: vec![],
            branches: vec![],
            change: None,
            fee: Amount(0),
        },
        rate: 0,
        eventuality: vec![],
        completed: None,
    };
    PLANS.put(&mut txn, &plan, &record).unwrap();
    TO_PUBLISH.push(&mut txn, &(plan, serialize(tx))).unwrap();
    txn.commit().unwrap();
}

fn queued(h: &Harness) -> Vec<[u8; 32]> {
    TO_PUBLISH.items(&h.db.read().unwrap()).unwrap().into_iter().map(|(_, (p, _))| p).collect()
}

/// Completion reports queued for the coordinator, by the txid they carry.
fn reported(h: &Harness, tx: &bitcoin::Transaction) -> usize {
    let txid = tx.compute_txid().to_byte_array();
    Mailbox::pending(&h.db.read().unwrap())
        .unwrap()
        .iter()
        .filter(|(_, out)| out.envelope.windows(32).any(|w| w == txid))
        .count()
}

#[tokio::test]
async fn a_refused_transaction_does_not_hold_back_the_others_and_published_ones_are_rebroadcast() {
    let mut h = start().await;
    let good = signed(&h.node).await;
    // The same, spending an output that does not exist: refused every time.
    let mut bad = good.clone();
    bad.input[0].previous_output.txid = bitcoin::Txid::from_byte_array([7; 32]);
    let (bad_plan, good_plan) = ([1; 32], [2; 32]);
    queue(&h, bad_plan, &bad);
    queue(&h, good_plan, &good);

    // The refused one fails and goes to the back; the next iteration publishes the other.
    assert!(h.task.run_iteration().await.is_err());
    assert_eq!(queued(&h), vec![good_plan, bad_plan]);
    assert!(h.task.run_iteration().await.unwrap());
    assert!(in_mempool(&h.node, &good).await);
    assert_eq!(reported(&h, &good), 1, "one completion report to the coordinator");
    assert_eq!(queued(&h), vec![bad_plan]);
    // The node loses a published transaction (as after a restart without its mempool):
    // simulated by one it never saw, recorded as published. Re-broadcast even while a
    // refused transaction stays queued.
    let lost = signed(&h.node).await;
    assert!(!in_mempool(&h.node, &lost).await);
    let mut txn = h.db.write().unwrap();
    BROADCAST.put(&mut txn, &[3; 32], &serialize(&lost)).unwrap();
    txn.commit().unwrap();
    // Alone in the queue, the refused one stays at the head, failing, and nothing else
    // changes.
    assert!(h.task.run_iteration().await.is_err());
    assert!(in_mempool(&h.node, &lost).await, "re-broadcast");
    assert_eq!(queued(&h), vec![bad_plan]);
    assert_eq!(reported(&h, &bad), 0);

    // A conflict was recorded for it (another transaction spent its inputs): dropped
    // from the queue, never published, nothing reported.
    let mut txn = h.db.write().unwrap();
    CONFLICTS.put(&mut txn, &bad_plan, &vec![9; 32]).unwrap();
    txn.commit().unwrap();
    assert!(h.task.run_iteration().await.unwrap());
    assert!(queued(&h).is_empty());
    assert_eq!(reported(&h, &bad), 0);

    // The published one is watched until its plan's completion is applied.
    let watched: Vec<[u8; 32]> =
        BROADCAST.iter(&h.db.read().unwrap()).unwrap().into_iter().map(|(p, _)| p).collect();
    assert_eq!(watched, vec![good_plan, [3; 32]]);
    assert!(!h.task.run_iteration().await.unwrap(), "nothing queued: idle");
    // Mined: still counted as known (the node has them in its chain).
    h.node.mine(1).await;
    assert!(!in_mempool(&h.node, &good).await && !in_mempool(&h.node, &lost).await);
    assert_eq!(h.task.rebroadcast().await.unwrap(), 2);
}
