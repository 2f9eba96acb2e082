//! The scanner's conformance suite against a real monerod in regtest, with keys dealt
//! in-process and FROST (CLSAG) signing sets of the group.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use modular_frost::curve::Ed25519;
use modular_frost::ThresholdKeys;
use monero_network::keys::Keys;
use monero_network::rpc::Node as Rpc;
use monero_network::testing::wallet::{random_pair, TestWallet};
use monero_network::testing::{self, node::Node};
use monero_network::{instruction, Address, Monero, Params};
use monero_wallet::address::Network as AddressNetwork;
use monero_wallet::send::SignableTransaction;
use monero_wallet::transaction::Transaction;
use monero_wallet::{Scanner, ViewPair};
use primitives::{Amount, InInstruction};
use scanner::conformance::{self, TestChain};
use scanner::{Network, OutputKind};

struct Harness {
    node: Node,
    wallet: TestWallet,
    network: Monero,
    signers: Vec<ThresholdKeys<Ed25519>>,
    /// Payees made by `payee`: their view pairs and the height they were made at.
    payees: Mutex<Vec<(ViewPair, u64)>>,
}

impl Harness {
    async fn start(t: u16, n: u16, signers: &[u16]) -> Harness {
        let (node, wallet) = Node::start().await;
        let params = Params::from_chain("regtest").unwrap();
        let network = Monero::new(Rpc::new(node.url(), std::time::Duration::from_secs(60)), params);
        let all = testing::dkg(t, n, u64::from(t) * 1000 + u64::from(n));
        let signers = signers.iter().map(|i| all[usize::from(*i) - 1].clone()).collect();
        Harness { node, wallet, network, signers, payees: Mutex::new(vec![]) }
    }
}

impl TestChain for Harness {
    type N = Monero;

    fn network(&self) -> &Monero {
        &self.network
    }

    fn key(&self) -> Keys {
        self.network.key(&self.signers[0])
    }

    fn successor(&self) -> (Keys, Vec<u8>) {
        use ciphersuite::group::GroupEncoding;
        let next = testing::dkg(2, 3, 999).remove(0);
        (self.network.key(&next), next.group_key().to_bytes().to_vec())
    }

    async fn mine(&self, n: u64) {
        self.node.mine_to(n, &random_pair().legacy_address(AddressNetwork::Mainnet)).await;
    }

    async fn height(&self) -> u64 {
        self.node.tip().await
    }

    async fn deposit(&self, kind: OutputKind, amount: Amount, data: Option<Vec<u8>>) {
        let to = self.key().address(kind);
        self.wallet.pay(self.node.rpc(), to, amount.0, data).await;
    }

    fn encode_instruction(&self, instruction: &InInstruction) -> Vec<u8> {
        instruction::encode(instruction).unwrap()
    }

    async fn sign(&self, signable: SignableTransaction) -> Transaction {
        testing::sign_transaction(&self.signers, signable)
    }

    async fn payee(&self) -> Address {
        let pair = random_pair();
        let address = Address::new(pair.legacy_address(AddressNetwork::Mainnet)).unwrap();
        let tip = self.node.tip().await;
        self.payees.lock().unwrap().push((pair, tip));
        address
    }

    async fn received(&self, address: &Address) -> Amount {
        let (pair, from) = {
            let payees = self.payees.lock().unwrap();
            let (pair, from) = payees
                .iter()
                .find(|(p, _)| p.legacy_address(AddressNetwork::Mainnet) == address.monero())
                .expect("a payee of this harness");
            (pair.clone(), *from)
        };
        let mut scanner = Scanner::new(pair);
        let mut total = 0;
        for number in from..=self.node.tip().await {
            let block = self.node.rpc().scannable_block(number).await.unwrap();
            for o in scanner.scan(block).unwrap().ignore_additional_timelock() {
                total += o.commitment().amount;
            }
        }
        Amount(total)
    }

    async fn reorg(&self, height: u64, blocks: u64) {
        let tip = self.node.tip().await;
        self.node.pop(tip + 1 - height).await;
        self.mine(blocks).await;
    }

