//! Per-memo counters.
//!
//! Every hit bumps a counter, so counters must cost next to nothing and must
//! not become the point where threads fight over one cache line. Each thread
//! gets its own block of counters (`thread_local::ThreadLocal`) and is its
//! only writer, so a bump is a plain load and store, not a locked
//! read-modify-write; readers sum the blocks of all threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

/// Which counter to bump.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    HitLocal = 0,
    HitRemote,
    Miss,
    Load,
    LoadError,
    LoadNanos,
    Invalidation,
    StoreError,
    WaitedForLoad,
    InvalidationReceived,
    GroupInvalidation,
    Refresh,
}

const COUNTERS: usize = 12;

type Block = CachePadded<[AtomicU64; COUNTERS]>;

/// Counters of one memo; cheap to bump from many threads at once.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    per_thread: ThreadLocal<Block>,
    /// Values too heavy for the in-process tier: rare (once per value
    /// loaded), so one shared atomic, and the per-thread blocks every hit
    /// writes keep their size.
    too_large: AtomicU64,
}

impl Stats {
    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        let block = self.per_thread.get_or_default();
        let cell = &block[counter as usize];
        // Only this thread writes this cell: load + store cannot lose an
        // update, and avoids the cost of a locked `fetch_add`.
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub(crate) fn bump(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Counts a value too heavy for the in-process tier.
    pub(crate) fn too_large(&self) {
        self.too_large.fetch_add(1, Ordering::Relaxed);
    }

    fn sum(&self, counter: Counter) -> u64 {
        self.per_thread
            .iter()
            .map(|block| block[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn snapshot(&self) -> MemoStats {
        MemoStats {
            hits_local: self.sum(Counter::HitLocal),
            hits_remote: self.sum(Counter::HitRemote),
            misses: self.sum(Counter::Miss),
            loads: self.sum(Counter::Load),
            load_errors: self.sum(Counter::LoadError),
            load_time: Duration::from_nanos(self.sum(Counter::LoadNanos)),
            invalidations: self.sum(Counter::Invalidation),
            store_errors: self.sum(Counter::StoreError),
            waited_for_load: self.sum(Counter::WaitedForLoad),
            invalidations_received: self.sum(Counter::InvalidationReceived),
            group_invalidations: self.sum(Counter::GroupInvalidation),
            refreshes: self.sum(Counter::Refresh),
            too_large: self.too_large.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one memo's counters since the memo was first built on its
/// cache.
///
/// ```
/// use memocache::{Cache, Memo};
/// # futures::executor::block_on(async {
/// let cache = Cache::memory();
/// let square: Memo<u32, u32> = Memo::builder("square").build(&cache)?;
/// square.get_or_load(&3, || async { 9 }).await; // a miss and a load
/// square.get_or_load(&3, || async { 9 }).await; // an in-process hit
/// let stats = square.stats();
/// assert_eq!((stats.misses, stats.loads, stats.hits_local), (1, 1, 1));
/// # Ok::<(), memocache::Error>(()) }).unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoStats {
    /// Lookups answered by the in-process tier.
    pub hits_local: u64,
    /// Lookups answered by a remote store.
    pub hits_remote: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Loader calls that returned a value.
    pub loads: u64,
    /// Loader calls that returned an error (never cached).
    pub load_errors: u64,
    /// Time spent in loaders, summed.
    pub load_time: Duration,
    /// `forget` and `forget_all` calls made here.
    pub invalidations: u64,
    /// Store faults met and survived (fail-open) or returned (strict).
    pub store_errors: u64,
    /// Misses that waited for another caller's load instead of loading.
    pub waited_for_load: u64,
    /// Invalidations received from other processes over the bus.
    pub invalidations_received: u64,
    /// [`Memo::forget_group`](crate::Memo::forget_group) calls made here
    /// (also counted in `invalidations`).
    pub group_invalidations: u64,
    /// Background reloads ahead of expiry
    /// ([`MemoBuilder::refresh_ahead`](crate::MemoBuilder::refresh_ahead))
    /// that ended in this process, whether they stored a value or gave way
    /// (to another process holding the key's refresh lease, or to an
    /// invalidation that came first). Their loads count in `loads`.
    pub refreshes: u64,
    /// Values not kept in process because they weighed more than a
    /// sixteenth of the in-process byte budget
    /// ([`CacheConfig::capacity_bytes`](crate::CacheConfig::capacity_bytes)).
    /// Each was returned to its caller; the next call loads it again.
    pub too_large: u64,
}

impl MemoStats {
    /// Hits of any tier.
    ///
    /// ```
    /// let stats = memocache::MemoStats::default();
    /// assert_eq!(stats.hits(), stats.hits_local + stats.hits_remote);
    /// ```
    pub fn hits(&self) -> u64 {
        self.hits_local + self.hits_remote
    }
}
