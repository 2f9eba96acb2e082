//! The message bus between processors and the coordinator.
//!
//! Two layers:
//! - A [`Transport`] moves opaque envelopes to a party's inbound stream, at least once:
//!   [`NatsTransport`] over a real NATS JetStream server, and [`MemoryTransport`], which
//!   has the same semantics plus injected faults (drop, duplicate, reorder, delay, broker
//!   crash) for tests.
//! - The [`Mailbox`] makes delivery exactly-once in effect, on top of any transport:
//!   - Outbox: [`Mailbox::send`] writes a signed, sequenced envelope into the caller's own
//!     write transaction, so a message exists if and only if the state change that caused
//!     it committed. [`SenderTask`] publishes it and re-publishes it after a timeout until
//!     the *recipient* acknowledges (end to end) that it committed it. A broker's publish
//!     acknowledgement is never taken as delivery: nats-server 2.9 acknowledges before it
//!     syncs to disk.
//!   - Inbox: [`ReceiverTask`] authenticates each delivery, commits it to the inbox queue
//!     ([`INBOX`]) in per-sender sequence order, deduplicated by sequence and by intent,
//!     and only then acknowledges it to the transport and sends the end-to-end ack.
//!
//! Guarantees (given durable databases on both ends):
//! - Every message committed to an outbox is eventually committed exactly once to the
//!   recipient's inbox, in the order it was sent, whatever the transport drops,
//!   duplicates or reorders, and across crashes of either end or of the broker.
//! - A rejected envelope (undecodable, wrong version, oversized, unknown sender, bad
//!   signature, misaddressed) changes no state; it is logged and counted in
//!   `bus_rejected_envelopes_total{reason}`.
//! - A sender that loses its database and restarts its sequences is out of scope: the
//!   database is the party's identity state.
#![deny(missing_docs)]

mod mailbox;
mod memory;
mod metrics;
mod nats;
mod tasks;
mod transport;

pub use mailbox::{
    party_key, Mailbox, Outgoing, Receipt, Received, Route, SendError, INBOX, MAX_HELD_AHEAD,
};
pub use memory::{Faults, MemoryTransport};
pub use metrics::BusMetrics;
pub use nats::{NatsAuth, NatsConfig, NatsTls, NatsTransport};
pub use tasks::{ReceiverTask, SenderTask};
pub use transport::{AckFn, Delivery, Subscription, Transport, TransportError};

#[cfg(feature = "testing")]
pub mod testing;
