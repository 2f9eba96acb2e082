//! Functional tests of the whole pipeline, several processors in one process over the
//! in-memory chain, in the manner of LDK's: key generation through coordinator-sim,
//! deposits, Batches, burns, payment trees, shallow and deep reorgs, and a reload of a
//! processor at every enumerated commit point. Each run checks, on the chain and in every
//! database: every deposit credited once, every burn paid once and exactly (its amount
//! minus its recorded fee share), identical plans on every processor, the group's
//! remaining outputs equal to what came in minus what went out, and no signer that sent
//! two different preprocesses for one attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{params, Crash, Net};
use key_gen::Malice;
use primitives::{Amount, ExternalAddress, InInstruction, SettlementAccount};
use processor::pipeline::state::ACTIVE;

/// What a scenario does.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    threshold: u16,
    n: u16,
    deposits: u64,
    burns: u64,
    /// Outputs per transaction (small: payment trees form).
    max_outputs: usize,
    confirmations: u64,
    /// A reorg shallower than the confirmations while deposits are unconfirmed.
    shallow_reorg: bool,
    /// A processor (index) silent during key generation: the set goes on without it.
    silent_in_keygen: Option<usize>,
    /// A validator misbehaving in key generation (excluded by blame) or in signing.
    malice: Option<(u16, Malice)>,
    /// A validator configured with other confirmations than the rest.
    misconfigured: Option<u16>,
    /// Sign one attempt at a time (coordinator-sim's `responsive`) instead of with
    /// concurrent sessions (ROAST, the default): fewer messages and commit points.
    one_at_a_time: bool,
}

/// What a run measured.
#[derive(Debug)]
#[allow(dead_code)] // printed
struct Outcome {
    /// The validators holding the key.
    holders: Vec<u16>,
    plans: usize,
    branch_plans: usize,
    /// Commit points of each processor.
    commits: Vec<u64>,
    /// Signing blames coordinator-sim accepted.
    blames: u64,
    /// The pairs of validators in dispute after them.
    disputes: Vec<(u16, u16)>,
    /// The validators coordinator-sim convicted of a fault in signing.
    convicted: Vec<u16>,
    /// Coordinator timeouts that fired (each one waited for).
    timeouts: u64,
}

fn deposit_amount(i: u64) -> u64 {
    1_000_000 + 7_919 * i
}

fn burn_amount(i: u64) -> u64 {
    150_000 + 1_009 * i
}

fn account(i: u64) -> u8 {
    u8::try_from(i % 4).unwrap() + 1
}

/// Runs `s`, reloading a processor as `crash` says; checks everything a bug would change.
fn run(s: Scenario, crash: Option<Crash>) -> Result<Outcome, String> {
    let malice: Vec<(u16, Malice)> = s.malice.into_iter().collect();
    let own = params(s.confirmations + 1, s.max_outputs);
    let overrides: Vec<_> = s.misconfigured.map(|v| (v, own)).into_iter().collect();
    let chain_params = params(s.confirmations, s.max_outputs);
    let selection =
        if s.one_at_a_time { common::Selection::Responsive } else { common::Selection::Roast };
    let mut net = Net::build(s.threshold, s.n, chain_params, &malice, &overrides, selection);
    net.crash = crash;
    net.silent.extend(s.silent_in_keygen);
    net.mine(s.confirmations + 2)?;
    // Key generation, through coordinator-sim.
    net.settle()?;
    net.silent.clear();
    let key = net.group_key();

    // Deposits, several per block.
    let mut credited: BTreeMap<u8, u64> = BTreeMap::new();
    for i in 0..s.deposits {
        net.deposit(&key, account(i), deposit_amount(i));
        *credited.entry(account(i)).or_default() += deposit_amount(i);
        if i % 6 == 5 {
            net.chain.mine(1);
        }
    }
    net.chain.mine(1);
    if s.shallow_reorg {
        // The last block of deposits is replaced before it is final: the same deposits
        // land in another block, and are credited once.
        net.settle()?;
        net.chain.reorg(1, 1);
    }
    for _ in 0..20 {
        if credited.iter().all(|(a, c)| net.balance(*a) == *c) {
            break;
        }
        net.mine(1)?;
    }
    for (a, c) in &credited {
        let balance = net.balance(*a);
        if balance != *c {
            return Err(format!("account {a} credited {balance}, deposited {c}"));
        }
    }

    // Burns, to distinct payees.
    let mut payees: Vec<(ExternalAddress, u64)> = vec![];
    for i in 0..s.burns {
        let to = net.burn(account(i), burn_amount(i), u32::try_from(i).unwrap());
        payees.push((to, burn_amount(i)));
    }
    // Mine until every payee was paid and nothing is pending.
    for _ in 0..60 {
        net.mine(1)?;
        let paid = payees.iter().all(|(to, _)| net.chain.received(to.as_bytes()) > Amount::ZERO);
        if paid && net.chain.mempool_len() == 0 {
            // One more confirmation window, so every completion is applied.
            net.mine(s.confirmations * 2)?;
            break;
        }
    }
    check(&net, &payees, &credited)
}

