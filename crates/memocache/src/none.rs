//! Telling whether a value is `None`, for any serializable type.
//!
//! Flask-Caching's `cache_none=False` (the default) does not keep `None`
//! results. Rust has no way to ask a generic `V` "are you `None`?", but serde
//! does: an `Option` serializes its `None` through `serialize_none`. This
//! serializer answers `true` for exactly that, and `false` for anything else
//! without looking further.

use serde::Serialize;
use serde::ser::{self, Impossible};
use std::fmt;

/// True if `value` is `None` (of any `Option` type) or `()`.
pub(crate) fn is_none<V: Serialize + ?Sized>(value: &V) -> bool {
    value.serialize(NoneProbe).unwrap_or(false)
}

struct NoneProbe;

#[derive(Debug)]
struct NotNone;

impl fmt::Display for NotNone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not none")
    }
}

impl std::error::Error for NotNone {}

impl ser::Error for NotNone {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotNone
    }
}

macro_rules! not_none {
    ($($method:ident($($ty:ty),*);)*) => {
        $(fn $method(self, $(_: $ty),*) -> Result<bool, NotNone> { Ok(false) })*
    };
}

macro_rules! compound_not_none {
    ($($method:ident($($ty:ty),*) -> $ret:ident;)*) => {
        $(fn $method(self, $(_: $ty),*) -> Result<Self::$ret, NotNone> { Err(NotNone) })*
    };
}

impl ser::Serializer for NoneProbe {
    type Ok = bool;
    type Error = NotNone;
    type SerializeSeq = Impossible<bool, NotNone>;
    type SerializeTuple = Impossible<bool, NotNone>;
    type SerializeTupleStruct = Impossible<bool, NotNone>;
    type SerializeTupleVariant = Impossible<bool, NotNone>;
    type SerializeMap = Impossible<bool, NotNone>;
    type SerializeStruct = Impossible<bool, NotNone>;
    type SerializeStructVariant = Impossible<bool, NotNone>;

    not_none! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_i128(i128); serialize_u8(u8); serialize_u16(u16);
        serialize_u32(u32); serialize_u64(u64); serialize_u128(u128); serialize_f32(f32);
        serialize_f64(f64); serialize_char(char); serialize_str(&str); serialize_bytes(&[u8]);
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    compound_not_none! {
        serialize_seq(Option<usize>) -> SerializeSeq;
        serialize_tuple(usize) -> SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> SerializeTupleVariant;
        serialize_map(Option<usize>) -> SerializeMap;
        serialize_struct(&'static str, usize) -> SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> SerializeStructVariant;
    }

    fn serialize_none(self) -> Result<bool, NotNone> {
        Ok(true)
    }

    fn serialize_unit(self) -> Result<bool, NotNone> {
        Ok(true)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<bool, NotNone> {
        Ok(false)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<bool, NotNone> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, NotNone> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::is_none;

    #[test]
    fn only_none_and_unit_are_none() {
        assert!(is_none(&None::<u32>));
        assert!(is_none(&()));
        assert!(!is_none(&Some(0_u32)));
        assert!(!is_none(&Some(None::<u8>)));
        assert!(!is_none(&0_u64));
        assert!(!is_none(""));
        assert!(!is_none(&Vec::<u8>::new()));
        assert!(!is_none(&(1, 2)));
    }
}
