//! How values are kept in remote stores.
//!
//! ```text
//! [0xC7 magic] [format 1] [type fingerprint: 8 bytes LE] [postcard payload]
//! ```
//!
//! The fingerprint hashes the value's type name and the field names of its
//! outermost struct (or the variant names of its outermost enum), so a value
//! written by a build whose type differs decodes as a miss, not as garbage.
//! Decoding is bounded by the configured maximum value size and only ever
//! builds plain data: unlike Flask-Caching's pickle, a writable cache cannot
//! make a reader execute code.
//!
//! Counters written by `inc` are plain decimal strings (so that Redis `INCR`
//! and Memcached `incr` work on them); `get::<i64>` reads those too.
//!
//! A memo built with a [source hash](crate::MemoBuilder::source_hash)
//! (`#[memoize]` gives one by default) stamps its values: the stamp is
//! folded into the fingerprint, so a value stored by another version of the
//! function's code decodes as a miss, exactly as a value of another type
//! does, and is replaced. Stamp 0 is no stamp: the bytes are those of an
//! unstamped value (and `i64`s stay decimal).

use std::any::Any;

use serde::Serialize;
use serde::de::{self, DeserializeOwned, Visitor};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, ErrorKind};

const MAGIC: u8 = 0xC7;
/// First byte of a lease: a fleet-wide claim to load a key.
const LEASE_MAGIC: u8 = 0xC8;
const FORMAT: u8 = 1;
const HEADER: usize = 10;

/// Encodes `value`, refusing values whose encoding exceeds `max_size`.
pub(crate) fn encode<V: Serialize + DeserializeOwned + 'static>(
    value: &V,
    max_size: usize,
) -> Result<Vec<u8>, Error> {
    encode_stamped(value, max_size, 0)
}

/// [`encode`] with a source stamp (see the module docs; 0: none).
pub(crate) fn encode_stamped<V: Serialize + DeserializeOwned + 'static>(
    value: &V,
    max_size: usize,
    stamp: u64,
) -> Result<Vec<u8>, Error> {
    // Integers are kept as decimal text, so `inc` works on a value `set`;
    // a stamped value needs the envelope to carry its stamp.
    if let (0, Some(n)) = (stamp, (value as &dyn Any).downcast_ref::<i64>()) {
        return Ok(n.to_string().into_bytes());
    }
    let mut bytes = Vec::with_capacity(64);
    bytes.push(MAGIC);
    bytes.push(FORMAT);
    bytes.extend_from_slice(&(fingerprint::<V>() ^ stamp).to_le_bytes());
    let bytes = postcard::to_extend(value, bytes)
        .map_err(|e| Error::new(ErrorKind::Codec, "cannot encode the value").with_source(e))?;
    if bytes.len() > max_size {
        return Err(Error::new(
            ErrorKind::Codec,
            format!(
                "encoded value is {} bytes, over the cache's limit of {max_size}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Decodes bytes written by [`encode`] (or a decimal counter for `i64`).
/// `Ok(None)` when the bytes are of another type or format: a miss.
pub(crate) fn decode<V: DeserializeOwned + 'static>(
    bytes: &[u8],
    max_size: usize,
) -> Result<Option<V>, Error> {
    decode_stamped(bytes, max_size, 0)
}

/// [`decode`] of a value stamped `stamp` (see the module docs): a value
/// with another stamp, or none, is a miss.
pub(crate) fn decode_stamped<V: DeserializeOwned + 'static>(
    bytes: &[u8],
    max_size: usize,
    stamp: u64,
) -> Result<Option<V>, Error> {
    if bytes.len() > max_size {
        return Err(Error::new(
            ErrorKind::Codec,
            format!(
                "stored value is {} bytes, over the limit of {max_size}",
                bytes.len()
            ),
        ));
    }
    if bytes.first() != Some(&MAGIC) {
        return Ok(if stamp == 0 {
            decode_counter::<V>(bytes)
        } else {
            None
        });
    }
    if bytes.len() < HEADER || bytes[1] != FORMAT {
        return Ok(None);
    }
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&bytes[2..HEADER]);
    if u64::from_le_bytes(stored) != fingerprint::<V>() ^ stamp {
        return Ok(None);
    }
    postcard::from_bytes(&bytes[HEADER..])
        .map(Some)
        .map_err(|e| Error::new(ErrorKind::Codec, "stored value does not decode").with_source(e))
}

/// A decimal counter as written by `inc`, if `V` is `i64`.
fn decode_counter<V: 'static>(bytes: &[u8]) -> Option<V> {
    let n: i64 = std::str::from_utf8(bytes).ok()?.trim().parse().ok()?;
    (Box::new(n) as Box<dyn Any>)
        .downcast::<V>()
        .ok()
        .map(|b| *b)
}

/// A fresh lease token: unique per process and call.
pub(crate) fn lease_token() -> Vec<u8> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{}:{nanos}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut token = vec![LEASE_MAGIC];
    token.extend_from_slice(&xxhash_rust::xxh3::xxh3_128(seed.as_bytes()).to_le_bytes());
    token
}

/// True for bytes that are a lease, not a value.
pub(crate) fn is_lease(bytes: &[u8]) -> bool {
    bytes.first() == Some(&LEASE_MAGIC)
}

/// Encodes a counter the way `inc` stores it.
#[cfg(test)]
pub(crate) fn encode_counter(n: i64) -> Vec<u8> {
    n.to_string().into_bytes()
}

#[cfg(test)]
mod integer_tests {
    #[test]
    fn i64_values_are_decimal_so_inc_applies() {
        let bytes = super::encode(&-7_i64, 64).expect("encode");
        assert_eq!(bytes, b"-7");
        assert_eq!(super::decode::<i64>(&bytes, 64).expect("decode"), Some(-7));
    }

