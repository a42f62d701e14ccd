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
