//! Behaviour of `Memo`, with interleavings forced by gates the test holds,
//! never by sleeping.

use super::*;
use crate::{CacheConfig, Clock, codec};
use std::sync::atomic::AtomicUsize;
use tokio::sync::{Notify, oneshot};
use tokio::task::yield_now;

fn cache() -> Cache {
    Cache::memory()
}

fn memo<K: Serialize + ?Sized + 'static, V: CacheValue>(cache: &Cache) -> Memo<K, V> {
    Memo::builder("m").build(cache).expect("memo builds")
}

/// Yields until `cond` holds; the tasks it waits for run on this
/// single-threaded runtime in between, so this terminates without timers.
async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        yield_now().await;
    }
}

#[tokio::test]
async fn loads_once_then_hits() {
    let cache = cache();
    let memo = memo::<u64, String>(&cache);
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        let v = memo
            .get_or_load(&1, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                "one".to_string()
            })
            .await;
        assert_eq!(*v, "one");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = memo.stats();
    assert_eq!((stats.hits_local, stats.misses, stats.loads), (2, 1, 1));
}

#[tokio::test]
async fn forget_one_key_and_forget_all() {
    let cache = cache();
    let memo = memo::<str, u32>(&cache);
    let load = |n: u32| move || async move { n };
    assert_eq!(*memo.get_or_load("a", load(1)).await, 1);
    assert_eq!(*memo.get_or_load("b", load(2)).await, 2);
    let _ = memo.forget("a").await;
    assert_eq!(*memo.get_or_load("a", load(10)).await, 10, "a reloads");
    assert_eq!(*memo.get_or_load("b", load(20)).await, 2, "b kept");
    let version = memo.version();
    let _ = memo.forget_all().await;
    assert_eq!(memo.version(), version + 1);
    assert_eq!(*memo.get_or_load("a", load(100)).await, 100);
    assert_eq!(*memo.get_or_load("b", load(200)).await, 200);
    assert_eq!(memo.stats().invalidations, 2);
}

#[tokio::test]
async fn handles_with_one_name_share_entries_and_types_are_checked() {
    let cache = cache();
    let a = memo::<u64, u64>(&cache);
    let b = memo::<u64, u64>(&cache);
    a.set(&1, 5).await;
    assert_eq!(b.get(&1).await.as_deref(), Some(&5));
    let wrong = Memo::<u64, String>::builder("m").build(&cache);
    assert_eq!(
        wrong.expect_err("types differ").kind(),
        crate::ErrorKind::MemoTypeMismatch
    );
    let wrong_key = Memo::<i32, u64>::builder("m").build(&cache);
    assert!(wrong_key.is_err());
}

