//! [`Memo`]: one memoized function, typed by its key and value.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use crate::cache::Cache;
use crate::config::Timeout;
use crate::error::{Error, ErrorKind, Result};
use crate::intent::Intent;
use crate::key::KeyHash;
use crate::reach::Reach;
use crate::stats::MemoStats;
use crate::value::CacheValue;

mod group;
mod hooks;
mod load;
mod parts;
mod refresh;
mod shared;

use futures_util::future::Either;
pub use group::GroupedKey;
use hooks::{Bypass, Calls, ValueFilter};
use load::Probe;
pub use parts::{KeyParts, Part};
use refresh::RefreshSpec;
pub(crate) use shared::MemoShared;

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
/// # Keys
///
/// A key is the *value* of `K`: equal keys find one entry, in every process
/// and after every upgrade, and a `forget` with an equal key forgets it.
/// `K` needs only `Serialize`; the stored key is a stable hash of its
/// serialization, made canonical wherever a serialization would depend on
/// more than the value: a map's entries (a `HashMap` iterates in a
/// per-instance order) and a hash set's elements are written in one
/// canonical order, `-0.0` counts as `0.0`, and every NaN as one NaN. So a
/// `HashMap` or `HashSet` is as good a key as a `BTreeMap` or `BTreeSet`
/// (and gives the same one). What serde cannot show stays yours: a
/// `Serialize` of your own that writes a sequence from some other
/// unordered collection must sort it, and `#[serde(skip)]` fields are not
/// part of the key.
///
/// ```
/// use std::collections::HashMap;
/// use memocache::{Cache, Memo};
/// # futures::executor::block_on(async {
/// let cache = Cache::memory();
/// let totals: Memo<HashMap<String, i64>, i64> = Memo::builder("totals").build(&cache)?;
/// let a = HashMap::from([("x".to_owned(), 1), ("y".to_owned(), 2)]);
/// let b = HashMap::from([("y".to_owned(), 2), ("x".to_owned(), 1)]); // equal, built anew
/// totals.set(&a, 3).await;
/// assert_eq!(totals.get(&b).await.as_deref(), Some(&3));
/// totals.forget(&b).await; // forgets `a`'s entry: the keys are equal
/// assert!(totals.get(&a).await.is_none());
/// # Ok::<(), memocache::Error>(()) }).unwrap();
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
pub struct Memo<K: ?Sized, V: Send + Sync> {
    shared: Arc<MemoShared<V>>,
    cache: Cache,
    /// The timeout this handle was built with, until one is set at run
    /// time ([`Memo::lifetime`] reads both).
    built_lifetime: Option<Duration>,
    cache_none: bool,
    /// The group of a key, for a grouped memo.
    group_of: Option<GroupOf<K>>,
    /// The source hash stamped on values in a shared store (0: none).
    source: u64,
    /// `unless`, `forced_update` and refresh ahead, if any was given.
    calls: Option<Arc<Calls<K, V>>>,
    /// Which loaded values are kept.
    filter: Option<ValueFilter<V>>,
    /// What a value weighs in a byte-bounded in-process tier (`None`: its
    /// encoded size).
    weigher: Option<Weigher<V>>,
    _key: PhantomData<fn(&K)>,
}

/// What a value weighs, in bytes (see [`MemoBuilder::weigher`]).
type Weigher<V> = Arc<dyn Fn(&V) -> u64 + Send + Sync>;

/// How a grouped memo finds a key's group.
type GroupOf<K> = fn(&K) -> Result<KeyHash>;

/// Marks a builder's key and value types without owning either.
type KeyAndValue<K, V> = (fn(&K), fn() -> V);

/// Settings of a [`Memo`] before it is bound to a cache.
///
/// ```
/// use std::time::Duration;
/// use memocache::{Cache, Memo, MemoBuilder};
/// let cache = Cache::memory();
/// let builder: MemoBuilder<u64, String> = Memo::builder("names").timeout(Duration::from_secs(60));
/// let names = builder.build(&cache)?;
/// # Ok::<(), memocache::Error>(())
/// ```
#[must_use]
pub struct MemoBuilder<K: ?Sized, V> {
    name: String,
    timeout: Timeout,
    cache_none: bool,
    group_of: Option<GroupOf<K>>,
    source: u64,
    bypass: Option<Bypass>,
    refresh: Option<RefreshSpec<K, V>>,
    filter: Option<ValueFilter<V>>,
    weigher: Option<Weigher<V>>,
    _types: PhantomData<KeyAndValue<K, V>>,
}

