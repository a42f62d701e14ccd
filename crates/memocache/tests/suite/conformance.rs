//! One conformance suite, run against every store: memory, null, Redis
//! (TCP, Unix socket and TLS), Redis Cluster, Memcached and the filesystem.
//!
//! Each behaviour is a generic `async fn` taking a [`Fixture`]; the
//! `conformance!` macro turns the whole list into `#[tokio::test]`s for
//! one backend. Servers are started per test (testkit) and stopped when
//! the fixture drops.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use memocache::{Cache, CacheConfig, Clock, ErrorKind, Memo, Timeout};
use serde::{Deserialize, Serialize};

/// What a backend is expected to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// In-process: not shared between `Cache` instances.
    Memory,
    /// Keeps nothing, fails nothing.
    Null,
    /// Shared by every `Cache` pointing at it.
    Shared,
}

/// Who decides that a value expired, and so how the expiry test moves
/// time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// memocache, on the cache's [`Clock`]: the test moves a manual clock
    /// and never sleeps.
    Clock,
    /// The store, on its own clock: Redis's `PX`, Memcached's whole
    /// seconds, the filesystem's wall-clock deadlines (shared by every
    /// process, so not memocache's clock). No clock of ours moves it: one
    /// short real wait per backend, `wait` after a set with `ttl`.
    RealTime { ttl: Duration, wait: Duration },
}

/// Redis and the filesystem keep milliseconds: a short real wait, with
/// room for a loaded machine between the set and the first check.
const MS_STORE: Expiry = Expiry::RealTime {
    ttl: Duration::from_millis(600),
    wait: Duration::from_millis(900),
};

/// A backend under test: how to build caches on it, and what keeps it
/// alive (a server, a directory).
pub(crate) struct Fixture {
    base: String,
    pub(crate) kind: Kind,
    expiry: Expiry,
    _guard: Box<dyn Any + Send>,
}

impl Fixture {
    fn new(base: String, kind: Kind, guard: impl Any + Send) -> Self {
        Self {
            base,
            kind,
            expiry: MS_STORE,
            _guard: Box::new(guard),
        }
    }

    fn expiring(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// A cache on this backend with extra URL options (`a=1&b=2`).
    pub(crate) fn cache(&self, options: &str) -> Cache {
        self.cache_with_clock(options, Clock::coarse())
    }

    /// [`Fixture::cache`] whose own expiry checks follow `clock`.
    pub(crate) fn cache_with_clock(&self, options: &str, clock: Clock) -> Cache {
        // Options go before a `#fragment` (`rediss://...#insecure`).
        let (base, fragment) = match self.base.split_once('#') {
            Some((base, fragment)) => (base, format!("#{fragment}")),
            None => (self.base.as_str(), String::new()),
        };
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}timeout=300&{options}{fragment}");
        CacheConfig::from_url(&url)
            .and_then(|config| Cache::with_clock(config, clock))
            .unwrap_or_else(|e| panic!("cache on {url}: {e}"))
    }

    fn keeps(&self) -> bool {
        self.kind != Kind::Null
    }
}

pub(crate) async fn memory() -> Fixture {
    Fixture::new("memory://?capacity=10000".into(), Kind::Memory, ()).expiring(Expiry::Clock)
}

pub(crate) async fn null() -> Fixture {
    Fixture::new("null://".into(), Kind::Null, ()).expiring(Expiry::Clock)
}

pub(crate) async fn redis() -> Fixture {
    let server = testkit::RedisServer::start();
    Fixture::new(server.url(), Kind::Shared, server)
}

pub(crate) async fn redis_unix() -> Fixture {
    let server = testkit::RedisServer::start();
    Fixture::new(server.unix_url(), Kind::Shared, server)
}

pub(crate) async fn redis_tls() -> Fixture {
    let server = testkit::RedisServer::start_tls();
    Fixture::new(server.tls_url(), Kind::Shared, server)
}

pub(crate) async fn redis_cluster() -> Fixture {
    let cluster = tokio::task::spawn_blocking(|| testkit::RedisCluster::start(3))
        .await
        .expect("cluster start");
    Fixture::new(cluster.url(), Kind::Shared, cluster)
}

