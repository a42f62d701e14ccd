//! The key as `#[memoize]` hands it to a memo: its parameters borrowed,
//! checked against the memo's key type `K` at compile time.
//!
//! # The rule
//!
//! A memoized function hashes its arguments by reference (nothing is
//! cloned on a hit), so the memo is given something that *serializes like*
//! `K` without being a `K`: `&str` for a `String`, `&[T]` for a `Vec<T>`.
//! A `Q: Serialize` would take anything, and a forget of the wrong type
//! would compile and silently forget nothing. So the doors `#[memoize]`
//! uses (`Memo::__get_or_try_load_by`, `Memo::__forget_by`,
//! `Memo::__forget_group_by`) take [`Part`]s, each built by a constructor
//! whose type ties what it borrows to the part of `K` it stands for, and
//! accept only a tuple of parts whose owned types are `K`'s ([`KeyParts`],
//! sealed). A `memo.__forget_by(Part::of(&"7"))` on a `Memo<i64, _>` does
//! not compile.
//!
//! # The one unchecked door
//!
//! Rust cannot relate every borrowed type to its owned one (an
//! `Option<&str>` to an `Option<String>`, a struct with a lifetime to its
//! `'static` self) without a trait every user type would implement. For
//! parameters whose borrows are nested like that, `#[memoize]` maps the
//! type syntactically and uses [`Part::unchecked`], whose name says what
//! it asks of its caller. Every other shape (any owned type, any
//! reference to one, `&str`, `&[T]` of an owned `T`, a receiver) goes
//! through a checked constructor.

use std::marker::PhantomData;

use serde::{Serialize, Serializer};

use crate::error::Result;
use crate::key::KeyHash;

/// One key parameter, borrowed as a `T`, standing for a part of type `O`
/// of a memo's key. Built only by `#[memoize]`'s expansion; not part of
/// the stable API.
///
/// ```
/// use memocache::{Cache, Memo, __private::Part};
/// # futures::executor::block_on(async {
/// let cache = Cache::memory();
/// let memo: Memo<(u64, String), u64> = Memo::builder("m").build(&cache)?;
/// let name = "ada";
/// memo.__forget_by((Part::<u64, u64>::of(&7), Part::str(name))).await;
/// // memo.__forget_by((Part::<u64, u64>::of(&7), Part::<u64, u64>::of(&8))).await; // does not compile
/// # Ok::<(), memocache::Error>(()) }).unwrap();
/// ```
pub struct Part<'a, O: ?Sized, T: ?Sized> {
    value: &'a T,
    _owned: PhantomData<fn(&O)>,
}

impl<O: ?Sized, T: ?Sized> Clone for Part<'_, O, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<O: ?Sized, T: ?Sized> Copy for Part<'_, O, T> {}

impl<'a, O: ?Sized> Part<'a, O, O> {
    /// A part that is a reference to its owned type.
    #[inline(always)]
    pub fn of(value: &'a O) -> Self {
        Self {
            value,
            _owned: PhantomData,
        }
    }
}

impl<'a> Part<'a, String, str> {
    /// A `&str` standing for a `String`.
    #[inline(always)]
    pub fn str(value: &'a str) -> Self {
        Self {
            value,
            _owned: PhantomData,
        }
    }
}

impl<'a, T> Part<'a, Vec<T>, [T]> {
    /// A `&[T]` standing for a `Vec<T>`.
    #[inline(always)]
    pub fn slice(value: &'a [T]) -> Self {
        Self {
            value,
            _owned: PhantomData,
        }
    }
}

impl<'a, O, T: ?Sized> Part<'a, O, T> {
    /// A `T` standing for an `O` its caller vouches serializes exactly
    /// like it: `#[memoize]`'s mapping of a type with borrows nested
    /// inside (`Option<&str>` for `Option<String>`). Not checked.
    #[inline(always)]
    pub fn unchecked(value: &'a T) -> Self {
        Self {
            value,
            _owned: PhantomData,
        }
    }
}

