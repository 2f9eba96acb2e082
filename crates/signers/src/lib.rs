//! FROST signing for the processor.
//!
//! - [`batch`]: Batch signatures: Schnorr over Ristretto with a domain-separated
//!   challenge, signed by the session's Ristretto key and verifiable by anyone holding it.
#![deny(missing_docs)]

pub mod batch;
