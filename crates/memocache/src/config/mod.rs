//! Cache configuration, from code or from a URL.
//!
//! The URL reference is on [`CacheConfig::from_url`], where rustdoc shows it.

use std::time::Duration;

use crate::breaker::BreakerConfig;
use crate::error::{Error, Result};

/// Flask-Caching's `CACHE_DEFAULT_TIMEOUT`.
///
/// ```
/// use memocache::{CacheConfig, DEFAULT_TIMEOUT};
/// assert_eq!(CacheConfig::default().default_timeout, Some(DEFAULT_TIMEOUT));
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Entries kept in memory when no capacity is given.
///
/// ```
/// use memocache::{CacheConfig, DEFAULT_CAPACITY, StoreConfig};
/// let config = CacheConfig::from_url("memory://")?;
/// assert_eq!(config.store, StoreConfig::Memory { capacity: DEFAULT_CAPACITY });
/// # Ok::<(), memocache::Error>(())
/// ```
pub const DEFAULT_CAPACITY: usize = 10_000;

/// How long a value lives.
///
/// ```
/// use std::time::Duration;
/// use memocache::{Cache, Timeout};
/// # futures::executor::block_on(async {
/// let cache = Cache::memory();
/// cache.set("a", 1_u32, Timeout::Default).await?; // the cache's default (300 s)
/// cache.set("b", 2_u32, Timeout::Never).await?;
/// cache.set("c", 3_u32, Duration::from_secs(5).into()).await?;
/// # Ok::<(), memocache::Error>(()) }).unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Timeout {
    /// The cache's default timeout.
    #[default]
    Default,
    /// Never expires (Flask-Caching's `timeout=0`).
    Never,
    /// Expires after this long. `Duration::ZERO` means never, as in
    /// Flask-Caching.
    After(Duration),
}

impl Timeout {
    /// Seconds, Flask-Caching style: `0` means never.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memocache::Timeout;
    /// assert_eq!(Timeout::secs(60), Timeout::After(Duration::from_secs(60)));
    /// ```
    pub fn secs(seconds: u64) -> Self {
        Self::After(Duration::from_secs(seconds))
    }

    /// The lifetime this timeout gives under `default`; `None` = forever.
    pub(crate) fn resolve(self, default: Option<Duration>) -> Option<Duration> {
        match self {
            Self::Default => default,
            Self::Never => None,
            Self::After(d) if d.is_zero() => None,
            Self::After(d) => Some(d),
        }
    }
}

impl From<Duration> for Timeout {
    fn from(d: Duration) -> Self {
        Self::After(d)
    }
}

