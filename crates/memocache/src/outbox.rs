//! Durable invalidation: an invalidation is never lost, wherever its write
//! was made.
//!
//! A tiered cache's `forget` reaches every process before it returns, but
//! only from a process that can reach the shared store and the bus: one cut
//! off from Redis, or killed between its database commit and its forgets,
//! would leave the rest of the fleet serving the old value until its
//! timeout. "Scaling Memcache at Facebook" derives invalidations from the
//! database's commit log and delivers them until they arrive; an
//! [`Outbox`] is the same idea inside the application's own database.
//!
//! # The protocol
//!
//! [`Durable::write`] runs one write with the invalidations it causes:
//!
//! 1. **record** the [`Intent`]s in the outbox (the app's database), stamped
//!    with the wall clock. If that fails, nothing is written: the caller
//!    refuses the request.
//! 2. **write** (the app's own database change).
//! 3. **deliver** the intents (what `forget`/`forget_all` do) and, if they
//!    [reached the fleet](crate::Reach), **confirm** (remove) the entry.
//!    While this process's breaker keeps it off the shared store or the
//!    bus, it only forgets locally and leaves the entry to the relays: a
//!    write on a cut-off process costs no store timeout.
//!
//! A cache without a shared store (one process) records nothing: its
//! forgets always reach everything there is.
//!
//! A [`Relay`] in every process of the fleet delivers entries that stay
//! pending: those of a writer that was cut off, that met a transient fault,
//! or that died after step 1. So a process cut off from Redis has its
//! invalidations delivered by the others.
//!
//! # Order, and why delivering twice is harmless
//!
//! The intent is recorded *before* the write, so it can never be missing
//! for a write that happened; a relay could see it before the write is
//! visible, and a reader could then re-cache the old value. So a relay
//! delivers an entry first once it is [`RelayConfig::grace`] old (the
//! writer has normally confirmed it long before), and again, before
//! confirming it, once it is [`RelayConfig::settle`] old: a write that was
//! still running at the first delivery is visible by the second. Delivering
//! twice costs one more miss per key; an intent whose write never happened
//! (the writer died or failed between steps 1 and 2) costs one miss.
//!
//! # The bound
//!
//! With relays running, after a write returns every process serves the new
//! state:
//!
//! - at once, when the writer's delivery reached the fleet (the normal
//!   case, and the guarantee of a tiered cache without an outbox);
//! - otherwise within `grace + interval` plus one delivery (0.75 s with the
//!   defaults) of the entry's record, as long as one process of the fleet
//!   reaches the shared store and the write took less than `grace`;
//! - within `settle + interval` (30.25 s) for a write that took longer than
//!   `grace` and whose writer could not deliver it;
//! - if no process reaches the shared store (Redis down for everyone),
//!   every process's in-process tier stops being trusted within one
//!   heartbeat (see [`crate::bus`]) and reads go to the source; pending
//!   entries are delivered within `interval` of a relay's store breaker
//!   closing again.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::cache::Cache;
use crate::error::{Error, Result};
pub use crate::intent::Intent;
use crate::reach::Reach;

/// An entry of an outbox that is not confirmed yet.
///
/// ```
/// use memocache::outbox::{Intent, Pending};
/// let entry = Pending { id: "42".into(), intents: vec![Intent::All { memo: "feed".into() }], recorded_ms: 1_700_000_000_000 };
/// assert_eq!(entry.intents.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The entry's id in the outbox.
    pub id: String,
    /// What it invalidates.
    pub intents: Vec<Intent>,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub recorded_ms: u64,
}