#[tokio::test]
async fn entries_expire_by_the_injected_clock() {
    let clock = Clock::manual();
    let cache = Cache::with_clock(CacheConfig::memory(10), clock.clone()).expect("cache");
    let memo = Memo::<u8, u8>::builder("t")
        .timeout(Duration::from_secs(5))
        .build(&cache)
        .expect("memo");
    assert_eq!(*memo.get_or_load(&0, || async { 1 }).await, 1);
    clock.advance(Duration::from_millis(4_999));
    assert_eq!(
        *memo.get_or_load(&0, || async { 2 }).await,
        1,
        "still fresh"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(*memo.get_or_load(&0, || async { 3 }).await, 3, "expired");
}

#[tokio::test]
async fn zero_timeout_means_forever() {
    let clock = Clock::manual();
    let cache = Cache::with_clock(CacheConfig::memory(10), clock.clone()).expect("cache");
    let memo = Memo::<u8, u8>::builder("t")
        .timeout(Duration::ZERO)
        .build(&cache)
        .expect("memo");
    memo.get_or_load(&0, || async { 1 }).await;
    clock.advance(Duration::from_secs(10 * 365 * 24 * 3600));
    assert_eq!(*memo.get_or_load(&0, || async { 2 }).await, 1);
}

/// Flask-Caching's `f.cache_timeout = …`: the timeout changes at run time
/// for every handle of the memo (built before or after), the next value
/// stored takes it, and values already stored keep theirs.
#[tokio::test]
async fn the_timeout_changes_at_run_time_for_every_handle() {
    let clock = Clock::manual();
    let config = CacheConfig::memory(10).default_timeout(Some(Duration::from_secs(300)));
    let cache = Cache::with_clock(config, clock.clone()).expect("cache");
    let built = |seconds| {
        Memo::<u8, u8>::builder("t")
            .timeout(Duration::from_secs(seconds))
            .build(&cache)
            .expect("memo")
    };
    let (first, second) = (built(60), built(120));
    assert_eq!(first.timeout(), Some(Duration::from_secs(60)));
    assert_eq!(
        second.timeout(),
        Some(Duration::from_secs(120)),
        "until set, each its own"
    );
    first.set(&0, 0).await; // 60 s

    first.set_timeout(Timeout::secs(5));
    let later = built(600);
    for memo in [&first, &second, &later] {
        assert_eq!(memo.timeout(), Some(Duration::from_secs(5)));
    }
    second.set(&1, 1).await; // 5 s
    clock.advance(Duration::from_secs(5));
    assert!(
        first.get(&1).await.is_none(),
        "stored after the change: 5 s"
    );
    assert!(
        first.get(&0).await.is_some(),
        "stored before: keeps its 60 s"
    );

    later.set_timeout(Timeout::Never);
    assert_eq!(first.timeout(), None);
    later.set_timeout(Timeout::Default);
    assert_eq!(
        first.timeout(),
        Some(Duration::from_secs(300)),
        "the cache's default"
    );
    later.set_timeout(Timeout::After(Duration::MAX));
    assert!(first.timeout() > Some(Duration::from_secs(500 * 365 * 24 * 3600)));
}

#[tokio::test]
async fn none_is_not_cached_unless_asked() {
    let cache = cache();
    let plain = Memo::<u8, Option<u8>>::builder("plain")
        .build(&cache)
        .expect("memo");
    let kept = Memo::<u8, Option<u8>>::builder("kept")
        .cache_none(true)
        .build(&cache)
        .expect("memo");
    assert_eq!(*plain.get_or_load(&0, || async { None }).await, None);
    assert_eq!(*plain.get_or_load(&0, || async { Some(1) }).await, Some(1));
    assert_eq!(*kept.get_or_load(&0, || async { None }).await, None);
    assert_eq!(*kept.get_or_load(&0, || async { Some(1) }).await, None);
}

#[tokio::test]
async fn errors_are_returned_and_never_cached() {
    let cache = cache();
    let memo = memo::<u8, u8>(&cache);
    let failed = memo
        .get_or_try_load(&0, || async { Err::<u8, _>("db down") })
        .await;
    assert_eq!(*failed.expect_err("loader failed"), "db down");
    let ok = memo
        .get_or_try_load(&0, || async { Ok::<_, &str>(7) })
        .await;
    assert_eq!(ok.as_deref(), Ok(&7));
    assert_eq!(memo.stats().load_errors, 1);
}

#[tokio::test]
async fn null_store_always_loads() {
    let cache = Cache::null();
    let memo = memo::<u8, u8>(&cache);
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        memo.get_or_load(&0, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            1
        })
        .await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// A loader the test controls: it reports that it started, then waits
/// until the test releases it with the value to return.
type BoxedLoad<V> = std::pin::Pin<Box<dyn Future<Output = V> + Send>>;

fn gated<V: Send + 'static>() -> (
    impl FnOnce() -> BoxedLoad<V>,
    oneshot::Receiver<()>,
    oneshot::Sender<V>,
) {
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<V>();
    let loader = move || {
        Box::pin(async move {
            let _ = started_tx.send(());
            match release_rx.await {
                Ok(v) => v,
                Err(_) => std::future::pending().await,
            }
        }) as BoxedLoad<V>
    };
    (loader, started_rx, release_tx)
}

#[tokio::test]
async fn concurrent_misses_share_one_load() {
    let cache = cache();
    let memo = memo::<u8, String>(&cache);
    let (loader, started, release) = gated::<String>();
    let leader = tokio::spawn({
        let memo = memo.clone();
        async move { memo.get_or_load(&1, loader).await }
    });
    started.await.expect("leader started loading");
    let calls = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let (memo, calls) = (memo.clone(), Arc::clone(&calls));
            tokio::spawn(async move {
                memo.get_or_load(&1, || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    "duplicate load".to_string()
                })
                .await
            })
        })
        .collect();
    until(|| memo.stats().waited_for_load == 10).await;
    release.send("shared".to_string()).expect("leader waits");
    assert_eq!(*leader.await.expect("leader"), "shared");
    for waiter in waiters {
        assert_eq!(*waiter.await.expect("waiter"), "shared");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "waiters never loaded");
    assert_eq!(memo.stats().loads, 1);
}

