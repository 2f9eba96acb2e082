//! Signing and settlement, driven message by message through `SignCoordinator` with
//! opaque preprocesses and shares (the coordinator never parses them), and real Batch
//! signatures by a Ristretto key from a real DKG. What the simulator sends is read back
//! from its real outbox and opened as each recipient would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rig;

use coordinator_sim::{
    http::HttpState,
    ledger::BurnRequest,
    signing::{signing_set, SignOutcome},
};
use messages::{
    BatchReport, CoordinatorMessage, Session, SignId, SignKind, SignRequest, SignResponse,
};
use primitives::{Amount, Balance, Batch, Coin, NetworkId, Payment};
use std::collections::{BTreeMap, BTreeSet};

use rig::*;

#[test]
fn selection_is_deterministic_has_t_members_and_respects_exclusions() {
    let holders = [1u16, 2, 3, 4, 5, 6, 7];
    let mut distinct = BTreeSet::new();
    for attempt in 0..32 {
        for kind in [SignKind::Batch(attempt), SignKind::Plan([attempt as u8; 32])] {
            let set = signing_set(&kind, attempt, &holders, &[], 5);
            assert_eq!(set, signing_set(&kind, attempt, &holders, &[], 5), "not deterministic");
            assert_eq!(set.len(), 5);
            assert!(set.windows(2).all(|w| w[0] < w[1]), "not ascending: {set:?}");
            assert!(set.iter().all(|v| holders.contains(v)));
            // Excluding two members never selects them (7 - 2 >= 5).
            let excluded = [set[0], set[1]];
            let without = signing_set(&kind, attempt, &holders, &excluded, 5);
            assert_eq!(without.len(), 5);
            assert!(!without.contains(&set[0]) && !without.contains(&set[1]), "{without:?}");
            // Excluding three would leave fewer than 5: nobody is excluded.
            let too_many = [set[0], set[1], set[2]];
            assert_eq!(signing_set(&kind, attempt, &holders, &too_many, 5), set);
            distinct.insert(set);
        }
    }
    assert!(distinct.len() > 1, "the choice never varies with the item and attempt");
}

#[test]
fn preprocesses_and_shares_are_relayed_only_once_every_member_answered() {
    let mut rig = Rig::confirmed();
    let kind = SignKind::Batch(0);
    assert_eq!(rig.report(1, BatchReport::Batch(batch(0, &[]))), SignOutcome::Noted);
    let selected = signing_set(&kind, 0, &HOLDERS, &[], 3);
    let outsider = *HOLDERS.iter().find(|v| !selected.contains(v)).unwrap();

    // Two preprocesses are not enough.
    assert_eq!(rig.preprocess(selected[0], kind, 0), SignOutcome::Progress);
    assert_eq!(rig.preprocess(selected[0], kind, 0), SignOutcome::Ignored("duplicate"));
    // A second, different preprocess for the same attempt (the nonce rule broken) is
    // counted, and the first one stays the one relayed.
    let other = SignResponse::Preprocess { id: sid(kind, 0), preprocess: b"other".to_vec() };
    assert_eq!(rig.sign(selected[0], other), SignOutcome::Ignored("conflicting"));
    assert_eq!(rig.preprocess(selected[1], kind, 0), SignOutcome::Progress);
    assert!(rig.sent().is_empty(), "relayed before every member preprocessed");
    let item = rig.status().sets[0].signing.in_progress[0].clone();
    assert_eq!(
        (item.kind.as_str(), item.id.as_str(), item.stage.as_str()),
        ("batch", "0", "preprocesses")
    );
    assert_eq!(item.selected, selected);
    let mut waiting = vec![selected[2], outsider];
    waiting.sort_unstable();
    assert_eq!(item.waiting_for, waiting, "any third key holder completes the set");
    // A share before the preprocesses were relayed changes nothing.
    assert_eq!(rig.share(selected[0], kind, 0), SignOutcome::Ignored("out_of_order"));

    assert_eq!(rig.preprocess(selected[2], kind, 0), SignOutcome::Progress);
    let relayed = rig.sent();
    assert_eq!(relayed.iter().map(|(to, _)| *to).collect::<Vec<_>>(), selected);
    let expected: BTreeMap<u16, Vec<u8>> = selected.iter().map(|v| (*v, pre(*v, 0))).collect();
    for (_, message) in &relayed {
        let request =
            SignRequest::Preprocesses { id: sid(kind, 0), preprocesses: expected.clone() };
        assert_eq!(*message, CoordinatorMessage::Sign(request));
    }
    assert_eq!(rig.status().sets[0].signing.in_progress[0].stage, "shares");
    // The set is fixed: a later preprocess is stored and ignored.
    assert_eq!(rig.preprocess(outsider, kind, 0), SignOutcome::Stored);
    assert!(rig.sent().is_empty());
    let signing = rig.status().sets[0].signing.clone();
    assert_eq!((signing.preprocesses, signing.conflicting_preprocesses), (4, 1));

    // Shares: from members only; relayed once all t are in.
    assert_eq!(rig.share(outsider, kind, 0), SignOutcome::Ignored("not_selected"));
    assert_eq!(rig.share(selected[0], kind, 0), SignOutcome::Progress);
    assert_eq!(rig.share(selected[1], kind, 0), SignOutcome::Progress);
    assert!(rig.sent().is_empty(), "relayed before every member's share");
    assert_eq!(rig.share(selected[2], kind, 0), SignOutcome::Progress);
    let relayed = rig.sent();
    assert_eq!(relayed.iter().map(|(to, _)| *to).collect::<Vec<_>>(), selected);
    let expected: BTreeMap<u16, Vec<u8>> = selected.iter().map(|v| (*v, share(*v, 0))).collect();
    for (_, message) in &relayed {
        let request = SignRequest::Shares { id: sid(kind, 0), shares: expected.clone() };
        assert_eq!(*message, CoordinatorMessage::Sign(request));
    }
    assert_eq!(rig.status().sets[0].signing.in_progress[0].stage, "completing");
}

