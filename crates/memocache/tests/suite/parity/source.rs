//! Flask-Caching's `source_check`: `#[memoize]` stamps a function's values
//! with a hash of its tokens, so a build whose function body changed reads
//! none of the values the old body stored, on a real Redis shared by two
//! "deploys" (two caches, two versions of one function), while a forget by
//! either still reaches both.

use memocache::{Cache, memoize};

use super::Runs;

/// The function as deployed yesterday.
mod v1 {
    use memocache::{Cache, memoize};

    use super::Runs;

    #[memoize(cache = cache, name = "price", timeout = 60, skip(runs))]
    pub(super) async fn price(cache: &Cache, runs: &Runs, item: u64) -> u64 {
        runs.run();
        item * 100
    }

    #[memoize(cache = cache, name = "price_unchecked", timeout = 60, skip(runs), source_check = false)]
    pub(super) async fn price_unchecked(cache: &Cache, runs: &Runs, item: u64) -> u64 {
        runs.run();
        item * 100
    }
}

/// Today's build: the same functions with a fixed body.
mod v2 {
    use memocache::{Cache, memoize};

    use super::Runs;

    #[memoize(cache = cache, name = "price", timeout = 60, skip(runs))]
    pub(super) async fn price(cache: &Cache, runs: &Runs, item: u64) -> u64 {
        runs.run();
        item * 110
    }

    #[memoize(cache = cache, name = "price_unchecked", timeout = 60, skip(runs), source_check = false)]
    pub(super) async fn price_unchecked(cache: &Cache, runs: &Runs, item: u64) -> u64 {
        runs.run();
        item * 110
    }
}

/// Unchanged code keeps its entries: the same function, two processes.
#[memoize(cache = cache, timeout = 60, skip(runs))]
async fn stock(cache: &Cache, runs: &Runs, item: u64) -> u64 {
    runs.run();
    item + 1
}

/// `test_memoize_with_source_check_enabled`,
/// `test_memoize_with_source_check_disabled`,
/// `test_cache_cached_function_with_source_check_enabled`,
/// `test_cache_cached_function_with_source_check_disabled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_body_reads_none_of_the_old_entries_on_redis() {
    let server = testkit::RedisServer::start();
    let url = format!("{}?prefix=src:", server.url());
    let (yesterday, today) = (
        Cache::from_url(&url).expect("cache"),
        Cache::from_url(&url).expect("cache"),
    );
    let (old_runs, new_runs) = (Runs::default(), Runs::default());

    assert_eq!(v1::price(&yesterday, &old_runs, 3).await, 300);
    assert_eq!(
        v2::price(&today, &new_runs, 3).await,
        330,
        "the old body's value is a miss"
    );
    assert_eq!(v2::price(&today, &new_runs, 3).await, 330);
    assert_eq!(new_runs.count(), 1, "the new body's value is kept");

    // A forget made by either build reaches the other's entries.
    assert!(v1::price_forget(&yesterday, 3).await.is_fleet());
    assert_eq!(v2::price(&today, &new_runs, 3).await, 330);
    assert_eq!(new_runs.count(), 2, "forgotten by the old build");

    // Opted out: the new build serves the value the old body stored.
    assert_eq!(v1::price_unchecked(&yesterday, &old_runs, 3).await, 300);
    assert_eq!(v2::price_unchecked(&today, &new_runs, 3).await, 300);
    assert_eq!(new_runs.count(), 2);

    // Unchanged code shares its entries across processes.
    let runs = Runs::default();
    assert_eq!(stock(&yesterday, &runs, 3).await, 4);
    assert_eq!(stock(&today, &runs, 3).await, 4);
    assert_eq!(runs.count(), 1);
}