#[tokio::test]
async fn waiters_share_the_error_which_is_not_cached() {
    let cache = cache();
    let memo = memo::<u8, u8>(&cache);
    let (started_tx, started_rx) = oneshot::channel();
    let gate = Arc::new(Notify::new());
    let leader = tokio::spawn({
        let (memo, gate) = (memo.clone(), Arc::clone(&gate));
        async move {
            memo.get_or_try_load(&1, || async move {
                let _ = started_tx.send(());
                gate.notified().await;
                Err::<u8, String>("boom".into())
            })
            .await
        }
    });
    started_rx.await.expect("started");
    let waiter = tokio::spawn({
        let memo = memo.clone();
        async move {
            memo.get_or_try_load(&1, || async { Ok::<u8, String>(9) })
                .await
        }
    });
    until(|| memo.stats().waited_for_load == 1).await;
    gate.notify_one();
    assert_eq!(*leader.await.expect("join").expect_err("fails"), "boom");
    assert_eq!(*waiter.await.expect("join").expect_err("shared"), "boom");
    let next = memo
        .get_or_try_load(&1, || async { Ok::<u8, String>(3) })
        .await;
    assert_eq!(next.as_deref(), Ok(&3), "the error was not cached");
}

/// moka#240: a waiter must not hang when the task running the load is
/// cancelled. Here the leader's task is aborted mid-load; the waiter
/// becomes the new leader and loads.
#[tokio::test]
async fn cancelled_leader_hands_the_load_to_a_waiter() {
    let cache = cache();
    let memo = memo::<u8, u8>(&cache);
    let (loader, started, _release) = gated::<u8>();
    let leader = tokio::spawn({
        let memo = memo.clone();
        async move { memo.get_or_load(&1, loader).await }
    });
    started.await.expect("started");
    let waiter = tokio::spawn({
        let memo = memo.clone();
        async move { memo.get_or_load(&1, || async { 42 }).await }
    });
    until(|| memo.stats().waited_for_load == 1).await;
    leader.abort();
    assert_eq!(*waiter.await.expect("waiter finishes"), 42);
    assert_eq!(memo.shared.flights.in_flight(), 0);
}

#[tokio::test]
async fn panicking_loader_hands_the_load_to_a_waiter() {
    let cache = cache();
    let memo = memo::<u8, u8>(&cache);
    let (started_tx, started_rx) = oneshot::channel();
    let gate = Arc::new(Notify::new());
    let leader = tokio::spawn({
        let (memo, gate) = (memo.clone(), Arc::clone(&gate));
        async move {
            memo.get_or_load(&1, || async move {
                let _ = started_tx.send(());
                gate.notified().await;
                panic!("loader bug");
            })
            .await
        }
    });
    started_rx.await.expect("started");
    let waiter = tokio::spawn({
        let memo = memo.clone();
        async move { memo.get_or_load(&1, || async { 5 }).await }
    });
    until(|| memo.stats().waited_for_load == 1).await;
    gate.notify_one();
    assert!(leader.await.expect_err("leader panicked").is_panic());
    assert_eq!(*waiter.await.expect("waiter"), 5);
}

/// A leader that never finishes (a hung database call) must not hold its
/// waiters forever: after the stall timeout one waiter loads. Time is
/// paused, so the 30 s timeout passes instantly and exactly.
#[tokio::test(start_paused = true)]
async fn stalled_leader_is_taken_over_after_the_stall_timeout() {
    let cache =
        Cache::new(CacheConfig::memory(10).stall_timeout(Duration::from_secs(30))).expect("cache");
    let memo = memo::<u8, u8>(&cache);
    let (loader, started, _never_released) = gated::<u8>();
    let _stalled = tokio::spawn({
        let memo = memo.clone();
        async move { memo.get_or_load(&1, loader).await }
    });
    started.await.expect("started");
    let before = tokio::time::Instant::now();
    let value = memo.get_or_load(&1, || async { 8 }).await;
    assert_eq!(*value, 8);
    assert_eq!(before.elapsed(), Duration::from_secs(30));
    assert_eq!(*memo.get_or_load(&1, || async { 0 }).await, 8, "stored");
}