/// Which store holds the values.
///
/// ```
/// use memocache::{CacheConfig, StoreConfig};
/// let config = CacheConfig::from_url("tiered+redis://127.0.0.1:6379/?l1_capacity=500")?;
/// match config.store {
///     StoreConfig::Tiered { l1_capacity, l2 } => {
///         assert_eq!(l1_capacity, 500);
///         assert!(matches!(*l2, StoreConfig::Redis { .. }));
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), memocache::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreConfig {
    /// In-process table of typed values.
    Memory {
        /// Entries kept per memo and for the low-level API.
        capacity: usize,
    },
    /// Keeps nothing.
    Null,
    /// A Redis server (`redis://`, `rediss://`, `redis+unix://`).
    Redis {
        /// The connection URL, without memocache's own options (those are
        /// in `options`; the Redis client's own, such as `protocol`, stay).
        url: String,
        /// The store's options from the URL (`timeout_ms`).
        options: RedisOptions,
    },
    /// A Redis Cluster, by its seed nodes.
    RedisCluster {
        /// `redis://host:port` URLs of the seed nodes.
        nodes: Vec<String>,
        /// The store's options from the URL (`timeout_ms`).
        options: RedisOptions,
    },
    /// A Redis master found and followed through Redis Sentinel
    /// (`redis+sentinel://`, `rediss+sentinel://`).
    ///
    /// ```
    /// use memocache::{CacheConfig, StoreConfig};
    /// let config = CacheConfig::from_url("redis+sentinel://:pw@s1:26379,s2/mymaster?db=2")?;
    /// let StoreConfig::RedisSentinel { sentinels, master, master_url, .. } = config.store else {
    ///     unreachable!()
    /// };
    /// assert_eq!(sentinels, ["redis://s1:26379", "redis://s2:26379"]);
    /// assert_eq!(master, "mymaster");
    /// assert_eq!(master_url, "redis://:pw@master:6379/2");
    /// # Ok::<(), memocache::Error>(())
    /// ```
    RedisSentinel {
        /// `redis://[user:password@]host:port` URL of each sentinel
        /// (`rediss://` for TLS), asked in this order.
        sentinels: Vec<String>,
        /// The name the sentinels monitor the master under.
        master: String,
        /// The URL of the master, host and port left to discovery (they are
        /// replaced by what the sentinels report): credentials, database,
        /// TLS and the Redis client's own options.
        master_url: String,
        /// The store's options from the URL (`timeout_ms`).
        options: RedisOptions,
    },
    /// Memcached servers (`host:port` each).
    Memcached {
        /// `host:port` of each server.
        servers: Vec<String>,
    },
    /// One file per key in a directory.
    FileSystem {
        /// The directory.
        path: std::path::PathBuf,
        /// Entries kept before the oldest are evicted.
        threshold: usize,
    },
    /// An in-process L1 in front of a shared store.
    Tiered {
        /// Entries kept in the L1, per memo.
        l1_capacity: usize,
        /// The shared store.
        l2: Box<StoreConfig>,
    },
}

/// Default [`RedisOptions::timeout`]: one second.
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(1000);

/// The options of a Redis store, parsed from its URL's query.
///
/// ```
/// use std::time::Duration;
/// use memocache::{CacheConfig, RedisOptions, StoreConfig};
/// let config = CacheConfig::from_url("redis://127.0.0.1:6379/0?timeout_ms=250")?;
/// let StoreConfig::Redis { url, options } = config.store else { unreachable!() };
/// assert_eq!(url, "redis://127.0.0.1:6379/0");
/// assert_eq!(options, RedisOptions::default().timeout(Duration::from_millis(250)));
/// assert_eq!(RedisOptions::default().timeout, Duration::from_secs(1));
/// # Ok::<(), memocache::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Bound on every command, connection and TLS handshake included
    /// (`timeout_ms`, default 1000, at least 1 ms).
    pub timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_REDIS_TIMEOUT,
        }
    }
}

impl RedisOptions {
    /// Sets the command bound (at least 1 ms).
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = memocache::RedisOptions::default().timeout(Duration::ZERO);
    /// assert_eq!(options.timeout, Duration::from_millis(1));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }
}

/// Everything needed to build a [`Cache`](crate::Cache).
///
/// From a URL (the usual way: see [`CacheConfig::from_url`] for every
/// option) or from code:
///
/// ```
/// use std::time::Duration;
/// use memocache::{Cache, CacheConfig};
///
/// let config = CacheConfig::memory(50_000)
///     .key_prefix("board:")
///     .default_timeout(Some(Duration::from_secs(60)));
/// let cache = Cache::new(config)?;
/// assert_eq!(cache.config().key_prefix, "board:");
/// # Ok::<(), memocache::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Where values live.
    pub store: StoreConfig,
    /// Prepended to every key (Flask-Caching's `CACHE_KEY_PREFIX`).
    pub key_prefix: String,
    /// Lifetime of values set without an explicit timeout; `None` = forever.
    pub default_timeout: Option<Duration>,
    /// Return store faults instead of failing open.
    pub strict: bool,
    /// How long a caller waits for another caller's load of the same key
    /// before it loads the value itself.
    pub stall_timeout: Duration,
    /// Largest encoded value a remote store keeps or decodes, in bytes.
    pub max_value_size: usize,
    /// How long a process waits for another process of the fleet that is
    /// loading the same key (it holds the key's lease in the shared store)
    /// before it loads the value itself.
    pub lease_wait: Duration,
    /// The breakers of the shared store and of the bus.
    pub breaker: BreakerConfig,
    /// The invalidation bus's heartbeat (tiered caches); `None` = the
    /// bus's default, 2 s.
    pub bus_heartbeat: Option<Duration>,
    /// Bytes the in-process tier keeps per memo (and for the low-level
    /// API, and in a tiered cache's L1), as its entries weigh; `None`: it
    /// is bounded by its number of entries only. See
    /// [`CacheConfig::capacity_bytes`].
    pub capacity_bytes: Option<u64>,
}

