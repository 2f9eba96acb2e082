//! The RPC client and the block sources against a real litecoind (or `$BITCOIND`) in
//! regtest, started by each test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bitcoin::{
    bech32::{segwit, Hrp},
    blockdata::script::Instruction,
    hashes::Hash,
    opcodes::all::OP_RETURN,
    BlockHash, OutPoint, ScriptBuf, Txid, WPubkeyHash,
};
use bitcoin_network::rpc::{BlockSource, RestBlocks, Rpc, RpcAuth, RpcConfig, RpcError};
use bitcoin_network::testing::node::Node;
use serde_json::{json, Value};

async fn start() -> Node {
    let started = Instant::now();
    let node = Node::start().await;
    eprintln!("node started and funded in {:?}", started.elapsed());
    node
}

#[tokio::test]
async fn blocks_match_over_rpc_and_rest() {
    let node = start().await;
    let rpc = node.rpc();
    let rest = RestBlocks::new(node.rest_url()).unwrap();
    let (height, tip) = node.tip().await;
    assert_eq!(rpc.block_count().await.unwrap(), height);
    assert!(height > 100, "start() leaves mature coins: height {height}");
    assert_eq!(rpc.block_hash(height).await.unwrap(), tip);

    for height in [0, 1, height / 2, height] {
        let hash = rpc.block_hash(height).await.unwrap();
        let by_rpc = BlockSource::block(rpc, &hash).await.unwrap().block;
        let by_rest = rest.block(&hash).await.unwrap().block;
        assert_eq!(by_rpc, by_rest, "block {height}");
        // The hash the node reports is the double SHA-256 of the header (scrypt is only
        // Litecoin's proof of work), which is what rust-bitcoin computes.
        assert_eq!(by_rpc.block_hash(), hash, "block {height}");
        assert!(by_rpc.check_merkle_root(), "block {height}");
        assert_eq!(rpc.block_header(hash).await.unwrap(), by_rpc.header);
        if height > 0 {
            assert_eq!(by_rpc.header.prev_blockhash, rpc.block_hash(height - 1).await.unwrap());
            // -txindex: confirmed transactions are served by txid.
            let coinbase = &by_rpc.txdata[0];
            assert_eq!(&rpc.raw_transaction(coinbase.compute_txid()).await.unwrap(), coinbase);
        }
    }

    // Block transfer times, for the record.
    let hash = rpc.block_hash(height).await.unwrap();
    let started = Instant::now();
    for _ in 0..20 {
        rpc.block(hash).await.unwrap();
    }
    let by_rpc = started.elapsed() / 20;
    let started = Instant::now();
    for _ in 0..20 {
        rest.block(&hash).await.unwrap();
    }
    eprintln!("one small block: getblock {by_rpc:?}, REST {:?}", started.elapsed() / 20);

    // A reorganization and back.
    node.invalidate(tip).await;
    assert_eq!(node.tip().await.0, height - 1);
    assert_eq!(rpc.block_count().await.unwrap(), height - 1);
    // Still served by hash, though no longer in the best chain.
    assert_eq!(rest.block(&tip).await.unwrap().block.block_hash(), tip);
    node.reconsider(tip).await;
    assert_eq!(node.tip().await, (height, tip));
}

/// A P2WPKH address no wallet of the node owns.
fn external_address(node: &Node) -> (String, ScriptBuf) {
    let program = [7u8; 20];
    let address =
        segwit::encode(Hrp::parse(node.hrp()).unwrap(), segwit::VERSION_0, &program).unwrap();
    let script = ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array(program));
    (address, script)
}

#[tokio::test]
async fn deposit_with_op_return_is_in_mempool_then_mined() {
    let node = start().await;
    let rpc = node.rpc();
    let (address, script) = external_address(&node);
    assert!(address.starts_with(&format!("{}1q", node.hrp())), "{address}");
    node.watch(&address).await;
    let data = b"tc: deposit instruction, up to 80 bytes".as_slice();
    let sats = 123_456;

    let txid = node.deposit(&address, sats, Some(data)).await;
    assert!(rpc.mempool_contains(txid).await.unwrap());
    let tx = rpc.raw_transaction(txid).await.unwrap();
    let payment = tx.output.iter().position(|o| o.script_pubkey == script).expect("payment");
    assert_eq!(tx.output[payment].value.to_sat(), sats);
    let op_return = tx.output.iter().find(|o| o.script_pubkey.is_op_return()).expect("OP_RETURN");
    assert_eq!(op_return.value.to_sat(), 0);
    let pushed: Vec<_> = op_return.script_pubkey.instructions().map(Result::unwrap).collect();
    assert!(
        matches!(pushed[..], [Instruction::Op(OP_RETURN), Instruction::PushBytes(bytes)] if bytes.as_bytes() == data)
    );
    // Unconfirmed: not yet received (1 confirmation) nor in the UTXO set.
    assert_eq!(node.received_by(&address).await, 0);
    assert!(node.utxos_of(&address).await.is_empty());
    // A fresh regtest chain has no fee estimate.
    assert_eq!(rpc.estimate_smart_fee(6).await.unwrap(), None);

    // A deposit to one of the miner's own addresses, in the same block.
    let own = node.new_address().await;
    let own_txid = node.deposit(&own, 50_000, None).await;

    let mined = node.mine(1).await;
    let block = node.rest_blocks().block(&mined[0]).await.unwrap().block;
    let in_block = block.txdata.iter().find(|t| t.compute_txid() == txid).expect("deposit mined");
    assert_eq!(in_block, &tx);
    assert_eq!(in_block.output.len(), tx.output.len());
    assert!(block.txdata.iter().any(|t| t.compute_txid() == own_txid));
    assert!(!rpc.mempool_contains(txid).await.unwrap());

    assert_eq!(node.received_by(&address).await, sats);
    assert_eq!(node.received_by(&own).await, 50_000);
    let outpoint = OutPoint { txid, vout: u32::try_from(payment).unwrap() };
    assert_eq!(node.utxos_of(&address).await, vec![(outpoint, sats)]);
    assert_eq!(node.utxos_of(&hex::encode(script.as_bytes())).await, vec![(outpoint, sats)]);

    // Publishing again is idempotent, in the mempool and once confirmed.
    assert_eq!(node.send_raw(&tx).await.unwrap(), txid);
    let pending = node.deposit(&address, 100_000, None).await;
    let pending_tx = rpc.raw_transaction(pending).await.unwrap();
    assert_eq!(node.send_raw(&pending_tx).await.unwrap(), pending);
    // A conflicting transaction is a permanent RPC error.
    let mut conflicting = pending_tx.clone();
    conflicting.output[0].value = bitcoin::Amount::from_sat(1);
    let error = node.send_raw(&conflicting).await.unwrap_err();
    assert!(matches!(error, RpcError::Rpc { .. }), "{error}");
    assert!(!error.is_transient());
}

