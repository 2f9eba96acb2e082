//! Blocks and a transaction recorded from litecoind 0.21.2.1 regtest with MWEB active
//! (no `-vbparams`): the first block with a HogEx (height 432, one peg-in), a block with
//! a peg-out (height 436), the block before activation, and an MWEB spend in the mempool.
//! The expected ids are what the node's `getblock <hash> 2` printed.

use super::*;

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.trim()).unwrap()
}

fn first_hogex_block() -> Vec<u8> {
    bytes(include_str!("first-hogex-block.hex"))
}

fn pegout_block() -> Vec<u8> {
    bytes(include_str!("pegout-block.hex"))
}

fn txids(block: &Block) -> Vec<String> {
    block.txdata.iter().map(|tx| tx.compute_txid().to_string()).collect()
}

#[test]
fn the_first_hogex_block_decodes_to_the_nodes_ids_and_commitment() {
    // rust-bitcoin alone (what blocks were decoded with before) refuses it.
    assert!(consensus::deserialize::<Block>(&first_hogex_block()).is_err());
    let decoded = decode_block(&first_hogex_block()).unwrap();
    assert_eq!(
        decoded.block.block_hash().to_string(),
        "e73fc365febced1fb9051ade86382380369cdea548f854e74f7c3833995966c6"
    );
    assert_eq!(
        txids(&decoded.block),
        [
            "552e5fa2467b83f23a63faaded3cc7da55674c69a9f61aad76801245096ddc76",
            "229e27de2a37545db777f5b72f0f830ca8dc2909736330efc427290345b5d8fc",
            "fe2d64f805f251ada37cddfcd4132b4e59c0f68cbe674c8969195d26d63fdc6f",
        ]
    );
    assert!(decoded.block.check_merkle_root());
    let extension = decoded.extension.unwrap();
    assert_eq!(extension.height, 432);
    assert_eq!(
        hex::encode(extension.hash),
        "6e307a75e7cdd0536f37eaa25e3394a94c81e409f95dbe64f1c5cdbc449080b6"
    );
    // The peg-in pays the MWEB peg-in script (witness version 9).
    assert_eq!(decoded.block.txdata[1].output[0].script_pubkey.as_bytes()[0], 0x59);
}

#[test]
fn a_pegout_is_an_ordinary_output_of_the_hogex() {
    let decoded = decode_block(&pegout_block()).unwrap();
    assert_eq!(
        decoded.block.block_hash().to_string(),
        "24c70d3fe49a793581649ffc04a6291fb81623f8081d0d60ea33d716abbf1771"
    );
    assert_eq!(
        txids(&decoded.block),
        [
            "a6a236f7d7f085f79eea31f138fe52b8e4434e4497f9e3a4351a81c82b2bb93c",
            "fc8f86f3e18cb91345cfc6ee9b5591c8b27f3a4eedd6ae70376b556dc7aabea8",
        ]
    );
    assert!(decoded.block.check_merkle_root());
    assert_eq!(decoded.extension.unwrap().height, 436);
    let pegout = &decoded.block.txdata[1].output[1];
    assert_eq!(pegout.value.to_sat(), 500_000_000);
    assert_eq!(
        hex::encode(pegout.script_pubkey.as_bytes()),
        "001455b0d878cac4d7a0659a54a7fb97f14be4e65706"
    );
}

#[test]
fn a_block_without_mweb_decodes_as_rust_bitcoin_decodes_it() {
    let raw = bytes(include_str!("pre-mweb-block.hex"));
    let decoded = decode_block(&raw).unwrap();
    assert_eq!(decoded.extension, None);
    assert_eq!(decoded.block, consensus::deserialize::<Block>(&raw).unwrap());
}

/// Where the extension's MWEB header ends (its body, not parsed, follows).
fn extension_header_end(raw: &[u8]) -> usize {
    let (_, hogex_at) = hogex_positions(raw);
    let mut r = Reader { bytes: raw, at: hogex_at + 1 + 4 };
    assert_eq!(r.byte().unwrap(), 1);
    r.varint().unwrap();
    r.take(5 * 32).unwrap();
    r.varint().unwrap();
    r.varint().unwrap();
    r.at
}

#[test]
fn every_truncation_before_the_mweb_body_is_an_error() {
    for raw in [first_hogex_block(), pegout_block()] {
        let end = extension_header_end(&raw);
        for len in 0..end {
            assert!(decode_block(&raw[..len]).is_err(), "{len} of {} bytes decoded", raw.len());
        }
        // The body is not parsed: the header's roots commit to it, and nothing we use
        // is in it.
        assert!(decode_block(&raw[..end]).is_ok());
    }
}

#[test]
fn bytes_after_a_block_without_an_extension_are_refused() {
    let mut longer = bytes(include_str!("pre-mweb-block.hex"));
    longer.extend([1, 2, 3]);
    assert!(matches!(decode_block(&longer), Err(DecodeError::Trailing(3))));
}

