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

use serde::Serialize;
use serde::ser::{self, SerializeMap as _, SerializeSeq as _};

use super::canon::{EncodeError, canonical_f32, canonical_f64, is_btree_map, is_unordered};
use super::order;
use super::scalar::varint_word;

/// Bytes kept on the stack before a key spills to the heap: a composite key
/// (a pair of an id and a short name, a small struct) fits.
const INLINE: usize = 64;

/// Encodes `key`, then hands its bytes to `finish` (they may live on the
/// stack).
pub(super) fn with_encoded<K, R>(key: &K, finish: impl FnOnce(&[u8]) -> R) -> Result<R, EncodeError>
where
    K: Serialize + ?Sized,
{
    let mut encoder = Encoder::default();
    let encoded = key.serialize(&mut encoder);
    if let Some(scratch) = encoder.scratch.take() {
        scratch.give_back();
    }
    encoded?;
    Ok(finish(encoder.out.as_slice()))
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
        match (&self.heap, self.inline.get_mut(self.len)) {
            (None, Some(slot)) => {
                *slot = byte;
                self.len += 1;
            }
            _ => self.extend(&[byte]),
        }
    }

    /// Appends the first `width` bytes of `word` (little-endian): on the
    /// stack, one 16-byte store, without a variable-length copy.
    #[inline]
    fn put_word(&mut self, word: u128, width: usize) {
        if self.heap.is_none()
            && let Some(slot) = self.inline.get_mut(self.len..self.len + 16)
        {
            slot.copy_from_slice(&word.to_le_bytes());
            self.len += width;
            return;
        }
        self.extend(&word.to_le_bytes()[..width]);
    }

    /// Everything from `start` on.
    fn tail(&self, start: usize) -> &[u8] {
        &self.as_slice()[start..]
    }

    fn truncate(&mut self, len: usize) {
        match &mut self.heap {
            Some(heap) => heap.truncate(len),
            None => self.len = self.len.min(len),
        }
    }
}

#[derive(Default)]
struct Encoder {
    out: Out,
    /// Scratch shared by the maps and sets being written, nested ones
    /// after their parents' (each takes back what it added when it ends),
    /// so a key allocates them once, not once per collection.
    /// (`None` until a key needs it: most have no map.)
    scratch: Option<Scratch>,
}

thread_local! {
    /// The last key's scratch, kept for the next one on this thread: a key
    /// with a map then needs no allocation (measured: a third of the cost
    /// of a `HashMap` key of three entries went to `malloc` and `free`).
    static SPARE: std::cell::Cell<Option<Scratch>> = const { std::cell::Cell::new(None) };
}

/// The most scratch a thread keeps between keys.
const SPARE_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Scratch {
    /// The entries of the collections being written.
    entries: Vec<Entry>,
    /// Their order keys, one after the other.
    order: Vec<u8>,
    /// Bytes being moved (entries put in order, a count put in front).
    moved: Vec<u8>,
}

impl Scratch {
    /// This thread's spare scratch, or a new one.
    fn take_spare() -> Self {
        SPARE.with(std::cell::Cell::take).unwrap_or_default()
    }

    /// Leaves this scratch, emptied, for the thread's next key (unless it
    /// grew past [`SPARE_BYTES`]).
    fn give_back(mut self) {
        let bytes = self.order.capacity()
            + self.moved.capacity()
            + self.entries.capacity() * std::mem::size_of::<Entry>();
        if bytes <= SPARE_BYTES {
            self.entries.clear();
            self.order.clear();
            self.moved.clear();
            SPARE.with(|cell| cell.set(Some(self)));
        }
    }
}

impl Encoder {
    #[inline]
    fn varint(&mut self, n: u64) {
        match u8::try_from(n) {
            // Lengths, counts, variant indexes and small ids: one byte.
            Ok(byte) if byte < 0x80 => self.out.push(byte),
            _ => {
                let (word, width) = varint_word(n);
                self.out.put_word(word, width);
            }
        }
    }