#[test]
fn a_silent_member_times_out_and_the_next_attempt_excludes_it() {
    let mut rig = Rig::confirmed();
    let kind = SignKind::Plan([7; 32]);
    let selected = signing_set(&kind, 0, &HOLDERS, &[], 3);
    let silent = selected[1];
    // It preprocessed (the set is fixed), then fell silent before its share.
    for v in &selected {
        rig.preprocess(*v, kind, 0);
    }
    for v in selected.iter().filter(|v| **v != silent) {
        rig.share(*v, kind, 0);
    }
    rig.sent();
    let timeout = SIGN_TIMEOUT.as_millis() as u64;
    rig.clock.advance(timeout - 1);
    assert!(!rig.timeout_due());
    assert!(!rig.check_timeouts());
    assert!(rig.sent().is_empty());
    rig.clock.advance(1);
    assert!(rig.timeout_due());
    assert!(rig.check_timeouts());

    // Every key holder (the silent one too) is told to start attempt 1.
    let sent = reattempts(&rig.sent());
    assert_eq!(sent, HOLDERS.iter().map(|v| (*v, sid(kind, 1))).collect::<Vec<_>>());
    let item = rig.status().sets[0].signing.in_progress[0].clone();
    assert_eq!((item.attempt, item.stage.as_str()), (1, "preprocesses"));
    assert_eq!(item.excluded, vec![silent]);
    let expected: Vec<u16> = HOLDERS.iter().copied().filter(|v| *v != silent).collect();
    assert_eq!(item.selected, expected, "3 of the 3 remaining");
    assert_eq!(rig.status().sets[0].signing.reattempts, 1);

    // Attempt 0's late answers change nothing; attempt 1 runs without the silent one.
    assert_eq!(rig.share(silent, kind, 0), SignOutcome::Ignored("other_attempt"));
    assert_eq!(rig.preprocess(silent, kind, 1), SignOutcome::Stored);
    for v in &expected {
        assert_eq!(rig.preprocess(*v, kind, 1), SignOutcome::Progress);
    }
    let relayed = rig.sent();
    assert_eq!(relayed.iter().map(|(to, _)| *to).collect::<Vec<_>>(), expected);
    let CoordinatorMessage::Sign(SignRequest::Preprocesses { id, preprocesses }) = &relayed[0].1
    else {
        panic!("{relayed:?}")
    };
    assert_eq!(*id, sid(kind, 1));
    assert_eq!(preprocesses.keys().copied().collect::<Vec<_>>(), expected);

    // Silent in the shares stage of attempt 1: attempt 2 excludes that member only.
    rig.share(expected[0], kind, 1);
    rig.share(expected[1], kind, 1);
    rig.clock.advance(timeout);
    assert!(rig.check_timeouts());
    assert_eq!(reattempts(&rig.sent()).len(), 4);
    let item = rig.status().sets[0].signing.in_progress[0].clone();
    assert_eq!(item.attempt, 2);
    assert_eq!(item.excluded, vec![expected[2]]);
    assert!(!item.selected.contains(&expected[2]));
}

