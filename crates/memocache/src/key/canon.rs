//! What makes a key's encoding canonical, for the encoder (`encode`) and
//! the order of unordered collections (`order`) alike: floats normalized,
//! the collections that iterate in no fixed order recognised, and the
//! error a key's `Serialize` can end with.

use std::any::type_name;
use std::fmt;

use serde::ser;

/// A key whose `Serialize` implementation failed.
#[derive(Debug)]
pub(crate) struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(message.to_string())
    }
}

/// `-0.0` → `0.0`, every NaN → `f64::NAN`: equal floats (and all NaNs, which
/// no key could otherwise ever meet again) encode alike.
#[inline]
pub(super) fn canonical_f64(v: f64) -> f64 {
    if v == 0.0 {
        0.0
    } else if v.is_nan() {
        f64::NAN
    } else {
        v
    }
}

/// As [`canonical_f64`].
#[inline]
pub(super) fn canonical_f32(v: f32) -> f32 {
    if v == 0.0 {
        0.0
    } else if v.is_nan() {
        f32::NAN
    } else {
        v
    }
}

/// Modules whose collections iterate in an order that is not a function of
/// their contents: a sequence read from one of their types (a `HashSet`, a
/// `HashMap`'s keys or values, hashbrown's and indexmap's counterparts,
/// whose `==` ignores order too) is a set, and is encoded in canonical
/// order.
const UNORDERED_MODULES: [&str; 6] = [
    "std::collections::hash::set::",
    "std::collections::hash::map::",
    "hashbrown::set::",
    "hashbrown::map::",
    "indexmap::set::",
    "indexmap::map::",
];

/// The type `I` names, without its references (`&`, `&mut `).
#[inline]
fn referent<I>() -> &'static str {
    let mut name = type_name::<I>();
    while let Some(rest) = name.strip_prefix('&') {
        name = rest.strip_prefix("mut ").unwrap_or(rest);
    }
    name
}

/// Whether `collect_seq` was handed one of those collections (or one of
/// their iterators). serde gives a serializer no other sign of a set: a
/// `HashSet` serializes exactly as a `Vec` does, but its `Serialize` calls
/// `collect_seq(self)`, and the iterable's type name tells. Only the
/// outermost type counts (a `Vec` of sets is ordered). Called for every
/// sequence, so the commonest (`alloc::vec::Vec`, slices, `VecDeque`) are
/// turned away on their first byte.
pub(super) fn is_unordered<I>() -> bool {
    let name = referent::<I>();
    matches!(name.as_bytes().first(), Some(b's' | b'h' | b'i'))
        && UNORDERED_MODULES
            .iter()
            .any(|module| name.starts_with(module))
}

/// Whether `collect_map` was handed a `BTreeMap`, whose entries are already
/// in order: written as they come, exactly as before, without computing
/// their order keys.
pub(super) fn is_btree_map<I>() -> bool {
    referent::<I>().starts_with("alloc::collections::btree::map::BTreeMap<")
}
