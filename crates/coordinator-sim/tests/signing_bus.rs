//! Signing and settlement through the simulator's real tasks and the in-memory broker:
//! four processors generate a key with the real `key_gen::KeyGen`, then send signing
//! messages (real preprocesses and shares from the processors' signing machines, which
//! the simulator checks) and the Batch they signed through their own mailboxes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, Spec};
use messages::{BatchReport, ProcessorMessage, Session, SignId, SignKind, SignResponse};
use primitives::{
    Amount, Balance, Batch, BlockHash, Coin, InInstruction, InInstructionWithBalance, NetworkId,
    SettlementAccount,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_relayed_signed_verified_and_acknowledged_over_the_bus() {
    let mut h = Harness::start(Spec::honest(NetworkId::Litecoin, 3, 4));
    h.wait_confirmed_by(&[1, 2, 3, 4]).await;
    let holders = [1u16, 2, 3, 4];
    let kind = SignKind::Batch(0);
    let id = SignId { session: Session(0), kind, attempt: 0 };

    let batch = Batch {
        network: NetworkId::Litecoin,
        session: 0,
        id: 0,
        block: BlockHash([3; 32]),
        number: 3,
        instructions: vec![InInstructionWithBalance {
            instruction: InInstruction {
                account: SettlementAccount([1; 32]),
                return_address: None,
            },
            balance: Balance { coin: Coin::Litecoin, amount: Amount(12_345) },
        }],
    };
    let mut machines = std::collections::BTreeMap::new();
    let mut preprocesses = std::collections::BTreeMap::new();
    for v in holders {
        h.send_as(v, ProcessorMessage::Batch(BatchReport::Batch(batch.clone())));
        let (machine, preprocess) =
            signers::batch_machine(h.keys(v).ristretto, &batch).preprocess();
        machines.insert(v, machine);
        preprocesses.insert(v, preprocess.clone());
        h.send_as(v, ProcessorMessage::Sign(SignResponse::Preprocess { id, preprocess }));
    }
    let status = h
        .wait_for("the preprocesses relayed", |s| {
            s.sets[0].signing.in_progress.first().is_some_and(|i| i.stage == "shares")
        })
        .await;
    // Responsive first: the first three to arrive over the bus sign (the preferred set if
    // it was among them).
    let selected = status.sets[0].signing.in_progress[0].selected.clone();
    assert_eq!(selected.len(), 3);
    let mut completing = vec![];
    let mut shares = std::collections::HashMap::new();
    for v in &selected {
        let others =
            selected.iter().filter(|l| *l != v).map(|l| (*l, preprocesses[l].clone())).collect();
        let (done, share) = machines.remove(v).unwrap().sign(others).unwrap();
        completing.push((*v, done));
        shares.insert(*v, share.clone());
        h.send_as(*v, ProcessorMessage::Sign(SignResponse::Share { id, share }));
    }
    h.wait_for("the shares relayed", |s| {
        s.sets[0].signing.in_progress.first().is_some_and(|i| i.stage == "completing")
    })
    .await;

    // The first member aggregates the shares into the Batch's signature.
    let (first, done) = completing.remove(0);
    let others = shares.into_iter().filter(|(l, _)| *l != first).collect();
    let signature: [u8; 64] = done.complete(others).unwrap().try_into().unwrap();
    let signed = BatchReport::SignedBatch { batch: batch.clone(), signature };
    h.send_as(selected[0], ProcessorMessage::Batch(signed));
    let status = h.wait_for("the Batch settled", |s| s.last_settlement_block == 1).await;
    let signing = &status.sets[0].signing;
    assert_eq!((signing.completed_batches, signing.next_batch), (1, 1));
    assert!(signing.in_progress.is_empty());
    let ledger = coordinator_sim::ledger::LedgerReport::read(&h.sim.db().read().unwrap()).unwrap();
    assert_eq!(ledger.accounts[0].balance("litecoin"), 12_345);

    // Every processor received, through the bus, what was addressed to it: the members
    // Preprocesses and Shares, and everyone the acknowledgement.
    let deadline = Instant::now() + Duration::from_secs(60);
    for v in holders {
        let expected = if selected.contains(&v) { 3 } else { 1 };
        while h.nodes[&v].other_messages() < expected {
            assert!(Instant::now() < deadline, "validator {v} did not receive its messages");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(h.nodes[&v].other_messages(), expected, "validator {v}");
    }
    h.stop().await;
}
