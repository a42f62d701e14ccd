//! [`Memo`]: one memoized function, typed by its key and value.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use event_listener::EventListener;
use serde::Serialize;

use crate::cache::{Backend, Cache, MemoControl};
use crate::config::Timeout;
use crate::error::Result;
use crate::flight::{Flight, Flights, Join, LeaderGuard, Outcome, SharedError};
use crate::key::{KeyHash, memo_key};
use crate::local::LocalTable;
use crate::none::is_none;
use crate::stats::{Counter, MemoStats, Stats};
use crate::value::CacheValue;

/// What every handle of one memo on one cache shares.
pub(crate) struct MemoShared<V> {
    name: Arc<str>,
    /// Bumped by `forget_all`: part of every key, so old entries become
    /// unreachable at once (Flask-Caching's memoize version).
    version: AtomicU64,
    stats: Stats,
    table: Option<LocalTable<Arc<V>>>,
    flights: Flights<V>,
}

impl<V: CacheValue> MemoShared<V> {
    pub(crate) fn new(name: &str, backend: &Backend) -> Self {
        let table = match backend {
            Backend::Memory { capacity, .. } => Some(LocalTable::new(*capacity)),
            Backend::Null | Backend::Remote(_) => None,
        };
        Self {
            name: Arc::from(name),
            version: AtomicU64::new(0),
            stats: Stats::default(),
            table,
            flights: Flights::new(),
        }
    }
}

impl<V: CacheValue> MemoControl for MemoShared<V> {
    fn invalidate_everything(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
        if let Some(table) = &self.table {
            self.flights.invalidate_all(|| table.clear());
        }
    }

    fn stats(&self) -> MemoStats {
        self.stats.snapshot()
    }
}

/// A memoized function: Flask-Caching's `@cache.memoize`, typed.
///
/// `K` is the argument (a tuple for several), `V` the result. A `Memo` is
/// bound to one [`Cache`] and cheap to clone; handles built with the same
/// name on the same cache share their entries, counters and version.
///
/// ```
/// # futures::executor::block_on(async {
/// use std::time::Duration;
/// use memocache::{Cache, Memo};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct User { id: i64, name: String }
///
/// let cache = Cache::memory();
/// let load_user = Memo::<i64, User>::builder("load_user")
///     .timeout(Duration::from_secs(600))
///     .build(&cache)?;
///
/// let user = load_user
///     .get_or_load(&7, || async { User { id: 7, name: "ada".into() } })
///     .await;
/// assert_eq!(user.name, "ada");
///
/// // At logout: Flask-Caching's `cache.delete_memoized(load_user, 7)`.
/// load_user.forget(&7).await;
/// // load_user.forget(&"7").await; // does not compile: the key is an i64
/// # Ok::<(), memocache::Error>(())
/// # }).unwrap();
/// ```
///
/// # Concurrent calls on the same key
///
/// When several callers miss the same key at once, one of them runs its
/// loader and the others wait for its result (or share its error, which is
/// never cached). If the loading caller is cancelled or its loader panics,
/// a waiter becomes the new loader; if it stalls longer than the cache's
/// [`stall_timeout`](crate::CacheConfig::stall_timeout), one waiter loads
/// the value itself.
///
/// # Invalidation
///
/// [`Memo::forget`] and [`Memo::forget_all`] take effect when they return:
/// a load that started before them never stores its result afterwards, so
/// no value older than the invalidation is served.
pub struct Memo<K: ?Sized, V> {
    shared: Arc<MemoShared<V>>,
    cache: Cache,
    lifetime: Option<Duration>,
    cache_none: bool,
    _key: PhantomData<fn(&K)>,
}

/// Marks a builder's key and value types without owning either.
type KeyAndValue<K, V> = (fn(&K), fn() -> V);

/// Settings of a [`Memo`] before it is bound to a cache.
#[must_use]
pub struct MemoBuilder<K: ?Sized, V> {
    name: String,
    timeout: Timeout,
    cache_none: bool,
    _types: PhantomData<KeyAndValue<K, V>>,
}

impl<K: ?Sized, V> Clone for Memo<K, V> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            cache: self.cache.clone(),
            lifetime: self.lifetime,
            cache_none: self.cache_none,
            _key: PhantomData,
        }
    }
}

