//! Order keys: the canonical order of a map's entries and a set's elements.
//!
//! To be a function of its value, a map's encoding must list its entries in
//! an order that depends on the entries alone. Sorting them by their encoded
//! bytes would do, but would move every `BTreeMap` key whose order differs
//! from its bytes' (`"b"` encodes before `"aa"`: its length prefix is
//! smaller; `300` before `200`: varints are little-endian), and those
//! encodings are already canonical and stored in shared caches.
//!
//! So entries are sorted by an *order key*: an encoding whose bytes compare
//! as the values do under the order `#[derive(Ord)]` and the standard
//! library give them: integers by value (big-endian, sign bit flipped),
//! strings and bytes lexicographically (escaped and terminated, so `"a"`
//! comes before `"a\0"` and `"ab"`), floats by value (after the same
//! normalization as in keys), `None` before `Some`, enum variants by index,
//! tuples, structs and sequences field by field and element by element
//! (a shorter sequence first). A `BTreeMap` hands its entries over in that
//! order already, so its encoding does not move, and a `HashMap` encodes as
//! the `BTreeMap` with the same entries would. Only a key type with an `Ord`
//! of its own making (`Reverse`, a case-insensitive string) orders
//! differently; its maps are still canonical, in the structural order.

use serde::Serialize;
use serde::ser::{self, SerializeMap as _, SerializeSeq as _};

use super::canon::{EncodeError, canonical_f32, canonical_f64, is_unordered};

/// Appends the order key of `value` to `out`.
pub(super) fn write<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    value.serialize(&mut Writer { out })
}

/// Sequences: `1` before each element, `0` after the last, so a sequence
/// that is a prefix of another comes first.
const MORE: u8 = 1;
const END: u8 = 0;

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    /// Bytes with `0` escaped as `0 0xff`, ended by `0 0`.
    fn bytes(&mut self, bytes: &[u8]) {
        self.out.reserve(bytes.len() + 2);
        if bytes.contains(&0) {
            for &byte in bytes {
                self.out.push(byte);
                if byte == 0 {
                    self.out.push(0xff);
                }
            }
        } else {
            self.out.extend_from_slice(bytes);
        }
        self.out.extend_from_slice(&[0, 0]);
    }

    fn variant(&mut self, index: u32) {
        self.out.extend_from_slice(&index.to_be_bytes());
    }
}

/// A sequence in its own order, or a map or set whose entries are sorted
/// by their order keys when it ends.
enum Collection<'w, 'a> {
    InOrder(&'w mut Writer<'a>),
    Sorted {
        writer: &'w mut Writer<'a>,
        entries: Vec<Vec<u8>>,
    },
}

impl<'w, 'a> Collection<'w, 'a> {
    fn sorted(writer: &'w mut Writer<'a>) -> Self {
        Self::Sorted {
            writer,
            entries: Vec::new(),
        }
    }

    /// Appends `value` to the current entry, or starts one with it.
    fn push<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        new_entry: bool,
    ) -> Result<(), EncodeError> {
        match self {
            Self::InOrder(writer) => {
                if new_entry {
                    writer.out.push(MORE);
                }
                value.serialize(&mut **writer)
            }
            Self::Sorted { entries, .. } => {
                if new_entry || entries.is_empty() {
                    entries.push(Vec::new());
                }
                let entry = entries
                    .last_mut()
                    .ok_or_else(|| ser::Error::custom("no entry"))?;
                write(value, entry)
            }
        }
    }

    fn finish(self) {
        match self {
            Self::InOrder(writer) => writer.out.push(END),
            Self::Sorted {
                writer,
                mut entries,
            } => {
                entries.sort_unstable();
                for entry in entries {
                    writer.out.push(MORE);
                    writer.out.extend_from_slice(&entry);
                }
                writer.out.push(END);
            }
        }
    }
}

impl ser::SerializeSeq for Collection<'_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.push(value, true)
    }

    fn end(self) -> Result<(), EncodeError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeMap for Collection<'_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        self.push(key, true)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.push(value, false)
    }

    fn end(self) -> Result<(), EncodeError> {
        self.finish();
        Ok(())
    }
}

