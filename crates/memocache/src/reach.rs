//! Whether an invalidation reached the fleet.
//!
//! Every invalidation ([`Memo::forget`](crate::Memo::forget),
//! [`Memo::forget_all`](crate::Memo::forget_all), a fragment's or a
//! response's forget, [`Cache::invalidate_tag`](crate::Cache::invalidate_tag))
//! answers with a [`Reach`]: reads keep failing open, but an invalidation
//! that met a fault says so instead of being logged and lost.
//!
//! # The rule
//!
//! An invalidation *reached the fleet* when both of these held:
//!
//! - the shared store took it (the delete, or the version bump), or there
//!   is no shared store;
//! - the bus carried it to every live process (they acknowledged it, or
//!   one heartbeat passed and the silent ones stopped trusting their
//!   in-process tier: see [`crate::bus`]), or there is no bus.
//!
//! This process's own in-process tier is always evicted, whatever the
//! faults. One that did not reach the fleet may leave another process, or
//! the shared store, with the old value until the value's timeout: the
//! caller keeps it and delivers it again, and [`crate::outbox`] does that
//! durably, across the death of the process that made it.

use std::fmt;

/// How far one invalidation (or several, [`Reach::and`]) got.
///
/// ```
/// use memocache::{Cache, Memo};
/// # futures::executor::block_on(async {
/// let cache = Cache::memory();
/// let users: Memo<u64, String> = Memo::builder("users").build(&cache)?;
/// let reach = users.forget(&7).await;
/// assert!(reach.is_fleet()); // one process, no shared store: always
/// # Ok::<(), memocache::Error>(()) }).unwrap();
/// ```
#[must_use = "an invalidation that did not reach the fleet leaves old values in other processes: \
              keep it and deliver it again (see memocache::outbox)"]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reach {
    missed_store: bool,
    missed_bus: bool,
}

impl Reach {
    /// Reached every tier of every process.
    pub const FLEET: Self = Self {
        missed_store: false,
        missed_bus: false,
    };

    /// The shared store did not take it (unreachable, timed out).
    pub(crate) const MISSED_STORE: Self = Self {
        missed_store: true,
        missed_bus: false,
    };

    /// The bus did not carry it.
    pub(crate) const MISSED_BUS: Self = Self {
        missed_store: false,
        missed_bus: true,
    };

    /// True when every tier of every process was reached.
    ///
    /// ```
    /// assert!(memocache::Reach::FLEET.is_fleet());
    /// ```
    pub fn is_fleet(self) -> bool {
        !self.missed_store && !self.missed_bus
    }

    /// True when the shared store may still hold the old value.
    ///
    /// ```
    /// assert!(!memocache::Reach::FLEET.missed_store());
    /// ```
    pub fn missed_store(self) -> bool {
        self.missed_store
    }

    /// True when other processes may not have heard of it.
    ///
    /// ```
    /// assert!(!memocache::Reach::FLEET.missed_bus());
    /// ```
    pub fn missed_bus(self) -> bool {
        self.missed_bus
    }

    /// Both together: the fleet was reached only if it was by each.
    ///
    /// ```
    /// use memocache::Reach;
    /// assert!(Reach::FLEET.and(Reach::FLEET).is_fleet());
    /// ```
    pub fn and(self, other: Self) -> Self {
        Self {
            missed_store: self.missed_store || other.missed_store,
            missed_bus: self.missed_bus || other.missed_bus,
        }
    }

    /// Every one of `reaches` together ([`Reach::FLEET`] for none).
    ///
    /// ```
    /// use memocache::Reach;
    /// assert!(Reach::all([Reach::FLEET, Reach::FLEET]).is_fleet());
    /// assert!(Reach::all([]).is_fleet());
    /// ```
    pub fn all(reaches: impl IntoIterator<Item = Self>) -> Self {
        reaches.into_iter().fold(Self::FLEET, Self::and)
    }
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.missed_store, self.missed_bus) {
            (false, false) => f.write_str("reached the fleet"),
            (true, false) => f.write_str("missed the shared store"),
            (false, true) => f.write_str("missed the bus"),
            (true, true) => f.write_str("missed the shared store and the bus"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reach;

    #[test]
    fn a_miss_anywhere_is_a_miss() {
        assert!(!Reach::FLEET.and(Reach::MISSED_BUS).is_fleet());
        assert!(!Reach::MISSED_STORE.and(Reach::FLEET).is_fleet());
        let both = Reach::all([Reach::MISSED_STORE, Reach::FLEET, Reach::MISSED_BUS]);
        assert!(both.missed_store() && both.missed_bus());
        assert_eq!(both.to_string(), "missed the shared store and the bus");
    }
}
