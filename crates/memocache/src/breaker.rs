//! Breakers: a silent partition costs one timeout, not one per request.
//!
//! A dead server refuses connections at once, but a silent one (a lost
//! route, a stuck process, a black-holed connection) answers nothing, and
//! every call waits out the store timeout. Under load those waits pile up
//! until the application falls over, although fail-open would have served
//! every request from the source in milliseconds.
//!
//! # The rule
//!
//! Each shared store, and the invalidation bus, has a breaker; a sharded
//! store (a Redis Cluster) has one per node (see [below](#one-breaker-per-node)):
//!
//! - It **opens** on the first timeout, or after [`BreakerConfig::error_burst`]
//!   store errors in a row (a refused or dropped connection answers fast,
//!   so a few are tolerated: a restart or a failover costs one or two).
//! - While open, every call **skips** the store at once with an error for
//!   which [`Error::is_breaker_open`] holds. Callers fail open as for any
//!   store fault: a memo loads from the source and counts a store error;
//!   strict mode returns the error from the low-level API.
//! - A **probe** (a `PING` or a read of an unused key) runs in the
//!   background, first [`BreakerConfig::probe_interval`] after opening,
//!   then with the interval doubled after each failure up to
//!   [`BreakerConfig::probe_max`]. The first success closes the breaker.
//!   No caller ever waits for a probe. (Outside a Tokio runtime there is no
//!   background: one caller per due probe is let through as the probe.)
//! - Probe times are read on the cache's [`Clock`], so tests drive them
//!   with [`Clock::manual`] instead of sleeping.
//!
//! # Why reads stay fresh
//!
//! The breaker only removes calls; it never serves anything. A skipped read
//! is a miss, so the value comes from the source. Invalidations (`delete`,
//! the version bump of `forget_all`, `clear`) are never skipped: a breaker
//! is one process's view, and other processes may still read the store
//! (a one-sided partition, or one already healed while the probe waits),
//! so a skipped invalidation would leave them the old value. They pay the
//! store timeout during a partition; only reads and fills are skipped. The L1 of a tiered cache is
//! trusted only while the bus renews its trust, and a partition stops the
//! renewals whether or not a breaker is open (see [`crate::bus`]).
//!
//! # One breaker per node
//!
//! On a Redis Cluster a silent partition may cut one node off while the
//! others answer. The store tells which node serves a key
//! ([`RemoteStore::node_of`](crate::store::RemoteStore::node_of): the master that owns the key's slot, from
//! the store's copy of `CLUSTER SLOTS`), and each node has a breaker of its
//! own, probed with a `PING` sent to that node
//! ([`RemoteStore::ping_node`](crate::store::RemoteStore::ping_node)):
//!
//! - A call goes through the breakers of the nodes its keys live on. Calls
//!   for keys on healthy nodes keep using the store; calls that touch the
//!   cut-off node skip it at once after its first timeout. A batch that
//!   spans nodes (`get_many`, `set_many`, `delete_many`, the version and
//!   value pair of a memo lookup) is split by node, so a timeout is always
//!   charged to the node that did not answer.
//! - Calls the store cannot route yet (before it read the slot table) and
//!   `clear` (every master) go through the store-wide breaker, as on a
//!   single server; `clear` is an invalidation, never skipped.
//! - **L1 trust**: any open breaker, the store's or one node's, stops the
//!   in-process tier's trust, for every memo. Memo versions live on
//!   whichever node owns each memo's version key, and a process that skips
//!   a node cannot learn of a `forget_all` made there; stopping all L1
//!   trust instead of the affected memos' costs reads through to the L2 and
//!   the source during the partition, never a stale read.
//! - A known limit: the Redis Cluster client reconnects to a node whose
//!   reply timed out, and holds every node's replies while it does (up to
//!   one connection timeout). A healthy node's call may time out then and
//!   open that node's breaker until its next probe (probes close it within
//!   one interval), and an invalidation that meets such a fault fails open
//!   as any other: `cluster_partition` tests count those and check the
//!   others.
//! - [`Cache::store_breaker`](crate::Cache::store_breaker) sums them up
//!   (open while any is); [`Cache::node_breakers`](crate::Cache::node_breakers)
//!   lists each node's.
//!
//! # The bound
//!
//! After a partition starts, the calls already in flight and the first one
//! to time out pay the store timeout; every later call costs a few atomic
//! loads until a probe succeeds. After the partition heals, the breaker
//! closes within one probe interval (at most `probe_max`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use crate::clock::{Clock, duration_ms};
use crate::error::Error;