/// The checks every run must pass.
fn check(
    net: &Net,
    payees: &[(ExternalAddress, u64)],
    credited: &BTreeMap<u8, u64>,
) -> Result<Outcome, String> {
    // Identical plans on every key holder.
    let holders: Vec<_> =
        net.processors.iter().filter(|p| ACTIVE.get(&p.read(), &()).unwrap().is_some()).collect();
    let plans = holders[0].plans();
    for p in &holders[1..] {
        if p.plans() != plans {
            return Err(format!(
                "processor {} recorded other plans than processor 1 ({} vs {})",
                p.validator,
                p.plans().len(),
                plans.len()
            ));
        }
    }
    // Every burn paid once, exactly its amount minus its recorded fee share.
    let mut expected: BTreeMap<Vec<u8>, (u64, u64)> = BTreeMap::new();
    for record in plans.values() {
        if record.completed.is_none() {
            return Err(format!("plan {} never completed", hex::encode(record.tx.id)));
        }
        for paid in &record.tx.payments {
            let e = expected.entry(paid.payment.address.as_bytes().to_vec()).or_default();
            e.0 += paid.net.0;
            e.1 += 1;
        }
    }
    for (to, amount) in payees {
        let (net_amount, times) = expected.get(to.as_bytes()).copied().unwrap_or_default();
        if times != 1 {
            return Err(format!("payee {} paid by {times} plans", hex::encode(to.as_bytes())));
        }
        let received = net.chain.received(to.as_bytes()).0;
        if received != net_amount || received >= *amount || received + 20_000 < *amount * 9 / 10 {
            return Err(format!(
                "payee {} received {received}; its plan pays {net_amount} of a burn of {amount}",
                hex::encode(to.as_bytes())
            ));
        }
    }
    // Conservation on the chain: deposits = paid + fees + what the group still holds.
    let key = net.group_key();
    let deposited: u64 = credited.values().sum();
    let paid: u64 = payees.iter().map(|(to, _)| net.chain.received(to.as_bytes()).0).sum();
    let fees = net.chain.fees_paid_by(&key).0;
    let held: u64 = net.chain.unspent(&key).iter().map(|(_, a)| a.0).sum();
    if deposited != paid + fees + held {
        return Err(format!("deposited {deposited} != paid {paid} + fees {fees} + held {held}"));
    }
    // The ledger still credits what was not burned.
    let burned: u64 = payees.iter().map(|(_, a)| a).sum();
    let balances: u64 = credited.keys().map(|a| net.balance(*a)).sum();
    if balances + burned != deposited {
        return Err(format!("ledger {balances} + burned {burned} != deposited {deposited}"));
    }
    // No signer released two different preprocesses for one attempt.
    let status = coordinator_sim::status::StatusReport::read(&net.sim.db().read().unwrap())
        .map_err(|e| e.to_string())?;
    for set in &status.sets {
        if set.signing.conflicting_preprocesses != 0 {
            return Err(format!(
                "{} conflicting preprocesses",
                set.signing.conflicting_preprocesses
            ));
        }
    }
    Ok(Outcome {
        holders: holders.iter().map(|p| p.validator).collect(),
        plans: plans.len(),
        branch_plans: plans.values().filter(|r| !r.tx.branches.is_empty()).count(),
        commits: net.processors.iter().map(|p| p.commits()).collect(),
        blames: status.sets.iter().map(|s| s.signing.blames).sum(),
        disputes: status.sets.iter().flat_map(|s| s.signing.disputes.clone()).collect(),
        convicted: status
            .sets
            .iter()
            .flat_map(|s| s.signing.convictions.iter().map(|c| c.validator))
            .collect(),
        timeouts: net.timeouts_fired,
    })
}

const LARGE: Scenario = Scenario {
    threshold: 2,
    n: 3,
    deposits: 30,
    burns: 30,
    max_outputs: 4,
    confirmations: 3,
    shallow_reorg: true,
    silent_in_keygen: None,
    malice: None,
    misconfigured: None,
    one_at_a_time: false,
};

#[test]
fn three_processors_thirty_deposits_and_burns_with_payment_trees() {
    let started = Instant::now();
    let outcome = run(LARGE, None).unwrap();
    eprintln!("2-of-3: {outcome:?} in {:?}", started.elapsed());
    assert!(outcome.branch_plans > 0, "no payment tree formed: {outcome:?}");
}

/// The same on a Tokio runtime, as the processor runs: the scanner fetches and scans the
/// next blocks in the background while it records the ones read ahead (without a runtime,
/// as in the other tests, each read-ahead waits for its turn).
#[test]
fn the_same_with_the_scanner_reading_ahead_in_the_background() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let outcome = run(LARGE, None).unwrap();
    eprintln!("2-of-3, background read-ahead: {outcome:?}");
    drop(_entered);
    let without = run(LARGE, None).unwrap();
    let plans = |o: &Outcome| (o.holders.clone(), o.plans, o.branch_plans);
    assert_eq!(plans(&outcome), plans(&without), "the same plans with and without it");
}

#[test]
fn five_processors_thirty_deposits_and_burns_with_payment_trees() {
    let started = Instant::now();
    let outcome = run(Scenario { threshold: 3, n: 5, ..LARGE }, None).unwrap();
    eprintln!("3-of-5: {outcome:?} in {:?}", started.elapsed());
    assert!(outcome.branch_plans > 0, "no payment tree formed: {outcome:?}");
}

