//! [`Relay`]: what every process runs to deliver the intents writers left
//! in the outbox (see [`crate::outbox`] for when and why).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::{Outbox, wall_ms};
use crate::cache::Cache;
use crate::clock::duration_ms;

/// How a [`Relay`] paces itself.
///
/// ```
/// use std::time::Duration;
/// let config = memocache::outbox::RelayConfig::default();
/// assert_eq!(config.interval, Duration::from_millis(250));
/// assert!(config.grace < config.settle);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// How often the outbox is read (default 250 ms).
    pub interval: Duration,
    /// Age at which an entry is first delivered by a relay (default
    /// 500 ms): its writer normally delivered and confirmed it by then.
    pub grace: Duration,
    /// Age at which an entry is delivered again and confirmed (default
    /// 30 s): any write still running at the first delivery is visible by
    /// then.
    pub settle: Duration,
    /// Entries read per round (default 100).
    pub batch: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(250),
            grace: Duration::from_millis(500),
            settle: Duration::from_secs(30),
            batch: 100,
        }
    }
}

impl RelayConfig {
    /// Sets the three times; `settle` is raised to at least `grace`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = memocache::outbox::RelayConfig::default()
    ///     .times(Duration::from_millis(100), Duration::from_millis(200), Duration::from_secs(5));
    /// assert_eq!(config.grace, Duration::from_millis(200));
    /// ```
    pub fn times(mut self, interval: Duration, grace: Duration, settle: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self.grace = grace;
        self.settle = settle.max(grace);
        self
    }
}

/// What one round of a [`Relay`] did.
///
/// ```
/// let report = memocache::outbox::RelayReport::default();
/// assert_eq!(report.delivered + report.confirmed + report.failed, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayReport {
    /// Entries delivered to the whole fleet.
    pub delivered: usize,
    /// Entries confirmed (removed).
    pub confirmed: usize,
    /// Entries whose delivery met a fault (tried again next round).
    pub failed: usize,
    /// True when the round did not run: this process's shared store or
    /// bus is unreachable (others deliver meanwhile), or the outbox failed.
    pub skipped: bool,
}

/// Counters of a relay since it was made.
///
/// ```
/// let stats = memocache::outbox::RelayStats::default();
/// assert_eq!(stats.delivered, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Entries delivered to the whole fleet.
    pub delivered: u64,
    /// Entries confirmed.
    pub confirmed: u64,
    /// Deliveries that met a fault.
    pub failed: u64,
    /// Rounds that could not run.
    pub skipped: u64,
}

/// Delivers an outbox's pending entries (see the [module docs](crate::outbox)). Run
/// one in every process of a fleet: [`Relay::spawn`].
///
/// ```
/// # fn outbox() -> std::sync::Arc<dyn memocache::outbox::Outbox> { unimplemented!() }
/// # async fn doc() {
/// use memocache::{Cache, outbox::{Relay, wall_ms}};
/// let relay = Relay::new(&Cache::memory(), outbox());
/// let report = relay.run_once(wall_ms()).await; // what `spawn` does every interval
/// # }
/// ```
pub struct Relay {
    cache: Cache,
    outbox: Arc<dyn Outbox>,
    config: RelayConfig,
    /// Entries this relay delivered once, before they were `settle` old.
    early: Mutex<HashSet<String>>,
    delivered: AtomicU64,
    confirmed: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

impl Relay {
    /// A relay of `outbox` for `cache`, with the default pacing.
    ///
    /// ```
    /// # fn outbox() -> std::sync::Arc<dyn memocache::outbox::Outbox> { unimplemented!() }
    /// # fn doc() {
    /// let relay = memocache::outbox::Relay::new(&memocache::Cache::memory(), outbox());
    /// # }
    /// ```
    pub fn new(cache: &Cache, outbox: Arc<dyn Outbox>) -> Self {
        Self {
            cache: cache.clone(),
            outbox,
            config: RelayConfig::default(),
            early: Mutex::new(HashSet::new()),
            delivered: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Sets the pacing.
    ///
    /// ```
    /// # fn outbox() -> std::sync::Arc<dyn memocache::outbox::Outbox> { unimplemented!() }
    /// # fn doc() {
    /// use memocache::outbox::{Relay, RelayConfig};
    /// let relay = Relay::new(&memocache::Cache::memory(), outbox()).with_config(RelayConfig::default());
    /// # }
    /// ```
    pub fn with_config(mut self, config: RelayConfig) -> Self {
        self.config = config;
        self
    }

    /// The relay's counters.
    ///
    /// ```
    /// # fn doc(relay: &memocache::outbox::Relay) {
    /// let failed = relay.stats().failed;
    /// # }
    /// ```
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            confirmed: self.confirmed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }

    /// One round at wall-clock time `now_ms`: delivers the entries at
    /// least `grace` old that this relay has not delivered yet, and those
    /// at least `settle` old, confirming the latter.
    ///
    /// See [`Relay`] for an example.
    pub async fn run_once(&self, now_ms: u64) -> RelayReport {
        let mut report = RelayReport::default();
        if !self.cache.store_available() {
            // Every delivery would wait out a timeout; the others deliver.
            report.skipped = true;
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return report;
        }
        let grace = duration_ms(self.config.grace);
        let settle = duration_ms(self.config.settle);
        let pending = match self
            .outbox
            .pending(now_ms.saturating_sub(grace), self.config.batch)
            .await
        {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(%error, "outbox not readable; relay round skipped");
                report.skipped = true;
                self.skipped.fetch_add(1, Ordering::Relaxed);
                return report;
            }
        };
        // Forget what is gone (confirmed by someone) so the set stays small.
        self.early
            .lock()
            .retain(|id| pending.iter().any(|p| &p.id == id));
        for entry in &pending {
            let settled = now_ms.saturating_sub(entry.recorded_ms) >= settle;
            if !settled && self.early.lock().contains(&entry.id) {
                continue;
            }
            let reach = self.cache.deliver(&entry.intents).await;
            if !reach.is_fleet() {
                report.failed += 1;
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id = %entry.id, %reach, "outbox entry not delivered; next round");
                // The next ones would meet the same fault.
                break;
            }
            report.delivered += 1;
            self.delivered.fetch_add(1, Ordering::Relaxed);
            if !settled {
                self.early.lock().insert(entry.id.clone());
                continue;
            }
            match self.outbox.confirm(&entry.id).await {
                Ok(()) => {
                    report.confirmed += 1;
                    self.confirmed.fetch_add(1, Ordering::Relaxed);
                    self.early.lock().remove(&entry.id);
                }
                Err(error) => tracing::warn!(%error, id = %entry.id, "outbox entry not removed"),
            }
        }
        report
    }

    /// Runs a round every [`RelayConfig::interval`] on the current Tokio
    /// runtime until the returned handle is dropped.
    ///
    /// ```
    /// # fn outbox() -> std::sync::Arc<dyn memocache::outbox::Outbox> { unimplemented!() }
    /// # async fn doc() {
    /// let relay = std::sync::Arc::new(memocache::outbox::Relay::new(&memocache::Cache::memory(), outbox()));
    /// let running = relay.spawn(); // stops when `running` is dropped
    /// # }
    /// ```
    pub fn spawn(self: Arc<Self>) -> RelayTask {
        let interval = self.config.interval;
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                self.run_once(wall_ms()).await;
            }
        });
        RelayTask(task)
    }
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A running [`Relay`]; dropping it stops the relay.
#[derive(Debug)]
pub struct RelayTask(tokio::task::JoinHandle<()>);

impl Drop for RelayTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
