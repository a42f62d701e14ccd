//! `tests/test_cache.py`: the low-level API (its `cached` and `memoize`
//! tests are answered in `memoize.rs`, where the macro is).

use std::sync::Arc;

use memocache::{Cache, Timeout};

async fn get(cache: &Cache, key: &str) -> Option<String> {
    let value: Option<Arc<String>> = cache.get(key).await.expect("get");
    value.map(|v| v.as_ref().clone())
}

/// `test_cache_set`.
#[tokio::test]
async fn set_then_get() {
    let cache = Cache::memory();
    cache
        .set("hi", "hello".to_owned(), Timeout::Default)
        .await
        .expect("set");
    assert_eq!(get(&cache, "hi").await.as_deref(), Some("hello"));
}

/// `test_cache_has`.
#[tokio::test]
async fn has_after_add() {
    let cache = Cache::memory();
    assert!(!cache.has("hi").await.expect("has"));
    cache
        .add("hi", "hello".to_owned(), Timeout::Default)
        .await
        .expect("add");
    assert!(cache.has("hi").await.expect("has"));
}

/// `test_cache_add`: an `add` over a live key changes nothing.
#[tokio::test]
async fn add_keeps_the_first_value() {
    let cache = Cache::memory();
    let added = cache.add("hi", "hello".to_owned(), Timeout::Default);
    assert!(added.await.expect("add"));
    assert_eq!(get(&cache, "hi").await.as_deref(), Some("hello"));
    let added = cache.add("hi", "foobar".to_owned(), Timeout::Default);
    assert!(!added.await.expect("add"));
    assert_eq!(get(&cache, "hi").await.as_deref(), Some("hello"));
}

/// `test_cache_delete`.
#[tokio::test]
async fn delete_then_get_is_none() {
    let cache = Cache::memory();
    cache
        .set("hi", "hello".to_owned(), Timeout::Default)
        .await
        .expect("set");
    assert!(cache.delete("hi").await.expect("delete"));
    assert_eq!(get(&cache, "hi").await, None);
}

/// `test_cache_delete_many`, `test_cache_delete_many_ignored`,
/// `test_cache_unlink`, `test_cache_unlink_if_not`: a key that was never
/// set does not stop the others from going (and `unlink`, Redis's
/// non-blocking delete, is what `delete_many` does for several keys).
#[tokio::test]
async fn delete_many_goes_past_missing_keys() {
    let cache = Cache::memory();
    for key in ["hi", "biggerkey1", "biggerkey2"] {
        let value = "test".repeat(100);
        cache.set(key, value, Timeout::Default).await.expect("set");
    }
    assert_eq!(cache.delete_many(&["ho", "hi"]).await.expect("delete"), 1);
    assert_eq!(get(&cache, "hi").await, None);
    let deleted = cache.delete_many(&["biggerkey1", "biggerkey2"]).await;
    assert_eq!(deleted.expect("delete"), 2);
    assert_eq!(get(&cache, "biggerkey1").await, None);
    assert_eq!(get(&cache, "biggerkey2").await, None);
}