/// Where an application keeps invalidations until they are delivered: a
/// table of its own database, so an entry outlives the process that wrote
/// it. Implemented by the application for its database (the board has one
/// for SQLite and one for DynamoDB).
///
/// ```
/// use std::sync::Arc;
/// use parking_lot::Mutex;
/// use memocache::outbox::{Intent, Outbox, Pending};
///
/// /// An outbox in memory: for tests (it dies with the process).
/// #[derive(Default)]
/// struct InMemory(Mutex<Vec<Pending>>);
///
/// #[async_trait::async_trait]
/// impl Outbox for InMemory {
///     async fn record(&self, intents: &[Intent], recorded_ms: u64) -> memocache::Result<String> {
///         let mut rows = self.0.lock();
///         let id = format!("{}-{}", recorded_ms, rows.len());
///         rows.push(Pending { id: id.clone(), intents: intents.to_vec(), recorded_ms });
///         Ok(id)
///     }
///     async fn pending(&self, recorded_before_ms: u64, limit: usize) -> memocache::Result<Vec<Pending>> {
///         let rows = self.0.lock();
///         Ok(rows.iter().filter(|p| p.recorded_ms <= recorded_before_ms).take(limit).cloned().collect())
///     }
///     async fn confirm(&self, id: &str) -> memocache::Result<()> {
///         self.0.lock().retain(|p| p.id != id);
///         Ok(())
///     }
/// }
/// # let _: Arc<dyn Outbox> = Arc::new(InMemory::default());
/// ```
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Stores `intents` as one entry stamped `recorded_ms` (Unix
    /// milliseconds) and returns its id. Must be durable when it returns.
    ///
    /// # Errors
    /// The database failed: the write must not happen.
    async fn record(&self, intents: &[Intent], recorded_ms: u64) -> Result<String>;

    /// Up to `limit` entries recorded at or before `recorded_before_ms`,
    /// oldest first.
    ///
    /// # Errors
    /// The database failed.
    async fn pending(&self, recorded_before_ms: u64, limit: usize) -> Result<Vec<Pending>>;

    /// Removes entry `id` (delivered); removing one already gone is fine.
    ///
    /// # Errors
    /// The database failed (the entry is delivered again later: harmless).
    async fn confirm(&self, id: &str) -> Result<()>;
}

/// The wall clock outbox entries are stamped with: Unix milliseconds.
///
/// ```
/// assert!(memocache::outbox::wall_ms() > 1_600_000_000_000);
/// ```
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A write that failed, or could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum DurableError<E> {
    /// The intents could not be recorded: nothing was written.
    #[error("invalidation not recorded, nothing written: {0}")]
    Record(#[source] Error),
    /// The write itself failed (its intents stay recorded: delivering
    /// them is harmless).
    #[error(transparent)]
    Write(E),
}

/// Writes with their invalidations recorded first (see the
/// [module docs](self)). Cheap to clone.
///
/// ```
/// # use std::sync::Arc;
/// # use parking_lot::Mutex;
/// # use memocache::outbox::{Intent, Outbox, Pending};
/// # #[derive(Default)] struct InMemory(Mutex<Vec<Pending>>);
/// # #[async_trait::async_trait] impl Outbox for InMemory {
/// #     async fn record(&self, intents: &[Intent], recorded_ms: u64) -> memocache::Result<String> {
/// #         let mut rows = self.0.lock(); let id = rows.len().to_string();
/// #         rows.push(Pending { id: id.clone(), intents: intents.to_vec(), recorded_ms }); Ok(id) }
/// #     async fn pending(&self, before: u64, limit: usize) -> memocache::Result<Vec<Pending>> {
/// #         Ok(self.0.lock().iter().filter(|p| p.recorded_ms <= before).take(limit).cloned().collect()) }
/// #     async fn confirm(&self, id: &str) -> memocache::Result<()> { self.0.lock().retain(|p| p.id != id); Ok(()) }
/// # }
/// use memocache::{Cache, Memo, outbox::Durable};
/// # futures::executor::block_on(async {
/// let cache = Cache::memory();
/// let names: Memo<u64, String> = Memo::builder("names").build(&cache)?;
/// let outbox = Arc::new(InMemory::default());
/// let durable = Durable::new(&cache, outbox.clone());
///
/// names.set(&7, "ada".to_owned()).await;
/// let written = durable
///     .write(vec![names.intent(&7)?], async { Ok::<_, std::io::Error>("renamed") })
///     .await
///     .expect("written");
/// assert_eq!(written.value, "renamed");
/// assert!(written.reach.is_fleet());
/// assert!(names.get(&7).await.is_none());
/// assert!(outbox.0.lock().is_empty()); // delivered and confirmed
/// # Ok::<(), memocache::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Durable {
    cache: Cache,
    outbox: Arc<dyn Outbox>,
}

