//! What can be cached.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value a cache can hold: serializable (remote stores keep bytes), and
/// shareable between threads (the in-process tier hands out `Arc<V>`).
///
/// Implemented for every type that qualifies.
///
/// ```
/// use memocache::CacheValue;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Page { html: String }
///
/// fn cacheable<V: CacheValue>() {}
/// cacheable::<Page>();
/// cacheable::<Vec<(u64, String)>>();
/// ```
pub trait CacheValue: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> CacheValue for T {}

/// The bytes `value` encodes to in postcard, counted without being
/// written: what a value weighs by default in an in-process tier bounded
/// by bytes (0 if it cannot be encoded).
pub(crate) fn encoded_size<V: Serialize + ?Sized>(value: &V) -> u64 {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_or(0, |size: usize| size as u64)
}
