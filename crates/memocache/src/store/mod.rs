//! Shared stores that keep bytes: Redis, Memcached, the filesystem.
//!
//! A [`RemoteStore`] is the contract every shared backend implements; the
//! [`Cache`](crate::Cache) adds keys, the codec, fail-open handling and
//! counters on top, so a store only moves bytes. The conformance suite in
//! `tests/suite` runs the same behaviours against every implementation.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use std::sync::Arc;

use crate::config::StoreConfig;
use crate::error::{Error, ErrorKind};

/// Builds the shared store `config` names.
pub(crate) fn connect(config: &StoreConfig) -> Result<Arc<dyn RemoteStore>, Error> {
    Err(Error::new(
        ErrorKind::Unsupported,
        format!("this build of memocache has no store for {config:?}"),
    ))
}

/// A store that keeps encoded values under string keys, shared by every
/// process that points at it.
///
/// Keys arrive with the cache's prefix already applied. `ttl` of `None`
/// means the value never expires. Every method reports faults as
/// [`ErrorKind::Store`] errors; the cache decides whether they reach the
/// caller.
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
}

/// A store fault with its cause.
pub fn store_error(
    message: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
) -> Error {
    Error::new(ErrorKind::Store, message).with_source(source)
}
