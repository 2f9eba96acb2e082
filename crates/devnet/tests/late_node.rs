//! A key generated and confirmed while the processors had no `[node]` (key generation
//! only) is active once they restart with one: they scan with it, instead of waiting for
//! a confirmation that already happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bitcoin_network::testing::node::Node;
use devnet::{node_table, Cluster, NodeOptions, Options};

#[test]
fn a_key_confirmed_without_a_node_is_used_once_one_is_configured() {
    let mut cluster = Cluster::start(&Options::keys_only("litecoin", 3, 2)).unwrap();
    let validators = [1u16, 2, 3];
    // Confirmed, and recorded as active even without a node (no activation block: no
    // processor could propose one).
    let sessions = cluster
        .wait_for(Duration::from_secs(120), "the key active on every processor", |c| {
            validators
                .iter()
                .map(|v| {
                    let status = c.processor_status(*v).ok()?;
                    status.keys.iter().any(|k| k.active).then_some(())?;
                    status.pipeline.map(|p| (p.session, p.start, p.scanned))
                })
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(30)));
    assert_eq!(sessions, vec![(0, None, None); 3]);

    // Restarted with a node: the same key scans.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = rt.block_on(Node::start());
    let table = node_table(&NodeOptions::regtest(&node, 3));
    for v in validators {
        cluster.kill_processor(v);
        let config = cluster.processors.iter().find(|p| p.validator == v).unwrap().config.clone();
        if v == 3 {
            // A database from before such keys were recorded active: the key confirmed,
            // no live session nor active record. Found and recorded at start.
            let path = config.parent().unwrap().join("data").join("processor.redb");
            let db = db::Db::open_existing(&path, processor::SCHEMA).unwrap();
            let mut txn = db.write().unwrap();
            processor::pipeline::state::LIVE.del(&mut txn, &0).unwrap();
            txn.set_scope(Some(0));
            processor::pipeline::state::ACTIVE.del(&mut txn, &()).unwrap();
            txn.commit().unwrap();
        }
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}{table}")).unwrap();
        cluster.start_processor(v).unwrap();
    }
    // The chain stands still until every processor has picked its first block: with no
    // agreed activation block each picks its own node's first non-final block, so a block
    // mined while one of them is still starting would move its pick (the limitation the
    // processor warns of; the test is about the key being used, not about that race).
    let starts = cluster
        .wait_for(Duration::from_secs(60), "every processor's first block", |c| {
            validators
                .iter()
                .map(|v| c.processor_status(*v).ok()?.pipeline?.start)
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(30)));
    let scanned = cluster
        .wait_for(Duration::from_secs(60), "every processor scanning with the key", |c| {
            rt.block_on(node.mine(1));
            validators
                .iter()
                .map(|v| {
                    let p = c.processor_status(*v).ok()?.pipeline?;
                    Some((p.session, p.start?, p.scanned?))
                })
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(30)));
    for (session, start, scanned) in &scanned {
        assert_eq!(*session, 0);
        assert!(scanned >= start, "scanned {scanned} from {start}");
    }
    // Picked before the chain moved on: the same first block everywhere, kept as scanning
    // went on.
    assert!(starts.iter().all(|s| *s == starts[0]), "{starts:?}");
    assert!(scanned.iter().zip(&starts).all(|((_, start, _), s)| start == s), "{scanned:?}");
}