/// How a cache's breakers behave (URL options `breaker`, `probe_ms`,
/// `probe_max_ms`, `breaker_errors`).
///
/// ```
/// use std::time::Duration;
/// use memocache::CacheConfig;
///
/// let config = CacheConfig::from_url("redis://127.0.0.1:6379/?probe_ms=100&probe_max_ms=2000&breaker_errors=5")?;
/// assert!(config.breaker.enabled);
/// assert_eq!(config.breaker.probe_interval, Duration::from_millis(100));
/// assert_eq!(config.breaker.probe_max, Duration::from_secs(2));
/// assert_eq!(config.breaker.error_burst, 5);
/// assert!(!CacheConfig::from_url("redis://127.0.0.1:6379/?breaker=off")?.breaker.enabled);
/// # Ok::<(), memocache::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Whether shared stores and the bus get a breaker (default on).
    pub enabled: bool,
    /// How long after opening the first probe runs (default 250 ms).
    pub probe_interval: Duration,
    /// Longest pause between probes; the pause doubles after each failed
    /// probe up to this (default 5 s).
    pub probe_max: Duration,
    /// Store errors in a row, none of them a timeout, that open the
    /// breaker (default 3). A timeout opens it at once.
    pub error_burst: u32,
    /// The longest a read (a lookup, a version read, a lease check) waits
    /// for the shared store before it is given up as a timeout (default
    /// 15 ms; `None`: the store's own timeout). It applies to one Redis
    /// server (alone or as a tiered cache's L2) once it has answered a
    /// first read (connecting takes longer); not to a Redis Cluster, whose
    /// client holds every node's replies while it reconnects one, nor to
    /// Memcached, whose pool remakes connections under a read, nor to a
    /// local directory: those wait out the store's timeout as before. A cache read must never
    /// cost more than the source read it saves: on a silent store the
    /// first reads wait this long, then the breaker is open and the rest
    /// skip the store. Writes and invalidations keep the store's timeout.
    pub read_deadline: Option<Duration>,
}

/// Default [`BreakerConfig::read_deadline`].
pub const DEFAULT_READ_DEADLINE: Duration = Duration::from_millis(15);

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            probe_interval: Duration::from_millis(250),
            probe_max: Duration::from_secs(5),
            error_burst: 3,
            read_deadline: Some(DEFAULT_READ_DEADLINE),
        }
    }
}

/// Whether a breaker lets calls through.
///
/// ```
/// use memocache::{BreakerState, Cache};
/// let cache = Cache::from_url("redis://127.0.0.1:6379/")?;
/// let degraded = cache.store_breaker().is_some_and(|b| b.state == BreakerState::Open);
/// assert!(!degraded); // nothing called yet
/// # Ok::<(), memocache::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go to the store.
    Closed,
    /// Calls skip the store; a probe in the background will close it.
    Open,
}

/// A breaker's state and counters since the cache was built.
///
/// ```
/// let cache = memocache::Cache::from_url("memcached://127.0.0.1:11211/")?;
/// let stats = cache.store_breaker().expect("a shared store has a breaker");
/// println!("opened {} times, {} calls skipped, {} probes", stats.opened, stats.skipped, stats.probes);
/// # Ok::<(), memocache::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerStats {
    /// The state now.
    pub state: BreakerState,
    /// Times it opened.
    pub opened: u64,
    /// Times a probe closed it.
    pub closed: u64,
    /// Calls skipped while open (each also counts as a store error).
    pub skipped: u64,
    /// Probes run (each success closes it; failures back off).
    pub probes: u64,
}

