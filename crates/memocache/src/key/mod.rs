//! Stable, canonical keys.
//!
//! # The rule
//!
//! A memo's key is the *value* of its arguments: equal arguments give one
//! key, in every process, on every machine, after every restart and
//! upgrade. So a call finds what an equal call stored, and a `forget` with
//! an equal argument removes it (a forget that missed its entry would leave
//! a stale value served, the one thing this library promises never to do).
//!
//! The key is the XXH3-128 hash of the arguments serialized in `postcard`'s
//! format (integers as varints, `usize` like `u64`, nothing that depends on
//! the platform), written canonically where a serialization would depend on
//! more than the value:
//!
//! | argument | encoded |
//! |---|---|
//! | a map (`HashMap`, `BTreeMap`, `IndexMap`, a struct's map field…) | entries in canonical order (see [`order`]): a `HashMap` encodes as the `BTreeMap` with the same entries |
//! | a set read from a hash collection (`HashSet`, hashbrown's and indexmap's sets, a `HashMap`'s `keys()` or `values()`) | elements in canonical order: a `HashSet` encodes as the `BTreeSet` with the same elements |
//! | `f32`, `f64` (also inside anything) | `-0.0` as `0.0`, every NaN as one NaN |
//! | everything else | postcard's bytes, unchanged |
//!
//! Keys that were already canonical (integers, strings, tuples, structs,
//! enums, options, `Vec`s, `BTreeMap`s and `BTreeSet`s of them, ordinary
//! floats) keep exactly the encoding they had before keys were made
//! canonical, so entries older versions stored in a shared store stay
//! reachable; the pinned-key tests hold every one of those shapes to it.
//!
//! # Why canonical encoding, and not a compile-time refusal
//!
//! The other way to keep equal arguments together is to refuse, at compile
//! time, every type whose serialization can differ between equal values: a
//! key trait that `BTreeMap` implements and `HashMap` does not. But such a
//! trait cannot be given to every `Serialize` type except the unordered
//! ones (Rust has no negative bounds), so every key type, every user
//! struct, would have to implement it by hand or by a derive, and it would
//! refuse floats and hash maps that can simply be encoded canonically.
//! serde tells a serializer that it is writing a map or a float, so those
//! are made canonical here, for every type that contains them.
//!
//! The one thing serde does not tell is a set from a list: a `HashSet`
//! serializes exactly as a `Vec` does, and sorting every sequence would
//! make `[1, 2]` and `[2, 1]` one key, serving one call the other's result.
//! A set's own `Serialize` does hand its collection to `collect_seq`, whose
//! type name tells where it comes from; sequences from the hash collections
//! of the standard library, hashbrown and indexmap are sorted, others are
//! not. `type_name` is documented as best effort, so the tests pin that a
//! `HashSet` and a `HashMap`'s keys are recognised: a toolchain that
//! renamed them fails the tests rather than quietly splitting keys.
//!
//! # What stays the caller's
//!
//! - A `Serialize` implementation that writes a sequence from an unordered
//!   collection this module does not know (one that calls `serialize_seq`
//!   itself over a hash set, or `collect_seq` over an iterator adapter on
//!   one) is not sorted: sort it, or use a `BTreeSet`.
//! - The key is the value as serialized, not as `==` sees it: a type whose
//!   `==` is looser than its serialization (a case-insensitive name) gives
//!   equal values different keys, and a field skipped by
//!   `#[serde(skip)]` is not part of the key.
//!
//! # Cost
//!
//! A key that is one integer or one string skips the encoder: it is encoded
//! straight into a register (see `scalar`). Other keys are encoded on the
//! stack up to 64 bytes (on the heap beyond). A map computes an order key
//! per entry (not for a `BTreeMap`, whose entries come in order, nor for
//! any other sequence) and moves entries only when they came out of order,
//! in scratch space each thread keeps for its next key. Measured in
//! instructions per memo hit (`BENCHMARKS.md`, issue 28): integer and
//! string keys unchanged, a `(u64, String)` pair +3%, a `BTreeMap` of
//! three +12%, a `HashMap` of three about 2.5 times a `BTreeMap`'s (it
//! used to be as cheap, and wrong).

use std::fmt;

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, ErrorKind};

mod canon;
mod encode;
mod order;
mod scalar;

use canon::EncodeError;
use scalar::{Scalar, Word};

/// The stable 128-bit hash of a memo's arguments.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub u128);

impl KeyHash {
    /// Hashes key arguments, canonically: equal arguments give equal
    /// hashes (see the module documentation).
    ///
    /// # Errors
    /// When `key`'s `Serialize` implementation fails (a custom
    /// implementation may refuse).
    // Always inlined: on a memo hit the integer and string fast paths
    // below are most of the work, and a call costs ~20 instructions more
    // (measured, `key_hits`).
    #[inline(always)]
    pub fn of<K: Serialize + ?Sized>(key: &K) -> Result<Self, Error> {
        let mut word = Word::default();
        if key.serialize(&mut word).is_ok() {
            let (bytes, len) = word.bytes();
            return Ok(Self(xxh3_128(&bytes[..len])));
        }
        let mut scalar = Scalar::default();
        if key.serialize(&mut scalar).is_ok() {
            return Ok(Self(xxh3_128(scalar.bytes())));
        }
        encode::with_encoded(key, xxh3_128)
            .map(Self)
            .map_err(codec_error)
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

fn codec_error(error: EncodeError) -> Error {
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

/// What separates a memo's name from one of its groups in a group's name
/// (a control character: no memo is named with it).
const GROUP_SEPARATOR: char = '\x1f';

/// The name of group `group` of memo `memo`: `{memo}\x1f{group}`. It names
/// the group's version in a shared store (`{prefix}{memo}\x1f{group}:ver`),
/// the group's invalidations on the bus, and its intents in an outbox.
pub(crate) fn group_name(memo: &str, group: KeyHash) -> String {
    format!("{memo}{GROUP_SEPARATOR}{group}")
}

/// A name as the memo it belongs to and, for a group's name (see
/// [`group_name`]), the group.
pub(crate) fn split_group(name: &str) -> (&str, Option<KeyHash>) {
    let Some((memo, group)) = name.rsplit_once(GROUP_SEPARATOR) else {
        return (name, None);
    };
    match u128::from_str_radix(group, 16) {
        Ok(group) if group_name(memo, KeyHash(group)).len() == name.len() => {
            (memo, Some(KeyHash(group)))
        }
        _ => (name, None),
    }
}

#[cfg(test)]
mod tests;
