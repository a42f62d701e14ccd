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
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The coarse process clock (the default): cheap to read, at most about
    /// one millisecond behind real time.
    pub fn coarse() -> Self {
        Self { manual: None }
    }

    /// A clock that only moves when [`Clock::advance`] is called, starting at
    /// an arbitrary point. For deterministic expiry tests.
    pub fn manual() -> Self {
        Self {
            manual: Some(Arc::new(AtomicU64::new(1_000))),
        }
    }

    /// Moves a manual clock forward. Does nothing on the coarse clock.
    pub fn advance(&self, by: Duration) {
        if let Some(now) = &self.manual {
            now.fetch_add(duration_ms(by), Ordering::AcqRel);
        }
    }

    /// Milliseconds since an arbitrary, fixed origin.
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
            None => {
                let ticker = TICKER.get_or_init(start_ticker);
                duration_ms(ticker.origin.elapsed()) + 1
            }
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

struct Ticker {
    origin: Instant,
    now_ms: AtomicU64,
}

static TICKER: OnceLock<&'static Ticker> = OnceLock::new();

#[inline]
fn coarse_now_ms() -> u64 {
    TICKER
        .get_or_init(start_ticker)
        .now_ms
        .load(Ordering::Relaxed)
}

fn start_ticker() -> &'static Ticker {
    let ticker: &'static Ticker = Box::leak(Box::new(Ticker {
        origin: Instant::now(),
        // Start at one so that a deadline of zero is always in the past.
        now_ms: AtomicU64::new(1),
    }));
    let spawned = std::thread::Builder::new()
        .name("memocache-clock".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                let elapsed = duration_ms(ticker.origin.elapsed()) + 1;
                ticker.now_ms.store(elapsed, Ordering::Relaxed);
            }
        });
    if let Err(error) = spawned {
        // Without the thread the clock would stand still and nothing would
        // expire; that is a broken process, not a cache miss.
        panic!("memocache: cannot start the clock thread: {error}");
    }
    ticker
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