/// Longest a background prober sleeps before it reads the clock again (a
/// manual clock may have been moved meanwhile).
pub(crate) const PROBER_TICK: Duration = Duration::from_millis(20);

/// One breaker's state machine. Closed, a call costs one atomic load.
#[derive(Debug)]
pub(crate) struct Breaker {
    name: Arc<str>,
    /// Open breakers of a [`BreakerSet`]'s nodes, kept by the node breakers.
    open_count: Option<Arc<AtomicUsize>>,
    config: BreakerConfig,
    clock: Clock,
    open: AtomicBool,
    /// Store errors in a row while closed.
    errors: AtomicU32,
    /// Clock reading at which the next probe is due.
    probe_at: AtomicU64,
    /// The pause before the next probe after this one fails, in ms.
    backoff_ms: AtomicU64,
    /// A probe is running.
    probing: AtomicBool,
    /// A background task is probing (else calls are let through as probes).
    pub(crate) prober: AtomicBool,
    opened: AtomicU64,
    closed: AtomicU64,
    skipped: AtomicU64,
    probes: AtomicU64,
}

/// What a breaker says about one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: make the call.
    Pass,
    /// Open and a probe is due with no background prober: make the call,
    /// and its outcome is the probe's.
    Trial,
    /// Open: skip the store.
    Skip,
}

