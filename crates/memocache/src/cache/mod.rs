//! [`Cache`]: the handle applications hold, and Flask-Caching's low-level API.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::breaker::{Breaker, BreakerSet, BreakerState, BreakerStats};
use crate::bus::{Bus, BusSink};
use crate::clock::Clock;
use crate::config::{CacheConfig, StoreConfig};
use crate::deps::{Stamps, TAG_SCOPE, scope_hash};
use crate::error::Result;
use crate::fault::FaultLog;
use crate::key::KeyHash;
use crate::local::{Bound, LocalTable};
use crate::reach::Reach;
use crate::registry::{MemoControl, Registry};
use crate::stats::MemoStats;
use crate::store::BreakerStore;
use crate::store::RemoteStore;

mod api;
mod bus_link;
mod engine;
mod invalidate;

/// A value of any type, as the low-level API keeps it in memory.
pub(crate) type ErasedValue = Arc<dyn Any + Send + Sync>;

/// Where a cache keeps its values.
pub(crate) enum Backend {
    /// Typed values in process (boxed: the table and its per-thread slots
    /// are large beside the other variants).
    Memory { raw: Box<LocalTable<ErasedValue>> },
    /// Nothing is kept.
    Null,
    /// Encoded values in a shared store.
    Remote(Arc<dyn RemoteStore>),
}

/// The bound of an in-process table of `entries` under `config`.
fn l1_bound(config: &CacheConfig, entries: usize) -> Bound {
    Bound {
        entries,
        bytes: config.capacity_bytes,
    }
}

/// A cache: cheap to clone (an `Arc` inside), shared by every part of an
/// application that caches.
///
/// Build one from a [`CacheConfig`] or a URL, then use the low-level API
/// below (Flask-Caching's `cache.get`, `cache.set`, …) or, for memoized
/// functions, a [`Memo`](crate::Memo) built on it.
///
/// ```
/// # tokio_test_block_on(async {
/// use memocache::{Cache, Timeout};
///
/// let cache = Cache::from_url("memory://?capacity=1000&timeout=60")?;
/// cache.set("greeting", "hello".to_string(), Timeout::Default).await?;
/// let hit = cache.get::<String>("greeting").await?;
/// assert_eq!(hit.as_deref().map(String::as_str), Some("hello"));
/// assert_eq!(cache.inc("visits", 1).await?, Some(1));
/// # Ok::<(), memocache::Error>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     futures::executor::block_on(f) }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<CacheInner>,
}

pub(crate) struct CacheInner {
    pub(crate) config: CacheConfig,
    pub(crate) clock: Clock,
    pub(crate) backend: Backend,
    pub(crate) faults: FaultLog,
    /// What each memo keeps in process (`None`: no in-process tier).
    l1: Option<Bound>,
    /// The invalidation bus of a tiered cache.
    bus: Option<Arc<dyn Bus>>,
    /// The shared store's breakers (the store in `backend` is behind them).
    breaker: Option<Arc<BreakerSet>>,
    /// Clock reading until which the in-process tier may be trusted; the
    /// bus renews it. `u64::MAX` when there is no shared store behind it.
    trusted_until: AtomicU64,
    memos: Registry,
    /// The bus's handle on this cache, kept alive with it.
    sink: Mutex<Option<Arc<dyn BusSink>>>,
    /// Invalidation stamps for cached responses and fragments.
    pub(crate) stamps: Arc<Stamps>,
}