#[test]
fn a_blame_reattempts_at_once_without_the_accused() {
    let mut rig = Rig::confirmed();
    let kind = SignKind::Batch(0);
    let selected = signing_set(&kind, 0, &HOLDERS, &[], 3);
    for v in &selected {
        rig.preprocess(*v, kind, 0);
    }
    rig.sent();
    let outsider = *HOLDERS.iter().find(|v| !selected.contains(v)).unwrap();
    let blame = |accused| SignResponse::Blame { id: sid(kind, 0), accused };
    // Blames that cannot hold: from a non-member, of a non-member, of oneself.
    assert_eq!(rig.sign(outsider, blame(selected[0])), SignOutcome::Ignored("not_selected"));
    assert_eq!(rig.sign(selected[0], blame(outsider)), SignOutcome::Ignored("bad_blame"));
    assert_eq!(rig.sign(selected[0], blame(selected[0])), SignOutcome::Ignored("bad_blame"));
    assert!(rig.sent().is_empty());

    let accused = selected[2];
    assert_eq!(rig.sign(selected[0], blame(accused)), SignOutcome::Progress);
    let sent = reattempts(&rig.sent());
    assert_eq!(sent, HOLDERS.iter().map(|v| (*v, sid(kind, 1))).collect::<Vec<_>>());
    let set = rig.status().sets[0].clone();
    assert_eq!(set.signing.blames, 1);
    assert_eq!(set.signing.reattempts, 1);
    // The pair is in dispute: never again in one signing set, for this item or another.
    let pair = (selected[0].min(accused), selected[0].max(accused));
    assert_eq!(set.signing.disputes, vec![pair]);
    let item = &set.signing.in_progress[0];
    assert_eq!(item.attempt, 1);
    assert!(item.excluded.is_empty());
    assert!(!(item.selected.contains(&pair.0) && item.selected.contains(&pair.1)));
    assert_eq!(item.selected.len(), 3);
    let other = SignKind::Batch(1);
    rig.preprocess(pair.0, other, 0);
    let started = rig.status().sets[0].signing.in_progress.clone();
    let started = started.iter().find(|i| i.kind == "batch" && i.id == "1").unwrap();
    assert!(!(started.selected.contains(&pair.0) && started.selected.contains(&pair.1)));
}

/// With pairs in dispute, the signing set holds no disputed pair whenever the members in
/// no dispute can fill it: liars who accuse everyone, or are accused by everyone, end up
/// outside every set, and the honest members sign.
#[test]
fn selection_avoids_disputed_pairs_while_enough_members_are_in_no_dispute() {
    use coordinator_sim::signing::signing_set_avoiding;
    let holders = [1u16, 2, 3, 4, 5, 6, 7];
    // Liars 2 and 5, each in dispute with every other key holder.
    let mut disputes = vec![];
    for liar in [2u16, 5] {
        for h in holders.iter().copied().filter(|h| *h != liar) {
            if !disputes.contains(&(liar.min(h), liar.max(h))) {
                disputes.push((liar.min(h), liar.max(h)));
            }
        }
    }
    for attempt in 0..32 {
        let kind = SignKind::Batch(attempt);
        let set = signing_set_avoiding(&kind, attempt, &holders, &[], &disputes, 5);
        assert_eq!(set, vec![1, 3, 4, 6, 7], "attempt {attempt}");
        // No dispute: the plain selection.
        let plain = signing_set_avoiding(&kind, attempt, &holders, &[], &[], 5);
        assert_eq!(plain, signing_set(&kind, attempt, &holders, &[], 5));
        // One disputed pair: never both.
        let one = [(plain[0], plain[1])];
        let set = signing_set_avoiding(&kind, attempt, &holders, &[], &one, 5);
        assert_eq!(set.len(), 5);
        assert!(!(set.contains(&plain[0]) && set.contains(&plain[1])), "{set:?}");
    }
    // A greedy choice would fail here (liar 2 in dispute with only two honest members
    // ranks before the honest members it did not accuse, and then blocks the set), yet
    // one dispute-free set exists, and it is found: the four honest members.
    let honest = [1u16, 3, 4, 6];
    let mut disputes = vec![(1, 2), (2, 3)];
    for liar in [5u16, 7] {
        for h in honest {
            disputes.push((liar.min(h), liar.max(h)));
        }
    }
    for attempt in 0..32 {
        let kind = SignKind::Plan([attempt as u8; 32]);
        let set = signing_set_avoiding(&kind, attempt, &holders, &[], &disputes, 4);
        assert_eq!(set, honest, "attempt {attempt}");
    }

    // More disputes than a set can avoid: set aside, still t members.
    let everyone: Vec<(u16, u16)> = holders
        .iter()
        .flat_map(|a| holders.iter().filter(move |b| a < *b).map(move |b| (*a, *b)))
        .collect();
    let set = signing_set_avoiding(&SignKind::Batch(0), 0, &holders, &[], &everyone, 5);
    assert_eq!(set.len(), 5);
}