/// The stale-set race (Facebook's memcache paper, section 3.2.1): a load
/// reads the old row, the row changes and `forget` runs, then the load
/// finishes. Its old value must not be stored after `forget` returned.
#[tokio::test]
async fn load_started_before_forget_does_not_store_afterwards() {
    let cache = cache();
    let memo = memo::<u8, String>(&cache);
    let (loader, started, release) = gated::<String>();
    let slow_reader = tokio::spawn({
        let memo = memo.clone();
        async move { memo.get_or_load(&1, loader).await }
    });
    started.await.expect("reader read the old row");
    let _ = memo.forget(&1).await; // the row changed
    release.send("old".to_string()).expect("reader waits");
    assert_eq!(*slow_reader.await.expect("reader"), "old");
    let fresh = memo.get_or_load(&1, || async { "new".to_string() }).await;
    assert_eq!(*fresh, "new", "the old value was not stored");
}

#[tokio::test]
async fn load_started_before_forget_all_does_not_store_afterwards() {
    let cache = cache();
    let memo = memo::<u8, String>(&cache);
    let (loader, started, release) = gated::<String>();
    let slow_reader = tokio::spawn({
        let memo = memo.clone();
        async move { memo.get_or_load(&1, loader).await }
    });
    started.await.expect("started");
    let _ = memo.forget_all().await;
    release.send("old".to_string()).expect("reader waits");
    slow_reader.await.expect("reader");
    assert_eq!(
        *memo.get_or_load(&1, || async { "new".to_string() }).await,
        "new"
    );
}

#[tokio::test]
async fn set_during_a_load_wins_over_the_load() {
    let cache = cache();
    let memo = memo::<u8, String>(&cache);
    let (loader, started, release) = gated::<String>();
    let slow_reader = tokio::spawn({
        let memo = memo.clone();
        async move { memo.get_or_load(&1, loader).await }
    });
    started.await.expect("started");
    memo.set(&1, "primed".to_string()).await;
    release.send("old".to_string()).expect("reader waits");
    slow_reader.await.expect("reader");
    assert_eq!(memo.get(&1).await.as_deref(), Some(&"primed".to_string()));
}

/// A memoized function that calls itself for other keys (as recursive
/// functions do) must not deadlock on its own flights.
/// Eighty nested loads: in a debug build their futures' poll frames
/// take about 2 MiB of stack (main needed 2.0 MiB, the weigher of issue 25
/// 2.3 MiB), the default of a test thread, so the test runs on a thread
/// with room to spare: what it checks is that a memo may call itself.
#[test]
fn recursive_memo_does_not_deadlock() {
    fn fib(memo: Memo<u64, u64>, n: u64) -> std::pin::Pin<Box<dyn Future<Output = u64> + Send>> {
        Box::pin(async move {
            if n < 2 {
                return n;
            }
            let m = memo.clone();
            *memo
                .get_or_load(&n, || async move {
                    fib(m.clone(), n - 1).await + fib(m, n - 2).await
                })
                .await
        })
    }
    let run = || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let cache = cache();
            let memo = memo::<u64, u64>(&cache);
            assert_eq!(fib(memo.clone(), 80).await, 23_416_728_348_467_685);
            assert_eq!(memo.stats().loads, 79);
        });
    };
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(run)
        .expect("a thread")
        .join()
        .expect("no panic");
}

