//! The durable inbox and outbox (see the crate documentation for the guarantees).

use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};
use db::{Db, DbError, Get, Queue, Table, WriteTxn};
use messages::{
    envelope::{open, seal, Body, Content, EnvelopeError, Identity, KeyRegistry},
    CoordinatorMessage, Intent, Party, ProcessorMessage, MAX_MESSAGE_LEN,
};
use primitives::codec::{CodecError, Versioned};

use crate::metrics::BusMetrics;

/// A message more than this many sequences ahead of the next expected one is not held
/// (the sender re-sends it once the gap is filled), bounding what a peer can make us
/// store.
pub const MAX_HELD_AHEAD: u64 = 4096;

/// Why a message could not be queued for sending.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The message exceeds [`MAX_MESSAGE_LEN`]: a bug in whoever built it.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Next sequence expected from each sender.
const IN_NEXT: Table<u32, u64> = Table::new("bus/v1/in/next");
/// Messages received ahead of a gap, by (sender, sequence).
const IN_HELD: Table<(u32, u64), Received> = Table::new("bus/v1/in/held");
/// Intents already delivered to [`INBOX`].
const IN_SEEN: Table<[u8; 32], ()> = Table::new("bus/v1/in/seen");
/// Next sequence to assign, per recipient.
const OUT_NEXT: Table<u32, u64> = Table::new("bus/v1/out/next");
/// Sent but not yet acknowledged end to end, by (recipient, sequence).
const OUT_PENDING: Table<(u32, u64), Outgoing> = Table::new("bus/v1/out/pending");
/// Highest sequence each recipient acknowledged.
const OUT_ACKED: Table<u32, u64> = Table::new("bus/v1/out/acked");

/// Authenticated messages, exactly once and in per-sender order, for the one task that
/// consumes them (it pops within its own write transaction).
pub const INBOX: Queue<Received> = Queue::new("bus/v1/in/queue");

/// A stable 32-bit code for a party, used in database keys.
pub fn party_key(party: Party) -> u32 {
    match party {
        Party::Coordinator => 0,
        Party::Processor { network, validator } => {
            (1 << 24) | (u32::from(network as u8) << 16) | u32::from(validator)
        }
    }
}

/// An authenticated message in the inbox.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Received {
    /// Its authenticated sender.
    pub sender: Party,
    /// Its sequence on the sender's route to us.
    pub sequence: u64,
    /// Its intent.
    pub intent: Intent,
    /// The encoded message: a [`CoordinatorMessage`] if the sender is the coordinator,
    /// else a [`ProcessorMessage`]. Already validated; decode with the accessors.
    pub message: Vec<u8>,
}

impl Received {
    /// The message, when sent by the coordinator.
    pub fn coordinator_message(&self) -> Result<CoordinatorMessage, CodecError> {
        CoordinatorMessage::decode(&self.message)
    }

    /// The message, when sent by a processor.
    pub fn processor_message(&self) -> Result<ProcessorMessage, CodecError> {
        ProcessorMessage::decode(&self.message)
    }
}

/// An outbox key: (recipient's [`party_key`], sequence).
pub type Route = (u32, u64);

/// A signed envelope in the outbox, waiting for the recipient's end-to-end ack.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Outgoing {
    /// The addressee.
    pub recipient: Party,
    /// The broker deduplication id (the message's intent).
    pub dedup_id: [u8; 32],
    /// The encoded, signed envelope: re-sends are byte-identical.
    pub envelope: Vec<u8>,
}

/// What [`Mailbox::receive`] did with a delivery.
#[derive(Debug)]
pub enum Receipt {
    /// Rejected; nothing changed. Acknowledge it to the transport and move on.
    Rejected(EnvelopeError),
    /// A message was committed (or was a duplicate). Acknowledge the delivery, then send
    /// `sender` an end-to-end ack for `through`.
    Message {
        /// The sender to acknowledge.
        sender: Party,
        /// Everything up to here from `sender` is committed.
        through: u64,
        /// Messages newly appended to [`INBOX`] (0 for a duplicate or one held ahead).
        delivered: usize,
    },
    /// Ahead of [`MAX_HELD_AHEAD`]: not stored; the sender will re-send.
    TooFarAhead {
        /// The sender.
        sender: Party,
    },
    /// An end-to-end ack from `from`; `removed` outbox entries were dropped.
    Ack {
        /// The acknowledging recipient.
        from: Party,
        /// Cumulative.
        through: u64,
        /// Entries removed from the outbox.
        removed: usize,
    },
}

/// One party's inbox and outbox over its database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Mailbox {
    me: Party,
    identity: Arc<Identity>,
    registry: Arc<KeyRegistry>,
    metrics: BusMetrics,
}

impl Mailbox {
    /// The mailbox of `me`, signing with `identity` and accepting the pinned `registry`.
    pub fn new(
        me: Party,
        identity: Arc<Identity>,
        registry: Arc<KeyRegistry>,
        metrics: BusMetrics,
    ) -> Self {
        Mailbox { me, identity, registry, metrics }
    }

    /// Who this mailbox belongs to.
    pub fn me(&self) -> Party {
        self.me
    }

    /// The metrics this mailbox updates.
    pub fn metrics(&self) -> &BusMetrics {
        &self.metrics
    }

