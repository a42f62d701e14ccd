//! `memoize(unless=..., forced_update=..., response_filter=...)` on memos:
//! `#[memoize]` options and `MemoBuilder` options, in process and on a
//! real Redis shared by two processes.

use std::sync::atomic::{AtomicBool, Ordering};

use futures::executor::block_on;
use memocache::{Cache, Memo, memoize};

use super::{Runs, manual};

static SKIP: AtomicBool = AtomicBool::new(false);

#[memoize(cache = cache, skip(runs), unless = || SKIP.load(Ordering::SeqCst))]
fn unless_skips(cache: &Cache, runs: &Runs, a: u32) -> (u32, u32) {
    (a, runs.run())
}

/// Flask-Caching's `memoize(unless=...)` (its `test_cached_view_unless`
/// for memos): while `unless` says so, the body runs and nothing is read
/// or stored.
#[test]
fn unless_bypasses_the_memo() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let kept = unless_skips(&cache, &runs, 1);
    SKIP.store(true, Ordering::SeqCst);
    let skipped = unless_skips(&cache, &runs, 1);
    assert_ne!(skipped, kept, "not read");
    assert_ne!(
        unless_skips(&cache, &runs, 2),
        unless_skips(&cache, &runs, 2),
        "not stored"
    );
    SKIP.store(false, Ordering::SeqCst);
    assert_eq!(
        unless_skips(&cache, &runs, 1),
        kept,
        "the kept value is still there"
    );
    assert_ne!(unless_skips(&cache, &runs, 2).1, 0);
    assert_eq!(
        unless_skips(&cache, &runs, 2),
        unless_skips(&cache, &runs, 2)
    );
}

static FORCE: AtomicBool = AtomicBool::new(false);

#[memoize(cache = cache, skip(runs), forced_update = || FORCE.load(Ordering::SeqCst))]
fn forced(cache: &Cache, runs: &Runs, a: u32) -> (u32, u32) {
    (a, runs.run())
}

/// `test_memoize_forced_update`, `test_memoize_forced_update_parameters`:
/// while `forced_update` says so, every call loads and stores; later calls
/// get the last value stored.
#[test]
fn a_forced_update_stores_a_fresh_value() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let first = forced(&cache, &runs, 1);
    assert_eq!(forced(&cache, &runs, 1), first);
    FORCE.store(true, Ordering::SeqCst);
    let fresh = forced(&cache, &runs, 1);
    assert_ne!(fresh, first);
    let fresher = forced(&cache, &runs, 1);
    assert_ne!(fresher, fresh);
    FORCE.store(false, Ordering::SeqCst);
    assert_eq!(forced(&cache, &runs, 1), fresher);
}

#[memoize(cache = cache, skip(runs), filter = |value: &(u32, u32)| value.0 % 2 == 0)]
fn filtered(cache: &Cache, runs: &Runs, a: u32) -> (u32, u32) {
    (a, runs.run())
}

/// `test_cached_view_response_filter`, for memos: only the values the
/// filter takes are kept; the others are returned and loaded again.
#[test]
fn only_values_the_filter_takes_are_kept() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    assert_eq!(filtered(&cache, &runs, 2), filtered(&cache, &runs, 2));
    assert_ne!(filtered(&cache, &runs, 3), filtered(&cache, &runs, 3));
    assert!(block_on(filtered_memo(&cache).get(&3)).is_none());
}

/// The three options through `MemoBuilder`, on a Redis shared by two
/// processes: a forced update is the other process's next value, a
/// filtered value never reaches the store, and an `unless` call reads and
/// writes nothing there.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_options_on_a_shared_redis() {
    use std::sync::Arc;

    let server = testkit::RedisServer::start();
    let url = format!("{}?prefix=opt:", server.url());
    let (a, b) = (
        Cache::from_url(&url).expect("cache"),
        Cache::from_url(&url).expect("cache"),
    );
    let force = Arc::new(AtomicBool::new(false));
    let skip = Arc::new(AtomicBool::new(false));
    let here: Memo<u32, String> = Memo::builder("opts")
        .forced_update({
            let force = Arc::clone(&force);
            move || force.load(Ordering::SeqCst)
        })
        .unless({
            let skip = Arc::clone(&skip);
            move || skip.load(Ordering::SeqCst)
        })
        .filter(|value: &String| !value.starts_with("draft"))
        .build(&a)
        .expect("memo");
    let there: Memo<u32, String> = Memo::builder("opts").build(&b).expect("memo");

    here.get_or_load(&1, || async { "v1".to_owned() }).await;
    assert_eq!(
        there.get(&1).await.as_deref().map(String::as_str),
        Some("v1")
    );

    force.store(true, Ordering::SeqCst);
    assert_eq!(
        *here.get_or_load(&1, || async { "v2".to_owned() }).await,
        "v2"
    );
    force.store(false, Ordering::SeqCst);
    assert_eq!(
        there.get(&1).await.as_deref().map(String::as_str),
        Some("v2")
    );

    skip.store(true, Ordering::SeqCst);
    assert_eq!(
        *here.get_or_load(&1, || async { "v3".to_owned() }).await,
        "v3"
    );
    skip.store(false, Ordering::SeqCst);
    assert_eq!(
        there.get(&1).await.as_deref().map(String::as_str),
        Some("v2")
    );

    assert_eq!(
        *here.get_or_load(&2, || async { "draft".to_owned() }).await,
        "draft"
    );
    assert!(
        there.get(&2).await.is_none(),
        "a filtered value is not stored"
    );
    assert_eq!(
        *here.get_or_load(&2, || async { "final".to_owned() }).await,
        "final"
    );
    assert_eq!(
        there.get(&2).await.as_deref().map(String::as_str),
        Some("final")
    );
}
