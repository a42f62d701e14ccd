//! [`MemoShared`]: what every handle of one memo on one cache shares (its
//! name, version, in-process tier, loads in flight, counters and run-time
//! timeout), and what the cache may ask of it without knowing its types
//! ([`MemoControl`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::group;
use crate::deps::Stamps;
use crate::flight::Flights;
use crate::key::KeyHash;
use crate::local::{Bound, LocalTable};
use crate::registry::MemoControl;
use crate::stats::{Counter, MemoStats, Stats};
use crate::value::CacheValue;

/// What every handle of one memo on one cache shares.
pub(crate) struct MemoShared<V: Send + Sync> {
    pub(super) name: Arc<str>,
    /// Bumped by `forget_all`: part of every key, so old entries become
    /// unreachable at once (Flask-Caching's memoize version). With a shared
    /// store the store holds the truth and this is its mirror.
    pub(super) version: AtomicU64,
    /// Whether `version` mirrors the shared store's (always true without
    /// one); until then the L1 is not consulted.
    pub(super) version_known: AtomicBool,
    /// Whether a shared store holds the values (and the version).
    pub(super) shared_store: bool,
    pub(super) stats: Stats,
    /// The in-process tier: the memory store, or the L1 of a tiered cache.
    pub(super) table: Option<LocalTable<Arc<V>>>,
    pub(super) flights: Flights<V>,
    /// The cache's invalidation stamps (see [`crate::deps`]).
    pub(super) stamps: Arc<Stamps>,
    /// This memo's name as a dependency scope.
    pub(super) scope: u64,
    /// The timeout set at run time by [`Memo::set_timeout`], for every
    /// handle (see [`RuntimeTimeout`]).
    pub(super) timeout: RuntimeTimeout,
    /// The versions of its groups, for a memo built
    /// [`grouped`](MemoBuilder::grouped) (see `group`).
    pub(super) groups: Option<group::GroupVersions>,
}

/// A timeout that can change while the memo runs (Flask-Caching's
/// `f.cache_timeout = …`): one atomic, read when a value is stored, so the
/// hit path never touches it. Until it is first set, each handle stores for
/// the timeout it was built with.
pub(super) struct RuntimeTimeout(AtomicU64);

impl RuntimeTimeout {
    /// Not set: each handle's built timeout applies.
    const UNSET: u64 = u64::MAX;
    /// Set to "never expires".
    const FOREVER: u64 = u64::MAX - 1;

    pub(super) fn new() -> Self {
        Self(AtomicU64::new(Self::UNSET))
    }

    /// Stores `lifetime` (`None` = forever), in nanoseconds; lifetimes past
    /// 584 years are cut to that.
    pub(super) fn set(&self, lifetime: Option<Duration>) {
        let raw = lifetime.map_or(Self::FOREVER, |d| {
            u64::try_from(d.as_nanos()).map_or(Self::FOREVER - 1, |n| n.min(Self::FOREVER - 1))
        });
        self.0.store(raw, Ordering::Release);
    }

    /// The lifetime set, if one was: `Some(None)` = forever.
    pub(super) fn get(&self) -> Option<Option<Duration>> {
        match self.0.load(Ordering::Acquire) {
            Self::UNSET => None,
            Self::FOREVER => Some(None),
            nanos => Some(Some(Duration::from_nanos(nanos))),
        }
    }
}

impl<V: CacheValue> MemoShared<V> {
    pub(crate) fn new(
        name: &str,
        l1: Option<Bound>,
        shared_store: bool,
        stamps: Arc<Stamps>,
        grouped: bool,
    ) -> Self {
        Self {
            groups: grouped.then(group::GroupVersions::default),
            stamps,
            scope: crate::deps::scope_hash(name),
            name: Arc::from(name),
            version: AtomicU64::new(0),
            version_known: AtomicBool::new(!shared_store),
            shared_store,
            stats: Stats::default(),
            table: l1.map(LocalTable::bounded),
            flights: Flights::new(),
            timeout: RuntimeTimeout::new(),
        }
    }

