//! Per-call options of a memo, as Flask-Caching's `memoize` has them:
//! `unless` (skip the cache for this call), `forced_update` (load and
//! store over the cached value) and a value filter (`response_filter`:
//! which results are kept).
//!
//! # Cost
//!
//! `unless` and `forced_update` are asked on every call, so a memo built
//! with either pays their call on its hits; a memo built with neither
//! pays one predictable branch (the two live behind one `Option`). The
//! filter is asked only when a loaded value is about to be stored.

use std::sync::Arc;

use serde::Serialize;

use super::load::{Instead, Probe};
use super::refresh::Refresh;
use super::{Memo, MemoBuilder};
use crate::key::KeyHash;
use crate::stats::Counter;
use crate::value::CacheValue;

/// A predicate asked on every call.
pub(super) type CallPredicate = Arc<dyn Fn() -> bool + Send + Sync>;
/// Which loaded values are kept.
pub(super) type ValueFilter<V> = Arc<dyn Fn(&V) -> bool + Send + Sync>;

/// What a memo built with `unless`, `forced_update` or `refresh_ahead`
/// does on each call, behind one `Option` on the memo (one branch for the
/// memos built with none).
pub(super) struct Calls<K: ?Sized, V> {
    pub(super) bypass: Bypass,
    pub(super) refresh: Option<Refresh<K, V>>,
}

/// The per-call predicates of a memo built with `unless` or
/// `forced_update`.
#[derive(Default)]
pub(super) struct Bypass {
    unless: Option<CallPredicate>,
    forced_update: Option<CallPredicate>,
}

impl Bypass {
    pub(super) fn decide(&self) -> Option<Instead> {
        if self.unless.as_ref().is_some_and(|unless| unless()) {
            return Some(Instead::Unless);
        }
        if self.forced_update.as_ref().is_some_and(|forced| forced()) {
            return Some(Instead::Forced);
        }
        None
    }
}

impl<K, V> Memo<K, V>
where
    K: Serialize + ?Sized + 'static,
    V: CacheValue,
{
    /// An in-process hit of a memo built with per-call options (the
    /// probe's hit arm): `unless` and `forced_update` turn it into a load;
    /// within the refresh window it is a [`Probe::HitNearExpiry`].
    #[cold]
    #[inline(never)]
    pub(super) fn hit_with_calls(
        &self,
        calls: &Calls<K, V>,
        value: Arc<V>,
        hash: KeyHash,
        group: Option<KeyHash>,
        version: u64,
    ) -> Probe<V> {
        match calls.bypass.decide() {
            Some(Instead::Unless) => return Probe::Uncacheable,
            Some(Instead::Forced) => return Probe::Forced { hash, group },
            None => {}
        }
        self.shared.stats.bump(Counter::HitLocal);
        match &calls.refresh {
            Some(refresh) if self.near_expiry(refresh, hash.versioned(version)) => {
                Probe::HitNearExpiry(value)
            }
            _ => Probe::Hit(value),
        }
    }

    /// Whether a loaded `value` is kept: `cache_none` and the filter.
    pub(super) fn keeps(&self, value: &V) -> bool {
        (self.cache_none || !crate::none::is_none(value))
            && self.filter.as_ref().is_none_or(|keep| keep(value))
    }
}

impl<K, V> MemoBuilder<K, V>
where
    K: Serialize + ?Sized + 'static,
    V: CacheValue,
{
    /// Skips the cache for the calls on which `unless` returns true: the
    /// loader runs, and nothing is read or stored (Flask-Caching's
    /// `memoize(unless=...)`). Asked on every call, hits included: keep it
    /// cheap (a flag, a task-local).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use memocache::{Cache, Memo};
    /// static PREVIEW: AtomicBool = AtomicBool::new(false);
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let pages: Memo<u64, String> = Memo::builder("pages")
    ///     .unless(|| PREVIEW.load(Ordering::Relaxed))
    ///     .build(&cache)?;
    /// pages.get_or_load(&1, || async { "published".to_owned() }).await;
    /// PREVIEW.store(true, Ordering::Relaxed);
    /// let draft = pages.get_or_load(&1, || async { "draft".to_owned() }).await;
    /// assert_eq!(*draft, "draft"); // neither read nor stored
    /// PREVIEW.store(false, Ordering::Relaxed);
    /// assert_eq!(*pages.get_or_load(&1, || async { unreachable!() }).await, "published");
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn unless(mut self, unless: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.bypass.get_or_insert_with(Bypass::default).unless = Some(Arc::new(unless));
        self
    }

    /// On the calls where `forced_update` returns true, loads and stores
    /// the result over the cached value, as [`Memo::set`] does (it
    /// overrides loads in flight and reaches every tier and process), and
    /// returns it (Flask-Caching's `memoize(forced_update=...)`). Asked on
    /// every call, hits included, after [`unless`](Self::unless).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use memocache::{Cache, Memo};
    /// static REFRESH: AtomicBool = AtomicBool::new(false);
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let rates: Memo<(), u32> = Memo::builder("rates")
    ///     .forced_update(|| REFRESH.load(Ordering::Relaxed))
    ///     .build(&cache)?;
    /// rates.get_or_load(&(), || async { 1 }).await;
    /// REFRESH.store(true, Ordering::Relaxed);
    /// assert_eq!(*rates.get_or_load(&(), || async { 2 }).await, 2); // loaded and stored
    /// REFRESH.store(false, Ordering::Relaxed);
    /// assert_eq!(*rates.get_or_load(&(), || async { unreachable!() }).await, 2);
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn forced_update(
        mut self,
        forced_update: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.bypass
            .get_or_insert_with(Bypass::default)
            .forced_update = Some(Arc::new(forced_update));
        self
    }

    /// Keeps only the loaded values `keep` accepts; the others are
    /// returned to their caller (and to callers waiting on the same load)
    /// but not stored, so the next call loads again (Flask-Caching's
    /// `response_filter`, for any value). Asked only when a value is
    /// loaded, never on a hit.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// // An empty search result is not kept: the index may be warming up.
    /// let search: Memo<String, Vec<u64>> = Memo::builder("search")
    ///     .filter(|hits: &Vec<u64>| !hits.is_empty())
    ///     .build(&cache)?;
    /// search.get_or_load(&"rust".to_owned(), || async { vec![] }).await;
    /// assert!(search.get(&"rust".to_owned()).await.is_none());
    /// search.get_or_load(&"rust".to_owned(), || async { vec![7] }).await;
    /// assert!(search.get(&"rust".to_owned()).await.is_some());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub fn filter(mut self, keep: impl Fn(&V) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(keep));
        self
    }
}
