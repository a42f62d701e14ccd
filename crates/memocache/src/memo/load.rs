//! How a memo finds a value: the in-process tier, then the shared store,
//! then the loader, with one load per key in flight; and how it forgets.
//!
//! Order of an invalidation, in every mode: change the shared store first,
//! then evict the in-process tier and detach loads in flight (under the
//! flight lock, so a load that started before cannot store afterwards),
//! then tell the other processes. A load that starts after the shared store
//! changed reads the new state; one that started before is detached.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use event_listener::EventListener;
use serde::Serialize;

use super::Memo;
use crate::bus::Invalidation;
use crate::codec;
use crate::flight::{Flight, Join, LeaderGuard, Outcome, SharedError};
use crate::key::{KeyHash, memo_key};
use crate::reach::Reach;
use crate::registry::MemoControl;
use crate::stats::Counter;
use crate::value::CacheValue;

/// What a call does instead of the ordinary lookup.
#[derive(Clone, Copy)]
pub(crate) enum Instead {
    /// Load without reading or storing (`unless` said so).
    Unless,
    /// Load and store over the cached value (`forced_update` said so).
    Forced,
}

/// The outcome of the in-process lookup.
pub(super) enum Probe<V> {
    Hit(Arc<V>),
    /// No in-process hit. `l1_version` is the version the L1 was probed at
    /// when it was consulted (known and trusted), else `None`.
    Miss {
        hash: KeyHash,
        /// The key's group, on a grouped memo.
        group: Option<KeyHash>,
        l1_version: Option<u64>,
    },
    /// An in-process hit within the refresh window of a memo built with
    /// refresh ahead: served, and a reload may start (see `refresh`).
    HitNearExpiry(Arc<V>),
    /// The key could not be serialized (or `unless` said so): load
    /// without caching.
    Uncacheable,
    /// `forced_update` said so: load and store over the cached value.
    Forced {
        hash: KeyHash,
        group: Option<KeyHash>,
    },
}

/// Where a miss looks and stores.
struct Route {
    /// The versioned key: of the flight, and of the L1 entry.
    key: KeyHash,
    /// The key in the shared store, if there is one.
    remote_key: Option<String>,
    /// Whether results go into the in-process tier.
    use_l1: bool,
}

/// How long a lease holds a key for its loader; a crashed loader's lease
/// frees the key after this.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a process waiting for another's load looks for the value
/// (on Tokio's clock). The shared stores offer no cheap notification of a
/// key's change (Redis keyspace events cost every write of the server), so
/// the wait polls.
const LEASE_POLL: Duration = Duration::from_millis(2);

/// What the shared store said about a missing key.
enum Claim<V> {
    /// A value another process stored.
    /// A value another process stored, and how long the store keeps it
    /// (`None`: unknown or forever).
    Found(Arc<V>, Option<Duration>),
    /// The right to load and store: our lease token.
    Lease(Vec<u8>),
    /// Neither (the store is down, or the wait ran out): load, do not store.
    Nothing,
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
    /// Looks `key` up in the in-process tier, if it has one it may trust.
    /// `group` gives the key's group (see `group`), asked for only on a
    /// grouped memo, where it is required.
    /// With `CALLS`, a memo built with per-call options (`unless`,
    /// `forced_update`, refresh ahead) applies them to a hit here, off the
    /// hit path of the memos built without (see `hooks`); misses apply
    /// them in [`Memo::finish`].
    #[inline]
    pub(super) fn probe<Q, G, const CALLS: bool>(&self, key: &Q, group: G) -> Probe<V>
    where
        Q: Serialize + ?Sized,
        G: FnOnce() -> Option<crate::error::Result<KeyHash>>,
    {
        let hash = match KeyHash::of(key) {
            Ok(hash) => hash,
            Err(error) => {
                tracing::warn!(memo = %self.shared.name, %error, "key not cacheable");
                crate::deps::record_untracked();
                return Probe::Uncacheable;
            }
        };
        let group = match self.shared.groups {
            None => None,
            Some(_) => match self.resolve_group(group()) {
                Some(group) => Some(group),
                None => return Probe::Uncacheable,
            },
        };
        // Before the value is read: see `crate::deps`.
        crate::deps::record_key(&self.shared.stamps, self.shared.scope, hash.0, || {
            self.cache.deps_tracked()
        });
        let Some(table) = &self.shared.table else {
            return Probe::Miss {
                hash,
                group,
                l1_version: None,
            };
        };
        let now = self.cache.clock().now_ms();
        if !self.cache.l1_trusted() || !self.shared.version_known.load(Ordering::Acquire) {
            return Probe::Miss {
                hash,
                group,
                l1_version: None,
            };
        }
        let version = match group {
            None => self.version(),
            Some(_) => match self.shared.version_in(group) {
                Some(version) => version,
                None => {
                    return Probe::Miss {
                        hash,
                        group,
                        l1_version: None,
                    };
                }
            },
        };
        match table.get(&hash.versioned(version), now) {
            Some(value) => {
                if let (true, Some(calls)) = (CALLS, &self.calls) {
                    return self.hit_with_calls(calls, value, hash, group, version);
                }
                self.shared.stats.bump(Counter::HitLocal);
                Probe::Hit(value)
            }
            None => Probe::Miss {
                hash,
                group,
                l1_version: Some(version),
            },
        }
    }