/// A reload of a processor after each of its commit points, one run per point: every
/// point of every stage (key generation, scanning, Batches, acknowledgements, each applied
/// block, burns, signing, publishing, inbox deliveries), enumerated from a run without
/// crashes.
#[test]
fn a_reload_at_every_commit_point() {
    let small = Scenario {
        threshold: 2,
        n: 3,
        deposits: 4,
        burns: 5,
        max_outputs: 3,
        confirmations: 2,
        shallow_reorg: false,
        silent_in_keygen: None,
        malice: None,
        misconfigured: None,
        // Every commit point is a run: the serial protocol keeps their number (and the
        // time) down; the concurrent sessions commit the same kinds of step.
        one_at_a_time: true,
    };
    let started = Instant::now();
    let baseline = run(small, None).unwrap();
    assert!(baseline.branch_plans > 0, "no payment tree formed: {baseline:?}");
    let crashes: Vec<Crash> = [0usize, 2]
        .into_iter()
        .flat_map(|processor| {
            (1..=baseline.commits[processor]).map(move |at| Crash { processor, at })
        })
        .collect();
    let points = crashes.len();
    let failures = common::each_crash_point(&crashes, |crash| run(small, Some(crash)).map(|_| ()));
    assert!(failures.is_empty(), "{} of {points} failed:\n{}", failures.len(), failures.join("\n"));
    eprintln!(
        "{points} commit points reloaded (processors 1 and 3; baseline {:?}) in {:?}",
        baseline.commits,
        started.elapsed()
    );
}

/// A reorg deeper than the confirmations replaces a block already reported: every
/// processor stops with a fatal error naming it, and reports nothing from the new chain.
#[test]
fn a_deep_reorg_stops_every_processor() {
    let mut net = Net::new(2, 3, params(2, 4));
    net.mine(4).unwrap();
    let key = net.group_key();
    net.deposit(&key, 1, 1_000_000);
    net.mine(3).unwrap();
    assert_eq!(net.balance(1), 1_000_000);
    net.chain.reorg(5, 6);
    let err = net.settle().unwrap_err();
    assert!(err.contains("reorganized deeper"), "{err}");
    assert_eq!(net.balance(1), 1_000_000, "nothing more credited");
}

/// Blocks the scanner read ahead wait in memory until their turn. A reorg deeper than the
/// confirmations that replaces them meanwhile stops the processor at the first of them
/// (checked against the node's chain at its turn): nothing of the abandoned chain is
/// recorded.
#[test]
fn a_deep_reorg_of_blocks_read_ahead_records_none_of_them() {
    let mut net = Net::new(2, 3, params(2, 4));
    net.mine(4).unwrap();
    // Final blocks nobody scanned yet; one iteration reads three and records the first.
    net.chain.mine(8);
    let before = net.scanned(0);
    assert!(net.scan_once(0).unwrap());
    let recorded = net.scanned(0).unwrap();
    assert!(before < Some(recorded), "one block recorded");
    // Every block after it replaced: the two read ahead among them.
    let depth = net.chain.height() - recorded;
    assert!(depth > 2, "deeper than the confirmations");
    net.chain.reorg(depth, depth + 1);
    let err = net.scan_once(0).unwrap_err();
    assert!(err.contains("reorganized deeper"), "{err}");
    assert_eq!(net.scanned(0), Some(recorded), "a block of the abandoned chain was recorded");
}

/// The scanner reports the node's last final block and how far behind it is: while it
/// has final blocks to scan, then caught up.
#[test]
fn the_scanner_reports_the_final_height_and_its_lag() {
    let mut net = Net::new(2, 3, params(2, 4));
    net.mine(4).unwrap();
    net.chain.mine(8);
    assert!(net.scan_once(0).unwrap());
    let metrics = net.processors[0].metrics.clone();
    let finalized = i64::try_from(net.chain.height() - 1).unwrap();
    let scanned = i64::try_from(net.scanned(0).unwrap()).unwrap();
    assert_eq!(metrics.final_height.get(), finalized);
    assert_eq!(metrics.scan_lag.get(), finalized - scanned);
    assert!(metrics.scan_lag.get() > 0);
    net.settle().unwrap();
    assert_eq!(metrics.scan_lag.get(), 0, "caught up");
    assert_eq!(metrics.scanned_height.get(), finalized);
}

