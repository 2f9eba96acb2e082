//! Signed envelopes: who sent what to whom, in which per-route sequence.
//!
//! Wire format (version 1): `0x01 || borsh(Envelope)`, where the signature is Ed25519 by
//! the sender's identity key over `hash("tc/envelope/v1", borsh(header and body))`.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use primitives::codec::{encode_body, CodecError, Versioned};

/// The Ed25519 public key type of identities.
pub use ed25519_dalek::VerifyingKey;

use crate::{CoordinatorMessage, Intent, Party, ProcessorMessage, MAX_MESSAGE_LEN};

/// What an envelope carries.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Body {
    /// An encoded [`CoordinatorMessage`] or [`ProcessorMessage`] (by direction).
    Message(Vec<u8>),
    /// End-to-end acknowledgement: the sender of this envelope has durably committed
    /// every message of the reverse route with a sequence up to and including `through`.
    Ack {
        /// Cumulative: all sequences `1..=through`.
        through: u64,
    },
}

/// A signed, addressed, sequenced message.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Envelope {
    /// The sender.
    pub sender: Party,
    /// The recipient.
    pub recipient: Party,
    /// Per (sender, recipient) route, from 1, for messages; 0 for acks.
    pub sequence: u64,
    /// The content.
    pub body: Body,
    /// Ed25519 by the sender's identity key.
    pub signature: [u8; 64],
}

impl Versioned for Envelope {
    const VERSION: u8 = 1;
    /// A message plus the envelope's own fields, with room to spare.
    const MAX_ENCODED_LEN: usize = MAX_MESSAGE_LEN + 256;
}

fn signed_digest(sender: Party, recipient: Party, sequence: u64, body: &Body) -> [u8; 32] {
    let header = encode_body(&(Envelope::VERSION, sender, recipient, sequence));
    primitives::hash(b"tc/envelope/v1", &[&header, &encode_body(body)])
}

impl Envelope {
    /// The intent of the carried message (`None` for acks).
    pub fn intent(&self) -> Option<Intent> {
        match &self.body {
            Body::Message(m) => Some(Intent::of(self.sender, self.recipient, m)),
            Body::Ack { .. } => None,
        }
    }

    /// An id for the broker's publish deduplication: the intent for messages, and for
    /// acks a hash of the route and the acknowledged sequence.
    pub fn dedup_id(&self) -> [u8; 32] {
        match (&self.body, self.intent()) {
            (_, Some(intent)) => intent.0,
            (Body::Ack { through }, None) => primitives::hash(
                b"tc/ack/v1",
                &[&encode_body(&(self.sender, self.recipient, *through))],
            ),
            (Body::Message(_), None) => unreachable!("messages always have an intent"),
        }
    }
}

/// A party's Ed25519 identity key. Never printed; zeroized on drop.
pub struct Identity(SigningKey);

impl Identity {
    /// From the 32-byte secret.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Identity(SigningKey::from_bytes(secret))
    }

    /// A fresh random identity.
    pub fn generate(rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore)) -> Self {
        Identity(SigningKey::generate(rng))
    }

    /// The secret, for writing to a 0600 key file.
    pub fn secret(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The public key others pin.
    pub fn public(&self) -> VerifyingKey {
        self.0.verifying_key()
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity(public: {})", hex::encode(self.public().as_bytes()))
    }
}

/// The pinned identity keys of the parties one may hear from.
#[derive(Clone, Default, Debug)]
pub struct KeyRegistry(BTreeMap<Party, VerifyingKey>);

impl KeyRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins `party`'s key, replacing any previous one.
    pub fn insert(&mut self, party: Party, key: VerifyingKey) {
        self.0.insert(party, key);
    }

    /// `party`'s pinned key.
    pub fn get(&self, party: &Party) -> Option<&VerifyingKey> {
        self.0.get(party)
    }

    /// The pinned parties.
    pub fn parties(&self) -> impl Iterator<Item = &Party> {
        self.0.keys()
    }
}

/// Builds and signs an envelope.
pub fn seal(
    identity: &Identity,
    sender: Party,
    recipient: Party,
    sequence: u64,
    body: Body,
) -> Envelope {
    let digest = signed_digest(sender, recipient, sequence, &body);
    let signature = identity.0.sign(&digest).to_bytes();
    Envelope { sender, recipient, sequence, body, signature }
}

