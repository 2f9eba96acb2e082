//! The scanner's conformance suite against a real litecoind (or `BITCOIND`) in regtest,
//! with keys from an in-process PedPoP DKG and FROST signing sets of the group.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcoin_network::address::Address;
use bitcoin_network::params::{Chain, Coin, Params};
use bitcoin_network::rpc::RestBlocks;
use bitcoin_network::testing::{keys, node::Node};
use bitcoin_network::{instruction, Bitcoin, GroupKey};
use modular_frost::curve::Secp256k1;
use modular_frost::ThresholdKeys;
use primitives::{Amount, InInstruction};
use scanner::conformance::{self, TestChain};
use scanner::{Network, OutputKind};

struct Harness {
    node: Node,
    /// Pays the deposits: many non-coinbase outputs (see `Node::many_coins`).
    sender: bitcoin_network::rpc::Rpc,
    network: Bitcoin<RestBlocks>,
    params: Params,
    /// The signing set used for every transaction.
    signers: Vec<ThresholdKeys<Secp256k1>>,
}

impl Harness {
    /// A fresh node and a `t`-of-`n` group; transactions are signed by `signers`
    /// (1-based participant indexes, at least `t`).
    async fn start(t: u16, n: u16, signers: &[u16]) -> Harness {
        Harness::start_with(t, n, signers, &[]).await
    }

    /// [`Harness::start`] with extra node arguments.
    async fn start_with(t: u16, n: u16, signers: &[u16], extra: &[&str]) -> Harness {
        let node = Node::start_with(extra).await;
        let sender = node.many_coins("sender", 150, 10_000_000).await;
        let coin = if node.is_litecoin() { Coin::Litecoin } else { Coin::Bitcoin };
        let params = Params::new(coin, Chain::Regtest);
        let network = Bitcoin::new(
            node.rpc().clone(),
            RestBlocks::new(node.rest_url()).unwrap(),
            params.clone(),
        );
        let all = keys::dkg(t, n, u64::from(t) * 1000 + u64::from(n));
        let signers = signers.iter().map(|i| all[usize::from(*i) - 1].clone()).collect();
        Harness { node, sender, network, params, signers }
    }
}

impl TestChain for Harness {
    type N = Bitcoin<RestBlocks>;

    fn network(&self) -> &Self::N {
        &self.network
    }

    fn key(&self) -> GroupKey {
        self.signers[0].group_key()
    }

    fn successor(&self) -> (GroupKey, Vec<u8>) {
        use ciphersuite::group::GroupEncoding;
        let next = keys::dkg(2, 3, 999).remove(0).group_key();
        (next, next.to_bytes().to_vec())
    }

    async fn mine(&self, n: u64) {
        self.node.mine(n).await;
    }

    async fn height(&self) -> u64 {
        self.node.tip().await.0
    }

    async fn deposit(&self, kind: OutputKind, amount: Amount, data: Option<Vec<u8>>) {
        let address = self.network.address_of(&self.key(), kind).unwrap().display(&self.params);
        self.node.deposit_from(&self.sender, &address, amount.0, data.as_deref()).await;
    }

    fn encode_instruction(&self, instruction: &InInstruction) -> Vec<u8> {
        instruction::encode(instruction).unwrap()
    }

    async fn sign(
        &self,
        signable: bitcoin_network::sign::SignableTransaction,
    ) -> bitcoin::Transaction {
        keys::sign_transaction(&self.signers, signable, &mut rand_core::OsRng).unwrap()
    }

    async fn payee(&self) -> Address {
        Address::parse(&self.params, &self.node.new_address().await).unwrap()
    }

    async fn received(&self, address: &Address) -> Amount {
        Amount(self.node.received_by(&address.display(&self.params)).await)
    }

