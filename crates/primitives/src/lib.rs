//! Primitive types shared by every crate of the processor.
//!
//! Guarantees:
//! - Every type here has one canonical borsh encoding; types that are sent or stored on
//!   their own implement [`codec::Versioned`] (version byte + bounded, strict decoding).
//! - Bounded types ([`ExternalAddress`], [`Batch`]) MUST NOT decode from, nor be built
//!   from, data exceeding their bound.
//! - [`Amount`] arithmetic is checked: overflow is an error, never a wrap.
#![deny(missing_docs)]

pub mod codec;
mod types;

pub use codec::{CodecError, Versioned};
pub use types::*;

use blake2::{digest::consts::U32, Blake2b, Digest};

/// A 32-byte hash.
pub type Hash32 = [u8; 32];

/// Blake2b-256 of `domain` and `parts`, each length-prefixed so that distinct inputs
/// cannot collide by re-splitting.
pub fn hash(domain: &[u8], parts: &[&[u8]]) -> Hash32 {
    let mut h = Blake2b::<U32>::new();
    for part in std::iter::once(&domain).chain(parts) {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