    /// Queues `message` (an encoded [`CoordinatorMessage`] or [`ProcessorMessage`]) for
    /// `recipient` inside the caller's transaction: it is sent if and only if that
    /// transaction commits. Wake the [`crate::SenderTask`] after committing.
    pub fn send(
        &self,
        txn: &mut WriteTxn,
        recipient: Party,
        message: Vec<u8>,
    ) -> Result<Intent, SendError> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(SendError::TooLarge { len: message.len(), max: MAX_MESSAGE_LEN });
        }
        let route = party_key(recipient);
        let sequence = OUT_NEXT.get(txn, &route)?.unwrap_or(1);
        let envelope = seal(&self.identity, self.me, recipient, sequence, Body::Message(message));
        let intent = envelope.intent().expect("a message envelope has an intent");
        let outgoing = Outgoing { recipient, dedup_id: intent.0, envelope: envelope.encode() };
        OUT_PENDING.put(txn, &(route, sequence), &outgoing)?;
        OUT_NEXT.put(txn, &route, &(sequence + 1))?;
        Ok(intent)
    }

    /// An end-to-end ack for `recipient`: we committed everything through `through`.
    pub fn ack_envelope(&self, recipient: Party, through: u64) -> (Vec<u8>, [u8; 32]) {
        let envelope = seal(&self.identity, self.me, recipient, 0, Body::Ack { through });
        (envelope.encode(), envelope.dedup_id())
    }

    /// Applies one delivered payload in one committed transaction. Rejections change
    /// nothing (and are counted); duplicates change nothing.
    pub fn receive(&self, db: &Db, payload: &[u8]) -> Result<Receipt, DbError> {
        let opened = match open(payload, &self.registry, self.me) {
            Ok(opened) => opened,
            Err(e) => {
                self.metrics.rejected(e.reason());
                tracing::warn!(reason = e.reason(), error = %e, "rejected envelope");
                return Ok(Receipt::Rejected(e));
            }
        };
        let sender = opened.sender;
        let route = party_key(sender);
        let mut txn = db.write()?;
        let message = match opened.content {
            Content::Ack { through } => {
                let sent = OUT_NEXT.get(&txn, &route)?.unwrap_or(1) - 1;
                if through > sent {
                    // Acknowledges messages we never sent: a confused or lying peer.
                    self.metrics.rejected("ack_beyond_sent");
                    tracing::warn!(%sender, through, sent, "ack for messages never sent; ignored");
                    return Ok(Receipt::Rejected(EnvelopeError::BadSequence(through)));
                }
                let mut removed = 0;
                for ((to, sequence), _) in OUT_PENDING.iter(&txn)? {
                    if to == route && sequence <= through {
                        OUT_PENDING.del(&mut txn, &(to, sequence))?;
                        removed += 1;
                    }
                }
                let acked = OUT_ACKED.get(&txn, &route)?.unwrap_or(0);
                if through > acked {
                    OUT_ACKED.put(&mut txn, &route, &through)?;
                }
                txn.commit()?;
                self.metrics.acks_received.inc();
                return Ok(Receipt::Ack { from: sender, through, removed });
            }
            Content::Coordinator(m) => m.encode(),
            Content::Processor(m) => m.encode(),
        };
        let intent = opened.intent.expect("a message envelope has an intent");
        let received = Received { sender, sequence: opened.sequence, intent, message };

        let mut next = IN_NEXT.get(&txn, &route)?.unwrap_or(1);
        let sequence = received.sequence;
        if sequence < next || IN_HELD.get(&txn, &(route, sequence))?.is_some() {
            self.metrics.duplicates.inc();
            return Ok(Receipt::Message { sender, through: next - 1, delivered: 0 });
        }
        if sequence - next > MAX_HELD_AHEAD {
            self.metrics.too_far_ahead.inc();
            return Ok(Receipt::TooFarAhead { sender });
        }
        if sequence > next {
            IN_HELD.put(&mut txn, &(route, sequence), &received)?;
            txn.commit()?;
            return Ok(Receipt::Message { sender, through: next - 1, delivered: 0 });
        }

        // In order: deliver it, then everything held that is now contiguous.
        let mut delivered = 0;
        let mut current = Some(received);
        while let Some(message) = current {
            if IN_SEEN.get(&txn, &message.intent.0)?.is_none() {
                IN_SEEN.put(&mut txn, &message.intent.0, &())?;
                INBOX.push(&mut txn, &message)?;
                delivered += 1;
            } else {
                // Same content under a new sequence: the sequence is consumed, the message
                // is not delivered twice.
                self.metrics.duplicates.inc();
            }
            next += 1;
            current = IN_HELD.get(&txn, &(route, next))?;
            if current.is_some() {
                IN_HELD.del(&mut txn, &(route, next))?;
            }
        }
        IN_NEXT.put(&mut txn, &route, &next)?;
        txn.commit()?;
        self.metrics.received.inc_by(delivered as u64);
        Ok(Receipt::Message { sender, through: next - 1, delivered })
    }

    /// Outbox entries not yet acknowledged, by (recipient's [`party_key`], sequence).
    pub fn pending(txn: &impl Get) -> Result<Vec<(Route, Outgoing)>, DbError> {
        OUT_PENDING.iter(txn)
    }

    /// Highest sequence each recipient (by [`party_key`]) acknowledged, and the next to be
    /// assigned; for status displays.
    pub fn routes(txn: &impl Get) -> Result<Vec<(u32, u64, u64)>, DbError> {
        let acked = OUT_ACKED.iter(txn)?;
        Ok(OUT_NEXT
            .iter(txn)?
            .into_iter()
            .map(|(route, next)| {
                let a = acked.iter().find(|(r, _)| *r == route).map_or(0, |(_, a)| *a);
                (route, a, next)
            })
            .collect())
    }
}
