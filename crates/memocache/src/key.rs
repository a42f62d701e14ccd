//! Stable keys.
//!
//! A memo's arguments are serialized with `postcard` (a compact format whose
//! encoding does not depend on the platform: integers are varints, `usize` is
//! encoded like `u64`) and hashed with XXH3-128. The result is the same in
//! every process, on every machine and after every restart, so remote stores
//! shared by a fleet see one key per argument tuple.

use std::fmt;

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, ErrorKind};

/// The stable 128-bit hash of a memo's arguments.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub u128);

impl KeyHash {
    /// Hashes serialized key arguments.
    ///
    /// # Errors
    /// When `key`'s `Serialize` implementation fails (for example a map with
    /// non-string keys is fine, but a custom implementation may refuse).
    #[inline]
    pub fn of<K: Serialize + ?Sized>(key: &K) -> Result<Self, Error> {
        // Keys that are one integer or one string (most ids and names) are
        // encoded here, byte for byte as postcard would, without its
        // machinery; anything else goes through postcard.
        // The commonest keys (an integer, a string of up to 7 bytes) fit in
        // a register: no buffer to zero, one store before hashing.
        let mut word = Word::default();
        if key.serialize(&mut word).is_ok() {
            return Ok(Self(xxh3_128(&word.bytes.to_le_bytes()[..word.len])));
        }
        let mut scalar = Scalar::default();
        if key.serialize(&mut scalar).is_ok() {
            return Ok(Self(xxh3_128(scalar.bytes())));
        }
        let mut buffer = [0u8; 32];
        match postcard::to_slice(key, &mut buffer) {
            Ok(bytes) => Ok(Self(xxh3_128(bytes))),
            Err(error) => Self::of_large(key, error),
        }
    }

    #[cold]
    #[inline(never)]
    fn of_large<K: Serialize + ?Sized>(key: &K, error: postcard::Error) -> Result<Self, Error> {
        match error {
            postcard::Error::SerializeBufferFull => postcard::to_allocvec(key)
                .map(|bytes| Self(xxh3_128(&bytes)))
                .map_err(codec_error),
            other => Err(codec_error(other)),
        }
    }

    /// The hash of a plain string key, as the low-level API uses it.
    pub(crate) fn of_str(key: &str) -> Self {
        Self(xxh3_128(key.as_bytes()))
    }

    /// Folds a memo version into the hash, giving the in-process table key.
    /// Invertible and cheap: a version bump moves every key of the memo.
    #[inline]
    pub(crate) fn versioned(self, version: u64) -> Self {
        if version == 0 {
            return self;
        }
        let mixed = splitmix64(version);
        Self(self.0 ^ (u128::from(mixed) << 64 | u128::from(splitmix64(mixed))))
    }
}

/// postcard's encoding of a lone integer or short string, on the stack.
struct Scalar {
    buffer: [u8; 40],
    len: usize,
}

impl Default for Scalar {
    #[inline]
    fn default() -> Self {
        Self {
            buffer: [0; 40],
            len: 0,
        }
    }
}

/// Not a scalar (or too long for [`Scalar`]): use postcard.
#[derive(Debug)]
struct NotScalar;

impl std::fmt::Display for NotScalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a scalar key")
    }
}

impl std::error::Error for NotScalar {}

impl serde::ser::Error for NotScalar {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotScalar
    }
}

impl Scalar {
    fn bytes(&self) -> &[u8] {
        &self.buffer[..self.len]
    }

    /// Appends `n` as a postcard varint, stored at once (see
    /// [`varint_word`]).
    #[inline]
    fn varint(&mut self, n: u64) -> Result<(), NotScalar> {
        let (encoded, width) = varint_word(n);
        let slot = self
            .buffer
            .get_mut(self.len..self.len + 16)
            .ok_or(NotScalar)?;
        slot.copy_from_slice(&encoded.to_le_bytes());
        self.len += width;
        Ok(())
    }

    #[inline]
    fn zigzag(&mut self, n: i64) -> Result<(), NotScalar> {
        self.varint(((n << 1) ^ (n >> 63)) as u64)
    }

    #[inline]
    fn put_str(&mut self, v: &str) -> Result<(), NotScalar> {
        // The common short key ("alice", a short id): length byte and text
        // in one word, stored once (see `varint_word` for why).
        if self.len == 0 && v.len() < 8 {
            let word = pack_short(v.as_bytes()) << 8 | v.len() as u64;
            self.buffer[..8].copy_from_slice(&word.to_le_bytes());
            self.len = 1 + v.len();
            return Ok(());
        }
        self.varint(v.len() as u64)?;
        let end = self.len + v.len();
        let slot = self.buffer.get_mut(self.len..end).ok_or(NotScalar)?;
        slot.copy_from_slice(v.as_bytes());
        self.len = end;
        Ok(())
    }
}

