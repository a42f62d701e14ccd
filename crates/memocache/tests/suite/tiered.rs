//! Tiered caches: an L1 per process in front of Redis, kept coherent by
//! the Redis Streams bus. Two `Cache` instances stand for two processes;
//! each has its own L1, bus subscription and member id.
//!
//! The tests that need no server restart run on a single Redis server and
//! on the three-node cluster of `testkit` (where the bus lives on one slot).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memocache::{Cache, CacheConfig, Clock, Memo};

const LIMIT: Duration = Duration::from_secs(60);

/// A single Redis server or a Redis Cluster to build tiered caches on.
trait Redis {
    /// `tiered+redis://...?...` or `tiered+redis+cluster://...?`: more
    /// options are appended with `&`.
    fn tiered_url(&self) -> String;
    /// `redis://` URLs of every node, for admin connections.
    fn admin_urls(&self) -> Vec<String>;
    /// Stops every server (they keep no data).
    fn stop(&mut self);
    /// Starts every server again, empty, on its port.
    fn restart(&mut self);
}

impl Redis for testkit::RedisServer {
    fn tiered_url(&self) -> String {
        format!("tiered+{}?timeout_ms=300", self.url())
    }
    fn admin_urls(&self) -> Vec<String> {
        vec![self.url()]
    }
    fn stop(&mut self) {
        testkit::RedisServer::stop(self);
    }
    fn restart(&mut self) {
        testkit::RedisServer::restart(self);
    }
}

impl Redis for testkit::RedisCluster {
    fn tiered_url(&self) -> String {
        format!("tiered+{}?", self.url())
    }
    fn admin_urls(&self) -> Vec<String> {
        self.node_urls()
    }
    fn stop(&mut self) {
        self.stop_all();
    }
    fn restart(&mut self) {
        let restart = || self.restart_all();
        tokio::task::block_in_place(restart);
    }
}

fn tiered(server: &impl Redis, heartbeat_ms: u64) -> Cache {
    let url = format!(
        "{}&prefix=t:&heartbeat_ms={heartbeat_ms}",
        server.tiered_url()
    );
    Cache::from_url(&url).expect("tiered cache")
}

/// [`tiered`] with its L1 expiry and bus trust on `clock`.
fn tiered_with_clock(server: &impl Redis, heartbeat_ms: u64, clock: Clock) -> Cache {
    let url = format!(
        "{}&prefix=t:&heartbeat_ms={heartbeat_ms}",
        server.tiered_url()
    );
    let config = CacheConfig::from_url(&url).expect("tiered config");
    Cache::with_clock(config, clock).expect("tiered cache")
}

macro_rules! on_single_and_cluster {
    ($($test:ident),* $(,)?) => {
        mod single {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(&mut testkit::RedisServer::start()).await;
            }
        )*}
        mod cluster {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(&mut testkit::RedisCluster::start(3)).await;
            }
        )*}
    };
}

on_single_and_cluster!(
    hits_come_from_l1_then_l2_then_source,
    forget_on_one_process_reaches_the_other_before_it_returns,
    forget_all_on_one_process_reaches_the_other,
    killed_bus_connection_never_yields_a_stale_read,
    l1_copies_expire_with_their_l2_entry,
    redis_restart_clears_l1_instead_of_trusting_it,
    versions_follow_a_redis_that_restarted_empty,
);

