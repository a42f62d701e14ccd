//! Refresh ahead of expiry (Caffeine's `refreshAfterWrite`): a hit on a key
//! in the last part of its lifetime starts one reload in the background and
//! is served the current value meanwhile, so a hot key is reloaded before
//! it expires and its readers never wait for its load.
//!
//! # The rule
//!
//! A memo built with [`refresh_ahead(window, load)`](MemoBuilder::refresh_ahead)
//! checks, on each hit of its in-process tier, how long the entry has to
//! live. Within `window` of its expiry, the first such hit spawns a reload
//! on the Tokio runtime (with the loader given at build time: a call's own
//! loader borrows from the call and cannot outlive it) and every hit keeps
//! returning the current value.
//!
//! - **One reload per key in a process**: the reload leads the key's
//!   flight, so a caller that misses meanwhile (the entry expired before
//!   the reload ended) waits for it instead of loading again, and this
//!   process tries a key's entry once.
//! - **One reload per key in a fleet**: with a shared store, the reload
//!   first takes a lease on `{key}:refresh` (for `window`, at least 1 s);
//!   a process that does not get it leaves the refresh to the one that did,
//!   and reads the new value from the shared store when its own copy
//!   expires (one read, no load).
//! - **No stale set**: the new value replaces the stored one only if the
//!   stored bytes are still those the reload started from (the store's
//!   compare-and-set `fill`), and enters the in-process tier only if no
//!   invalidation came since (the flight), so a `forget` during a reload
//!   wins, in every process.
//!
//! # The window, bound and stated
//!
//! A value is served at most until its own expiry, never past it: refresh
//! ahead serves the current value *earlier* than expiry, not stale values
//! later. So readers never wait on a load when the load takes less than
//! `window` (and the key is read at least once in the window); a slower
//! load or a key first read in the last instant makes the readers that
//! come after the expiry wait for the reload already running, as a miss
//! would. A reload that panics keeps the current value until its expiry.
//!
//! # Cost
//!
//! Memos built without it pay nothing more (the option sits behind the same
//! `Option` as `unless` and `forced_update`). A memo built with it pays,
//! per hit, a second look at the entry for its expiry.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde::Serialize;

use super::{Memo, MemoBuilder};
use crate::clock::duration_ms;
use crate::codec;
use crate::flight::Join;
use crate::key::{KeyHash, memo_key};
use crate::stats::Counter;
use crate::value::CacheValue;

/// Starts a reload of a key: the loader given at build time, on an owned
/// copy of the key.
pub(super) type StartReload<K, V> = Arc<dyn Fn(&K) -> BoxFuture<'static, V> + Send + Sync>;

/// A memo's refresh-ahead settings, as the builder keeps them.
pub(super) struct RefreshSpec<K: ?Sized, V> {
    window: Duration,
    start: StartReload<K, V>,
}

impl<K: ?Sized, V> RefreshSpec<K, V> {
    pub(super) fn into_refresh(self) -> Refresh<K, V> {
        Refresh {
            window_ms: duration_ms(self.window),
            lease: self.window.max(Duration::from_secs(1)),
            start: self.start,
            tried: Mutex::new(HashMap::new()),
        }
    }
}

/// Refresh ahead on a built memo (shared by its handles' clones).
pub(super) struct Refresh<K: ?Sized, V> {
    window_ms: u64,
    /// How long the fleet-wide refresh lease holds.
    lease: Duration,
    start: StartReload<K, V>,
    /// The in-process entries (versioned keys) a reload was started for,
    /// and their expiry: each entry is tried once.
    tried: Mutex<HashMap<u128, u64>>,
}

/// Entries remembered as tried before expired ones are swept.
const TRIED_SWEEP: usize = 4096;

