//! Strict, versioned encodings.
//!
//! Every value that crosses a process boundary or is written to disk is encoded as one
//! version byte followed by its borsh encoding. Decoding MUST reject, with a typed
//! [`CodecError`] and without panicking: empty input, input longer than the type's
//! explicit bound (checked before anything is parsed, so a hostile length prefix cannot
//! make us allocate more than the input's size), an unknown version byte, a malformed
//! body, and trailing bytes after the body.

use borsh::{BorshDeserialize, BorshSerialize};

/// Why some bytes were not accepted as an encoded value.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// There were no bytes at all.
    #[error("empty input")]
    Empty,
    /// The input is longer than the type allows.
    #[error("encoding of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The input's length.
        len: usize,
        /// The type's bound.
        max: usize,
    },
    /// The version byte is not one this build understands.
    #[error("unknown encoding version {found} (this build understands {expected})")]
    UnknownVersion {
        /// The version byte found.
        found: u8,
        /// The version this build writes and reads.
        expected: u8,
    },
    /// The body did not parse.
    #[error("malformed encoding: {0}")]
    Malformed(#[source] borsh::io::Error),
    /// The body parsed but bytes were left over.
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
}

/// A value with an explicit, versioned, bounded encoding.
pub trait Versioned: BorshSerialize + BorshDeserialize {
    /// The version byte written before the body.
    const VERSION: u8;
    /// The largest accepted encoding, version byte included.
    const MAX_ENCODED_LEN: usize;

    /// Encodes as `VERSION || borsh(self)`.
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![Self::VERSION];
        // Writing into a Vec cannot fail.
        BorshSerialize::serialize(self, &mut out).expect("borsh serialization into a Vec failed");
        out
    }

    /// Decodes strictly; see the module documentation for what is rejected.
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() > Self::MAX_ENCODED_LEN {
            return Err(CodecError::TooLong { len: bytes.len(), max: Self::MAX_ENCODED_LEN });
        }
        let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
        if version != Self::VERSION {
            return Err(CodecError::UnknownVersion { found: version, expected: Self::VERSION });
        }
        decode_body(body)
    }
}

/// Decodes a borsh body that must be consumed exactly (no version byte, no length bound).
pub fn decode_body<T: BorshDeserialize>(body: &[u8]) -> Result<T, CodecError> {
    let mut rest = body;
    let value = T::deserialize(&mut rest).map_err(CodecError::Malformed)?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Encodes a value with borsh (no version byte); for keys and nested bodies.
pub fn encode_body<T: BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("borsh serialization into a Vec failed")
}