impl<K: ?Sized, V: Send + Sync> Clone for Memo<K, V> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            cache: self.cache.clone(),
            built_lifetime: self.built_lifetime,
            cache_none: self.cache_none,
            group_of: self.group_of,
            source: self.source,
            calls: self.calls.clone(),
            filter: self.filter.clone(),
            weigher: self.weigher.clone(),
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
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// assert_eq!(memo.name(), "names");
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn builder(name: impl Into<String>) -> MemoBuilder<K, V> {
        MemoBuilder {
            name: name.into(),
            timeout: Timeout::Default,
            cache_none: false,
            group_of: None,
            source: 0,
            bypass: None,
            refresh: None,
            filter: None,
            weigher: None,
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
    ///
    /// ```
    /// use std::time::Duration;
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").timeout(Duration::from_secs(600)).build(&cache)?;
    ///
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Timeout::After(timeout);
        self
    }

    /// Results never expire (they still leave on eviction or invalidation).
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").no_timeout().build(&cache)?;
    ///
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Timeout::Never;
        self
    }

    /// Whether a `None` (or `()`) result is cached. Off by default, as
    /// Flask-Caching's `cache_none=False`: a `None` is returned to the
    /// caller but the next call loads again.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let lookup: Memo<u64, Option<String>> = Memo::builder("lookup").cache_none(true).build(&cache)?;
    /// let missing = lookup.get_or_load(&404, || async { None }).await;
    /// assert!(missing.is_none());
    /// assert!(lookup.get(&404).await.is_some()); // the `None` itself is kept
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn cache_none(mut self, cache_none: bool) -> Self {
        self.cache_none = cache_none;
        self
    }

    /// Stamps the values this memo keeps in a shared store with `hash`, a
    /// hash of the code that computes them: a value stored by a build with
    /// another hash (or none) is a miss, and is replaced by a fresh load.
    /// Flask-Caching's `source_check=True`. `#[memoize]` gives each memo a
    /// hash of its function's tokens by default (see its "Source check").
    /// `0` means no stamp, the default.
    ///
    /// Only the values change: names, versions and key hashes do not, so a
    /// `forget` or `forget_all` made by either build reaches the other's
    /// entries too, in every process. The in-process tier needs no stamp
    /// (one process runs one build), so a hit costs the same. While two
    /// builds with different hashes share a store (a rolling deploy), each
    /// reads the other's value of a key as a miss and replaces it: more
    /// loads for that time, never the other build's value.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").source_hash(0x5eed).build(&cache)?;
    /// memo.set(&1, "ada".to_owned()).await;
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn source_hash(mut self, hash: u64) -> Self {
        self.source = hash;
        self
    }

    /// How many bytes a value of this memo holds, for an in-process tier
    /// bounded by bytes ([`CacheConfig::capacity_bytes`](crate::CacheConfig::capacity_bytes));
    /// asked once per value stored there, never on a hit, and never
    /// without a byte budget. Without one, a value weighs its encoded
    /// size (the compact encoding a shared store keeps, counted without
    /// being made: one walk of the value per store). Give one when that
    /// walk is costly (a large `Vec` of numbers) or far from the value's
    /// memory (capacity kept beyond the length, shared `Arc`s). The
    /// tier keeps a 96-bit hash of the key, not the key, so only the
    /// value is weighed; 64 bytes of bookkeeping are added to each.
    ///
    /// ```
    /// use memocache::{Cache, CacheConfig, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::new(CacheConfig::memory(10_000).capacity_bytes(1 << 20))?;
    /// let thumbnails: Memo<u64, Vec<u8>> = Memo::builder("thumbnails")
    ///     .weigher(|png: &Vec<u8>| png.capacity() as u64)
    ///     .build(&cache)?;
    /// thumbnails.set(&1, vec![0; 50 << 10]).await; // 50 KiB: kept
    /// thumbnails.set(&2, vec![0; 100 << 10]).await; // over 64 KiB: not kept
    /// assert!(thumbnails.get(&1).await.is_some() && thumbnails.get(&2).await.is_none());
    /// assert_eq!(thumbnails.stats().too_large, 1);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn weigher(mut self, weigh: impl Fn(&V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigh));
        self
    }

    /// Binds the memo to `cache`.
    ///
    /// # Errors
    /// [`ErrorKind::MemoTypeMismatch`](crate::ErrorKind::MemoTypeMismatch)
    /// if a memo of this name with other types is already built on `cache`.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// let cache = Cache::memory();
    /// let a: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// let b: Memo<u64, String> = Memo::builder("names").build(&cache)?; // the same memo
    /// assert!(Memo::<String, u64>::builder("names").build(&cache).is_err());
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn build(self, cache: &Cache) -> Result<Memo<K, V>> {
        let shared = cache
            .registry()
            .get_or_register::<K, V, _>(&self.name, || {
                Arc::new(MemoShared::<V>::new(
                    &self.name,
                    cache.l1_bound(),
                    cache.has_remote(),
                    Arc::clone(cache.stamps()),
                    self.group_of.is_some(),
                ))
            })?;
        if shared.groups.is_some() != self.group_of.is_some() {
            return Err(Error::new(
                ErrorKind::MemoTypeMismatch,
                format!(
                    "memo `{}` is already built on this cache {} groups: build every handle \
                     of it alike",
                    self.name,
                    if shared.groups.is_some() {
                        "with"
                    } else {
                        "without"
                    }
                ),
            ));
        }
        Ok(Memo {
            shared,
            cache: cache.clone(),
            built_lifetime: self.timeout.resolve(cache.config().default_timeout),
            cache_none: self.cache_none,
            group_of: self.group_of,
            source: self.source,
            calls: match (self.bypass, self.refresh) {
                (None, None) => None,
                (bypass, refresh) => Some(Arc::new(Calls {
                    bypass: bypass.unwrap_or_default(),
                    refresh: refresh.map(RefreshSpec::into_refresh),
                })),
            },
            filter: self.filter,
            weigher: self.weigher,
            _key: PhantomData,
        })
    }
}

