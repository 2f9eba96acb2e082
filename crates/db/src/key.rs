//! Order-preserving key encoding.
//!
//! The bytes of an encoded key sort (lexicographically, as redb compares them) exactly as
//! the values sort. This holds because:
//! - integers are written fixed-width big-endian;
//! - fixed arrays (`[u8; N]`) are written as-is;
//! - tuples are the concatenation of their components, and every component except the
//!   last has a fixed width, so components never shift each other;
//! - `Vec<u8>` and `String` are written without a length, so they are only valid as the
//!   whole key or as the LAST component of a tuple. Using one elsewhere is rejected at
//!   compile time:
//!
//! ```compile_fail
//! use db::DbKey;
//! let mut out = Vec::new();
//! (vec![1u8], 7u64).write_key(&mut out); // a variable-width component before the last
//! ```

use std::marker::PhantomData;

use crate::error::{DbError, KeyError};

/// A key type with an order-preserving, self-delimiting-by-position encoding (see the
/// module documentation).
pub trait DbKey: Sized {
    /// The encoded width when it is the same for every value, `None` when it varies
    /// (`Vec<u8>`, `String`, and tuples ending in one).
    const WIDTH: Option<usize>;

    /// Appends the encoding of `self` to `out`.
    fn write_key(&self, out: &mut Vec<u8>);

    /// Decodes a key from exactly `bytes` (all of them must be consumed).
    fn read_key(bytes: &[u8]) -> Result<Self, DbError>;

    /// The encoding of `self` as a new vector.
    fn to_key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::WIDTH.unwrap_or(16));
        self.write_key(&mut out);
        out
    }
}

const fn fixed(width: Option<usize>) -> usize {
    match width {
        Some(w) => w,
        None => {
            panic!("only the last component of a tuple key may be variable-width (Vec<u8>, String)")
        }
    }
}

/// The width of a non-last tuple component; evaluating it for a variable-width component
/// fails the build (post-monomorphization const evaluation).
struct Fixed<A>(PhantomData<A>);
impl<A: DbKey> Fixed<A> {
    const WIDTH: usize = fixed(A::WIDTH);
}

/// Splits `bytes` after `width` bytes, or reports the key as too short.
fn split(bytes: &[u8], width: usize) -> Result<(&[u8], &[u8]), DbError> {
    bytes.split_at_checked(width).ok_or_else(|| {
        DbError::bad_key(bytes, KeyError::WrongLength { expected: width, found: bytes.len() })
    })
}

fn exact<const N: usize>(bytes: &[u8]) -> Result<[u8; N], DbError> {
    <[u8; N]>::try_from(bytes).map_err(|_| {
        DbError::bad_key(bytes, KeyError::WrongLength { expected: N, found: bytes.len() })
    })
}

macro_rules! int_key {
    ($($t:ty),*) => {$(
        impl DbKey for $t {
            const WIDTH: Option<usize> = Some(std::mem::size_of::<$t>());
            fn write_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn read_key(bytes: &[u8]) -> Result<Self, DbError> {
                Ok(<$t>::from_be_bytes(exact(bytes)?))
            }
        }
    )*};
}
int_key!(u8, u16, u32, u64, u128);

impl DbKey for () {
    const WIDTH: Option<usize> = Some(0);
    fn write_key(&self, _: &mut Vec<u8>) {}
    fn read_key(bytes: &[u8]) -> Result<Self, DbError> {
        exact::<0>(bytes).map(|_| ())
    }
}

impl<const N: usize> DbKey for [u8; N] {
    const WIDTH: Option<usize> = Some(N);
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn read_key(bytes: &[u8]) -> Result<Self, DbError> {
        exact(bytes)
    }
}

/// Variable width: only valid as the whole key or the last tuple component.
impl DbKey for Vec<u8> {
    const WIDTH: Option<usize> = None;
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn read_key(bytes: &[u8]) -> Result<Self, DbError> {
        Ok(bytes.to_vec())
    }
}

/// Variable width: only valid as the whole key or the last tuple component. Sorts by
/// UTF-8 bytes, which is the same as by `char`s.
impl DbKey for String {
    const WIDTH: Option<usize> = None;
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn read_key(bytes: &[u8]) -> Result<Self, DbError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| DbError::bad_key(bytes, KeyError::NotUtf8))
    }
}

const fn sum(widths: &[Option<usize>]) -> Option<usize> {
    let mut total = 0;
    let mut i = 0;
    while i < widths.len() {
        match widths[i] {
            Some(w) => total += w,
            None => return None,
        }
        i += 1;
    }
    Some(total)
}

impl<A: DbKey, B: DbKey> DbKey for (A, B) {
    const WIDTH: Option<usize> = sum(&[A::WIDTH, B::WIDTH]);
    fn write_key(&self, out: &mut Vec<u8>) {
        let _: usize = Fixed::<A>::WIDTH;
        self.0.write_key(out);
        self.1.write_key(out);
    }
    fn read_key(bytes: &[u8]) -> Result<Self, DbError> {
        let (a, b) = split(bytes, Fixed::<A>::WIDTH)?;
        Ok((A::read_key(a)?, B::read_key(b)?))
    }
}

