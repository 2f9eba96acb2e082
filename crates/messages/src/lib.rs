//! The coordinator <-> processor protocol.
//!
//! A processor's only peer is the coordinator. Every message travels inside a signed
//! [`Envelope`](envelope::Envelope); `docs/protocol.md` describes the wire format.
//!
//! Guarantees:
//! - Every message has exactly one encoding; decoding a non-canonical encoding fails.
//! - [`Intent`]s are deterministic: the same message from the same sender to the same
//!   recipient always has the same intent, and different ones (practically) never do.
//!   Receivers MUST treat two messages with one intent as one.
//! - [`envelope::open`] MUST NOT panic on any input. It returns the message only if the
//!   envelope is of a known version, within the size limit, free of trailing bytes,
//!   addressed to the caller, sent by a pinned identity over a legal route (processor <->
//!   coordinator only), and signed by that identity.
#![deny(missing_docs)]

pub mod envelope;
mod message;

pub use envelope::{
    open, seal, Body, Content, Envelope, EnvelopeError, Identity, KeyRegistry, Opened,
};
pub use message::*;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;
