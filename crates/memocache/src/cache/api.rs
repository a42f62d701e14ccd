//! Flask-Caching's low-level API on [`Cache`]: `get`, `set`, `add`,
//! `delete`, the batches, `has`, `inc`/`dec` and `clear`.

use std::sync::Arc;

use super::Cache;
use crate::bus::Invalidation;
use crate::config::Timeout;
use crate::error::Result;
use crate::value::CacheValue;

impl Cache {
    /// The value under `key`, if present, unexpired and of type `V`.
    ///
    /// # Errors
    /// Store faults, in strict mode only.
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// cache.set("name", "ada".to_owned(), Timeout::Default).await?;
    /// let name = cache.get::<String>("name").await?;
    /// assert_eq!(name.as_deref().map(String::as_str), Some("ada"));
    /// assert!(cache.get::<u64>("name").await?.is_none()); // another type: a miss
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn get<V: CacheValue>(&self, key: &str) -> Result<Option<Arc<V>>> {
        self.get_raw(key).await
    }

    /// Stores `value` under `key` for `timeout`.
    ///
    /// # Errors
    /// Store faults and values over the size limit, in strict mode only.
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// cache.set("answer", 42_u32, Timeout::secs(60)).await?;
    /// assert_eq!(cache.get::<u32>("answer").await?.as_deref(), Some(&42));
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn set<V: CacheValue>(&self, key: &str, value: V, timeout: Timeout) -> Result<()> {
        self.set_raw(key, value, timeout).await
    }

    /// Stores `value` only if `key` holds no live value; true if stored.
    ///
    /// # Errors
    /// Store faults, in strict mode only.
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// assert!(cache.add("lock", 1_u8, Timeout::secs(10)).await?);
    /// assert!(!cache.add("lock", 2_u8, Timeout::secs(10)).await?); // already held
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn add<V: CacheValue>(&self, key: &str, value: V, timeout: Timeout) -> Result<bool> {
        self.add_raw(key, value, timeout).await
    }

    /// Removes `key`; true if a live value was there.
    ///
    /// # Errors
    /// Store faults, in strict mode only.
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// cache.set("k", 1_u8, Timeout::Default).await?;
    /// assert!(cache.delete("k").await?);
    /// assert!(!cache.delete("k").await?);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.delete_raw(key).await
    }

    /// The values under `keys`, in order (one round trip on stores that
    /// batch).
    ///
    /// # Errors
    /// Store faults, in strict mode only.
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// cache.set("a", 1_u32, Timeout::Default).await?;
    /// let values = cache.get_many::<u32>(&["a", "b"]).await?;
    /// assert_eq!(values[0].as_deref(), Some(&1));
    /// assert!(values[1].is_none());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn get_many<V: CacheValue>(&self, keys: &[&str]) -> Result<Vec<Option<Arc<V>>>> {
        self.get_many_raw(keys).await
    }

    /// Stores every pair for `timeout` (pipelined on stores that batch).
    ///
    /// # Errors
    /// Store faults, in strict mode only.
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// cache.set_many([("x", 1_u32), ("y", 2)], Timeout::Default).await?;
    /// assert_eq!(cache.get::<u32>("y").await?.as_deref(), Some(&2));
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn set_many<V: CacheValue>(
        &self,
        pairs: impl IntoIterator<Item = (impl AsRef<str>, V)>,
        timeout: Timeout,
    ) -> Result<()> {
        self.set_many_raw(pairs, timeout).await
    }

    /// Removes every key; returns how many held a value.
    ///
    /// # Errors
    /// Store faults, in strict mode only.
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// cache.set("x", 1_u8, Timeout::Default).await?;
    /// assert_eq!(cache.delete_many(&["x", "never-set"]).await?, 1);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        self.delete_many_raw(keys).await
    }

    /// True if `key` holds a live value (of any type).
    ///
    /// # Errors
    /// Store faults, in strict mode only.
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// cache.set("k", (), Timeout::Default).await?;
    /// assert!(cache.has("k").await?);
    /// assert!(!cache.has("other").await?);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn has(&self, key: &str) -> Result<bool> {
        self.has_raw(key).await
    }

    /// Adds `delta` to the integer under `key` (a missing key counts as 0)
    /// and returns the new value; `None` when the store keeps nothing (or,
    /// failing open, could not be reached). Atomic, also across processes
    /// on shared stores. In memory the value keeps its timeout and a new
    /// key gets the default one; remote stores keep counters without
    /// expiry unless [`Cache::set`] gave one.
    ///
    /// # Errors
    /// [`ErrorKind::NotANumber`](crate::ErrorKind::NotANumber) if `key`
    /// holds something other than an integer; store faults in strict mode.
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// assert_eq!(cache.inc("hits", 1).await?, Some(1));
    /// assert_eq!(cache.inc("hits", 5).await?, Some(6));
    /// cache.set("name", "ada".to_owned(), Timeout::Default).await?;
    /// assert!(cache.inc("name", 1).await.is_err()); // not a number
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn inc(&self, key: &str, delta: i64) -> Result<Option<i64>> {
        self.inc_raw(key, delta).await
    }

    /// Subtracts `delta`; see [`Cache::inc`].
    ///
    /// # Errors
    /// As [`Cache::inc`].
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// cache.inc("stock", 10).await?;
    /// assert_eq!(cache.dec("stock", 3).await?, Some(7));
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn dec(&self, key: &str, delta: i64) -> Result<Option<i64>> {
        self.inc(key, delta.wrapping_neg()).await
    }

    /// Removes every value of this cache, memoized ones included. On a
    /// shared store only keys under this cache's prefix go.
    ///
    /// # Errors
    /// Store faults, in strict mode only.
    ///
    /// ```
    /// use memocache::Timeout;
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// cache.set("k", 1_u8, Timeout::Default).await?;
    /// cache.clear().await?;
    /// assert!(!cache.has("k").await?);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn clear(&self) -> Result<()> {
        self.clear_raw().await?;
        for memo in self.inner.memo_controls() {
            memo.invalidate_everything();
        }
        self.inner.stamps.bump_all();
        // A process that misses it and keeps hearing the bus keeps its L1:
        // `clear` is an operator's tool, not part of a write (writes go
        // through memos and, for durability, `crate::outbox`).
        let _ = self.publish(&Invalidation::Clear).await;
        Ok(())
    }
}
