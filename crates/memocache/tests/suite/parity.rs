//! Flask-Caching's own test suite, walked behaviour by behaviour against
//! memocache's public API: `memoize` (its `tests/test_memoize.py`),
//! `cache` (`tests/test_cache.py`) and `view` (`tests/test_view.py`).
//!
//! Each test names the Flask-Caching tests it answers; `PARITY.md` (next to
//! the crate's `Cargo.toml`) is the table of every Flask-Caching test, ours,
//! and the status, including the Python-only behaviours that do not apply
//! and why. Flask-Caching's tests detect a recomputation by returning a
//! random number; these count the body's runs instead, and move a manual
//! clock where Flask-Caching's move a fake `time`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memocache::{Cache, CacheConfig, Clock};

mod cache;
#[cfg(feature = "macros")]
mod memoize;
#[cfg(feature = "macros")]
mod options;
#[cfg(all(feature = "macros", feature = "redis"))]
mod source;
#[cfg(feature = "axum")]
mod view;

/// Counts a body's runs.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicU32>);

impl Runs {
    /// Counts one run and returns its number (1 for the first).
    fn run(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn count(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

/// An in-process cache on a manual clock (Flask-Caching's `clock` fixture),
/// with `default` as its default timeout.
fn manual(default: Option<Duration>) -> (Cache, Clock) {
    let clock = Clock::manual();
    let config = CacheConfig::memory(1_000).default_timeout(default);
    let cache = Cache::with_clock(config, clock.clone()).expect("cache");
    (cache, clock)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