pub(crate) async fn memcached() -> Fixture {
    let server = testkit::MemcachedServer::start();
    // Memcached counts whole seconds on a clock that ticks once a second:
    // a 1 s value goes between 1 and 2 s after it was set.
    Fixture::new(server.url(), Kind::Shared, server).expiring(Expiry::RealTime {
        ttl: Duration::from_secs(1),
        wait: Duration::from_millis(2500),
    })
}

pub(crate) async fn filesystem() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = url_of_dir(dir.path());
    Fixture::new(format!("{url}?threshold=100000"), Kind::Shared, dir)
}

pub(crate) fn url_of_dir(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: i64,
    name: String,
}

/// The largest value every store takes (Memcached's default item limit is
/// 1 MiB, envelope and key included).
const LIMIT: usize = 512 * 1024;

pub(crate) async fn get_set_delete_has(f: Fixture) {
    let cache = f.cache("prefix=t:");
    assert_eq!(cache.get::<String>("k").await.expect("get"), None);
    cache
        .set("k", "v".to_string(), Timeout::Default)
        .await
        .expect("set");
    let got = cache.get::<String>("k").await.expect("get");
    assert!(cache.store_errors() == 0, "no faults");
    if !f.keeps() {
        assert_eq!(got, None);
        assert!(!cache.has("k").await.expect("has"));
        assert!(!cache.delete("k").await.expect("delete"));
        return;
    }
    assert_eq!(got.as_deref().map(String::as_str), Some("v"));
    assert!(cache.has("k").await.expect("has"));
    assert!(cache.delete("k").await.expect("delete"));
    assert!(!cache.delete("k").await.expect("delete again"));
    assert!(!cache.has("k").await.expect("has"));
    assert_eq!(cache.get::<String>("k").await.expect("get"), None);
}

pub(crate) async fn structs_round_trip_and_other_types_miss(f: Fixture) {
    let cache = f.cache("prefix=t:");
    let ada = User {
        id: 7,
        name: "ada".into(),
    };
    cache
        .set("u", ada.clone(), Timeout::Default)
        .await
        .expect("set");
    if !f.keeps() {
        assert_eq!(cache.get::<User>("u").await.expect("get"), None);
        return;
    }
    assert_eq!(
        cache.get::<User>("u").await.expect("get"),
        Some(Arc::new(ada))
    );
    assert_eq!(
        cache.get::<String>("u").await.expect("get"),
        None,
        "another type is a miss"
    );
    assert_eq!(cache.store_errors(), 0);
}

/// Values expire after their timeout, `0` means never, and an expired key
/// can be added again. Where memocache decides expiry the test moves a
/// manual clock; where the store does, it waits once in real time (see
/// [`Expiry`]).
pub(crate) async fn expiry(f: Fixture) {
    let clock = Clock::manual();
    let cache = f.cache_with_clock("prefix=t:", clock.clone());
    let ttl = match f.expiry {
        Expiry::Clock => Duration::from_secs(1),
        Expiry::RealTime { ttl, .. } => ttl,
    };
    cache
        .set("short", 1_u8, Timeout::After(ttl))
        .await
        .expect("set");
    cache.set("never", 2_u8, Timeout::Never).await.expect("set");
    cache
        .set("zero", 3_u8, Timeout::secs(0))
        .await
        .expect("set");
    assert!(
        cache
            .add("added", 4_u8, Timeout::After(ttl))
            .await
            .expect("add")
    );
    if !f.keeps() {
        assert!(!cache.has("short").await.expect("has"));
        return;
    }
    assert!(cache.has("short").await.expect("has"));
    match f.expiry {
        Expiry::Clock => clock.advance(ttl + Duration::from_millis(1)),
        Expiry::RealTime { wait, .. } => tokio::time::sleep(wait).await,
    }
    assert!(!cache.has("short").await.expect("has"), "expired");
    assert_eq!(cache.get::<u8>("short").await.expect("get"), None);
    assert!(cache.has("never").await.expect("has"));
    assert!(cache.has("zero").await.expect("has"), "0 means never");
    assert!(
        cache
            .add("added", 5_u8, Timeout::Default)
            .await
            .expect("add"),
        "add over an expired value succeeds"
    );
    assert_eq!(
        cache.get::<u8>("added").await.expect("get"),
        Some(Arc::new(5))
    );
}

