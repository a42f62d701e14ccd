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
    /// Counts every raise of `version` (news from the bus, a forget's own
    /// `INCR`, a local bump). A read of the store's version takes a mark of
    /// it first: a lower version read while news arrived is an old read,
    /// not a store that lost its data (see [`MemoShared::adopt_version`]).
    version_news: AtomicU64,
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
            version_news: AtomicU64::new(0),
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

    /// A mark to take before reading the memo's version from the shared
    /// store, for [`MemoShared::adopt_version`].
    pub(super) fn version_news_mark(&self) -> u64 {
        self.version_news.load(Ordering::Acquire)
    }

    /// Raises the mirrored version to at least `version`.
    fn observe_version(&self, version: u64) {
        // The news is counted before the version moves: whoever sees the
        // new version then sees the count moved too.
        self.version_news.fetch_add(1, Ordering::AcqRel);
        let before = self.version.fetch_max(version, Ordering::AcqRel);
        self.version_known.store(true, Ordering::Release);
        if version > before {
            self.bump_scope();
        }
    }

    /// Takes the version read from the shared store, which holds the truth,
    /// by a read that began at `mark` ([`MemoShared::version_news_mark`]).
    /// Versions only grow, so one lower than ours means the store lost its
    /// data (a restart without persistence) or never saw a bump we made
    /// while it was unreachable: our L1 entries and our version no longer
    /// match anyone else's, so drop both and follow the store. Unless news
    /// raised our version while the read was under way: then the read is
    /// merely older than the news (a bus message overtook the reply), and
    /// following it would file entries under a version already forgotten:
    /// keep ours, and read the store's again before trusting the L1.
    ///
    /// Returns the version to file this request's entry under: the newer
    /// of the read and ours after it.
    pub(super) fn adopt_version(&self, stored: u64, mark: u64) -> u64 {
        let ours = self.version.load(Ordering::Acquire);
        if stored >= ours {
            self.observe_version(stored);
            return self.version.load(Ordering::Acquire).max(stored);
        }
        if self.version_news.load(Ordering::Acquire) != mark {
            tracing::debug!(
                memo = %self.name,
                stored,
                ours,
                "a version read overtaken by news; keeping the newer version until read again"
            );
            // Which of the two the store holds now is unknown (it may also
            // have lost its data meanwhile): read it again before the L1
            // is trusted.
            self.version_known.store(false, Ordering::Release);
            return self.version.load(Ordering::Acquire);
        }
        tracing::warn!(
            memo = %self.name,
            stored,
            ours,
            "shared store's memo version went back; clearing the L1 and following it"
        );
        let follow = || {
            // Only from the version the check saw: news that lands now wins.
            let _ =
                self.version
                    .compare_exchange(ours, stored, Ordering::AcqRel, Ordering::Acquire);
        };
        match &self.table {
            Some(table) => self.flights.invalidate_all(|| {
                table.clear();
                follow();
            }),
            None => follow(),
        }
        self.version_known.store(true, Ordering::Release);
        self.bump_scope();
        self.version.load(Ordering::Acquire).max(stored)
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

    fn version_news_mark(&self) -> u64 {
        MemoShared::version_news_mark(self)
    }

    fn adopt_version(&self, version: u64, mark: u64) -> u64 {
        MemoShared::adopt_version(self, version, mark)
    }

    fn bump_local(&self) -> u64 {
        self.version_news.fetch_add(1, Ordering::AcqRel);
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

#[cfg(test)]
mod tests;
