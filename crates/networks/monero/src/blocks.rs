//! Many blocks in one request: monerod's `get_blocks.bin`, read and checked here.
//!
//! monero-daemon-rpc 0.2.0 uses `get_blocks.bin` only when the node sends each pruned
//! transaction's prunable hash, which monerod 0.18.0.0 does not, and then falls back to
//! three JSON requests per block. This asks for the transactions in full instead (no
//! prunable hash needed) and checks everything the node sends against the block:
//! - each block is the one asked for (its miner transaction's height);
//! - each transaction hashes to the hash its block lists, in the block's order (a node
//!   cannot show the scanner a transaction the block does not commit to);
//! - the output indexes the node reports count one per output, consecutively across the
//!   block's RingCT transactions; the first is the block's first RingCT output's index.
//!
//! The block hashes themselves are checked by the caller against its index of the chain,
//! as for blocks fetched one by one.
use monero_epee::{Epee, EpeeError, Type};
use monero_wallet::block::Block;
use monero_wallet::interface::prelude::ScannableBlock;
use monero_wallet::transaction::{Pruned, Transaction};

/// Why a `get_blocks.bin` answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum BlocksError {
    /// Not the encoding expected.
    #[error("malformed get_blocks.bin answer: {0}")]
    Malformed(String),
    /// Well formed, but not what the blocks commit to.
    #[error("get_blocks.bin answer does not match its blocks: {0}")]
    Mismatch(String),
}

fn malformed(what: &str, e: EpeeError) -> BlocksError {
    BlocksError::Malformed(format!("{what}: {e:?}"))
}

/// The `get_blocks.bin` request for the blocks from `start` on (at most `count`; monerod
/// 0.18.0.0 ignores the count and sends as many as fit its answer), transactions in full.
pub fn request(start: u64, count: u64) -> Vec<u8> {
    let mut r = monero_epee::HEADER.to_vec();
    r.push(monero_epee::VERSION);
    // Three fields (a varint: the count shifted by the two bits of its size mark).
    r.push(3 << 2);
    let field = |r: &mut Vec<u8>, name: &str, kind: Type, value: &[u8]| {
        r.push(u8::try_from(name.len()).expect("a short field name"));
        r.extend(name.as_bytes());
        r.push(kind as u8);
        r.extend(value);
    };
    field(&mut r, "prune", Type::Bool, &[0]);
    field(&mut r, "start_height", Type::Uint64, &start.to_le_bytes());
    field(&mut r, "max_block_count", Type::Uint64, &count.to_le_bytes());
    r
}

/// One block of the answer, as sent.
struct Sent {
    block: Block,
    transactions: Vec<Transaction>,
}

