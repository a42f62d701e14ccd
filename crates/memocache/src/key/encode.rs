//! The general key encoder: postcard's bytes, made a function of the value.
//!
//! For every value whose serialization already was a function of its value
//! this writes exactly what `postcard` writes (the pinned-key tests hold it
//! to that), so entries stored by older versions stay reachable. It departs
//! from postcard in three places only, each where postcard's output
//! depended on more than the value:
//!
//! - **maps**: entries are written in a canonical order (see
//!   [`super::order`]) instead of iteration order;
//! - **sets** (sequences read from a hash set, see [`is_unordered`]): the
//!   same, elements in canonical order;
//! - **floats**: `-0.0` is written as `0.0` and every NaN as the one
//!   `f64::NAN` (`f32::NAN`).
//!
//! And it accepts sequences and maps of unknown length (postcard refuses
//! them), writing the count it saw.

use std::any::type_name;
use std::fmt;

use serde::Serialize;
use serde::ser::{self, SerializeMap as _, SerializeSeq as _};

use super::order;

/// Bytes kept on the stack before a key spills to the heap: a composite key
/// (a pair of an id and a short name, a small struct) fits.
const INLINE: usize = 48;

/// Encodes `key`, then hands its bytes to `finish` (they may live on the
/// stack).
pub(super) fn with_encoded<K, R>(key: &K, finish: impl FnOnce(&[u8]) -> R) -> Result<R, EncodeError>
where
    K: Serialize + ?Sized,
{
    let mut encoder = Encoder::default();
    key.serialize(&mut encoder)?;
    Ok(finish(encoder.out.as_slice()))
}

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

/// The output: on the stack up to [`INLINE`] bytes, then on the heap.
struct Out {
    inline: [u8; INLINE],
    len: usize,
    heap: Option<Vec<u8>>,
}

impl Default for Out {
    #[inline]
    fn default() -> Self {
        Self {
            inline: [0; INLINE],
            len: 0,
            heap: None,
        }
    }
}

impl Out {
    #[inline]
    fn len(&self) -> usize {
        match &self.heap {
            Some(heap) => heap.len(),
            None => self.len,
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        match &self.heap {
            Some(heap) => heap,
            None => &self.inline[..self.len],
        }
    }

    #[inline]
    fn extend(&mut self, bytes: &[u8]) {
        if let Some(heap) = &mut self.heap {
            heap.extend_from_slice(bytes);
            return;
        }
        let end = self.len + bytes.len();
        match self.inline.get_mut(self.len..end) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.spill(bytes),
        }
    }

    #[cold]
    #[inline(never)]
    fn spill(&mut self, bytes: &[u8]) {
        let mut heap = Vec::with_capacity((2 * (self.len + bytes.len())).max(4 * INLINE));
        heap.extend_from_slice(&self.inline[..self.len]);
        heap.extend_from_slice(bytes);
        self.heap = Some(heap);
    }

    #[inline]
    fn push(&mut self, byte: u8) {
        self.extend(&[byte]);
    }

    /// Removes and returns everything from `start` on.
    fn split_off(&mut self, start: usize) -> Vec<u8> {
        match &mut self.heap {
            Some(heap) => heap.split_off(start),
            None => {
                let tail = self.inline[start..self.len].to_vec();
                self.len = start;
                tail
            }
        }
    }
}

#[derive(Default)]
struct Encoder {
    out: Out,
}