impl<A: DbKey, B: DbKey, C: DbKey> DbKey for (A, B, C) {
    const WIDTH: Option<usize> = sum(&[A::WIDTH, B::WIDTH, C::WIDTH]);
    fn write_key(&self, out: &mut Vec<u8>) {
        let _: usize = Fixed::<A>::WIDTH + Fixed::<B>::WIDTH;
        self.0.write_key(out);
        self.1.write_key(out);
        self.2.write_key(out);
    }
    fn read_key(bytes: &[u8]) -> Result<Self, DbError> {
        let (a, rest) = split(bytes, Fixed::<A>::WIDTH)?;
        let (b, c) = split(rest, Fixed::<B>::WIDTH)?;
        Ok((A::read_key(a)?, B::read_key(b)?, C::read_key(c)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc<K: DbKey>(k: &K) -> Vec<u8> {
        k.to_key_bytes()
    }

    fn round_trip<K: DbKey + PartialEq + std::fmt::Debug>(k: &K) {
        let bytes = enc(k);
        if let Some(w) = K::WIDTH {
            assert_eq!(bytes.len(), w, "declared WIDTH must match the encoding");
        }
        assert_eq!(&K::read_key(&bytes).unwrap(), k);
    }

    proptest! {
        #[test]
        fn u64_order_and_round_trip(a: u64, b: u64) {
            prop_assert_eq!(enc(&a).cmp(&enc(&b)), a.cmp(&b));
            round_trip(&a);
        }

        #[test]
        fn small_ints_order(a: u16, b: u16, c: u32, d: u32, e: u8, f: u8) {
            prop_assert_eq!(enc(&a).cmp(&enc(&b)), a.cmp(&b));
            prop_assert_eq!(enc(&c).cmp(&enc(&d)), c.cmp(&d));
            prop_assert_eq!(enc(&e).cmp(&enc(&f)), e.cmp(&f));
            round_trip(&a);
            round_trip(&c);
            round_trip(&e);
        }

        #[test]
        fn pair_order_and_round_trip(a: (u32, u64), b: (u32, u64)) {
            prop_assert_eq!(enc(&a).cmp(&enc(&b)), a.cmp(&b));
            round_trip(&a);
        }

        // Small ranges so that equal first components (the interesting case) are common.
        #[test]
        fn triple_with_tail_order_and_round_trip(
            a in (0u8..3, 0u64..3, proptest::collection::vec(any::<u8>(), 0..4)),
            b in (0u8..3, 0u64..3, proptest::collection::vec(any::<u8>(), 0..4)),
        ) {
            prop_assert_eq!(enc(&a).cmp(&enc(&b)), a.cmp(&b));
            round_trip(&a);
        }

        #[test]
        fn array_and_string_tail(a: ([u8; 32], String), b: ([u8; 32], String)) {
            prop_assert_eq!(enc(&a).cmp(&enc(&b)), a.cmp(&b));
            round_trip(&a);
        }

        /// Decoding arbitrary bytes never panics; it either round-trips or is BadKey.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(k) = <(u32, u64, String)>::read_key(&bytes) {
                prop_assert_eq!(enc(&k), bytes.clone());
            }
            if let Ok(k) = <(u64, [u8; 32])>::read_key(&bytes) {
                prop_assert_eq!(enc(&k), bytes);
            }
        }
    }

    #[test]
    fn widths() {
        assert_eq!(<()>::WIDTH, Some(0));
        assert_eq!(<(u32, u64)>::WIDTH, Some(12));
        assert_eq!(<(u8, [u8; 32], u16)>::WIDTH, Some(35));
        assert_eq!(<(u64, Vec<u8>)>::WIDTH, None);
        assert_eq!(<(u64, u8, String)>::WIDTH, None);
    }

    #[test]
    fn wrong_lengths_are_bad_keys() {
        let too_short = u64::read_key(&[0; 7]);
        assert!(matches!(
            too_short,
            Err(DbError::BadKey { reason: KeyError::WrongLength { expected: 8, found: 7 }, .. })
        ));
        assert!(matches!(u64::read_key(&[0; 9]), Err(DbError::BadKey { .. })));
        assert!(matches!(<()>::read_key(&[0]), Err(DbError::BadKey { .. })));
        // A pair whose fixed head is cut short.
        assert!(matches!(<(u64, Vec<u8>)>::read_key(&[1, 2, 3]), Err(DbError::BadKey { .. })));
        // A pair of fixed widths with a trailing byte.
        assert!(matches!(<(u8, u8)>::read_key(&[1, 2, 3]), Err(DbError::BadKey { .. })));
        assert!(matches!(
            String::read_key(&[0xff, 0xfe]),
            Err(DbError::BadKey { reason: KeyError::NotUtf8, .. })
        ));
        // The error is typed and fatal (a stored key that does not decode is corruption).
        assert!(u64::read_key(&[]).unwrap_err().is_fatal());
    }

    #[test]
    fn tail_component_keeps_its_bytes() {
        let k = (7u64, b"\x00\xffabc".to_vec());
        let bytes = enc(&k);
        assert_eq!(&bytes[..8], &7u64.to_be_bytes());
        assert_eq!(&bytes[8..], b"\x00\xffabc");
        round_trip(&k);
        round_trip(&(1u8, 2u16, String::from("é")));
    }
}