/// Tuples, structs and their variants: fields one after the other.
macro_rules! fields {
    ($($trait:ident :: $method:ident $(($key:ty))?;)*) => {$(
        impl ser::$trait for &mut Writer<'_> {
            type Ok = ();
            type Error = EncodeError;

            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $(_: $key,)?
                value: &T,
            ) -> Result<(), EncodeError> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), EncodeError> {
                Ok(())
            }
        }
    )*};
}

fields! {
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
    SerializeStruct::serialize_field(&'static str);
    SerializeStructVariant::serialize_field(&'static str);
}

/// A signed integer's bytes, big-endian with the sign bit flipped, so that
/// they compare as the numbers do.
macro_rules! signed {
    ($method:ident, $ty:ty, $unsigned:ty) => {
        fn $method(self, v: $ty) -> Result<(), EncodeError> {
            let flipped = (v as $unsigned) ^ (1 << (<$unsigned>::BITS - 1));
            self.out.extend_from_slice(&flipped.to_be_bytes());
            Ok(())
        }
    };
}

macro_rules! unsigned {
    ($method:ident, $ty:ty) => {
        fn $method(self, v: $ty) -> Result<(), EncodeError> {
            self.out.extend_from_slice(&v.to_be_bytes());
            Ok(())
        }
    };
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Collection<'w, 'a>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Collection<'w, 'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    /// As the key encoder: the compact form of two-form types.
    fn is_human_readable(&self) -> bool {
        false
    }

    signed!(serialize_i8, i8, u8);
    signed!(serialize_i16, i16, u16);
    signed!(serialize_i32, i32, u32);
    signed!(serialize_i64, i64, u64);
    signed!(serialize_i128, i128, u128);
    unsigned!(serialize_u8, u8);
    unsigned!(serialize_u16, u16);
    unsigned!(serialize_u32, u32);
    unsigned!(serialize_u64, u64);
    unsigned!(serialize_u128, u128);

    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.out.push(u8::from(v));
        Ok(())
    }

    /// IEEE 754's total order on the normalized value: negative numbers
    /// with every bit flipped, positive ones with the sign bit set.
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        let bits = canonical_f32(v).to_bits();
        let ordered = if bits >> 31 == 1 {
            !bits
        } else {
            bits | 1 << 31
        };
        self.out.extend_from_slice(&ordered.to_be_bytes());
        Ok(())
    }

    /// As [`Self::serialize_f32`].
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        let bits = canonical_f64(v).to_bits();
        let ordered = if bits >> 63 == 1 {
            !bits
        } else {
            bits | 1 << 63
        };
        self.out.extend_from_slice(&ordered.to_be_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        self.out.extend_from_slice(&u32::from(v).to_be_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.bytes(v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        self.bytes(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), EncodeError> {
        self.out.push(0);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.out.push(1);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), EncodeError> {
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), EncodeError> {
        self.variant(index);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.variant(index);
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Collection<'w, 'a>, EncodeError> {
        Ok(Collection::InOrder(self))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncodeError> {
        self.variant(index);
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Collection<'w, 'a>, EncodeError> {
        Ok(Collection::sorted(self))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncodeError> {
        self.variant(index);
        Ok(self)
    }

    fn collect_seq<I>(self, iter: I) -> Result<(), EncodeError>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let mut seq = if is_unordered::<I>() {
            Collection::sorted(self)
        } else {
            Collection::InOrder(self)
        };
        for item in iter {
            seq.serialize_element(&item)?;
        }
        ser::SerializeSeq::end(seq)
    }

    fn collect_map<K, V, I>(self, iter: I) -> Result<(), EncodeError>
    where
        K: Serialize,
        V: Serialize,
        I: IntoIterator<Item = (K, V)>,
    {
        let mut map = Collection::sorted(self);
        for (key, value) in iter {
            map.serialize_entry(&key, &value)?;
        }
        ser::SerializeMap::end(map)
    }
}
