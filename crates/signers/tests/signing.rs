//! Real FROST over Ristretto through bytes, with processors on redb files: signing,
//! restarts, reattempts, blame and completion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use messages::{Session, SignId, SignKind, SignRequest, SignResponse};
use signers::{batch, Handled, Signers};

/// Rewrites signer 2's share, given its share and another valid one.
type ShareTamper = fn(&[u8], &[u8]) -> Vec<u8>;
/// Rewrites a preprocess.
type PreprocessTamper = fn(&[u8]) -> Vec<u8>;

/// Every node starts attempt 0 of `b`: their preprocesses.
fn start_all(nodes: &mut [Node], b: &primitives::Batch) -> BTreeMap<u16, Vec<u8>> {
    nodes.iter_mut().map(|n| (n.me, preprocess_of(n.start(b), id(b, 0)))).collect()
}

/// Every node in `to` answers a Reattempt of `b` at `attempt`.
fn reattempt_all(
    nodes: &mut [Node],
    b: &primitives::Batch,
    attempt: u32,
    to: &[u16],
) -> BTreeMap<u16, Vec<u8>> {
    let request = SignRequest::Reattempt { id: id(b, attempt) };
    to.iter()
        .map(|i| {
            let handled = node(nodes, *i).handle(b, &request);
            (*i, preprocess_of(Some(reply(handled)), id(b, attempt)))
        })
        .collect()
}

#[test]
fn two_of_three_and_three_of_five_sign_batches_that_verify() {
    for (t, n, sets) in
        [(2u16, 3u16, vec![vec![1u16, 2], vec![3, 1]]), (3, 5, vec![vec![1, 2, 3], vec![2, 4, 5]])]
    {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = nodes(&dir, t, n);
        let key = group_key(&nodes[0].keys);
        for (i, set) in sets.iter().enumerate() {
            let b = batch(10 + i as u32);
            let pre = start_all(&mut nodes, &b);
            assert!(pre.values().all(|p| p.len() == 64), "a Ristretto preprocess is 2 points");
            let signature = sign_with(&mut nodes, &b, id(&b, 0), &pre, set);
            assert_eq!(batch::verify(&key, &b, &signature), Ok(()), "{t}-of-{n} set {set:?}");
            // Not a signature of any other Batch, nor under another key.
            assert_eq!(
                batch::verify(&key, &batch(99), &signature),
                Err(batch::VerifyError::Invalid)
            );
            let mut other = b.clone();
            other.block.0[0] ^= 1;
            assert_eq!(batch::verify(&key, &other, &signature), Err(batch::VerifyError::Invalid));
            let other_key = group_key(&keys(t, n)[0]);
            assert_eq!(batch::verify(&other_key, &b, &signature), Err(batch::VerifyError::Invalid));

            // Duplicates of either round are ignored now that the machines are spent.
            for member in set {
                let node = node(&mut nodes, *member);
                let dup =
                    SignRequest::Preprocesses { id: id(&b, 0), preprocesses: subset(&pre, set) };
                assert!(matches!(node.handle(&b, &dup), Handled::Ignored(_)));
            }
            // A node outside the set still holds its preprocess, unused.
            for outsider in (1..=n).filter(|i| !set.contains(i)) {
                let status =
                    Signers::attempts(&node(&mut nodes, outsider).db().read().unwrap(), SESSION)
                        .unwrap();
                assert!(status.contains(&(SignKind::Batch(b.id), 0, false)));
            }
            for node in nodes.iter_mut() {
                node.complete(SignKind::Batch(b.id));
                let read = node.db().read().unwrap();
                assert!(Signers::is_complete(&read, SESSION, SignKind::Batch(b.id)).unwrap());
                assert!(Signers::attempts(&read, SESSION).unwrap().contains(&(
                    SignKind::Batch(b.id),
                    0,
                    true
                )));
            }
        }
    }
}