impl Cache {
    /// Builds a cache from its configuration.
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) for stores this build does not include.
    ///
    /// ```
    /// use memocache::{Cache, CacheConfig};
    /// let cache = Cache::new(CacheConfig::memory(1_000).key_prefix("app:"))?;
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn new(config: CacheConfig) -> Result<Self> {
        Self::with_clock(config, Clock::coarse())
    }

    /// Builds a cache whose expiry follows `clock` (see [`Clock::manual`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use memocache::{Cache, CacheConfig, Clock, Timeout};
    /// # futures::executor::block_on(async {
    /// let clock = Clock::manual();
    /// let cache = Cache::with_clock(CacheConfig::default(), clock.clone())?;
    /// cache.set("otp", 123_456_u32, Timeout::After(Duration::from_secs(30))).await?;
    /// clock.advance(Duration::from_secs(31));
    /// assert!(cache.get::<u32>("otp").await?.is_none());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`Cache::new`].
    pub fn with_clock(config: CacheConfig, clock: Clock) -> Result<Self> {
        let cache = match &config.store {
            StoreConfig::Memory { capacity } => {
                let backend = Backend::Memory {
                    raw: Box::new(LocalTable::bounded(l1_bound(&config, *capacity))),
                };
                Self::assemble(config.clone(), clock, backend, Some(*capacity), None)
            }
            StoreConfig::Null => Self::assemble(config, clock, Backend::Null, None, None),
            StoreConfig::Tiered { l1_capacity, l2 } => {
                let store = crate::store::connect(l2, &config.key_prefix)?;
                let bus = crate::bus::connect(
                    l2,
                    &config.key_prefix,
                    config.breaker,
                    config.bus_heartbeat,
                )?;
                let l1 = Some(*l1_capacity);
                Self::assemble(config.clone(), clock, Backend::Remote(store), l1, Some(bus))
            }
            other => {
                let store = crate::store::connect(other, &config.key_prefix)?;
                Self::assemble(config.clone(), clock, Backend::Remote(store), None, None)
            }
        };
        Ok(cache)
    }

    /// Builds a cache on a store of your own (or one built by hand), with
    /// `config`'s prefix, timeouts and fail-open setting; `config.store` is
    /// only informative here.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use memocache::{Cache, CacheConfig, store::MemcachedStore};
    /// let store = MemcachedStore::open(&["127.0.0.1:11211".to_owned()], "app:")?;
    /// let cache = Cache::with_store(CacheConfig::default().key_prefix("app:"), Arc::new(store));
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn with_store(config: CacheConfig, store: Arc<dyn RemoteStore>) -> Self {
        Self::with_store_and_clock(config, store, Clock::coarse())
    }

    /// [`Cache::with_store`] whose expiry checks and breakers follow
    /// `clock` (see [`Clock::manual`]). Values the store expires on its own
    /// clock (Redis `PX`, Memcached's seconds) still follow the store's.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use memocache::{Cache, CacheConfig, Clock, store::MemcachedStore};
    /// let store = MemcachedStore::open(&["127.0.0.1:11211".to_owned()], "app:")?;
    /// let clock = Clock::manual();
    /// let cache = Cache::with_store_and_clock(CacheConfig::default(), Arc::new(store), clock.clone());
    /// assert_eq!(cache.clock().now_ms(), clock.now_ms());
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn with_store_and_clock(
        config: CacheConfig,
        store: Arc<dyn RemoteStore>,
        clock: Clock,
    ) -> Self {
        Self::assemble(config, clock, Backend::Remote(store), None, None)
    }

    /// Builds a tiered cache: an in-process L1 of `l1_capacity` entries per
    /// memo (and within `config.capacity_bytes` bytes, if it is set: see
    /// [`CacheConfig::capacity_bytes`]) in front of `store`, kept coherent across processes by `bus`.
    /// The L1 is trusted only while the bus keeps it in sync (see
    /// [`bus`](crate::bus)).
    ///
    /// Usually built from a URL (`tiered+redis://host:6379/?l1_capacity=10000`);
    /// by hand (feature `redis`):
    ///
    /// ```no_run
    /// # #[cfg(feature = "redis")]
    /// # async fn build() -> memocache::Result<()> {
    /// use std::sync::Arc;
    /// use memocache::{Cache, CacheConfig, bus::RedisBus, store::RedisStore};
    /// let url = "redis://127.0.0.1:6379/";
    /// let config = CacheConfig::from_url(url)?.key_prefix("app:");
    /// let store = RedisStore::open(url)?;
    /// let bus = RedisBus::new(url, "app:")?;
    /// let cache = Cache::tiered(config, Arc::new(store), Arc::new(bus), 10_000);
    /// # Ok(()) }
    /// ```
    pub fn tiered(
        config: CacheConfig,
        store: Arc<dyn RemoteStore>,
        bus: Arc<dyn Bus>,
        l1_capacity: usize,
    ) -> Self {
        Self::tiered_with_clock(config, store, bus, l1_capacity, Clock::coarse())
    }

    /// [`Cache::tiered`] whose L1 expiry, bus trust and breakers follow
    /// `clock` (see [`Clock::manual`]).
    ///
    /// ```no_run
    /// # #[cfg(feature = "redis")]
    /// # async fn build() -> memocache::Result<()> {
    /// use std::sync::Arc;
    /// use memocache::{Cache, CacheConfig, Clock, bus::RedisBus, store::RedisStore};
    /// let url = "redis://127.0.0.1:6379/";
    /// let store = Arc::new(RedisStore::open(url)?);
    /// let bus = Arc::new(RedisBus::new(url, "app:")?);
    /// let clock = Clock::manual();
    /// let cache = Cache::tiered_with_clock(CacheConfig::from_url(url)?, store, bus, 10_000, clock);
    /// # Ok(()) }
    /// ```
    pub fn tiered_with_clock(
        config: CacheConfig,
        store: Arc<dyn RemoteStore>,
        bus: Arc<dyn Bus>,
        l1_capacity: usize,
        clock: Clock,
    ) -> Self {
        Self::assemble(
            config,
            clock,
            Backend::Remote(store),
            Some(l1_capacity),
            Some(bus),
        )
    }

    fn assemble(
        config: CacheConfig,
        clock: Clock,
        backend: Backend,
        l1_capacity: Option<usize>,
        bus: Option<Arc<dyn Bus>>,
    ) -> Self {
        let l1 = l1_capacity.map(|entries| l1_bound(&config, entries));
        let (backend, breaker) = match backend {
            Backend::Remote(store) if config.breaker.enabled => {
                let whole = Arc::new(Breaker::new("store", config.breaker, clock.clone()));
                let breaker = Arc::new(BreakerSet::new(whole));
                let guarded = BreakerStore::with_set(store, Arc::clone(&breaker))
                    .read_deadline(read_deadline(&config));
                (Backend::Remote(Arc::new(guarded)), Some(breaker))
            }
            other => (other, None),
        };
        // With a shared store behind the L1, the L1 is trusted only while
        // the bus vouches for it; alone, it is the truth.
        let trusted_until = match (&backend, &bus) {
            (Backend::Remote(_), Some(_)) => 0,
            _ => u64::MAX,
        };
        let cache = Self {
            inner: Arc::new(CacheInner {
                config,
                clock,
                backend,
                faults: FaultLog::default(),
                l1,
                bus,
                breaker,
                trusted_until: AtomicU64::new(trusted_until),
                memos: Registry::default(),
                sink: Mutex::new(None),
                stamps: Arc::new(Stamps::new()),
            }),
        };
        if let Some(bus) = &cache.inner.bus {
            let sink: Arc<dyn BusSink> = Arc::new(bus_link::SinkLink(Arc::downgrade(&cache.inner)));
            // The link lives as long as the bus keeps it; it holds the cache
            // weakly, so a dropped cache stops the bus's deliveries.
            bus.start(Arc::downgrade(&sink));
            cache.inner.sink_keepalive(sink);
        }
        cache
    }

    /// True while the in-process tier may answer lookups: always without a
    /// shared store behind it; in a tiered cache, while the invalidation
    /// bus keeps this process in sync (a health check can report it).
    ///
    /// ```
    /// assert!(memocache::Cache::memory().l1_in_sync());
    /// ```
    #[inline]
    pub fn l1_in_sync(&self) -> bool {
        self.l1_trusted()
    }

    /// False while a breaker skips the shared store or the invalidation
    /// bus (after a timeout or a burst of errors, until a background probe
    /// gets through; see [`breaker`](crate::breaker)). Requests are still
    /// served meanwhile, from the source: a health check reports this as
    /// degraded, not down. Always true without a shared store.
    ///
    /// ```
    /// let cache = memocache::Cache::memory();
    /// assert!(cache.store_available());
    /// assert_eq!(cache.store_breaker(), None);
    /// ```
    pub fn store_available(&self) -> bool {
        let open =
            |stats: Option<BreakerStats>| stats.is_some_and(|s| s.state == BreakerState::Open);
        !open(self.store_breaker()) && !open(self.bus_breaker())
    }

    /// True when a shared store holds the values, so other processes read
    /// them: Redis, Memcached, a file store, or a tiered cache.
    ///
    /// ```
    /// assert!(!memocache::Cache::memory().is_shared());
    /// assert!(memocache::Cache::from_url("redis://127.0.0.1:1/")?.is_shared());
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn is_shared(&self) -> bool {
        self.has_remote()
    }

    /// The shared store's breaker: state and counters; `None` without a
    /// shared store or with `breaker=off`. On a Redis Cluster, with one
    /// breaker per node, the sum of them: open while any is, counters
    /// added (see [`Cache::node_breakers`]).
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # runtime.block_on(async {
    /// use memocache::{BreakerState, Cache};
    /// // Nothing is contacted yet, so the breaker starts closed.
    /// let cache = Cache::from_url("redis://127.0.0.1:1/?timeout_ms=200")?;
    /// let breaker = cache.store_breaker().expect("a shared store has a breaker");
    /// assert_eq!(breaker.state, BreakerState::Closed);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn store_breaker(&self) -> Option<BreakerStats> {
        self.inner.breaker.as_ref().map(|b| b.stats())
    }

    /// Each node's breaker of a sharded store (a Redis Cluster), by node
    /// address (`host:port`), sorted; empty for a store on one server, and
    /// for nodes no call has reached yet. See
    /// [the breaker's rules](crate::breaker#one-breaker-per-node).
    ///
    /// ```
    /// let cache = memocache::Cache::from_url("redis://127.0.0.1:1/")?;
    /// assert!(cache.node_breakers().is_empty(), "one server, one breaker");
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn node_breakers(&self) -> Vec<(String, BreakerStats)> {
        self.inner
            .breaker
            .as_ref()
            .map(|b| b.node_stats())
            .unwrap_or_default()
    }

    /// The invalidation bus's breaker (tiered caches): state and counters.
    ///
    /// ```
    /// assert!(memocache::Cache::memory().bus_breaker().is_none()); // no bus
    /// ```
    pub fn bus_breaker(&self) -> Option<BreakerStats> {
        self.inner.bus.as_ref().and_then(|bus| bus.breaker_stats())
    }

    /// True while the in-process tier may answer lookups. Checked against
    /// the system clock, not the coarse one: a starved ticker thread must
    /// not stretch the bus's staleness bound. Not while the store's
    /// breaker is open either: memo versions are read from the store, and
    /// a process that skips it cannot learn of a `forget_all` made
    /// elsewhere, so it reads through to the source until a probe closes
    /// the breaker (`after_redis_restarts_posts_are_seen_everywhere_again`
    /// in the board's fleet test caught it). On a cluster, any node's open
    /// breaker stops it (see [`crate::breaker`]).
    #[inline]
    pub(crate) fn l1_trusted(&self) -> bool {
        let until = self.inner.trusted_until.load(Ordering::Acquire);
        (until == u64::MAX || self.inner.clock.precise_now_ms() < until)
            && self.inner.breaker.as_ref().is_none_or(|b| !b.any_open())
    }

    /// The shared store, if any.
    fn remote(&self) -> Option<&Arc<dyn RemoteStore>> {
        match &self.inner.backend {
            Backend::Remote(store) => Some(store),
            _ => None,
        }
    }

    /// Store faults met since the cache was built (survived in fail-open
    /// mode, returned in strict mode).
    ///
    /// ```
    /// assert_eq!(memocache::Cache::memory().store_errors(), 0);
    /// ```
    pub fn store_errors(&self) -> u64 {
        self.inner.faults.total()
    }

    /// Builds a cache from the environment: `MEMOCACHE_URL` and the
    /// `MEMOCACHE_<OPTION>` variables (see [`CacheConfig::from_env`]).
    ///
    /// ```
    /// // With no MEMOCACHE_ variable set: an in-process cache.
    /// let cache = memocache::Cache::from_env()?;
    /// # Ok::<(), memocache::Error>(())
    /// ```
    ///
    /// # Errors
    /// A [`ErrorKind::Config`](crate::ErrorKind::Config) error naming the
    /// variable that is wrong.
    pub fn from_env() -> Result<Self> {
        Self::new(CacheConfig::from_env()?)
    }

    /// Builds a cache from a URL such as `memory://?capacity=10000`
    /// (see [`CacheConfig::from_url`]).
    ///
    /// ```
    /// let cache = memocache::Cache::from_url("memory://?capacity=500&timeout=60")?;
    /// assert!(memocache::Cache::from_url("memory://?capacity=many").is_err());
    /// # Ok::<(), memocache::Error>(())
    /// ```
    ///
    /// # Errors
    /// A [`ErrorKind::Config`](crate::ErrorKind::Config) error naming what is wrong with the URL.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::new(CacheConfig::from_url(url)?)
    }

    /// An in-process cache with the default capacity and timeout.
    ///
    /// ```
    /// let cache = memocache::Cache::memory();
    /// assert_eq!(cache.config(), &memocache::CacheConfig::default());
    /// ```
    pub fn memory() -> Self {
        Self::in_process(CacheConfig::default())
    }

    /// A cache that keeps nothing: every lookup misses.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let memo: Memo<u8, u8> = Memo::builder("double").build(&Cache::null())?;
    /// memo.get_or_load(&2, || async { 4 }).await;
    /// memo.get_or_load(&2, || async { 4 }).await;
    /// assert_eq!(memo.stats().loads, 2); // nothing was kept
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn null() -> Self {
        Self::in_process(CacheConfig::null())
    }

    fn in_process(config: CacheConfig) -> Self {
        match Self::new(config) {
            Ok(cache) => cache,
            Err(error) => unreachable!("in-process stores always build: {error}"),
        }
    }

    /// The configuration this cache was built from.
    ///
    /// ```
    /// let cache = memocache::Cache::from_url("memory://?prefix=app:")?;
    /// assert_eq!(cache.config().key_prefix, "app:");
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The clock expiry is measured against.
    ///
    /// ```
    /// let cache = memocache::Cache::memory();
    /// let now = cache.clock().now_ms();
    /// assert!(cache.clock().now_ms() >= now);
    /// ```
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Counters of every memo built on this cache, by name.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let users: Memo<u64, String> = Memo::builder("users").build(&cache)?;
    /// users.get_or_load(&1, || async { "ada".to_owned() }).await;
    /// let stats = cache.memo_stats();
    /// assert_eq!(stats[0].0, "users");
    /// assert_eq!(stats[0].1.loads, 1);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn memo_stats(&self) -> Vec<(String, MemoStats)> {
        self.inner.memos.stats()
    }

    /// The memos built on this cache.
    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.memos
    }

    /// What each memo keeps in process (`None`: no in-process tier).
    pub(crate) fn l1_bound(&self) -> Option<Bound> {
        self.inner.l1
    }

    /// Whether invalidations of what a view reads reach this process: in
    /// process, or through a bus. A shared store without a bus: no, and
    /// cached responses that read through it are not stored.
    pub(crate) fn deps_tracked(&self) -> bool {
        self.inner.bus.is_some() || !matches!(self.inner.backend, Backend::Remote(_))
    }

    /// Tags the response or fragment being made (by a
    /// [`ResponseCacheLayer`](crate::response::ResponseCacheLayer) or
    /// [`Fragments`](crate::Fragments)) with `tag`, a surrogate key for data
    /// that does not come through a memo: [`Cache::invalidate_tag`] removes
    /// it. Outside of one, does nothing.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use memocache::{Cache, Fragments};
    ///
    /// let cache = Cache::memory();
    /// let fragments = Fragments::new(&cache);
    /// let render = || async {
    ///     cache.tag("weather");
    ///     "sunny".to_string()
    /// };
    /// assert_eq!(&*fragments.get_or_render("forecast", &(), render).await, "sunny");
    /// cache.invalidate_tag("weather").await;
    /// let render = || async { "rain".to_string() };
    /// assert_eq!(&*fragments.get_or_render("forecast", &(), render).await, "rain");
    /// # });
    /// ```
    pub fn tag(&self, tag: &str) {
        let hash = KeyHash::of_str(tag);
        crate::deps::record_key(&self.inner.stamps, scope_hash(TAG_SCOPE), hash.0, || true);
    }

    /// Removes every cached response and fragment tagged with `tag` (see
    /// [`Cache::tag`]), in every process of a tiered cache, before it
    /// returns.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// let fragments = memocache::Fragments::new(&cache);
    /// let render = || async { cache.tag("prices"); "12 EUR".to_owned() };
    /// fragments.get_or_render("price", &7, render).await;
    /// cache.invalidate_tag("prices").await; // e.g. after a price list import
    /// let price = fragments.get_or_render("price", &7, || async { "13 EUR".to_owned() }).await;
    /// assert_eq!(&*price, "13 EUR");
    /// # });
    /// ```
    pub async fn invalidate_tag(&self, tag: &str) -> Reach {
        self.invalidate_dep_key(TAG_SCOPE, KeyHash::of_str(tag).0)
            .await
    }

    /// The cache's invalidation stamps.
    pub(crate) fn stamps(&self) -> &Arc<Stamps> {
        &self.inner.stamps
    }
}

/// The read deadline of `config`'s shared store (see
/// [`BreakerConfig::read_deadline`](crate::BreakerConfig::read_deadline)):
/// one Redis server, directly or as a tiered cache's L2. Not a Redis
/// Cluster, whose client holds every node's replies while it reconnects
/// one (a healthy node would look silent), nor Memcached, whose pooled
/// connections are remade under a read, nor a local directory.
fn read_deadline(config: &CacheConfig) -> Option<std::time::Duration> {
    let store = match &config.store {
        StoreConfig::Tiered { l2, .. } => l2.as_ref(),
        other => other,
    };
    match store {
        StoreConfig::Redis { .. } => config.breaker.read_deadline,
        _ => None,
    }
}

impl CacheInner {
    fn memo_controls(&self) -> Vec<Arc<dyn MemoControl>> {
        self.memos.controls()
    }

    fn memo_control(&self, name: &str) -> Option<Arc<dyn MemoControl>> {
        self.memos.control(name)
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.inner.config.store)
            .field("key_prefix", &self.inner.config.key_prefix)
            .finish_non_exhaustive()
    }
}
