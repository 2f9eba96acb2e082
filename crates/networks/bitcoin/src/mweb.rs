//! Blocks and transactions as litecoind serves them once MWEB (MimbleWimble Extension
//! Blocks, LIP-0002 and LIP-0003) is active; Bitcoin's are the same minus the extension.
//!
//! What MWEB changes on the wire:
//! - A transaction's segwit flag byte may carry bit `0x08`: an optional MWEB transaction
//!   follows the witnesses (one presence byte, then its body). In a block, the only
//!   transaction with that bit is the integrating transaction (HogEx), always the last,
//!   whose MWEB transaction is absent (a single zero byte). Its inputs are the previous
//!   HogEx's first output and this block's peg-ins; its first output commits to the
//!   extension block (`OP_8 <32 bytes>`); its other outputs are peg-outs, paid to ordinary
//!   addresses.
//! - After the transactions, a block whose last transaction is a HogEx carries the
//!   extension block: a presence byte, the MWEB header, then the MWEB body.
//!
//! Contract:
//! - A block decodes to the canonical [`bitcoin::Block`] its txids and merkle root are
//!   computed over: the HogEx loses its `0x08` flag and its empty MWEB transaction, which
//!   Litecoin's txid excludes too. The block hash and merkle root checks of the callers
//!   therefore hold unchanged.
//! - The extension block's header MUST hash (BLAKE3) to the HogEx's commitment, and its
//!   height is returned so the caller checks it against the block's. The MWEB body is not
//!   parsed: it is confidential, nothing in it can pay our (canonical) addresses, and the
//!   header's roots commit to it.
//! - Anything else is a [`DecodeError`], never skipped: MWEB transaction data among a
//!   block's canonical transactions, a HogEx that is not the last transaction, a HogEx
//!   without an extension block, an unknown flag bit, bytes left over after a block
//!   without an extension (after one, the unparsed MWEB body runs to the end).

use bitcoin::{consensus, Block, Transaction};

/// The script of a HogEx's first output: `OP_8`, a 32-byte push, the extension's hash.
const HOGADDR_PREFIX: [u8; 2] = [0x58, 0x20];
/// Segwit's witness flag bit.
const WITNESS: u8 = 0x01;
/// MWEB's flag bit.
const MWEB: u8 = 0x08;

/// A block as the node serves it: the canonical block, and its extension block's header
/// when MWEB is active and the block has one (then its last transaction is the HogEx).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeBlock {
    /// The canonical block.
    pub block: Block,
    /// The extension block's header, checked against the HogEx's commitment.
    pub extension: Option<Extension>,
}

/// What is read from an extension block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension {
    /// The height the MWEB header claims (the caller checks it is the block's).
    pub height: u64,
    /// The BLAKE3 hash of the MWEB header, as committed to by the HogEx.
    pub hash: [u8; 32],
}

/// Why bytes from the node are not a block or transaction we accept.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end inside a field.
    #[error("truncated: {wanted} more bytes needed at byte {at}")]
    Truncated {
        /// Where the read started.
        at: usize,
        /// How many bytes it needed.
        wanted: usize,
    },
    /// A number does not fit.
    #[error("a variable-length number at byte {0} overflows")]
    Overflow(usize),
    /// A CompactSize written with more bytes than its value needs.
    #[error("a non-minimal CompactSize at byte {0}")]
    NonMinimal(usize),
    /// A flag byte with bits we do not know.
    #[error("transaction {index} has unknown flag bits {flags:#04x}")]
    UnknownFlags {
        /// The transaction's index in the block (0 for a lone transaction).
        index: usize,
        /// The flag byte.
        flags: u8,
    },
    /// An empty input list followed by a zero flag: no inputs and no outputs.
    #[error("transaction {0} is empty (an extended-format marker with a zero flag)")]
    Empty(usize),
    /// A transaction carrying an MWEB transaction where only canonical ones may be.
    #[error(
        "transaction {0} carries an MWEB transaction: blocks keep MWEB data in their \
         extension block, and only a HogEx may carry the MWEB flag"
    )]
    MwebTransaction(usize),
    /// The MWEB flag on a transaction with no outputs.
    #[error("transaction {0} has the MWEB flag and no outputs: not a HogEx")]
    HogExWithoutOutputs(usize),
    /// A HogEx that is not the block's last transaction, or a block of one transaction.
    #[error("transaction {index} of {count} is a HogEx: only the last of two or more may be")]
    MisplacedHogEx {
        /// Its index.
        index: usize,
        /// The block's transaction count.
        count: u64,
    },
    /// A HogEx without the extension block that must follow the transactions.
    #[error("the block ends with a HogEx but has no extension block")]
    MissingExtension,
    /// The HogEx's first output does not commit to the extension block's header.
    #[error(
        "the HogEx's first output ({script}) does not commit to the extension header, \
         which hashes to {hash}"
    )]
    Commitment {
        /// The script found, in hex.
        script: String,
        /// The header's hash, in hex.
        hash: String,
    },
    /// Bytes after what was decoded.
    #[error("{0} bytes left after the block or transaction")]
    Trailing(usize),
    /// The canonical part does not decode.
    #[error(transparent)]
    Consensus(#[from] consensus::encode::Error),
}

