//! The scanner's conformance suite against the in-memory chain, with trusted-dealer keys
//! and FROST signing sets of the group driven through `MemoryNetwork::sign`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use memory_network::{Address, Chain, GroupKey, MemoryNetwork, Signable, Transaction};
use modular_frost::curve::Secp256k1;
use modular_frost::ThresholdKeys;
use primitives::{Amount, ExternalAddress, InInstruction};
use scanner::conformance::{self, TestChain};
use scanner::{Network, OutputKind};

struct Harness {
    chain: Chain,
    network: MemoryNetwork,
    /// The signing set used for every transaction.
    signers: Vec<ThresholdKeys<Secp256k1>>,
    /// Counter for fresh payee and sender addresses.
    fresh: AtomicU64,
}

impl Harness {
    /// A fresh chain and a `t`-of-`n` group; transactions are signed by `signers`
    /// (1-based participant indexes, at least `t`).
    fn start(t: u16, n: u16, signers: &[u16]) -> Harness {
        let chain = Chain::new(common::params());
        let all = common::keys(t, n, u64::from(t) * 1000 + u64::from(n));
        let signers = signers.iter().map(|i| all[usize::from(*i) - 1].clone()).collect();
        Harness { network: chain.network(), chain, signers, fresh: AtomicU64::new(0) }
    }

    fn fresh(&self, tag: u8) -> Vec<u8> {
        let n = self.fresh.fetch_add(1, Ordering::Relaxed);
        [&[tag][..], &n.to_le_bytes()].concat()
    }
}

impl TestChain for Harness {
    type N = MemoryNetwork;

    fn network(&self) -> &MemoryNetwork {
        &self.network
    }

    fn key(&self) -> GroupKey {
        self.signers[0].group_key()
    }

    fn successor(&self) -> (GroupKey, Vec<u8>) {
        use ciphersuite::group::GroupEncoding;
        let next = common::keys(2, 3, 999).remove(0).group_key();
        (next, next.to_bytes().to_vec())
    }

    async fn mine(&self, n: u64) {
        self.chain.mine(n);
    }

    async fn height(&self) -> u64 {
        self.chain.height()
    }

    async fn deposit(&self, kind: OutputKind, amount: Amount, data: Option<Vec<u8>>) {
        let to = Chain::address_of(&self.key(), kind);
        let from = ExternalAddress::new(self.fresh(b's')).unwrap();
        self.chain.deposit(&to, amount, data, Some(from));
    }

    fn encode_instruction(&self, instruction: &InInstruction) -> Vec<u8> {
        Chain::encode_instruction(instruction)
    }

    async fn sign(&self, signable: Signable) -> Transaction {
        common::sign(&self.network, &self.signers, &signable)
    }

    async fn payee(&self) -> Address {
        Address(self.fresh(b'p'))
    }

    async fn received(&self, address: &Address) -> Amount {
        self.chain.received(&address.0)
    }

    async fn reorg(&self, height: u64, blocks: u64) {
        let tip = self.chain.height();
        self.chain.reorg(tip + 1 - height, blocks);
    }
}

#[tokio::test]
async fn deposits_are_scanned_with_kind_amount_and_instruction() {
    let chain = Harness::start(2, 3, &[1, 2]);
    conformance::deposits_are_scanned(&chain).await;
}

#[tokio::test]
async fn branch_and_change_outputs_are_told_apart() {
    let chain = Harness::start(2, 3, &[1, 2]);
    conformance::kinds_are_told_apart(&chain).await;
}

async fn spend(t: u16, n: u16, signers: &[u16], inputs: usize) {
    let chain = Harness::start(t, n, signers);
    let each = Amount(chain.network.params().dust.0 * 10);
    let outputs = conformance::outputs(&chain, inputs, each).await;
    let confirmed = conformance::plan_sign_publish_confirm(&chain, outputs).await;
    assert_ne!(confirmed.change, Amount::ZERO, "{inputs} inputs of 10 dust leave change");
    assert_eq!(chain.chain.fees_paid_by(&chain.key()), confirmed.fee);
}

#[tokio::test]
async fn two_of_three_spends_1_10_and_100_inputs() {
    for inputs in [1, 10, 100] {
        spend(2, 3, &[2, 3], inputs).await;
    }
}

#[tokio::test]
async fn three_of_five_spends_1_10_and_100_inputs() {
    for inputs in [1, 10, 100] {
        spend(3, 5, &[1, 3, 5], inputs).await;
    }
}

#[tokio::test]
async fn inputs_of_every_kind_spend_together() {
    let chain = Harness::start(2, 3, &[1, 3]);
    conformance::spend_every_kind(&chain).await;
}

#[tokio::test]
async fn conflicting_spend_of_planned_inputs_is_reported() {
    let chain = Harness::start(2, 3, &[1, 3]);
    conformance::conflicting_spend_is_reported(&chain).await;
}

#[tokio::test]
async fn forwarding_pays_the_successors_forwarded_address() {
    let chain = Harness::start(2, 3, &[1, 3]);
    conformance::forwarding_to_a_successor(&chain).await;
}

#[tokio::test]
async fn a_child_pays_for_its_unconfirmed_parent() {
    let chain = Harness::start(2, 3, &[1, 3]);
    conformance::child_pays_for_parent(&chain).await;
}

#[tokio::test]
async fn a_replacement_at_a_higher_fee_is_mined_alone() {
    let chain = Harness::start(2, 3, &[1, 3]);
    conformance::replacement_at_a_higher_fee(&chain).await;
}

#[tokio::test]
async fn reorg_shallower_than_confirmations_changes_nothing() {
    let chain = Harness::start(2, 3, &[1, 2]);
    // Enough history for the index to start above genesis.
    chain.chain.mine(10);
    conformance::shallow_reorg_changes_nothing(&chain).await;
}

#[tokio::test]
async fn reorg_deeper_than_confirmations_is_fatal() {
    let chain = Harness::start(2, 3, &[1, 2]);
    chain.chain.mine(10);
    conformance::deep_reorg_is_fatal(&chain).await;
}