/// Default [`CacheConfig::max_value_size`]: 8 MiB.
///
/// ```
/// use memocache::{CacheConfig, DEFAULT_MAX_VALUE_SIZE};
/// assert_eq!(CacheConfig::default().max_value_size, DEFAULT_MAX_VALUE_SIZE);
/// ```
pub const DEFAULT_MAX_VALUE_SIZE: usize = 8 << 20;

impl Default for CacheConfig {
    fn default() -> Self {
        Self::memory(DEFAULT_CAPACITY)
    }
}

impl CacheConfig {
    fn with_store(store: StoreConfig) -> Self {
        Self {
            store,
            key_prefix: String::new(),
            default_timeout: Some(DEFAULT_TIMEOUT),
            strict: false,
            stall_timeout: Duration::from_secs(30),
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            lease_wait: Duration::from_secs(2),
            breaker: BreakerConfig::default(),
            bus_heartbeat: None,
            capacity_bytes: None,
        }
    }

    /// An in-process cache holding up to `capacity` entries per memo.
    ///
    /// ```
    /// let cache = memocache::Cache::new(memocache::CacheConfig::memory(1_000))?;
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn memory(capacity: usize) -> Self {
        Self::with_store(StoreConfig::Memory { capacity })
    }

    /// A cache that stores nothing.
    ///
    /// ```
    /// use memocache::{Cache, CacheConfig, Timeout};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::new(CacheConfig::null())?;
    /// cache.set("k", 1_u8, Timeout::Default).await?;
    /// assert!(cache.get::<u8>("k").await?.is_none());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn null() -> Self {
        Self::with_store(StoreConfig::Null)
    }

    /// Sets the key prefix.
    ///
    /// ```
    /// let config = memocache::CacheConfig::default().key_prefix("app:");
    /// assert_eq!(config.key_prefix, "app:");
    /// ```
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the default timeout; `None` or zero = never expire.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memocache::CacheConfig;
    /// assert_eq!(CacheConfig::default().default_timeout(Some(Duration::ZERO)).default_timeout, None);
    /// ```
    #[must_use]
    pub fn default_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.default_timeout = timeout.filter(|d| !d.is_zero());
        self
    }

    /// Returns store faults to callers instead of failing open.
    ///
    /// ```
    /// let config = memocache::CacheConfig::from_url("redis://127.0.0.1:1/")?.strict(true);
    /// assert!(config.strict);
    /// # Ok::<(), memocache::Error>(())
    /// ```
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Sets the largest encoded value a remote store keeps.
    ///
    /// ```
    /// let config = memocache::CacheConfig::default().max_value_size(64 << 10);
    /// assert_eq!(config.max_value_size, 65_536);
    /// ```
    #[must_use]
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Sets how long a waiter trusts another caller's load of the same key.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = memocache::CacheConfig::default().stall_timeout(Duration::from_secs(5));
    /// assert_eq!(config.stall_timeout, Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// Bounds the in-process tier by bytes: each memo (and the low-level
    /// API's keys, and each memo's L1 in a tiered cache) keeps at most
    /// `bytes`, as its entries weigh. The URL option `capacity_bytes`
    /// (`l1_capacity_bytes` on a tiered URL; `64MiB`, `500KB` or a number
    /// of bytes), or `MEMOCACHE_CAPACITY_BYTES`.
    ///
    /// An entry weighs what its value encodes to (the compact encoding a
    /// shared store would keep, counted without being made), or what the
    /// memo's [`weigher`](crate::MemoBuilder::weigher) says, plus 64 bytes
    /// of bookkeeping. Eviction keeps the sum within the budget; an entry
    /// heavier than a sixteenth of it is not stored (the memo counts it in
    /// [`MemoStats::too_large`](crate::MemoStats::too_large)) and is
    /// loaded again on the next call. The entry count (`capacity`) still
    /// holds when it is given too: whichever bound comes first. From a
    /// URL with `capacity_bytes` and no `capacity`, only the bytes bound.
    ///
    /// Like the count, the budget is per memo, so a memo of large values
    /// cannot evict another's small ones; what the whole process keeps in
    /// this tier is at most the budget times (the number of memos + 1).
    ///
    /// ```
    /// use memocache::{Cache, CacheConfig, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::new(CacheConfig::from_url("memory://?capacity_bytes=64MiB")?)?;
    /// assert_eq!(cache.config().capacity_bytes, Some(64 << 20));
    /// let pages: Memo<u64, String> = Memo::builder("pages").build(&cache)?;
    /// pages.set(&1, "x".repeat(1 << 20)).await; // 1 MiB: kept
    /// pages.set(&2, "x".repeat(5 << 20)).await; // over 4 MiB: not kept
    /// assert!(pages.get(&1).await.is_some() && pages.get(&2).await.is_none());
    /// assert_eq!(pages.stats().too_large, 1);
    ///
    /// let both = CacheConfig::memory(10_000).capacity_bytes(16 << 20);
    /// assert_eq!(both.capacity_bytes, Some(16 << 20));
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    #[must_use]
    pub fn capacity_bytes(mut self, bytes: u64) -> Self {
        self.capacity_bytes = Some(bytes.max(1));
        self
    }

    /// Sets how the store's and the bus's breakers behave.
    ///
    /// ```
    /// use memocache::CacheConfig;
    /// let from_url = CacheConfig::from_url("redis://127.0.0.1:6379/?probe_ms=100")?;
    /// let config = CacheConfig::default().breaker(from_url.breaker);
    /// assert_eq!(config.breaker, from_url.breaker);
    /// # Ok::<(), memocache::Error>(())
    /// ```
    #[must_use]
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Parses a cache URL.
    ///
    /// | URL | store |
    /// |-----|-------|
    /// | `memory://?capacity=10000` | in-process, typed values, no serialization |
    /// | `memory://?capacity_bytes=256MiB` | the same, bounded by bytes per memo |
    /// | `null://` | stores nothing: every lookup misses (for tests, or to switch caching off) |
    /// | `redis://host:6379/0`, `rediss://...`, `redis+unix:///path` | Redis |
    /// | `redis+cluster://host1:6379,host2:6379` | Redis Cluster |
    /// | `redis+sentinel://host1:26379,host2:26379/mymaster?db=0`, `rediss+sentinel://...` | the Redis master that Sentinel names, followed across failovers |
    /// | `memcached://host1:11211,host2:11211` | Memcached |
    /// | `file:///var/cache/app?threshold=500` | one file per key |
    /// | `tiered+redis://host:6379/0?l1_capacity=10000` | in-process L1 in front of Redis |
    /// | `tiered+redis+cluster://host1:6379,host2:6379` | in-process L1 in front of Redis Cluster |
    /// | `tiered+redis+sentinel://host1:26379/mymaster` | in-process L1 in front of a Sentinel-managed Redis |
    ///
    /// Options valid on every URL: `prefix` (key prefix), `timeout` (default
    /// timeout in seconds, `0` = never expire), `strict` (`true` returns store
    /// faults instead of failing open), `stall_timeout_ms`, `max_value_size`
    /// (bytes), `lease_wait_ms` (how long to wait for another process's load).
    ///
    /// Breaker options, valid on every URL with a shared store (see
    /// [`breaker`](crate::breaker)): `breaker` (`on`, the default, or `off`),
    /// `probe_ms` (first probe after the breaker opens, default 250),
    /// `probe_max_ms` (longest pause between probes, default 5000),
    /// `breaker_errors` (store errors in a row that open it, default 3; a
    /// timeout opens it at once), `read_deadline_ms` (one Redis server: the
    /// longest a read waits before it counts as a timeout and the value
    /// comes from the source, default 15; `0` = the store's timeout). They
    /// apply to the store and, in tiered mode, to the invalidation bus.
    ///
    /// `heartbeat_ms`: the invalidation bus's heartbeat in tiered mode
    /// (default 2000; the L1 trust horizon and the longest a `forget` waits
    /// for an unreachable process).
    ///
    /// Options of one store: `timeout_ms` (Redis: bound on every command,
    /// default 1000), `threshold` (filesystem), `capacity` / `l1_capacity`
    /// (entries per memo in process, default 10,000), `capacity_bytes` /
    /// `l1_capacity_bytes` (bytes per memo in process, `64MiB`, `500KB` or
    /// a number; see [`CacheConfig::capacity_bytes`]). With only a byte
    /// budget, the number of entries is not bounded.
    ///
    /// Sentinel URLs: `redis+sentinel://[user:password@]host1[:port],host2[:port]/<master>[/<db>]`,
    /// the sentinels' addresses (port 26379 when left out), the name they
    /// monitor the master under as the path, and every option of a
    /// `redis://` URL. The credentials, the database (`db` or the second
    /// path segment) and TLS (`rediss+sentinel://`) are the master's; the
    /// sentinels' own credentials, if they need any, are
    /// `sentinel_username` and `sentinel_password`. See
    /// [`RedisStore::open_sentinel`](crate::store::RedisStore::open_sentinel)
    /// for how failovers are followed and what a failover forgets.
    ///
    /// `tiered+redis+cluster://host1:6379,host2:6379` keeps the bus on one
    /// slot of the cluster (see [`RedisBus::new_cluster`](crate::bus::RedisBus::new_cluster)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use memocache::CacheConfig;
    ///
    /// let config = CacheConfig::from_url("redis://127.0.0.1:6379/0?prefix=board:&timeout=60&lease_wait_ms=500")?;
    /// assert_eq!(config.key_prefix, "board:");
    /// assert_eq!(config.default_timeout, Some(Duration::from_secs(60)));
    /// assert_eq!(config.lease_wait, Duration::from_millis(500));
    /// assert!(CacheConfig::from_url("redis://127.0.0.1/?lease_wait_ms=-1").is_err());
    ///
    /// let sentinel = CacheConfig::from_url("tiered+redis+sentinel://10.0.0.1,10.0.0.2:26380/cache?timeout_ms=200")?;
    /// let error = CacheConfig::from_url("redis+sentinel://10.0.0.1:26379").unwrap_err();
    /// assert!(error.to_string().contains("names no master"), "{error}");
    /// # Ok::<(), memocache::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) with a message naming
    /// the bad part.
    pub fn from_url(input: &str) -> Result<Self> {
        parse::parse_cache_url(input)
    }
}

impl std::str::FromStr for CacheConfig {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_url(s)
    }
}

mod env;
mod parse;

pub use env::ENV_URL_VARIABLE;

#[cfg_attr(not(feature = "redis"), allow(unused_imports))]
pub(crate) use parse::RedisUrl;
pub use parse::parse_size;

#[cfg(test)]
mod tests;