/// A cursor over the bytes, every read checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or(DecodeError::Truncated { at: self.at, wanted: n })?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Bitcoin's CompactSize, minimally encoded (as the node and rust-bitcoin require).
    fn compact_size(&mut self) -> Result<u64, DecodeError> {
        let at = self.at;
        let (width, least) = match self.byte()? {
            0xfd => (2, 0xfd),
            0xfe => (4, 0x1_0000),
            0xff => (8, 0x1_0000_0000),
            small => return Ok(u64::from(small)),
        };
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(self.take(width)?);
        let value = u64::from_le_bytes(le);
        if value < least {
            return Err(DecodeError::NonMinimal(at));
        }
        Ok(value)
    }

    /// A CompactSize length and that many bytes.
    fn skip_bytes(&mut self) -> Result<(), DecodeError> {
        let at = self.at;
        let len = usize::try_from(self.compact_size()?).map_err(|_| DecodeError::Overflow(at))?;
        self.take(len).map(|_| ())
    }

    /// Bitcoin's VARINT (the MSB base-128 encoding of its `serialize.h`, each
    /// continuation adding one), used by the MWEB header.
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let at = self.at;
        let mut n: u64 = 0;
        loop {
            let byte = self.byte()?;
            if n > (u64::MAX >> 7) {
                return Err(DecodeError::Overflow(at));
            }
            n = (n << 7) | u64::from(byte & 0x7f);
            if byte & 0x80 == 0 {
                return Ok(n);
            }
            n = n.checked_add(1).ok_or(DecodeError::Overflow(at))?;
        }
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }
}

/// Where one transaction's parts lie, and whether it is a HogEx.
struct Shape {
    start: usize,
    /// The flag byte's position and value, in the extended format.
    flag: Option<(usize, u8)>,
    /// Where the MWEB presence byte is (a HogEx).
    hogex_at: Option<usize>,
    end: usize,
}

/// Walks one transaction (`index` names it in errors).
fn walk(r: &mut Reader<'_>, index: usize) -> Result<Shape, DecodeError> {
    let start = r.at;
    r.take(4)?;
    let mut flag = None;
    let mut inputs = r.compact_size()?;
    if inputs == 0 {
        let at = r.at;
        let flags = r.byte()?;
        if flags == 0 {
            return Err(DecodeError::Empty(index));
        }
        if flags & !(WITNESS | MWEB) != 0 {
            return Err(DecodeError::UnknownFlags { index, flags });
        }
        flag = Some((at, flags));
        inputs = r.compact_size()?;
    }
    for _ in 0..inputs {
        r.take(36)?;
        r.skip_bytes()?;
        r.take(4)?;
    }
    let outputs = r.compact_size()?;
    for _ in 0..outputs {
        r.take(8)?;
        r.skip_bytes()?;
    }
    let flags = flag.map_or(0, |(_, flags)| flags);
    if flags & WITNESS != 0 {
        for _ in 0..inputs {
            for _ in 0..r.compact_size()? {
                r.skip_bytes()?;
            }
        }
    }
    let mut hogex_at = None;
    if flags & MWEB != 0 {
        hogex_at = Some(r.at);
        if r.byte()? != 0 {
            return Err(DecodeError::MwebTransaction(index));
        }
        if outputs == 0 {
            return Err(DecodeError::HogExWithoutOutputs(index));
        }
    }
    r.take(4)?;
    Ok(Shape { start, flag, hogex_at, end: r.at })
}