    fn shows_senders(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn deposits_are_scanned_with_kind_amount_and_instruction() {
    let chain = Harness::start(2, 3, &[1, 2]).await;
    conformance::deposits_are_scanned(&chain).await;
}

#[tokio::test]
async fn branch_and_change_outputs_are_told_apart() {
    let chain = Harness::start(2, 3, &[1, 2]).await;
    conformance::kinds_are_told_apart(&chain).await;
}

async fn spend(t: u16, n: u16, signers: &[u16], inputs: usize) {
    let chain = Harness::start(t, n, signers).await;
    let each = Amount(chain.network.params().dust.0 * 10);
    let outputs = conformance::outputs(&chain, inputs, each).await;
    let confirmed = conformance::plan_sign_publish_confirm(&chain, outputs).await;
    eprintln!(
        "{t}-of-{n} signers {signers:?}: {inputs} inputs spent in block {} (fee {} piconero, change {})",
        confirmed.block.number, confirmed.fee.0, confirmed.change.0
    );
}

#[tokio::test]
async fn two_of_three_spends_1_and_10_inputs() {
    for inputs in [1, 10] {
        spend(2, 3, &[2, 3], inputs).await;
    }
}

#[tokio::test]
async fn three_of_five_spends_4_inputs() {
    spend(3, 5, &[1, 3, 5], 4).await;
}

#[tokio::test]
async fn inputs_of_every_kind_spend_together() {
    let chain = Harness::start(2, 3, &[1, 3]).await;
    let confirmed = conformance::spend_every_kind(&chain).await;
    eprintln!(
        "External + Branch + Change + Forwarded inputs spent in block {}",
        confirmed.block.number
    );
}

#[tokio::test]
async fn conflicting_spend_of_planned_inputs_is_reported() {
    let chain = Harness::start(2, 3, &[1, 3]).await;
    conformance::conflicting_spend_is_reported(&chain).await;
}

#[tokio::test]
async fn forwarding_pays_the_successors_forwarded_address() {
    let chain = Harness::start(2, 3, &[1, 3]).await;
    conformance::forwarding_to_a_successor(&chain).await;
}

#[tokio::test]
async fn shallow_reorg_changes_nothing_indexed() {
    let chain = Harness::start(2, 3, &[1, 2]).await;
    conformance::shallow_reorg_changes_nothing(&chain).await;
}

#[tokio::test]
async fn deep_reorg_is_fatal() {
    let chain = Harness::start(2, 3, &[1, 2]).await;
    conformance::deep_reorg_is_fatal(&chain).await;
}

/// Our own outputs (branch, change, forwarded) are guaranteed outputs: an output paid to
/// the same subaddress the standard way, as anyone could make one (and as a copy of one
/// of our outputs' keys would be), is not ours. Deposits to the main address are.
#[tokio::test]
async fn only_guaranteed_outputs_to_our_own_subaddresses_are_ours() {
    let chain = Harness::start(2, 3, &[1, 2]).await;
    let key = chain.key();
    let dust = chain.network.params().dust.0;
    for (i, kind) in
        [OutputKind::Branch, OutputKind::Change, OutputKind::Forwarded].into_iter().enumerate()
    {
        let index = monero_network::keys::subaddress(kind).unwrap();
        let standard = key.view_pair().subaddress(AddressNetwork::Mainnet, index);
        chain.wallet.pay(chain.node.rpc(), standard, dust * 3 + i as u64, None).await;
    }
    // The main address in the guaranteed form (derivable from the public keys): not a
    // deposit either.
    let guaranteed_main = key.guaranteed().address(AddressNetwork::Mainnet, None, None);
    chain.wallet.pay(chain.node.rpc(), guaranteed_main, dust * 13, None).await;
    chain.deposit(OutputKind::External, Amount(dust * 5), None).await;
    chain.deposit(OutputKind::Change, Amount(dust * 7), None).await;
    chain.mine(1).await;
    let height = chain.height().await;
    chain.mine(chain.network.params().confirmations).await;
    let block = chain.network.block(height).await.unwrap();
    let found = chain.network.scan(&block, &key).await.unwrap();
    let mut seen: Vec<(OutputKind, u64)> = found.iter().map(|o| (o.kind, o.value)).collect();
    seen.sort();
    assert_eq!(seen, vec![(OutputKind::External, dust * 5), (OutputKind::Change, dust * 7)]);
}