/// The blocks of a `get_blocks.bin` answer that asked from `start`, checked (module docs),
/// at most `count` of them (any more are skipped unread).
pub fn parse(answer: &[u8], start: u64, count: usize) -> Result<Vec<ScannableBlock>, BlocksError> {
    let mut sent: Vec<Sent> = vec![];
    let mut indexes: Vec<Vec<Vec<u64>>> = vec![];
    let mut epee = Epee::new(answer).map_err(|e| malformed("header", e))?;
    let root = epee.entry().map_err(|e| malformed("root", e))?;
    let mut fields = root.fields().map_err(|e| malformed("root", e))?;
    while let Some(field) = fields.next() {
        let (name, value) = field.map_err(|e| malformed("field", e))?;
        match name.consume() {
            b"blocks" => {
                let mut blocks = value.iterate().map_err(|e| malformed("blocks", e))?;
                while let Some(entry) = blocks.next() {
                    let entry = entry.map_err(|e| malformed("block entry", e))?;
                    // monerod before 0.18.4.3 sends every block that fits its answer, not
                    // the count asked for: the rest are skipped unread.
                    if sent.len() == count {
                        continue;
                    }
                    let mut fields = entry.fields().map_err(|e| malformed("block entry", e))?;
                    let (mut block, mut transactions) = (None, vec![]);
                    while let Some(field) = fields.next() {
                        let (name, value) = field.map_err(|e| malformed("block field", e))?;
                        match name.consume() {
                            b"block" => {
                                let mut bytes =
                                    value.to_str().map_err(|e| malformed("block", e))?.consume();
                                let read = Block::read(&mut bytes).map_err(|e| {
                                    BlocksError::Malformed(format!("a block does not read: {e}"))
                                })?;
                                if !bytes.is_empty() {
                                    return Err(BlocksError::Malformed(
                                        "bytes after a block".into(),
                                    ));
                                }
                                block = Some(read);
                            }
                            b"txs" => {
                                let mut txs = value.iterate().map_err(|e| malformed("txs", e))?;
                                while let Some(tx) = txs.next() {
                                    let tx = tx.map_err(|e| malformed("tx", e))?;
                                    let mut bytes =
                                        tx.to_str().map_err(|e| malformed("tx", e))?.consume();
                                    let read = Transaction::read(&mut bytes).map_err(|e| {
                                        BlocksError::Malformed(format!(
                                            "a transaction does not read: {e}"
                                        ))
                                    })?;
                                    if !bytes.is_empty() {
                                        return Err(BlocksError::Malformed(
                                            "bytes after a transaction".into(),
                                        ));
                                    }
                                    transactions.push(read);
                                }
                            }
                            _ => {}
                        }
                    }
                    let block = block.ok_or_else(|| {
                        BlocksError::Malformed("a block entry without its block".into())
                    })?;
                    sent.push(Sent { block, transactions });
                }
            }
            b"output_indices" => {
                let mut blocks = value.iterate().map_err(|e| malformed("output_indices", e))?;
                while let Some(block) = blocks.next() {
                    let block = block.map_err(|e| malformed("output_indices", e))?;
                    if indexes.len() == count {
                        continue;
                    }
                    let mut of_block = vec![];
                    let mut fields = block.fields().map_err(|e| malformed("indices", e))?;
                    while let Some(field) = fields.next() {
                        let (name, value) = field.map_err(|e| malformed("indices", e))?;
                        if name.consume() != b"indices" {
                            continue;
                        }
                        let mut txs = value.iterate().map_err(|e| malformed("indices", e))?;
                        while let Some(tx) = txs.next() {
                            let tx = tx.map_err(|e| malformed("tx indices", e))?;
                            let mut of_tx = vec![];
                            let mut fields = tx.fields().map_err(|e| malformed("tx indices", e))?;
                            while let Some(field) = fields.next() {
                                let (name, value) =
                                    field.map_err(|e| malformed("tx indices", e))?;
                                if name.consume() != b"indices" {
                                    continue;
                                }
                                let mut list =
                                    value.iterate().map_err(|e| malformed("indices", e))?;
                                while let Some(index) = list.next() {
                                    of_tx.push(
                                        index
                                            .and_then(|i| i.to_u64())
                                            .map_err(|e| malformed("index", e))?,
                                    );
                                }
                            }
                            of_block.push(of_tx);
                        }
                    }
                    indexes.push(of_block);
                }
            }
            _ => {}
        }
    }
    if sent.len() != indexes.len() {
        return Err(BlocksError::Mismatch(format!(
            "{} blocks but output indexes for {}",
            sent.len(),
            indexes.len()
        )));
    }
    sent.into_iter()
        .zip(indexes)
        .enumerate()
        .map(|(i, (sent, indexes))| checked(start + i as u64, sent, &indexes))
        .collect()
}

/// The block at `number`, checked against what the node sent with it.
fn checked(number: u64, sent: Sent, indexes: &[Vec<u64>]) -> Result<ScannableBlock, BlocksError> {
    let Sent { block, transactions } = sent;
    if block.number() as u64 != number {
        return Err(BlocksError::Mismatch(format!(
            "block {} sent where {number} was asked for",
            block.number()
        )));
    }
    if transactions.len() != block.transactions.len() {
        return Err(BlocksError::Mismatch(format!(
            "block {number} lists {} transactions, {} were sent",
            block.transactions.len(),
            transactions.len()
        )));
    }
    for (tx, listed) in transactions.iter().zip(&block.transactions) {
        if tx.hash() != *listed {
            return Err(BlocksError::Mismatch(format!(
                "block {number}: a transaction sent hashes to {}, the block lists {}",
                hex::encode(tx.hash()),
                hex::encode(listed)
            )));
        }
    }
    // Output indexes: one list per transaction (the miner's first), one index per output,
    // RingCT outputs numbered consecutively.
    if indexes.len() != transactions.len() + 1 {
        return Err(BlocksError::Mismatch(format!(
            "block {number}: output indexes for {} transactions, it has {}",
            indexes.len(),
            transactions.len() + 1
        )));
    }
    let mut first = None;
    let mut next: Option<u64> = None;
    let outputs = std::iter::once(block.miner_transaction())
        .chain(transactions.iter())
        .map(|tx| (matches!(tx, Transaction::V2 { .. }), tx.prefix().outputs.len()));
    for ((ringct, count), of_tx) in outputs.zip(indexes) {
        if of_tx.len() != count {
            return Err(BlocksError::Mismatch(format!(
                "block {number}: {} output indexes for a transaction of {count} outputs",
                of_tx.len()
            )));
        }
        if !ringct || count == 0 {
            continue;
        }
        let expected = next.unwrap_or(of_tx[0]);
        let consecutive = of_tx
            .iter()
            .enumerate()
            .all(|(i, index)| expected.checked_add(i as u64) == Some(*index));
        if !consecutive {
            return Err(BlocksError::Mismatch(format!(
                "block {number}: RingCT output indexes are not consecutive"
            )));
        }
        first = first.or(Some(of_tx[0]));
        next = Some(expected.checked_add(count as u64).ok_or_else(|| {
            BlocksError::Mismatch(format!("block {number}: output indexes beyond u64"))
        })?);
    }
    Ok(ScannableBlock {
        block,
        transactions: transactions.into_iter().map(Transaction::<Pruned>::from).collect(),
        output_index_for_first_ringct_output: first,
    })
}
