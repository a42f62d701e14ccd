//! Redis Sentinel: a master, one replica and a sentinel from `testkit`,
//! failed over for real (the master SIGKILLed).
//!
//! Both tests force the case asynchronous replication allows: the last
//! invalidations before the failover reach the old master but not the
//! replica that is promoted (its link is cut first, and a marker written
//! before them is checked to be missing on the new master). The promoted
//! replica then holds the old versions and the deleted values; the caches
//! must follow the new master without a restart and serve none of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memocache::{Cache, Memo, Timeout};
use testkit::RedisSentinel;

/// Bound on a failover (one sentinel, `down-after-milliseconds` 300).
const FAILOVER: Duration = Duration::from_secs(15);
/// Bound on the caches finding the new master once it is there.
const FOLLOW: Duration = Duration::from_secs(10);

/// The source of truth: a counter standing for a row; a load reads
/// `v{row}`, a write bumps it (then the writer forgets).
#[derive(Clone, Default)]
struct Row(Arc<AtomicU32>, Arc<AtomicU32>);

impl Row {
    fn load(&self) -> impl FnOnce() -> std::future::Ready<String> + use<> {
        let (row, loads) = (Arc::clone(&self.0), Arc::clone(&self.1));
        move || {
            loads.fetch_add(1, Ordering::SeqCst);
            std::future::ready(format!("v{}", row.load(Ordering::SeqCst)))
        }
    }
    fn write(&self) -> String {
        format!("v{}", self.0.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn loads(&self) -> u32 {
        self.1.load(Ordering::SeqCst)
    }
}

fn query(port: u16, args: &[&str]) -> String {
    RedisSentinel::query(port, args).unwrap_or_else(|e| panic!("{args:?} on {port}: {e}"))
}

/// Waits until the replica has every write so far.
fn replicated(topology: &RedisSentinel) {
    let master = topology.master_port().expect("a master");
    assert_eq!(
        query(master, &["WAIT", "1", "5000"]),
        ":1",
        "replica in sync"
    );
}

/// Cuts replication, writes a marker on the master, then runs `forgets`
/// there (they never reach the replica), kills the master and waits for
/// the replica's promotion; checks that the marker, and so every forget
/// made after it, is missing on the new master. Returns its port.
async fn forget_then_lose_the_master<F: Future<Output = ()>>(
    topology: &mut RedisSentinel,
    forgets: F,
) -> u16 {
    topology.cut_replication();
    let old = topology.master_port().expect("a master");
    assert_eq!(query(old, &["SET", "marker", "written"]), "+OK");
    forgets.await;
    tokio::task::block_in_place(|| topology.kill_master());
    let started = Instant::now();
    let new = tokio::task::block_in_place(|| topology.wait_for_failover(old, FAILOVER));
    println!(
        "sentinel: failover {old} -> {new} in {:?}",
        started.elapsed()
    );
    assert_eq!(
        query(new, &["EXISTS", "marker"]),
        ":0",
        "the promoted replica must lack the last writes, or this test proves nothing"
    );
    new
}

/// Discovery (past a dead sentinel listed first), a failover followed
/// without a restart, and nothing forgotten before it served after it: a
/// memo's `forget` (a version increment) and a low-level `delete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_failover_and_serves_nothing_forgotten_before_it() {
    let mut topology = RedisSentinel::start(1);
    let url = topology
        .url()
        .replace("redis+sentinel://", "redis+sentinel://127.0.0.1:1,");
    let cache = Cache::from_url(&format!("{url}?prefix=s:&timeout_ms=300&strict=true"))
        .expect("sentinel cache");
    let memo = Memo::<u32, String>::builder("m")
        .build(&cache)
        .expect("memo");
    let row = Row::default();

    assert_eq!(*memo.get_or_load(&1, row.load()).await, "v0");
    assert_eq!(*memo.get_or_load(&1, row.load()).await, "v0");
    assert_eq!(row.loads(), 1, "the second read came from the master");
    cache
        .set("plain", 1_u32, Timeout::Default)
        .await
        .expect("set on the discovered master");
    replicated(&topology);

    let fresh = row.write();
    forget_then_lose_the_master(&mut topology, async {
        assert!(memo.forget(&1).await.is_fleet());
        assert!(cache.delete("plain").await.expect("delete"));
    })
    .await;

    // Every read, from the first after the failover on, is fresh; the
    // cache works again without a restart.
    let deadline = Instant::now() + FOLLOW;
    loop {
        assert_eq!(*memo.get_or_load(&1, row.load()).await, fresh);
        if let Ok(plain) = cache.get::<u32>("plain").await {
            assert_eq!(plain, None, "a value deleted before the failover");
        }
        let set = cache.set("after", 2_u32, Timeout::Default).await;
        if set.is_ok() && matches!(cache.get::<u32>("after").await, Ok(Some(v)) if *v == 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache never found the new master"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let loads = row.loads();
    assert_eq!(*memo.get_or_load(&1, row.load()).await, fresh);
    assert_eq!(*memo.get_or_load(&1, row.load()).await, fresh);
    assert!(row.loads() <= loads + 1, "the new master keeps values");
}

/// A planned failover (`SENTINEL FAILOVER`): the old master stays up and
/// keeps answering until the sentinel demotes it (up to its 10 s `INFO`
/// period), so no command fails to tell the cache; it moves over on its own
/// (it checks its master against a sentinel every second), and the forget
/// the promoted replica lacks is never undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_is_followed_and_serves_nothing_forgotten_before_it() {
    let topology = RedisSentinel::start(1);
    let cache = Cache::from_url(&format!(
        "{}?prefix=p:&timeout_ms=300&strict=true",
        topology.url()
    ))
    .expect("sentinel cache");
    let memo = Memo::<u32, String>::builder("m")
        .build(&cache)
        .expect("memo");
    let row = Row::default();
    assert_eq!(*memo.get_or_load(&1, row.load()).await, "v0");
    replicated(&topology);

    topology.cut_replication();
    let old = topology.master_port().expect("a master");
    assert_eq!(query(old, &["SET", "marker", "written"]), "+OK");
    let fresh = row.write();
    assert!(memo.forget(&1).await.is_fleet());
    tokio::task::block_in_place(|| topology.failover());
    let new = tokio::task::block_in_place(|| topology.wait_for_failover(old, FAILOVER));

    // The old master still answers (writes included) until the sentinel
    // demotes it; the cache moves over on its own within its recheck.
    let before = query(new, &["DBSIZE"]);
    let deadline = Instant::now() + FOLLOW;
    loop {
        assert_eq!(*memo.get_or_load(&1, row.load()).await, fresh);
        let set = cache.set("after", 3_u32, Timeout::Default).await;
        if set.is_ok() && query(new, &["DBSIZE"]) != before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache never moved to {new}: {set:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        query(new, &["EXISTS", "marker"]),
        ":0",
        "the forget was lost"
    );
    assert_eq!(*memo.get_or_load(&1, row.load()).await, fresh);
}

/// Two processes of a tiered cache (two `Cache`s, each with its L1 and bus
/// subscription): a `forget` made on A just before the failover is never
/// undone on B, whose L1 it emptied and whose L2 reads now go to a replica
/// that lacks it; after the failover both buses read the new master, so a
/// `forget` reaches the other process before it returns again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_processes_follow_a_failover_and_serve_nothing_forgotten_before_it() {
    let mut topology = RedisSentinel::start(1);
    let url = format!(
        "tiered+{}?prefix=t:&timeout_ms=300&heartbeat_ms=500&strict=true",
        topology.url()
    );
    let (a, b) = (
        Cache::from_url(&url).expect("A"),
        Cache::from_url(&url).expect("B"),
    );
    in_sync(&a).await;
    in_sync(&b).await;
    let ma = Memo::<u32, String>::builder("m").build(&a).expect("memo");
    let mb = Memo::<u32, String>::builder("m").build(&b).expect("memo");
    let row = Row::default();

    assert_eq!(*mb.get_or_load(&1, row.load()).await, "v0");
    assert_eq!(*ma.get_or_load(&1, row.load()).await, "v0");
    assert_eq!(*mb.get_or_load(&1, row.load()).await, "v0");
    assert_eq!(row.loads(), 1, "one load for the fleet");
    // Key 2 is not forgotten: B keeps it in its L1 up to the failover.
    assert_eq!(*mb.get_or_load(&2, row.load()).await, "v0");
    assert_eq!(row.loads(), 2);
    replicated(&topology);

    let fresh = row.write();
    forget_then_lose_the_master(&mut topology, async {
        assert!(ma.forget(&1).await.is_fleet(), "B acknowledged");
    })
    .await;

    let deadline = Instant::now() + FOLLOW;
    loop {
        assert_eq!(*mb.get_or_load(&1, row.load()).await, fresh, "B");
        assert_eq!(*ma.get_or_load(&1, row.load()).await, fresh, "A");
        let store_ok = b.get::<u32>("probe").await.is_ok() && a.get::<u32>("probe").await.is_ok();
        if store_ok && a.l1_in_sync() && b.l1_in_sync() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the caches never followed the new master"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // B's bus met a new history and cleared B's L1: the entries it held
    // may have missed invalidations the new master never had. Key 2 is
    // read again, from the source (the new master's history is empty).
    let loads = row.loads();
    assert_eq!(*mb.get_or_load(&2, row.load()).await, fresh);
    assert_eq!(row.loads(), loads + 1, "B's L1 was cleared at the failover");

    // The buses now run on the new master: B's L1 copy goes before A's
    // forget returns.
    assert_eq!(*mb.get_or_load(&1, row.load()).await, fresh);
    let received = mb.stats().invalidations_received;
    let fresher = row.write();
    assert!(ma.forget(&1).await.is_fleet());
    assert!(
        mb.stats().invalidations_received > received,
        "{:?}",
        mb.stats()
    );
    assert_eq!(*mb.get_or_load(&1, row.load()).await, fresher);
}

/// Waits until the bus has put `cache` in sync.
async fn in_sync(cache: &Cache) {
    tokio::time::timeout(FOLLOW, async {
        while !cache.l1_in_sync() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the bus brings the cache in sync");
}