/// Waits until the bus has put `cache` in sync (readiness, not timing).
async fn in_sync(cache: &Cache) {
    tokio::time::timeout(LIMIT, async {
        while !cache.l1_in_sync() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the bus brings the cache in sync");
}

async fn out_of_sync(cache: &Cache) {
    tokio::time::timeout(LIMIT, async {
        while cache.l1_in_sync() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the cache notices it lost the bus");
}

/// A loader that counts its calls and returns `prefix-N` for the N-th.
#[derive(Clone, Default)]
struct Source(Arc<AtomicU32>);

impl Source {
    fn load(&self, prefix: &'static str) -> impl FnOnce() -> std::future::Ready<String> + use<> {
        let calls = Arc::clone(&self.0);
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            std::future::ready(format!("{prefix}-{n}"))
        }
    }

    fn calls(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

async fn hits_come_from_l1_then_l2_then_source(server: &mut impl Redis) {
    let (a, b) = (tiered(server, 2_000), tiered(server, 2_000));
    in_sync(&a).await;
    in_sync(&b).await;
    let ma = Memo::<u32, String>::builder("m").build(&a).expect("memo");
    let mb = Memo::<u32, String>::builder("m").build(&b).expect("memo");
    let db = Source::default();

    assert_eq!(*ma.get_or_load(&1, db.load("v")).await, "v-1");
    assert_eq!(*ma.get_or_load(&1, db.load("v")).await, "v-1");
    assert_eq!(ma.stats().hits_local, 1, "{:?}", ma.stats());
    assert_eq!(*mb.get_or_load(&1, db.load("v")).await, "v-1");
    assert_eq!(mb.stats().hits_remote, 1, "B read A's value from L2");
    assert_eq!(*mb.get_or_load(&1, db.load("v")).await, "v-1");
    assert_eq!(mb.stats().hits_local, 1, "then from its own L1");
    assert_eq!(db.calls(), 1, "one source read for the fleet");
}

/// After `forget` returns on A, B's very next read does not serve its L1
/// copy: the bus made B evict before A's `forget` returned.
async fn forget_on_one_process_reaches_the_other_before_it_returns(server: &mut impl Redis) {
    let (a, b) = (tiered(server, 2_000), tiered(server, 2_000));
    in_sync(&a).await;
    in_sync(&b).await;
    let ma = Memo::<u32, String>::builder("m").build(&a).expect("memo");
    let mb = Memo::<u32, String>::builder("m").build(&b).expect("memo");
    let db = Source::default();
    for round in 0..100 {
        let expected = format!("v-{}", round + 1);
        let seen_by_b = mb.get_or_load(&7, db.load("v")).await;
        assert_eq!(*seen_by_b, expected, "round {round}: B loads fresh");
        assert_eq!(
            *mb.get_or_load(&7, db.load("v")).await,
            expected,
            "B's L1 hit"
        );
        let _ = ma.forget(&7).await;
    }
    assert_eq!(db.calls(), 100);
    assert!(mb.stats().invalidations_received >= 100, "{:?}", mb.stats());
}

async fn forget_all_on_one_process_reaches_the_other(server: &mut impl Redis) {
    let (a, b) = (tiered(server, 2_000), tiered(server, 2_000));
    in_sync(&a).await;
    in_sync(&b).await;
    let ma = Memo::<(), String>::builder("all").build(&a).expect("memo");
    let mb = Memo::<(), String>::builder("all").build(&b).expect("memo");
    let db = Source::default();
    assert_eq!(*mb.get_or_load(&(), db.load("list")).await, "list-1");
    assert_eq!(*mb.get_or_load(&(), db.load("list")).await, "list-1");
    let _ = ma.forget_all().await;
    assert_eq!(*mb.get_or_load(&(), db.load("list")).await, "list-2");
    assert_eq!(mb.version(), ma.version());
}

/// The connection of B's subscription is killed from the server side, on
/// every node of a cluster (CLIENT KILL TYPE pubsub would not match a
/// stream reader, so kill all normal clients but the one issuing the
/// command) while A invalidates.
/// B must not serve its stale L1 copy: A's publish waits for B or for one
/// heartbeat, by which time B has stopped trusting its L1; B then replays
/// the stream from its last id.
async fn killed_bus_connection_never_yields_a_stale_read(server: &mut impl Redis) {
    let (a, b) = (tiered(server, 300), tiered(server, 300));
    in_sync(&a).await;
    in_sync(&b).await;
    let ma = Memo::<u32, String>::builder("m").build(&a).expect("memo");
    let mb = Memo::<u32, String>::builder("m").build(&b).expect("memo");
    let db = Source::default();
    let mut admins = Vec::new();
    for url in server.admin_urls() {
        let client = redis::Client::open(url).expect("client");
        let admin = client
            .get_multiplexed_async_connection()
            .await
            .expect("admin connection");
        admins.push(admin);
    }
    for round in 0..20_u32 {
        let expected = format!("v-{}", round + 1);
        assert_eq!(
            *mb.get_or_load(&1, db.load("v")).await,
            expected,
            "round {round}"
        );
        for admin in &mut admins {
            let _: redis::Value = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes")
                .query_async(admin)
                .await
                .expect("CLIENT KILL");
        }
        let _ = ma.forget(&1).await;
    }
    assert_eq!(
        db.calls(),
        20,
        "every round read the source once: no stale hit"
    );
}

/// Redis stops while B holds values; invalidations made meanwhile cannot
/// be delivered. B stops trusting its L1 within a heartbeat, and when
/// Redis comes back empty, B clears its L1 instead of trusting it again.
async fn redis_restart_clears_l1_instead_of_trusting_it(server: &mut impl Redis) {
    let (a, b) = (tiered(server, 300), tiered(server, 300));
    in_sync(&a).await;
    in_sync(&b).await;
    let mb = Memo::<u32, String>::builder("m").build(&b).expect("memo");
    let db = Source::default();
    assert_eq!(*mb.get_or_load(&1, db.load("v")).await, "v-1");
    server.stop();
    out_of_sync(&b).await;
    assert_eq!(
        *mb.get_or_load(&1, db.load("v")).await,
        "v-2",
        "fail-open read-through"
    );
    server.restart();
    in_sync(&b).await;
    assert_eq!(
        *mb.get_or_load(&1, db.load("v")).await,
        "v-3",
        "the L1 copy from before the outage is gone"
    );
    drop(a);
}

/// Regression: memo versions live in Redis, and each process mirrors them.
/// After Redis restarts empty, versions start again from 0; a process that
/// kept its old, higher mirror would file new values under keys no later
/// `forget_all` reaches. A version read lower than the mirror must clear
/// the L1 and be adopted.
async fn versions_follow_a_redis_that_restarted_empty(server: &mut impl Redis) {
    let (a, b) = (tiered(server, 300), tiered(server, 300));
    in_sync(&a).await;
    in_sync(&b).await;
    let ma = Memo::<(), String>::builder("all").build(&a).expect("memo");
    let mb = Memo::<(), String>::builder("all").build(&b).expect("memo");
    let db = Source::default();
    assert_eq!(*mb.get_or_load(&(), db.load("list")).await, "list-1");
    let _ = ma.forget_all().await;
    let _ = ma.forget_all().await;
    assert_eq!(*mb.get_or_load(&(), db.load("list")).await, "list-2");
    assert_eq!(mb.version(), 2);
    server.stop();
    out_of_sync(&b).await;
    server.restart();
    in_sync(&a).await;
    in_sync(&b).await;
    assert_eq!(*mb.get_or_load(&(), db.load("list")).await, "list-3");
    assert_eq!(mb.version(), 0, "B follows the store's version");
    let _ = ma.forget_all().await;
    assert_eq!(
        *mb.get_or_load(&(), db.load("list")).await,
        "list-4",
        "a forget_all after the restart reaches B"
    );
}

/// An L1 copy never outlives the L2 entry it was read from: A stores with
/// a 1 s timeout, B's memo would keep values for 60 s, so B's L1 copy must
/// take the L2 entry's remaining time instead of its own. B's clock is
/// manual: moving it past the second must expire B's copy, with no real
/// wait. (Redis keeps real time and is not waited for: whether its entry is
/// still there when B looks again does not matter, only that B's L1 does
/// not answer. B's heartbeat is long so the bus's trust, on the same
/// clock, outlasts the move.)
async fn l1_copies_expire_with_their_l2_entry(server: &mut impl Redis) {
    let clock = Clock::manual();
    let a = tiered(server, 2_000);
    let b = tiered_with_clock(server, 10_000, clock.clone());
    in_sync(&a).await;
    in_sync(&b).await;
    let ma = Memo::<u32, String>::builder("ttl")
        .timeout(Duration::from_secs(1))
        .build(&a)
        .expect("memo");
    let mb = Memo::<u32, String>::builder("ttl")
        .timeout(Duration::from_secs(60))
        .build(&b)
        .expect("memo");
    let db = Source::default();
    assert_eq!(*ma.get_or_load(&1, db.load("v")).await, "v-1");
    // B's first read learns the version; its second fills its L1 from L2.
    assert_eq!(*mb.get_or_load(&1, db.load("v")).await, "v-1");
    assert_eq!(*mb.get_or_load(&1, db.load("v")).await, "v-1");
    assert_eq!(*mb.get_or_load(&1, db.load("v")).await, "v-1");
    let before = mb.stats();
    assert!(before.hits_local >= 1, "{before:?}");
    clock.advance(Duration::from_millis(1_001));
    assert!(
        b.l1_in_sync(),
        "B still trusts its L1: the test means something"
    );
    let _ = mb.get_or_load(&1, db.load("v")).await;
    assert_eq!(
        mb.stats().hits_local,
        before.hits_local,
        "B's L1 copy expired with A's L2 entry, not after B's own 60 s"
    );
}
