//! Shared stores that keep bytes: Redis, Memcached, the filesystem.
//!
//! A [`RemoteStore`] is the contract every shared backend implements; the
//! [`Cache`](crate::Cache) adds keys, the codec, fail-open handling and
//! counters on top, so a store only moves bytes. The conformance suite in
//! `tests/suite` runs the same behaviours against every implementation.

use std::fmt::Debug;
#[cfg(any(feature = "redis", feature = "memcached"))]
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use std::sync::Arc;

use crate::config::{RedisOptions, StoreConfig};
use crate::error::{Error, ErrorKind};

#[cfg(feature = "filesystem")]
mod file;
mod guarded;
#[cfg(feature = "memcached")]
mod memcached;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "filesystem")]
#[cfg_attr(docsrs, doc(cfg(feature = "filesystem")))]
pub use file::FileStore;
pub(crate) use guarded::BreakerStore;
#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub use memcached::MemcachedStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisStore;
#[cfg(feature = "redis")]
pub(crate) use redis::split_cluster_nodes;

/// Builds the shared store `config` names. Nothing is contacted here: the
/// stores connect on first use and reconnect on their own, so an
/// application starts even while its cache server is down. `key_prefix`
/// is the cache's: Memcached, which cannot list keys, clears it by
/// generation.
pub(crate) fn connect(
    config: &StoreConfig,
    key_prefix: &str,
) -> Result<Arc<dyn RemoteStore>, Error> {
    match config {
        StoreConfig::Redis { url, options } => redis_single(url, *options),
        StoreConfig::RedisCluster { nodes, options } => redis_cluster(nodes, *options),
        StoreConfig::RedisSentinel {
            sentinels,
            master,
            master_url,
            options,
        } => redis_sentinel(sentinels, master, master_url, *options, key_prefix),
        StoreConfig::Memcached { servers } => memcached(servers, key_prefix),
        StoreConfig::FileSystem { path, threshold } => file(path, *threshold),
        other => Err(Error::new(
            ErrorKind::Unsupported,
            format!("this build of memocache has no store for {other:?}"),
        )),
    }
}

#[cfg(feature = "redis")]
fn redis_single(url: &str, options: RedisOptions) -> Result<Arc<dyn RemoteStore>, Error> {
    Ok(Arc::new(RedisStore::with_options(url, options)?))
}

#[cfg(feature = "redis")]
fn redis_cluster(nodes: &[String], options: RedisOptions) -> Result<Arc<dyn RemoteStore>, Error> {
    Ok(Arc::new(RedisStore::cluster_with_options(nodes, options)?))
}

#[cfg(feature = "redis")]
fn redis_sentinel(
    sentinels: &[String],
    master: &str,
    master_url: &str,
    options: RedisOptions,
    key_prefix: &str,
) -> Result<Arc<dyn RemoteStore>, Error> {
    Ok(Arc::new(RedisStore::sentinel(
        sentinels, master, master_url, options, key_prefix,
    )?))
}

#[cfg(feature = "memcached")]
fn memcached(servers: &[String], namespace: &str) -> Result<Arc<dyn RemoteStore>, Error> {
    Ok(Arc::new(MemcachedStore::open(servers, namespace)?))
}

#[cfg(feature = "filesystem")]
fn file(path: &std::path::Path, threshold: usize) -> Result<Arc<dyn RemoteStore>, Error> {
    Ok(Arc::new(FileStore::open(path, threshold)?))
}

#[cfg(not(feature = "redis"))]
fn redis_single(_: &str, _: RedisOptions) -> Result<Arc<dyn RemoteStore>, Error> {
    Err(feature_off("redis", "Redis"))
}

#[cfg(not(feature = "redis"))]
fn redis_cluster(_: &[String], _: RedisOptions) -> Result<Arc<dyn RemoteStore>, Error> {
    Err(feature_off("redis", "Redis Cluster"))
}

#[cfg(not(feature = "redis"))]
fn redis_sentinel(
    _: &[String],
    _: &str,
    _: &str,
    _: RedisOptions,
    _: &str,
) -> Result<Arc<dyn RemoteStore>, Error> {
    Err(feature_off("redis", "Redis Sentinel"))
}

#[cfg(not(feature = "memcached"))]
fn memcached(_: &[String], _: &str) -> Result<Arc<dyn RemoteStore>, Error> {
    Err(feature_off("memcached", "Memcached"))
}

