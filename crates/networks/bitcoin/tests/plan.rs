//! The planner without a node: limits, dust, funds, change, exact sizes, determinism.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcoin_network::params::{Chain, Coin, Params};
use bitcoin_network::rpc::{Rpc, RpcAuth, RpcConfig};
use bitcoin_network::testing::keys;
use bitcoin_network::{Address, Bitcoin, GroupKey, Output};
use primitives::Amount;
use scanner::{Instruction, Network, OutputKind, Plan, PlanError, PlannedPayment};

fn network(max_inputs: usize, max_outputs: usize) -> Bitcoin<Rpc> {
    let rpc = Rpc::new(RpcConfig::new(
        "http://127.0.0.1:9",
        RpcAuth::UserPass { user: "u".into(), password: "p".into() },
    ))
    .unwrap();
    let mut params = Params::new(Coin::Litecoin, Chain::Regtest);
    params.network.max_inputs = max_inputs;
    params.network.max_outputs = max_outputs;
    Bitcoin::new(rpc.clone(), rpc, params)
}

fn key() -> GroupKey {
    keys::dkg(2, 3, 7)[0].group_key()
}

fn output(i: u8, value: u64, kind: OutputKind) -> Output {
    Output {
        txid: [i; 32],
        vout: u32::from(i),
        value,
        kind,
        instruction: Instruction::Missing,
        refund: None,
    }
}

fn payee(i: u8, segwit_v1: bool) -> Address {
    let script = if segwit_v1 {
        [&[0x51, 0x20][..], &[i; 32]].concat()
    } else {
        [&[0x00, 0x14][..], &[i; 20]].concat()
    };
    Address::from_script(bitcoin::ScriptBuf::from_bytes(script)).unwrap()
}

fn pay(i: u8, amount: u64) -> PlannedPayment<Address> {
    PlannedPayment { address: payee(i, i.is_multiple_of(2)), amount: Amount(amount) }
}

const RATE: u64 = 20_000;

#[test]
fn fee_is_the_exact_signed_size_at_the_rate() {
    let n = network(500, 500);
    for inputs in [1usize, 2, 10, 100] {
        let plan = Plan {
            inputs: (0..inputs).map(|i| output(i as u8, 200_000, OutputKind::External)).collect(),
            payments: vec![pay(1, 30_000), pay(2, 40_000)],
            branches: vec![Amount(20_000)],
            change: true,
        };
        let planned = n.plan(&key(), &plan, RATE).unwrap();
        // Sign it for real and measure.
        let signers = keys::dkg(2, 3, 7);
        let tx =
            keys::sign_transaction(&signers[..2], planned.signable.clone(), &mut rand_core::OsRng)
                .unwrap();
        let vsize = tx.vsize() as u64;
        assert_eq!(planned.fee.0, (vsize * RATE).div_ceil(1000), "{inputs} inputs: vsize {vsize}");
        let out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        assert_eq!(out + planned.fee.0, inputs as u64 * 200_000, "conservation");
        assert_eq!(tx.output.last().unwrap().value.to_sat(), planned.change.0);
        // The eventuality is the signed transaction's id and inputs.
        assert_eq!(
            planned.eventuality.txid,
            bitcoin::hashes::Hash::to_byte_array(tx.compute_txid())
        );
        assert_eq!(planned.eventuality.spends.len(), inputs);
    }
}

#[test]
fn planning_is_deterministic() {
    let n = network(500, 500);
    let plan = Plan {
        inputs: vec![
            output(1, 500_000, OutputKind::External),
            output(2, 70_000, OutputKind::Change),
        ],
        payments: vec![pay(3, 100_000)],
        branches: vec![],
        change: true,
    };
    let a = n.plan(&key(), &plan, RATE).unwrap();
    let b = n.plan(&key(), &plan, RATE).unwrap();
    assert_eq!(a.eventuality, b.eventuality);
    assert_eq!(a.signable, b.signable);
}

#[test]
fn change_below_dust_goes_to_the_fee() {
    let n = network(500, 500);
    let plan = Plan {
        inputs: vec![output(1, 105_000, OutputKind::External)],
        payments: vec![pay(3, 100_000)],
        branches: vec![],
        change: true,
    };
    let planned = n.plan(&key(), &plan, RATE).unwrap();
    assert_eq!(planned.change, Amount::ZERO);
    assert_eq!(planned.fee, Amount(5_000));
    assert_eq!(planned.signable.tx.output.len(), 1);
}

#[test]
fn refusals() {
    let n = network(2, 3);
    let inputs =
        |k: u8| (0..k).map(|i| output(i, 100_000, OutputKind::External)).collect::<Vec<_>>();
    let plan = |inputs, payments, change| Plan { inputs, payments, branches: vec![], change };
    // Over the input or output limit (change counts as an output).
    assert!(matches!(
        n.plan(&key(), &plan(inputs(3), vec![pay(1, 20_000)], true), RATE),
        Err(PlanError::TooLarge { inputs: 3, .. })
    ));
    assert!(matches!(
        n.plan(
            &key(),
            &plan(inputs(2), vec![pay(1, 20_000), pay(2, 20_000), pay(3, 20_000)], true),
            RATE
        ),
        Err(PlanError::TooLarge { outputs: 4, .. })
    ));
    // A dust payment.
    assert_eq!(
        n.plan(&key(), &plan(inputs(1), vec![pay(1, 20_000), pay(2, 9_999)], true), RATE)
            .unwrap_err(),
        PlanError::Dust { index: 1, amount: Amount(9_999) }
    );
    // Not enough to pay the fee too.
    assert!(matches!(
        n.plan(&key(), &plan(inputs(1), vec![pay(1, 99_500)], true), RATE),
        Err(PlanError::InsufficientFunds { .. })
    ));
    // Nothing to do.
    assert_eq!(
        n.plan(&key(), &plan(vec![], vec![pay(1, 20_000)], true), RATE).unwrap_err(),
        PlanError::Empty
    );
    assert_eq!(
        n.plan(&key(), &plan(inputs(1), vec![], false), RATE).unwrap_err(),
        PlanError::Empty
    );
}