pub(crate) async fn add_race_has_one_winner(f: Fixture) {
    let cache = f.cache("prefix=t:");
    let tasks: Vec<_> = (0..16_u32)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.add("lock", i, Timeout::Default).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if task.await.expect("join").expect("add") {
            winners.push(i);
        }
    }
    if !f.keeps() {
        assert_eq!(winners.len(), 16, "null says yes to every add");
        return;
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = cache.get::<u32>("lock").await.expect("get");
    assert_eq!(stored, Some(Arc::new(winners[0] as u32)));
}

pub(crate) async fn inc_from_many_tasks(f: Fixture) {
    let cache = f.cache("prefix=t:");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    cache.inc("n", 2).await.expect("inc");
                    cache.dec("n", 1).await.expect("dec");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join");
    }
    if !f.keeps() {
        assert_eq!(cache.inc("n", 1).await.expect("inc"), None);
        return;
    }
    assert_eq!(
        cache.get::<i64>("n").await.expect("get"),
        Some(Arc::new(400))
    );
    assert_eq!(cache.inc("n", 0).await.expect("inc"), Some(400));
    assert_eq!(
        cache.dec("n", 500).await.expect("dec"),
        Some(-100),
        "signed"
    );
    assert_eq!(cache.inc("n", 1).await.expect("inc"), Some(-99));
    assert_eq!(cache.inc("fresh", -3).await.expect("inc"), Some(-3));
    assert_eq!(cache.store_errors(), 0);
}

pub(crate) async fn inc_on_a_non_number_is_an_error(f: Fixture) {
    let cache = f.cache("prefix=t:");
    cache
        .set("s", "text".to_string(), Timeout::Default)
        .await
        .expect("set");
    if !f.keeps() {
        assert_eq!(cache.inc("s", 1).await.expect("inc"), None);
        return;
    }
    let error = cache.inc("s", 1).await.expect_err("not a number");
    assert_eq!(error.kind(), ErrorKind::NotANumber, "{error}");
    assert_eq!(
        cache.get::<String>("s").await.expect("get").as_deref(),
        Some(&"text".to_string()),
        "unchanged"
    );
}

pub(crate) async fn many_at_once(f: Fixture) {
    let cache = f.cache("prefix=t:");
    cache
        .set_many([("a", 1_i32), ("b", 2), ("c", 3)], Timeout::Default)
        .await
        .expect("set_many");
    let got = cache
        .get_many::<i32>(&["a", "x", "c"])
        .await
        .expect("get_many");
    if !f.keeps() {
        assert_eq!(got, vec![None, None, None]);
        assert_eq!(cache.delete_many(&["a"]).await.expect("del"), 0);
        return;
    }
    assert_eq!(got, vec![Some(Arc::new(1)), None, Some(Arc::new(3))]);
    let keys: Vec<String> = (0..100).map(|i| format!("many{i}")).collect();
    cache
        .set_many(
            keys.iter().map(|k| (k.as_str(), k.clone())),
            Timeout::Default,
        )
        .await
        .expect("set_many");
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = cache.get_many::<String>(&refs).await.expect("get_many");
    assert!(
        got.iter().zip(&keys).all(|(v, k)| v.as_deref() == Some(k)),
        "100 keys, in order"
    );
    assert_eq!(cache.delete_many(&["a", "b", "x"]).await.expect("del"), 2);
    assert!(cache.has("c").await.expect("has"));
}