#[test]
fn blocking_api_for_plain_functions() {
    let cache = cache();
    let memo = memo::<str, usize>(&cache);
    assert_eq!(*memo.get_or_load_blocking("abc", || 3), 3);
    assert_eq!(*memo.get_or_load_blocking("abc", || 4), 3);
    let err = memo.get_or_try_load_blocking("x", || Err::<usize, _>("no"));
    assert!(err.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_threads_many_keys_stay_consistent() {
    let cache = Cache::new(CacheConfig::memory(64)).expect("cache");
    let memo = memo::<u32, u32>(&cache);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let memo = memo.clone();
            tokio::spawn(async move {
                for i in 0..2_000_u32 {
                    let key = (i * 7 + t) % 200;
                    let v = memo.get_or_load(&key, || async move { key * 2 }).await;
                    assert_eq!(*v, key * 2);
                    if i % 97 == 0 {
                        let _ = memo.forget(&key).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(memo.shared.flights.in_flight(), 0);
}

/// A shared store in which "another process" holds the lease of every key
/// a memo tries to lease, and never fills it unless the test does.
#[derive(Debug, Default)]
struct LeasedElsewhere {
    map: parking_lot::Mutex<std::collections::HashMap<String, Vec<u8>>>,
    /// The key the memo found leased.
    leased: parking_lot::Mutex<Option<String>>,
}

impl LeasedElsewhere {
    /// The other process's load finishes: its value replaces its lease.
    fn fill_elsewhere(&self, bytes: Vec<u8>) {
        let key = self.leased.lock().clone().expect("a key was leased");
        self.map.lock().insert(key, bytes);
    }

    fn holds_lease(&self) -> bool {
        let Some(key) = self.leased.lock().clone() else {
            return false;
        };
        self.map
            .lock()
            .get(&key)
            .is_some_and(|bytes| codec::is_lease(bytes))
    }
}

#[async_trait::async_trait]
impl crate::store::RemoteStore for LeasedElsewhere {
    async fn get(&self, key: &str) -> crate::Result<Option<Vec<u8>>> {
        Ok(self.map.lock().get(key).cloned())
    }
    async fn set(&self, key: &str, value: &[u8], _: Option<Duration>) -> crate::Result<()> {
        self.map.lock().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    async fn add(&self, key: &str, value: &[u8], _: Option<Duration>) -> crate::Result<bool> {
        let mut map = self.map.lock();
        if map.contains_key(key) {
            return Ok(false);
        }
        map.insert(key.to_owned(), value.to_vec());
        Ok(true)
    }
    async fn lease(&self, key: &str, _: &[u8], _: Duration) -> crate::Result<bool> {
        // The other process got there first.
        self.map
            .lock()
            .entry(key.to_owned())
            .or_insert_with(codec::lease_token);
        *self.leased.lock() = Some(key.to_owned());
        Ok(false)
    }
    async fn delete(&self, key: &str) -> crate::Result<bool> {
        Ok(self.map.lock().remove(key).is_some())
    }
    async fn incr(&self, key: &str, delta: i64) -> crate::Result<i64> {
        let mut map = self.map.lock();
        let now = map
            .get(key)
            .and_then(|b| std::str::from_utf8(b).ok()?.parse::<i64>().ok())
            .unwrap_or(0);
        map.insert(key.to_owned(), (now + delta).to_string().into_bytes());
        Ok(now + delta)
    }
    async fn clear(&self, prefix: &str) -> crate::Result<()> {
        self.map.lock().retain(|key, _| !key.starts_with(prefix));
        Ok(())
    }
}

fn leased_elsewhere(lease_wait: Duration) -> (Arc<LeasedElsewhere>, Cache) {
    let store = Arc::new(LeasedElsewhere::default());
    let config = CacheConfig {
        lease_wait,
        ..CacheConfig::default()
    };
    let cache = Cache::with_store(
        config,
        Arc::clone(&store) as Arc<dyn crate::store::RemoteStore>,
    );
    (store, cache)
}

/// Another process holds the key's lease and never fills it: the waiter
/// gives up after `lease_wait` exactly (paused Tokio time: no real wait),
/// loads the value itself and leaves the other process's lease alone.
#[tokio::test(start_paused = true)]
async fn lease_wait_runs_out_then_the_waiter_loads() {
    let lease_wait = Duration::from_millis(101);
    let (store, cache) = leased_elsewhere(lease_wait);
    let memo = memo::<u8, u32>(&cache);
    let calls = AtomicUsize::new(0);
    let before = tokio::time::Instant::now();
    let value = memo
        .get_or_load(&1, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            7
        })
        .await;
    assert_eq!(*value, 7);
    assert_eq!(before.elapsed(), lease_wait, "gave up at the deadline");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(memo.stats().waited_for_load, 1);
    assert!(
        store.holds_lease(),
        "the other process's lease is untouched"
    );
}

/// Another process holds the key's lease and fills it before `lease_wait`
/// runs out: the waiter takes its value and never loads.
#[tokio::test(start_paused = true)]
async fn lease_waiter_picks_up_the_other_process_value() {
    let lease_wait = Duration::from_secs(2);
    let (store, cache) = leased_elsewhere(lease_wait);
    let memo = memo::<u8, u32>(&cache);
    let calls = Arc::new(AtomicUsize::new(0));
    let before = tokio::time::Instant::now();
    let waiter = tokio::spawn({
        let (memo, calls) = (memo.clone(), Arc::clone(&calls));
        async move {
            memo.get_or_load(&1, || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                0
            })
            .await
        }
    });
    until(|| store.holds_lease()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.fill_elsewhere(cache.encode_value(&42_u32).expect("encodes"));
    assert_eq!(*waiter.await.expect("waiter"), 42);
    let waited = before.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited <= Duration::from_millis(302),
        "picked up at the next look (every 2 ms), not at the deadline: {waited:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the waiter never loaded");
    assert_eq!(memo.stats().waited_for_load, 1);
}
