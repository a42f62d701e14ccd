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
//! ([`RemoteStore::node_of`]: the master that owns the key's slot, from
//! the store's copy of `CLUSTER SLOTS`), and each node has a breaker of its
//! own, probed with a `PING` sent to that node
//! ([`RemoteStore::ping_node`]):
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
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::clock::{Clock, duration_ms};
use crate::error::Error;
use crate::store::RemoteStore;

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
const PROBER_TICK: Duration = Duration::from_millis(20);

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
    prober: AtomicBool,
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
    fn release_probe(&self) {
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
    fn until_probe(&self) -> Duration {
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
    whole: Arc<Breaker>,
    nodes: RwLock<HashMap<Arc<str>, Arc<Breaker>>>,
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
    fn node(&self, node: &Arc<str>) -> Arc<Breaker> {
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

/// Where one call goes: a breaker, and the node it stands for (`None`: the
/// store-wide breaker).
struct Target<'a> {
    /// Borrowed for the store-wide breaker: no reference count bumped on
    /// the hot path of a store on one server.
    breaker: std::borrow::Cow<'a, Arc<Breaker>>,
    node: Option<Arc<str>>,
}

/// A [`RemoteStore`] behind a [`BreakerSet`]: every method of the store it
/// wraps, skipped at once while the breaker of the node it needs (or the
/// store-wide one) is open.
#[derive(Debug)]
pub(crate) struct BreakerStore {
    store: Arc<dyn RemoteStore>,
    breakers: Arc<BreakerSet>,
    /// See [`BreakerConfig::read_deadline`].
    read_deadline: Option<Duration>,
    /// Whether a read has been answered since the store was built.
    answered: AtomicBool,
}

impl BreakerStore {
    #[cfg(test)]
    pub(crate) fn new(store: Arc<dyn RemoteStore>, breaker: Arc<Breaker>) -> Self {
        Self::with_set(store, Arc::new(BreakerSet::new(breaker)))
    }

    pub(crate) fn with_set(store: Arc<dyn RemoteStore>, breakers: Arc<BreakerSet>) -> Self {
        Self {
            store,
            breakers,
            read_deadline: None,
            answered: AtomicBool::new(false),
        }
    }

    /// Bounds reads by `deadline` (see [`BreakerConfig::read_deadline`]).
    pub(crate) fn read_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.read_deadline = deadline;
        self
    }

    /// A read through `target`'s breaker, given up at the read deadline as
    /// a timeout (which opens the breaker). Outside a Tokio runtime there
    /// is no timer: the store's own timeout bounds it.
    async fn read<T>(
        &self,
        target: &Target<'_>,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        // Not before the store first answered: the first call connects
        // (a TLS handshake, a cluster's slot table), which takes longer
        // than a read on an open connection.
        let Some(deadline) = self.read_deadline.filter(|_| {
            self.answered.load(Ordering::Acquire) && tokio::runtime::Handle::try_current().is_ok()
        }) else {
            let result = self.call(target, operation).await;
            if result.is_ok() {
                self.answered.store(true, Ordering::Release);
            }
            return result;
        };
        let bounded = async {
            match tokio::time::timeout(deadline, operation).await {
                Ok(result) => result,
                Err(_) => Err(Error::new(
                    crate::ErrorKind::Store,
                    format!(
                        "the cache store: no answer to a read within {} ms (read deadline)",
                        deadline.as_millis()
                    ),
                )
                .timed_out()),
            }
        };
        self.call(target, bounded).await
    }

    /// The breaker of the node that serves `key`.
    fn target(&self, key: &str) -> Target<'_> {
        match self.store.node_of(key) {
            Some(node) => Target {
                breaker: std::borrow::Cow::Owned(self.breakers.node(&node)),
                node: Some(node),
            },
            None => self.whole(),
        }
    }

    fn whole(&self) -> Target<'_> {
        Target {
            breaker: std::borrow::Cow::Borrowed(&self.breakers.whole),
            node: None,
        }
    }

    /// `keys` grouped by the node that serves them, each with the key's
    /// position; one group for an unsharded store.
    fn by_node<'k>(&self, keys: impl Iterator<Item = &'k str>) -> Vec<(Target<'_>, Vec<usize>)> {
        let mut groups: Vec<(Target<'_>, Vec<usize>)> = Vec::new();
        for (at, key) in keys.enumerate() {
            let target = self.target(key);
            match groups
                .iter_mut()
                .find(|(t, _)| Arc::ptr_eq(&t.breaker, &target.breaker))
            {
                Some((_, positions)) => positions.push(at),
                None => groups.push((target, vec![at])),
            }
        }
        groups
    }

    async fn call<T>(
        &self,
        target: &Target<'_>,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let breaker = &target.breaker;
        let trial = match breaker.admit() {
            Admission::Pass => false,
            // A runtime is here after all: probe in the background instead.
            Admission::Trial if self.spawn_prober(target) => {
                breaker.release_probe();
                breaker.skip();
                return Err(Error::breaker_open("the cache store"));
            }
            Admission::Trial => true,
            Admission::Skip => return Err(Error::breaker_open("the cache store")),
        };
        let result = operation.await;
        if trial {
            let answered = !matches!(&result, Err(e) if e.is_store());
            breaker.finish_probe(answered);
        } else if breaker.record(&result) {
            let _ = self.spawn_prober(target);
        }
        result
    }

    /// Runs an invalidation (a delete, a version bump, a clear) whether the
    /// breaker is open or not. Skipping one would be a stale read for every
    /// other process that still reaches the store: a breaker is this
    /// process's view, and the partition may be one-sided or already
    /// healed while the probe waits. So a write that changes what others
    /// read pays the store timeout during a partition; reads and fills,
    /// whose skipping only costs this process a load, do not.
    async fn invalidate<T>(
        &self,
        target: Option<&Target<'_>>,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let result = operation.await;
        // While open, the prober decides when to close; a success here is
        // not counted against it.
        if let Some(target) = target {
            if !target.breaker.is_open() && target.breaker.record(&result) {
                let _ = self.spawn_prober(target);
            }
        }
        result
    }

    /// Probes in the background until the breaker closes, if a Tokio
    /// runtime is at hand (else calls are let through as probes). True if
    /// a background prober runs.
    fn spawn_prober(&self, target: &Target<'_>) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if target.breaker.prober.swap(true, Ordering::AcqRel) {
            return true;
        }
        let prober = Prober {
            breaker: Arc::downgrade(&target.breaker),
            store: Arc::downgrade(&self.store),
            node: target.node.clone(),
        };
        runtime.spawn(prober.run());
        true
    }

    /// The values of `keys`, read node by node (concurrently) when they
    /// span nodes, so a timeout is charged to the node that did not answer.
    async fn get_split(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let groups = self.by_node(keys.iter().map(String::as_str));
        if let [(target, _)] = groups.as_slice() {
            return self.read(target, self.store.get_many(keys)).await;
        }
        let reads = groups.iter().map(|(target, positions)| async move {
            let group: Vec<String> = positions.iter().map(|&at| keys[at].clone()).collect();
            self.read(target, self.store.get_many(&group)).await
        });
        let found = futures_util::future::try_join_all(reads).await?;
        let mut values = vec![None; keys.len()];
        for ((_, positions), group) in groups.iter().zip(found) {
            for (&at, value) in positions.iter().zip(group) {
                values[at] = value;
            }
        }
        Ok(values)
    }
}

