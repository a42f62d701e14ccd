//! The value path every caller of a cache shares, the low-level API and
//! memos alike: keys in the shared store, encoding and decoding, store
//! faults (fail-open or strict), lifetimes.

use std::sync::Arc;
use std::time::Duration;

use super::Cache;
use crate::codec;
use crate::config::Timeout;
use crate::error::{Error, Result};
use crate::value::CacheValue;

impl Cache {
    /// `key` with the cache's prefix.
    pub(crate) fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.config.key_prefix)
    }

    /// Records a store fault; in strict mode returns it, else `fallback`.
    pub(crate) fn fault<T>(&self, operation: &str, error: Error, fallback: T) -> Result<T> {
        self.inner
            .faults
            .record(self.inner.clock.now_ms(), operation, &error);
        if self.inner.config.strict {
            Err(error)
        } else {
            Ok(fallback)
        }
    }

    /// The lifetime `timeout` gives under this cache's default.
    pub(crate) fn lifetime(&self, timeout: Timeout) -> Option<std::time::Duration> {
        timeout.resolve(self.inner.config.default_timeout)
    }

    pub(crate) fn decode<V: CacheValue>(
        &self,
        operation: &str,
        bytes: Option<Vec<u8>>,
    ) -> Result<Option<Arc<V>>> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        match self.decode_value::<V>(&bytes) {
            Ok(value) => Ok(value.map(Arc::new)),
            Err(error) => self.fault(operation, error, None),
        }
    }

    /// Encodes `value` and stores it under `full_key` in the shared store
    /// for `lifetime`. Without a shared store, does nothing. Faults are
    /// returned as they are: the caller decides (fail-open or strict).
    pub(crate) async fn store_value<V: CacheValue>(
        &self,
        full_key: &str,
        value: &V,
        lifetime: Option<Duration>,
    ) -> Result<()> {
        let Some(store) = self.remote() else {
            return Ok(());
        };
        let bytes = self.encode_value(value)?;
        store.set(full_key, &bytes, lifetime).await
    }

    /// Encodes `value` for the shared store, within the size limit.
    pub(crate) fn encode_value<V: CacheValue>(&self, value: &V) -> Result<Vec<u8>> {
        codec::encode(value, self.inner.config.max_value_size)
    }

    /// Decodes bytes read from the shared store; `Ok(None)` for bytes that
    /// are not a `V` (another type under the key: a miss).
    pub(crate) fn decode_value<V: CacheValue>(&self, bytes: &[u8]) -> Result<Option<V>> {
        codec::decode::<V>(bytes, self.inner.config.max_value_size)
    }
}