pub(crate) async fn clear_removes_only_this_prefix(f: Fixture) {
    // Glob characters in the prefix must not widen Redis' SCAN MATCH.
    let a = f.cache("prefix=a*%5Bx%5D:");
    let b = f.cache("prefix=abx:");
    let c = f.cache("prefix=b:");
    a.set("k", 1_u8, Timeout::Default).await.expect("set");
    b.set("k", 2_u8, Timeout::Default).await.expect("set");
    c.set("k", 3_u8, Timeout::Default).await.expect("set");
    let memo = Memo::<u8, u8>::builder("m").build(&a).expect("memo");
    let loads = std::sync::atomic::AtomicU32::new(0);
    let load = || async {
        loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        1
    };
    memo.get_or_load(&1, load).await;
    a.clear().await.expect("clear");
    assert!(!a.has("k").await.expect("has"));
    memo.get_or_load(&1, load).await;
    assert_eq!(
        loads.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "memo cleared too"
    );
    if !f.keeps() {
        return;
    }
    assert_eq!(b.get::<u8>("k").await.expect("get"), Some(Arc::new(2)));
    assert_eq!(c.get::<u8>("k").await.expect("get"), Some(Arc::new(3)));
    a.set("k", 4_u8, Timeout::Default).await.expect("set");
    assert_eq!(
        a.get::<u8>("k").await.expect("get"),
        Some(Arc::new(4)),
        "usable after"
    );
    assert_eq!(a.store_errors() + b.store_errors(), 0);
}

pub(crate) async fn memo_hits_forget_and_forget_all(f: Fixture) {
    let cache = f.cache("prefix=t:");
    let memo = Memo::<i64, User>::builder("load_user")
        .timeout(Duration::from_secs(60))
        .build(&cache)
        .expect("memo");
    let loads = std::sync::atomic::AtomicU32::new(0);
    let load = |id: i64| {
        let loads = &loads;
        move || async move {
            loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            User {
                id,
                name: format!("user{id}"),
            }
        }
    };
    let count = || loads.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(memo.get_or_load(&1, load(1)).await.name, "user1");
    assert_eq!(memo.get_or_load(&1, load(1)).await.name, "user1");
    memo.get_or_load(&2, load(2)).await;
    if !f.keeps() {
        assert_eq!(count(), 3, "null: every call loads");
        assert_eq!(memo.get(&1).await, None);
        return;
    }
    assert_eq!(count(), 2);
    assert_eq!(memo.stats().hits(), 1);
    assert!(memo.get(&1).await.is_some());
    let _ = memo.forget(&1).await;
    assert_eq!(memo.get(&1).await, None);
    assert!(memo.get(&2).await.is_some(), "forget is per key");
    let _ = memo.forget_all().await;
    assert_eq!(memo.get(&2).await, None);
    memo.get_or_load(&2, load(2)).await;
    assert_eq!(count(), 3);
    memo.set(
        &9,
        User {
            id: 9,
            name: "primed".into(),
        },
    )
    .await;
    assert_eq!(memo.get_or_load(&9, load(9)).await.name, "primed");
    assert_eq!(memo.stats().store_errors, 0);
    if f.kind == Kind::Shared {
        assert!(memo.stats().hits_remote >= 2, "{:?}", memo.stats());
    }
}

pub(crate) async fn large_values_near_and_over_the_limit(f: Fixture) {
    let options = format!("prefix=t:&max_value_size={LIMIT}");
    let cache = f.cache(&options);
    // The envelope adds a header and a length varint to the bytes.
    let near = vec![0xA5_u8; LIMIT - 64];
    cache
        .set("near", near.clone(), Timeout::Default)
        .await
        .expect("set");
    let over = vec![0x5A_u8; LIMIT + 1];
    cache
        .set("over", over.clone(), Timeout::Default)
        .await
        .expect("over the limit fails open");
    if !f.keeps() {
        assert_eq!(cache.get::<Vec<u8>>("near").await.expect("get"), None);
        return;
    }
    assert_eq!(
        cache.get::<Vec<u8>>("near").await.expect("get").as_deref(),
        Some(&near)
    );
    if f.kind == Kind::Shared {
        assert_eq!(cache.get::<Vec<u8>>("over").await.expect("get"), None);
        assert_eq!(cache.store_errors(), 1, "the refused value is counted");
        let strict = f.cache(&format!("{options}&strict=true"));
        let error = strict
            .set("over", over, Timeout::Default)
            .await
            .expect_err("strict");
        assert_eq!(error.kind(), ErrorKind::Codec, "{error}");
        // A reader with a smaller limit treats the big value as a fault
        // and a miss, never a panic.
        let small = f.cache("prefix=t:&max_value_size=1024");
        assert_eq!(small.get::<Vec<u8>>("near").await.expect("get"), None);
        assert_eq!(small.store_errors(), 1);
    }
}