macro_rules! not_scalar {
    ($($method:ident($($ty:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $(_: $ty),*) -> Result<$ret, NotScalar> { Err(NotScalar) })*
    };
}

/// postcard's encoding of a lone integer or string of up to 7 bytes, in a
/// register: `len` bytes of `bytes`, little-endian.
#[derive(Default)]
struct Word {
    bytes: u128,
    len: usize,
}

impl Word {
    #[inline]
    fn varint(&mut self, n: u64) -> Result<(), NotScalar> {
        (self.bytes, self.len) = varint_word(n);
        Ok(())
    }

    #[inline]
    fn zigzag(&mut self, n: i64) -> Result<(), NotScalar> {
        self.varint(((n << 1) ^ (n >> 63)) as u64)
    }

    #[inline]
    fn put_str(&mut self, v: &str) -> Result<(), NotScalar> {
        if v.len() >= 8 {
            return Err(NotScalar);
        }
        self.bytes = u128::from(pack_short(v.as_bytes()) << 8 | v.len() as u64);
        self.len = 1 + v.len();
        Ok(())
    }
}

/// The serde side of [`Scalar`] and [`Word`]: integers of 16 to 64 bits,
/// strings (through the type's `put_str`) and unit; anything else is not a
/// scalar key.
macro_rules! scalar_serializer {
    ($ty:ty) => {
        impl serde::Serializer for &mut $ty {
            type Ok = ();
            type Error = NotScalar;
            type SerializeSeq = serde::ser::Impossible<(), NotScalar>;
            type SerializeTuple = serde::ser::Impossible<(), NotScalar>;
            type SerializeTupleStruct = serde::ser::Impossible<(), NotScalar>;
            type SerializeTupleVariant = serde::ser::Impossible<(), NotScalar>;
            type SerializeMap = serde::ser::Impossible<(), NotScalar>;
            type SerializeStruct = serde::ser::Impossible<(), NotScalar>;
            type SerializeStructVariant = serde::ser::Impossible<(), NotScalar>;

            #[inline]
            fn serialize_u64(self, v: u64) -> Result<(), NotScalar> {
                self.varint(v)
            }
            #[inline]
            fn serialize_u32(self, v: u32) -> Result<(), NotScalar> {
                self.varint(u64::from(v))
            }
            #[inline]
            fn serialize_u16(self, v: u16) -> Result<(), NotScalar> {
                self.varint(u64::from(v))
            }
            #[inline]
            fn serialize_i64(self, v: i64) -> Result<(), NotScalar> {
                self.zigzag(v)
            }
            #[inline]
            fn serialize_i32(self, v: i32) -> Result<(), NotScalar> {
                self.zigzag(i64::from(v))
            }
            #[inline]
            fn serialize_i16(self, v: i16) -> Result<(), NotScalar> {
                self.zigzag(i64::from(v))
            }
            #[inline]
            fn serialize_str(self, v: &str) -> Result<(), NotScalar> {
                self.put_str(v)
            }
            #[inline]
            fn serialize_unit(self) -> Result<(), NotScalar> {
                Ok(())
            }

            not_scalar! {
                serialize_bool(bool) -> ();
                serialize_i8(i8) -> ();
                serialize_u8(u8) -> ();
                serialize_i128(i128) -> ();
                serialize_u128(u128) -> ();
                serialize_f32(f32) -> ();
                serialize_f64(f64) -> ();
                serialize_char(char) -> ();
                serialize_bytes(&[u8]) -> ();
                serialize_none() -> ();
                serialize_unit_struct(&'static str) -> ();
                serialize_unit_variant(&'static str, u32, &'static str) -> ();
                serialize_seq(Option<usize>) -> Self::SerializeSeq;
                serialize_tuple(usize) -> Self::SerializeTuple;
                serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
                serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
                serialize_map(Option<usize>) -> Self::SerializeMap;
                serialize_struct(&'static str, usize) -> Self::SerializeStruct;
                serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
            }

            fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), NotScalar> {
                Err(NotScalar)
            }

            fn serialize_newtype_struct<T: Serialize + ?Sized>(
                self,
                _: &'static str,
                _: &T,
            ) -> Result<(), NotScalar> {
                Err(NotScalar)
            }

            fn serialize_newtype_variant<T: Serialize + ?Sized>(
                self,
                _: &'static str,
                _: u32,
                _: &'static str,
                _: &T,
            ) -> Result<(), NotScalar> {
                Err(NotScalar)
            }
        }
    };
}

scalar_serializer!(Scalar);
scalar_serializer!(Word);

/// `n` as a postcard varint: its bytes little-endian in a register, and how
/// many there are. The bytes are put together in a register and stored at
/// once: hashing reads them back as whole words straight away, and a word
/// load over several single-byte stores stalls on store forwarding
/// (measured: +10 ns a key).
#[inline]
fn varint_word(mut n: u64) -> (u128, usize) {
    let mut encoded: u128 = 0;
    let mut width = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        let more = if n == 0 { 0 } else { 0x80 };
        encoded |= u128::from(byte | more) << (8 * width);
        width += 1;
        if n == 0 {
            return (encoded, width);
        }
    }
}

/// Up to seven bytes as a little-endian integer, built from overlapping
/// word loads in registers (no byte-by-byte copy).
#[inline]
fn pack_short(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let word = |at: usize| -> u64 {
        let mut four = [0u8; 4];
        four.copy_from_slice(&bytes[at..at + 4]);
        u64::from(u32::from_le_bytes(four))
    };
    match len {
        0 => 0,
        1..=3 => {
            u64::from(bytes[0])
                | u64::from(bytes[len / 2]) << (8 * (len / 2))
                | u64::from(bytes[len - 1]) << (8 * (len - 1))
        }
        _ => word(0) | word(len - 4) << (8 * (len - 4)),
    }
}

fn codec_error(error: postcard::Error) -> Error {
    Error::new(ErrorKind::Codec, "cannot serialize the memo key").with_source(error)
}

#[inline]
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({self})")
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// The key a memoized value has in a shared store:
/// `{prefix}{memo}:{version}:{hash}`.
pub fn memo_key(prefix: &str, memo: &str, version: u64, hash: KeyHash) -> String {
    format!("{prefix}{memo}:{version}:{hash}")
}

/// Where a shared store keeps memo `memo`'s version.
pub(crate) fn version_key(prefix: &str, memo: &str) -> String {
    format!("{prefix}{memo}:ver")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These values are part of the format: every process of a fleet, on any
    /// platform and after any upgrade, must find the same keys. If this test
    /// fails, the change breaks shared caches and needs a new key format.
    #[test]
    fn known_keys_are_pinned() {
        let cases: [(&str, KeyHash); 4] = [
            ("u64 42", KeyHash::of(&42_u64).expect("hash")),
            ("str alice", KeyHash::of("alice").expect("hash")),
            ("tuple", KeyHash::of(&(7_i64, "x")).expect("hash")),
            ("unit", KeyHash::of(&()).expect("hash")),
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|(name, hash)| format!("{name}={hash}"))
            .collect();
        assert_eq!(
            rendered,
            [
                "u64 42=14c9ae9594c463c479d03016b7aeed0d",
                "str alice=9dd38b6a32f5271f4981140e536fd3f8",
                "tuple=25081e02f0a0a7f7990ab7c2fb971d9c",
                "unit=99aa06d3014798d86001c324468d497f",
            ]
        );
        assert_eq!(
            memo_key("board:", "load_user", 3, cases[0].1),
            format!("board:load_user:3:{}", cases[0].1)
        );
    }

    /// The scalar fast path must give exactly postcard's bytes.
    #[test]
    fn scalar_keys_hash_as_postcard_encodes_them() {
        fn via_postcard<K: Serialize + ?Sized>(key: &K) -> KeyHash {
            KeyHash(xxh3_128(&postcard::to_allocvec(key).expect("encode")))
        }
        for n in [0_u64, 1, 127, 128, 300, 16_383, 16_384, u64::MAX] {
            assert_eq!(KeyHash::of(&n).expect("hash"), via_postcard(&n), "{n}");
        }
        for n in [0_i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            assert_eq!(KeyHash::of(&n).expect("hash"), via_postcard(&n), "{n}");
            let small = n as i32;
            assert_eq!(KeyHash::of(&small).expect("hash"), via_postcard(&small));
            let short = n as i16;
            assert_eq!(KeyHash::of(&short).expect("hash"), via_postcard(&short));
        }
        for n in [0_u32, 200, u32::MAX] {
            assert_eq!(KeyHash::of(&n).expect("hash"), via_postcard(&n));
            let short = n as u16;
            assert_eq!(KeyHash::of(&short).expect("hash"), via_postcard(&short));
        }
        for text in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "alice",
            "abcdef",
            "abcdefg",
            "abcdefgh",
            "ünïcödé",
            &"x".repeat(39),
            &"y".repeat(200),
        ] {
            assert_eq!(
                KeyHash::of(text).expect("hash"),
                via_postcard(text),
                "{text}"
            );
        }
        assert_eq!(KeyHash::of(&()).expect("hash"), via_postcard(&()));
    }

    #[test]
    fn integer_width_and_platform_do_not_matter_for_usize() {
        assert_eq!(
            KeyHash::of(&5_usize).expect("hash"),
            KeyHash::of(&5_u64).expect("hash")
        );
    }

    #[test]
    fn long_keys_fall_back_to_the_heap() {
        let long = "k".repeat(10_000);
        let a = KeyHash::of(long.as_str()).expect("hash");
        let b = KeyHash::of(&long).expect("hash");
        assert_eq!(a, b);
        assert_ne!(a, KeyHash::of("k").expect("hash"));
    }

    #[test]
    fn versions_move_keys_and_zero_is_identity() {
        let h = KeyHash::of(&1_u32).expect("hash");
        assert_eq!(h.versioned(0), h);
        assert_ne!(h.versioned(1), h);
        assert_ne!(h.versioned(1), h.versioned(2));
    }
}
