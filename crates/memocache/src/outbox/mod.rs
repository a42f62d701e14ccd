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

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

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

mod relay;

pub use relay::{Relay, RelayConfig, RelayReport, RelayStats, RelayTask};

#[cfg(test)]
mod tests;
