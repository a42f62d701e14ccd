//! Flask-Caching's low-level API on [`Cache`]: `get`, `set`, `add`,
//! `delete`, the batches, `has`, `inc`/`dec` and `clear`.

use std::sync::Arc;

use super::{Backend, Cache, ErasedValue};
use crate::bus::Invalidation;
use crate::config::Timeout;
use crate::deps::{RAW_SCOPE, scope_hash};
use crate::error::{Error, ErrorKind, Result};
use crate::key::KeyHash;
use crate::local::Entry;
use crate::value::CacheValue;

impl Cache {
    fn raw_key(&self, key: &str) -> KeyHash {
        let prefix = &self.inner.config.key_prefix;
        if prefix.is_empty() {
            KeyHash::of_str(key)
        } else {
            KeyHash::of_str(&format!("{prefix}{key}"))
        }
    }

    fn deadline(&self, timeout: Timeout) -> u64 {
        let lifetime = timeout.resolve(self.inner.config.default_timeout);
        self.inner.clock.deadline(lifetime)
    }

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
        match &self.inner.backend {
            Backend::Memory { raw } => {
                let hash = self.raw_key(key);
                self.record_raw(hash);
                Ok(raw
                    .get(&hash, self.inner.clock.now_ms())
                    .and_then(|v| v.downcast::<V>().ok()))
            }
            Backend::Null => Ok(None),
            Backend::Remote(store) => {
                // Another process's low-level writes reach no bus.
                crate::deps::record_untracked();
                match store.get(&self.full_key(key)).await {
                    Ok(bytes) => self.decode("get", bytes),
                    Err(error) => self.fault("get", error, None),
                }
            }
        }
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
        match &self.inner.backend {
            Backend::Memory { raw } => {
                let hash = self.raw_key(key);
                raw.insert(hash, Arc::new(value), self.deadline(timeout));
                self.bump_raw(hash);
                Ok(())
            }
            Backend::Null => Ok(()),
            Backend::Remote(_) => self
                .store_value(&self.full_key(key), &value, self.lifetime(timeout))
                .await
                .or_else(|error| self.fault("set", error, ())),
        }
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
        match &self.inner.backend {
            Backend::Memory { raw } => {
                let hash = self.raw_key(key);
                let added = raw.insert_if_absent(
                    hash,
                    Arc::new(value),
                    self.deadline(timeout),
                    self.inner.clock.now_ms(),
                );
                if added {
                    self.bump_raw(hash);
                }
                Ok(added)
            }
            // Flask-Caching's NullCache says yes to everything it drops.
            Backend::Null => Ok(true),
            Backend::Remote(store) => {
                let result = match self.encode_value(&value) {
                    Ok(bytes) => {
                        store
                            .add(&self.full_key(key), &bytes, self.lifetime(timeout))
                            .await
                    }
                    Err(error) => Err(error),
                };
                result.or_else(|error| self.fault("add", error, false))
            }
        }
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
        match &self.inner.backend {
            Backend::Memory { raw } => {
                let hash = self.raw_key(key);
                let removed = raw.remove(&hash);
                self.bump_raw(hash);
                Ok(removed)
            }
            Backend::Null => Ok(false),
            Backend::Remote(store) => store
                .delete(&self.full_key(key))
                .await
                .or_else(|error| self.fault("delete", error, false)),
        }
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
        if let Backend::Remote(store) = &self.inner.backend {
            let full: Vec<String> = keys.iter().map(|k| self.full_key(k)).collect();
            return match store.get_many(&full).await {
                Ok(found) => found
                    .into_iter()
                    .map(|bytes| self.decode("get_many", bytes))
                    .collect(),
                Err(error) => self.fault("get_many", error, vec![None; keys.len()]),
            };
        }
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get::<V>(key).await?);
        }
        Ok(values)
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
        if let Backend::Remote(store) = &self.inner.backend {
            let encoded: Result<Vec<(String, Vec<u8>)>> = pairs
                .into_iter()
                .map(|(k, v)| Ok((self.full_key(k.as_ref()), self.encode_value(&v)?)))
                .collect();
            let result = match encoded {
                Ok(encoded) => store.set_many(&encoded, self.lifetime(timeout)).await,
                Err(error) => Err(error),
            };
            return result.or_else(|error| self.fault("set_many", error, ()));
        }
        for (key, value) in pairs {
            self.set(key.as_ref(), value, timeout).await?;
        }
        Ok(())
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
        if let Backend::Remote(store) = &self.inner.backend {
            let full: Vec<String> = keys.iter().map(|k| self.full_key(k)).collect();
            return store
                .delete_many(&full)
                .await
                .or_else(|error| self.fault("delete_many", error, 0));
        }
        let mut removed = 0;
        for key in keys {
            removed += usize::from(self.delete(key).await?);
        }
        Ok(removed)
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
        match &self.inner.backend {
            Backend::Memory { raw } => {
                let hash = self.raw_key(key);
                self.record_raw(hash);
                Ok(raw.get(&hash, self.inner.clock.now_ms()).is_some())
            }
            Backend::Null => Ok(false),
            Backend::Remote(store) => store
                .has(&self.full_key(key))
                .await
                .or_else(|error| self.fault("has", error, false)),
        }
    }

    /// Adds `delta` to the integer under `key` (a missing key counts as 0)
    /// and returns the new value; `None` when the store keeps nothing (or,
    /// failing open, could not be reached). Atomic, also across processes
    /// on shared stores. In memory the value keeps its timeout and a new
    /// key gets the default one; remote stores keep counters without
    /// expiry unless [`Cache::set`] gave one.
    ///
    /// # Errors
    /// [`ErrorKind::NotANumber`] if `key` holds something other than an
    /// integer; store faults in strict mode.
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
        let raw = match &self.inner.backend {
            Backend::Memory { raw } => raw,
            Backend::Null => return Ok(None),
            Backend::Remote(store) => {
                return match store.incr(&self.full_key(key), delta).await {
                    Ok(n) => Ok(Some(n)),
                    Err(error) if error.kind() == ErrorKind::NotANumber => Err(error),
                    Err(error) => self.fault("inc", error, None),
                };
            }
        };
        let now = self.inner.clock.now_ms();
        let fresh_deadline = self.deadline(Timeout::Default);
        let hash = self.raw_key(key);
        let result = raw.update(hash, now, |old| {
            let (current, expires_at) = match old {
                None => (0, fresh_deadline),
                Some(entry) => match entry.value.downcast_ref::<i64>() {
                    Some(n) => (*n, entry.expires_at),
                    None => return (old.cloned(), Err(not_a_number(key))),
                },
            };
            let next = current.wrapping_add(delta);
            let entry = Entry {
                value: Arc::new(next) as ErasedValue,
                expires_at,
            };
            (Some(entry), Ok(Some(next)))
        });
        self.bump_raw(hash);
        result
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
        match &self.inner.backend {
            Backend::Memory { raw } => raw.clear(),
            Backend::Null => {}
            Backend::Remote(store) => {
                if let Err(error) = store.clear(&self.inner.config.key_prefix).await {
                    self.fault("clear", error, ())?;
                }
            }
        }
        for memo in self.inner.memo_controls() {
            memo.invalidate_everything();
        }
        self.inner.stamps.bump_all();
        self.publish(&Invalidation::Clear).await;
        Ok(())
    }

    fn record_raw(&self, hash: KeyHash) {
        crate::deps::record_key(&self.inner.stamps, scope_hash(RAW_SCOPE), hash.0, || true);
    }

    fn bump_raw(&self, hash: KeyHash) {
        self.inner.stamps.bump_key(scope_hash(RAW_SCOPE), hash.0);
    }
}

fn not_a_number(key: &str) -> Error {
    Error::new(
        ErrorKind::NotANumber,
        format!("cache key `{key}` holds a value that is not an i64"),
    )
}
