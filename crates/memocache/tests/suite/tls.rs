//! Redis over TLS (`rediss://`), against a real TLS-only `redis-server`
//! with a self-signed certificate (testkit's `RedisServer::start_tls`).
//! The conformance suite also runs on it (`conformance::redis_tls`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memocache::{Cache, Memo, Timeout};

/// Bound on a whole test: a failed handshake must never make a call hang.
const TEST_LIMIT: Duration = Duration::from_secs(60);

async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("finished within the test limit")
}

/// `rediss://127.0.0.1:PORT/?{options}#insecure`.
fn tls_url(server: &testkit::RedisServer, options: &str) -> String {
    let url = server.tls_url();
    let (base, fragment) = url.split_once('#').expect("#insecure");
    format!("{base}?{options}#{fragment}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_on_rediss_sets_and_gets_on_the_server() {
    bounded(async {
        let server = testkit::RedisServer::start_tls();
        let cache = Cache::from_url(&tls_url(&server, "prefix=app:")).expect("rediss cache");
        cache
            .set("k", "over tls".to_string(), Timeout::Default)
            .await
            .expect("set");
        assert_eq!(
            cache.get::<String>("k").await.expect("get"),
            Some(Arc::new("over tls".to_string()))
        );
        assert_eq!(cache.inc("n", 2).await.expect("inc"), Some(2));
        assert_eq!(cache.store_errors(), 0);

        // The value is on the server: read it back over its plain Unix socket.
        let plain = Cache::from_url(&format!("{}?prefix=app:", server.unix_url())).expect("unix");
        assert_eq!(
            plain.get::<String>("k").await.expect("get"),
            Some(Arc::new("over tls".to_string()))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memo_hits_through_rediss() {
    bounded(async {
        let server = testkit::RedisServer::start_tls();
        let url = tls_url(&server, "prefix=app:");
        let a = Cache::from_url(&url).expect("cache a");
        let b = Cache::from_url(&url).expect("cache b");
        let memo_a = Memo::<u32, String>::builder("user")
            .build(&a)
            .expect("memo");
        let memo_b = Memo::<u32, String>::builder("user")
            .build(&b)
            .expect("memo");
        let loads = AtomicU32::new(0);
        let load = |id: u32| {
            let loads = &loads;
            move || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                format!("user{id}")
            }
        };

        assert_eq!(*memo_a.get_or_load(&1, load(1)).await, "user1");
        assert_eq!(*memo_a.get_or_load(&1, load(1)).await, "user1");
        assert_eq!(*memo_b.get_or_load(&1, load(1)).await, "user1");
        assert_eq!(loads.load(Ordering::SeqCst), 1, "loaded once, then hits");
        assert_eq!(memo_a.stats().hits_remote, 1, "{:?}", memo_a.stats());
        assert_eq!(memo_b.stats().hits_remote, 1, "{:?}", memo_b.stats());
        assert_eq!(memo_a.stats().store_errors + memo_b.stats().store_errors, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_verified_unless_the_url_says_insecure() {
    bounded(async {
        let server = testkit::RedisServer::start_tls();
        // Without `#insecure` the self-signed certificate is refused.
        let url = format!(
            "rediss://127.0.0.1:{}/?prefix=app:&strict=true&timeout_ms=2000",
            server.port()
        );
        let verified = Cache::from_url(&url).expect("cache");
        let error = verified
            .set("k", 1_u8, Timeout::Default)
            .await
            .expect_err("self-signed certificate refused");
        assert!(error.is_store(), "{error:?}");

        // Plain Redis on the TLS-only port gets nowhere either.
        let url = format!(
            "redis://127.0.0.1:{}/?prefix=app:&strict=true&timeout_ms=500",
            server.port()
        );
        let plain = Cache::from_url(&url).expect("cache");
        assert!(
            plain.get::<u8>("k").await.is_err(),
            "plain text to a TLS port"
        );
    })
    .await;
}
