use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use primitives::{
    codec::{CodecError, Versioned},
    Batch, BlockHash, Hash32, NetworkId, Payment,
};

/// The largest encoded message, version byte included: 1 MiB less 4 KiB, so that a full
/// envelope with its broker headers stays within NATS's default 1 MiB `max_payload`.
/// Large enough for key generation among 100 validators; everything above is rejected
/// before parsing, and the bus refuses to queue it.
pub const MAX_MESSAGE_LEN: usize = (1 << 20) - 4096;

/// A participant's 1-based index within a validator set.
pub type Participant = u16;

/// A party of the protocol: the coordinator, or one validator's processor for a network.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub enum Party {
    /// The coordinator (or `coordinator-sim`).
    Coordinator,
    /// A processor.
    Processor {
        /// The network it serves.
        network: NetworkId,
        /// Its validator's index in the set.
        validator: Participant,
    },
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::Coordinator => f.write_str("coordinator"),
            Party::Processor { network, validator } => write!(f, "processor-{network}-{validator}"),
        }
    }
}

/// A validator set's session: which set manages which keys.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub struct Session(pub u32);

/// One attempt at generating a session's keys.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub struct KeyGenId {
    /// The session.
    pub session: Session,
    /// Starts at 0; the coordinator increments it to restart without a culprit.
    pub attempt: u32,
}

/// What is being signed.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub enum SignKind {
    /// A Batch, by id.
    Batch(u32),
    /// A planned transaction, by plan id.
    Plan(Hash32),
}

/// One attempt at one signature.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub struct SignId {
    /// The session whose key signs.
    pub session: Session,
    /// The item signed.
    pub kind: SignKind,
    /// Starts at 0; never answered twice by one processor.
    pub attempt: u32,
}

/// Key generation, coordinator to processor.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum KeyGenRequest {
    /// Start (or restart, with a new attempt) key generation.
    GenerateKey {
        /// Session and attempt.
        id: KeyGenId,
        /// The network whose key is generated (alongside the Ristretto key).
        network: NetworkId,
        /// Signers needed.
        threshold: u16,
        /// Participants in this attempt, by index.
        participants: Vec<Participant>,
        /// The recipient's own index.
        me: Participant,
    },
    /// Every participant's round-1 commitments.
    Commitments {
        /// Session and attempt.
        id: KeyGenId,
        /// By sender.
        commitments: BTreeMap<Participant, Vec<u8>>,
    },
    /// The encrypted shares addressed to the recipient.
    Shares {
        /// Session and attempt.
        id: KeyGenId,
        /// By sender.
        shares: BTreeMap<Participant, Vec<u8>>,
    },
}

/// Key generation, processor to coordinator.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum KeyGenResponse {
    /// Round 1: commitments, proofs of knowledge and encryption keys, every curve.
    Commitments {
        /// Session and attempt.
        id: KeyGenId,
        /// Opaque to the coordinator.
        commitments: Vec<u8>,
    },
    /// Round 2: one encrypted share per recipient.
    Shares {
        /// Session and attempt.
        id: KeyGenId,
        /// By recipient.
        shares: BTreeMap<Participant, Vec<u8>>,
    },
    /// A participant misbehaved; the evidence lets anyone check the accusation.
    Blame {
        /// Session and attempt.
        id: KeyGenId,
        /// The culprit.
        accused: Participant,
        /// Verifiable evidence.
        evidence: Vec<u8>,
    },
    /// Key generation completed.
    GeneratedKeyPair {
        /// Session and attempt.
        id: KeyGenId,
        /// The Ristretto key that signs Batches.
        ristretto_key: [u8; 32],
        /// The network's key, in the network's encoding.
        network_key: Vec<u8>,
        /// The first external block this processor did not yet see final when it
        /// generated the keys: its proposal for the key's activation block. `None` when
        /// it runs no network node (keys only) or has not heard from it yet.
        proposed_activation: Option<u64>,
        /// The settings this processor scans and plans with, which every processor of the
        /// set must share. `None` when it runs no network node (keys only).
        settings: Option<ChainSettings>,
    },
    /// The processor refuses the key generation's parameters (its operator's policy: the
    /// threshold too low for the participants): it takes no part in this attempt.
    Refused {
        /// Session and attempt.
        id: KeyGenId,
        /// Why, for the logs and the coordinator's record.
        reason: String,
    },
}

