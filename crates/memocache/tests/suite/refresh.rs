//! Refresh ahead of expiry (`MemoBuilder::refresh_ahead`): driven by a
//! manual clock and a gated loader, never by sleeping. A hit within the
//! window returns at once (its future is ready when made) while one
//! reload runs in the background; a forget during the reload wins; on a
//! tiered cache two processes reload a key once between them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::FutureExt;
use memocache::{Cache, CacheConfig, Clock, Memo, MemoStats};
use tokio::sync::Semaphore;

const TIMEOUT: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(2);
/// Bounds every wait for the background task (it is readiness, not time).
const LIMIT: Duration = Duration::from_secs(30);

/// A loader that counts its starts and waits for the test to let it end.
#[derive(Clone)]
struct Gated {
    starts: Arc<AtomicU32>,
    gate: Arc<Semaphore>,
}

impl Gated {
    fn new() -> Self {
        Self {
            starts: Arc::new(AtomicU32::new(0)),
            gate: Arc::new(Semaphore::new(0)),
        }
    }

    fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }

    fn open(&self) {
        self.gate.add_permits(1);
    }

    /// The memo, built on `cache` with refresh ahead through this loader.
    fn memo(&self, cache: &Cache) -> Memo<u64, String> {
        let this = self.clone();
        Memo::builder("rates")
            .timeout(TIMEOUT)
            .refresh_ahead(WINDOW, move |key: u64| {
                let this = this.clone();
                async move {
                    let n = this.starts.fetch_add(1, Ordering::SeqCst) + 1;
                    this.gate.acquire().await.expect("gate").forget();
                    format!("{key}-v{n}")
                }
            })
            .build(cache)
            .expect("memo")
    }
}

/// Waits (yielding, bounded) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(LIMIT, async {
        while !done() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the background reload gets there");
}

/// A hit that must not wait: its future is ready as made.
fn hit(memo: &Memo<u64, String>, key: u64) -> String {
    let value = memo
        .get_or_load(&key, || async { unreachable!("a hit, not a load") })
        .now_or_never()
        .expect("a hit answers at once");
    (*value).clone()
}

fn stats(memo: &Memo<u64, String>) -> MemoStats {
    memo.stats()
}

/// Waits until the bus trusts both processes' in-process tiers.
async fn in_sync(a: &Cache, b: &Cache) {
    until(|| a.l1_in_sync() && b.l1_in_sync()).await;
}

fn manual_memory() -> (Cache, Clock) {
    let clock = Clock::manual();
    let cache = Cache::with_clock(CacheConfig::memory(100), clock.clone()).expect("cache");
    (cache, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_near_expiry_reloads_in_the_background_and_serves_the_current_value() {
    let (cache, clock) = manual_memory();
    let loader = Gated::new();
    let memo = loader.memo(&cache);
    memo.get_or_load(&7, || async { "7-v0".to_owned() }).await;

    clock.advance(Duration::from_secs(7)); // 3 s left: outside the window
    assert_eq!(hit(&memo, 7), "7-v0");
    assert_eq!(stats(&memo).refreshes, 0);
    clock.advance(Duration::from_millis(1500)); // 1.5 s left: inside it
    assert_eq!(hit(&memo, 7), "7-v0");
    until(|| loader.starts() == 1).await;
    for _ in 0..100 {
        assert_eq!(hit(&memo, 7), "7-v0", "the current value while reloading");
    }
    assert_eq!(loader.starts(), 1, "one reload per key");

    loader.open();
    until(|| stats(&memo).refreshes == 1).await;
    clock.advance(Duration::from_secs(5)); // past the old expiry
    assert_eq!(hit(&memo, 7), "7-v1");
    assert_eq!(
        (loader.starts(), stats(&memo).loads),
        (1, 2),
        "the first load and the reload, none on the request path"
    );
}

/// A forget while the reload runs wins: the reloaded value (read before
/// the forget) is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forget_during_a_reload_wins() {
    let (cache, clock) = manual_memory();
    let loader = Gated::new();
    let memo = loader.memo(&cache);
    memo.get_or_load(&7, || async { "7-v0".to_owned() }).await;
    clock.advance(Duration::from_millis(8500));
    assert_eq!(hit(&memo, 7), "7-v0");
    until(|| loader.starts() == 1).await;
    assert!(memo.forget(&7).await.is_fleet());
    loader.open();
    until(|| stats(&memo).refreshes == 1).await;
    assert!(memo.get(&7).await.is_none(), "the forget wins");
}

/// On a tiered Redis, two processes whose copies near expiry at once
/// reload the key once between them (the refresh lease), and the other
/// process reads the new value from the shared store when its copy
/// expires, without loading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reload_for_the_fleet_on_tiered_redis() {
    let server = testkit::RedisServer::start();
    let url = format!("tiered+{}?prefix=ra:&heartbeat_ms=50", server.url());
    let process = || {
        let clock = Clock::manual();
        let config = CacheConfig::from_url(&url).expect("config");
        (
            Cache::with_clock(config, clock.clone()).expect("cache"),
            clock,
        )
    };
    let ((a, clock_a), (b, clock_b)) = (process(), process());
    in_sync(&a, &b).await;
    let loader = Gated::new();
    let (memo_a, memo_b) = (loader.memo(&a), loader.memo(&b));
    memo_a.get_or_load(&7, || async { "7-v0".to_owned() }).await;
    assert_eq!(
        *memo_b
            .get_or_load(&7, || async { unreachable!("stored") })
            .await,
        "7-v0"
    );

    clock_a.advance(Duration::from_millis(8500));
    clock_b.advance(Duration::from_millis(8500));
    // A manual clock's jump outlives the bus's trust; the next heartbeat
    // renews it.
    in_sync(&a, &b).await;
    assert_eq!(hit(&memo_a, 7), "7-v0");
    until(|| loader.starts() == 1).await;
    assert_eq!(hit(&memo_b, 7), "7-v0");
    until(|| stats(&memo_b).refreshes == 1).await; // gave way: a holds the lease
    assert_eq!(loader.starts(), 1, "one reload for the fleet");

    loader.open();
    until(|| stats(&memo_a).refreshes == 1).await;
    clock_a.advance(Duration::from_secs(5));
    clock_b.advance(Duration::from_secs(5));
    in_sync(&a, &b).await;
    assert_eq!(hit(&memo_a, 7), "7-v1");
    let from_b = memo_b
        .get_or_load(&7, || async { unreachable!("stored by a") })
        .await;
    assert_eq!(*from_b, "7-v1");
    assert_eq!(loader.starts(), 1);
}