/// A write's result and how far its invalidations got at once.
#[derive(Debug)]
pub struct Written<T> {
    /// What the write returned.
    pub value: T,
    /// How far the invalidations got before the write returned; when not
    /// the whole fleet, the outbox keeps them for the relays.
    pub reach: Reach,
}

impl Durable {
    /// Writes through `outbox`, invalidating on `cache`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # fn outbox() -> Arc<dyn memocache::outbox::Outbox> { unimplemented!() }
    /// # fn doc() {
    /// let durable = memocache::outbox::Durable::new(&memocache::Cache::memory(), outbox());
    /// # }
    /// ```
    pub fn new(cache: &Cache, outbox: Arc<dyn Outbox>) -> Self {
        Self {
            cache: cache.clone(),
            outbox,
        }
    }

    /// The outbox written to.
    ///
    /// ```
    /// # fn doc(durable: &memocache::outbox::Durable) {
    /// let outbox = durable.outbox();
    /// # }
    /// ```
    pub fn outbox(&self) -> &Arc<dyn Outbox> {
        &self.outbox
    }

    /// Records `intents`, runs `write`, then delivers the intents and
    /// confirms them if they reached the fleet (see the
    /// [module docs](self)). No intents: just the write.
    ///
    /// See [`Durable`] for an example.
    ///
    /// # Errors
    /// [`DurableError::Record`] when the outbox failed (nothing was
    /// written); [`DurableError::Write`] with the write's own error.
    pub async fn write<T, E, F>(
        &self,
        intents: Vec<Intent>,
        write: F,
    ) -> std::result::Result<Written<T>, DurableError<E>>
    where
        F: Future<Output = std::result::Result<T, E>>,
    {
        if intents.is_empty() || !self.cache.is_shared() {
            // In one process alone every forget reaches the whole "fleet":
            // nothing to keep. Forget after the write, as a relay would.
            let value = write.await.map_err(DurableError::Write)?;
            let reach = self.cache.deliver(&intents).await;
            return Ok(Written { value, reach });
        }
        let id = self
            .outbox
            .record(&intents, wall_ms())
            .await
            .map_err(DurableError::Record)?;
        let value = write.await.map_err(DurableError::Write)?;
        let reach = self.deliver(&id, &intents).await;
        Ok(Written { value, reach })
    }

    /// Records and delivers invalidations of a write already made (whose
    /// effects were only known once it ran).
    ///
    /// ```
    /// # fn doc(durable: memocache::outbox::Durable) { futures::executor::block_on(async {
    /// let reach = durable.invalidate(vec![]).await?;
    /// assert!(reach.is_fleet());
    /// # Ok::<(), memocache::Error>(()) }).unwrap(); }
    /// ```
    ///
    /// # Errors
    /// The outbox failed; the intents were still delivered once.
    pub async fn invalidate(&self, intents: Vec<Intent>) -> Result<Reach> {
        if intents.is_empty() || !self.cache.is_shared() {
            return Ok(self.cache.deliver(&intents).await);
        }
        match self.outbox.record(&intents, wall_ms()).await {
            Ok(id) => Ok(self.deliver(&id, &intents).await),
            Err(error) => {
                let _ = self.cache.deliver(&intents).await;
                Err(error)
            }
        }
    }

    async fn deliver(&self, id: &str, intents: &[Intent]) -> Reach {
        if !self.cache.store_available() {
            // This process cannot reach the shared store or the bus (a
            // breaker is open): asking would cost a store timeout per
            // write, and the entry is safe in the outbox, where the other
            // processes' relays find it. Forget here at once.
            self.cache.deliver_locally(intents);
            tracing::debug!(id, "store unreachable: invalidation left to the relays");
            return Reach::MISSED_STORE.and(Reach::MISSED_BUS);
        }
        let reach = self.cache.deliver(intents).await;
        if reach.is_fleet() {
            if let Err(error) = self.outbox.confirm(id).await {
                tracing::warn!(%error, id, "outbox entry delivered but not removed; a relay delivers it again");
            }
        } else {
            tracing::warn!(id, %reach, "invalidation kept in the outbox for the relays");
        }
        reach
    }
}

impl fmt::Debug for Durable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

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

/// Delivers an outbox's pending entries (see the [module docs](self)). Run
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

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
