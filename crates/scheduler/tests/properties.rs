//! Property tests of the scheduling kernels: conservation, no double spend, every payment
//! exactly once (or recorded as dust), order, limits, and determinism.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use primitives::{Amount, ExternalAddress};
use proptest::prelude::*;
use scheduler::{fund_branch, FeeModel, Limits, Payment, Scheduled, State, Tx, Utxo};

/// A size-based model like Bitcoin's: a base, per input, per output (by address length).
struct Linear {
    rate: u64,
}

impl FeeModel for Linear {
    fn fee(
        &self,
        inputs: usize,
        payments: &[&ExternalAddress],
        branches: usize,
        change: bool,
    ) -> Amount {
        let outputs: u64 = payments.iter().map(|a| 9 + a.as_bytes().len() as u64).sum::<u64>()
            + (branches as u64 + u64::from(change)) * 43;
        let vbytes = 11 + inputs as u64 * 58 + outputs;
        Amount((vbytes * self.rate).div_ceil(1000))
    }
}

fn address(len: usize) -> ExternalAddress {
    ExternalAddress::new(vec![0xab; len]).unwrap()
}

#[derive(Debug, Clone)]
struct Case {
    utxos: Vec<u64>,
    payments: Vec<(u64, usize)>,
    limits: Limits,
    rate: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(0u64..2_000_000, 0..40),
        proptest::collection::vec(
            (0u64..300_000, prop_oneof![Just(22usize), Just(25), Just(34)]),
            0..70,
        ),
        1usize..8,
        2usize..7,
        prop_oneof![Just(1_000u64), Just(10_000)],
        prop_oneof![Just(1_000u64), Just(20_000), Just(200_000)],
    )
        .prop_map(|(utxos, payments, max_inputs, max_outputs, dust, rate)| Case {
            utxos,
            payments,
            limits: Limits { max_inputs, max_outputs, dust: Amount(dust) },
            rate,
        })
}

/// Everything that happened, once every branch was funded by an output of exactly its
/// amount.
struct Run {
    txs: Vec<Tx>,
    dropped: BTreeMap<u64, Amount>,
    state: State,
}

