//! Single-flight: concurrent misses of one key run one load.
//!
//! The first caller to miss registers a [`Flight`] and becomes its leader;
//! later callers find it and wait. The leader publishes the value (or the
//! error, which is shared but never cached) and wakes the waiters.
//!
//! Three things can go wrong with the leader, and none may strand waiters:
//! - its future is dropped (the request was cancelled) or its loader
//!   panics: the [`LeaderGuard`] marks the flight abandoned on drop, and a
//!   waiter starts over and becomes the new leader;
//! - it stalls: a waiter that waited `stall_timeout` takes the load over
//!   (one waiter per flight) and completes the flight with its own result;
//! - an invalidation arrives while it loads: [`Flights::invalidate`] removes
//!   the flight from the table and marks it, under the same shard lock under
//!   which a completing load stores its value. A load that started before
//!   `forget` returned therefore never stores its (possibly stale) result
//!   afterwards; its caller and waiters still get the value they asked for.
//!
//! There is no global lock: flights live in a sharded map, and the shard lock
//! is never held across an `.await` or a loader call, so a loader may call
//! other memos (or the same memo for other keys) freely.
//!
//! The locks and atomics come from [`crate::sync`], so that `flight::model`
//! (built with `RUSTFLAGS="--cfg shuttle"`) can explore these interleavings.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use event_listener::{Event, EventListener};

use crate::key::KeyHash;
use crate::sync::{AtomicBool, Mutex};

#[cfg(all(test, shuttle))]
mod model;

const SHARDS: usize = 32;

/// A shared load error, type-erased; callers downcast to their `E`.
pub(crate) type SharedError = Arc<dyn Any + Send + Sync>;

/// How a flight ended, as seen by a waiter.
pub(crate) enum Outcome<V> {
    Running,
    Done(Arc<V>),
    Failed(SharedError),
    Abandoned,
}

impl<V> Clone for Outcome<V> {
    fn clone(&self) -> Self {
        match self {
            Self::Running => Self::Running,
            Self::Done(v) => Self::Done(Arc::clone(v)),
            Self::Failed(e) => Self::Failed(Arc::clone(e)),
            Self::Abandoned => Self::Abandoned,
        }
    }
}

/// One load in progress.
pub(crate) struct Flight<V> {
    outcome: Mutex<Outcome<V>>,
    done: Event,
    taken_over: AtomicBool,
}

impl<V> Flight<V> {
    fn new() -> Self {
        Self {
            outcome: Mutex::new(Outcome::Running),
            done: Event::new(),
            taken_over: AtomicBool::new(false),
        }
    }

    /// A listener to register *before* checking [`Flight::outcome`], so that
    /// a completion between the check and the wait is not missed.
    pub(crate) fn listen(&self) -> EventListener {
        self.done.listen()
    }

    pub(crate) fn outcome(&self) -> Outcome<V> {
        self.outcome.lock().clone()
    }

    /// True for the one waiter that may take a stalled load over.
    pub(crate) fn claim_takeover(&self) -> bool {
        !self.taken_over.swap(true, Ordering::AcqRel)
    }

    /// Sets the outcome if the flight is still running; true if it was.
    fn settle(&self, outcome: Outcome<V>) -> bool {
        let mut current = self.outcome.lock();
        if !matches!(*current, Outcome::Running) {
            return false;
        }
        *current = outcome;
        drop(current);
        self.done.notify(usize::MAX);
        true
    }
}

type Shard<V> = Mutex<HashMap<KeyHash, Arc<Flight<V>>>>;

/// The flights of one memo.
pub(crate) struct Flights<V> {
    shards: Box<[Shard<V>]>,
}

/// What a caller that missed should do.
pub(crate) enum Join<'a, V> {
    /// Load the value, then [`LeaderGuard::finish`].
    Lead(LeaderGuard<'a, V>),
    /// Wait for the flight's outcome.
    Wait(Arc<Flight<V>>),
}

