//! Choosing signing sets: who is eligible, the preferred set by hash, and sets without
//! disputed pairs.
use messages::{Participant, SignKind};
use primitives::codec::encode_body;

/// The signing set of `kind`'s `attempt`: the `threshold` members of `holders` not in
/// `excluded` with the lowest `hash("tc/sim/v1/signing-set", [borsh(kind), attempt LE,
/// participant LE])`, ascending. If fewer than `threshold` remain after the exclusions,
/// nobody is excluded.
pub fn signing_set(
    kind: &SignKind,
    attempt: u32,
    holders: &[Participant],
    excluded: &[Participant],
    threshold: u16,
) -> Vec<Participant> {
    signing_set_avoiding(kind, attempt, holders, excluded, &[], threshold)
}

/// [`signing_set`] without two members in dispute (one blamed the other: one of the two
/// lies), found by [`disputeless`] (members in fewer disputes first, then in hash order).
/// If no such set exists without the excluded members, the disputes are set aside for
/// this attempt (the exclusions are not: an excluded member was silent).
pub fn signing_set_avoiding(
    kind: &SignKind,
    attempt: u32,
    holders: &[Participant],
    excluded: &[Participant],
    disputes: &[(Participant, Participant)],
    threshold: u16,
) -> Vec<Participant> {
    let t = usize::from(threshold);
    let mut candidates: Vec<Participant> =
        holders.iter().copied().filter(|p| !excluded.contains(p)).collect();
    if candidates.len() < t {
        candidates = holders.to_vec();
    }
    let pick = |from: &[Participant], disputes: &[(Participant, Participant)]| {
        disputeless(kind, attempt, holders, from, disputes, threshold)
    };
    // The exclusions (silent key holders: they would stall the attempt for sure) come
    // before the disputes (one of the pair lies: it may).
    let mut set = pick(&candidates, disputes)
        .or_else(|| pick(&candidates, &[]))
        .or_else(|| pick(holders, disputes))
        .unwrap_or_default();
    set.sort_unstable();
    set
}

/// `threshold` members of `candidates` with no two in dispute, if there are: the first
/// such set in the order of the members' disputes with `holders` (fewest first), then of
/// `hash("tc/sim/v1/signing-set", [borsh(kind), attempt LE, participant LE])`, found by a
/// backtracking search (so a set is found whenever one exists, up to a bound of
/// [`SEARCH_STEPS`] steps); ascending.
pub fn disputeless(
    kind: &SignKind,
    attempt: u32,
    holders: &[Participant],
    candidates: &[Participant],
    disputes: &[(Participant, Participant)],
    threshold: u16,
) -> Option<Vec<Participant>> {
    let kind = encode_body(kind);
    let in_dispute = |a: Participant, b: Participant| disputes.contains(&(a.min(b), a.max(b)));
    let degree = |p: Participant| holders.iter().filter(|q| in_dispute(p, **q)).count();
    let mut ranked: Vec<(usize, [u8; 32], Participant)> = candidates
        .iter()
        .map(|p| {
            let h = primitives::hash(
                b"tc/sim/v1/signing-set",
                &[&kind, &attempt.to_le_bytes(), &p.to_le_bytes()],
            );
            (degree(*p), h, *p)
        })
        .collect();
    ranked.sort_unstable();
    let ranked: Vec<Participant> = ranked.into_iter().map(|(_, _, p)| p).collect();
    let mut set = vec![];
    let mut steps = SEARCH_STEPS;
    if !extend(&ranked, 0, usize::from(threshold), &in_dispute, &mut set, &mut steps) {
        return None;
    }
    set.sort_unstable();
    Some(set)
}

/// The most steps [`disputeless`] takes before it gives up (a set of a few hundred key
/// holders with many disputes; far above what real disputes make).
pub const SEARCH_STEPS: usize = 100_000;

/// Extends `set` to `t` members from `ranked[from..]`, none in dispute with another, in
/// rank order; whether it could.
fn extend(
    ranked: &[Participant],
    from: usize,
    t: usize,
    in_dispute: &impl Fn(Participant, Participant) -> bool,
    set: &mut Vec<Participant>,
    steps: &mut usize,
) -> bool {
    if set.len() == t {
        return true;
    }
    for i in from..ranked.len() {
        if ranked.len() - i < t - set.len() || *steps == 0 {
            return false;
        }
        *steps -= 1;
        let p = ranked[i];
        if set.iter().any(|q| in_dispute(p, *q)) {
            continue;
        }
        set.push(p);
        if extend(ranked, i + 1, t, in_dispute, set, steps) {
            return true;
        }
        set.pop();
    }
    false
}

/// Who may sign an attempt: the key holders neither `excluded` from the item (silent in
/// it) nor `barred` (convicted). While that leaves fewer than `threshold`, the item's
/// exclusions are dropped first (silence is no proof), then the convictions instead, then
/// both. (More than `n - t` convicted key holders leave fewer than `t` honest ones, and
/// nothing can sign then.) One answer for choosing a set and for counting who answered.
pub fn eligible(
    holders: &[Participant],
    excluded: &[Participant],
    barred: &[Participant],
    threshold: u16,
) -> Vec<Participant> {
    let t = usize::from(threshold);
    let without = |skip: &[&[Participant]]| -> Vec<Participant> {
        holders.iter().copied().filter(|h| !skip.iter().any(|s| s.contains(h))).collect()
    };
    for skip in [&[excluded, barred][..], &[barred], &[excluded]] {
        let left = without(skip);
        if left.len() >= t {
            return left;
        }
    }
    holders.to_vec()
}
