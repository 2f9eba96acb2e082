//! The chain's data: transactions, blocks, outputs, addresses, eventualities, and their
//! ids and encodings.
use borsh::{BorshDeserialize, BorshSerialize};
use ciphersuite::group::{Group, GroupEncoding};
use modular_frost::algorithm::{Hram, SchnorrSignature};
use modular_frost::curve::{Ciphersuite, IetfSecp256k1Hram, Secp256k1};
use primitives::codec::encode_body;
use primitives::{Amount, ExternalAddress, InInstruction, Versioned};
use scanner::{BlockRef, ChainBlock, Instruction, OutputKind, ReceivedOutput};

/// Our group key: a secp256k1 point.
pub type GroupKey = <Secp256k1 as Ciphersuite>::G;

/// Domain of transaction ids.
pub const TX_DOMAIN: &[u8] = b"tc-memory/v1/tx";
/// Domain of block ids.
pub const BLOCK_DOMAIN: &[u8] = b"tc-memory/v1/block";
/// Domain of our addresses.
pub const ADDRESS_DOMAIN: &[u8] = b"tc-memory/v1/address";
/// Domain of the faucet's output ids.
pub const FAUCET_DOMAIN: &[u8] = b"tc-memory/v1/faucet";
/// The bytes an instruction payload starts with.
pub const INSTRUCTION_MAGIC: &[u8; 2] = b"TC";
/// The prefix of our addresses (a P2TR-like `OP_1 <32 bytes>`, so they are 34 bytes long).
pub const ADDRESS_PREFIX: [u8; 2] = [0x51, 0x20];

/// The compressed encoding of a group key (what transactions carry as their signer).
pub fn key_bytes(key: &GroupKey) -> [u8; 33] {
    let mut bytes = [0; 33];
    bytes.copy_from_slice(key.to_bytes().as_ref());
    bytes
}

/// Parses a signer's key: a canonical, compressed, non-identity point.
pub fn parse_key(bytes: &[u8; 33]) -> Option<GroupKey> {
    let key = <Secp256k1 as Ciphersuite>::read_G(&mut bytes.as_slice()).ok()?;
    (!bool::from(key.is_identity())).then_some(key)
}

/// Our address bytes for `kind` of `key`.
pub fn address_of(key: &GroupKey, kind: OutputKind) -> Vec<u8> {
    let hash = primitives::hash(ADDRESS_DOMAIN, &[&key_bytes(key), &[kind as u8]]);
    [&ADDRESS_PREFIX[..], &hash].concat()
}

/// The addresses of every kind of `key`, in [`OutputKind::ALL`] order.
pub fn addresses_of(key: &GroupKey) -> [(Vec<u8>, OutputKind); 4] {
    OutputKind::ALL.map(|kind| (address_of(key, kind), kind))
}

/// The instruction payload for `instruction`: the magic, then its versioned encoding.
pub fn encode_instruction(instruction: &InInstruction) -> Vec<u8> {
    [&INSTRUCTION_MAGIC[..], &instruction.encode()].concat()
}

/// What a transaction's data says: Missing without data, Valid when it decodes exactly,
/// Invalid otherwise.
pub fn decode_instruction(data: Option<&[u8]>) -> Instruction {
    let Some(data) = data else { return Instruction::Missing };
    match data.strip_prefix(INSTRUCTION_MAGIC.as_slice()).map(InInstruction::decode) {
        Some(Ok(instruction)) => Instruction::Valid(instruction),
        _ => Instruction::Invalid,
    }
}

/// An output id: the creating transaction's id, then the index as a little-endian u32.
pub fn output_id(tx: &[u8; 32], index: u32) -> Vec<u8> {
    let mut id = tx.to_vec();
    id.extend(index.to_le_bytes());
    id
}

/// Whether `signature` is the IETF Schnorr signature of `message` under `key`.
pub fn verify(key: &GroupKey, message: &[u8], signature: &SchnorrSignature<Secp256k1>) -> bool {
    signature.verify(*key, IetfSecp256k1Hram::hram(&signature.R, key, message))
}

/// One output of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxOutput {
    /// The raw address bytes paid.
    pub address: Vec<u8>,
    /// The amount paid.
    pub amount: Amount,
}