/// A burn to one of the group's own addresses (deposit, branch, change or forwarded; all
/// computable from the public group key) is recorded unpayable by every processor and never paid: it
/// would come back as a deposit, branch or change output nobody planned. The other burns
/// of the same acknowledgement are paid as usual.
#[test]
fn burns_to_our_own_addresses_are_recorded_unpayable() {
    use memory_network::Chain;
    use processor::pipeline::state::UNPAYABLE;
    use scanner::OutputKind;

    let mut net = Net::new(2, 3, params(2, 4));
    let key = net.funded(&[(1, 5_000_000)]);
    let ours: Vec<ExternalAddress> = OutputKind::ALL
        .into_iter()
        .map(|kind| ExternalAddress::new(Chain::address_of(&key, kind)).unwrap())
        .collect();
    for address in &ours {
        net.burn_to(1, 300_000, address);
    }
    let payee = net.burn(1, 400_000, 1);
    for _ in 0..20 {
        net.mine(1).unwrap();
        if net.chain.received(payee.as_bytes()) > Amount::ZERO && net.chain.mempool_len() == 0 {
            break;
        }
    }
    net.mine(4).unwrap();
    assert!(net.chain.received(payee.as_bytes()) > Amount::ZERO, "the other burn is paid");
    for p in &net.processors {
        let unpayable = UNPAYABLE.iter(&p.read()).unwrap();
        let addresses: Vec<_> = unpayable.iter().map(|(_, burn)| burn.address.clone()).collect();
        assert_eq!(addresses, ours, "processor {} recorded {unpayable:?}", p.validator);
        for plan in p.plans().values() {
            assert!(
                plan.tx.payments.iter().all(|paid| !ours.contains(&paid.payment.address)),
                "processor {} planned a payment to our own address",
                p.validator
            );
        }
    }
    // On chain: the group holds the deposit less the one payment and its fees.
    let held: u64 = net.chain.unspent(&key).iter().map(|(_, a)| a.0).sum();
    let paid = net.chain.received(payee.as_bytes()).0;
    assert_eq!(held + paid + net.chain.fees_paid_by(&key).0, 5_000_000);
}

/// Monero's "burning bug": a later output reusing an earlier output's key has the same
/// id, and only one of the two can ever be spent. The second is ignored by every processor
/// (never credited, never recorded over the first), so the account is credited once and
/// the first output stays spendable.
#[test]
fn a_second_output_with_an_earlier_outputs_id_is_credited_never() {
    use memory_network::Chain;
    use processor::pipeline::state::OUTPUTS;
    use scanner::OutputKind;

    let mut net = Net::new(2, 3, params(2, 4));
    net.mine(4).unwrap();
    let key = net.group_key();
    let to = Chain::address_of(&key, OutputKind::External);
    let instruction = |account: u8| {
        Some(Chain::encode_instruction(&InInstruction {
            account: SettlementAccount([account; 32]),
            return_address: None,
        }))
    };
    let first = net.chain.deposit(&to, Amount(5_000_000), instruction(1), None);
    net.mine(3).unwrap();
    // A larger deposit to another account, reported under the first one's output id.
    let second = net.chain.deposit(&to, Amount(9_000_000), instruction(2), None);
    net.chain.alias_outputs(second, first);
    for _ in 0..12 {
        net.mine(1).unwrap();
    }
    assert_eq!(net.balance(1), 5_000_000, "the first deposit is credited once");
    assert_eq!(net.balance(2), 0, "the output reusing its id is never credited");
    for p in &net.processors {
        let outputs = OUTPUTS.iter(&p.read()).unwrap();
        assert_eq!(
            outputs.len(),
            1,
            "processor {} recorded {} outputs",
            p.validator,
            outputs.len()
        );
    }
    // The first output is still what the group spends: a burn is paid from it.
    let payee = net.burn(1, 1_000_000, 7);
    for _ in 0..12 {
        net.mine(1).unwrap();
    }
    assert!(net.chain.received(payee.as_bytes()) > Amount::ZERO, "the burn is paid");
}

/// Validator 2 of 4 is silent during key generation: coordinator-sim excludes it after the
/// round timeout and validators 1, 3 and 4 generate the key (their key-generation indices
/// are 1, 2 and 3). The three then sign Batches and pay burns with the same checks as
/// everywhere, validator 2 running again meanwhile (holding no key).
#[test]
fn signing_after_a_validator_was_excluded_from_key_generation() {
    let outcome =
        run(Scenario { threshold: 3, n: 4, silent_in_keygen: Some(1), ..LARGE }, None).unwrap();
    eprintln!("3-of-{{1,3,4}}: {outcome:?}");
    assert_eq!(outcome.holders, [1, 3, 4]);
}

/// Validator 1 of 4 sends validator 3 an invalid share during key generation: validator 3
/// blames it, coordinator-sim judges the evidence and excludes validator 1, and validators
/// 2, 3 and 4 (key indices 1, 2, 3) generate the key, then sign Batches and pay burns.
#[test]
fn signing_after_a_validator_was_excluded_by_blame() {
    let malice = Some((1, Malice::InvalidShareTo(3)));
    let outcome = run(Scenario { threshold: 3, n: 4, malice, ..LARGE }, None).unwrap();
    eprintln!("3-of-{{2,3,4}}: {outcome:?}");
    assert_eq!(outcome.holders, [2, 3, 4]);
}

/// Validator 4 of 4 runs with other confirmations than the set: it reports its settings
/// with its key pair, coordinator-sim excludes it (naming the setting) instead of
/// confirming a key it would scan differently with, and validators 1, 2 and 3 generate the
/// key again and run the whole scenario.
#[test]
fn a_validator_with_other_settings_is_excluded_from_the_key() {
    let outcome =
        run(Scenario { threshold: 3, n: 4, misconfigured: Some(4), ..LARGE }, None).unwrap();
    eprintln!("3-of-{{1,2,3}}: {outcome:?}");
    assert_eq!(outcome.holders, [1, 2, 3]);
}