    /// Evicts `hash` at `version` from the L1 and detaches its load.
    pub(super) fn evict(&self, version: u64, hash: KeyHash) {
        let key = hash.versioned(version);
        self.flights.invalidate(key, || {
            if let Some(table) = &self.table {
                table.remove(&key);
            }
        });
        // After the eviction: see `crate::deps` for why the order matters.
        self.stamps.bump_key(self.scope, hash.0);
    }

    /// Every value of the memo changed: responses that read any go too.
    pub(super) fn bump_scope(&self) {
        self.stamps.bump_scope(self.scope);
    }

    /// Raises the mirrored version to at least `version`.
    fn observe_version(&self, version: u64) {
        let before = self.version.fetch_max(version, Ordering::AcqRel);
        self.version_known.store(true, Ordering::Release);
        if version > before {
            self.bump_scope();
        }
    }

    /// Takes the version read from the shared store, which holds the truth.
    /// Versions only grow, so one lower than ours means the store lost its
    /// data (a restart without persistence) or never saw a bump we made
    /// while it was unreachable: our L1 entries and our version no longer
    /// match anyone else's, so drop both and follow the store.
    fn adopt_version(&self, stored: u64) {
        if stored >= self.version.load(Ordering::Acquire) {
            self.observe_version(stored);
            return;
        }
        tracing::warn!(
            memo = %self.name,
            stored,
            ours = self.version.load(Ordering::Acquire),
            "shared store's memo version went back; clearing the L1 and following it"
        );
        match &self.table {
            Some(table) => self.flights.invalidate_all(|| {
                table.clear();
                self.version.store(stored, Ordering::Release);
            }),
            None => self.version.store(stored, Ordering::Release),
        }
        self.version_known.store(true, Ordering::Release);
        self.bump_scope();
    }
}

impl<V: CacheValue> MemoControl for MemoShared<V> {
    fn invalidate_everything(&self) {
        if self.shared_store {
            // The shared store was cleared, versions included: read the
            // version afresh before trusting the L1 again.
            self.version_known.store(false, Ordering::Release);
        } else {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        self.clear_local();
        self.bump_scope();
    }

    fn clear_local(&self) {
        if let Some(table) = &self.table {
            self.flights.invalidate_all(|| table.clear());
        }
        if self.shared_store {
            self.forget_groups();
            // Whatever made us clear may have changed the store's version
            // too: read it again before trusting the L1.
            self.version_known.store(false, Ordering::Release);
        }
        self.bump_scope();
    }

    fn evict_key(&self, version: u64, hash: u128) {
        self.stats.bump(Counter::InvalidationReceived);
        self.evict(version, KeyHash(hash));
    }

    fn observe_version(&self, version: u64) {
        self.stats.bump(Counter::InvalidationReceived);
        MemoShared::observe_version(self, version);
    }

    fn stats(&self) -> MemoStats {
        self.stats.snapshot()
    }

    fn forget_local(&self, version: u64, hash: KeyHash) {
        self.evict(version, hash);
    }

    fn adopt_version(&self, version: u64) {
        MemoShared::adopt_version(self, version);
    }

    fn bump_local(&self) -> u64 {
        let version = self.version.fetch_add(1, Ordering::AcqRel) + 1;
        self.bump_scope();
        version
    }

    fn count(&self, counter: Counter) {
        self.stats.bump(counter);
    }

    fn version_in(&self, group: Option<KeyHash>) -> u64 {
        MemoShared::version_in(self, group).unwrap_or_else(|| self.version.load(Ordering::Acquire))
    }

    fn group_news_mark(&self) -> u64 {
        MemoShared::group_news_mark(self)
    }

    fn adopt_group(&self, group: KeyHash, version: u64, mark: Option<u64>) {
        MemoShared::adopt_group(self, group, version, mark);
    }

    fn observe_group(&self, group: KeyHash, version: u64) {
        self.stats.bump(Counter::InvalidationReceived);
        MemoShared::observe_group(self, group, version);
    }

    fn bump_group_local(&self, group: KeyHash) -> u64 {
        MemoShared::bump_group_local(self, group)
    }
}
