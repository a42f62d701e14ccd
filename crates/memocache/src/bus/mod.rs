//! The invalidation bus of a tiered cache.
//!
//! In tiered mode every process keeps an in-process L1 in front of a shared
//! L2. `forget`, `forget_all` and `clear` change L2, evict the local L1 and
//! publish an [`Invalidation`]; every other process evicts its L1 when the
//! message arrives.
//!
//! # The staleness bound
//!
//! A bus promises two things, which together make invalidation synchronous:
//!
//! - **Trust expires.** A process trusts its L1 only until
//!   `t + heartbeat` where `t` is when it last *asked* the bus for news and
//!   got a complete answer. A dead subscription, a lost connection or a gap
//!   it cannot replay stops the renewals, so within one heartbeat the
//!   process reads through to L2 (and on a gap it clears its L1).
//! - **Publishing waits.** [`Bus::publish`] returns once every live process
//!   acknowledged the message, or once one heartbeat has passed, whichever
//!   is first. A process that did not acknowledge has by then stopped
//!   trusting its L1.
//!
//! So once `forget` returns, no process of the fleet serves the old value
//! from its L1: stale reads are bounded by zero after the invalidation
//! returns, and an invalidation takes at most one heartbeat to return when
//! a process is unreachable (milliseconds otherwise). L1 entries also never
//! outlive their L2 timeout.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::breaker::{BreakerConfig, BreakerStats};
use crate::config::StoreConfig;
use crate::error::{Error, ErrorKind};

#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisBus;

/// Builds the invalidation bus that goes with the shared store `config`
/// names (Redis Streams for Redis, one stream on one slot for Redis
/// Cluster); `heartbeat` overrides the bus's default.
pub(crate) fn connect(
    config: &StoreConfig,
    prefix: &str,
    breaker: BreakerConfig,
    heartbeat: Option<std::time::Duration>,
) -> Result<std::sync::Arc<dyn Bus>, Error> {
    match config {
        #[cfg(feature = "redis")]
        StoreConfig::Redis { .. }
        | StoreConfig::RedisCluster { .. }
        | StoreConfig::RedisSentinel { .. } => Ok(std::sync::Arc::new(redis_bus(
            config, prefix, breaker, heartbeat,
        )?)),
        other => {
            let _ = (prefix, breaker, heartbeat);
            Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "no invalidation bus for {other:?}: a tiered cache needs Redis, Redis \
                     Cluster or Redis Sentinel behind it (feature `redis`)"
                ),
            ))
        }
    }
}

/// The Redis bus of a Redis or Redis Cluster store. `config.rs` took
/// memocache's options off the URLs: the heartbeat comes typed.
#[cfg(feature = "redis")]
fn redis_bus(
    config: &StoreConfig,
    prefix: &str,
    breaker: BreakerConfig,
    heartbeat: Option<std::time::Duration>,
) -> Result<RedisBus, Error> {
    let bus = match config {
        StoreConfig::RedisCluster { nodes, .. } => RedisBus::cluster(nodes, prefix)?,
        StoreConfig::Redis { url, .. } => RedisBus::single(url, prefix)?,
        StoreConfig::RedisSentinel {
            sentinels,
            master,
            master_url,
            ..
        } => RedisBus::sentinel(sentinels, master, master_url, prefix)?,
        other => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("no Redis bus for {other:?}"),
            ));
        }
    }
    .with_breaker(breaker);
    Ok(match heartbeat {
        Some(heartbeat) => bus.with_heartbeat(heartbeat),
        None => bus,
    })
}

/// One invalidation, as it travels between processes.
///
/// ```
/// use memocache::bus::Invalidation;
/// let forget_all = Invalidation::Memo { memo: "all_messages".into(), version: 8 };
/// assert_ne!(forget_all, Invalidation::Clear);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Invalidation {
    /// One memoized value: `forget(key)`.
    Key {
        /// The memo's name.
        memo: String,
        /// The memo version the key was stored under.
        version: u64,
        /// The stable hash of the key arguments.
        hash: u128,
    },
    /// Every value of a memo: `forget_all()`; `version` is the new version.
    Memo {
        /// The memo's name.
        memo: String,
        /// The version after the bump.
        version: u64,
    },
    /// Everything: `clear()`.
    Clear,
}

