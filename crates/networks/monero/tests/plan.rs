//! Planning without a node: the fee the scheduler's model charges is exactly what the
//! planner's transaction pays, for every shape Monero's limits allow (property test), and
//! the shapes the scheduler makes (consolidations included) all plan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use monero_network::fee::stand_in;
use monero_network::keys::Keys;
use monero_network::testing::wallet::random_pair;
use monero_network::{Address, Monero, Output, Params};
use monero_wallet::address::{Network as AddressNetwork, SubaddressIndex};
use primitives::Amount;
use proptest::prelude::*;
use scanner::{Instruction, Network, OutputKind, Plan, PlannedPayment};

const XMR: u64 = 1_000_000_000_000;

fn network() -> Monero {
    let node = monero_network::rpc::Node::new("http://127.0.0.1:1", Duration::from_secs(1));
    Monero::new(node, Params::from_chain("regtest").unwrap())
}

fn keys() -> Keys {
    let spend = curve25519_dalek::constants::ED25519_BASEPOINT_POINT
        * curve25519_dalek::Scalar::from(99u64);
    Keys::new(spend, AddressNetwork::Mainnet).unwrap()
}

fn output(i: u64, value: u64) -> Output {
    Output {
        key: [i as u8; 32],
        tx: [0; 32],
        block: 1,
        value,
        kind: OutputKind::External,
        instruction: Instruction::Missing,
        spendable: stand_in(i, value).serialize(),
    }
}

fn payee(subaddress: bool) -> Address {
    let pair = random_pair();
    let address = if subaddress {
        pair.subaddress(AddressNetwork::Mainnet, SubaddressIndex::new(0, 1).unwrap())
    } else {
        pair.legacy_address(AddressNetwork::Mainnet)
    };
    Address::new(address).unwrap()
}

/// Plans `inputs` of `each` paying `payments` (subaddress or not) and `branches`, and
/// checks the fee against the model for the shape the planner chose.
fn check(inputs: usize, payments: &[bool], branches: usize, change: bool, each: u64, rate: u64) {
    let network = network();
    let plan = Plan {
        inputs: (0..inputs as u64).map(|i| output(i, each)).collect(),
        payments: payments
            .iter()
            .map(|sub| PlannedPayment { address: payee(*sub), amount: Amount(XMR / 10) })
            .collect(),
        branches: vec![Amount(XMR / 5); branches],
        change,
    };
    let planned = network.plan(&keys(), &plan, rate).unwrap();
    let addresses: Vec<&Address> = plan.payments.iter().map(|p| &p.address).collect();
    let kept = planned.change != Amount::ZERO;
    let model = network.fee(inputs, &addresses, branches, kept, rate);
    let shape = format!("{inputs} in, {payments:?} paid, {branches} branches, change {kept}");
    let total = inputs as u64 * each;
    let paid = payments.len() as u64 * XMR / 10 + branches as u64 * XMR / 5;
    if kept {
        // What monero-wallet computes is the model's fee, to the unit: the transaction
        // pays it, and the change is the rest.
        assert_eq!(planned.signable.necessary_fee(), model.0, "{shape}");
        assert_eq!(planned.fee, model, "{shape}");
        assert_eq!(planned.fee.0 + planned.change.0 + paid, total, "{shape}");
    } else {
        // Without change, the leftover is the fee (monero-wallet checked it covers the
        // transaction's own), at least the model's.
        assert_eq!(planned.fee.0 + paid, total, "{shape}");
        assert!(planned.fee >= model, "{shape}");
    }
}

#[test]
fn a_consolidation_plans() {
    // No payment, no branch: the scheduler's consolidation of many small outputs.
    check(64, &[], 0, true, XMR, 1_200_000);
    check(2, &[], 0, true, XMR, 20_000);
}

#[test]
fn one_payment_without_change_gets_the_filler_output() {
    // The leftover is below dust: no change, and Monero's second output is the filler.
    let network = network();
    let plan = Plan {
        inputs: vec![output(0, XMR / 10 + 5_000_000_000)],
        payments: vec![PlannedPayment { address: payee(false), amount: Amount(XMR / 10) }],
        branches: vec![],
        change: true,
    };
    let planned = network.plan(&keys(), &plan, 20_000).unwrap();
    assert_eq!(planned.change, Amount::ZERO);
    assert_eq!(planned.fee.0, 5_000_000_000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_fee_model_is_what_the_planner_pays(
        inputs in 1usize..=64,
        payments in proptest::collection::vec(any::<bool>(), 0..=15),
        branches in 0usize..=4,
        change in any::<bool>(),
        rate in prop_oneof![Just(20_000u64), Just(1_200_000u64), 20_000u64..2_000_000],
    ) {
        let outputs = payments.len() + branches + usize::from(change);
        prop_assume!(outputs <= 16 && (outputs > 0));
        check(inputs, &payments, branches, change, 10 * XMR, rate);
    }
}