    async fn reorg(&self, height: u64, blocks: u64) {
        let hash = self.node.rpc().block_hash(height).await.unwrap();
        self.node.invalidate(hash).await;
        // A fresh address, so the replacement blocks differ from the invalidated ones
        // (the same transactions, time and address would mine the same block again).
        let address = self.node.new_address().await;
        self.node.mine_to(blocks, &address).await;
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
        "{t}-of-{n} signers {signers:?}: {inputs} key-path inputs spent in block {} \
         (fee {} sat, change {} sat)",
        confirmed.block.number, confirmed.fee.0, confirmed.change.0
    );
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
async fn a_child_pays_for_its_unconfirmed_parent() {
    let chain = Harness::start(2, 3, &[1, 3]).await;
    conformance::child_pays_for_parent(&chain).await;
}

/// Litecoin Core refuses replacements by default (so Litecoin payouts are not replaced:
/// `Params::replaceable`); Bitcoin Core accepts them.
#[tokio::test]
async fn a_replacement_at_a_higher_fee_is_mined_alone() {
    let chain = Harness::start(2, 3, &[1, 3]).await;
    conformance::replacement_at_a_higher_fee(&chain).await;
}

/// The same on a node that accepts BIP125 replacements (litecoind with
/// `-mempoolreplacement=1`, as Bitcoin Core by default), with the network told so: the
/// replacement is accepted, mined alone, and completes its version.
#[tokio::test]
async fn a_replacement_is_accepted_where_the_node_allows_it() {
    let mut chain = Harness::start_with(2, 3, &[1, 3], &["-mempoolreplacement=1"]).await;
    chain.params.replaceable = true;
    chain.network = Bitcoin::new(
        chain.node.rpc().clone(),
        RestBlocks::new(chain.node.rest_url()).unwrap(),
        chain.params.clone(),
    );
    conformance::replacement_at_a_higher_fee(&chain).await;
}

#[tokio::test]
async fn reorg_shallower_than_confirmations_changes_nothing() {
    let chain = Harness::start(2, 3, &[1, 2]).await;
    conformance::shallow_reorg_changes_nothing(&chain).await;
}

#[tokio::test]
async fn reorg_deeper_than_confirmations_is_fatal() {
    let chain = Harness::start(2, 3, &[1, 2]).await;
    conformance::deep_reorg_is_fatal(&chain).await;
}

/// The node and this crate agree on every address type: the node's own addresses parse
/// to the scripts it reports, and our taproot addresses are valid to the node with the
/// script we derived.
#[tokio::test]
async fn node_and_crate_agree_on_addresses() {
    let chain = Harness::start(2, 3, &[1, 2]).await;
    let wallet = chain.node.wallet();
    for kind in ["legacy", "p2sh-segwit", "bech32"] {
        let address: String =
            wallet.call("getnewaddress", serde_json::json!(["", kind])).await.unwrap();
        let info: serde_json::Value =
            wallet.call("getaddressinfo", serde_json::json!([address])).await.unwrap();
        let parsed = Address::parse(&chain.params, &address).unwrap();
        assert_eq!(
            hex::encode(parsed.script().as_bytes()),
            info["scriptPubKey"].as_str().unwrap(),
            "{kind} address {address}"
        );
        assert_eq!(parsed.display(&chain.params), address);
    }
    for kind in OutputKind::ALL {
        let ours = chain.network.address_of(&chain.key(), kind).unwrap();
        let shown = ours.display(&chain.params);
        let info: serde_json::Value =
            chain.node.rpc().call("validateaddress", serde_json::json!([shown])).await.unwrap();
        assert_eq!(info["isvalid"], true, "{shown}");
        assert_eq!(info["scriptPubKey"].as_str().unwrap(), hex::encode(ours.script().as_bytes()));
    }
}

/// A deposit's refund address is the script of the output its first input spent.
#[tokio::test]
async fn refund_address_is_the_spenders_script() {
    let chain = Harness::start(2, 3, &[1, 2]).await;
    let address = chain.network.address_of(&chain.key(), OutputKind::External).unwrap();
    let txid = chain.node.deposit(&address.display(&chain.params), 50_000, None).await;
    chain.mine(1).await;
    let height = chain.height().await;
    chain.mine(chain.network.params().confirmations).await;
    let block = chain.network.block(height).await.unwrap();
    let found = chain.network.scan(&block, &chain.key()).await.unwrap();
    assert_eq!(found.len(), 1);
    let tx = chain.node.rpc().raw_transaction(txid).await.unwrap();
    let prev = chain.node.rpc().raw_transaction(tx.input[0].previous_output.txid).await.unwrap();
    let spent = &prev.output[tx.input[0].previous_output.vout as usize].script_pubkey;
    assert_eq!(found[0].refund.as_ref().unwrap().as_bytes(), spent.as_bytes());
    assert_eq!(found[0].instruction, scanner::Instruction::Missing);
}