    /// A value stored by another version of a function's code (another
    /// stamp, or none) is a miss; an `i64` is stamped too.
    #[test]
    fn a_value_of_another_stamp_is_a_miss() {
        use super::{decode_stamped, encode, encode_stamped};
        let old = encode_stamped(&"v1".to_owned(), 64, 7).expect("encode");
        assert_eq!(
            decode_stamped::<String>(&old, 64, 7)
                .expect("decode")
                .as_deref(),
            Some("v1")
        );
        assert_eq!(decode_stamped::<String>(&old, 64, 8).expect("decode"), None);
        assert_eq!(
            decode_stamped::<String>(&encode(&"v1".to_owned(), 64).expect("encode"), 64, 8)
                .expect("decode"),
            None
        );
        let counter = encode_stamped(&5_i64, 64, 7).expect("encode");
        assert_eq!(
            decode_stamped::<i64>(&counter, 64, 7).expect("decode"),
            Some(5)
        );
        assert_eq!(decode_stamped::<i64>(b"5", 64, 7).expect("decode"), None);
    }
}

/// A hash of `V`'s name and outermost shape.
pub(crate) fn fingerprint<V: DeserializeOwned>() -> u64 {
    let mut shape = String::from(std::any::type_name::<V>());
    let _ = V::deserialize(ShapeProbe { shape: &mut shape });
    xxh3_64(shape.as_bytes())
}

/// A deserializer that records what `V` asks for first (struct fields,
/// enum variants, or the primitive kind) and then stops.
struct ShapeProbe<'a> {
    shape: &'a mut String,
}

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("shape recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

macro_rules! record {
    ($($method:ident),*) => {
        $(fn $method<W: Visitor<'de>>(self, _: W) -> Result<W::Value, Stop> {
            self.shape.push_str(concat!("|", stringify!($method)));
            Err(Stop)
        })*
    };
}

impl<'de> de::Deserializer<'de> for ShapeProbe<'_> {
    type Error = Stop;

    record!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any
    );

    fn deserialize_unit_struct<W: Visitor<'de>>(
        self,
        name: &'static str,
        _: W,
    ) -> Result<W::Value, Stop> {
        self.shape.push_str(&format!("|unit {name}"));
        Err(Stop)
    }

    fn deserialize_newtype_struct<W: Visitor<'de>>(
        self,
        name: &'static str,
        _: W,
    ) -> Result<W::Value, Stop> {
        self.shape.push_str(&format!("|newtype {name}"));
        Err(Stop)
    }

    fn deserialize_tuple<W: Visitor<'de>>(self, len: usize, _: W) -> Result<W::Value, Stop> {
        self.shape.push_str(&format!("|tuple {len}"));
        Err(Stop)
    }

    fn deserialize_tuple_struct<W: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        _: W,
    ) -> Result<W::Value, Stop> {
        self.shape.push_str(&format!("|tuple {name} {len}"));
        Err(Stop)
    }

    fn deserialize_struct<W: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        _: W,
    ) -> Result<W::Value, Stop> {
        self.shape
            .push_str(&format!("|struct {name} {}", fields.join(",")));
        Err(Stop)
    }

    fn deserialize_enum<W: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        _: W,
    ) -> Result<W::Value, Stop> {
        self.shape
            .push_str(&format!("|enum {name} {}", variants.join(",")));
        Err(Stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const MAX: usize = 1 << 20;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V1 {
        id: u64,
        name: String,
    }

    mod changed {
        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        pub(super) struct V1 {
            pub(super) id: u64,
            pub(super) name: String,
            pub(super) email: String,
        }
    }

    #[test]
    fn round_trip() {
        let v = V1 {
            id: 7,
            name: "ada".into(),
        };
        let bytes = encode(&v, MAX).expect("encode");
        assert_eq!(decode::<V1>(&bytes, MAX).expect("decode"), Some(v));
    }

    #[test]
    fn another_type_or_shape_is_a_miss() {
        let bytes = encode(
            &V1 {
                id: 7,
                name: "ada".into(),
            },
            MAX,
        )
        .expect("encode");
        assert!(
            decode::<changed::V1>(&bytes, MAX)
                .expect("decode")
                .is_none()
        );
        assert!(decode::<String>(&bytes, MAX).expect("decode").is_none());
        assert_ne!(fingerprint::<V1>(), fingerprint::<changed::V1>());
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        let mut bytes = encode(
            &V1 {
                id: 7,
                name: "ada".into(),
            },
            MAX,
        )
        .expect("encode");
        bytes.truncate(bytes.len() - 2);
        assert_eq!(
            decode::<V1>(&bytes, MAX).expect_err("corrupt").kind(),
            ErrorKind::Codec
        );
        assert_eq!(decode::<V1>(b"garbage", MAX).expect("no magic"), None);
        assert_eq!(decode::<V1>(&[], MAX).expect("empty"), None);
    }

    #[test]
    fn size_limits_apply_both_ways() {
        let big = vec![0u8; 2_000];
        assert!(encode(&big, 1_000).is_err());
        let bytes = encode(&big, MAX).expect("encode");
        assert!(decode::<Vec<u8>>(&bytes, 1_000).is_err());
    }

    #[test]
    fn counters_are_decimal() {
        assert_eq!(
            decode::<i64>(&encode_counter(-42), MAX).expect("decode"),
            Some(-42)
        );
        assert_eq!(decode::<u64>(b"42", MAX).expect("decode"), None);
    }
}