fn run(case: &Case, order: &[usize]) -> Run {
    let fee = Linear { rate: case.rate };
    let mut state = State::default();
    let utxos: Vec<Utxo> = case
        .utxos
        .iter()
        .enumerate()
        .map(|(i, a)| Utxo { id: format!("in-{i}").into_bytes(), amount: Amount(*a) })
        .collect();
    state.add_utxos(order.iter().map(|i| utxos[*i].clone())).unwrap();
    state.add_payments(case.payments.iter().enumerate().map(|(i, (a, len))| Payment {
        id: i as u64,
        address: address(*len),
        amount: Amount(*a),
    }));
    let mut pending: Vec<Scheduled> = vec![state.schedule(case.limits, &fee).unwrap()];
    let mut unused = vec![];
    let mut txs = vec![];
    let mut dropped = BTreeMap::new();
    let mut funded = 0;
    while let Some(s) = pending.pop() {
        unused.extend(s.unused);
        for d in s.dropped {
            assert!(
                dropped.insert(d.payment.id, d.fee).is_none(),
                "payment {} dropped twice",
                d.payment.id
            );
        }
        for tx in s.txs {
            for branch in &tx.branches {
                funded += 1;
                let output =
                    Utxo { id: format!("branch-{funded}").into_bytes(), amount: branch.amount };
                pending.push(fund_branch(branch.clone(), output, case.limits, &fee).unwrap());
            }
            txs.push(tx);
        }
    }
    state.add_utxos(unused).unwrap();
    Run { txs, dropped, state }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn scheduling_invariants(case in case()) {
        let order: Vec<usize> = (0..case.utxos.len()).collect();
        let r = run(&case, &order);
        let fee = Linear { rate: case.rate };

        let mut spent = BTreeSet::new();
        let mut paid = BTreeMap::new();
        for tx in &r.txs {
            // Limits.
            let outputs = tx.payments.len() + tx.branches.len() + usize::from(tx.change.is_some());
            prop_assert!(tx.inputs.len() <= case.limits.max_inputs, "{} inputs", tx.inputs.len());
            prop_assert!(outputs <= case.limits.max_outputs, "{outputs} outputs");
            prop_assert!(!tx.inputs.is_empty());
            // Conservation, to the unit.
            let inputs: u64 = tx.inputs.iter().map(|u| u.amount.0).sum();
            let out: u64 = tx.payments.iter().map(|p| p.net.0).sum::<u64>()
                + tx.branches.iter().map(|b| b.amount.0).sum::<u64>()
                + tx.change.map_or(0, |c| c.0);
            prop_assert_eq!(inputs, out + tx.fee.0, "conservation");
            // The fee covers what the transaction's shape costs.
            let addresses: Vec<&ExternalAddress> = tx.payments.iter().map(|p| &p.payment.address).collect();
            let needed = fee.fee(tx.inputs.len(), &addresses, tx.branches.len(), tx.change.is_some());
            prop_assert!(tx.fee >= needed, "fee {} below {}: {:?}", tx.fee.0, needed.0, tx);
            // Change and payments are never dust.
            if let Some(c) = tx.change { prop_assert!(c >= case.limits.dust); }
            for b in &tx.branches {
                prop_assert_eq!(b.amount.0, b.payments.iter().map(|p| p.amount.0).sum::<u64>());
            }
            // No output spent twice.
            for u in &tx.inputs {
                prop_assert!(spent.insert(u.id.clone()), "output spent twice");
            }
            for p in &tx.payments {
                prop_assert!(p.net >= case.limits.dust, "dust paid");
                prop_assert!(paid.insert(p.payment.id, p.clone()).is_none(), "payment {} paid twice", p.payment.id);
            }
        }
        // Spent outputs left the state.
        for u in &r.state.utxos {
            prop_assert!(!spent.contains(&u.id), "a spent output is still available");
        }
        // Every payment exactly once: paid, dropped, or still queued.
        let queued: BTreeSet<u64> = r.state.queue.iter().map(|p| p.id).collect();
        for (i, (amount, _)) in case.payments.iter().enumerate() {
            let i = i as u64;
            let places = usize::from(paid.contains_key(&i)) + usize::from(r.dropped.contains_key(&i)) + usize::from(queued.contains(&i));
            prop_assert_eq!(places, 1, "payment {} is in {} places", i, places);
            if let Some(p) = paid.get(&i) {
                // The payee gets the original amount minus exactly its recorded fee share.
                prop_assert_eq!(p.net.0 + p.fee.0, *amount);
                prop_assert_eq!(p.payment.amount.0 + p.fee.0 - fees_before_last(p), *amount);
            }
        }
        // Order: nothing queued precedes something paid or dropped.
        if let Some(first_queued) = queued.iter().next() {
            prop_assert!(paid.keys().chain(r.dropped.keys()).all(|id| id < first_queued), "a later payment overtook a queued one");
        }
        // Fee shares within one transaction differ by at most one unit.
        for tx in r.txs.iter().filter(|t| t.branches.is_empty() && t.payments.len() > 1 && t.change.is_some()) {
            let shares: Vec<u64> = tx.payments.iter().map(|p| p.payment.amount.0 - p.net.0).collect();
            let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "uneven fee shares {shares:?}");
        }
    }

    #[test]
    fn deterministic_across_output_orderings(case in case(), seed in any::<u64>()) {
        let order: Vec<usize> = (0..case.utxos.len()).collect();
        let mut shuffled = order.clone();
        // A seeded Fisher-Yates shuffle.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let (a, b) = (run(&case, &order), run(&case, &shuffled));
        prop_assert_eq!(a.txs, b.txs);
        prop_assert_eq!(a.dropped, b.dropped);
        prop_assert_eq!(a.state, b.state);
    }
}

/// A branch payment's recorded `payment.amount` is already reduced by the shares of the
/// transactions above it; `fee` includes them. For a direct payment nothing was taken
/// before, so this is the share of its own transaction.
fn fees_before_last(p: &scheduler::Paid) -> u64 {
    p.payment.amount.0 - p.net.0
}

#[test]
fn more_payments_than_outputs_build_a_tree() {
    let fee = Linear { rate: 1_000 };
    let limits = Limits { max_inputs: 10, max_outputs: 3, dust: Amount(1_000) };
    let mut state = State::default();
    state.add_utxos([Utxo { id: b"a".to_vec(), amount: Amount(10_000_000) }]).unwrap();
    state.add_payments((0..20).map(|i| Payment {
        id: i,
        address: address(22),
        amount: Amount(100_000),
    }));
    let s = state.schedule(limits, &fee).unwrap();
    assert_eq!(s.txs.len(), 1);
    let root = &s.txs[0];
    assert!(root.payments.is_empty());
    assert_eq!(root.branches.len(), 2, "20 payments, 3 outputs (one for change): 2 branches");
    assert!(root.change.is_some());
    // Fund each branch; branches that still carry more than 3 payments branch again.
    let mut depth = 1;
    let mut level: Vec<_> = root.branches.clone();
    let mut paid = 0;
    while !level.is_empty() {
        depth += 1;
        let mut next = vec![];
        for (i, b) in level.into_iter().enumerate() {
            let s = fund_branch(
                b.clone(),
                Utxo { id: format!("{depth}-{i}").into_bytes(), amount: b.amount },
                limits,
                &fee,
            )
            .unwrap();
            for tx in s.txs {
                assert!(tx.change.is_none(), "a branch's transaction spends exactly its payments");
                paid += tx.payments.len();
                next.extend(tx.branches);
            }
        }
        level = next;
    }
    assert_eq!(paid, 20);
    assert!(depth >= 3, "20 payments at 3 outputs per transaction need a deeper tree");
}

