//! Silent partitions: a store or bus reached through a `testkit::FaultProxy`
//! that black-holes it (sockets stay open, no byte moves). A partition must
//! cost one timeout, not one per call; no read may return a value that an
//! invalidation made elsewhere during the partition removed; and the cache
//! must come back on its own within one probe interval after healing.
//!
//! Wall-clock bounds here are loose on purpose (a partitioned call costs
//! microseconds; the bounds allow milliseconds); the exact probe times are
//! tested on a manual clock in `src/breaker/tests.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memocache::{BreakerState, Cache, Memo};
use testkit::{FaultProxy, RedisServer};

/// Store command bound in these tests.
const TIMEOUT_MS: u64 = 300;
/// First probe, and the cap of the probes' backoff.
const PROBE_MS: u64 = 100;
const PROBE_MAX_MS: u64 = 200;
const LIMIT: Duration = Duration::from_secs(60);

fn options(prefix: &str) -> String {
    format!(
        "prefix={prefix}&timeout_ms={TIMEOUT_MS}&probe_ms={PROBE_MS}&probe_max_ms={PROBE_MAX_MS}"
    )
}

/// A source that counts reads and returns `v-N` for the N-th.
#[derive(Clone, Default)]
struct Source(Arc<AtomicU32>);

impl Source {
    fn load(&self) -> impl FnOnce() -> std::future::Ready<String> + use<> {
        let calls = Arc::clone(&self.0);
        move || std::future::ready(format!("v-{}", calls.fetch_add(1, Ordering::SeqCst) + 1))
    }
}

/// Polls `check` until it holds, failing after `within`; how long it took.
pub(crate) async fn until(what: &str, within: Duration, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

fn state(stats: Option<memocache::BreakerStats>) -> BreakerState {
    stats.expect("a breaker").state
}

/// Fifty memo calls, each returning a value the source produced during the
/// partition; returns how long they took.
async fn fifty_fresh_reads(memo: &Memo<u32, String>, db: &Source, old: &str) -> Duration {
    let started = Instant::now();
    for round in 0..50 {
        let value = memo.get_or_load(&1, db.load()).await;
        assert_ne!(*value, old, "round {round}: a stale read");
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_redis_costs_one_timeout_then_recovers_within_a_probe() {
    tokio::time::timeout(LIMIT, async {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.port());
        let cut = Cache::from_url(&format!(
            "redis://127.0.0.1:{}/?{}",
            proxy.port(),
            options("p:")
        ))
        .expect("cache");
        let other = Cache::from_url(&format!("{}?{}", server.url(), options("p:"))).expect("cache");
        let m_cut = Memo::<u32, String>::builder("user")
            .build(&cut)
            .expect("memo");
        let m_other = Memo::<u32, String>::builder("user")
            .build(&other)
            .expect("memo");
        let db = Source::default();
        let old = m_cut.get_or_load(&1, db.load()).await;
        assert_eq!(*m_other.get_or_load(&1, db.load()).await, *old, "shared");

        proxy.black_hole();
        // Another process changes the row and forgets it: L2 no longer
        // holds `old`, and nothing `cut` returns from now on may be `old`.
        let _ = m_other.forget(&1).await;
        let started = Instant::now();
        assert_ne!(*m_cut.get_or_load(&1, db.load()).await, *old);
        let first = started.elapsed();
        assert!(
            first < Duration::from_millis(3 * TIMEOUT_MS),
            "the first call waits out one timeout: {first:?}"
        );
        assert_eq!(state(cut.store_breaker()), BreakerState::Open);
        assert!(!cut.store_available());
        let fifty = fifty_fresh_reads(&m_cut, &db, &old).await;
        assert!(fifty < Duration::from_secs(1), "50 calls took {fifty:?}");
        assert!(m_cut.stats().store_errors >= 50, "{:?}", m_cut.stats());
        assert!(cut.store_breaker().expect("breaker").skipped >= 50);
        assert!(
            cut.prometheus_text()
                .contains("memocache_breaker_open{breaker=\"store\"} 1")
        );
        // Skipping the store does not skip single-flight: sixteen concurrent
        // misses of one key read the source once.
        let loads = Arc::new(AtomicU32::new(0));
        let concurrent = (0..16).map(|_| {
            let (memo, loads) = (m_cut.clone(), Arc::clone(&loads));
            tokio::spawn(async move {
                memo.get_or_load(&7, || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    "seven".to_string()
                })
                .await
            })
        });
        for task in futures::future::join_all(concurrent).await {
            assert_eq!(*task.expect("task"), "seven");
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "one load for sixteen misses"
        );

        proxy.pass_through();
        // A probe in flight completes as soon as its bytes move; else the
        // next one runs within one (capped) probe interval.
        let took = until(
            "the breaker closes",
            Duration::from_millis(PROBE_MAX_MS + TIMEOUT_MS + 500),
            || cut.store_available(),
        )
        .await;
        eprintln!("closed {took:?} after healing");
        let stats = cut.store_breaker().expect("breaker");
        assert_eq!((stats.opened, stats.closed), (1, 1), "{stats:?}");
        // Back to sharing: `cut` stores, `other` reads what it stored.
        let fresh = m_cut.get_or_load(&2, db.load()).await;
        assert_eq!(*m_other.get_or_load(&2, db.load()).await, *fresh);
    })
    .await
    .expect("within the test limit");
}

fn tiered_url(port: u16, prefix: &str) -> String {
    format!(
        "tiered+redis://127.0.0.1:{port}/?heartbeat_ms=300&{}",
        options(prefix)
    )
}

/// The partitioned process of a tiered fleet: its bus and its L2 are both
/// black-holed. It stops trusting its L1 within a heartbeat, reads through
/// to the source (never its stale L1 copy, never a timeout per call), and
/// its forgets skip the bus at once once the bus breaker is open; after
/// healing it is back in sync, and invalidations reach it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_bus_drops_the_process_to_read_through_never_stale() {
    tokio::time::timeout(LIMIT, async {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.port());
        let cut = Cache::from_url(&tiered_url(proxy.port(), "t:")).expect("cache");
        let other = Cache::from_url(&tiered_url(server.port(), "t:")).expect("cache");
        until("in sync", LIMIT, || cut.l1_in_sync() && other.l1_in_sync()).await;
        let m_cut = Memo::<u32, String>::builder("m").build(&cut).expect("memo");
        let m_other = Memo::<u32, String>::builder("m")
            .build(&other)
            .expect("memo");
        let db = Source::default();
        let old = m_cut.get_or_load(&1, db.load()).await;
        assert_eq!(*m_cut.get_or_load(&1, db.load()).await, *old);
        assert_eq!(m_cut.stats().hits_local, 1, "an L1 copy");

        proxy.black_hole();
        let _ = m_other.forget(&1).await; // waits at most one heartbeat for `cut`
        let started = Instant::now();
        assert_ne!(
            *m_cut.get_or_load(&1, db.load()).await,
            *old,
            "no stale L1 read"
        );
        assert!(started.elapsed() < Duration::from_millis(3 * TIMEOUT_MS));
        assert!(!cut.l1_in_sync());
        let fifty = fifty_fresh_reads(&m_cut, &db, &old).await;
        assert!(fifty < Duration::from_secs(1), "50 calls took {fifty:?}");

        // The reader's blocked read times out (one heartbeat plus the
        // command bound): the bus breaker opens, and a forget on the cut
        // process costs nothing.
        until("the bus breaker opens", Duration::from_secs(5), || {
            state(cut.bus_breaker()) == BreakerState::Open
        })
        .await;
        let started = Instant::now();
        for key in 0..20 {
            let _ = m_cut.forget(&key).await;
        }
        let forgets = started.elapsed();
        assert!(
            forgets < Duration::from_millis(500),
            "20 forgets took {forgets:?}"
        );
        let text = cut.prometheus_text();
        assert!(
            text.contains("memocache_breaker_open{breaker=\"bus\"} 1"),
            "{text}"
        );

        proxy.pass_through();
        let took = until("back in sync", Duration::from_secs(5), || {
            cut.l1_in_sync() && cut.store_available()
        })
        .await;
        eprintln!("back in sync {took:?} after healing");
        let value = m_cut.get_or_load(&3, db.load()).await;
        assert_eq!(
            *m_cut.get_or_load(&3, db.load()).await,
            *value,
            "L1 in use again"
        );
        let _ = m_other.forget(&3).await;
        assert_ne!(
            *m_cut.get_or_load(&3, db.load()).await,
            *value,
            "invalidations arrive"
        );
        let bus = cut.bus_breaker().expect("bus breaker");
        assert!(bus.opened >= 1 && bus.closed >= 1, "{bus:?}");
    })
    .await
    .expect("within the test limit");
}

