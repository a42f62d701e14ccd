//! `#[memoize]` keys are argument values: equal maps, sets and floats meet
//! in one entry and are forgotten together (issue 28, found by porting
//! Flask-Caching's `test_memoize_kwargs` to a `HashMap` argument: 50 of 50
//! calls missed, and a forget with an equal map left the old value served
//! in 5 to 12 of 20 tries). And a memo's timeout changes at run time.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memocache::{Cache, CacheConfig, Clock, Timeout, memoize};

static TOTAL_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A filter's total: the body counts its runs.
#[memoize(cache = cache)]
async fn total(cache: &Cache, user: u32, filter: &HashMap<String, i64>) -> i64 {
    TOTAL_RUNS.fetch_add(1, Ordering::SeqCst);
    i64::from(user) + filter.values().sum::<i64>()
}

/// An equal map, built anew in its own insertion order and capacity, so
/// that equal maps iterate in different orders.
fn filter(round: usize) -> HashMap<String, i64> {
    let mut keys: Vec<i64> = (0..8).collect();
    keys.rotate_left(round % 8);
    if round % 2 == 1 {
        keys.reverse();
    }
    let mut map = HashMap::with_capacity(round % 50);
    map.extend(keys.into_iter().map(|k| (format!("field{k}"), k)));
    map
}

#[tokio::test]
async fn equal_maps_share_one_entry_and_an_equal_map_forgets_it() {
    let cache = Cache::memory();
    let runs = || TOTAL_RUNS.load(Ordering::SeqCst);
    let before = runs();
    for round in 0..1_000 {
        assert_eq!(total(&cache, 1, &filter(round)).await, 29);
    }
    assert_eq!(
        runs() - before,
        1,
        "0 misses in 1,000 calls with equal maps"
    );

    let mut stale = 0;
    for round in 0..1_000 {
        total_memo(&cache).set(&(1, filter(round)), -1).await;
        let _ = total_forget(&cache, 1, &filter(round + 3)).await;
        if total(&cache, 1, &filter(round + 5)).await == -1 {
            stale += 1;
        }
    }
    assert_eq!(stale, 0, "0 stale after 1,000 forgets with equal maps");
}

#[memoize(cache = cache)]
fn tagged(cache: &Cache, tags: &HashSet<String>) -> usize {
    tags.len()
}

#[test]
fn equal_sets_share_one_entry() {
    let cache = Cache::memory();
    let tags = |capacity: usize| {
        let mut set = HashSet::with_capacity(capacity);
        set.extend(["red", "green", "blue", "cyan", "pink"].map(str::to_owned));
        set
    };
    for capacity in 0..100 {
        assert_eq!(tagged(&cache, &tags(capacity)), 5);
    }
    assert_eq!(tagged_memo(&cache).stats().loads, 1);
}

#[memoize(cache = cache)]
fn scaled(cache: &Cache, x: f64) -> String {
    format!("{x:?}")
}

#[test]
fn zero_and_negative_zero_share_one_entry() {
    let cache = Cache::memory();
    assert_eq!(scaled(&cache, -0.0), "-0.0");
    assert_eq!(scaled(&cache, 0.0), "-0.0", "equal arguments, one entry");
    let _ = scaled_forget(&cache, 0.0);
    assert_eq!(scaled(&cache, 0.0), "0.0");
    assert_eq!(scaled_memo(&cache).stats().loads, 2);
}

#[memoize(cache = cache, timeout = 60)]
fn stamped(cache: &Cache, id: u64) -> u64 {
    id
}

/// Flask-Caching's `f.cache_timeout = …` (its `test_cache_timeout_property`):
/// the function's memo takes a new timeout at run time, read by the next
/// value stored.
#[test]
fn the_timeout_changes_at_run_time() {
    let clock = Clock::manual();
    let cache = Cache::with_clock(CacheConfig::memory(100), clock.clone()).expect("cache");
    assert_eq!(
        stamped_memo(&cache).timeout(),
        Some(Duration::from_secs(60))
    );

    stamped(&cache, 1); // stored for 60 s
    stamped_memo(&cache).set_timeout(Timeout::secs(5));
    assert_eq!(stamped_memo(&cache).timeout(), Some(Duration::from_secs(5)));
    stamped(&cache, 2); // stored for 5 s

    clock.advance(Duration::from_secs(5));
    let memo = stamped_memo(&cache);
    assert!(memo.get(&1).now().is_some(), "stored before: keeps 60 s");
    assert!(memo.get(&2).now().is_none(), "stored after: 5 s");
}

/// Polls a future that completes at once (the in-process store's do).
trait Now: std::future::Future + Sized {
    fn now(self) -> Self::Output {
        futures::FutureExt::now_or_never(self).expect("answers at once")
    }
}

impl<F: std::future::Future> Now for F {}
