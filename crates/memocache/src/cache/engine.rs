//! The value path every caller of a cache shares, the low-level API and
//! memos alike: keys in the shared store, encoding and decoding, store
//! faults (fail-open or strict), lifetimes, a memo's lease calls, and the
//! work of each tier (memory, null, remote) behind the low-level API.

use std::sync::Arc;
use std::time::Duration;

use super::{Backend, Cache, ErasedValue};
use crate::codec;
use crate::config::Timeout;
use crate::deps::{RAW_SCOPE, scope_hash};
use crate::error::{Error, ErrorKind, Result};
use crate::key::KeyHash;
use crate::local::Entry;
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

    /// Encodes `value` (stamped `stamp`, see [`codec`]; 0 for none) and
    /// stores it under `full_key` in the shared store for `lifetime`.
    /// Without a shared store, does nothing. Faults are returned as they
    /// are: the caller decides (fail-open or strict).
    pub(crate) async fn store_value<V: CacheValue>(
        &self,
        full_key: &str,
        value: &V,
        lifetime: Option<Duration>,
        stamp: u64,
    ) -> Result<()> {
        let Some(store) = self.remote() else {
            return Ok(());
        };
        let bytes = self.encode_stamped(value, stamp)?;
        store.set(full_key, &bytes, lifetime).await
    }

    /// The bytes under `full_key` in the shared store and how long it keeps
    /// them (a memo's claim on a key); nothing without a shared store.
    /// Faults are returned as they are.
    pub(crate) async fn remote_get_with_ttl(
        &self,
        full_key: &str,
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>> {
        match self.remote() {
            Some(store) => store.get_with_ttl(full_key).await,
            None => Ok(None),
        }
    }

    /// Leases `full_key` in the shared store for one loader of the fleet
    /// (see [`RemoteStore::lease`](crate::store::RemoteStore::lease)); false
    /// without a shared store. Faults are returned as they are.
    pub(crate) async fn remote_lease(
        &self,
        full_key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<bool> {
        match self.remote() {
            Some(store) => store.lease(full_key, token, ttl).await,
            None => Ok(false),
        }
    }

    /// Whether there is a shared store behind the in-process tier.
    pub(crate) fn has_remote(&self) -> bool {
        self.remote().is_some()
    }

    /// The bytes under `full_key` in the shared store; nothing without
    /// one. Faults are returned as they are.
    pub(crate) async fn remote_get(&self, full_key: &str) -> Result<Option<Vec<u8>>> {
        match self.remote() {
            Some(store) => store.get(full_key).await,
            None => Ok(None),
        }
    }

    /// A memo's version and the value under it in one round trip (see
    /// [`RemoteStore::get_versioned`](crate::store::RemoteStore::get_versioned));
    /// `None` without a shared store. Faults are returned as they are.
    pub(crate) async fn remote_get_versioned(
        &self,
        version_key: &str,
        value_prefix: &str,
        value_suffix: &str,
        fallback_version: u64,
    ) -> Option<Result<(u64, Option<Vec<u8>>)>> {
        let store = self.remote()?;
        Some(
            store
                .get_versioned(version_key, value_prefix, value_suffix, fallback_version)
                .await,
        )
    }

    /// Adds `delta` to the counter under `full_key` in the shared store (a
    /// memo's version); `None` without one. Faults are returned as they
    /// are.
    pub(crate) async fn remote_incr(&self, full_key: &str, delta: i64) -> Option<Result<i64>> {
        let store = self.remote()?;
        Some(store.incr(full_key, delta).await)
    }

    /// Replaces the lease `token` on `full_key` with `bytes` (see
    /// [`RemoteStore::fill`](crate::store::RemoteStore::fill)): false if the
    /// lease is gone (an invalidation came) or there is no shared store.
    /// Faults are returned as they are.
    pub(crate) async fn remote_fill(
        &self,
        full_key: &str,
        token: &[u8],
        bytes: &[u8],
        lifetime: Option<Duration>,
    ) -> Result<bool> {
        match self.remote() {
            Some(store) => store.fill(full_key, token, bytes, lifetime).await,
            None => Ok(false),
        }
    }

    /// Removes `full_key` from the shared store; false without one. Faults
    /// are returned as they are.
    pub(crate) async fn remote_delete(&self, full_key: &str) -> Result<bool> {
        match self.remote() {
            Some(store) => store.delete(full_key).await,
            None => Ok(false),
        }
    }

    /// Encodes `value` for the shared store, within the size limit.
    pub(crate) fn encode_value<V: CacheValue>(&self, value: &V) -> Result<Vec<u8>> {
        codec::encode(value, self.inner.config.max_value_size)
    }

    /// [`Cache::encode_value`] stamped with a memo's source hash (see
    /// [`codec`]).
    pub(crate) fn encode_stamped<V: CacheValue>(&self, value: &V, stamp: u64) -> Result<Vec<u8>> {
        codec::encode_stamped(value, self.inner.config.max_value_size, stamp)
    }

    /// [`Cache::decode_value`] of a value stamped with a memo's source
    /// hash: bytes of another stamp are a miss.
    pub(crate) fn decode_stamped<V: CacheValue>(
        &self,
        bytes: &[u8],
        stamp: u64,
    ) -> Result<Option<V>> {
        codec::decode_stamped::<V>(bytes, self.inner.config.max_value_size, stamp)
    }

    /// Decodes bytes read from the shared store; `Ok(None)` for bytes that
    /// are not a `V` (another type under the key: a miss).
    pub(crate) fn decode_value<V: CacheValue>(&self, bytes: &[u8]) -> Result<Option<V>> {
        codec::decode::<V>(bytes, self.inner.config.max_value_size)
    }
}

/// The low-level API's work on each tier: `api.rs` keeps the public face
/// (and what every tier shares, such as `clear`'s memo and bus steps).
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

    /// [`Cache::get`] on each tier.
    pub(crate) async fn get_raw<V: CacheValue>(&self, key: &str) -> Result<Option<Arc<V>>> {
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

    /// [`Cache::set`] on each tier.
    pub(crate) async fn set_raw<V: CacheValue>(
        &self,
        key: &str,
        value: V,
        timeout: Timeout,
    ) -> Result<()> {
        match &self.inner.backend {
            Backend::Memory { raw } => {
                let hash = self.raw_key(key);
                let weight = raw_weight(raw, &value);
                let _ = raw.insert(hash, Arc::new(value), self.deadline(timeout), |_| weight);
                self.bump_raw(hash);
                Ok(())
            }
            Backend::Null => Ok(()),
            Backend::Remote(_) => self
                .store_value(&self.full_key(key), &value, self.lifetime(timeout), 0)
                .await
                .or_else(|error| self.fault("set", error, ())),
        }
    }

    /// [`Cache::add`] on each tier.
    pub(crate) async fn add_raw<V: CacheValue>(
        &self,
        key: &str,
        value: V,
        timeout: Timeout,
    ) -> Result<bool> {
        match &self.inner.backend {
            Backend::Memory { raw } => {
                let hash = self.raw_key(key);
                let weight = raw_weight(raw, &value);
                let added = raw.insert_if_absent(
                    hash,
                    Arc::new(value),
                    self.deadline(timeout),
                    self.inner.clock.now_ms(),
                    |_| weight,
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

    /// [`Cache::delete`] on each tier.
    pub(crate) async fn delete_raw(&self, key: &str) -> Result<bool> {
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

    /// [`Cache::get_many`]: one batch on a shared store, else key by key.
    pub(crate) async fn get_many_raw<V: CacheValue>(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<Arc<V>>>> {
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
            values.push(self.get_raw::<V>(key).await?);
        }
        Ok(values)
    }

    /// [`Cache::set_many`]: one batch on a shared store, else key by key.
    pub(crate) async fn set_many_raw<V: CacheValue>(
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
            self.set_raw(key.as_ref(), value, timeout).await?;
        }
        Ok(())
    }

    /// [`Cache::delete_many`]: one batch on a shared store, else key by key.
    pub(crate) async fn delete_many_raw(&self, keys: &[&str]) -> Result<usize> {
        if let Backend::Remote(store) = &self.inner.backend {
            let full: Vec<String> = keys.iter().map(|k| self.full_key(k)).collect();
            return store
                .delete_many(&full)
                .await
                .or_else(|error| self.fault("delete_many", error, 0));
        }
        let mut removed = 0;
        for key in keys {
            removed += usize::from(self.delete_raw(key).await?);
        }
        Ok(removed)
    }

    /// [`Cache::has`] on each tier.
    pub(crate) async fn has_raw(&self, key: &str) -> Result<bool> {
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

    /// [`Cache::inc`] on each tier.
    pub(crate) async fn inc_raw(&self, key: &str, delta: i64) -> Result<Option<i64>> {
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
        // A counter weighs what an `i64` encodes to at most.
        let result = raw.update(
            hash,
            now,
            |_| 10,
            |old| {
                let (current, expires_at) = match old {
                    None => (0, fresh_deadline),
                    Some(entry) => match entry.value.downcast_ref::<i64>() {
                        Some(n) => (*n, entry.expires_at),
                        None => return (None, Err(not_a_number(key))),
                    },
                };
                let next = current.wrapping_add(delta);
                let entry = Entry {
                    value: Arc::new(next) as ErasedValue,
                    expires_at,
                };
                (Some(entry), Ok(Some(next)))
            },
        );
        self.bump_raw(hash);
        result
    }

    /// [`Cache::clear`]'s part on each tier (the memos and the bus are
    /// the caller's).
    pub(crate) async fn clear_raw(&self) -> Result<()> {
        match &self.inner.backend {
            Backend::Memory { raw } => raw.clear(),
            Backend::Null => {}
            Backend::Remote(store) => {
                if let Err(error) = store.clear(&self.inner.config.key_prefix).await {
                    self.fault("clear", error, ())?;
                }
            }
        }
        Ok(())
    }

    fn record_raw(&self, hash: KeyHash) {
        crate::deps::record_key(&self.inner.stamps, scope_hash(RAW_SCOPE), hash.0, || true);
    }

    fn bump_raw(&self, hash: KeyHash) {
        self.inner.stamps.bump_key(scope_hash(RAW_SCOPE), hash.0);
    }
}

/// What `value` weighs in `raw` (asked before the value is erased; 0
/// when the table counts entries).
fn raw_weight<V: CacheValue>(raw: &crate::local::LocalTable<ErasedValue>, value: &V) -> u64 {
    if raw.weighs() {
        crate::value::encoded_size(value)
    } else {
        0
    }
}

fn not_a_number(key: &str) -> Error {
    Error::new(
        ErrorKind::NotANumber,
        format!("cache key `{key}` holds a value that is not an i64"),
    )
}