#[test]
fn a_non_minimal_compact_size_is_refused() {
    // The block's transaction count (3) written in three bytes.
    let raw = first_hogex_block();
    let mut edited = raw[..80].to_vec();
    edited.extend([0xfd, 3, 0]);
    edited.extend(&raw[81..]);
    assert!(matches!(decode_block(&edited), Err(DecodeError::NonMinimal(80))));
}

/// Where the HogEx (the last transaction) starts, and its MWEB presence byte.
fn hogex_positions(raw: &[u8]) -> (usize, usize) {
    let mut r = Reader { bytes: raw, at: 80 };
    let count = r.compact_size().unwrap() as usize;
    let mut last = None;
    for index in 0..count {
        last = Some(walk(&mut r, index).unwrap());
    }
    let last = last.unwrap();
    (last.start, last.hogex_at.unwrap())
}

#[test]
fn an_extension_that_does_not_match_the_commitment_is_refused() {
    let raw = first_hogex_block();
    let (_, hogex_at) = hogex_positions(&raw);
    // The extension starts after the HogEx's lock time: presence byte, then the height
    // (two bytes for 432), then the output root.
    let output_root = hogex_at + 1 + 4 + 1 + 2;
    let mut edited = raw.clone();
    edited[output_root] ^= 1;
    assert!(matches!(decode_block(&edited), Err(DecodeError::Commitment { .. })));
    // Absent where a HogEx requires it.
    let mut edited = raw.clone();
    edited[hogex_at + 1 + 4] = 0;
    assert!(matches!(decode_block(&edited), Err(DecodeError::MissingExtension)));
}

#[test]
fn mweb_data_outside_the_hogex_is_refused() {
    let raw = first_hogex_block();
    let (start, hogex_at) = hogex_positions(&raw);
    // The HogEx claiming an MWEB transaction.
    let mut edited = raw.clone();
    edited[hogex_at] = 1;
    assert!(matches!(decode_block(&edited), Err(DecodeError::MwebTransaction(2))));
    // An unknown flag bit on the HogEx (version, marker, then the flag).
    let mut edited = raw.clone();
    assert_eq!(edited[start + 5], MWEB);
    edited[start + 5] = MWEB | 0x02;
    assert!(matches!(
        decode_block(&edited),
        Err(DecodeError::UnknownFlags { index: 2, flags: 0x0a })
    ));
    // A HogEx that is not last: the block claims one more transaction after it.
    let mut edited = raw.clone();
    assert_eq!(edited[80], 3);
    edited[80] = 4;
    assert!(matches!(decode_block(&edited), Err(DecodeError::MisplacedHogEx { index: 2, .. })));
    // An MWEB spend as the node serves it from its mempool: no canonical part at all.
    let spend = bytes(include_str!("mempool-pegout-tx.hex"));
    assert!(matches!(decode_transaction(&spend), Err(DecodeError::MwebTransaction(0))));
}

#[test]
fn a_lone_hogex_decodes_to_its_canonical_form() {
    let raw = first_hogex_block();
    let (start, _) = hogex_positions(&raw);
    // The HogEx runs from `start` to the extension's presence byte's position.
    let block = decode_block(&raw).unwrap().block;
    let hogex = &raw[start..raw.len() - 2100];
    let decoded = decode_transaction(hogex).unwrap();
    assert_eq!(&decoded, block.txdata.last().unwrap());
    assert_eq!(
        decoded.compute_txid().to_string(),
        "fe2d64f805f251ada37cddfcd4132b4e59c0f68cbe674c8969195d26d63fdc6f"
    );
    // A canonical transaction is unchanged.
    let coinbase = consensus::serialize(&block.txdata[0]);
    assert_eq!(decode_transaction(&coinbase).unwrap(), block.txdata[0]);
    let mut longer = coinbase;
    longer.push(0);
    assert!(matches!(decode_transaction(&longer), Err(DecodeError::Trailing(1))));
}

#[test]
fn varints_decode_as_bitcoins_serialize_h_writes_them() {
    for (encoded, value) in [
        (&[0x00][..], 0u64),
        (&[0x7f], 127),
        (&[0x80, 0x00], 128),
        (&[0x82, 0x30], 432),
        (&[0xff, 0x7f], 16511),
        (&[0x82, 0xfe, 0x7f], 65535),
    ] {
        let mut r = Reader { bytes: encoded, at: 0 };
        assert_eq!(r.varint().unwrap(), value, "{encoded:02x?}");
        assert_eq!(r.left(), 0);
    }
    let mut r = Reader { bytes: &[0xff; 11], at: 0 };
    assert!(matches!(r.varint(), Err(DecodeError::Overflow(0))));
}