    /// The group a grouped memo's caller gave; `None` (logged) when it
    /// gave none or it cannot be hashed: the call is not cached.
    #[cold]
    #[inline(never)]
    fn resolve_group(&self, group: Option<crate::error::Result<KeyHash>>) -> Option<KeyHash> {
        let error = match group {
            Some(Ok(group)) => return Some(group),
            Some(Err(error)) => error.to_string(),
            None => "a grouped memo called without the key's group".to_owned(),
        };
        tracing::warn!(memo = %self.shared.name, %error, "key's group not cacheable");
        crate::deps::record_untracked();
        None
    }

    pub(super) async fn finish<F, Fut, E>(&self, probe: Probe<V>, load: F) -> Result<Arc<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        // A miss of a memo built with `unless` or `forced_update` asks them
        // here (a hit asked them in the probe).
        if let Probe::Miss { hash, group, .. } = probe {
            match self.calls.as_ref().and_then(|calls| calls.bypass.decide()) {
                Some(Instead::Unless) => return load().await.map(Arc::new).map_err(Arc::new),
                Some(Instead::Forced) => return self.load_forced(hash, group, load).await,
                None => {}
            }
        }
        match probe {
            Probe::Hit(value) | Probe::HitNearExpiry(value) => Ok(value),
            Probe::Uncacheable => load().await.map(Arc::new).map_err(Arc::new),
            Probe::Forced { hash, group } => self.load_forced(hash, group, load).await,
            Probe::Miss {
                hash,
                group: None,
                l1_version: None,
            } if self.cache.has_remote() && !self.l1_usable() => {
                self.remote_first(hash, load).await
            }
            Probe::Miss {
                hash,
                group,
                l1_version,
            } => match self.route(hash, group, l1_version).await {
                Some(route) => self.load_through(route, load).await,
                // The shared store is down and the version unknown: serve
                // from the source, uncached (fail-open).
                None => self.load_uncached(hash, group, load).await,
            },
        }
    }

    /// A forced update: loads, stores over the cached value (as
    /// [`Memo::set`] does) if the value is kept, and returns it.
    async fn load_forced<F, Fut, E>(
        &self,
        hash: KeyHash,
        group: Option<KeyHash>,
        load: F,
    ) -> Result<Arc<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let value = Arc::new(load().await.map_err(Arc::new)?);
        if self.keeps(&value) {
            self.prime_hashed(hash, group, &value).await;
        }
        Ok(value)
    }

    /// Whether a trusted L1 is there to fill (then a first miss learns the
    /// version on its own, so the value can go into the L1 under a flight).
    fn l1_usable(&self) -> bool {
        self.shared.table.is_some() && self.cache.l1_trusted()
    }

    /// A miss with no trusted L1 in front of a shared store: read the
    /// version and the value in one round trip, and go through a flight only
    /// when the store has nothing.
    async fn remote_first<F, Fut, E>(&self, hash: KeyHash, load: F) -> Result<Arc<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let value_prefix = format!("{}{}:", self.prefix(), self.shared.name);
        let value_suffix = format!(":{hash}");
        let mark = self.shared.version_news_mark();
        let read = self
            .cache
            .remote_get_versioned(
                &self.version_key(),
                &value_prefix,
                &value_suffix,
                self.version(),
            )
            .await;
        let Some(read) = read else {
            return load().await.map(Arc::new).map_err(Arc::new);
        };
        let version = match read {
            Ok((stored, bytes)) => {
                let version = self.shared.adopt_version(stored, mark);
                if version == stored
                    && let Some(value) = bytes.and_then(|b| self.decode(&b))
                {
                    self.shared.stats.bump(Counter::HitRemote);
                    return Ok(value);
                }
                version
            }
            Err(error) => {
                self.store_fault("get", error);
                return self.load_uncached(hash, None, load).await;
            }
        };
        let route = Route {
            key: hash.versioned(version),
            remote_key: Some(format!("{value_prefix}{version}{value_suffix}")),
            use_l1: self.shared.table.is_some() && self.cache.l1_trusted(),
        };
        self.load_through(route, load).await
    }

    /// Loads from the source without storing anything (the shared store is
    /// out, or skipped by its breaker), still one load per key in this
    /// process: under load, a store outage must not multiply the database
    /// reads by the number of concurrent requests. The flight is keyed by
    /// the locally mirrored version, which a local `forget_all` bumps and a
    /// local `forget` invalidates, so no caller joins a load that started
    /// before an invalidation made here.
    async fn load_uncached<F, Fut, E>(
        &self,
        hash: KeyHash,
        group: Option<KeyHash>,
        load: F,
    ) -> Result<Arc<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let route = Route {
            key: hash.versioned(self.local_version(group)),
            remote_key: None,
            use_l1: false,
        };
        self.load_through(route, load).await
    }

    async fn route(
        &self,
        hash: KeyHash,
        group: Option<KeyHash>,
        l1_version: Option<u64>,
    ) -> Option<Route> {
        if !self.cache.has_remote() {
            let version = l1_version.unwrap_or_else(|| self.local_version(group));
            return Some(Route {
                key: hash.versioned(version),
                remote_key: None,
                use_l1: self.shared.table.is_some(),
            });
        }
        let version = match l1_version {
            Some(version) => version,
            None => self.remote_version(group).await?,
        };
        Some(Route {
            key: hash.versioned(version),
            remote_key: Some(memo_key(self.prefix(), &self.shared.name, version, hash)),
            use_l1: self.shared.table.is_some() && self.cache.l1_trusted(),
        })
    }

    async fn load_through<F, Fut, E>(&self, route: Route, load: F) -> Result<Arc<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        loop {
            match self.shared.flights.join(route.key) {
                Join::Lead(guard) => {
                    // A load may have finished between our miss and the join.
                    if let (true, Some(table)) = (route.use_l1, &self.shared.table) {
                        let now = self.cache.clock().now_ms();
                        if let Some(value) = table.get(&route.key, now) {
                            guard.finish(&value, |_| {});
                            return Ok(value);
                        }
                    }
                    return self.lead(&route, Completion::Leader(guard), load).await;
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
                                return self.lead(&route, completion, load).await;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The one caller that fetches: from the shared store, else the loader.
    async fn lead<F, Fut, E>(
        &self,
        route: &Route,
        completion: Completion<'_, V>,
        load: F,
    ) -> Result<Arc<V>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let lease = match self.claim(route).await {
            Claim::Found(value, remaining) => {
                self.shared.stats.bump(Counter::HitRemote);
                // The L1 copy must not outlive the shared one.
                let lifetime = match (remaining, self.lifetime()) {
                    (Some(left), Some(ours)) => Some(left.min(ours)),
                    (left, ours) => left.or(ours),
                };
                self.complete(route, completion, &value, true, lifetime);
                return Ok(value);
            }
            Claim::Lease(token) => Some(token),
            Claim::Nothing => None,
        };
        self.shared.stats.bump(Counter::Miss);
        let started = Instant::now();
        let result = load().await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.shared.stats.add(Counter::LoadNanos, nanos);
        match result {
            Ok(value) => {
                self.shared.stats.bump(Counter::Load);
                let value = Arc::new(value);
                let keep = self.keeps(&value);
                let current = self.complete(route, completion, &value, keep, self.lifetime());
                if let (true, Some(remote_key), Some(token)) = (current, &route.remote_key, &lease)
                {
                    self.fill(remote_key, token, &value, keep).await;
                }
                Ok(value)
            }
            Err(error) => {
                self.shared.stats.bump(Counter::LoadError);
                let error = Arc::new(error);
                let shared: SharedError = Arc::clone(&error) as SharedError;
                match completion {
                    Completion::Leader(guard) => guard.fail(shared),
                    Completion::Takeover(flight) => {
                        self.shared.flights.fail(route.key, &flight, shared);
                    }
                }
                Err(error)
            }
        }
    }

    /// Publishes `value` to the flight's waiters and, if the flight was not
    /// invalidated meanwhile and `keep`, stores it in the L1 for `lifetime`
    /// (`None`: until evicted or invalidated). Returns
    /// whether the flight was still current.
    fn complete(
        &self,
        route: &Route,
        completion: Completion<'_, V>,
        value: &Arc<V>,
        keep: bool,
        lifetime: Option<Duration>,
    ) -> bool {
        let store = |v: &Arc<V>| {
            if let (true, true, Some(table)) = (keep, route.use_l1, &self.shared.table) {
                let expires_at = self.cache.clock().deadline(lifetime);
                self.keep_local(table, route.key, v, expires_at);
            }
        };
        match completion {
            Completion::Leader(guard) => guard.finish(value, store),
            Completion::Takeover(flight) => self
                .shared
                .flights
                .complete(route.key, &flight, value, store),
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

    /// Any tier's value for `key`, without loading or filling the L1.
    pub(super) async fn lookup_only(&self, key: &K) -> Option<Arc<V>> {
        match self.probe::<_, _, false>(key, || self.group_of(key)) {
            Probe::Hit(value) | Probe::HitNearExpiry(value) => Some(value),
            Probe::Uncacheable | Probe::Forced { .. } => None,
            Probe::Miss {
                hash,
                group,
                l1_version,
            } => {
                let route = self.route(hash, group, l1_version).await?;
                self.remote_get(&route).await
            }
        }
    }

    /// Stores `value` in every tier, overriding loads in flight.
    pub(super) async fn prime(&self, key: &K, value: &Arc<V>) {
        let Ok(hash) = KeyHash::of(key) else {
            return;
        };
        let group = match self.group_of(key) {
            Some(Ok(group)) => Some(group),
            Some(Err(_)) => return,
            None => None,
        };
        self.prime_hashed(hash, group, value).await;
    }

    /// [`Memo::prime`] of the key hashed `hash`, in group `group`.
    pub(super) async fn prime_hashed(&self, hash: KeyHash, group: Option<KeyHash>, value: &Arc<V>) {
        if !self.cache.has_remote() {
            let key = hash.versioned(self.local_version(group));
            let expires_at = self.cache.clock().deadline(self.lifetime());
            self.shared.flights.invalidate(key, || {
                if let Some(table) = &self.shared.table {
                    self.keep_local(table, key, value, expires_at);
                }
            });
            return;
        }
        let Some(version) = self.remote_version(group).await else {
            return;
        };
        let remote_key = memo_key(self.prefix(), &self.shared.name, version, hash);
        self.remote_set(&remote_key, value).await;
        // Other processes' L1 copies are now older than the store.
        self.shared.evict(version, hash);
        self.publish_key(version, hash).await;
    }

    pub(super) async fn forget_hash(&self, hash: KeyHash, group: Option<KeyHash>) -> Reach {
        let control: &dyn MemoControl = &*self.shared;
        self.cache
            .forget_key(&self.shared.name, Some(control), hash, group)
            .await
    }

    pub(super) async fn bump_version(&self) -> Reach {
        let control: &dyn MemoControl = &*self.shared;
        self.cache
            .forget_memo(&self.shared.name, Some(control))
            .await
    }

    async fn publish_key(&self, version: u64, hash: KeyHash) {
        let memo = self.shared.name.to_string();
        let invalidation = Invalidation::Key {
            memo,
            version,
            hash: hash.0,
        };
        // A set's news: a process that misses it stops trusting its L1
        // within a heartbeat (see `crate::bus`), and the store already
        // holds the new value.
        let _ = self.cache.publish(&invalidation).await;
    }

    fn prefix(&self) -> &str {
        &self.cache.config().key_prefix
    }

    /// Where a shared store keeps this memo's version.
    fn version_key(&self) -> String {
        format!("{}{}:ver", self.prefix(), self.shared.name)
    }

    fn store_fault(&self, operation: &str, error: crate::error::Error) {
        self.shared.stats.bump(Counter::StoreError);
        // Memos always fail open; strict mode only shapes the low-level API.
        let _ = self.cache.fault(operation, error, ());
    }

    /// The version `group`'s entries are filed under as this process knows
    /// it (the memo's version for `None`; a group it does not know counts
    /// as 0): for keys that are not stored in the shared store.
    fn local_version(&self, group: Option<KeyHash>) -> u64 {
        self.shared
            .version_in(group)
            .unwrap_or_else(|| self.version())
    }

    /// The version `group`'s entries are filed under in the shared store
    /// (the memo's for `None`), mirrored locally; `None` if it cannot be
    /// read.
    async fn remote_version(&self, group: Option<KeyHash>) -> Option<u64> {
        if !self.cache.has_remote() {
            return None;
        }
        if let Some(group) = group {
            let control: &dyn MemoControl = &*self.shared;
            return match self
                .cache
                .remote_versions(&self.shared.name, control, group)
                .await
            {
                Ok(version) => Some(version),
                Err(error) => {
                    self.store_fault("version", error);
                    None
                }
            };
        }
        let mark = self.shared.version_news_mark();
        let version = match self.cache.remote_get(&self.version_key()).await {
            Ok(bytes) => crate::store::parse_version(bytes.as_deref()),
            Err(error) => {
                self.store_fault("version", error);
                return None;
            }
        };
        Some(self.shared.adopt_version(version, mark))
    }

    /// Finds the value in the shared store, or the right to load it for
    /// the fleet: a lease. While another process holds the lease, waits (up
    /// to the cache's `lease_wait`) for its value to appear.
    async fn claim(&self, route: &Route) -> Claim<V> {
        let Some(remote_key) = route.remote_key.as_ref() else {
            return Claim::Nothing;
        };
        if !self.cache.has_remote() {
            return Claim::Nothing;
        }
        // Tokio's clock, so a test with paused time waits without sleeping.
        let deadline = tokio::time::Instant::now() + self.cache.config().lease_wait;
        let mut waited = false;
        loop {
            match self.cache.remote_get_with_ttl(remote_key).await {
                Ok(Some((bytes, _))) if codec::is_lease(&bytes) => {}
                Ok(Some((bytes, remaining))) => {
                    if let Some(value) = self.decode(&bytes) {
                        return Claim::Found(value, remaining);
                    }
                    // Undecodable (another type, corrupt): replace it.
                    let _ = self.cache.remote_delete(remote_key).await;
                }
                Ok(None) => {
                    let token = codec::lease_token();
                    match self.cache.remote_lease(remote_key, &token, LEASE_TTL).await {
                        Ok(true) => return Claim::Lease(token),
                        Ok(false) => {}
                        Err(error) => {
                            self.store_fault("lease", error);
                            return Claim::Nothing;
                        }
                    }
                }
                Err(error) => {
                    self.store_fault("get", error);
                    return Claim::Nothing;
                }
            }
            // Another process is loading this key: wait for its value.
            if !waited {
                waited = true;
                self.shared.stats.bump(Counter::WaitedForLoad);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                tracing::debug!(memo = %self.shared.name, "lease wait over; loading without storing");
                return Claim::Nothing;
            }
            // The last look is at the deadline itself, so the wait is
            // `lease_wait` exactly, not up to one poll more.
            tokio::time::sleep_until((now + LEASE_POLL).min(deadline)).await;
        }
    }

    /// Replaces our lease with the value (or drops the lease if the value
    /// is not kept). A lease that is gone means an invalidation came while
    /// loading: the value is not stored.
    async fn fill(&self, remote_key: &str, token: &[u8], value: &Arc<V>, keep: bool) {
        if !self.cache.has_remote() {
            return;
        }
        let encoded = if keep {
            self.cache.encode_stamped(&**value, self.source).map(Some)
        } else {
            Ok(None)
        };
        let result = match encoded {
            Ok(Some(bytes)) => {
                self.cache
                    .remote_fill(remote_key, token, &bytes, self.lifetime())
                    .await
            }
            // Release the lease so the next caller loads at once.
            Ok(None) => {
                self.cache
                    .remote_fill(remote_key, token, &[], Some(Duration::from_millis(1)))
                    .await
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(memo = %self.shared.name, "invalidated while loading; not stored");
            }
            Err(error) => self.store_fault("fill", error),
        }
    }

    /// The decoded value under the route's shared key, if any.
    async fn remote_get(&self, route: &Route) -> Option<Arc<V>> {
        let remote_key = route.remote_key.as_ref()?;
        match self.cache.remote_get(remote_key).await {
            Ok(Some(bytes)) => self.decode(&bytes),
            Ok(None) => None,
            Err(error) => {
                self.store_fault("get", error);
                None
            }
        }
    }

    /// Decodes stored bytes; a value that fails to decode is a miss and a
    /// counted fault.
    fn decode(&self, bytes: &[u8]) -> Option<Arc<V>> {
        match self.cache.decode_stamped::<V>(bytes, self.source) {
            Ok(value) => value.map(Arc::new),
            Err(error) => {
                self.store_fault("decode", error);
                None
            }
        }
    }

    async fn remote_set(&self, remote_key: &str, value: &Arc<V>) {
        // Memos always fail open: a fault is counted, never returned.
        if let Err(error) = self
            .cache
            .store_value(remote_key, &**value, self.lifetime(), self.source)
            .await
        {
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