/// The settings of a processor that decide which Batches and plans it makes: every
/// processor of a set MUST use the same, or their Batches and plans differ and never get
/// signed. Reported with the generated key pair and compared by the coordinator.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ChainSettings {
    /// Confirmations before a block is final (also where empty Batches fall).
    pub confirmations: u64,
    /// Most inputs per transaction.
    pub max_inputs: u64,
    /// Most outputs per transaction.
    pub max_outputs: u64,
    /// The dust threshold.
    pub dust: u64,
    /// The lowest fee rate plans use.
    pub min_fee_rate: u64,
    /// The highest fee rate plans use.
    pub max_fee_rate: u64,
    /// The coin's total supply (burns above it are refused).
    pub max_money: u64,
}

impl ChainSettings {
    /// Each setting by name.
    pub fn fields(&self) -> [(&'static str, u64); 7] {
        [
            ("confirmations", self.confirmations),
            ("max_inputs", self.max_inputs),
            ("max_outputs", self.max_outputs),
            ("dust", self.dust),
            ("min_fee_rate", self.min_fee_rate),
            ("max_fee_rate", self.max_fee_rate),
            ("max_money", self.max_money),
        ]
    }

    /// The settings where `self` differs from `other`, as `name: ours (theirs)`.
    pub fn differences(&self, other: &ChainSettings) -> Vec<String> {
        self.fields()
            .into_iter()
            .zip(other.fields())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((name, a), (_, b))| format!("{name} {a} (the set's {b})"))
            .collect()
    }
}

/// Signing, coordinator to processor.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum SignRequest {
    /// The signing set's preprocesses (the recipient is in the set).
    Preprocesses {
        /// What and which attempt.
        id: SignId,
        /// By signer.
        preprocesses: BTreeMap<Participant, Vec<u8>>,
    },
    /// The signing set's shares.
    Shares {
        /// What and which attempt.
        id: SignId,
        /// By signer.
        shares: BTreeMap<Participant, Vec<u8>>,
    },
    /// The attempt stalled: start `id` (a higher attempt) afresh.
    Reattempt {
        /// The new attempt.
        id: SignId,
    },
    /// Another processor completed a plan with this transaction.
    Completed {
        /// The session whose key signed.
        session: Session,
        /// The plan.
        plan: Hash32,
        /// The network's transaction id.
        tx: Vec<u8>,
    },
}

/// Signing, processor to coordinator.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum SignResponse {
    /// Round 1. Sent only after "attempted" is committed for `id`.
    Preprocess {
        /// What and which attempt.
        id: SignId,
        /// The nonce commitments.
        preprocess: Vec<u8>,
    },
    /// Round 2.
    Share {
        /// What and which attempt.
        id: SignId,
        /// The signature share.
        share: Vec<u8>,
    },
    /// What this signer signs for the item (sent once, after its first preprocess), in
    /// the network's encoding: what the coordinator checks the signers' shares against
    /// (for Bitcoin, the txid and each input's key kind and sighash). Batches are stated
    /// by [`BatchReport::Batch`] instead.
    Statement {
        /// The item (its first attempt).
        id: SignId,
        /// The network's statement.
        statement: Vec<u8>,
    },
    /// A signer's contribution failed verification.
    Blame {
        /// What and which attempt.
        id: SignId,
        /// The culprit.
        accused: Participant,
    },
    /// The plan completed on chain with this transaction.
    Completed {
        /// The session whose key signed.
        session: Session,
        /// The plan.
        plan: Hash32,
        /// The network's transaction id.
        tx: Vec<u8>,
    },
}