impl<K, V> Memo<K, V>
where
    K: Serialize + ?Sized + 'static,
    V: CacheValue,
{
    /// The memo's name.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// assert_eq!(memo.name(), "names");
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The cache this memo stores into.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// assert_eq!(memo.cache().config(), cache.config());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// This memo's counters.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// memo.get_or_load(&1, || async { "ada".to_owned() }).await;
    /// assert_eq!(memo.stats().loads, 1);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn stats(&self) -> MemoStats {
        self.shared.stats.snapshot()
    }

    /// Entries this memo keeps in process now (0 without an in-process
    /// tier), whatever their version: entries forgotten by a
    /// [`Memo::forget_all`] leave as they are evicted.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// memo.set(&1, "ada".to_owned()).await;
    /// assert_eq!(memo.local_entries(), 1);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn local_entries(&self) -> usize {
        self.shared.table.as_ref().map_or(0, |t| t.len())
    }

    /// What this memo's entries in process weigh now, in bytes, as
    /// weighed against the byte budget
    /// ([`CacheConfig::capacity_bytes`](crate::CacheConfig::capacity_bytes)):
    /// never more than the budget. `None` without one.
    ///
    /// ```
    /// use memocache::{Cache, CacheConfig, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::new(CacheConfig::from_url("memory://?capacity_bytes=1MiB")?)?;
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// memo.set(&1, "ada".to_owned()).await;
    /// assert_eq!(memo.local_bytes(), Some(4 + 64)); // encoded, and bookkeeping
    /// assert_eq!(Memo::<u64, u64>::builder("n").build(&Cache::memory())?.local_bytes(), None);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn local_bytes(&self) -> Option<u64> {
        let table = self.shared.table.as_ref()?;
        table.weighs().then(|| table.weight())
    }

    /// The current version (bumped by every [`Memo::forget_all`]); with a
    /// shared store, this process's mirror of it.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// let before = memo.version();
    /// memo.forget_all().await;
    /// assert!(memo.version() > before);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// How long values stored from now on live (`None`: until evicted or
    /// forgotten): the timeout set by [`Memo::set_timeout`] if one was,
    /// else the one this handle was built with.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memocache::{Cache, Memo};
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").timeout(Duration::from_secs(60)).build(&cache)?;
    /// assert_eq!(memo.timeout(), Some(Duration::from_secs(60)));
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        self.lifetime()
    }

    /// Changes how long the values stored from now on live, for every
    /// handle of this memo on this cache: those built before and after,
    /// and the function of a `#[memoize]` (reach it with `<name>_memo`).
    /// Flask-Caching's `f.cache_timeout = …`. Values already stored keep
    /// the lifetime they were stored with; [`Timeout::Default`] is the
    /// cache's default timeout, [`Timeout::Never`] and a zero duration never
    /// expire. A load in flight as it changes stores with the old timeout
    /// or the new one. It is this process's setting: other processes of a
    /// fleet keep theirs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memocache::{Cache, Clock, CacheConfig, Memo, Timeout};
    /// # futures::executor::block_on(async {
    /// let clock = Clock::manual();
    /// let cache = Cache::with_clock(CacheConfig::memory(100), clock.clone())?;
    /// let memo: Memo<u64, String> = Memo::builder("names").timeout(Duration::from_secs(60)).build(&cache)?;
    ///
    /// memo.set_timeout(Timeout::secs(5)); // read by the next store
    /// memo.set(&1, "ada".to_owned()).await;
    /// clock.advance(Duration::from_secs(5));
    /// assert!(memo.get(&1).await.is_none());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn set_timeout(&self, timeout: Timeout) {
        let lifetime = timeout.resolve(self.cache.config().default_timeout);
        self.shared.timeout.set(lifetime);
    }

    /// The cached value for `key`, if any tier holds one; never loads.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// assert!(memo.get(&1).await.is_none());
    /// memo.get_or_load(&1, || async { "ada".to_owned() }).await;
    /// assert_eq!(memo.get(&1).await.as_deref().map(String::as_str), Some("ada"));
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn get(&self, key: &K) -> Option<Arc<V>> {
        self.lookup_only(key).await
    }

    /// Stores `value` for `key` (priming the memo) in every tier, replacing
    /// any value and overriding any load in flight for `key`.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// memo.set(&1, "ada".to_owned()).await; // e.g. right after writing the row
    /// let name = memo.get_or_load(&1, || async { unreachable!("primed") }).await;
    /// assert_eq!(*name, "ada");
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn set(&self, key: &K, value: V) -> Arc<V> {
        let value = Arc::new(value);
        self.prime(key, &value).await;
        value
    }

    /// The cached value for `key`, or the result of `load` (stored for the
    /// memo's timeout). Store faults never reach the caller: the value is
    /// loaded instead (fail-open).
    ///
    /// The in-process lookup happens when this is called; only a miss does
    /// work when the returned future is polled, so a hit costs no future
    /// machinery.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// let name = memo.get_or_load(&7, || async { "ada".to_owned() }).await;
    /// assert_eq!(*name, "ada");
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn get_or_load<'a, F, Fut>(&'a self, key: &K, load: F) -> impl Future<Output = Arc<V>> + 'a
    where
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = V> + 'a,
    {
        match self.probe::<_, _, true>(key, || self.group_of(key)) {
            // A hit is a ready future: no state machine to build or poll.
            // The miss path is boxed so the future stays two words wide:
            // callers move it (into `.await` state, `now_or_never`), and a
            // future holding the whole load state costs a large memcpy on
            // every hit.
            Probe::Hit(value) => Either::Left(std::future::ready(value)),
            Probe::HitNearExpiry(value) => {
                self.refresh_ahead_of(key);
                Either::Left(std::future::ready(value))
            }
            probe => Either::Right(Box::pin(async move {
                let load = || async { Ok::<V, std::convert::Infallible>(load().await) };
                match self.finish(probe, load).await {
                    Ok(value) => value,
                    Err(never) => match *never {},
                }
            })),
        }
    }

    /// As [`Memo::get_or_load`] for a loader that can fail. An error is
    /// returned to this caller and to callers waiting on the same load, as
    /// an `Arc<E>`, and is never cached.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// let failed = memo.get_or_try_load(&1, || async { Err::<String, _>("db down") }).await;
    /// assert_eq!(*failed.unwrap_err(), "db down");
    /// let name = memo.get_or_try_load(&1, || async { Ok::<_, &str>("ada".to_owned()) }).await;
    /// assert_eq!(name.as_deref().map(String::as_str), Ok("ada")); // the error was not cached
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
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
        match self.probe::<_, _, true>(key, || self.group_of(key)) {
            Probe::Hit(value) => Either::Left(std::future::ready(Ok(value))),
            Probe::HitNearExpiry(value) => {
                self.refresh_ahead_of(key);
                Either::Left(std::future::ready(Ok(value)))
            }
            probe => Either::Right(Box::pin(self.finish(probe, load))),
        }
    }

    /// [`Memo::get_or_try_load`] with the key as `#[memoize]` gives it:
    /// its parameters borrowed, checked against `K` (see [`Part`]). Used
    /// by `#[memoize]`; not part of the stable API.
    #[doc(hidden)]
    pub fn __get_or_try_load_by<'a, Q, F, Fut, E>(
        &'a self,
        key: Q,
        load: F,
    ) -> impl Future<Output = Result<Arc<V>, Arc<E>>> + 'a
    where
        Q: KeyParts<K>,
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<V, E>> + 'a,
        E: Send + Sync + 'static,
    {
        // No refresh ahead here: a reload needs the key as a `K`.
        match self.probe::<_, _, true>(&key, || key.group()) {
            Probe::Hit(value) | Probe::HitNearExpiry(value) => {
                Either::Left(std::future::ready(Ok(value)))
            }
            probe => Either::Right(Box::pin(self.finish(probe, load))),
        }
    }

    /// Blocking [`Memo::get_or_load`], for plain (non-async) functions.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, u64> = Memo::builder("square").build(&cache)?;
    /// assert_eq!(*memo.get_or_load_blocking(&12, || 144), 144);
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn get_or_load_blocking(&self, key: &K, load: impl FnOnce() -> V) -> Arc<V> {
        futures_executor::block_on(self.get_or_load(key, || async move { load() }))
    }

    /// Blocking [`Memo::get_or_try_load`], for plain (non-async) functions.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// let cache = Cache::memory();
    /// let memo: Memo<String, u64> = Memo::builder("parse").build(&cache)?;
    /// let n = memo.get_or_try_load_blocking(&"42".to_owned(), || "42".parse::<u64>());
    /// assert_eq!(n.map(|n| *n).ok(), Some(42));
    /// # Ok::<(), memocache::Error>(())
    /// ```
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

    /// Forgets the value for `key`: Flask-Caching's
    /// `delete_memoized(f, *args)`. When this returns and the answer
    /// [`is_fleet`](Reach::is_fleet), no tier of any process serves the old
    /// value, and a load of `key` that started before does not store its
    /// result. This process never serves it again, whatever the answer;
    /// one that missed the shared store or the bus may leave the old value
    /// in other processes until its timeout: keep it and deliver it again,
    /// or record it with the write in an [`Outbox`](crate::outbox::Outbox).
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// memo.set(&1, "ada".to_owned()).await;
    /// let reach = memo.forget(&1).await; // e.g. at logout
    /// assert!(reach.is_fleet() && memo.get(&1).await.is_none());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn forget(&self, key: &K) -> Reach {
        self.forget_hashed(KeyHash::of(key), self.group_of(key))
            .await
    }

    /// [`Memo::forget`] with the key as `#[memoize]` gives it: its
    /// parameters borrowed, checked against `K` (see [`Part`]). Used by
    /// `#[memoize]`; not part of the stable API.
    #[doc(hidden)]
    pub async fn __forget_by<Q: KeyParts<K>>(&self, key: Q) -> Reach {
        self.forget_hashed(KeyHash::of(&key), key.group()).await
    }

    async fn forget_hashed(&self, hash: Result<KeyHash>, group: Option<Result<KeyHash>>) -> Reach {
        let (hash, group) = match (hash, group.transpose()) {
            (Ok(hash), Ok(group)) => (hash, group),
            (Err(error), _) | (_, Err(error)) => {
                // Never cached under any key: nothing to forget anywhere.
                tracing::warn!(memo = %self.shared.name, %error, "key not cacheable");
                return Reach::FLEET;
            }
        };
        match (group, self.shared.groups.is_some()) {
            (group, true) if group.is_none() => {
                tracing::warn!(memo = %self.shared.name, "forget on a grouped memo without the key's group: forgetting all");
                self.forget_all().await
            }
            (group, grouped) => self.forget_hash(hash, group.filter(|_| grouped)).await,
        }
    }

    /// What [`Memo::forget`] of `key` does, as a value to record with a
    /// write and deliver later, from any process (see [`crate::outbox`]).
    ///
    /// ```
    /// use memocache::{Cache, Memo, outbox::Intent};
    /// let cache = Cache::memory();
    /// let users: Memo<u64, String> = Memo::builder("users").build(&cache)?;
    /// let intent = users.intent(&7)?;
    /// assert!(matches!(intent, Intent::Key { ref memo, .. } if memo == "users"));
    /// # Ok::<(), memocache::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) when `key` cannot be
    /// serialized.
    pub fn intent(&self, key: &K) -> Result<Intent> {
        let memo = match self.group_of(key).transpose()? {
            Some(group) => crate::key::group_name(&self.shared.name, group),
            None => self.shared.name.to_string(),
        };
        Ok(Intent::Key {
            memo,
            hash: KeyHash::of(key)?.0,
        })
    }

    /// What [`Memo::forget_all`] does, as a value to record with a write
    /// and deliver later (see [`crate::outbox`]).
    ///
    /// ```
    /// use memocache::{Cache, Memo, outbox::Intent};
    /// let cache = Cache::memory();
    /// let feed: Memo<(), Vec<String>> = Memo::builder("feed").build(&cache)?;
    /// assert_eq!(feed.intent_all(), Intent::All { memo: "feed".into() });
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn intent_all(&self) -> Intent {
        Intent::All {
            memo: self.shared.name.to_string(),
        }
    }

    /// Forgets every value of this memo: Flask-Caching's
    /// `delete_memoized(f)`. O(1): it bumps the memo's version, which is
    /// part of every key (one `INCR` on a shared store). Says whether the
    /// whole fleet was reached, as [`Memo::forget`] does.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let memo: Memo<u64, String> = Memo::builder("names").build(&cache)?;
    /// memo.set(&1, "ada".to_owned()).await;
    /// memo.set(&2, "grace".to_owned()).await;
    /// assert!(memo.forget_all().await.is_fleet()); // e.g. after a message is posted
    /// assert!(memo.get(&1).await.is_none() && memo.get(&2).await.is_none());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn forget_all(&self) -> Reach {
        self.bump_version().await
    }
}

impl<K, V> Memo<K, V>
where
    K: ?Sized,
    V: CacheValue,
{
    /// Keeps `value` in the in-process tier under `key` until
    /// `expires_at`, weighed if the tier is bounded by bytes; a value too
    /// heavy to keep is counted.
    pub(super) fn keep_local(
        &self,
        table: &crate::local::LocalTable<Arc<V>>,
        key: KeyHash,
        value: &Arc<V>,
        expires_at: u64,
    ) {
        let weigh = |value: &Arc<V>| match &self.weigher {
            Some(weigh) => weigh(value),
            None => crate::value::encoded_size(&**value),
        };
        if table.insert(key, Arc::clone(value), expires_at, weigh) == crate::local::Stored::TooLarge
        {
            self.shared.stats.too_large();
        }
    }
}

impl<K: ?Sized, V: Send + Sync> Memo<K, V> {
    /// The lifetime of a value stored now (`None` = forever).
    fn lifetime(&self) -> Option<Duration> {
        self.shared.timeout.get().unwrap_or(self.built_lifetime)
    }
}

impl<K: ?Sized, V: Send + Sync> fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo")
            .field("name", &self.shared.name)
            .field("lifetime", &self.lifetime())
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