/// Each processor records the settings it reported with its key pair; started again with
/// other settings (an operator edited `confirmations` or `dust`), it is refused before
/// it scans or signs, with a message naming each setting that changed; the same settings
/// pass.
#[test]
fn a_processor_restarted_with_other_settings_is_refused() {
    use processor::handler::check_settings;
    use processor::pipeline::settings_of;

    let agreed = params(2, 4);
    let mut net = Net::new(2, 3, agreed.clone());
    net.mine(4).unwrap();
    net.group_key();
    for p in &net.processors {
        check_settings(&p.db, &settings_of(&agreed)).unwrap();
        let edited =
            scanner::NetworkParams { confirmations: 6, dust: Amount(5_000), ..agreed.clone() };
        let err = check_settings(&p.db, &settings_of(&edited)).unwrap_err();
        assert!(
            err.contains("confirmations 6 (the set's 2)")
                && err.contains("dust 5000 (the set's 10000)"),
            "{err}"
        );
    }
}

/// A fatal error stops a processor once, not in a loop: its planner disagrees with its
/// scheduler (as a broken build would), so applying an acknowledgement with a burn fails
/// before it commits. Each processor records the halt, naming the acknowledgement and the
/// plan; restarted, it handles nothing (not one commit) and still reports that first
/// error; restarted with `--resume` once the cause is gone, it tries the same
/// acknowledgement again, and the burn is paid exactly once.
#[test]
fn a_fatal_error_halts_once_and_a_resume_after_the_fix_pays_once() {
    let mut net = Net::new(2, 3, params(2, 4));
    net.mine(4).unwrap();
    let key = net.group_key();
    net.deposit(&key, 1, 2_000_000);
    net.mine(3).unwrap();
    assert_eq!(net.balance(1), 2_000_000);

    net.chain.skew_planner(1);
    let payee = net.burn(1, 400_000, 9);
    // Each processor reaches the acknowledgement in turn (a settle stops at the first
    // fatal error); restarted, the halted ones stay out.
    let mut errors = vec![];
    for _ in 0..10 {
        match net.mine(1) {
            Ok(()) if net.processors.iter().all(|p| p.halted.is_some()) => break,
            Ok(()) => {}
            Err(e) => errors.push(e),
        }
        for i in 0..net.processors.len() {
            net.restart(i, false);
        }
    }
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let first: Vec<_> = net.processors.iter().map(|p| p.halted.clone().unwrap()).collect();
    for (p, halt) in net.processors.iter().zip(&first) {
        assert_eq!(halt.task, "acknowledger");
        assert!(
            halt.error.contains("the burns of settlement block")
                && halt.error.contains("disagrees with the scheduler"),
            "processor {}: {halt:?}",
            p.validator
        );
    }

    // Restarted as a service manager would: nothing is handled again, nothing committed,
    // and the recorded error is the first one.
    let commits: Vec<u64> = net.processors.iter().map(|p| p.commits()).collect();
    for _ in 0..3 {
        for i in 0..net.processors.len() {
            net.restart(i, false);
        }
        net.mine(1).unwrap();
    }
    assert_eq!(net.processors.iter().map(|p| p.commits()).collect::<Vec<_>>(), commits);
    let again: Vec<_> = net.processors.iter().map(|p| p.halted.clone().unwrap()).collect();
    assert_eq!(again, first);
    assert_eq!(net.chain.received(payee.as_bytes()), Amount::ZERO);

    // The cause fixed, each resumes: the same acknowledgement is applied, the burn paid
    // once.
    net.chain.skew_planner(0);
    for i in 0..net.processors.len() {
        net.restart(i, true);
        assert!(net.processors[i].halted.is_none());
    }
    for _ in 0..20 {
        net.mine(1).unwrap();
        if net.chain.received(payee.as_bytes()) > Amount::ZERO && net.chain.mempool_len() == 0 {
            break;
        }
    }
    net.mine(4).unwrap();
    let paid = net.chain.received(payee.as_bytes()).0;
    assert!(paid > 300_000 && paid < 400_000, "paid {paid}: the burn less its fee share");
    let held: u64 = net.chain.unspent(&key).iter().map(|(_, a)| a.0).sum();
    assert_eq!(held + paid + net.chain.fees_paid_by(&key).0, 2_000_000);
    assert_eq!(net.chain.published(), 1, "one payout transaction");
}

/// Validator 2 of 4 lies in signing: in every signing set it is in, it blames the
/// lowest-numbered other member instead of sending its share. On a Batch coordinator-sim
/// checks the accused's preprocess and share from public data, finds them valid and
/// convicts the liar, who is left out of every later signing set. (A blame on a plan
/// cannot be checked there yet: it puts the pair in dispute, and no disputed pair signs
/// together again.) Either way the liar cannot stall signing: every Batch and burn of the
/// scenario completes.
#[test]
fn a_false_accuser_cannot_stall_signing() {
    let malice = Some((2, Malice::FalseBlame(0)));
    let outcome = run(Scenario { threshold: 3, n: 4, malice, ..LARGE }, None).unwrap();
    eprintln!("3-of-4, validator 2 blaming every other signer: {outcome:?}");
    assert!(outcome.blames >= 1, "the lies were told: {outcome:?}");
    assert_eq!(outcome.convicted, vec![2], "{outcome:?}");
    // Every dispute involves the liar: no two honest validators were ever set apart.
    assert!(outcome.disputes.iter().all(|(a, b)| *a == 2 || *b == 2), "{outcome:?}");
}