#[tokio::test]
async fn unknown_blocks_and_rpc_errors_are_typed() {
    let node = start().await;
    let rpc = node.rpc();
    let unknown = BlockHash::from_byte_array([0x42; 32]);
    for error in [
        rpc.block(unknown).await.unwrap_err(),
        BlockSource::block(&node.rest_blocks(), &unknown).await.unwrap_err(),
        rpc.block_header(unknown).await.unwrap_err(),
    ] {
        assert!(matches!(error, RpcError::BlockNotFound { hash } if hash == unknown), "{error}");
        assert!(!error.is_transient());
    }

    let error = rpc.block_hash(999_999).await.unwrap_err();
    assert!(
        matches!(&error, RpcError::Rpc { method, code: -8, .. } if method == "getblockhash"),
        "{error}"
    );
    assert_eq!(error.rpc_code(), Some(-8));
    assert!(!error.is_transient());
    // Unknown method (HTTP 404 with a JSON-RPC body), unknown wallet.
    let error = rpc.call::<Value>("nosuchmethod", json!([])).await.unwrap_err();
    assert_eq!(error.rpc_code(), Some(-32601), "{error}");
    let error =
        rpc.with_wallet("nosuchwallet").call::<Value>("getbalance", json!([])).await.unwrap_err();
    assert_eq!(error.rpc_code(), Some(-18), "{error}");
    // Unknown transaction.
    let unknown_tx = Txid::from_byte_array([0x42; 32]);
    assert!(!rpc.mempool_contains(unknown_tx).await.unwrap());
    assert_eq!(rpc.raw_transaction(unknown_tx).await.unwrap_err().rpc_code(), Some(-5));
    // Named parameters work too.
    let hash: String = rpc.call("getblockhash", json!({ "height": 0 })).await.unwrap();
    assert_eq!(hash.parse::<BlockHash>().unwrap(), rpc.block_hash(0).await.unwrap());
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized() {
    let node = start().await;
    let auth = RpcAuth::UserPass { user: "__cookie__".into(), password: "wrong".into() };
    let rpc = Rpc::new(RpcConfig::new(node.rest_url(), auth)).unwrap();
    let started = Instant::now();
    let error = rpc.block_count().await.unwrap_err();
    assert!(matches!(error, RpcError::Unauthorized { .. }), "{error}");
    assert!(!error.is_transient());
    assert!(error.to_string().contains("cookie"), "{error}");
    eprintln!("401 after {:?} (the node delays failed logins)", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(2), "not retried");

    // The node's own cookie works; a missing cookie file is a (transient) cookie error.
    let cookie = node.datadir().join("regtest").join(".cookie");
    let rpc = Rpc::new(RpcConfig::new(node.rest_url(), RpcAuth::Cookie(cookie))).unwrap();
    assert_eq!(rpc.block_count().await.unwrap(), node.tip().await.0);
    let missing = node.datadir().join("missing-cookie");
    let config = RpcConfig::new(node.rest_url(), RpcAuth::Cookie(missing));
    let rpc = Rpc::new(config).unwrap().with_timeout(Duration::from_secs(1), 0);
    let error = rpc.block_count().await.unwrap_err();
    assert!(matches!(error, RpcError::Cookie { .. }) && error.is_transient(), "{error}");
}

#[tokio::test]
async fn a_closed_port_is_transient_after_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let auth = RpcAuth::UserPass { user: "u".into(), password: "p".into() };
    let rpc =
        Rpc::new(RpcConfig::new(&url, auth)).unwrap().with_timeout(Duration::from_millis(500), 2);
    let started = Instant::now();
    let error = rpc.block_count().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&error, RpcError::Connect { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused),
        "{error}"
    );
    assert!(error.is_transient());
    // Two retries: 50-100 ms + 100-200 ms of (jittered) backoff.
    assert!(
        elapsed >= Duration::from_millis(150) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );

    let rest = RestBlocks::new(&url).unwrap().with_timeout(Duration::from_millis(500), 1);
    let started = Instant::now();
    let error = rest.block(&BlockHash::from_byte_array([1; 32])).await.unwrap_err();
    assert!(matches!(error, RpcError::Connect { .. }) && error.is_transient(), "{error}");
    // One retry after 50-100 ms.
    assert!(started.elapsed() >= Duration::from_millis(50));
}