impl Encoder {
    #[inline]
    fn varint(&mut self, mut n: u128) {
        let mut bytes = [0u8; 19];
        let mut width = 0;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                bytes[width] = byte;
                width += 1;
                break;
            }
            bytes[width] = byte | 0x80;
            width += 1;
        }
        self.out.extend(&bytes[..width]);
    }

    #[inline]
    fn zigzag(&mut self, n: i128) {
        self.varint(((n << 1) ^ (n >> 127)) as u128);
    }

    #[inline]
    fn len_prefixed(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u128);
        self.out.extend(bytes);
    }

    /// Writes `count` before the bytes written since `start`.
    fn insert_count(&mut self, start: usize, count: usize) {
        let tail = self.out.split_off(start);
        self.varint(count as u128);
        self.out.extend(&tail);
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

/// Whether `collect_seq` was handed one of those collections (or one of
/// their iterators). serde gives a serializer no other sign of a set: a
/// `HashSet` serializes exactly as a `Vec` does, but its `Serialize` calls
/// `collect_seq(self)`, and the iterable's type name tells.
pub(super) fn is_unordered<I>() -> bool {
    let name = type_name::<I>();
    let name = name.trim_start_matches('&');
    let name = name.strip_prefix("mut ").unwrap_or(name);
    let path = name.split('<').next().unwrap_or(name);
    UNORDERED_MODULES
        .iter()
        .any(|module| path.starts_with(module))
}

/// Whether `collect_map` was handed a `BTreeMap`, whose entries are already
/// in order: written as they come, exactly as before, without computing
/// their order keys.
pub(super) fn is_btree_map<I>() -> bool {
    let name = type_name::<I>();
    name.trim_start_matches('&')
        .starts_with("alloc::collections::btree::map::BTreeMap<")
}

/// One entry of a map or element of a set, while its collection is written.
struct Entry {
    /// Its encoding: `start..end` of the output.
    start: usize,
    end: usize,
    /// Its order key: `order_start..order_end` of the collection's `order`.
    order_start: usize,
    order_end: usize,
}

/// A map or set being written: its entries go to the output as they come,
/// and are put in canonical order when it ends (a no-op move when they came
/// in order, as a `BTreeMap`'s do).
pub(super) struct Collection<'a> {
    encoder: &'a mut Encoder,
    /// Where the count goes when it was not known up front, else `None`.
    count_at: Option<usize>,
    /// Where the first entry starts.
    start: usize,
    /// Whether to order entries at all (not for a `BTreeMap`).
    canonical: bool,
    entries: Vec<Entry>,
    /// The entries' order keys, one after the other.
    order: Vec<u8>,
    /// Whether the entries so far came in canonical order.
    in_order: bool,
    /// Where the current entry starts (maps: between key and value).
    current: Option<(usize, usize, usize)>,
    count: usize,
}

impl<'a> Collection<'a> {
    fn new(encoder: &'a mut Encoder, len: Option<usize>, canonical: bool) -> Self {
        let count_at = match len {
            Some(len) => {
                encoder.varint(len as u128);
                None
            }
            None => Some(encoder.out.len()),
        };
        let start = encoder.out.len();
        Self {
            encoder,
            count_at,
            start,
            canonical,
            entries: Vec::new(),
            order: Vec::new(),
            in_order: true,
            current: None,
            count: 0,
        }
    }

    /// Starts an entry whose order is given by `first` (a map's key, a
    /// set's element), and writes `first`.
    fn begin<T: Serialize + ?Sized>(&mut self, first: &T) -> Result<(), EncodeError> {
        let start = self.encoder.out.len();
        let order_start = self.order.len();
        if self.canonical {
            order::write(first, &mut self.order)?;
        }
        self.current = Some((start, order_start, self.order.len()));
        first.serialize(&mut *self.encoder)
    }

    /// Ends the entry begun last.
    fn end_entry(&mut self) {
        self.count += 1;
        let Some((start, order_start, order_end)) = self.current.take() else {
            return;
        };
        if !self.canonical {
            return;
        }
        let entry = Entry {
            start,
            end: self.encoder.out.len(),
            order_start,
            order_end,
        };
        if let Some(last) = self.entries.last()
            && self.compare(last, &entry).is_gt()
        {
            self.in_order = false;
        }
        self.entries.push(entry);
    }

    /// Canonical order: by order key, then (for entries whose keys order
    /// alike, which equal maps never have) by their bytes, so the result
    /// never depends on the order entries came in.
    fn compare(&self, a: &Entry, b: &Entry) -> std::cmp::Ordering {
        let bytes = self.encoder.out.as_slice();
        self.order[a.order_start..a.order_end]
            .cmp(&self.order[b.order_start..b.order_end])
            .then_with(|| bytes[a.start..a.end].cmp(&bytes[b.start..b.end]))
    }

    fn finish(mut self) {
        if !self.in_order {
            let mut entries = std::mem::take(&mut self.entries);
            entries.sort_unstable_by(|a, b| self.compare(a, b));
            let written = self.encoder.out.split_off(self.start);
            for entry in &entries {
                let at = entry.start - self.start..entry.end - self.start;
                self.encoder.out.extend(&written[at]);
            }
        }
        if let Some(at) = self.count_at {
            self.encoder.insert_count(at, self.count);
        }
    }
}

