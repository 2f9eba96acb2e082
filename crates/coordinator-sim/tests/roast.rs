//! Concurrent signing sessions (ROAST, `signing_selection = "roast"`): a member that
//! preprocessed and then withholds its share costs no timeout, because the next set forms
//! from the key holders free again while the first session waits; a wrong share ends only
//! its session. Real keys, preprocesses and shares; the clock never moves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rig;

use coordinator_sim::config::Selection;
use coordinator_sim::signing::SignOutcome;
use messages::{CoordinatorMessage, SignKind, SignRequest, SignResponse};

use rig::*;

fn item(rig: &Rig, id: &str) -> Option<coordinator_sim::status::SignItemStatus> {
    rig.status().sets[0].signing.in_progress.iter().find(|i| i.id == id).cloned()
}

/// The set fixed for `attempt` of Batch 0 (the first `t` to answer): an open session's
/// with ROAST, the item's own otherwise.
fn fixed(rig: &Rig, selection: Selection, attempt: u32) -> Vec<u16> {
    let status = item(rig, "0").unwrap();
    if selection == Selection::Roast {
        status.sessions.iter().find(|s| s.attempt == attempt).unwrap().selected.clone()
    } else {
        assert_eq!(status.attempt, attempt);
        status.selected
    }
}

fn asked(sent: &[(u16, CoordinatorMessage)], attempt: u32) -> Vec<u16> {
    sent.iter()
        .filter_map(|(to, m)| match m {
            CoordinatorMessage::Sign(SignRequest::Reattempt { id }) if id.attempt == attempt => {
                Some(*to)
            }
            _ => None,
        })
        .collect()
}

/// 3-of-4: the first set's member `w` preprocesses, then never shares. With ROAST the
/// other members, free again once they shared, and the key holder left out form the next
/// set at once, and it signs; with one attempt at a time (`responsive`) the item waits for
/// the timeout instead.
#[test]
fn a_member_withholding_its_share_costs_no_timeout() {
    for selection in [Selection::Roast, Selection::Responsive] {
        let mut rig = Rig::confirmed_checking().with_selection(selection);
        let b = batch(0, &[(1, 5_000)]);
        report_everywhere(&rig, &b);
        let kind = SignKind::Batch(0);
        let first = Attempt::preprocess(&mut rig, &b, 0, &HOLDERS);
        let set0 = fixed(&rig, selection, 0);
        let outsider = *HOLDERS.iter().find(|v| !set0.contains(v)).unwrap();
        let sent = rig.sent();
        let (withholder, sharers) = (set0[0], [set0[1], set0[2]]);
        let shares = first.only(&set0).shares();
        for v in sharers {
            let share = shares[&v].clone();
            let outcome = rig.sign(v, SignResponse::Share { id: sid(kind, 0), share });
            assert_eq!(outcome, SignOutcome::Progress);
        }
        let sent = [sent, rig.sent()].concat();
        if selection == Selection::Responsive {
            // One attempt at a time: nobody is asked for another until the timeout.
            assert!(asked(&sent, 1).is_empty(), "{sent:?}");
            assert!(!rig.timeout_due());
            assert_eq!(item(&rig, "0").unwrap().waiting_for, vec![withholder]);
            continue;
        }
        // ROAST: the key holder left out was asked when the set was fixed, the sharers as
        // their shares came in; the withholder was not (it holds the first set's nonces).
        let mut expected = vec![outsider, sharers[0], sharers[1]];
        expected.sort_unstable();
        let mut got = asked(&sent, 1);
        got.sort_unstable();
        got.dedup();
        assert_eq!(got, expected);
        let status = item(&rig, "0").unwrap();
        assert_eq!((status.attempt, status.stage.as_str()), (1, "preprocesses"));
        assert_eq!(status.sessions.len(), 1);
        assert_eq!(
            (status.sessions[0].attempt, status.sessions[0].selected.clone()),
            (0, set0.clone())
        );
        // They answer: the second set forms without the withholder, and signs.
        let second = Attempt::preprocess(&mut rig, &b, 1, &expected);
        let status = item(&rig, "0").unwrap();
        assert_eq!(status.attempt, 2, "{status:?}");
        let set1 = status.sessions.iter().find(|s| s.attempt == 1).unwrap().selected.clone();
        assert_eq!(set1, expected);
        rig.sent();
        for (v, share) in second.only(&set1).shares() {
            rig.sign(v, SignResponse::Share { id: sid(kind, 1), share });
        }
        let sent = rig.sent();
        assert_eq!(relayed_shares(&sent), 3, "{sent:?}");
        let status = item(&rig, "0").unwrap();
        assert!(status.sessions.iter().any(|s| s.attempt == 1 && s.stage == "completing"));
        // A signed Batch completes it; no deadline was ever due, no preprocess conflicted.
        assert!(!rig.timeout_due());
        assert_eq!(rig.signed(set1[0], &b), SignOutcome::Progress);
        assert!(item(&rig, "0").is_none());
        let signing = rig.status().sets[0].signing.clone();
        assert_eq!((signing.completed_batches, signing.conflicting_preprocesses), (1, 0));
        assert!(signing.convictions.is_empty());
    }
}

