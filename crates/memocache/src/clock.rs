//! Time for expiry checks.
//!
//! Reading `Instant::now()` costs about as much as a whole cache hit, so hits
//! compare deadlines against a coarse clock: a process-wide atomic that a
//! background thread advances every millisecond. Tests inject a
//! [`Clock::manual`] clock and move it by hand instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How often the coarse clock advances.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// A millisecond clock used for expiry.
///
/// ```
/// use std::time::Duration;
/// use memocache::{Cache, CacheConfig, Clock};
///
/// let clock = Clock::manual();
/// let cache = Cache::with_clock(CacheConfig::from_url("memory://")?, clock.clone())?;
/// assert_eq!(cache.clock().now_ms(), clock.now_ms());
/// clock.advance(Duration::from_secs(5)); // expire entries without sleeping
/// # Ok::<(), memocache::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::coarse()
    }
}

impl Clock {
    /// The coarse process clock (the default): cheap to read, at most about
    /// one millisecond behind real time.
    ///
    /// ```
    /// let clock = memocache::Clock::coarse();
    /// let before = clock.now_ms();
    /// std::thread::sleep(std::time::Duration::from_millis(5));
    /// assert!(clock.now_ms() >= before);
    /// ```
    pub fn coarse() -> Self {
        // Every cache is built with a clock: the ticker runs before any
        // lookup reads it.
        let _ = origin();
        Self { manual: None }
    }

    /// A clock that only moves when [`Clock::advance`] is called, starting at
    /// an arbitrary point. For deterministic expiry tests.
    ///
    /// ```
    /// let clock = memocache::Clock::manual();
    /// let start = clock.now_ms();
    /// assert_eq!(clock.now_ms(), start); // time stands still
    /// ```
    pub fn manual() -> Self {
        Self {
            manual: Some(Arc::new(AtomicU64::new(1_000))),
        }
    }

    /// Moves a manual clock forward. Does nothing on the coarse clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = memocache::Clock::manual();
    /// let start = clock.now_ms();
    /// clock.advance(Duration::from_millis(1500));
    /// assert_eq!(clock.now_ms(), start + 1500);
    /// ```
    pub fn advance(&self, by: Duration) {
        if let Some(now) = &self.manual {
            now.fetch_add(duration_ms(by), Ordering::AcqRel);
        }
    }

    /// Milliseconds since an arbitrary, fixed origin.
    ///
    /// ```
    /// let clock = memocache::Clock::manual();
    /// let a = clock.now_ms();
    /// clock.advance(std::time::Duration::from_secs(1));
    /// assert_eq!(clock.now_ms() - a, 1000);
    /// ```
    #[inline]
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            None => coarse_now_ms(),
            Some(now) => now.load(Ordering::Acquire),
        }
    }

    /// Milliseconds on the same scale as [`Clock::now_ms`], read from the
    /// system clock: never behind, even when the ticker thread is starved.
    /// For the rare checks that must not run late (bus trust).
    pub(crate) fn precise_now_ms(&self) -> u64 {
        match &self.manual {
            None => duration_ms(origin().elapsed()) + 1,
            Some(now) => now.load(Ordering::Acquire),
        }
    }

    /// The deadline `timeout` from now, in the units of [`Clock::now_ms`].
    /// `None` means never.
    pub(crate) fn deadline(&self, timeout: Option<Duration>) -> u64 {
        match timeout {
            None => u64::MAX,
            Some(t) => self.now_ms().saturating_add(duration_ms(t).max(1)),
        }
    }
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The coarse clock's reading: milliseconds since [`origin`], plus one so
/// that a deadline of zero is always in the past. Read on every hit, so it
/// is a plain static: no initialisation check on the way.
static NOW_MS: AtomicU64 = AtomicU64::new(1);

/// When the coarse clock started; set once with the ticker thread.
static ORIGIN: OnceLock<Instant> = OnceLock::new();

#[inline]
fn coarse_now_ms() -> u64 {
    NOW_MS.load(Ordering::Relaxed)
}

/// The origin, starting the ticker thread on first use.
fn origin() -> Instant {
    *ORIGIN.get_or_init(start_ticker)
}

fn start_ticker() -> Instant {
    let origin = Instant::now();
    let spawned = std::thread::Builder::new()
        .name("memocache-clock".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                NOW_MS.store(duration_ms(origin.elapsed()) + 1, Ordering::Relaxed);
            }
        });
    if let Err(error) = spawned {
        // Without the thread the clock would stand still and nothing would
        // expire; that is a broken process, not a cache miss.
        panic!("memocache: cannot start the clock thread: {error}");
    }
    origin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = Clock::manual();
        let t0 = clock.now_ms();
        assert_eq!(clock.now_ms(), t0);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), t0 + 2_000);
    }

    #[test]
    fn deadlines() {
        let clock = Clock::manual();
        assert_eq!(clock.deadline(None), u64::MAX);
        assert_eq!(
            clock.deadline(Some(Duration::from_millis(5))),
            clock.now_ms() + 5
        );
        // A sub-millisecond timeout still lives for one tick, never zero.
        assert_eq!(clock.deadline(Some(Duration::ZERO)), clock.now_ms() + 1);
    }
}