impl ser::SerializeMap for Collection<'_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        self.begin(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut *self.encoder)?;
        self.end_entry();
        Ok(())
    }

    fn end(self) -> Result<(), EncodeError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeSeq for Collection<'_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.begin(value)?;
        self.end_entry();
        Ok(())
    }

    fn end(self) -> Result<(), EncodeError> {
        self.finish();
        Ok(())
    }
}

/// A sequence in the order given: a `Vec`'s order is part of its value.
pub(super) struct Ordered<'a> {
    encoder: &'a mut Encoder,
    count_at: Option<usize>,
    count: usize,
}

impl ser::SerializeSeq for Ordered<'_> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.count += 1;
        value.serialize(&mut *self.encoder)
    }

    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        if let Some(at) = self.count_at {
            self.encoder.insert_count(at, self.count);
        }
        Ok(())
    }
}

/// A sequence is written as given, or (a set) in canonical order.
pub(super) enum Seq<'a> {
    Ordered(Ordered<'a>),
    Set(Collection<'a>),
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        match self {
            Self::Ordered(seq) => seq.serialize_element(value),
            Self::Set(set) => set.serialize_element(value),
        }
    }

    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        match self {
            Self::Ordered(seq) => seq.end(),
            Self::Set(set) => ser::SerializeSeq::end(set),
        }
    }
}

/// Tuples, structs and their variants: fields one after the other.
macro_rules! fields {
    ($($trait:ident :: $method:ident $(($key:ty))?;)*) => {$(
        impl ser::$trait for &mut Encoder {
            type Ok = ();
            type Error = EncodeError;

            #[inline]
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $(_: $key,)?
                value: &T,
            ) -> Result<(), EncodeError> {
                value.serialize(&mut **self)
            }

            #[inline]
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

impl<'a> ser::Serializer for &'a mut Encoder {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Collection<'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    /// As postcard: types with two forms (addresses, times) take their
    /// compact one.
    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.out.push(u8::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.out.push(v.to_le_bytes()[0]);
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        self.zigzag(i128::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.zigzag(i128::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        self.zigzag(i128::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        self.zigzag(v);
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.out.push(v);
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.varint(u128::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.varint(u128::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        self.varint(u128::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        self.varint(v);
        Ok(())
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.out.extend(&canonical_f32(v).to_bits().to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        self.out.extend(&canonical_f64(v).to_bits().to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        self.len_prefixed(v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.len_prefixed(v.as_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        self.len_prefixed(v);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.out.push(0);
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.out.push(1);
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), EncodeError> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), EncodeError> {
        self.varint(u128::from(index));
        Ok(())
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.varint(u128::from(index));
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'a>, EncodeError> {
        let count_at = match len {
            Some(len) => {
                self.varint(len as u128);
                None
            }
            None => Some(self.out.len()),
        };
        Ok(Seq::Ordered(Ordered {
            encoder: self,
            count_at,
            count: 0,
        }))
    }

    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncodeError> {
        self.varint(u128::from(index));
        Ok(self)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Collection<'a>, EncodeError> {
        Ok(Collection::new(self, len, true))
    }

    #[inline]
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncodeError> {
        self.varint(u128::from(index));
        Ok(self)
    }

    fn collect_seq<I>(self, iter: I) -> Result<(), EncodeError>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let unordered = is_unordered::<I>();
        let iter = iter.into_iter();
        let len = exact_len(&iter);
        let mut seq = if unordered {
            Seq::Set(Collection::new(self, len, true))
        } else {
            self.serialize_seq(len)?
        };
        for item in iter {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }

    fn collect_map<K, V, I>(self, iter: I) -> Result<(), EncodeError>
    where
        K: Serialize,
        V: Serialize,
        I: IntoIterator<Item = (K, V)>,
    {
        let canonical = !is_btree_map::<I>();
        let iter = iter.into_iter();
        let len = exact_len(&iter);
        let mut map = Collection::new(self, len, canonical);
        for (key, value) in iter {
            map.serialize_entry(&key, &value)?;
        }
        ser::SerializeMap::end(map)
    }
}

/// The length an iterator promises exactly, as serde's own `collect_seq`
/// takes it.
fn exact_len<I: Iterator>(iter: &I) -> Option<usize> {
    match iter.size_hint() {
        (low, Some(high)) if low == high => Some(low),
        _ => None,
    }
}