/// With ROAST, a wrong share ends only its own session: its sender is convicted, its
/// honest members are asked for the forming set, and signing goes on without it.
#[test]
fn a_wrong_share_ends_only_its_session() {
    let mut rig = Rig::confirmed_checking().with_selection(Selection::Roast);
    let b = batch(0, &[]);
    report_everywhere(&rig, &b);
    let kind = SignKind::Batch(0);
    let first = Attempt::preprocess(&mut rig, &b, 0, &HOLDERS);
    let set0 = fixed(&rig, Selection::Roast, 0);
    rig.sent();
    let shares = first.only(&set0).shares();
    let cheat = set0[1];
    rig.sign(set0[0], SignResponse::Share { id: sid(kind, 0), share: shares[&set0[0]].clone() });
    let wrong = tampered(&shares[&cheat]);
    assert_eq!(
        rig.sign(cheat, SignResponse::Share { id: sid(kind, 0), share: wrong }),
        SignOutcome::Progress
    );
    let signing = rig.status().sets[0].signing.clone();
    assert_eq!(signing.convictions.iter().map(|c| c.validator).collect::<Vec<_>>(), vec![cheat]);
    let status = item(&rig, "0").unwrap();
    assert!(status.sessions.is_empty(), "the session ended: {status:?}");
    // Every honest key holder is asked for attempt 1 (set0[2] once the session ended).
    let mut got = asked(&rig.sent(), 1);
    got.sort_unstable();
    got.dedup();
    let honest: Vec<u16> = HOLDERS.iter().copied().filter(|v| *v != cheat).collect();
    // set0[0] was asked when it shared, the outsider when the set was fixed: all of them
    // were asked by now (some before this point).
    assert!(got.iter().all(|v| honest.contains(v)), "{got:?}");
    let second = Attempt::preprocess(&mut rig, &b, 1, &honest);
    let status = item(&rig, "0").unwrap();
    let set1 = status.sessions.iter().find(|s| s.attempt == 1).unwrap().selected.clone();
    assert_eq!(set1, honest);
    for (v, share) in second.only(&set1).shares() {
        rig.sign(v, SignResponse::Share { id: sid(kind, 1), share });
    }
    assert_eq!(relayed_shares(&rig.sent()), 3);
}