#[test]
fn a_restart_forfeits_the_attempt_and_a_reattempt_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 2, 3);
    let key = group_key(&nodes[0].keys);
    let b = batch(5);
    let pre0 = start_all(&mut nodes, &b);

    node(&mut nodes, 1).restart();
    {
        let n1 = node(&mut nodes, 1);
        assert!(Signers::attempted(&n1.db().read().unwrap(), &id(&b, 0)).unwrap());
        assert_eq!(n1.start(&b), None, "attempt 0 was released before the restart");
    }
    // The coordinator goes on with attempt 0 and set {1, 2}: 1 has no machine.
    let request = SignRequest::Preprocesses { id: id(&b, 0), preprocesses: subset(&pre0, &[1, 2]) };
    assert_eq!(
        node(&mut nodes, 1).handle(&b, &request),
        Handled::Ignored("no machine for this attempt")
    );
    let share2 = share_of(node(&mut nodes, 2).handle(&b, &request), id(&b, 0));
    let shares = SignRequest::Shares {
        id: id(&b, 0),
        shares: BTreeMap::from([(1, vec![0; 32]), (2, share2)]),
    };
    assert_eq!(
        node(&mut nodes, 1).handle(&b, &shares),
        Handled::Ignored("no machine for this attempt")
    );

    // The attempt stalls: Reattempt(1) to everyone is answered, by the restarted node too.
    let pre1 = reattempt_all(&mut nodes, &b, 1, &[1, 2, 3]);
    assert!(pre1.iter().all(|(i, p)| pre0[i] != *p), "fresh nonces");
    let signature = sign_with(&mut nodes, &b, id(&b, 1), &pre1, &[1, 2]);
    assert_eq!(batch::verify(&key, &b, &signature), Ok(()));

    // Neither the same attempt again nor an older one is answered, before or after
    // another restart.
    for restart in [false, true] {
        let n1 = node(&mut nodes, 1);
        if restart {
            n1.restart();
        }
        for attempt in [0, 1] {
            let request = SignRequest::Reattempt { id: id(&b, attempt) };
            assert!(matches!(n1.handle(&b, &request), Handled::Ignored(_)), "attempt {attempt}");
        }
        assert_eq!(n1.start(&b), None);
    }
    let status = Signers::attempts(&node(&mut nodes, 1).db().read().unwrap(), SESSION).unwrap();
    assert_eq!(status, vec![(SignKind::Batch(5), 1, false)]);
}

#[test]
fn reattempts_only_go_forward() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 2, 3);
    let b = batch(1);
    let n1 = node(&mut nodes, 1);
    // A Reattempt can come before the item is started here: it is answered, and a later
    // start does not go back to attempt 0.
    let pre3 = preprocess_of(
        Some(reply(n1.handle(&b, &SignRequest::Reattempt { id: id(&b, 3) }))),
        id(&b, 3),
    );
    assert_eq!(n1.start(&b), None);
    let never_attempted = id(&b, 2);
    assert!(!Signers::attempted(&n1.db().read().unwrap(), &never_attempted).unwrap());
    assert_eq!(
        n1.handle(&b, &SignRequest::Reattempt { id: never_attempted }),
        Handled::Ignored("older than the latest attempt")
    );
    assert_eq!(
        n1.handle(&b, &SignRequest::Reattempt { id: id(&b, 3) }),
        Handled::Ignored("attempt already released")
    );
    // A jump ahead is fine, and drops attempt 3's machine.
    let pre7 = preprocess_of(
        Some(reply(n1.handle(&b, &SignRequest::Reattempt { id: id(&b, 7) }))),
        id(&b, 7),
    );
    assert_ne!(pre3, pre7);
    let stale = SignRequest::Preprocesses {
        id: id(&b, 3),
        preprocesses: BTreeMap::from([(1, pre3), (2, vec![0; 64])]),
    };
    assert_eq!(n1.handle(&b, &stale), Handled::Ignored("no machine for this attempt"));
    // An unknown item is not answered, and nothing is recorded for it.
    let unknown = batch(2);
    let request = SignRequest::Reattempt { id: id(&unknown, 1) };
    assert_eq!(n1.handle(&b, &request), Handled::Ignored("unknown or finished item"));
    assert!(!Signers::attempted(&n1.db().read().unwrap(), &id(&unknown, 1)).unwrap());
    // Another session's requests are not ours.
    let other = SignId { session: Session(SESSION.0 + 1), ..id(&b, 8) };
    assert_eq!(
        n1.handle(&b, &SignRequest::Reattempt { id: other }),
        Handled::Ignored("another session")
    );
}