/// The HogEx's canonical serialization: its flag without the MWEB bit (no marker at all
/// without witnesses), and no MWEB presence byte.
fn canonical_hogex(bytes: &[u8], shape: &Shape, hogex_at: usize, out: &mut Vec<u8>) {
    let Some((flag_at, flags)) = shape.flag else {
        unreachable!("a HogEx is in the extended format")
    };
    out.extend_from_slice(&bytes[shape.start..shape.start + 4]);
    if flags & WITNESS != 0 {
        out.extend_from_slice(&[0x00, WITNESS]);
    }
    out.extend_from_slice(&bytes[flag_at + 1..hogex_at]);
    out.extend_from_slice(&bytes[hogex_at + 1..shape.end]);
}

/// Decodes a block as the node serves it (REST `.bin`, or `getblock <hash> 0`).
pub fn decode_block(bytes: &[u8]) -> Result<NodeBlock, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    r.take(80)?;
    let count = r.compact_size()?;
    let mut hogex = None;
    let mut index = 0usize;
    while (index as u64) < count {
        let shape = walk(&mut r, index)?;
        if let Some(at) = shape.hogex_at {
            if (index as u64) + 1 != count || count < 2 {
                return Err(DecodeError::MisplacedHogEx { index, count });
            }
            hogex = Some((shape, at));
        }
        index += 1;
    }
    let Some((shape, hogex_at)) = hogex else {
        if r.left() != 0 {
            return Err(DecodeError::Trailing(r.left()));
        }
        return Ok(NodeBlock { block: consensus::deserialize(bytes)?, extension: None });
    };

    // The extension block: present, then the MWEB header (height, output, kernel and
    // leafset roots, kernel and stealth offsets, output and kernel MMR sizes).
    if r.byte()? != 1 {
        return Err(DecodeError::MissingExtension);
    }
    let header_start = r.at;
    let height = r.varint()?;
    r.take(5 * 32)?;
    r.varint()?;
    r.varint()?;
    let hash: [u8; 32] = blake3::hash(&bytes[header_start..r.at]).into();

    let mut canonical = Vec::with_capacity(shape.end);
    canonical.extend_from_slice(&bytes[..shape.start]);
    canonical_hogex(bytes, &shape, hogex_at, &mut canonical);
    let block: Block = consensus::deserialize(&canonical)?;
    let commitment = [&HOGADDR_PREFIX[..], &hash].concat();
    let first = block.txdata.last().and_then(|hogex| hogex.output.first());
    match first {
        Some(output) if output.script_pubkey.as_bytes() == commitment => {}
        found => {
            return Err(DecodeError::Commitment {
                script: found.map(|o| hex::encode(o.script_pubkey.as_bytes())).unwrap_or_default(),
                hash: hex::encode(hash),
            })
        }
    }
    Ok(NodeBlock { block, extension: Some(Extension { height, hash }) })
}

/// Decodes a transaction as the node serves it (`getrawtransaction`): a canonical one,
/// or a HogEx (returned in its canonical form). One carrying an MWEB transaction (an
/// MWEB spend in the mempool) is [`DecodeError::MwebTransaction`]: once mined, its
/// canonical part is served without it.
pub fn decode_transaction(bytes: &[u8]) -> Result<Transaction, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let shape = walk(&mut r, 0)?;
    if r.left() != 0 {
        return Err(DecodeError::Trailing(r.left()));
    }
    match shape.hogex_at {
        None => Ok(consensus::deserialize(bytes)?),
        Some(at) => {
            let mut canonical = Vec::with_capacity(bytes.len());
            canonical_hogex(bytes, &shape, at, &mut canonical);
            Ok(consensus::deserialize(&canonical)?)
        }
    }
}

#[cfg(test)]
mod tests;