#[test]
fn a_bad_batch_signature_changes_nothing() {
    let mut rig = Rig::confirmed();
    let b = batch(0, &[(1, 500)]);
    rig.sign_round(SignKind::Batch(0), 0);
    let before = (rig.status(), rig.ledger());

    let mut signature = sign_batch(&b);
    signature[40] ^= 1;
    let tampered = BatchReport::SignedBatch { batch: b.clone(), signature };
    assert_eq!(rig.report(1, tampered), SignOutcome::Ignored("bad_signature"));
    // A valid signature of another Batch under the same id.
    let other = batch(0, &[(1, 5_000_000)]);
    let wrong = BatchReport::SignedBatch { batch: b.clone(), signature: sign_batch(&other) };
    assert_eq!(rig.report(2, wrong), SignOutcome::Ignored("bad_signature"));
    assert!(rig.sent().is_empty());
    let (status, ledger) = (rig.status(), rig.ledger());
    assert_eq!(ledger, before.1);
    assert_eq!(status.sets[0].signing.bad_batch_signatures, 2);
    assert_eq!(status.sets[0].signing.completed_batches, 0);
    assert_eq!(status.sets[0].signing.next_batch, 0);
    assert_eq!(status.sets[0].signing.in_progress, before.0.sets[0].signing.in_progress);
    assert_eq!(status.last_settlement_block, 0);

    // The genuine one still settles.
    assert_eq!(rig.signed(3, &b), SignOutcome::Progress);
    assert_eq!(rig.ledger().accounts[0].balance("litecoin"), 500);
}