/// What a bus delivers to: the cache of this process. Implemented by
/// memocache for each tiered cache; a custom [`Bus`] only calls it.
///
/// ```
/// use memocache::bus::{BusSink, Invalidation};
/// /// What a bus's reader does with one delivered message.
/// fn deliver(sink: &dyn BusSink, message: &Invalidation) {
///     sink.apply(message);
///     sink.trust_until(sink.now_ms() + 2_000); // heard from the fleet: trust the L1 a while
/// }
/// ```
pub trait BusSink: Send + Sync + 'static {
    /// Applies another process's invalidation to this process's L1.
    fn apply(&self, invalidation: &Invalidation);
    /// The L1 may be trusted until `deadline_ms` on [`BusSink::now_ms`]'s
    /// clock.
    fn trust_until(&self, deadline_ms: u64);
    /// The bus lost track: stop trusting the L1 now, and clear it when
    /// messages may have been missed for good (`clear_l1`).
    fn distrust(&self, clear_l1: bool);
    /// The clock trust deadlines are measured on.
    fn now_ms(&self) -> u64;
}

/// A transport for invalidations between the processes of a fleet.
///
/// memocache ships [`RedisBus`] (feature `redis`);
/// [`Cache::tiered`](crate::Cache::tiered) takes any other.
///
/// ```
/// use std::sync::{Arc, Weak};
/// use memocache::{Cache, CacheConfig, Error, bus::{Bus, BusSink, Invalidation}, store::FileStore};
///
/// /// A bus for one process alone: nothing to tell, the L1 always trusted.
/// #[derive(Debug)]
/// struct Alone;
///
/// #[async_trait::async_trait]
/// impl Bus for Alone {
///     fn start(&self, sink: Weak<dyn BusSink>) {
///         if let Some(sink) = sink.upgrade() {
///             sink.trust_until(u64::MAX);
///         }
///     }
///     async fn publish(&self, _: &Invalidation) -> Result<(), Error> {
///         Ok(())
///     }
/// }
///
/// let dir = std::env::temp_dir().join("memocache-doc-bus");
/// let store = Arc::new(FileStore::open(&dir, 0)?);
/// # let runtime = tokio::runtime::Runtime::new().unwrap();
/// # let _guard = runtime.enter();
/// let cache = Cache::tiered(CacheConfig::default(), store, Arc::new(Alone), 1_000);
/// assert!(cache.l1_in_sync());
/// # Ok::<(), memocache::Error>(())
/// ```
#[async_trait]
pub trait Bus: Debug + Send + Sync + 'static {
    /// Starts delivering other processes' invalidations to `sink`. Called
    /// once, when the cache is built, from within a Tokio runtime or not:
    /// implementations start their own task or thread as they need.
    fn start(&self, sink: std::sync::Weak<dyn BusSink>);

    /// Sends `invalidation` to every other process and waits as described
    /// in the [module docs](self).
    ///
    /// # Errors
    /// The transport failed; the caller fails open (the invalidation still
    /// took effect locally and in L2, and processes that miss it stop
    /// trusting their L1 within one heartbeat).
    async fn publish(&self, invalidation: &Invalidation) -> Result<(), Error>;

    /// The bus's breaker, if it has one: open while `publish` skips the
    /// transport (after a timeout or a burst of failed connections), closed
    /// again once this process reads the bus (see [`crate::breaker`]).
    fn breaker_stats(&self) -> Option<BreakerStats> {
        None
    }
}

#[cfg(all(test, feature = "redis"))]
mod url_tests {
    use std::time::Duration;

    use crate::config::{CacheConfig, StoreConfig};

    /// `heartbeat_ms` and the breaker options of a cache URL reach the bus
    /// built from it.
    #[test]
    fn url_options_reach_the_bus() {
        for input in [
            "tiered+redis://127.0.0.1:1/0?heartbeat_ms=300&timeout_ms=50&breaker=off",
            "tiered+redis+cluster://127.0.0.1:1,127.0.0.1:2?heartbeat_ms=300&breaker=off",
        ] {
            let config = CacheConfig::from_url(input).expect(input);
            let StoreConfig::Tiered { l2, .. } = &config.store else {
                panic!("{input}: {config:?}");
            };
            let bus =
                super::redis_bus(l2, "p:", config.breaker, config.bus_heartbeat).expect(input);
            assert_eq!(bus.heartbeat(), Duration::from_millis(300), "{input}");
            assert!(
                super::Bus::breaker_stats(&bus).is_none(),
                "{input}: breaker=off"
            );
        }
    }
}