#[test]
fn tiny_outputs_are_kept_not_spent() {
    let fee = Linear { rate: 20_000 };
    let limits = Limits { max_inputs: 10, max_outputs: 10, dust: Amount(1_000) };
    let mut state = State::default();
    // Spending an input costs 58 * 20 = 1,160: a 1,000 output is not worth it.
    state
        .add_utxos([
            Utxo { id: b"tiny".to_vec(), amount: Amount(1_000) },
            Utxo { id: b"big".to_vec(), amount: Amount(500_000) },
        ])
        .unwrap();
    state.add_payments([Payment { id: 0, address: address(22), amount: Amount(100_000) }]);
    let s = state.schedule(limits, &fee).unwrap();
    assert_eq!(s.txs.len(), 1);
    assert_eq!(s.txs[0].inputs.len(), 1);
    assert_eq!(s.txs[0].inputs[0].id, b"big");
    assert_eq!(state.utxos.len(), 1, "the tiny output stays available");
}

#[test]
fn a_payment_eaten_by_its_fee_share_is_dropped_and_recorded() {
    let fee = Linear { rate: 200_000 };
    let limits = Limits { max_inputs: 10, max_outputs: 10, dust: Amount(1_000) };
    let mut state = State::default();
    state.add_utxos([Utxo { id: b"a".to_vec(), amount: Amount(1_000_000) }]).unwrap();
    // The fee (~ 200 vB * 200 = 40,000) split over two payments: 20,000 each.
    state.add_payments([
        Payment { id: 0, address: address(22), amount: Amount(18_000) },
        Payment { id: 1, address: address(22), amount: Amount(300_000) },
    ]);
    let s = state.schedule(limits, &fee).unwrap();
    assert_eq!(s.dropped.len(), 1);
    assert_eq!(s.dropped[0].payment.id, 0);
    assert!(s.dropped[0].fee.0 > 0);
    assert_eq!(s.txs[0].payments.len(), 1);
    assert_eq!(s.txs[0].payments[0].payment.id, 1);
}

/// A payment whose amount overflows any sum waits behind nothing: the payments before it
/// are planned, and scheduling never fails on an amount (it used to be a fatal overflow,
/// stopping the processor at that acknowledgement on every restart).
#[test]
fn a_huge_payment_waits_and_does_not_stop_scheduling() {
    let fee = Linear { rate: 1_000 };
    let limits = Limits { max_inputs: 10, max_outputs: 10, dust: Amount(1_000) };
    let mut state = State::default();
    state.add_utxos([Utxo { id: b"a".to_vec(), amount: Amount(1_000_000) }]).unwrap();
    state.add_payments([
        Payment { id: 0, address: address(22), amount: Amount(100_000) },
        Payment { id: 1, address: address(22), amount: Amount(u64::MAX) },
        Payment { id: 2, address: address(22), amount: Amount(u64::MAX) },
    ]);
    let s = state.schedule(limits, &fee).unwrap();
    assert_eq!(s.txs.len(), 1);
    assert_eq!(s.txs[0].payments.len(), 1);
    assert_eq!(s.txs[0].payments[0].payment.id, 0);
    assert_eq!(state.queue.len(), 2, "the unfundable payments stay queued, in order");
    assert_eq!(state.queue[0].id, 1);
}

/// Consolidating inputs that barely cover their own cost would spend more than they hold
/// (an underflow, fatal) or leave change below dust (which the planner drops, so the
/// scheduler's and the planner's accounting would disagree): the payment waits instead.
#[test]
fn no_consolidation_that_cannot_pay_its_fee_or_leaves_dust() {
    let fee = Linear { rate: 20_000 };
    // One input costs 58 * 20 = 1,160; a 2-input consolidation (11 + 116 + 43) * 20 = 3,400.
    let limits = Limits { max_inputs: 2, max_outputs: 10, dust: Amount(1_000) };
    for (utxo, payment) in [(1_200, 3_000), (1_800, 5_000)] {
        let mut state = State::default();
        state.add_utxos((0..3u8).map(|i| Utxo { id: vec![i], amount: Amount(utxo) })).unwrap();
        state.add_payments([Payment { id: 0, address: address(22), amount: Amount(payment) }]);
        let s = state.schedule(limits, &fee).unwrap();
        assert!(s.txs.is_empty(), "outputs of {utxo}: {:?}", s.txs);
        assert_eq!(state.utxos.len(), 3, "every output stays ours, unspent");
        assert_eq!(state.queue.len(), 1, "the payment waits");
    }
    // Where the consolidation leaves change above dust, it still happens.
    let mut state = State::default();
    state.add_utxos((0..3u8).map(|i| Utxo { id: vec![i], amount: Amount(10_000) })).unwrap();
    state.add_payments([Payment { id: 0, address: address(22), amount: Amount(25_000) }]);
    let s = state.schedule(limits, &fee).unwrap();
    assert_eq!(s.txs.len(), 1);
    assert_eq!(s.txs[0].change, Some(Amount(20_000 - 3_400)));
    assert!(s.txs[0].payments.is_empty());
}