/// Everything a transaction says except its signature: what its id commits to.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TransactionBody {
    /// The output ids spent ([`output_id`], or a faucet output for a deposit).
    pub inputs: Vec<Vec<u8>>,
    /// The outputs created, in order.
    pub outputs: Vec<TxOutput>,
    /// The instruction payload, if any.
    pub data: Option<Vec<u8>>,
    /// The outside address the transaction was spent from (a deposit's refund address).
    pub from: Option<ExternalAddress>,
    /// The group key whose outputs it spends (compressed), for our own transactions.
    pub signer: Option<[u8; 33]>,
}

impl TransactionBody {
    /// The transaction id: a domain-separated Blake2b-256 of this body's borsh encoding,
    /// so it is known before the transaction is signed.
    pub fn id(&self) -> [u8; 32] {
        primitives::hash(TX_DOMAIN, &[&encode_body(self)])
    }
}

/// A transaction, signed or not.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    /// What the id commits to.
    pub body: TransactionBody,
    /// The IETF Schnorr signature of the id under the signer (65 bytes), if signed.
    pub signature: Option<Vec<u8>>,
}

impl Transaction {
    /// Its id (the body's: the signature is not part of it).
    pub fn id(&self) -> [u8; 32] {
        self.body.id()
    }
}

impl Versioned for Transaction {
    const VERSION: u8 = 1;
    // Far above anything a plan builds; bounds what a decoder may be asked to read.
    const MAX_ENCODED_LEN: usize = 4 << 20;
}

/// A block of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Height (the genesis block is 0).
    pub number: u64,
    /// Its id.
    pub id: [u8; 32],
    /// Its parent's id (zero for the genesis block).
    pub parent: [u8; 32],
    /// Its transactions, in order.
    pub txs: Vec<Transaction>,
    /// The fee rate recorded when it was mined (unclamped).
    pub fee_rate: u64,
}

impl Block {
    /// The id of a block with these contents: it commits to the parent, the height, the
    /// fee rate, every transaction id and the chain's reorg counter, so a block mined
    /// after a reorg never has the id of one it replaced.
    pub fn compute_id(
        parent: &[u8; 32],
        number: u64,
        fee_rate: u64,
        reorgs: u64,
        txs: &[Transaction],
    ) -> [u8; 32] {
        let ids: Vec<u8> = txs.iter().flat_map(Transaction::id).collect();
        primitives::hash(
            BLOCK_DOMAIN,
            &[parent, &number.to_le_bytes(), &fee_rate.to_le_bytes(), &reorgs.to_le_bytes(), &ids],
        )
    }
}

impl ChainBlock for Block {
    fn block_ref(&self) -> BlockRef {
        BlockRef { number: self.number, id: self.id, parent: self.parent }
    }
}

/// An output paid to one of our keys.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Output {
    /// The creating transaction's id.
    pub tx: [u8; 32],
    /// Its index in that transaction's outputs.
    pub index: u32,
    /// Its amount.
    pub amount: Amount,
    /// Which of our addresses it pays.
    pub kind: OutputKind,
    /// The instruction ([`Instruction::Missing`] for our own kinds).
    pub instruction: Instruction,
    /// The transaction's `from` (External outputs only).
    pub refund: Option<ExternalAddress>,
}

impl ReceivedOutput for Output {
    fn id(&self) -> Vec<u8> {
        output_id(&self.tx, self.index)
    }
    fn kind(&self) -> OutputKind {
        self.kind
    }
    fn amount(&self) -> Amount {
        self.amount
    }
    fn instruction(&self) -> &Instruction {
        &self.instruction
    }
    fn refund_address(&self) -> Option<&ExternalAddress> {
        self.refund.as_ref()
    }
    fn transaction(&self) -> Vec<u8> {
        self.tx.to_vec()
    }
}

/// An address: raw bytes (any [`ExternalAddress`] is one).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub Vec<u8>);

/// What completes a plan: the transaction with this id, spending these output ids. Any
/// other transaction spending one of them is a conflict.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Eventuality {
    /// The planned transaction's id.
    pub tx: [u8; 32],
    /// The output ids it spends.
    pub spends: Vec<Vec<u8>>,
}

/// A planned, unsigned transaction; signers sign its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signable {
    /// The unsigned transaction (its `signer` is the group key that signs).
    pub tx: TransactionBody,
}

impl Signable {
    /// What is signed: the transaction id.
    pub fn id(&self) -> [u8; 32] {
        self.tx.id()
    }
}