/// Why an envelope was rejected. Each maps to a metric label via [`EnvelopeError::reason`].
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The envelope itself did not decode (empty, too long, unknown version, malformed,
    /// trailing bytes).
    #[error("undecodable envelope: {0}")]
    Envelope(#[source] CodecError),
    /// The envelope decoded, but is not encoded canonically.
    #[error("non-canonical envelope encoding")]
    NonCanonical,
    /// Addressed to someone else.
    #[error("envelope for {found}, not for us ({expected})")]
    WrongRecipient {
        /// Us.
        expected: Party,
        /// The addressee.
        found: Party,
    },
    /// Processors only talk to the coordinator.
    #[error("illegal route {sender} -> {recipient}")]
    IllegalRoute {
        /// The sender.
        sender: Party,
        /// The recipient.
        recipient: Party,
    },
    /// The sender's key is not pinned.
    #[error("unknown sender {0}")]
    UnknownSender(Party),
    /// The signature does not verify under the sender's pinned key.
    #[error("bad signature from {0}")]
    BadSignature(Party),
    /// Messages have sequences from 1; acks have sequence 0.
    #[error("invalid sequence {0} for this body")]
    BadSequence(u64),
    /// Signed correctly, but the carried message did not decode.
    #[error("undecodable message from {sender}: {source}")]
    Message {
        /// The (authenticated) sender.
        sender: Party,
        /// Why.
        #[source]
        source: CodecError,
    },
}

impl EnvelopeError {
    /// Every label [`EnvelopeError::reason`] returns (metrics start each at zero, so that
    /// an alert sees the series before the first rejection).
    pub const REASONS: [&'static str; 10] = [
        "unknown_version",
        "oversized",
        "undecodable",
        "non_canonical",
        "wrong_recipient",
        "illegal_route",
        "unknown_sender",
        "bad_signature",
        "bad_sequence",
        "undecodable_message",
    ];

    /// A short, stable label for metrics (one of [`EnvelopeError::REASONS`]).
    pub fn reason(&self) -> &'static str {
        match self {
            EnvelopeError::Envelope(CodecError::UnknownVersion { .. }) => "unknown_version",
            EnvelopeError::Envelope(CodecError::TooLong { .. }) => "oversized",
            EnvelopeError::Envelope(_) => "undecodable",
            EnvelopeError::NonCanonical => "non_canonical",
            EnvelopeError::WrongRecipient { .. } => "wrong_recipient",
            EnvelopeError::IllegalRoute { .. } => "illegal_route",
            EnvelopeError::UnknownSender(_) => "unknown_sender",
            EnvelopeError::BadSignature(_) => "bad_signature",
            EnvelopeError::BadSequence(_) => "bad_sequence",
            EnvelopeError::Message { .. } => "undecodable_message",
        }
    }
}

/// What an envelope carried, once opened.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Content {
    /// From the coordinator.
    Coordinator(CoordinatorMessage),
    /// From a processor.
    Processor(ProcessorMessage),
    /// An end-to-end acknowledgement (see [`Body::Ack`]).
    Ack {
        /// Cumulative.
        through: u64,
    },
}

/// An authenticated envelope's content.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Opened {
    /// The authenticated sender.
    pub sender: Party,
    /// The route's sequence (0 for acks).
    pub sequence: u64,
    /// The message's intent (`None` for acks).
    pub intent: Option<Intent>,
    /// The content.
    pub content: Content,
}

/// Decodes and authenticates an envelope addressed to `me`. Never panics; changes nothing.
pub fn open(bytes: &[u8], registry: &KeyRegistry, me: Party) -> Result<Opened, EnvelopeError> {
    let envelope = Envelope::decode(bytes).map_err(EnvelopeError::Envelope)?;
    if envelope.encode() != bytes {
        return Err(EnvelopeError::NonCanonical);
    }
    let Envelope { sender, recipient, sequence, ref body, signature } = envelope;
    if recipient != me {
        return Err(EnvelopeError::WrongRecipient { expected: me, found: recipient });
    }
    if (sender == Party::Coordinator) == (recipient == Party::Coordinator) {
        return Err(EnvelopeError::IllegalRoute { sender, recipient });
    }
    let key = registry.get(&sender).ok_or(EnvelopeError::UnknownSender(sender))?;
    let digest = signed_digest(sender, recipient, sequence, body);
    key.verify(&digest, &Signature::from_bytes(&signature))
        .map_err(|_| EnvelopeError::BadSignature(sender))?;

    let intent = envelope.intent();
    let content = match envelope.body {
        Body::Ack { through } => {
            if sequence != 0 {
                return Err(EnvelopeError::BadSequence(sequence));
            }
            Content::Ack { through }
        }
        Body::Message(message) => {
            if sequence == 0 {
                return Err(EnvelopeError::BadSequence(sequence));
            }
            let content = if sender == Party::Coordinator {
                CoordinatorMessage::decode(&message).map(Content::Coordinator)
            } else {
                ProcessorMessage::decode(&message)
                    .and_then(|m| m.check_bounds().map(|()| m))
                    .map(Content::Processor)
            };
            let content = content.map_err(|source| EnvelopeError::Message { sender, source })?;
            // A message with two encodings would have two intents: refuse all but one.
            let canonical = match &content {
                Content::Coordinator(m) => m.encode(),
                Content::Processor(m) => m.encode(),
                Content::Ack { .. } => unreachable!("built from a message above"),
            };
            if canonical != message {
                return Err(EnvelopeError::NonCanonical);
            }
            content
        }
    };
    Ok(Opened { sender, sequence, intent, content })
}