/// Validator 1 of 4 (the first to answer, so in most sets) preprocesses every time and then
/// withholds its share. With concurrent
/// sessions (ROAST, the default) the other members are free again once they shared, and
/// sign the next set with the key holder left out: no timeout fires in the whole run. One
/// attempt at a time, the same run waits for a timeout each time validator 1 is in the set.
#[test]
fn a_signer_withholding_its_shares_costs_no_timeout() {
    let malice = Some((1, Malice::WithholdShare(0)));
    let roast = run(Scenario { threshold: 3, n: 4, malice, ..LARGE }, None).unwrap();
    let serial =
        run(Scenario { threshold: 3, n: 4, malice, one_at_a_time: true, ..LARGE }, None).unwrap();
    eprintln!("3-of-4, validator 1 withholding: ROAST {roast:?}; one at a time {serial:?}");
    assert_eq!(roast.timeouts, 0, "{roast:?}");
    assert!(serial.timeouts > 0, "{serial:?}");
    assert!(roast.convicted.is_empty() && roast.disputes.is_empty(), "{roast:?}");
}

/// Validator 3 of 4 sends a wrong signature share whenever it signs. coordinator-sim
/// checks each Batch share before relaying it, convicts validator 3 on its first wrong
/// one (nobody else sees it) and leaves it out from then on: every Batch and burn
/// completes, and no honest validator is convicted or disputed.
#[test]
fn a_signer_sending_wrong_shares_is_convicted_and_left_out() {
    let malice = Some((3, Malice::WrongShare(0)));
    let outcome = run(Scenario { threshold: 3, n: 4, malice, ..LARGE }, None).unwrap();
    eprintln!("3-of-4, validator 3 sending wrong shares: {outcome:?}");
    assert_eq!(outcome.convicted, vec![3], "{outcome:?}");
    assert!(outcome.disputes.iter().all(|(a, b)| *a == 3 || *b == 3), "{outcome:?}");
}

/// Validator 4's operator allows no threshold of 75% or less, and the set is 3-of-4: its
/// processor refuses the parameters and says so (`KeyGen::Refused`), and coordinator-sim
/// restarts key generation without it at once, recording why, instead of waiting for a
/// round timeout. Validators 1, 2 and 3 generate the key and sign.
#[test]
fn a_processor_refusing_the_parameters_is_excluded_at_once_with_its_reason() {
    let mut net = Net::new(3, 4, params(2, 4));
    let strict = key_gen::KeyGenPolicy { min_threshold: 2, min_threshold_percent: 75 };
    net.set_policy(3, strict);
    net.mine(4).unwrap();
    net.group_key();
    let status =
        coordinator_sim::status::StatusReport::read(&net.sim.db().read().unwrap()).unwrap();
    let set = &status.sets[0];
    assert_eq!(set.participants, vec![1, 2, 3]);
    assert_eq!(set.excluded.len(), 1, "{:?}", set.excluded);
    let excluded = &set.excluded[0];
    assert_eq!(excluded.validator, 4);
    assert!(
        excluded.reason.contains("refused the parameters")
            && excluded.reason.contains("not more than the 75%"),
        "{excluded:?}"
    );
}

/// Validator 3 generates its key without a `[node]` (keys only), so it reports no
/// settings; the others report theirs, and the confirmation carries them. Validator 3
/// records the set's settings, and once it gets a `[node]` it is held to them: other
/// settings are refused, naming each; the set's pass.
#[test]
fn a_processor_without_a_node_is_held_to_the_sets_settings_once_it_gets_one() {
    use processor::handler::check_settings;
    use processor::pipeline::settings_of;

    let agreed = params(2, 4);
    let mut net = Net::new(2, 3, agreed.clone());
    net.set_keys_only(2, true);
    net.mine(4).unwrap();
    net.group_key();
    let keys_only = &net.processors[2];
    check_settings(&keys_only.db, &settings_of(&agreed)).unwrap();
    let edited = scanner::NetworkParams { max_outputs: 16, ..agreed.clone() };
    let err = check_settings(&keys_only.db, &settings_of(&edited)).unwrap_err();
    assert!(err.contains("max_outputs 16 (the set's 4)"), "{err}");
}

/// A transaction signed with the group's keys outside the protocol spends a planned
/// input before the plan is mined. Every processor records the conflict and holds the
/// plan's payments for the operator (never re-queued: nothing is paid twice); the plan's
/// other input goes back to the funds (nothing is stranded), pays a later burn, and what
/// the group holds on chain is what every scheduler holds.
#[test]
fn a_conflicting_spend_holds_the_plans_payments_and_frees_its_other_inputs() {
    conflicting_spend(false);
}

/// The same where spends are not visible (as on Monero): which inputs the conflicting
/// transaction spent is unknown, so none is freed; they are listed as locked with the
/// held payments, and nothing is paid twice or planned from an output that may be gone.
#[test]
fn a_conflicting_spend_where_spends_are_not_visible_frees_nothing() {
    conflicting_spend(true);
}