/// The background task of an open breaker. Holds both weakly: a dropped
/// cache ends it.
struct Prober {
    breaker: Weak<Breaker>,
    store: Weak<dyn RemoteStore>,
    /// The node it probes (`None`: the whole store).
    node: Option<Arc<str>>,
}

impl Prober {
    async fn run(self) {
        loop {
            let pause = match self.breaker.upgrade() {
                Some(breaker) if breaker.is_open() => breaker.until_probe(),
                _ => return,
            };
            tokio::time::sleep(pause.clamp(Duration::from_millis(1), PROBER_TICK)).await;
            let (Some(breaker), Some(store)) = (self.breaker.upgrade(), self.store.upgrade())
            else {
                return;
            };
            if breaker.start_probe() {
                let pong = match &self.node {
                    Some(node) => store.ping_node(node).await,
                    None => store.ping().await,
                };
                let answered = !matches!(pong, Err(e) if e.is_store());
                breaker.finish_probe(answered);
            }
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        // Also when the runtime shuts down under it: the next opening, or
        // the next call, takes over.
        if let Some(breaker) = self.breaker.upgrade() {
            breaker.prober.store(false, Ordering::Release);
        }
    }
}

#[async_trait]
impl RemoteStore for BreakerStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.read(&self.target(key), self.store.get(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.get_split(keys).await
    }

    async fn get_versioned(
        &self,
        version_key: &str,
        value_prefix: &str,
        value_suffix: &str,
        guess: u64,
    ) -> Result<(u64, Option<Vec<u8>>), Error> {
        let version_target = self.target(version_key);
        // An unsharded store (the common case) needs no second key.
        let same_node = version_target.node.is_none() || {
            let value_target = self.target(&format!("{value_prefix}{guess}{value_suffix}"));
            Arc::ptr_eq(&version_target.breaker, &value_target.breaker)
        };
        if same_node {
            let read = self
                .store
                .get_versioned(version_key, value_prefix, value_suffix, guess);
            return self.read(&version_target, read).await;
        }
        // Two nodes: read them apart, each through its own breaker.
        crate::store::versioned_by_parts(self, version_key, value_prefix, value_suffix, guess).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        self.call(&self.target(key), self.store.set(key, value, ttl))
            .await
    }

    async fn set_many(
        &self,
        pairs: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let groups = self.by_node(pairs.iter().map(|(key, _)| key.as_str()));
        if let [(target, _)] = groups.as_slice() {
            return self.call(target, self.store.set_many(pairs, ttl)).await;
        }
        let writes = groups.iter().map(|(target, positions)| async move {
            let group: Vec<(String, Vec<u8>)> =
                positions.iter().map(|&at| pairs[at].clone()).collect();
            self.call(target, self.store.set_many(&group, ttl)).await
        });
        futures_util::future::try_join_all(writes).await.map(drop)
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, Error> {
        self.call(&self.target(key), self.store.add(key, value, ttl))
            .await
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, Option<Duration>)>, Error> {
        self.read(&self.target(key), self.store.get_with_ttl(key))
            .await
    }

    async fn lease(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.call(&self.target(key), self.store.lease(key, token, ttl))
            .await
    }

    async fn fill(
        &self,
        key: &str,
        token: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        self.call(&self.target(key), self.store.fill(key, token, value, ttl))
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool, Error> {
        self.invalidate(Some(&self.target(key)), self.store.delete(key))
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<usize, Error> {
        let groups = self.by_node(keys.iter().map(String::as_str));
        if let [(target, _)] = groups.as_slice() {
            return self
                .invalidate(Some(target), self.store.delete_many(keys))
                .await;
        }
        // Every group runs, even after one failed: each delete is an
        // invalidation others may depend on.
        let deletes = groups.iter().map(|(target, positions)| async move {
            let group: Vec<String> = positions.iter().map(|&at| keys[at].clone()).collect();
            self.invalidate(Some(target), self.store.delete_many(&group))
                .await
        });
        let mut removed = 0;
        let mut failed = None;
        for result in futures_util::future::join_all(deletes).await {
            match result {
                Ok(n) => removed += n,
                Err(error) => failed = Some(error),
            }
        }
        failed.map_or(Ok(removed), Err)
    }

    async fn has(&self, key: &str) -> Result<bool, Error> {
        self.read(&self.target(key), self.store.has(key)).await
    }

    async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.invalidate(Some(&self.target(key)), self.store.incr(key, delta))
            .await
    }

    async fn clear(&self, prefix: &str) -> Result<(), Error> {
        // Every node: a timeout says nothing about which one, so a sharded
        // store charges it to no breaker (its keys' calls find out).
        let sharded = !self.breakers.nodes.read().is_empty();
        let whole = self.whole();
        self.invalidate((!sharded).then_some(&whole), self.store.clear(prefix))
            .await
    }

    async fn ping(&self) -> Result<(), Error> {
        self.call(&self.whole(), self.store.ping()).await
    }

    fn node_of(&self, key: &str) -> Option<Arc<str>> {
        self.store.node_of(key)
    }

    async fn ping_node(&self, node: &str) -> Result<(), Error> {
        let node: Arc<str> = Arc::from(node);
        let target = Target {
            breaker: std::borrow::Cow::Owned(self.breakers.node(&node)),
            node: Some(Arc::clone(&node)),
        };
        self.call(&target, self.store.ping_node(&node)).await
    }
}

#[cfg(test)]
mod tests;
