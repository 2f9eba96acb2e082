//! BIP340 FROST signing.
