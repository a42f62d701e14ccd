//! Fail-open against real servers that die and come back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memocache::{Cache, ErrorKind, Memo, Timeout};

/// Bound on a whole test: a dead server must never make a call hang.
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// Per-command bound given to the Redis store in these tests.
const COMMAND_MS: u64 = 300;

async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("finished within the test limit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dies_mid_test_and_comes_back() {
    bounded(async {
        let mut server = testkit::RedisServer::start();
        let url = format!("{}?timeout_ms={COMMAND_MS}&prefix=app:", server.url());
        let cache = Cache::from_url(&url).expect("cache");
        let strict = Cache::from_url(&format!("{url}&strict=true")).expect("strict cache");
        let memo = Memo::<u32, String>::builder("user")
            .build(&cache)
            .expect("memo");
        let loads = AtomicU32::new(0);
        let load = |id: u32| {
            let loads = &loads;
            move || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                format!("user{id}")
            }
        };

        assert_eq!(*memo.get_or_load(&1, load(1)).await, "user1");
        assert_eq!(*memo.get_or_load(&1, load(1)).await, "user1");
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(memo.stats().hits_remote, 1);

        server.stop();
        for round in 0..5 {
            let started = Instant::now();
            assert_eq!(
                *memo.get_or_load(&1, load(1)).await,
                "user1",
                "round {round}"
            );
            // A version read and a value read at most, each bounded.
            assert!(
                started.elapsed() < Duration::from_millis(4 * COMMAND_MS),
                "a dead server cost {:?}",
                started.elapsed()
            );
        }
        assert_eq!(loads.load(Ordering::SeqCst), 6, "the loader ran each time");
        assert!(memo.stats().store_errors >= 5, "{:?}", memo.stats());
        let errors_down = cache.store_errors();
        assert!(errors_down >= 5);
        assert_eq!(cache.get::<String>("k").await.expect("fail-open get"), None);
        cache
            .set("k", "v".to_string(), Timeout::Default)
            .await
            .expect("fail-open set");
        assert!(cache.store_errors() > errors_down);

        let error = strict.get::<String>("k").await.expect_err("strict get");
        assert!(error.is_store(), "{error}");
        let error = strict.inc("n", 1).await.expect_err("strict inc");
        assert_eq!(error.kind(), ErrorKind::Store);
        assert!(strict.store_errors() >= 2);

        server.restart();
        let hits_before = memo.stats().hits_remote;
        // The connection comes back on its own: no new Cache, no new Memo.
        let mut recovered = false;
        for _ in 0..50 {
            memo.get_or_load(&1, load(1)).await;
            if memo.stats().hits_remote > hits_before {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recovered, "remote hits resumed: {:?}", memo.stats());
        strict
            .set("k", "back".to_string(), Timeout::Default)
            .await
            .expect("strict works again");
        assert_eq!(
            cache.get::<String>("k").await.expect("get").as_deref(),
            Some(&"back".to_string())
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_start_while_their_server_is_down() {
    bounded(async {
        let port = testkit::free_port();
        for url in [
            format!("redis://127.0.0.1:{port}/?timeout_ms={COMMAND_MS}"),
            format!("memcached://127.0.0.1:{port}"),
        ] {
            let cache = Cache::from_url(&url).expect("builds without connecting");
            let memo = Memo::<u8, u8>::builder("m").build(&cache).expect("memo");
            let started = Instant::now();
            assert_eq!(*memo.get_or_load(&1, || async { 7 }).await, 7);
            assert!(started.elapsed() < Duration::from_secs(3), "{url}");
            assert!(cache.store_errors() >= 1, "{url}");
            let _ = memo.forget_all().await;
            assert_eq!(cache.inc("n", 1).await.expect("fail-open"), None);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_dies_and_comes_back() {
    bounded(async {
        let mut server = testkit::MemcachedServer::start();
        let cache = Cache::from_url(&server.url()).expect("cache");
        let strict = Cache::from_url(&format!("{}?strict=true", server.url())).expect("cache");
        let memo = Memo::<u8, u8>::builder("m").build(&cache).expect("memo");
        memo.get_or_load(&1, || async { 1 }).await;
        strict.set("x", 1_u8, Timeout::Default).await.expect("set");
        server.stop();
        assert_eq!(*memo.get_or_load(&1, || async { 2 }).await, 2);
        assert!(memo.stats().store_errors >= 1);
        assert!(strict.get::<u8>("x").await.expect_err("down").is_store());
        server.restart();
        // Every pooled connection broke; the first call after the restart
        // already gets a fresh one.
        assert_eq!(
            strict.get::<u8>("x").await.expect("back"),
            None,
            "restarted empty"
        );
        memo.get_or_load(&1, || async { 3 }).await;
        let hits = memo.stats().hits_remote;
        assert_eq!(*memo.get_or_load(&1, || async { 4 }).await, 3);
        assert_eq!(memo.stats().hits_remote, hits + 1, "reconnected");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_shared_by_two_processes_worth_of_caches() {
    bounded(async {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!(
            "{}?threshold=10",
            crate::conformance::url_of_dir(dir.path())
        );
        let one = Cache::from_url(&url).expect("cache");
        let two = Cache::from_url(&url).expect("cache");
        for i in 0..30_u32 {
            one.set(&format!("k{i}"), i, Timeout::Default)
                .await
                .expect("set");
        }
        let files = std::fs::read_dir(dir.path())
            .expect("read dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".mc"))
            })
            .count();
        assert!(files <= 11, "threshold keeps the directory small: {files}");
        assert_eq!(
            two.get::<u32>("k29").await.expect("get"),
            Some(Arc::new(29))
        );
        let tasks: Vec<_> = [one.clone(), two.clone()]
            .into_iter()
            .map(|cache| {
                tokio::spawn(async move {
                    for _ in 0..100 {
                        cache.inc("n", 1).await.expect("inc");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join");
        }
        assert_eq!(one.inc("n", 0).await.expect("inc"), Some(200));
    })
    .await;
}