impl<O: ?Sized, T: Serialize + ?Sized> Serialize for Part<'_, O, T> {
    #[inline(always)]
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The parts of a whole key of type `K`: a [`Part`] for a one-parameter
/// key, `()` for none, a tuple of parts for several. Sealed.
pub trait KeyParts<K: ?Sized>: Serialize + Copy + sealed::Sealed {
    /// The hash of the first part: the key's group on a grouped memo
    /// (`None` for keys of fewer than two parts, which have none).
    fn group(&self) -> Option<Result<KeyHash>>;
}

impl sealed::Sealed for () {}

impl KeyParts<()> for () {
    #[inline(always)]
    fn group(&self) -> Option<Result<KeyHash>> {
        None
    }
}

impl<O: ?Sized, T: Serialize + ?Sized> sealed::Sealed for Part<'_, O, T> {}

impl<O: ?Sized, T: Serialize + ?Sized> KeyParts<O> for Part<'_, O, T> {
    #[inline(always)]
    fn group(&self) -> Option<Result<KeyHash>> {
        None
    }
}

macro_rules! key_parts {
    ($(($o:ident, $t:ident, $l:lifetime)),+) => {
        impl<$($l,)+ $($o, $t: Serialize + ?Sized),+> sealed::Sealed for ($(Part<$l, $o, $t>,)+) {}

        impl<$($l,)+ $($o, $t: Serialize + ?Sized),+> KeyParts<($($o,)+)> for ($(Part<$l, $o, $t>,)+) {
            #[inline(always)]
            fn group(&self) -> Option<Result<KeyHash>> {
                Some(KeyHash::of(&self.0))
            }
        }
    };
}

key_parts!((A, TA, 'a), (B, TB, 'b));
key_parts!((A, TA, 'a), (B, TB, 'b), (C, TC, 'c));
key_parts!((A, TA, 'a), (B, TB, 'b), (C, TC, 'c), (D, TD, 'd));
key_parts!((A, TA, 'a), (B, TB, 'b), (C, TC, 'c), (D, TD, 'd), (E, TE, 'e));
key_parts!((A, TA, 'a), (B, TB, 'b), (C, TC, 'c), (D, TD, 'd), (E, TE, 'e), (F, TF, 'f));
key_parts!((A, TA, 'a), (B, TB, 'b), (C, TC, 'c), (D, TD, 'd), (E, TE, 'e), (F, TF, 'f), (G, TG, 'g));
key_parts!((A, TA, 'a), (B, TB, 'b), (C, TC, 'c), (D, TD, 'd), (E, TE, 'e), (F, TF, 'f), (G, TG, 'g), (H, TH, 'h));
key_parts!((A, TA, 'a), (B, TB, 'b), (C, TC, 'c), (D, TD, 'd), (E, TE, 'e), (F, TF, 'f), (G, TG, 'g), (H, TH, 'h), (I, TI, 'i));
key_parts!((A, TA, 'a), (B, TB, 'b), (C, TC, 'c), (D, TD, 'd), (E, TE, 'e), (F, TF, 'f), (G, TG, 'g), (H, TH, 'h), (I, TI, 'i), (J, TJ, 'j));
key_parts!((A, TA, 'a), (B, TB, 'b), (C, TC, 'c), (D, TD, 'd), (E, TE, 'e), (F, TF, 'f), (G, TG, 'g), (H, TH, 'h), (I, TI, 'i), (J, TJ, 'j), (K, TK, 'k));
key_parts!((A, TA, 'a), (B, TB, 'b), (C, TC, 'c), (D, TD, 'd), (E, TE, 'e), (F, TF, 'f), (G, TG, 'g), (H, TH, 'h), (I, TI, 'i), (J, TJ, 'j), (K, TK, 'k), (L, TL, 'l));