/// Settlement-layer events, coordinator to processor.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum SettlementEvent {
    /// The set voted the key pair in: it becomes active.
    ConfirmKeyPair {
        /// The session.
        session: Session,
        /// The Ristretto key.
        ristretto_key: [u8; 32],
        /// The network key.
        network_key: Vec<u8>,
        /// The first external block every processor scans for this key, agreed by the
        /// settlement layer from the participants' `proposed_activation`s (the same for
        /// all, so their Batches are identical). `None` when nobody proposed one.
        activation_block: Option<u64>,
        /// The settings the participants reported with the key pair, which they all share
        /// (`None` when none ran a network node): a participant that reported none (keys
        /// only) records these, and is held to them once it gets a node.
        settings: Option<ChainSettings>,
    },
    /// A settlement block acknowledged an external block's Batches and ordered Burns.
    BlockAcknowledged {
        /// The session whose Batches are acknowledged (each session has its own sequence;
        /// the burns are that session's to pay).
        session: Session,
        /// The settlement block's number.
        settlement_block: u64,
        /// The external block acknowledged.
        network_block: BlockHash,
        /// The Batches acknowledged.
        batches: Vec<u32>,
        /// The payments ordered, in order.
        burns: Vec<Payment>,
    },
    /// The next set's key was confirmed: `session` hands its funds over to `successor`
    /// (docs/rotation.md). Sent to `session`'s key holders; queued with its
    /// acknowledgements, so every one applies it at the same point.
    Rotation {
        /// The outgoing session.
        session: Session,
        /// The incoming session.
        successor: Session,
        /// The incoming session's network key (its group key, the network's encoding).
        successor_key: Vec<u8>,
        /// From the first acknowledged block at or after this one, the outgoing session's
        /// deposits are no longer credited (it refunds them) and it may retire.
        close_block: u64,
    },
}

/// Settlement-layer reports, processor to coordinator.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum SettlementReport {
    /// The session's key retired: nothing of it is left to pay or forward, and its
    /// pipeline stopped at this acknowledged block.
    Retired {
        /// The retired session.
        session: Session,
        /// The last block its pipeline applied.
        block: u64,
    },
}

/// Batches, processor to coordinator.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum BatchReport {
    /// A Batch is ready to be signed.
    Batch(Batch),
    /// A Batch and its signature by the session's Ristretto key.
    SignedBatch {
        /// The Batch.
        batch: Batch,
        /// Schnorr signature over Ristretto.
        signature: [u8; 64],
    },
}

/// Liveness, either direction.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Status {
    /// Asks for a [`Status::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answers a ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
        /// The protocol version the sender speaks.
        protocol_version: u32,
    },
}

/// Everything the coordinator sends a processor.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum CoordinatorMessage {
    /// Key generation.
    KeyGen(KeyGenRequest),
    /// Signing.
    Sign(SignRequest),
    /// Settlement events.
    Settlement(SettlementEvent),
    /// Liveness.
    Status(Status),
}

/// Everything a processor sends the coordinator.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum ProcessorMessage {
    /// Key generation.
    KeyGen(KeyGenResponse),
    /// Signing.
    Sign(SignResponse),
    /// Batches.
    Batch(BatchReport),
    /// Liveness.
    Status(Status),
    /// Settlement reports.
    Settlement(SettlementReport),
}

/// The protocol version this build speaks (the message encodings' version byte).
pub const PROTOCOL_VERSION: u8 = 6;

impl Versioned for CoordinatorMessage {
    const VERSION: u8 = PROTOCOL_VERSION;
    const MAX_ENCODED_LEN: usize = MAX_MESSAGE_LEN;
}

impl Versioned for ProcessorMessage {
    const VERSION: u8 = PROTOCOL_VERSION;
    const MAX_ENCODED_LEN: usize = MAX_MESSAGE_LEN;
}

impl ProcessorMessage {
    /// Checks the bounds of nested values that the message's own size limit does not
    /// imply: a carried [`Batch`] must fit `MAX_BATCH_SIZE` on its own.
    pub fn check_bounds(&self) -> Result<(), CodecError> {
        if let ProcessorMessage::Batch(
            BatchReport::Batch(batch) | BatchReport::SignedBatch { batch, .. },
        ) = self
        {
            let len = batch.encode().len();
            if len > Batch::MAX_ENCODED_LEN {
                return Err(CodecError::TooLong { len, max: Batch::MAX_ENCODED_LEN });
            }
        }
        Ok(())
    }
}

/// A message's deterministic id, used for deduplication end to end (and as the broker's
/// `Nats-Msg-Id`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Intent(pub Hash32);

impl Intent {
    /// The intent of an encoded message from `sender` to `recipient`: a hash of the
    /// route and the message's canonical encoding. The route is included so that two
    /// processors sending the same content (say, the same `Completed`) stay distinct.
    pub fn of(sender: Party, recipient: Party, encoded_message: &[u8]) -> Intent {
        let route = primitives::codec::encode_body(&(sender, recipient));
        Intent(primitives::hash(b"tc/intent/v1", &[&route, encoded_message]))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for Intent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Intent({})", self.to_hex())
    }
}