/// Memcached behind a black hole: the same bound as Redis (its command
/// bound is 1 s), and after healing, when the replies the partition held
/// arrive, no pooled connection hands one to a later request as its own
/// answer (async-memcached closes a connection whose operation was
/// abandoned mid-way; the pool replaces closed connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_memcached_costs_one_timeout_and_mixes_up_no_replies() {
    tokio::time::timeout(LIMIT, async {
        let server = testkit::MemcachedServer::start();
        let proxy = FaultProxy::start(server.port());
        let query = format!("prefix=p:&probe_ms={PROBE_MS}&probe_max_ms={PROBE_MAX_MS}");
        let cut = Cache::from_url(&format!("memcached://127.0.0.1:{}?{query}", proxy.port()))
            .expect("cache");
        let other = Cache::from_url(&format!("{}?{query}", server.url())).expect("cache");
        let m_cut = Memo::<u32, String>::builder("user")
            .build(&cut)
            .expect("memo");
        let m_other = Memo::<u32, String>::builder("user")
            .build(&other)
            .expect("memo");
        let db = Source::default();
        let old = m_cut.get_or_load(&1, db.load()).await;
        for key in 2..6 {
            m_cut
                .get_or_load(&key, || async move { format!("key {key}") })
                .await;
        }

        proxy.black_hole();
        let _ = m_other.forget(&1).await;
        let started = Instant::now();
        assert_ne!(*m_cut.get_or_load(&1, db.load()).await, *old);
        let first = started.elapsed();
        assert!(
            first < Duration::from_millis(2_500),
            "one timeout: {first:?}"
        );
        assert_eq!(state(cut.store_breaker()), BreakerState::Open);
        let fifty = fifty_fresh_reads(&m_cut, &db, &old).await;
        assert!(fifty < Duration::from_secs(1), "50 calls took {fifty:?}");

        proxy.pass_through();
        until("the breaker closes", Duration::from_secs(3), || {
            cut.store_available()
        })
        .await;
        for round in 0..3 {
            for key in 2..6 {
                let value = m_cut
                    .get_or_load(&key, || async move { format!("key {key}") })
                    .await;
                assert_eq!(
                    *value,
                    format!("key {key}"),
                    "round {round}: another key's reply"
                );
            }
        }
        assert!(m_cut.stats().hits_remote >= 4, "{:?}", m_cut.stats());
    })
    .await
    .expect("within the test limit");
}
