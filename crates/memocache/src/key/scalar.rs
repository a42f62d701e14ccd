//! The fast paths: a key that is one integer or one string (most ids and
//! names) is encoded here, byte for byte as the general encoder would,
//! without its machinery. The commonest (an integer, a string of up to 7
//! bytes) fit in a register: no buffer to zero, one store before hashing.

use serde::Serialize;

/// postcard's encoding of a lone integer or short string, on the stack.
pub(super) struct Scalar {
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
pub(super) struct NotScalar;

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
    pub(super) fn bytes(&self) -> &[u8] {
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
pub(super) struct Word {
    bytes: u128,
    len: usize,
}

impl Word {
    /// The encoded bytes, little-endian in a register, and how many.
    #[inline]
    pub(super) fn bytes(&self) -> ([u8; 16], usize) {
        (self.bytes.to_le_bytes(), self.len)
    }

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
pub(super) fn varint_word(mut n: u64) -> (u128, usize) {
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
