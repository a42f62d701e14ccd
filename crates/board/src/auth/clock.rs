//! [`SessionClock`]: the wall clock sessions start and expire by.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Unix milliseconds as sessions see them: the system clock, or (for tests)
/// a manual clock that starts at the system time and then only moves when
/// [`SessionClock::advance`] is called, so expiry is tested without sleeping.
///
/// ```
/// use std::time::Duration;
/// use board::auth::clock::SessionClock;
///
/// let clock = SessionClock::manual();
/// let start = clock.now_ms();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now_ms(), start + 2_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SessionClock(Option<Arc<AtomicI64>>);

impl SessionClock {
    /// The system clock ([`super::now_ms`]); the default.
    ///
    /// ```
    /// let clock = board::auth::clock::SessionClock::system();
    /// assert!(clock.now_ms() > 1_600_000_000_000); // after September 2020
    /// ```
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that reads the system time once and then stands still until
    /// advanced. Clones share it.
    ///
    /// ```
    /// let clock = board::auth::clock::SessionClock::manual();
    /// assert_eq!(clock.now_ms(), clock.clone().now_ms());
    /// ```
    pub fn manual() -> Self {
        Self(Some(Arc::new(AtomicI64::new(super::now_ms()))))
    }

    /// Milliseconds since the Unix epoch.
    ///
    /// ```
    /// let clock = board::auth::clock::SessionClock::system();
    /// let earlier = clock.now_ms();
    /// assert!(clock.now_ms() >= earlier);
    /// ```
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            None => super::now_ms(),
            Some(ms) => ms.load(Ordering::Acquire),
        }
    }

    /// Moves a manual clock forward; the system clock ignores it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = board::auth::clock::SessionClock::manual();
    /// let start = clock.now_ms();
    /// clock.advance(Duration::from_millis(1_300));
    /// assert_eq!(clock.now_ms(), start + 1_300);
    /// ```
    pub fn advance(&self, by: Duration) {
        if let Some(ms) = &self.0 {
            let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            ms.fetch_add(by, Ordering::AcqRel);
        }
    }
}