#[test]
fn an_aborted_transaction_releases_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 2, 3);
    let b = batch(4);
    let n1 = node(&mut nodes, 1);
    {
        let mut txn = n1.db().write().unwrap();
        let out = n1
            .signers
            .start(&mut txn, SignKind::Batch(4), signers::batch_machine(n1.keys.clone(), &b))
            .unwrap();
        assert!(out.is_some());
        // Dropped without commit: the Preprocess never left.
    }
    assert!(!Signers::attempted(&n1.db().read().unwrap(), &id(&b, 0)).unwrap());
    // So attempt 0 is still to be released (with fresh nonces).
    let pre = preprocess_of(n1.start(&b), id(&b, 0));
    assert_eq!(pre.len(), 64);
    assert!(Signers::attempted(&n1.db().read().unwrap(), &id(&b, 0)).unwrap());
}

#[test]
fn the_set_must_hold_our_own_preprocess_and_another_signer() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 2, 3);
    let key = group_key(&nodes[0].keys);
    let b = batch(6);
    let pre = start_all(&mut nodes, &b);
    let attempt = id(&b, 0);
    let n1 = node(&mut nodes, 1);
    let cases = [
        (subset(&pre, &[2, 3]), "not in the signing set"),
        (subset(&pre, &[1]), "no other signer"),
        (
            BTreeMap::from([(1, pre[&2].clone()), (2, pre[&2].clone())]),
            "the set's preprocess for us is not ours",
        ),
    ];
    for (preprocesses, reason) in cases {
        let request = SignRequest::Preprocesses { id: attempt, preprocesses };
        assert_eq!(n1.handle(&b, &request), Handled::Ignored(reason));
    }
    // The machine survived those: the attempt still signs.
    let signature = sign_with(&mut nodes, &b, attempt, &pre, &[1, 3]);
    assert_eq!(batch::verify(&key, &b, &signature), Ok(()));
}

#[test]
fn shares_of_another_set_do_not_burn_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 2, 3);
    let key = group_key(&nodes[0].keys);
    let b = batch(8);
    let pre = start_all(&mut nodes, &b);
    let attempt = id(&b, 0);
    let request = SignRequest::Preprocesses { id: attempt, preprocesses: subset(&pre, &[1, 2]) };
    let s1 = share_of(node(&mut nodes, 1).handle(&b, &request), attempt);
    let s2 = share_of(node(&mut nodes, 2).handle(&b, &request), attempt);
    let n1 = node(&mut nodes, 1);
    let partial = SignRequest::Shares { id: attempt, shares: BTreeMap::from([(1, s1.clone())]) };
    assert_eq!(n1.handle(&b, &partial), Handled::Ignored("shares are not the signing set's"));
    let foreign = SignRequest::Shares {
        id: attempt,
        shares: BTreeMap::from([(1, s1.clone()), (3, s2.clone())]),
    };
    assert_eq!(n1.handle(&b, &foreign), Handled::Ignored("shares are not the signing set's"));
    let right = SignRequest::Shares { id: attempt, shares: BTreeMap::from([(1, s1), (2, s2)]) };
    let signature = signed_of(n1.handle(&b, &right), attempt);
    assert_eq!(batch::verify(&key, &b, &signature), Ok(()));
    assert_eq!(n1.handle(&b, &right), Handled::Ignored("attempt already answered (duplicate)"));
}

#[test]
fn a_tampered_share_is_blamed_on_its_sender() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 3, 5);
    let b = batch(2);
    let set = [1u16, 2, 4];
    let mut pre = start_all(&mut nodes, &b);
    // Attempt 0: 2's share replaced by a valid scalar (4's share): FROST's identifiable
    // abort. Attempt 1: 2's share is not a canonical scalar. Attempt 2: 2's share has a
    // trailing byte.
    let tamperings: [ShareTamper; 3] =
        [|_, other| other.to_vec(), |_, _| vec![0xff; 32], |mine, _| [mine, &[0]].concat()];
    for (attempt, tamper) in tamperings.iter().enumerate() {
        let attempt = attempt as u32;
        if attempt > 0 {
            pre = reattempt_all(&mut nodes, &b, attempt, &[1, 2, 3, 4, 5]);
        }
        let sid = id(&b, attempt);
        let request = SignRequest::Preprocesses { id: sid, preprocesses: subset(&pre, &set) };
        let mut shares: BTreeMap<u16, Vec<u8>> = set
            .iter()
            .map(|i| (*i, share_of(node(&mut nodes, *i).handle(&b, &request), sid)))
            .collect();
        shares.insert(2, tamper(&shares[&2], &shares[&4]));
        let request = SignRequest::Shares { id: sid, shares };
        for honest in [1, 4] {
            let handled = node(&mut nodes, honest).handle(&b, &request);
            assert_eq!(
                handled,
                Handled::Reply(SignResponse::Blame { id: sid, accused: 2 }),
                "attempt {attempt}"
            );
            // The machine is gone.
            assert_eq!(
                node(&mut nodes, honest).handle(&b, &request),
                Handled::Ignored("attempt already answered (duplicate)")
            );
        }
    }
}