#[test]
fn batches_settle_strictly_in_id_order_and_credit_the_ledger() {
    let mut rig = Rig::confirmed();
    let b0 = batch(0, &[(1, 1_000), (2, 250)]);
    let b1 = batch(1, &[(1, 40)]);
    let b2 = batch(2, &[]);
    for id in 0..3 {
        rig.sign_round(SignKind::Batch(id), 0);
    }
    assert_eq!(rig.status().sets[0].signing.in_progress.len(), 3);

    // Batch 1 first: verified and complete, but nothing is acknowledged before batch 0.
    assert_eq!(rig.signed(2, &b1), SignOutcome::Progress);
    assert_eq!(rig.signed(3, &b1), SignOutcome::Ignored("batch_done"));
    assert!(rig.sent().is_empty());
    assert!(rig.ledger().accounts.is_empty());
    let status = rig.status();
    assert_eq!(status.last_settlement_block, 0);
    assert_eq!(status.sets[0].signing.next_batch, 0);
    assert_eq!(status.sets[0].signing.in_progress.len(), 2, "batch 1's item is complete");

    assert_eq!(rig.signed(1, &b0), SignOutcome::Progress);
    let sent = acks(&rig.sent());
    let expected: Vec<_> = [(1u64, &b0), (2, &b1)]
        .into_iter()
        .flat_map(|(block, b)| {
            HOLDERS.iter().map(move |v| (*v, block, b.block, vec![b.id], vec![]))
        })
        .collect();
    let mut sorted = sent.clone();
    sorted.sort_by_key(|(to, block, ..)| (*block, *to));
    assert_eq!(sorted, expected);
    // Each holder receives block 1 before block 2.
    for v in HOLDERS {
        let blocks: Vec<u64> = sent.iter().filter(|a| a.0 == v).map(|a| a.1).collect();
        assert_eq!(blocks, vec![1, 2], "validator {v}");
    }
    let ledger = rig.ledger();
    assert_eq!(ledger.accounts.len(), 2);
    assert_eq!(ledger.accounts[0].account, hex::encode(account(1)));
    assert_eq!(ledger.accounts[0].balance("litecoin"), 1_040);
    assert_eq!(ledger.accounts[1].balance("litecoin"), 250);
    assert_eq!(ledger.total_credited["litecoin"], 1_290);
    assert_eq!(ledger.last_settlement_block, 2);

    // An empty Batch is a normal progress update: block 3, nothing credited.
    assert_eq!(rig.signed(4, &b2), SignOutcome::Progress);
    let sent = acks(&rig.sent());
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|a| a.1 == 3 && a.3 == vec![2] && a.4.is_empty()));
    assert_eq!(rig.ledger().total_credited["litecoin"], 1_290);
    // Late messages for settled Batches change nothing.
    assert_eq!(rig.signed(2, &b0), SignOutcome::Ignored("batch_done"));
    assert_eq!(rig.preprocess(1, SignKind::Batch(0), 0), SignOutcome::Ignored("completed"));
    let status = rig.status();
    assert_eq!(status.sets[0].signing.completed_batches, 3);
    assert_eq!(status.sets[0].signing.next_batch, 3);
    assert!(status.sets[0].signing.in_progress.is_empty());
    // No timeouts for complete items.
    rig.clock.advance(10 * SIGN_TIMEOUT.as_millis() as u64);
    assert!(!rig.timeout_due());
    assert!(rig.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burns_are_refused_over_the_balance_and_carried_exactly_once_in_order() {
    let mut rig = Rig::confirmed();
    rig.signed(1, &batch(0, &[(1, 1_000)]));
    assert_eq!(acks(&rig.sent()).len(), 4);

    // The real HTTP endpoint, over the simulator's database.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = listener.local_addr().unwrap();
    let state = HttpState::new(
        rig.sim.db().clone(),
        rig.sim.burner().clone(),
        prometheus_client::registry::Registry::default(),
        vec![],
    );
    let shutdown = task::Shutdown::new();
    let server = tokio::spawn(coordinator_sim::http::serve_on(listener, state, shutdown.clone()));

    let (to_a, script_a) = address(0xaa);
    let (to_b, script_b) = address(0xbb);
    let request = |to: &str, amount| BurnRequest {
        network: "litecoin".into(),
        account: hex::encode(account(1)),
        to: to.into(),
        amount,
    };
    let refused = |request: BurnRequest| async move {
        let body = serde_json::to_vec(&request).unwrap();
        let (status, body) =
            coordinator_sim::client::request(listen, "POST", "/burn", Some(&body)).await.unwrap();
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        (status, error["error"].as_str().unwrap().to_string())
    };
    let before = rig.ledger();
    let (status, error) = refused(request(&to_a, 1_001)).await;
    assert_eq!(status, 400);
    assert!(error.contains("insufficient balance"), "{error}");
    let (status, error) = refused(request(&to_a, 0)).await;
    assert_eq!((status, error.contains("above 0")), (400, true), "{error}");
    let (status, error) = refused(request("bc1qnotanaddress", 5)).await;
    assert_eq!((status, error.contains("bad address")), (400, true), "{error}");
    let (status, error) =
        refused(BurnRequest { network: "monero".into(), ..request(&to_a, 5) }).await;
    assert_eq!((status, error.contains("unknown network")), (400, true), "{error}");
    let (status, _) =
        coordinator_sim::client::request(listen, "POST", "/burn", Some(b"{")).await.unwrap();
    assert_eq!(status, 400);
    assert_eq!(rig.ledger(), before, "a refused burn changed the ledger");

    // Two accepted burns, then the next acknowledgement carries both, in order.
    let first = coordinator_sim::client::burn(listen, &request(&to_a, 300)).await.unwrap();
    assert_eq!((first.id, first.balance), (1, 700));
    let second = coordinator_sim::client::burn(listen, &request(&to_b, 200)).await.unwrap();
    assert_eq!((second.id, second.balance), (2, 500));
    let ledger = coordinator_sim::client::ledger(listen).await.unwrap();
    assert_eq!(ledger.accounts[0].balance("litecoin"), 500);
    assert_eq!(ledger.burns_queued.iter().map(|b| b.id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(ledger.total_burned["litecoin"], 500);
    assert!(rig.sent().is_empty(), "burns wait for the next acknowledgement");

    rig.signed(2, &batch(1, &[]));
    let sent = acks(&rig.sent());
    assert_eq!(sent.len(), 4);
    let payment = |script: &[u8], amount| Payment {
        address: primitives::ExternalAddress::new(script.to_vec()).unwrap(),
        balance: Balance { coin: Coin::Litecoin, amount: Amount(amount) },
    };
    for (_, block, _, batches, burns) in &sent {
        assert_eq!((*block, batches.clone()), (2, vec![1]));
        assert_eq!(*burns, vec![payment(&script_a, 300), payment(&script_b, 200)]);
    }
    // Exactly once: the following acknowledgement carries none.
    rig.signed(3, &batch(2, &[]));
    assert!(acks(&rig.sent()).iter().all(|a| a.1 == 3 && a.4.is_empty()));
    let ledger = coordinator_sim::client::ledger(listen).await.unwrap();
    assert!(ledger.burns_queued.is_empty());
    assert_eq!(
        ledger.burns_made.iter().map(|b| (b.id, b.settlement_block)).collect::<Vec<_>>(),
        vec![(1, Some(2)), (2, Some(2))]
    );
    assert_eq!(ledger.burns_made[0].to, to_a);
    shutdown.trigger();
    server.await.unwrap().unwrap();
}

#[test]
fn a_restart_mid_attempt_continues() {
    let mut rig = Rig::confirmed();
    let kind = SignKind::Batch(0);
    let selected = signing_set(&kind, 0, &HOLDERS, &[], 3);
    rig.preprocess(selected[0], kind, 0);
    rig.preprocess(selected[1], kind, 0);
    rig.clock.advance(SIGN_TIMEOUT.as_millis() as u64 - 10);

    rig = rig.restart();
    // The stored progress survived, and so did the deadline.
    let item = rig.status().sets[0].signing.in_progress[0].clone();
    let outsider = *HOLDERS.iter().find(|v| !selected.contains(v)).unwrap();
    let mut waiting = vec![selected[2], outsider];
    waiting.sort_unstable();
    assert_eq!(item.waiting_for, waiting);
    assert!(!rig.timeout_due());
    assert_eq!(rig.preprocess(selected[1], kind, 0), SignOutcome::Ignored("duplicate"));
    assert_eq!(rig.preprocess(selected[2], kind, 0), SignOutcome::Progress);
    let relayed = rig.sent();
    assert_eq!(relayed.len(), 3);
    let CoordinatorMessage::Sign(SignRequest::Preprocesses { preprocesses, .. }) = &relayed[0].1
    else {
        panic!("{relayed:?}")
    };
    assert_eq!(preprocesses.keys().copied().collect::<Vec<_>>(), selected);

    // Down for longer than the timeout: a full timeout from the restart.
    rig.clock.advance(10 * SIGN_TIMEOUT.as_millis() as u64);
    rig = rig.restart();
    assert!(!rig.timeout_due());
    for v in &selected {
        rig.share(*v, kind, 0);
    }
    assert_eq!(rig.sent().len(), 3);
    rig = rig.restart();
    assert_eq!(rig.signed(1, &batch(0, &[(5, 9)])), SignOutcome::Progress);
    assert_eq!(acks(&rig.sent()).len(), 4);
    assert_eq!(rig.ledger().accounts[0].balance("litecoin"), 9);
}

/// A plan is complete once a threshold (3 of 4) of key holders report the same
/// transaction, as each sees it final on its own node: one key holder's report, true or
/// not, completes nothing, and signing goes on (timeouts, reattempts). Then the
/// completion is relayed once to the key holders that did not report it.
#[test]
fn a_plan_is_complete_once_a_threshold_of_key_holders_report_it() {
    let mut rig = Rig::confirmed();
    let plan = [9; 32];
    let kind = SignKind::Plan(plan);
    let selected = rig.sign_round(kind, 0);
    let completed =
        |tx: &[u8]| SignResponse::Completed { session: Session(0), plan, tx: tx.to_vec() };
    let liar = selected[0];
    assert_eq!(rig.sign(liar, completed(b"made up")), SignOutcome::Stored);
    assert!(rig.sent().is_empty());
    assert!(rig.status().sets[0].signing.in_progress.iter().any(|i| i.stage != "completed"));
    // Signing goes on: the attempt still times out and is reattempted, after a longer
    // deadline (the report says the transaction exists, which a member's blame would
    // contradict; the deadline only matters if every honest member crashed).
    let timeout = SIGN_TIMEOUT.as_millis() as u64;
    rig.clock.advance(timeout + 1);
    assert!(!rig.timeout_due());
    rig.clock.advance(timeout * (coordinator_sim::signing::SIGNED_TIMEOUT_FACTOR - 1));
    assert!(rig.timeout_due());
    rig.check_timeouts();
    assert!(rig
        .sent()
        .iter()
        .any(|(_, m)| matches!(m, CoordinatorMessage::Sign(SignRequest::Reattempt { .. }))));

    let honest: Vec<u16> = HOLDERS.iter().copied().filter(|v| *v != liar).collect();
    assert_eq!(rig.sign(honest[0], completed(b"txid")), SignOutcome::Stored);
    assert_eq!(rig.sign(honest[0], completed(b"txid")), SignOutcome::Ignored("duplicate"));
    assert_eq!(rig.sign(honest[1], completed(b"txid")), SignOutcome::Stored);
    assert!(rig.sent().is_empty());
    assert_eq!(rig.sign(honest[2], completed(b"txid")), SignOutcome::Progress);
    let relayed = SignRequest::Completed { session: Session(0), plan, tx: b"txid".to_vec() };
    assert_eq!(rig.sent(), vec![(liar, CoordinatorMessage::Sign(relayed))]);
    // Once: later reports (even of another transaction) and messages are ignored.
    assert_eq!(rig.sign(liar, completed(b"txid")), SignOutcome::Ignored("completed"));
    assert_eq!(rig.sign(liar, completed(b"other")), SignOutcome::Ignored("completed"));
    assert_eq!(rig.share(honest[0], kind, 1), SignOutcome::Ignored("completed"));
    assert!(rig.sent().is_empty());
    let status = rig.status();
    assert_eq!(status.sets[0].signing.completed_plans, 1);
    assert!(status.sets[0].signing.in_progress.is_empty());
    rig.clock.advance(10 * SIGN_TIMEOUT.as_millis() as u64);
    assert!(!rig.timeout_due());

    // A plan never signed here: reports are not kept (every plan is signed here first).
    let other = [8; 32];
    let report = SignResponse::Completed { session: Session(0), plan: other, tx: b"t2".to_vec() };
    for v in HOLDERS {
        assert_eq!(rig.sign(v, report.clone()), SignOutcome::Ignored("unknown_item"));
    }
    assert!(rig.sent().is_empty());
}

#[test]
fn strangers_and_unconfirmed_sets_change_nothing() {
    let mut rig = Rig::confirmed();
    let kind = SignKind::Batch(0);
    let message = SignResponse::Preprocess { id: sid(kind, 0), preprocess: vec![1] };
    assert_eq!(rig.sign(5, message.clone()), SignOutcome::Ignored("not_a_key_holder"));
    let other_session = SignResponse::Preprocess {
        id: SignId { session: Session(9), kind, attempt: 0 },
        preprocess: vec![1],
    };
    assert_eq!(rig.sign(1, other_session), SignOutcome::Ignored("unknown_session"));
    let bitcoin = Batch { network: NetworkId::Bitcoin, ..batch(0, &[]) };
    let signature = sign_batch(&bitcoin);
    assert_eq!(
        rig.report(1, BatchReport::SignedBatch { batch: bitcoin, signature }),
        SignOutcome::Ignored("wrong_network")
    );
    assert_eq!(rig.preprocess(1, kind, 3), SignOutcome::Ignored("unknown_item"));
    assert!(rig.sent().is_empty());
    assert!(rig.status().sets[0].signing.in_progress.is_empty());
}

/// Responsive first: the signing set is the first `t` key holders to preprocess (no two
/// in dispute), whoever they are. A member of the preferred set that stays silent costs
/// no timeout: the three that answered sign at once.
#[test]
fn a_silent_key_holder_costs_no_timeout() {
    let mut rig = Rig::confirmed();
    let kind = SignKind::Batch(0);
    let preferred = signing_set(&kind, 0, &HOLDERS, &[], 3);
    let silent = preferred[0];
    let answering: Vec<u16> = HOLDERS.iter().copied().filter(|v| *v != silent).collect();
    for v in &answering[..2] {
        assert_eq!(rig.preprocess(*v, kind, 0), SignOutcome::Progress);
    }
    assert!(rig.sent().is_empty(), "relayed before t answered");
    assert_eq!(rig.preprocess(answering[2], kind, 0), SignOutcome::Progress);
    let sent = rig.sent();
    let to: Vec<u16> = sent.iter().map(|(to, _)| *to).collect();
    assert_eq!(to, answering, "relayed to the three that answered");
    for (_, m) in &sent {
        let CoordinatorMessage::Sign(SignRequest::Preprocesses { id, preprocesses }) = m else {
            panic!("{m:?}")
        };
        assert_eq!(id.attempt, 0);
        assert_eq!(preprocesses.keys().copied().collect::<Vec<_>>(), answering);
    }
    for v in &answering {
        assert_eq!(rig.share(*v, kind, 0), SignOutcome::Progress);
    }
    rig.sent();
    assert_eq!(rig.status().sets[0].signing.in_progress[0].stage, "completing");
    assert_eq!(rig.status().sets[0].signing.reattempts, 0);
    // The silent one answering late changes nothing.
    assert_eq!(rig.preprocess(silent, kind, 0), SignOutcome::Stored);
    assert!(rig.sent().is_empty());
}

/// When no set without a disputed pair exists among the key holders (3 of 4 with the
/// pairs (a, b) and (c, d) in dispute), the disputes are set aside once everyone who can
/// answer did, instead of waiting for a timeout that would only come again and again.
#[test]
fn disputes_are_set_aside_when_no_set_can_avoid_them() {
    let mut rig = Rig::confirmed();
    let blame = |kind, accused| SignResponse::Blame { id: sid(kind, 0), accused };
    // A first dispute, in Batch 0's preferred set.
    let first = SignKind::Batch(0);
    let set = signing_set(&first, 0, &HOLDERS, &[], 3);
    for v in &set {
        rig.preprocess(*v, first, 0);
    }
    assert_eq!(rig.sign(set[0], blame(first, set[1])), SignOutcome::Progress);
    let (a, b) = (set[0], set[1]);
    let others: Vec<u16> = HOLDERS.iter().copied().filter(|v| *v != a && *v != b).collect();
    let (c, d) = (others[0], others[1]);
    // A second one, between the other two, in Batch 1 (they answer first, with a).
    let second = SignKind::Batch(1);
    for v in [c, d, a] {
        rig.preprocess(v, second, 0);
    }
    assert_eq!(rig.sign(c, blame(second, d)), SignOutcome::Progress);
    rig.sent();
    let disputes = rig.status().sets[0].signing.disputes.clone();
    assert_eq!(disputes.len(), 2, "{disputes:?}");

    // Every 3 of the 4 hold a disputed pair: with all four in, the set is chosen anyway.
    let third = SignKind::Batch(2);
    for v in HOLDERS {
        rig.preprocess(v, third, 0);
    }
    let relayed = rig.sent();
    assert_eq!(relayed.len(), 3, "relayed to a set of 3: {relayed:?}");
    assert!(relayed
        .iter()
        .all(|(_, m)| matches!(m, CoordinatorMessage::Sign(SignRequest::Preprocesses { .. }))));
}

/// Two key holders that always answer first and then withhold their shares, taking turns
/// (3 of 5 sign): an item's exclusions accumulate over its attempts, so after one timeout
/// each both are out of it, and the three others sign. (Excluded for one attempt only,
/// they would take turns for ever.)
#[test]
fn withholders_taking_turns_are_excluded_for_the_rest_of_the_item() {
    let rig = Rig::confirmed_with(&[1, 2, 3, 4, 5]);
    let kind = SignKind::Batch(0);
    let timeout = SIGN_TIMEOUT.as_millis() as u64;
    // Attempt 0: 1, 2 and 3 answer first; 1 withholds its share.
    for v in [1, 2, 3, 4, 5] {
        rig.preprocess(v, kind, 0);
    }
    let set = rig.status().sets[0].signing.in_progress[0].selected.clone();
    assert_eq!(set, vec![1, 2, 3]);
    for v in [2, 3] {
        rig.share(v, kind, 0);
    }
    rig.clock.advance(timeout);
    assert!(rig.check_timeouts());
    // Attempt 1: 1 is out; 2, 3 and 4 answer first; 2 withholds.
    for v in [1, 2, 3, 4, 5] {
        rig.preprocess(v, kind, 1);
    }
    let item = rig.status().sets[0].signing.in_progress[0].clone();
    assert_eq!((item.excluded.clone(), item.selected.clone()), (vec![1], vec![2, 3, 4]));
    for v in [3, 4] {
        rig.share(v, kind, 1);
    }
    rig.clock.advance(timeout);
    assert!(rig.check_timeouts());
    // Attempt 2: both are out, whoever answers first; the other three sign.
    for v in [1, 2, 3, 4, 5] {
        rig.preprocess(v, kind, 2);
    }
    let item = rig.status().sets[0].signing.in_progress[0].clone();
    assert_eq!(
        (item.excluded, item.selected, item.stage.as_str()),
        (vec![1, 2], vec![3, 4, 5], "shares")
    );
}