#[cfg(not(feature = "filesystem"))]
fn file(_: &std::path::Path, _: usize) -> Result<Arc<dyn RemoteStore>, Error> {
    Err(feature_off("filesystem", "filesystem"))
}

#[cfg(not(all(feature = "redis", feature = "memcached", feature = "filesystem")))]
fn feature_off(feature: &str, store: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "the {store} store needs memocache's cargo feature `{feature}`, \
             which this build leaves out"
        ),
    )
}

/// Bounds `operation` by `limit`: a dead or stalled server costs at most
/// that long per call.
#[cfg(any(feature = "redis", feature = "memcached"))]
async fn bounded<T>(
    what: &str,
    limit: Duration,
    operation: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, operation).await {
        Ok(result) => result,
        Err(elapsed) => Err(store_error(
            format!("{what}: no answer within {} ms", limit.as_millis()),
            elapsed,
        )
        .timed_out()),
    }
}

/// A store that keeps encoded values under string keys, shared by every
/// process that points at it.
///
/// Keys arrive with the cache's prefix already applied. `ttl` of `None`
/// means the value never expires. Every method reports faults as
/// [`ErrorKind::Store`] errors; the cache decides whether they reach the
/// caller.
///
/// Only `get`, `set`, `add`, `delete`, `incr` and `clear` are required; the
/// rest have defaults built on them (override `fill` with an atomic
/// compare-and-set if the store has one: the default compares, then sets).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use memocache::{Cache, CacheConfig, Error, ErrorKind, store::RemoteStore};
///
/// /// A toy store that ignores expiry.
/// #[derive(Debug, Default)]
/// struct MapStore(Mutex<HashMap<String, Vec<u8>>>);
///
/// #[async_trait::async_trait]
/// impl RemoteStore for MapStore {
///     async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
///         Ok(self.0.lock().unwrap().get(key).cloned())
///     }
///     async fn set(&self, key: &str, value: &[u8], _: Option<Duration>) -> Result<(), Error> {
///         self.0.lock().unwrap().insert(key.to_owned(), value.to_vec());
///         Ok(())
///     }
///     async fn add(&self, key: &str, value: &[u8], _: Option<Duration>) -> Result<bool, Error> {
///         let mut map = self.0.lock().unwrap();
///         if map.contains_key(key) { return Ok(false) }
///         map.insert(key.to_owned(), value.to_vec());
///         Ok(true)
///     }
///     async fn delete(&self, key: &str) -> Result<bool, Error> {
///         Ok(self.0.lock().unwrap().remove(key).is_some())
///     }
///     async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
///         let mut map = self.0.lock().unwrap();
///         let now: i64 = match map.get(key) {
///             None => 0,
///             Some(bytes) => std::str::from_utf8(bytes).ok().and_then(|t| t.parse().ok())
///                 .ok_or_else(|| Error::new(ErrorKind::NotANumber, "not a number"))?,
///         };
///         map.insert(key.to_owned(), (now + delta).to_string().into_bytes());
///         Ok(now + delta)
///     }
///     async fn clear(&self, prefix: &str) -> Result<(), Error> {
///         self.0.lock().unwrap().retain(|key, _| !key.starts_with(prefix));
///         Ok(())
///     }
/// }
///
/// let cache = Cache::with_store(CacheConfig::default(), Arc::new(MapStore::default()));
/// # futures::executor::block_on(async {
/// assert_eq!(cache.inc("visits", 2).await?, Some(2));
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait RemoteStore: Debug + Send + Sync + 'static {
    /// The bytes under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;

    /// The bytes under each key, in order. Stores with a batch command
    /// (Redis `MGET`, Memcached multi-get) override this.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }

    /// A memo's version (the integer under `version_key`, 0 if absent) and
    /// the bytes under `{value_prefix}{version}{value_suffix}`.
    ///
    /// `guess` is the version the caller expects (its last sighting): both
    /// keys are read in one batch (`MGET`), and only if the version moved on
    /// is the value read again under the right key. So a hit costs one
    /// round trip of a plain batch read, with no server-side script.
    async fn get_versioned(
        &self,
        version_key: &str,
        value_prefix: &str,
        value_suffix: &str,
        guess: u64,
    ) -> Result<(u64, Option<Vec<u8>>), Error> {
        versioned_by_parts(self, version_key, value_prefix, value_suffix, guess).await
    }

    /// Stores `value` under `key`.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error>;

    /// Stores every pair (pipelined where the store can).
    async fn set_many(
        &self,
        pairs: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        for (key, value) in pairs {
            self.set(key, value, ttl).await?;
        }
        Ok(())
    }

    /// Stores `value` only if `key` holds nothing; true if stored.
    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, Error>;

    /// The bytes under `key` and how long the store keeps them (`None` when
    /// forever or unknown). Redis answers both in one round trip; the
    /// default knows no expiry.
    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, Option<Duration>)>, Error> {
        Ok(self.get(key).await?.map(|bytes| (bytes, None)))
    }

    /// Claims `key` for one loader of the fleet: stores `token` there for
    /// `ttl` if the key holds nothing. True if this caller got the lease.
    async fn lease(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.add(key, token, Some(ttl)).await
    }

    /// Replaces the lease `token` under `key` with `value`. False, storing
    /// nothing, when the lease is gone: an invalidation deleted it while
    /// the value was loading, so the value may be stale. Redis does this
    /// atomically; the default compares, then sets.
    async fn fill(
        &self,
        key: &str,
        token: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        if self.get(key).await?.as_deref() != Some(token) {
            return Ok(false);
        }
        self.set(key, value, ttl).await?;
        Ok(true)
    }

    /// Removes `key`; true if it held a value.
    async fn delete(&self, key: &str) -> Result<bool, Error>;

    /// Removes every key; returns how many held a value.
    async fn delete_many(&self, keys: &[String]) -> Result<usize, Error> {
        let mut removed = 0;
        for key in keys {
            removed += usize::from(self.delete(key).await?);
        }
        Ok(removed)
    }

    /// True if `key` holds a value.
    async fn has(&self, key: &str) -> Result<bool, Error> {
        Ok(self.get(key).await?.is_some())
    }

    /// Atomically adds `delta` to the decimal integer under `key` (absent
    /// counts as 0, created without expiry) and returns the result.
    async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error>;

    /// Removes every key that starts with `prefix` (all keys if empty),
    /// and nothing else.
    async fn clear(&self, prefix: &str) -> Result<(), Error>;

    /// Checks that the store answers, for the breaker's probe (see
    /// [`crate::breaker`]). The default reads a key nobody writes; Redis
    /// sends `PING`.
    async fn ping(&self) -> Result<(), Error> {
        self.get("memocache:probe").await.map(drop)
    }

    /// The node of a sharded store that serves `key`, by a name stable
    /// while the node is (Redis Cluster: the `host:port` of the master
    /// owning the key's slot), so that each node gets a breaker of its own
    /// (see [`crate::breaker`]). `None` (the default) for a store on one
    /// server, or while the store does not know its nodes yet: the
    /// store-wide breaker covers the call.
    ///
    /// ```
    /// # use memocache::store::RemoteStore;
    /// let store = memocache::store::RedisStore::open("redis://127.0.0.1:1/")?;
    /// assert_eq!(store.node_of("any key"), None, "one server, one breaker");
    /// # Ok::<(), memocache::Error>(())
    /// ```
    fn node_of(&self, key: &str) -> Option<Arc<str>> {
        let _ = key;
        None
    }

    /// Checks that one node, named as [`RemoteStore::node_of`] names it,
    /// answers: the probe of that node's breaker. The default pings the
    /// store.
    async fn ping_node(&self, node: &str) -> Result<(), Error> {
        let _ = node;
        self.ping().await
    }
}

/// [`RemoteStore::get_versioned`] by the store's own `get_many` and `get`:
/// one batch for the version and the value under the guessed version, and
/// a second read only if the version moved on.
pub(crate) async fn versioned_by_parts<S: RemoteStore + ?Sized>(
    store: &S,
    version_key: &str,
    value_prefix: &str,
    value_suffix: &str,
    guess: u64,
) -> Result<(u64, Option<Vec<u8>>), Error> {
    let keys = [
        version_key.to_owned(),
        format!("{value_prefix}{guess}{value_suffix}"),
    ];
    let mut found = store.get_many(&keys).await?.into_iter();
    let version = parse_version(found.next().flatten().as_deref());
    if version == guess {
        return Ok((version, found.next().flatten()));
    }
    let value = store
        .get(&format!("{value_prefix}{version}{value_suffix}"))
        .await?;
    Ok((version, value))
}

/// A stored memo version: a decimal integer, 0 when absent or unreadable.
pub(crate) fn parse_version(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

#[cfg(any(feature = "redis", feature = "memcached", feature = "filesystem"))]
pub(crate) use crate::error::store_error;