fn conflicting_spend(hide_spends: bool) {
    use processor::pipeline::state::{CONFLICTS, HELD, PENDING, SCHEDULER};

    let mut net = Net::new(2, 3, params(2, 4));
    net.chain.hide_spends(hide_spends);
    let key = net.funded(&[(1, 5_000_000), (2, 5_000_000)]);
    // Together they need both deposits: one plan with two inputs.
    let first = net.burn(1, 4_500_000, 1);
    let second = net.burn(2, 4_500_000, 2);
    for _ in 0..20 {
        if net.chain.mempool_len() > 0 {
            break;
        }
        net.mine(1).unwrap();
    }
    let thief = b"an address outside the group".to_vec();
    let (planned, conflicting) =
        net.chain.conflict_with_first_planned(&thief).expect("a planned transaction to front-run");
    assert_ne!(planned, conflicting);
    for _ in 0..6 {
        net.mine(1).unwrap();
    }

    let chain = net.chain.clone();
    let received = |a: &ExternalAddress| chain.received(a.as_bytes()).0;
    assert_eq!((received(&first), received(&second)), (0, 0), "the conflicted plan never paid");
    assert_eq!(net.chain.received(&thief).0, 5_000_000, "the thief took one input whole");
    for p in &net.processors {
        let read = p.read();
        let held = HELD.iter(&read).unwrap();
        assert_eq!(held.len(), 1, "processor {}: {held:?}", p.validator);
        let (plan, record) = &held[0];
        assert_eq!(record.txs, vec![conflicting.to_vec()]);
        let payees: Vec<_> = record.payments.iter().map(|p| p.address.clone()).collect();
        assert_eq!(payees, vec![first.clone(), second.clone()], "processor {}", p.validator);
        if hide_spends {
            assert_eq!((record.released.len(), record.locked.len()), (0, 2), "none freed");
        } else {
            assert_eq!((record.released.len(), record.locked.len()), (1, 0), "one freed");
        }
        assert!(CONFLICTS.get(&read, plan).unwrap().is_some());
        assert!(PENDING.get(&read, plan).unwrap().is_none(), "no longer checked");
    }

    // The released input pays a later burn; the held payments stay unpaid.
    let third = net.burn(1, 300_000, 3);
    for _ in 0..20 {
        net.mine(1).unwrap();
        if received(&third) > 0 && net.chain.mempool_len() == 0 {
            break;
        }
    }
    net.mine(4).unwrap();
    // Paid from the released input; where none was released there are no funds for it.
    assert_eq!(received(&third) > 0, !hide_spends, "the later burn");
    assert_eq!((received(&first), received(&second)), (0, 0), "held, never re-queued");
    // Nothing lost: the deposits are the thief's input, the payment, the fees and what the
    // group holds; and every scheduler holds exactly what is on chain.
    let on_chain: u64 = net.chain.unspent(&key).iter().map(|(_, a)| a.0).sum();
    assert_eq!(
        on_chain + 5_000_000 + received(&third) + net.chain.fees_paid_by(&key).0,
        10_000_000
    );
    // Locked inputs are the group's until the operator finds which one the thief took.
    let locked_unspent = if hide_spends { 5_000_000 } else { 0 };
    for p in &net.processors {
        let state = SCHEDULER.get(&p.read(), &()).unwrap().unwrap_or_default();
        let funds: u64 = state.utxos.iter().map(|u| u.amount.0).sum();
        assert_eq!(funds + locked_unspent, on_chain, "processor {}", p.validator);
        assert_eq!(state.queue.len(), usize::from(hide_spends), "processor {}", p.validator);
    }

    // The operator's release forgets the record, once.
    let plan = HELD.iter(&net.processors[0].read()).unwrap()[0].0;
    let released = processor::pipeline::release_held(&net.processors[0].db, plan).unwrap();
    assert_eq!(released.unwrap().payments.len(), 2);
    assert!(processor::pipeline::release_held(&net.processors[0].db, plan).unwrap().is_none());
}

/// A payout the market outgrew: once its plan is in the mempool, the chain stops mining
/// our transactions below twice the floor rate and its blocks record three times it.
/// Every processor finds the plan stuck from the blocks alone, makes the same
/// replacement at the blocks' rate (paid from the change), signs and publishes it; it is
/// mined, the original is superseded, and the payee is paid exactly once what was
/// planned. The extra fee is counted, and the group's funds reconcile to the unit.
#[test]
fn a_stuck_payout_is_replaced_at_a_higher_fee_and_paid_once() {
    payout_while_block_rates_rise(true, true);
}

/// The same where replacements are refused (as Litecoin Core's default): a child plan
/// spends the stuck payout's change, before it is mined, at a fee that lifts the two to
/// the blocks' rate; both are mined, the payee is paid once what was planned, the child's
/// fee is counted as the bump, and its change is funds.
#[test]
fn a_stuck_payout_where_replacement_is_refused_is_lifted_by_a_child() {
    payout_while_block_rates_rise(true, false);
}

