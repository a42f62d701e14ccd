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
        // Most keys (ids, short names, small tuples) fit on the stack.
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

fn codec_error(error: postcard::Error) -> Error {
    Error::new(ErrorKind::Codec, "cannot serialize the memo key").with_source(error)
}

#[inline]
fn splitmix64(mut x: u64) -> u64 {
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
