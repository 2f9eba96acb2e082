//! Signing and settlement through the simulator's real tasks and the in-memory broker:
//! four processors generate a key with the real `key_gen::KeyGen`, then send signing
//! messages (opaque preprocesses and shares) and a Batch signed with their real key
//! shares through their own mailboxes.
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
        id: 0,
        block: BlockHash([3; 32]),
        instructions: vec![InInstructionWithBalance {
            instruction: InInstruction {
                account: SettlementAccount([1; 32]),
                return_address: None,
            },
            balance: Balance { coin: Coin::Litecoin, amount: Amount(12_345) },
        }],
    };
    for v in holders {
        h.send_as(v, ProcessorMessage::Batch(BatchReport::Batch(batch.clone())));
        let preprocess = SignResponse::Preprocess { id, preprocess: vec![v as u8] };
        h.send_as(v, ProcessorMessage::Sign(preprocess));
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
    for v in &selected {
        h.send_as(*v, ProcessorMessage::Sign(SignResponse::Share { id, share: vec![*v as u8] }));
    }
    h.wait_for("the shares relayed", |s| {
        s.sets[0].signing.in_progress.first().is_some_and(|i| i.stage == "completing")
    })
    .await;

    // The selected members' real key shares sign the Batch.
    let keys: Vec<_> = selected.iter().map(|v| h.keys(*v).ristretto).collect();
    let signature = key_gen::testing::sign::<_, signers::batch::BatchHram>(
        &keys,
        &signers::batch::message(&batch),
    );
    let signed = BatchReport::SignedBatch {
        batch: batch.clone(),
        signature: signers::batch::signature_bytes(&signature),
    };
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
