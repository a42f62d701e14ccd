//! The synchronisation primitives of the single-flight table ([`crate::flight`]),
//! behind one name so that a model check can swap them.
//!
//! A normal build uses `parking_lot`'s mutex and the standard atomics. Built
//! with `RUSTFLAGS="--cfg shuttle"` (as `scripts/test` does for
//! `flight::model`), they are [shuttle](https://docs.rs/shuttle)'s, whose
//! scheduler then chooses at every lock and atomic step which task runs next,
//! and so explores the interleavings of leaders, waiters and invalidations.
//! `Arc` is the standard one in both builds (shuttle re-exports it).
//!
//! Waiting is not shimmed: a waiter parks on an `event_listener` future, and
//! shuttle's executor resumes it when the notification calls its `Waker`.

#[cfg(not(shuttle))]
pub(crate) use parking_lot::Mutex;
#[cfg(not(shuttle))]
pub(crate) use std::sync::atomic::AtomicBool;

#[cfg(shuttle)]
pub(crate) use shuttle::sync::atomic::AtomicBool;
/// For the model's own counters.
#[cfg(all(shuttle, test))]
pub(crate) use shuttle::sync::atomic::AtomicU64;
#[cfg(shuttle)]
pub(crate) use shuttle_mutex::Mutex;

/// `parking_lot`'s API (`lock` returns the guard) over shuttle's mutex.
#[cfg(shuttle)]
mod shuttle_mutex {
    use std::ops::{Deref, DerefMut};
    use std::sync::PoisonError;

    /// A shuttle mutex that locks like `parking_lot::Mutex`.
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    /// Its guard.
    pub(crate) struct MutexGuard<'a, T>(shuttle::sync::MutexGuard<'a, T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(shuttle::sync::Mutex::new(value))
        }

        /// Locks; a panic while another task held it (a model failure
        /// already being reported) does not poison it.
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(self.0.lock().unwrap_or_else(PoisonError::into_inner))
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;

        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.0
        }
    }
}