impl<K, V> Memo<K, V>
where
    K: Serialize + ?Sized + 'static,
    V: CacheValue,
{
    /// Starts describing memo `name` (unique per cache: it is part of the
    /// stored keys).
    pub fn builder(name: impl Into<String>) -> MemoBuilder<K, V> {
        MemoBuilder {
            name: name.into(),
            timeout: Timeout::Default,
            cache_none: false,
            _types: PhantomData,
        }
    }
}

impl<K, V> MemoBuilder<K, V>
where
    K: Serialize + ?Sized + 'static,
    V: CacheValue,
{
    /// How long results live; the cache's default timeout if not set.
    /// `Duration::ZERO` means forever, as in Flask-Caching.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Timeout::After(timeout);
        self
    }

    /// Results never expire (they still leave on eviction or invalidation).
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Timeout::Never;
        self
    }

    /// Whether a `None` (or `()`) result is cached. Off by default, as
    /// Flask-Caching's `cache_none=False`: a `None` is returned to the
    /// caller but the next call loads again.
    pub fn cache_none(mut self, cache_none: bool) -> Self {
        self.cache_none = cache_none;
        self
    }

    /// Binds the memo to `cache`.
    ///
    /// # Errors
    /// [`ErrorKind::MemoTypeMismatch`](crate::ErrorKind::MemoTypeMismatch)
    /// if a memo of this name with other types is already built on `cache`.
    pub fn build(self, cache: &Cache) -> Result<Memo<K, V>> {
        let shared = cache.memo_shared::<K, V>(&self.name)?;
        Ok(Memo {
            shared,
            cache: cache.clone(),
            lifetime: self.timeout.resolve(cache.config().default_timeout),
            cache_none: self.cache_none,
            _key: PhantomData,
        })
    }
}

/// The outcome of the in-process lookup.
enum Probe<V> {
    Hit(Arc<V>),
    Miss(KeyHash),
    /// A shared store holds the values: look there (unversioned hash).
    Remote(KeyHash),
    /// The key could not be serialized: load without caching.
    Uncacheable,
}

/// Who completes a flight: its leader, or a waiter that took a stalled
/// load over.
enum Completion<'a, V> {
    Leader(LeaderGuard<'a, V>),
    Takeover(Arc<Flight<V>>),
}