/// Found in review: a malicious key holder W, after every set it is in is fixed, sends a
/// preprocess for the next attempt unasked (it is never asked: it owes a share) and never
/// shares. It answered first, so every forming set counted it, every session stalled on
/// it, and each fix was "progress": no timeout either, for good. A key holder owing a
/// share now counts in no other set.
#[test]
fn a_withholder_preprocessing_unasked_enters_no_other_session() {
    let mut rig = Rig::confirmed_checking().with_selection(Selection::Roast);
    let b = batch(0, &[(1, 5_000)]);
    report_everywhere(&rig, &b);
    let kind = SignKind::Batch(0);
    let mut current = Attempt::preprocess(&mut rig, &b, 0, &HOLDERS);
    let status = item(&rig, "0").unwrap();
    let set0 = status.sessions.iter().find(|s| s.attempt == 0).unwrap().selected.clone();
    let w = set0[0];
    let mut set = set0;
    for attempt in 0..10u32 {
        // W preprocesses the next attempt at once (unasked), then the honest answer.
        let honest: Vec<u16> = HOLDERS.iter().copied().filter(|v| *v != w).collect();
        let next_w = Attempt::preprocess(&mut rig, &b, attempt + 1, &[w]);
        // The honest members of `set` share (W withholds).
        let shares = current.only(&set).shares();
        for v in set.iter().filter(|v| **v != w) {
            let out = rig
                .sign(*v, SignResponse::Share { id: sid(kind, attempt), share: shares[v].clone() });
            assert_eq!(out, SignOutcome::Progress);
        }
        rig.clock.advance(SIGN_TIMEOUT.as_millis() as u64 / 2);
        let next_h = Attempt::preprocess(&mut rig, &b, attempt + 1, &honest);
        let status = item(&rig, "0").unwrap();
        let s = status.sessions.iter().find(|s| s.attempt == attempt + 1);
        if let Some(signing) = status.sessions.iter().find(|s| s.stage == "completing") {
            // A session without W has every share: the item signs.
            assert!(!signing.selected.contains(&w), "{status:?}");
            return;
        }
        let s = s.unwrap_or_else(|| panic!("attempt {}: no set fixed: {status:?}", attempt + 1));
        set = s.selected.clone();
        assert!(
            !set.contains(&w),
            "attempt {}: W={w} owes a share in {:?} yet is in the new set {set:?}; open sessions {}, timeout due {}",
            attempt + 1,
            status.sessions.iter().map(|s| s.attempt).collect::<Vec<_>>(),
            status.sessions.len(),
            rig.timeout_due()
        );
        let mut all = next_h;
        all.signing.extend(next_w.signing);
        all.preprocesses.extend(next_w.preprocesses);
        current = all;
    }
}

/// Found in review: a session reaches Completing (every share relayed) but no signed Batch
/// arrives within the timeout (its members crashed after sharing). One attempt at a time,
/// that timeout excludes nobody. With ROAST the last sharer, never asked for the forming
/// attempt (asking stops once a session signs), was counted as silent and excluded from
/// the item; now only missing shares are silence while a session signs.
#[test]
fn the_last_sharer_of_a_completing_session_is_not_excluded_on_timeout() {
    for selection in [Selection::Responsive, Selection::Roast] {
        let mut rig = Rig::confirmed_checking().with_selection(selection);
        let b = batch(0, &[(1, 5_000)]);
        report_everywhere(&rig, &b);
        let kind = SignKind::Batch(0);
        let first = Attempt::preprocess(&mut rig, &b, 0, &HOLDERS);
        let status = item(&rig, "0").unwrap();
        let set0 = if selection == Selection::Roast {
            status.sessions.iter().find(|s| s.attempt == 0).unwrap().selected.clone()
        } else {
            status.selected.clone()
        };
        let outsider = *HOLDERS.iter().find(|v| !set0.contains(v)).unwrap();
        let shares = first.only(&set0).shares();
        if selection == Selection::Roast {
            Attempt::preprocess(&mut rig, &b, 1, &[outsider]);
        }
        // Members share in order; each (ROAST) answers the forming attempt at once, except
        // the last one, which is not asked.
        for (i, v) in set0.iter().enumerate() {
            rig.sign(*v, SignResponse::Share { id: sid(kind, 0), share: shares[v].clone() });
            if selection == Selection::Roast && i == 0 {
                Attempt::preprocess(&mut rig, &b, 1, &[*v]);
            }
        }
        if selection == Selection::Roast {
            // The second sharer's answer arrives after the last share.
            Attempt::preprocess(&mut rig, &b, 1, &[set0[1]]);
        }
        let last = *set0.last().unwrap();
        let status = item(&rig, "0").unwrap();
        assert!(status.excluded.is_empty(), "{status:?}");
        rig.clock.advance(SIGN_TIMEOUT.as_millis() as u64);
        assert!(rig.check_timeouts());
        let status = item(&rig, "0").unwrap();
        assert!(
            !status.excluded.contains(&last),
            "{selection:?}: honest last sharer {last} excluded: {:?}",
            status.excluded
        );
    }
}