#[test]
fn a_malformed_preprocess_is_blamed_on_its_sender() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 2, 3);
    let key = group_key(&nodes[0].keys);
    let b = batch(3);
    let pre0 = start_all(&mut nodes, &b);
    let mut pre = pre0.clone();
    let n = pre[&2].len();
    pre.get_mut(&2).unwrap().truncate(n - 1);
    let sid = id(&b, 0);
    for honest in [1, 3] {
        let request =
            SignRequest::Preprocesses { id: sid, preprocesses: subset(&pre, &[honest, 2]) };
        assert_eq!(
            node(&mut nodes, honest).handle(&b, &request),
            Handled::Reply(SignResponse::Blame { id: sid, accused: 2 })
        );
    }
    // Trailing bytes, and a point that is not on the curve, are blamed too.
    let tamperings: [PreprocessTamper; 2] =
        [|p| [p, &[0]].concat(), |p| [&[0xff; 32], &p[32..]].concat()];
    for (i, tamper) in tamperings.iter().enumerate() {
        let attempt = 1 + i as u32;
        let mut pre = reattempt_all(&mut nodes, &b, attempt, &[1, 2, 3]);
        let tampered = tamper(&pre[&3]);
        pre.insert(3, tampered);
        let sid = id(&b, attempt);
        let request = SignRequest::Preprocesses { id: sid, preprocesses: subset(&pre, &[1, 3]) };
        assert_eq!(
            node(&mut nodes, 1).handle(&b, &request),
            Handled::Reply(SignResponse::Blame { id: sid, accused: 3 })
        );
    }
    // Attempt 3 without the culprit signs.
    let pre = reattempt_all(&mut nodes, &b, 3, &[1, 2]);
    let signature = sign_with(&mut nodes, &b, id(&b, 3), &pre, &[1, 2]);
    assert_eq!(batch::verify(&key, &b, &signature), Ok(()));
}

#[test]
fn completed_kinds_ignore_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 2, 3);
    let b = batch(9);
    let pre = start_all(&mut nodes, &b);
    let sid = id(&b, 0);
    let request = SignRequest::Preprocesses { id: sid, preprocesses: subset(&pre, &[1, 2]) };
    let s1 = share_of(node(&mut nodes, 1).handle(&b, &request), sid);
    let s2 = share_of(node(&mut nodes, 2).handle(&b, &request), sid);
    // 3 saw the eventuality before signing; 1 completes with its machine mid-flight.
    for i in [1, 3] {
        node(&mut nodes, i).complete(SignKind::Batch(9));
    }
    let requests = [
        SignRequest::Preprocesses { id: sid, preprocesses: subset(&pre, &[1, 3]) },
        SignRequest::Shares { id: sid, shares: BTreeMap::from([(1, s1), (2, s2)]) },
        SignRequest::Reattempt { id: id(&b, 1) },
        SignRequest::Reattempt { id: id(&b, 100) },
    ];
    for i in [1, 3] {
        for restart in [false, true] {
            let n = node(&mut nodes, i);
            if restart {
                n.restart();
            }
            assert_eq!(n.start(&b), None);
            for request in &requests {
                assert_eq!(n.handle(&b, request), Handled::Ignored("the item is complete"));
            }
            let read = n.db().read().unwrap();
            assert!(!Signers::attempted(&read, &id(&b, 1)).unwrap());
            assert_eq!(
                Signers::attempts(&read, SESSION).unwrap(),
                vec![(SignKind::Batch(9), 0, true)]
            );
        }
    }
    // Completed from the coordinator is the caller's business.
    let completed = SignRequest::Completed { session: SESSION, plan: [1; 32], tx: vec![] };
    assert!(matches!(node(&mut nodes, 2).handle(&b, &completed), Handled::Ignored(_)));
}