impl<V> Flights<V> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: KeyHash) -> &Shard<V> {
        &self.shards[(key.0 as usize) % SHARDS]
    }

    /// Joins the flight for `key`, starting one if there is none.
    pub(crate) fn join(&self, key: KeyHash) -> Join<'_, V> {
        let mut shard = self.shard(key).lock();
        if let Some(flight) = shard.get(&key) {
            return Join::Wait(Arc::clone(flight));
        }
        let flight = Arc::new(Flight::new());
        shard.insert(key, Arc::clone(&flight));
        Join::Lead(LeaderGuard {
            flights: self,
            key,
            flight,
            finished: false,
        })
    }

    /// Completes `flight` with `value`. `store` runs only if the flight is
    /// still the registered one for `key` (not invalidated, not completed by
    /// someone else), under the shard lock that [`Flights::invalidate`] takes.
    /// Returns whether `store` ran.
    ///
    /// A stored value is also the flight's outcome: it is settled under the
    /// same lock, so a leader and a waiter that took over, completing at
    /// once, cannot hand the waiters one value while the cache keeps the
    /// other (`flight::model` found that interleaving when the settle came
    /// after the unlock).
    pub(crate) fn complete(
        &self,
        key: KeyHash,
        flight: &Arc<Flight<V>>,
        value: &Arc<V>,
        store: impl FnOnce(&Arc<V>),
    ) -> bool {
        let mut shard = self.shard(key).lock();
        let current = shard.get(&key).is_some_and(|f| Arc::ptr_eq(f, flight));
        if current {
            store(value);
            shard.remove(&key);
            flight.settle(Outcome::Done(Arc::clone(value)));
            return true;
        }
        drop(shard);
        // Detached (invalidated) or completed by another: the first outcome
        // stands.
        flight.settle(Outcome::Done(Arc::clone(value)));
        false
    }

    /// Ends `flight` with a shared error (nothing is stored).
    pub(crate) fn fail(&self, key: KeyHash, flight: &Arc<Flight<V>>, error: SharedError) {
        self.unregister(key, flight);
        flight.settle(Outcome::Failed(error));
    }

    fn unregister(&self, key: KeyHash, flight: &Arc<Flight<V>>) {
        let mut shard = self.shard(key).lock();
        if shard.get(&key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            shard.remove(&key);
        }
    }

    /// Detaches any load in flight for `key` so it cannot store its result,
    /// and runs `evict` under the same lock.
    pub(crate) fn invalidate(&self, key: KeyHash, evict: impl FnOnce()) {
        let mut shard = self.shard(key).lock();
        shard.remove(&key);
        evict();
    }

    /// [`Flights::invalidate`] for every key, running `evict` under all shard
    /// locks.
    pub(crate) fn invalidate_all(&self, evict: impl FnOnce()) {
        let mut guards: Vec<_> = self.shards.iter().map(|s| s.lock()).collect();
        for shard in &mut guards {
            shard.clear();
        }
        evict();
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// Held by the caller that loads; dropping it unfinished (cancellation,
/// panic) abandons the flight so that a waiter can take over.
pub(crate) struct LeaderGuard<'a, V> {
    flights: &'a Flights<V>,
    key: KeyHash,
    flight: Arc<Flight<V>>,
    finished: bool,
}

impl<V> LeaderGuard<'_, V> {
    /// Publishes the loaded value, storing it through `store` unless the key
    /// was invalidated since the flight started.
    /// Returns whether `store` ran.
    pub(crate) fn finish(mut self, value: &Arc<V>, store: impl FnOnce(&Arc<V>)) -> bool {
        self.finished = true;
        self.flights.complete(self.key, &self.flight, value, store)
    }

    /// Publishes a load error to the waiters.
    pub(crate) fn fail(mut self, error: SharedError) {
        self.finished = true;
        self.flights.fail(self.key, &self.flight, error);
    }
}

impl<V> Drop for LeaderGuard<'_, V> {
    fn drop(&mut self) {
        if !self.finished {
            self.flights.unregister(self.key, &self.flight);
            self.flight.settle(Outcome::Abandoned);
        }
    }
}
