//! The whole flow on real processes (`devnet::scenario`, which `devnet demo` runs too):
//! 3 processors (2-of-3), coordinator-sim, nats-server and litecoind in regtest. 20
//! deposits with instructions from 4 senders become Batches, signed and verified, and
//! credited in the simulator's ledger; 2 deposits without a valid instruction are refunded
//! to their depositors and credited nowhere. 30 burns become payments through payment trees
//! (the output limit is 4), signed, published and confirmed. The checks use the node's own
//! RPC and the processors' databases: exact payments, identical plans, conservation to
//! the litoshi, and no nonce reuse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use devnet::scenario::{run, Scenario};

/// The chaos seed: `TC_CHAOS_SEED`, else the clock; printed, so a failure can be replayed.
fn chaos_seed() -> u64 {
    let seed =
        std::env::var("TC_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
        });
    eprintln!("chaos seed {seed} (replay with TC_CHAOS_SEED={seed})");
    seed
}

/// The congested-chain scenario: 8 deposits, then 4 burns in one settlement block, paid by
/// one transaction (the output limit is 8) that the congestion leaves stuck.
fn congested() -> Scenario {
    Scenario {
        congestion: true,
        deposits: 8,
        deposit_rounds: 2,
        burns: 4,
        burn_rounds: 1,
        max_outputs: 8,
        ..Scenario::default()
    }
}

#[test]
fn deposits_batches_burns_and_payments_end_to_end() {
    let report = run(&Scenario::default()).unwrap();
    eprintln!("{}", report.table());
    assert!(report.passed(), "{}", report.table());
    assert_eq!(report.deposited, report.credited + report.unattributed);
    assert!(report.refunded > 0 && report.refunded < report.unattributed);
    assert!(report.transactions >= 2, "a payment tree needs several transactions");
    // Every check passed, so the working directory is not left behind.
    assert!(!report.kept && !report.dir.exists(), "{} was kept", report.dir.display());
}

/// A congested chain (small blocks, a mempool kept full of transactions paying 50 sat/vB)
/// while 4 burns are paid: the payouts, planned at the earlier blocks' rate, are stuck;
/// every processor finds them stuck from the blocks and, litecoind refusing replacements,
/// a child plan pays for each; the payouts are mined, each payee paid once what was
/// planned, and the group's funds reconcile to the litoshi (the scenario's checks).
#[test]
fn payouts_stuck_on_a_congested_chain_are_lifted_by_children() {
    let report = run(&congested()).unwrap();
    eprintln!("{}", report.table());
    assert!(report.passed(), "{}", report.table());
    assert!(report.checks.iter().any(|c| c.name.contains("lifted by children") && c.passed));
}

/// The same with a random processor SIGKILLed and restarted every 0.15-0.45 s while the
/// payouts are stuck and bumped: the child is still made alike by every processor, the
/// payees are paid once, and the funds reconcile.
#[test]
fn payouts_stuck_on_a_congested_chain_are_lifted_through_processor_crashes() {
    let seed = chaos_seed();
    let report = run(&Scenario { chaos_seed: Some(seed), ..congested() }).unwrap();
    eprintln!("{}\nkills: {:?}", report.table(), report.kills);
    assert!(report.passed(), "{}", report.table());
    assert!(report.checks.iter().any(|c| c.name.contains("lifted by children") && c.passed));
    assert!(report.kills.iter().any(|(_, s)| s.starts_with("payments")), "no kill while bumping");
}

/// The same with a random processor SIGKILLed and restarted every 0.15-0.45 s: nothing
/// is paid twice or lost, no nonce is used twice, and the run completes.
#[test]
fn the_same_through_processor_crashes() {
    let seed = chaos_seed();
    let report = run(&Scenario { chaos_seed: Some(seed), ..Scenario::default() }).unwrap();
    eprintln!("{}\nkills: {:?}", report.table(), report.kills);
    assert!(report.passed(), "{}", report.table());
    assert!(report.kills.len() >= 10, "only {} kill points", report.kills.len());
    for phase in ["deposits", "payments"] {
        assert!(report.kills.iter().any(|(_, s)| s.starts_with(phase)), "no kill during {phase}");
    }
}

/// Validator 2 of 4 is down during key generation: coordinator-sim excludes it after the
/// round timeout and validators 1, 3 and 4 generate a 3-of-3 key among a set of 4 (their
/// key indices are 1, 2, 3, not their validator numbers). They then run the same scenario,
/// with the same checks, validator 2 running again meanwhile.
#[test]
fn the_same_with_validator_2_of_4_excluded_during_key_generation() {
    let scenario =
        Scenario { validators: 4, threshold: 3, silent_in_keygen: Some(2), ..Scenario::default() };
    let report = run(&scenario).unwrap();
    eprintln!("{}", report.table());
    assert!(report.passed(), "{}", report.table());
    assert!(report.transactions >= 2, "a payment tree needs several transactions");
}

/// Robust signing, on real processes: 5 validators, 3 to sign. Validator 1 is stopped once
/// the key is active (it holds a share and never answers); validator 2 sends a wrong
/// signature share whenever it signs. Every Batch and payout still completes with the same
/// checks as the scenario above; coordinator-sim convicts validator 2 from public data on
/// its first wrong Batch share (or, if it only ever signed plans, holds it in dispute with
/// the signers that blamed it), convicts no honest validator and sets no two apart; no
/// signer sent two different preprocesses for one attempt.
#[test]
fn the_same_with_5_validators_one_silent_and_one_lying_signer() {
    let scenario = Scenario {
        validators: 5,
        threshold: 3,
        silent_after_keygen: Some(1),
        malice: vec![(2, "wrong-share:0".into())],
        ..Scenario::default()
    };
    let report = run(&scenario).unwrap();
    eprintln!("{}", report.table());
    assert!(report.passed(), "{}", report.table());
    assert!(report.checks.iter().any(|c| c.name.contains("misbehaving") && c.passed));
}

/// The same flow on Monero against monerod in regtest: Ed25519 key generation, deposits
/// with instructions in `extra`, Batches and credits, burns paid through payment trees
/// with FROST (CLSAG) multisig spends, each payee's receipt found with its own view key.
#[test]
fn monero_deposits_batches_burns_and_payments_end_to_end() {
    use devnet::scenario::monero::{run, MoneroScenario};
    let report = run(&MoneroScenario::default()).unwrap();
    eprintln!("{}", report.table());
    assert!(report.passed(), "{}", report.table());
    assert_eq!(report.deposited, report.credited + report.unattributed);
    assert!(report.transactions >= 2, "a payment tree needs several transactions");
}

/// The Monero flow with a random processor SIGKILLed and restarted every 0.15-0.45 s,
/// through Monero signing and publishing: nothing paid twice or lost, no preprocess sent
/// twice for one attempt, the run completes.
#[test]
fn monero_the_same_through_processor_crashes() {
    use devnet::scenario::monero::{run, MoneroScenario};
    let seed = chaos_seed();
    let report =
        run(&MoneroScenario { chaos_seed: Some(seed), ..MoneroScenario::default() }).unwrap();
    eprintln!("{}\nkills: {:?}", report.table(), report.kills);
    assert!(report.passed(), "{}", report.table());
    assert!(report.kills.len() >= 10, "only {} kill points", report.kills.len());
    assert!(
        report.kills.iter().any(|(_, s)| s.starts_with("payments")),
        "no kill during Monero signing and publishing"
    );
}