/// The same rise of the blocks' fee rate while the payout is in the mempool, but the chain
/// mines it: it is never bumped, whatever the blocks paid (it was mined before it could be
/// stuck).
#[test]
fn a_payout_mined_in_time_is_never_bumped() {
    payout_while_block_rates_rise(false, true);
}

fn payout_while_block_rates_rise(stuck: bool, replaceable: bool) {
    use processor::pipeline::bump::{version_id, STUCK_AFTER};
    use processor::pipeline::state::{CHILD, PENDING, PLANS, SCHEDULER, TO_PUBLISH, VERSIONS};

    let floor = 10_000;
    let mut net = Net::new(2, 3, params(2, 4));
    net.chain.refuse_replacements(!replaceable);
    let key = net.funded(&[(1, 5_000_000)]);
    let payee = net.burn(1, 1_000_000, 1);
    for _ in 0..20 {
        if net.chain.mempool_len() > 0 {
            break;
        }
        net.mine(1).unwrap();
    }
    assert_eq!(net.chain.mempool_len(), 1, "the payout is published");
    let plans = net.processors[0].plans();
    let (&root, original) = plans.iter().next().expect("one plan");
    assert_eq!(original.rate, floor, "planned at the floor");

    if stuck {
        net.chain.set_mining_floor(2 * floor);
    }
    net.chain.set_fee_rate(3 * floor);
    for _ in 0..(STUCK_AFTER + 10) {
        net.mine(1).unwrap();
        if net.chain.received(payee.as_bytes()) > Amount::ZERO && net.chain.mempool_len() == 0 {
            break;
        }
    }
    net.mine(4).unwrap();

    let version = version_id(&root, 1);
    let paid = net.chain.received(payee.as_bytes()).0;
    let planned_net = original.tx.payments[0].net.0;
    assert_eq!(paid, planned_net, "paid once, exactly what was planned");
    for p in &net.processors {
        let read = p.read();
        assert_eq!(TO_PUBLISH.len(&read).unwrap(), 0, "nothing left to publish");
        assert!(PENDING.iter(&read).unwrap().is_empty(), "nothing left pending");
    }
    if !stuck {
        for p in &net.processors {
            let read = p.read();
            assert_eq!(VERSIONS.get(&read, &root).unwrap(), None, "processor {}", p.validator);
            assert_eq!(p.metrics.fee_bumps.get(), 0);
        }
        return;
    }
    let on_chain: u64 = net.chain.unspent(&key).iter().map(|(_, a)| a.0).sum();
    assert_eq!(on_chain + paid + net.chain.fees_paid_by(&key).0, 5_000_000);
    if !replaceable {
        for p in &net.processors {
            let read = p.read();
            assert_eq!(VERSIONS.get(&read, &root).unwrap(), None, "nothing replaced");
            let child = CHILD.get(&read, &root).unwrap().expect("a child");
            let child = PLANS.get(&read, &child).unwrap().expect("the child's record");
            assert!(child.completed.is_some(), "the child is mined");
            assert!(PLANS.get(&read, &root).unwrap().unwrap().completed.is_some());
            assert_eq!(child.tx.inputs[0].amount, original.tx.change.expect("change"));
            assert_eq!(p.metrics.fee_bumps.get(), 1);
            assert_eq!(p.metrics.fee_bump_paid.get(), child.tx.fee.0);
            let status = processor::status::StatusReport::read("p".into(), &read).unwrap();
            assert_eq!(status.pipeline.map(|s| s.fee_bumps), Some(1), "status shows the bump");
            // The parent's change was spent by the child: only the child's change is funds.
            let state = SCHEDULER.get(&read, &()).unwrap().unwrap_or_default();
            let funds: u64 = state.utxos.iter().map(|u| u.amount.0).sum();
            assert_eq!(funds, on_chain, "processor {}", p.validator);
        }
        return;
    }
    for p in &net.processors {
        let read = p.read();
        assert_eq!(
            VERSIONS.get(&read, &root).unwrap(),
            Some(vec![version]),
            "processor {}",
            p.validator
        );
        let bumped = PLANS.get(&read, &version).unwrap().expect("the version's record");
        assert_eq!(bumped.rate, 3 * floor + 3 * floor / 4, "a quarter above the blocks' rate");
        assert!(bumped.tx.fee > original.tx.fee, "a higher fee");
        assert_eq!(
            bumped.tx.fee.0 + bumped.tx.change.map_or(0, |c| c.0),
            original.tx.fee.0 + original.tx.change.map_or(0, |c| c.0),
            "only the change pays for it"
        );
        let mined = bumped.completed.clone().expect("the version is mined");
        assert_eq!(PLANS.get(&read, &root).unwrap().unwrap().completed, Some(mined), "superseded");
        assert!(PENDING.iter(&read).unwrap().is_empty(), "nothing left pending");
        assert_eq!(p.metrics.fee_bumps.get(), 1);
        assert_eq!(p.metrics.fee_bump_paid.get(), bumped.tx.fee.0 - original.tx.fee.0);
    }
    let on_chain: u64 = net.chain.unspent(&key).iter().map(|(_, a)| a.0).sum();
    assert_eq!(on_chain + paid + net.chain.fees_paid_by(&key).0, 5_000_000);
}