impl<K, V> Memo<K, V>
where
    K: Serialize + ?Sized + 'static,
    V: CacheValue,
{
    /// Whether the in-process entry `l1_key` is within `refresh`'s window
    /// of its expiry and no reload was started for it (asked by the probe,
    /// on a hit).
    pub(super) fn near_expiry(&self, refresh: &Refresh<K, V>, l1_key: KeyHash) -> bool {
        let Some(table) = &self.shared.table else {
            return false;
        };
        let now = self.cache.clock().now_ms();
        let Some(expires_at) = table.expires_at(&l1_key, now) else {
            return false;
        };
        expires_at != u64::MAX
            && expires_at - now <= refresh.window_ms
            && refresh
                .tried
                .lock()
                .get(&l1_key.0)
                .is_none_or(|&until| until <= now)
    }

    /// After a hit on `key` near its expiry: starts its reload, unless one
    /// was started for this entry already.
    #[cold]
    #[inline(never)]
    pub(super) fn refresh_ahead_of(&self, key: &K) {
        let Some(refresh) = self.calls.as_ref().and_then(|calls| calls.refresh.as_ref()) else {
            return;
        };
        let (Some(table), Ok(hash)) = (&self.shared.table, KeyHash::of(key)) else {
            return;
        };
        let group = match self.group_of(key) {
            Some(Ok(group)) => Some(group),
            Some(Err(_)) => return,
            None => None,
        };
        let Some(version) = self.shared.version_in(group) else {
            return;
        };
        let l1_key = hash.versioned(version);
        let now = self.cache.clock().now_ms();
        let Some(expires_at) = table.expires_at(&l1_key, now) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut tried = refresh.tried.lock();
            if tried.get(&l1_key.0).is_some_and(|&until| until > now) {
                return;
            }
            if tried.len() >= TRIED_SWEEP {
                tried.retain(|_, until| *until > now);
            }
            tried.insert(l1_key.0, expires_at);
        }
        let reload = (refresh.start)(key);
        let memo = self.clone();
        runtime.spawn(async move {
            memo.reload(hash, version, l1_key, reload).await;
            memo.shared.stats.bump(Counter::Refresh);
        });
    }

    /// The background reload of one entry (see the module docs).
    async fn reload(
        &self,
        hash: KeyHash,
        version: u64,
        l1_key: KeyHash,
        reload: BoxFuture<'static, V>,
    ) {
        let Join::Lead(guard) = self.shared.flights.join(l1_key) else {
            return; // a load of this key is running already
        };
        let mut remote = None;
        if self.cache.has_remote() {
            let remote_key = memo_key(
                &self.cache.config().key_prefix,
                &self.shared.name,
                version,
                hash,
            );
            let Some(refresh) = self.calls.as_ref().and_then(|c| c.refresh.as_ref()) else {
                return;
            };
            let lease_key = format!("{remote_key}:refresh");
            match self
                .cache
                .remote_lease(&lease_key, &codec::lease_token(), refresh.lease)
                .await
            {
                Ok(true) => {}
                // Another process refreshes it (or the store is out).
                _ => return,
            }
            match self.cache.remote_get(&remote_key).await {
                Ok(Some(current)) if !codec::is_lease(&current) => {
                    remote = Some((remote_key, current))
                }
                // Forgotten meanwhile, or the store is out: nothing to refresh.
                _ => return,
            }
        }
        let started = Instant::now();
        let value = Arc::new(reload.await);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.shared.stats.add(Counter::LoadNanos, nanos);
        self.shared.stats.bump(Counter::Load);
        if !self.keeps(&value) {
            return;
        }
        let lifetime = self.lifetime();
        if let Some((remote_key, current)) = remote {
            let Ok(bytes) = self.cache.encode_stamped(&*value, self.source) else {
                return;
            };
            match self
                .cache
                .remote_fill(&remote_key, &current, &bytes, lifetime)
                .await
            {
                Ok(true) => {}
                // A forget or a set came first: it wins.
                _ => return,
            }
        }
        let stored = guard.finish(&value, |value| {
            if let Some(table) = &self.shared.table {
                let expires_at = self.cache.clock().deadline(lifetime);
                self.keep_local(table, l1_key, value, expires_at);
            }
        });
        if stored {
            if let Some(refresh) = self.calls.as_ref().and_then(|c| c.refresh.as_ref()) {
                refresh.tried.lock().remove(&l1_key.0);
            }
        }
    }
}

impl<K, V> MemoBuilder<K, V>
where
    K: Serialize + Clone + Send + Sync + 'static,
    V: CacheValue,
{
    /// Reloads a hot key in the background before it expires: a hit within
    /// `window` of the entry's expiry starts one reload with `load` (one
    /// per key in the fleet, under a lease in a shared store) and returns
    /// the current value meanwhile, so readers of a key read at least once
    /// per `window` never wait for its load. Caffeine's
    /// `refreshAfterWrite`. Needs a Tokio runtime (hits outside one start
    /// no reload) and an in-process tier (`memory://`, `tiered+…`). See
    /// the module docs of `memo::refresh` in the source for the bound: no
    /// value is served past its own expiry.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memocache::{Cache, CacheConfig, Clock, Memo};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memocache::Error> {
    /// let clock = Clock::manual();
    /// let cache = Cache::with_clock(CacheConfig::memory(100), clock.clone())?;
    /// let rates: Memo<String, u32> = Memo::builder("rates")
    ///     .timeout(Duration::from_secs(60))
    ///     .refresh_ahead(Duration::from_secs(10), |currency: String| async move {
    ///         if currency == "eur" { 2 } else { 0 } // the source, read again
    ///     })
    ///     .build(&cache)?;
    /// let eur = "eur".to_owned();
    /// assert_eq!(*rates.get_or_load(&eur, || async { 1 }).await, 1);
    /// clock.advance(Duration::from_secs(55)); // within 10 s of expiry
    /// assert_eq!(*rates.get_or_load(&eur, || async { unreachable!() }).await, 1); // served now…
    /// while *rates.get(&eur).await.unwrap() == 1 {
    ///     tokio::task::yield_now().await; // …while the reload runs
    /// }
    /// clock.advance(Duration::from_secs(30)); // past the old expiry
    /// assert_eq!(*rates.get_or_load(&eur, || async { unreachable!() }).await, 2);
    /// # Ok(()) }
    /// ```
    pub fn refresh_ahead<F, Fut>(mut self, window: Duration, load: F) -> Self
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        let load = Arc::new(load);
        let start: StartReload<K, V> = Arc::new(move |key: &K| {
            let (load, key) = (Arc::clone(&load), key.clone());
            Box::pin(async move { load(key).await })
        });
        self.refresh = Some(RefreshSpec { window, start });
        self
    }
}