#[test]
fn a_set_below_the_threshold_fails_without_blame() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 3, 5);
    let b = batch(12);
    let pre = start_all(&mut nodes, &b);
    let sid = id(&b, 0);
    let request = SignRequest::Preprocesses { id: sid, preprocesses: subset(&pre, &[1, 2]) };
    match node(&mut nodes, 1).handle(&b, &request) {
        Handled::Failed { id, reason } => {
            assert_eq!(id, sid);
            assert!(reason.contains("not enough signers"), "{reason}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // The nonces are gone with the machine: even the right set is not answered.
    let request = SignRequest::Preprocesses { id: sid, preprocesses: subset(&pre, &[1, 2, 3]) };
    assert_eq!(
        node(&mut nodes, 1).handle(&b, &request),
        Handled::Ignored("attempt already answered (duplicate)")
    );
}

/// Concurrent sessions (ROAST): signers that shared in attempt 0 release attempt 1 while
/// attempt 0 still waits for a withheld share; attempt 1 signs without the withholder, and
/// attempt 0, completed afterwards, still aggregates (its machines were kept). An unused
/// older preprocess is not: a signer keeps at most one.
#[test]
fn an_earlier_attempt_still_aggregates_after_a_later_one_was_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 2, 4);
    let key = group_key(&nodes[0].keys);
    let b = batch(3);
    let pre0 = start_all(&mut nodes, &b);
    // Attempt 0: members 1 and 2; 2 shares, 1 holds its share back for now.
    let set0 = [1u16, 2];
    let request = SignRequest::Preprocesses { id: id(&b, 0), preprocesses: subset(&pre0, &set0) };
    let shares0: BTreeMap<u16, Vec<u8>> = set0
        .iter()
        .map(|i| (*i, share_of(node(&mut nodes, *i).handle(&b, &request), id(&b, 0))))
        .collect();
    // Attempt 1 starts meanwhile: 2 (which shared), 3 and 4 preprocess it.
    let pre1 = reattempt_all(&mut nodes, &b, 1, &[2, 3, 4]);
    // Member 3's unused attempt-0 machine is gone: it keeps one pending preprocess.
    let stale = SignRequest::Preprocesses { id: id(&b, 0), preprocesses: subset(&pre0, &[3, 4]) };
    assert!(matches!(node(&mut nodes, 3).handle(&b, &stale), Handled::Ignored(_)));
    let signature1 = sign_with(&mut nodes, &b, id(&b, 1), &pre1, &[2, 3]);
    assert_eq!(batch::verify(&key, &b, &signature1), Ok(()));
    // Attempt 0 completes late: member 2 (which has released attempt 1 since) aggregates it.
    let request = SignRequest::Shares { id: id(&b, 0), shares: shares0 };
    let signature0 = signed_of(node(&mut nodes, 2).handle(&b, &request), id(&b, 0));
    assert_eq!(batch::verify(&key, &b, &signature0), Ok(()));
    // And member 1, whose only machine is attempt 0's.
    let signature = signed_of(node(&mut nodes, 1).handle(&b, &request), id(&b, 0));
    assert_eq!(signature, signature0);
}

/// A processor asked for attempt 2 of an item before it had made the item (a Reattempt it
/// had to ignore) starts the item at attempt 2: its first preprocess counts in the
/// coordinator's forming set. The same rules as `start`: once anything was released,
/// nothing more is.
#[test]
fn an_item_started_late_starts_at_the_attempt_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = nodes(&dir, 2, 3);
    let b = batch(8);
    let node = node(&mut nodes, 1);
    let mut txn = node.db().write().unwrap();
    let kind = SignKind::Batch(b.id);
    let first = node
        .signers
        .start_at(&mut txn, kind, 2, signers::batch_machine(node.keys.clone(), &b))
        .unwrap();
    txn.commit().unwrap();
    assert_eq!(preprocess_of(first, id(&b, 2)).len(), 64);
    let mut txn = node.db().write().unwrap();
    let again = node
        .signers
        .start_at(&mut txn, kind, 3, signers::batch_machine(node.keys.clone(), &b))
        .unwrap();
    assert!(again.is_none(), "a second start released {again:?}");
    assert!(node
        .signers
        .start(&mut txn, kind, signers::batch_machine(node.keys.clone(), &b))
        .unwrap()
        .is_none());
}