    /// Writes a collection's length when it is known; else returns where
    /// the count goes once the collection ends.
    #[inline]
    fn count(&mut self, len: Option<usize>) -> Option<usize> {
        match len {
            Some(len) => {
                self.varint(len as u64);
                None
            }
            None => Some(self.out.len()),
        }
    }

    /// A varint of up to 19 bytes, for 128-bit integers.
    fn varint128(&mut self, mut n: u128) {
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
    fn zigzag(&mut self, n: i64) {
        self.varint(((n << 1) ^ (n >> 63)) as u64);
    }

    #[inline]
    fn len_prefixed(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.out.extend(bytes);
    }

    /// The scratch of maps and sets, taken when the first one starts.
    fn scratch(&mut self) -> &mut Scratch {
        self.scratch.get_or_insert_with(Scratch::take_spare)
    }

    /// Writes `count` before the bytes written since `start`.
    fn insert_count(&mut self, start: usize, count: usize) {
        let mut moved = std::mem::take(&mut self.scratch().moved);
        moved.clear();
        moved.extend_from_slice(self.out.tail(start));
        self.out.truncate(start);
        self.varint(count as u64);
        self.out.extend(&moved);
        self.scratch().moved = moved;
    }
}

/// One entry of a map or element of a set, while its collection is written.
struct Entry {
    /// Its encoding: `start..end` of the output.
    start: usize,
    end: usize,
    /// Its order key: `order_start..order_end` of the scratch `order`.
    order_start: usize,
    order_end: usize,
}

/// A map or set being written: its entries go to the output as they come,
/// and are put in canonical order when it ends (nothing moves when they
/// came in order).
pub(super) struct Collection<'a> {
    encoder: &'a mut Encoder,
    /// Where the count goes when it was not known up front, else `None`.
    count_at: Option<usize>,
    /// Where the first entry starts.
    start: usize,
    /// Where this collection's entries and order keys start in the scratch.
    entries_base: usize,
    order_base: usize,
    /// Whether the entries so far came in canonical order.
    in_order: bool,
    /// The current entry's start and order key (maps: between key and
    /// value).
    current: Option<(usize, usize, usize)>,
    count: usize,
}

impl<'a> Collection<'a> {
    fn new(encoder: &'a mut Encoder, len: Option<usize>) -> Self {
        let count_at = encoder.count(len);
        let start = encoder.out.len();
        let scratch = encoder.scratch();
        // Room for the usual small map at once (order keys of ids and
        // short names), rather than growing entry by entry.
        let expected = len.unwrap_or(4);
        scratch.entries.reserve(expected);
        scratch.order.reserve(24 * expected);
        Self {
            count_at,
            start,
            entries_base: scratch.entries.len(),
            order_base: scratch.order.len(),
            encoder,
            in_order: true,
            current: None,
            count: 0,
        }
    }

    /// Starts an entry whose order is given by `first` (a map's key, a
    /// set's element), and writes `first`.
    fn begin<T: Serialize + ?Sized>(&mut self, first: &T) -> Result<(), EncodeError> {
        let start = self.encoder.out.len();
        let order = &mut self.encoder.scratch().order;
        let order_start = order.len();
        order::write(first, order)?;
        self.current = Some((start, order_start, order.len()));
        first.serialize(&mut *self.encoder)
    }

    /// Ends the entry begun last.
    fn end_entry(&mut self) {
        self.count += 1;
        let Some((start, order_start, order_end)) = self.current.take() else {
            return;
        };
        let entry = Entry {
            start,
            end: self.encoder.out.len(),
            order_start,
            order_end,
        };
        let Encoder { out, scratch } = &mut *self.encoder;
        let Scratch { entries, order, .. } = scratch.get_or_insert_with(Scratch::take_spare);
        if entries.len() > self.entries_base
            && let Some(last) = entries.last()
            && compare(out, order, last, &entry).is_gt()
        {
            self.in_order = false;
        }
        entries.push(entry);
    }

