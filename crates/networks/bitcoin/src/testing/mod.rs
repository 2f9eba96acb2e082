//! Test support: a regtest node started in a temp dir, and in-process key generation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod keys;
pub mod node;