impl Breaker {
    pub(crate) fn new(name: impl Into<Arc<str>>, config: BreakerConfig, clock: Clock) -> Self {
        Self {
            name: name.into(),
            open_count: None,
            config,
            clock,
            open: AtomicBool::new(false),
            errors: AtomicU32::new(0),
            probe_at: AtomicU64::new(0),
            backoff_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            prober: AtomicBool::new(false),
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            probes: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Decides one call.
    pub(crate) fn admit(&self) -> Admission {
        if !self.is_open() {
            return Admission::Pass;
        }
        if !self.prober.load(Ordering::Acquire) && self.start_probe() {
            return Admission::Trial;
        }
        self.skip();
        Admission::Skip
    }

    /// Counts a call skipped while open.
    pub(crate) fn skip(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Learns from a call made while closed; true if it opened the breaker.
    pub(crate) fn record<T>(&self, result: &Result<T, Error>) -> bool {
        match result {
            Err(error) if error.is_store() && !error.is_breaker_open() => {
                let errors = self.errors.fetch_add(1, Ordering::AcqRel) + 1;
                if error.is_timeout() || errors >= self.config.error_burst.max(1) {
                    return self.trip();
                }
                false
            }
            // An answer, even an error reply: the store is there.
            _ => {
                if self.errors.load(Ordering::Relaxed) != 0 {
                    self.errors.store(0, Ordering::Release);
                }
                false
            }
        }
    }

    /// Opens the breaker; true if it was closed.
    pub(crate) fn trip(&self) -> bool {
        if self
            .open
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let first = duration_ms(self.config.probe_interval).max(1);
        self.backoff_ms.store(first, Ordering::Release);
        self.probe_at
            .store(self.clock.now_ms().saturating_add(first), Ordering::Release);
        self.opened.fetch_add(1, Ordering::Relaxed);
        if let Some(count) = &self.open_count {
            count.fetch_add(1, Ordering::AcqRel);
        }
        tracing::warn!(
            breaker = &*self.name,
            probe_in_ms = first,
            "cache breaker open: calls skip the {} until a probe succeeds",
            self.name
        );
        true
    }

    /// Claims the due probe; false if none is due or one is running.
    pub(crate) fn start_probe(&self) -> bool {
        self.is_open()
            && self.clock.now_ms() >= self.probe_at.load(Ordering::Acquire)
            && self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// The outcome of a probe claimed with [`Breaker::start_probe`].
    pub(crate) fn finish_probe(&self, success: bool) {
        self.probes.fetch_add(1, Ordering::Relaxed);
        if success {
            self.close();
        } else {
            let max = duration_ms(self.config.probe_max).max(1);
            let pause = self.backoff_ms.load(Ordering::Acquire).clamp(1, max);
            self.backoff_ms
                .store(pause.saturating_mul(2).min(max), Ordering::Release);
            self.probe_at
                .store(self.clock.now_ms().saturating_add(pause), Ordering::Release);
        }
        self.probing.store(false, Ordering::Release);
    }

    /// Gives a claimed probe back unrun.
    pub(crate) fn release_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// Closes the breaker (a probe, or the bus's reader, got through).
    pub(crate) fn close(&self) {
        self.errors.store(0, Ordering::Release);
        if self
            .open
            .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.closed.fetch_add(1, Ordering::Relaxed);
            if let Some(count) = &self.open_count {
                count.fetch_sub(1, Ordering::AcqRel);
            }
            tracing::info!(
                breaker = &*self.name,
                "cache breaker closed: the {} answers again",
                self.name
            );
        }
    }

    /// Counts a probe made by someone else (the bus's reconnects).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn count_probe(&self) {
        self.probes.fetch_add(1, Ordering::Relaxed);
    }

    /// How long until the next probe is due, on the breaker's clock.
    pub(crate) fn until_probe(&self) -> Duration {
        let due = self.probe_at.load(Ordering::Acquire);
        Duration::from_millis(due.saturating_sub(self.clock.now_ms()))
    }

    pub(crate) fn stats(&self) -> BreakerStats {
        BreakerStats {
            state: if self.is_open() {
                BreakerState::Open
            } else {
                BreakerState::Closed
            },
            opened: self.opened.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            probes: self.probes.load(Ordering::Relaxed),
        }
    }
}

/// The breakers of one shared store: the store-wide one, and one per node
/// of a sharded store, made on first sight of the node.
#[derive(Debug)]
pub(crate) struct BreakerSet {
    pub(crate) whole: Arc<Breaker>,
    pub(crate) nodes: RwLock<HashMap<Arc<str>, Arc<Breaker>>>,
    /// How many node breakers are open.
    open_nodes: Arc<AtomicUsize>,
}

impl BreakerSet {
    pub(crate) fn new(whole: Arc<Breaker>) -> Self {
        Self {
            whole,
            nodes: RwLock::new(HashMap::new()),
            open_nodes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// True while any breaker of the set is open (two atomic loads).
    #[inline]
    pub(crate) fn any_open(&self) -> bool {
        self.whole.is_open() || self.open_nodes.load(Ordering::Acquire) != 0
    }

    /// The breaker of `node`, made on first sight.
    pub(crate) fn node(&self, node: &Arc<str>) -> Arc<Breaker> {
        if let Some(breaker) = self.nodes.read().get(node) {
            return Arc::clone(breaker);
        }
        let mut nodes = self.nodes.write();
        let breaker = nodes.entry(Arc::clone(node)).or_insert_with(|| {
            let mut breaker = Breaker::new(
                format!("store node {node}"),
                self.whole.config,
                self.whole.clock.clone(),
            );
            breaker.open_count = Some(Arc::clone(&self.open_nodes));
            Arc::new(breaker)
        });
        Arc::clone(breaker)
    }

    /// Every breaker summed up: open while any is, counters added.
    pub(crate) fn stats(&self) -> BreakerStats {
        let mut total = self.whole.stats();
        for breaker in self.nodes.read().values() {
            let node = breaker.stats();
            if node.state == BreakerState::Open {
                total.state = BreakerState::Open;
            }
            total.opened += node.opened;
            total.closed += node.closed;
            total.skipped += node.skipped;
            total.probes += node.probes;
        }
        total
    }

    /// Each node's breaker, by node address.
    pub(crate) fn node_stats(&self) -> Vec<(String, BreakerStats)> {
        let mut nodes: Vec<(String, BreakerStats)> = self
            .nodes
            .read()
            .iter()
            .map(|(node, breaker)| (node.to_string(), breaker.stats()))
            .collect();
        nodes.sort_by(|a, b| a.0.cmp(&b.0));
        nodes
    }
}

#[cfg(test)]
mod tests;
