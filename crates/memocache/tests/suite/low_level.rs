//! Flask-Caching's low-level API on the in-process and null stores.

use std::sync::Arc;
use std::time::Duration;

use memocache::{Cache, CacheConfig, Clock, ErrorKind, Timeout};

fn manual() -> (Cache, Clock) {
    let clock = Clock::manual();
    let config = CacheConfig::memory(100).default_timeout(Some(Duration::from_secs(300)));
    (
        Cache::with_clock(config, clock.clone()).expect("cache"),
        clock,
    )
}

#[tokio::test]
async fn get_set_delete_has() {
    let (cache, _) = manual();
    assert_eq!(cache.get::<String>("k").await.expect("get"), None);
    cache
        .set("k", "v".to_string(), Timeout::Default)
        .await
        .expect("set");
    assert_eq!(
        cache.get::<String>("k").await.expect("get").as_deref(),
        Some(&"v".to_string())
    );
    assert!(cache.has("k").await.expect("has"));
    assert!(cache.delete("k").await.expect("delete"));
    assert!(!cache.delete("k").await.expect("delete again"));
    assert!(!cache.has("k").await.expect("has"));
}

#[tokio::test]
async fn a_value_of_another_type_is_a_miss() {
    let (cache, _) = manual();
    cache.set("k", 1_u32, Timeout::Default).await.expect("set");
    assert_eq!(cache.get::<String>("k").await.expect("get"), None);
    assert_eq!(cache.get::<u32>("k").await.expect("get"), Some(Arc::new(1)));
}

#[tokio::test]
async fn timeouts_default_explicit_and_never() {
    let (cache, clock) = manual();
    cache
        .set("default", 1_u8, Timeout::Default)
        .await
        .expect("set");
    cache
        .set("short", 2_u8, Timeout::secs(10))
        .await
        .expect("set");
    cache.set("never", 3_u8, Timeout::Never).await.expect("set");
    cache
        .set("zero", 4_u8, Timeout::secs(0))
        .await
        .expect("set");
    clock.advance(Duration::from_secs(10));
    assert!(!cache.has("short").await.expect("has"));
    assert!(cache.has("default").await.expect("has"));
    clock.advance(Duration::from_secs(290));
    assert!(!cache.has("default").await.expect("has"));
    assert!(cache.has("never").await.expect("has"));
    assert!(cache.has("zero").await.expect("has"), "0 means never");
}

#[tokio::test]
async fn add_only_when_absent_or_expired() {
    let (cache, clock) = manual();
    assert!(cache.add("k", 1_u8, Timeout::secs(5)).await.expect("add"));
    assert!(!cache.add("k", 2_u8, Timeout::secs(5)).await.expect("add"));
    assert_eq!(cache.get::<u8>("k").await.expect("get"), Some(Arc::new(1)));
    clock.advance(Duration::from_secs(5));
    assert!(cache.add("k", 3_u8, Timeout::secs(5)).await.expect("add"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_race_has_one_winner() {
    let cache = Cache::memory();
    let tasks: Vec<_> = (0..16_u32)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.add("lock", i, Timeout::Default).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.expect("join").expect("add"));
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn many_at_once() {
    let (cache, _) = manual();
    cache
        .set_many([("a", 1_i32), ("b", 2), ("c", 3)], Timeout::Default)
        .await
        .expect("set_many");
    let got = cache
        .get_many::<i32>(&["a", "x", "c"])
        .await
        .expect("get_many");
    assert_eq!(got, vec![Some(Arc::new(1)), None, Some(Arc::new(3))]);
    assert_eq!(cache.delete_many(&["a", "b", "x"]).await.expect("del"), 2);
    assert!(cache.has("c").await.expect("has"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inc_dec_are_atomic() {
    let cache = Cache::memory();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for _ in 0..500 {
                    cache.inc("n", 2).await.expect("inc");
                    cache.dec("n", 1).await.expect("dec");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join");
    }
    assert_eq!(
        cache.get::<i64>("n").await.expect("get"),
        Some(Arc::new(4_000))
    );
    assert_eq!(cache.inc("n", 0).await.expect("inc"), Some(4_000));
}

#[tokio::test]
async fn inc_on_a_non_number_is_an_error_and_changes_nothing() {
    let (cache, _) = manual();
    cache
        .set("s", "text".to_string(), Timeout::Default)
        .await
        .expect("set");
    let error = cache.inc("s", 1).await.expect_err("not a number");
    assert_eq!(error.kind(), ErrorKind::NotANumber);
    assert_eq!(
        cache.get::<String>("s").await.expect("get").as_deref(),
        Some(&"text".to_string())
    );
}

#[tokio::test]
async fn inc_keeps_the_timeout_of_the_value() {
    let (cache, clock) = manual();
    cache.set("n", 1_i64, Timeout::secs(10)).await.expect("set");
    clock.advance(Duration::from_secs(9));
    assert_eq!(cache.inc("n", 1).await.expect("inc"), Some(2));
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        cache.inc("n", 1).await.expect("inc"),
        Some(1),
        "expired, restarted"
    );
}

#[tokio::test]
async fn prefixes_separate_caches_and_clear_clears_memos_too() {
    let (cache, _) = manual();
    cache.set("k", 1_u8, Timeout::Default).await.expect("set");
    let memo = memocache::Memo::<u8, u8>::builder("m")
        .build(&cache)
        .expect("memo");
    memo.get_or_load(&1, || async { 1 }).await;
    cache.clear().await.expect("clear");
    assert!(!cache.has("k").await.expect("has"));
    assert_eq!(*memo.get_or_load(&1, || async { 2 }).await, 2);

    let a = Cache::new(CacheConfig::memory(10).key_prefix("a:")).expect("cache");
    a.set("k", 1_u8, Timeout::Default).await.expect("set");
    assert!(a.has("k").await.expect("has"));
}

#[tokio::test]
async fn null_store_keeps_nothing_and_never_fails() {
    let cache = Cache::from_url("null://").expect("cache");
    cache.set("k", 1_u8, Timeout::Default).await.expect("set");
    assert_eq!(cache.get::<u8>("k").await.expect("get"), None);
    assert!(cache.add("k", 1_u8, Timeout::Default).await.expect("add"));
    assert!(!cache.has("k").await.expect("has"));
    assert!(!cache.delete("k").await.expect("delete"));
    assert_eq!(cache.inc("k", 1).await.expect("inc"), None);
    cache.clear().await.expect("clear");
}

#[test]
fn bad_urls_are_clear_errors_and_rediss_is_built_in() {
    // TLS is built in (tests/suite/tls.rs): nothing is contacted yet.
    Cache::from_url("rediss://127.0.0.1:1").expect("rediss:// cache");
    let error = Cache::from_url("memory://?capacity=-1").expect_err("bad");
    assert!(error.is_config());
    assert!(error.to_string().contains("capacity=-1"), "{error}");
}

#[test]
fn memo_stats_are_listed_by_name() {
    let cache = Cache::memory();
    let _b = memocache::Memo::<u8, u8>::builder("b")
        .build(&cache)
        .expect("memo");
    let _a = memocache::Memo::<u8, u8>::builder("a")
        .build(&cache)
        .expect("memo");
    let names: Vec<String> = cache.memo_stats().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "b"]);
}