pub(crate) async fn keys_with_odd_bytes(f: Fixture) {
    let cache = f.cache("prefix=t:");
    let long = "long/".repeat(200);
    let keys = [
        "with space",
        "tab\tnew\nline\r",
        "nul\u{0}byte",
        "ключ-键-🔑",
        "glob*?[x]\\",
        long.as_str(),
    ];
    for (i, key) in keys.iter().enumerate() {
        cache.set(key, i, Timeout::Default).await.expect("set");
    }
    if !f.keeps() {
        return;
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            cache.get::<usize>(key).await.expect("get"),
            Some(Arc::new(i)),
            "{key:?}"
        );
    }
    assert_eq!(
        cache.get::<usize>(&"long/".repeat(201)).await.expect("get"),
        None,
        "long keys do not collide"
    );
    assert!(cache.delete(keys[1]).await.expect("delete"));
    assert!(!cache.has(keys[1]).await.expect("has"));
    assert_eq!(cache.inc("odd key\n", 3).await.expect("inc"), Some(3));
    assert_eq!(cache.store_errors(), 0);
}

pub(crate) async fn two_instances_share_values_and_versions(f: Fixture) {
    let one = f.cache("prefix=shared:");
    let two = f.cache("prefix=shared:");
    one.set("k", "from one".to_string(), Timeout::Default)
        .await
        .expect("set");
    let seen = two.get::<String>("k").await.expect("get");
    let memo_one = Memo::<u32, u32>::builder("m").build(&one).expect("memo");
    let memo_two = Memo::<u32, u32>::builder("m").build(&two).expect("memo");
    memo_one.get_or_load(&1, || async { 10 }).await;
    if f.kind != Kind::Shared {
        assert_eq!(seen, None, "not shared between instances");
        return;
    }
    assert_eq!(seen.as_deref().map(String::as_str), Some("from one"));
    assert_eq!(*memo_two.get_or_load(&1, || async { 20 }).await, 10, "hit");
    let _ = memo_one.forget_all().await;
    assert_eq!(
        *memo_two.get_or_load(&1, || async { 30 }).await,
        30,
        "forget_all by one is seen by two"
    );
    assert_eq!(*memo_one.get_or_load(&1, || async { 40 }).await, 30);
    // Concurrent writers: both instances hammer the same counters.
    let writers: Vec<_> = [one.clone(), two.clone()]
        .into_iter()
        .map(|cache| {
            tokio::spawn(async move {
                for i in 0..50_u32 {
                    cache.inc("hits", 1).await.expect("inc");
                    cache
                        .set(&format!("w{}", i % 5), i, Timeout::Default)
                        .await
                        .expect("set");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("join");
    }
    assert_eq!(two.inc("hits", 0).await.expect("inc"), Some(100));
    assert!(one.get::<u32>("w4").await.expect("get").is_some());
    assert_eq!(one.store_errors() + two.store_errors(), 0);
}

/// Generates the suite's tests for one backend.
macro_rules! conformance {
    ($module:ident, $fixture:path) => {
        mod $module {
            conformance!(@tests $fixture;
                get_set_delete_has,
                structs_round_trip_and_other_types_miss,
                expiry,
                add_race_has_one_winner,
                inc_from_many_tasks,
                inc_on_a_non_number_is_an_error,
                many_at_once,
                clear_removes_only_this_prefix,
                memo_hits_forget_and_forget_all,
                large_values_near_and_over_the_limit,
                keys_with_odd_bytes,
                two_instances_share_values_and_versions,
            );
        }
    };
    (@tests $fixture:path; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let fixture = $fixture().await;
                tokio::time::timeout(
                    std::time::Duration::from_secs(60),
                    crate::conformance::$test(fixture),
                )
                .await
                .expect("the test finished within 60 s");
            }
        )*
    };
}

conformance!(memory_store, crate::conformance::memory);
conformance!(null_store, crate::conformance::null);
conformance!(redis_store, crate::conformance::redis);
conformance!(redis_unix_store, crate::conformance::redis_unix);
conformance!(redis_tls_store, crate::conformance::redis_tls);
conformance!(redis_cluster_store, crate::conformance::redis_cluster);
conformance!(memcached_store, crate::conformance::memcached);
conformance!(filesystem_store, crate::conformance::filesystem);