impl<K, V> Memo<K, V>
where
    K: Serialize + ?Sized + 'static,
    V: CacheValue,
{
    /// The memo's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The cache this memo stores into.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// This memo's counters.
    pub fn stats(&self) -> MemoStats {
        self.shared.stats.snapshot()
    }

    /// The current version (bumped by every [`Memo::forget_all`]).
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// The table key of `key` at the current version, or `None` if the key
    /// cannot be serialized (then nothing is cached for it).
    #[inline]
    fn table_key<Q: Serialize + ?Sized>(&self, key: &Q) -> Option<KeyHash> {
        match KeyHash::of(key) {
            Ok(hash) => Some(hash.versioned(self.version())),
            Err(error) => {
                tracing::warn!(memo = %self.shared.name, %error, "key not cacheable");
                None
            }
        }
    }

    #[inline]
    fn lookup(&self, key: KeyHash) -> Option<Arc<V>> {
        let found = self
            .shared
            .table
            .as_ref()
            .and_then(|table| table.get(&key, self.cache.inner.clock.now_ms()));
        let counter = if found.is_some() {
            Counter::HitLocal
        } else {
            Counter::Miss
        };
        self.shared.stats.bump(counter);
        found
    }

    fn store(&self, key: KeyHash, value: &Arc<V>) {
        if let Some(table) = &self.shared.table {
            let expires_at = self.cache.inner.clock.deadline(self.lifetime);
            table.insert(key, Arc::clone(value), expires_at);
        }
    }

    /// The cached value for `key`, if any; never loads.
    pub async fn get(&self, key: &K) -> Option<Arc<V>> {
        if let Backend::Remote(_) = self.cache.inner.backend {
            let never = || async { Err::<V, ()>(()) };
            return self.get_or_try_load(key, never).await.ok();
        }
        self.lookup(self.table_key(key)?)
    }

    /// Stores `value` for `key` (priming the memo), replacing any value and
    /// overriding any load in flight for `key`.
    pub async fn set(&self, key: &K, value: V) -> Arc<V> {
        let value = Arc::new(value);
        if let Backend::Remote(_) = self.cache.inner.backend {
            let Ok(hash) = KeyHash::of(key) else {
                return value;
            };
            if let Some(version) = self.remote_version().await {
                self.shared
                    .flights
                    .invalidate(hash.versioned(version), || {});
                let full = memo_key(self.prefix(), &self.shared.name, version, hash);
                self.remote_store(&full, &value).await;
            }
            return value;
        }
        if let Some(key) = self.table_key(key) {
            self.shared
                .flights
                .invalidate(key, || self.store(key, &value));
        }
        value
    }

    /// The cached value for `key`, or the result of `load` (stored for the
    /// memo's timeout). Store faults never reach the caller: the value is
    /// loaded instead (fail-open).
    ///
    /// The lookup happens when this is called; only a miss does work when
    /// the returned future is polled, so a hit costs no future machinery.
    pub fn get_or_load<'a, F, Fut>(&'a self, key: &K, load: F) -> impl Future<Output = Arc<V>> + 'a
    where
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = V> + 'a,
    {
        let probe = self.probe(key);
        async move {
            let load = || async { Ok::<V, std::convert::Infallible>(load().await) };
            match self.finish_probe(probe, load).await {
                Ok(value) => value,
                Err(never) => match *never {},
            }
        }
    }

    /// As [`Memo::get_or_load`] for a loader that can fail. An error is
    /// returned to this caller and to callers waiting on the same load, as
    /// an `Arc<E>`, and is never cached.
    ///
    /// # Errors
    /// The loader's error.
    pub fn get_or_try_load<'a, F, Fut, E>(
        &'a self,
        key: &K,
        load: F,
    ) -> impl Future<Output = Result<Arc<V>, Arc<E>>> + 'a
    where
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<V, E>> + 'a,
        E: Send + Sync + 'static,
    {
        let probe = self.probe(key);
        self.finish_probe(probe, load)
    }

    /// [`Memo::get_or_try_load`] with a key given as any value that
    /// serializes like `K` (a tuple of references for a tuple of values).
    /// Used by `#[memoize]`; not part of the stable API.
    #[doc(hidden)]
    pub fn __get_or_try_load_by<'a, Q, F, Fut, E>(
        &'a self,
        key: &Q,
        load: F,
    ) -> impl Future<Output = Result<Arc<V>, Arc<E>>> + 'a
    where
        Q: Serialize + ?Sized,
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<V, E>> + 'a,
        E: Send + Sync + 'static,
    {
        let probe = self.probe(key);
        self.finish_probe(probe, load)
    }

    /// Looks `key` up in the in-process tier.
    #[inline]
    fn probe<Q: Serialize + ?Sized>(&self, key: &Q) -> Probe<V> {
        if let Backend::Remote(_) = self.cache.inner.backend {
            return match KeyHash::of(key) {
                Ok(hash) => Probe::Remote(hash),
                Err(_) => Probe::Uncacheable,
            };
        }
        match self.table_key(key) {
            None => Probe::Uncacheable,
            Some(key) => match self.lookup(key) {
                Some(value) => Probe::Hit(value),
                None => Probe::Miss(key),
            },
        }
    }

    async fn finish_probe<F, Fut, E>(&self, probe: Probe<V>, load: F) -> Result<Arc<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        match probe {
            Probe::Hit(value) => Ok(value),
            Probe::Miss(key) => self.load_through(key, None, load).await,
            Probe::Remote(hash) => self.remote_get_or_load(hash, load).await,
            Probe::Uncacheable => load().await.map(Arc::new).map_err(Arc::new),
        }
    }

    /// Blocking [`Memo::get_or_load`], for plain (non-async) functions.
    pub fn get_or_load_blocking(&self, key: &K, load: impl FnOnce() -> V) -> Arc<V> {
        futures_executor::block_on(self.get_or_load(key, || async move { load() }))
    }

    /// Blocking [`Memo::get_or_try_load`], for plain (non-async) functions.
    ///
    /// # Errors
    /// The loader's error.
    pub fn get_or_try_load_blocking<E: Send + Sync + 'static>(
        &self,
        key: &K,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, Arc<E>> {
        futures_executor::block_on(self.get_or_try_load(key, || async move { load() }))
    }

    async fn load_through<F, Fut, E>(
        &self,
        key: KeyHash,
        remote_key: Option<String>,
        load: F,
    ) -> Result<Arc<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        loop {
            match self.shared.flights.join(key) {
                Join::Lead(guard) => {
                    // A load may have finished between our miss and the join.
                    if let Some(table) = &self.shared.table {
                        if let Some(value) = table.get(&key, self.cache.inner.clock.now_ms()) {
                            guard.finish(&value, |_| {});
                            return Ok(value);
                        }
                    }
                    let completion = Completion::Leader(guard);
                    return self.run_load(key, remote_key, completion, load).await;
                }
                Join::Wait(flight) => {
                    self.shared.stats.bump(Counter::WaitedForLoad);
                    match self.wait(&flight).await {
                        Outcome::Done(value) => return Ok(value),
                        Outcome::Failed(error) => match error.downcast::<E>() {
                            Ok(error) => return Err(error),
                            // Another call site with another error type led
                            // the load: load for ourselves, uncached.
                            Err(_) => return load().await.map(Arc::new).map_err(Arc::new),
                        },
                        Outcome::Abandoned => continue,
                        Outcome::Running => {
                            if flight.claim_takeover() {
                                tracing::warn!(memo = %self.shared.name, "load stalled; taking it over");
                                let completion = Completion::Takeover(flight);
                                return self.run_load(key, remote_key, completion, load).await;
                            }
                        }
                    }
                }
            }
        }
    }

    async fn run_load<F, Fut, E>(
        &self,
        key: KeyHash,
        remote_key: Option<String>,
        completion: Completion<'_, V>,
        load: F,
    ) -> Result<Arc<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let started = Instant::now();
        let result = load().await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.shared.stats.add(Counter::LoadNanos, nanos);
        match result {
            Ok(value) => {
                self.shared.stats.bump(Counter::Load);
                let value = Arc::new(value);
                let keep = self.cache_none || !is_none(&*value);
                let store = |v: &Arc<V>| {
                    if keep {
                        self.store(key, v);
                    }
                };
                let current = match completion {
                    Completion::Leader(guard) => guard.finish(&value, store),
                    Completion::Takeover(flight) => {
                        self.shared.flights.complete(key, &flight, &value, store)
                    }
                };
                if let (true, true, Some(remote_key)) = (current, keep, remote_key) {
                    self.remote_store(&remote_key, &value).await;
                }
                Ok(value)
            }
            Err(error) => {
                self.shared.stats.bump(Counter::LoadError);
                let error = Arc::new(error);
                let shared: SharedError = Arc::clone(&error) as SharedError;
                match completion {
                    Completion::Leader(guard) => guard.fail(shared),
                    Completion::Takeover(flight) => self.shared.flights.fail(key, &flight, shared),
                }
                Err(error)
            }
        }
    }

    /// Waits for `flight` to end; `Outcome::Running` means the stall timeout
    /// passed first.
    async fn wait(&self, flight: &Flight<V>) -> Outcome<V> {
        let stall = self.cache.config().stall_timeout;
        loop {
            let listener = flight.listen();
            let outcome = flight.outcome();
            if !matches!(outcome, Outcome::Running) {
                return outcome;
            }
            if !wait_at_most(listener, stall).await {
                return flight.outcome();
            }
        }
    }

    /// Forgets the value for `key`: Flask-Caching's
    /// `delete_memoized(f, *args)`. A load of `key` in flight does not store
    /// its result after this returns.
    pub async fn forget(&self, key: &K) {
        self.__forget_by(key).await;
    }

    /// [`Memo::forget`] with a key given as any value that serializes like
    /// `K`. Used by `#[memoize]`; not part of the stable API.
    #[doc(hidden)]
    pub async fn __forget_by<Q: Serialize + ?Sized>(&self, key: &Q) {
        self.shared.stats.bump(Counter::Invalidation);
        if let Backend::Remote(store) = &self.cache.inner.backend {
            let Ok(hash) = KeyHash::of(key) else { return };
            let Some(version) = self.remote_version().await else {
                return;
            };
            self.shared
                .flights
                .invalidate(hash.versioned(version), || {});
            let full = memo_key(self.prefix(), &self.shared.name, version, hash);
            if let Err(error) = store.delete(&full).await {
                self.store_fault("forget", error);
            }
            return;
        }
        let Some(key) = self.table_key(key) else {
            return;
        };
        self.shared.flights.invalidate(key, || {
            if let Some(table) = &self.shared.table {
                table.remove(&key);
            }
        });
    }

    /// Forgets every value of this memo: Flask-Caching's
    /// `delete_memoized(f)`. O(1): it bumps the memo's version, which is
    /// part of every key.
    pub async fn forget_all(&self) {
        self.shared.stats.bump(Counter::Invalidation);
        self.shared.version.fetch_add(1, Ordering::AcqRel);
        if let Backend::Remote(store) = &self.cache.inner.backend {
            if let Err(error) = store.incr(&self.version_key(), 1).await {
                self.store_fault("forget_all", error);
            }
        }
    }

    fn prefix(&self) -> &str {
        &self.cache.inner.config.key_prefix
    }

    /// Where a shared store keeps this memo's version.
    fn version_key(&self) -> String {
        format!("{}{}:ver", self.prefix(), self.shared.name)
    }

    fn store_fault(&self, operation: &str, error: crate::Error) {
        self.shared.stats.bump(Counter::StoreError);
        // Memos always fail open; strict mode only shapes the low-level API.
        let _ = self.cache.fault(operation, error, ());
    }

    /// The memo's version in the shared store; `None` if it cannot be read.
    async fn remote_version(&self) -> Option<u64> {
        let Backend::Remote(store) = &self.cache.inner.backend else {
            return Some(self.version());
        };
        match store.get(&self.version_key()).await {
            Ok(None) => Some(0),
            Ok(Some(bytes)) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .or(Some(0)),
            Err(error) => {
                self.store_fault("version", error);
                None
            }
        }
    }

    /// Looks the value up in the shared store, then loads through the
    /// in-process single-flight and stores the result there.
    async fn remote_get_or_load<F, Fut, E>(&self, hash: KeyHash, load: F) -> Result<Arc<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let Backend::Remote(store) = &self.cache.inner.backend else {
            return load().await.map(Arc::new).map_err(Arc::new);
        };
        let Some(version) = self.remote_version().await else {
            // The store is down: serve from the source, uncached.
            self.shared.stats.bump(Counter::Miss);
            return load().await.map(Arc::new).map_err(Arc::new);
        };
        let full = memo_key(self.prefix(), &self.shared.name, version, hash);
        match store.get(&full).await {
            Ok(Some(bytes)) => {
                let max = self.cache.inner.config.max_value_size;
                match crate::codec::decode::<V>(&bytes, max) {
                    Ok(Some(value)) => {
                        self.shared.stats.bump(Counter::HitRemote);
                        return Ok(Arc::new(value));
                    }
                    Ok(None) => {}
                    Err(error) => self.store_fault("decode", error),
                }
            }
            Ok(None) => {}
            Err(error) => {
                self.store_fault("get", error);
                self.shared.stats.bump(Counter::Miss);
                return load().await.map(Arc::new).map_err(Arc::new);
            }
        }
        self.shared.stats.bump(Counter::Miss);
        self.load_through(hash.versioned(version), Some(full), load)
            .await
    }

    async fn remote_store(&self, full_key: &str, value: &Arc<V>) {
        let Backend::Remote(store) = &self.cache.inner.backend else {
            return;
        };
        let max = self.cache.inner.config.max_value_size;
        let result = match crate::codec::encode(&**value, max) {
            Ok(bytes) => store.set(full_key, &bytes, self.lifetime).await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            self.store_fault("set", error);
        }
    }
}

/// Waits for `listener` up to `timeout` when a Tokio runtime with a timer is
/// at hand; otherwise (blocking callers, other runtimes) without a limit.
async fn wait_at_most(listener: EventListener, timeout: Duration) -> bool {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::time::timeout(timeout, listener).await.is_ok()
    } else {
        listener.await;
        true
    }
}

impl<K: ?Sized, V> fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo")
            .field("name", &self.shared.name)
            .field("lifetime", &self.lifetime)
            .field("cache_none", &self.cache_none)
            .finish_non_exhaustive()
    }
}

impl<K: ?Sized, V> fmt::Debug for MemoBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoBuilder")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("cache_none", &self.cache_none)
            .finish()
    }
}

#[cfg(test)]
mod tests;
