//! Counters of a response cache, per thread as the memos' are (see
//! `crate::stats`): a hit bumps a cell only its thread writes.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

#[derive(Clone, Copy, Debug)]
pub(super) enum Counter {
    Hit = 0,
    NotModified,
    Miss,
    Stale,
    Bypass,
    Stored,
    TooLarge,
}

const COUNTERS: usize = 7;

#[derive(Debug, Default)]
pub(super) struct Counters {
    per_thread: ThreadLocal<CachePadded<[AtomicU64; COUNTERS]>>,
}

impl Counters {
    #[inline]
    pub(super) fn bump(&self, counter: Counter) {
        let cell = &self.per_thread.get_or_default()[counter as usize];
        // Only this thread writes this cell.
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    fn sum(&self, counter: Counter) -> u64 {
        self.per_thread
            .iter()
            .map(|block| block[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub(super) fn snapshot(&self) -> ResponseCacheStats {
        ResponseCacheStats {
            hits: self.sum(Counter::Hit),
            not_modified: self.sum(Counter::NotModified),
            misses: self.sum(Counter::Miss),
            stale: self.sum(Counter::Stale),
            bypassed: self.sum(Counter::Bypass),
            stored: self.sum(Counter::Stored),
            too_large: self.sum(Counter::TooLarge),
        }
    }
}

/// What a [`ResponseCacheLayer`](super::ResponseCacheLayer) did since it
/// was built (all its clones together).
///
/// ```
/// let cache = memocache::Cache::memory();
/// let layer = memocache::response::ResponseCacheLayer::new(&cache);
/// assert_eq!(layer.stats().hits, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseCacheStats {
    /// Answers from a stored response (a `304` included).
    pub hits: u64,
    /// Of the hits and misses, those answered `304 Not Modified`.
    pub not_modified: u64,
    /// Requests that ran the view (stored or not).
    pub misses: u64,
    /// Stale responses served because the view failed.
    pub stale: u64,
    /// Requests that bypassed the cache (not `GET`, credentials, `unless`).
    pub bypassed: u64,
    /// Responses stored.
    pub stored: u64,
    /// Responses not stored because they weighed more than a sixteenth
    /// of the layer's byte budget
    /// ([`capacity_bytes`](super::ResponseCacheLayer::capacity_bytes)).
    pub too_large: u64,
}