    fn finish(self) {
        let Encoder { out, scratch } = &mut *self.encoder;
        let Scratch {
            entries,
            order,
            moved,
        } = scratch.get_or_insert_with(Scratch::take_spare);
        if !self.in_order {
            let mine = &mut entries[self.entries_base..];
            mine.sort_unstable_by(|a, b| compare(out, order, a, b));
            moved.clear();
            moved.extend_from_slice(out.tail(self.start));
            out.truncate(self.start);
            for entry in mine.iter() {
                out.extend(&moved[entry.start - self.start..entry.end - self.start]);
            }
        }
        entries.truncate(self.entries_base);
        order.truncate(self.order_base);
        if let Some(at) = self.count_at {
            self.encoder.insert_count(at, self.count);
        }
    }
}

/// Canonical order: by order key, then (for entries whose keys order
/// alike, which equal maps never have) by their bytes, so the result never
/// depends on the order entries came in.
fn compare(out: &Out, order: &[u8], a: &Entry, b: &Entry) -> std::cmp::Ordering {
    let bytes = out.as_slice();
    order[a.order_start..a.order_end]
        .cmp(&order[b.order_start..b.order_end])
        .then_with(|| bytes[a.start..a.end].cmp(&bytes[b.start..b.end]))
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

/// A sequence or map in the order given: a `Vec`'s order is part of its
/// value, and a `BTreeMap`'s entries come in order.
pub(super) struct Ordered<'a> {
    encoder: &'a mut Encoder,
    count_at: Option<usize>,
    count: usize,
}

impl<'a> Ordered<'a> {
    #[inline]
    fn new(encoder: &'a mut Encoder, len: Option<usize>) -> Self {
        let count_at = encoder.count(len);
        Self {
            encoder,
            count_at,
            count: 0,
        }
    }

    #[inline]
    fn finish(self) {
        if let Some(at) = self.count_at {
            self.encoder.insert_count(at, self.count);
        }
    }
}

impl ser::SerializeMap for Ordered<'_> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        self.count += 1;
        key.serialize(&mut *self.encoder)
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut *self.encoder)
    }

    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        self.finish();
        Ok(())
    }
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
        self.finish();
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
            Self::Ordered(seq) => ser::SerializeSeq::end(seq),
            Self::Set(set) => ser::SerializeSeq::end(set),
        }
    }
}

/// A map is written in canonical order, or (a `BTreeMap`) as given.
pub(super) enum Map<'a> {
    Ordered(Ordered<'a>),
    Canonical(Collection<'a>),
}

impl ser::SerializeMap for Map<'_> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        match self {
            Self::Ordered(map) => map.serialize_key(key),
            Self::Canonical(map) => map.serialize_key(key),
        }
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        match self {
            Self::Ordered(map) => map.serialize_value(value),
            Self::Canonical(map) => map.serialize_value(value),
        }
    }

    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        match self {
            Self::Ordered(map) => ser::SerializeMap::end(map),
            Self::Canonical(map) => ser::SerializeMap::end(map),
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
    type SerializeMap = Map<'a>;
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
        self.zigzag(i64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.zigzag(i64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        self.zigzag(v);
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        self.varint128(((v << 1) ^ (v >> 127)) as u128);
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.out.push(v);
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.varint(u64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.varint(u64::from(v));
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        self.varint(v);
        Ok(())
    }

    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        self.varint128(v);
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
        self.varint(u64::from(index));
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
        self.varint(u64::from(index));
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'a>, EncodeError> {
        Ok(Seq::Ordered(Ordered::new(self, len)))
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
        self.varint(u64::from(index));
        Ok(self)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Map<'a>, EncodeError> {
        Ok(Map::Canonical(Collection::new(self, len)))
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
        self.varint(u64::from(index));
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
            Seq::Set(Collection::new(self, len))
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
        let iter = iter.into_iter();
        let len = exact_len(&iter);
        let mut map = if is_btree_map::<I>() {
            Map::Ordered(Ordered::new(self, len))
        } else {
            Map::Canonical(Collection::new(self, len))
        };
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
