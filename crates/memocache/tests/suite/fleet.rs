//! Fleet-wide guarantees through the shared store's leases (the technique
//! of "Scaling Memcache at Facebook", NSDI 2013), with two `Cache`
//! instances standing for two processes and loaders the test controls.
//!
//! Every behaviour runs on every shared store (Redis, Redis Cluster,
//! Memcached, the filesystem): their `fill` replaces a lease with the loaded value
//! atomically (a Lua script, a meta-protocol compare and swap, a compare
//! and write under the directory lock).

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memocache::{Cache, Memo};
use tokio::sync::oneshot;

/// Two processes' caches on one store, and what keeps the store alive.
type Fleet = (Box<dyn Any>, Cache, Cache);

const OPTIONS: &str = "prefix=f:&lease_wait_ms=10000";

fn pair(url: &str) -> (Cache, Cache) {
    let cache = || Cache::from_url(url).expect("cache");
    (cache(), cache())
}

fn redis() -> Fleet {
    let server = testkit::RedisServer::start();
    let (a, b) = pair(&format!("{}?{OPTIONS}&timeout_ms=500", server.url()));
    (Box::new(server), a, b)
}

fn redis_cluster() -> Fleet {
    let cluster = testkit::RedisCluster::start(3);
    let (a, b) = pair(&format!("{}?{OPTIONS}", cluster.url()));
    (Box::new(cluster), a, b)
}

fn memcached() -> Fleet {
    let server = testkit::MemcachedServer::start();
    let (a, b) = pair(&format!("{}?{OPTIONS}", server.url()));
    (Box::new(server), a, b)
}

fn filesystem() -> Fleet {
    let dir = tempfile::tempdir().expect("dir");
    let url = crate::conformance::url_of_dir(dir.path());
    let (a, b) = pair(&format!("{url}?{OPTIONS}&threshold=0"));
    (Box::new(dir), a, b)
}

macro_rules! fleet_tests {
    ($($store:ident),*) => {$(
        mod $store {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn one_load_for_the_fleet() {
                let (_store, a, b) = super::$store();
                super::one_load_for_the_fleet(a, b).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_load_started_before_a_remote_forget_is_not_stored() {
                let (_store, a, b) = super::$store();
                super::a_load_started_before_a_remote_forget_is_not_stored(a, b).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_forget_racing_a_fill_never_leaves_the_old_value() {
                let (_store, a, b) = super::$store();
                super::a_forget_racing_a_fill_never_leaves_the_old_value(a, b).await;
            }
        }
    )*};
}

fleet_tests!(redis, redis_cluster, memcached, filesystem);

type BoxedLoad = std::pin::Pin<Box<dyn Future<Output = String> + Send>>;

/// A loader that says when it started and returns what the test sends.
fn gated() -> (
    impl FnOnce() -> BoxedLoad,
    oneshot::Receiver<()>,
    oneshot::Sender<String>,
) {
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<String>();
    let loader = move || {
        Box::pin(async move {
            let _ = started_tx.send(());
            release_rx.await.unwrap_or_default()
        }) as BoxedLoad
    };
    (loader, started_rx, release_tx)
}

/// A hot key misses on two processes at once: one loads, the other waits
/// for its value instead of reading the database too.
async fn one_load_for_the_fleet(a: Cache, b: Cache) {
    let ma = Memo::<u32, String>::builder("hot").build(&a).expect("memo");
    let mb = Memo::<u32, String>::builder("hot").build(&b).expect("memo");
    let (loader, started, release) = gated();
    let leader = tokio::spawn({
        let ma = ma.clone();
        async move { ma.get_or_load(&1, loader).await }
    });
    started.await.expect("A holds the lease and loads");
    let b_loads = Arc::new(AtomicU32::new(0));
    let waiter = tokio::spawn({
        let (mb, b_loads) = (mb.clone(), Arc::clone(&b_loads));
        async move {
            mb.get_or_load(&1, || async move {
                b_loads.fetch_add(1, Ordering::SeqCst);
                "B's own load".to_string()
            })
            .await
        }
    });
    tokio::time::timeout(Duration::from_secs(30), async {
        while mb.stats().waited_for_load == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "B waits on A's lease; B loaded {} time(s), B's counters: {:?}, A's: {:?}",
            b_loads.load(Ordering::SeqCst),
            mb.stats(),
            ma.stats()
        )
    });
    release.send("loaded once".into()).expect("A waits");
    assert_eq!(*leader.await.expect("A"), "loaded once");
    assert_eq!(*waiter.await.expect("B"), "loaded once");
    assert_eq!(
        b_loads.load(Ordering::SeqCst),
        0,
        "B never read the database"
    );
}

/// A loads the old row; meanwhile B changes the row and forgets the key.
/// A's old value must not land in the shared store after B's forget.
async fn a_load_started_before_a_remote_forget_is_not_stored(a: Cache, b: Cache) {
    let ma = Memo::<u32, String>::builder("row").build(&a).expect("memo");
    let mb = Memo::<u32, String>::builder("row").build(&b).expect("memo");
    let (loader, started, release) = gated();
    let slow = tokio::spawn({
        let ma = ma.clone();
        async move { ma.get_or_load(&1, loader).await }
    });
    started.await.expect("A read the old row");
    let _ = mb.forget(&1).await; // the row changed
    release.send("old".into()).expect("A waits");
    assert_eq!(
        *slow.await.expect("A"),
        "old",
        "A's caller gets what it read"
    );
    let next = mb.get_or_load(&1, || async { "new".to_string() }).await;
    assert_eq!(*next, "new", "the old value was not stored");
    let again = ma.get_or_load(&1, || async { "newer".to_string() }).await;
    assert_eq!(*again, "new");
}

/// The stale-set race at its narrowest: A's load finishes and its fill
/// (compare the lease, then store) runs at the same moment as B's forget
/// (delete). Every order of the two leaves the store empty: a fill before
/// the delete is deleted, a fill after it finds no lease. Only a fill that
/// is not atomic can compare before the delete and store after it, leaving
/// the old value behind a forget that has returned.
async fn a_forget_racing_a_fill_never_leaves_the_old_value(a: Cache, b: Cache) {
    let ma = Memo::<u32, String>::builder("race")
        .build(&a)
        .expect("memo");
    let mb = Memo::<u32, String>::builder("race")
        .build(&b)
        .expect("memo");
    for key in 0..100 {
        let (loader, started, release) = gated();
        let slow = tokio::spawn({
            let ma = ma.clone();
            async move { ma.get_or_load(&key, loader).await }
        });
        started.await.expect("A holds the lease and loads");
        let forget = tokio::spawn({
            let mb = mb.clone();
            async move { mb.forget(&key).await }
        });
        release.send("old".into()).expect("A waits");
        let _ = forget.await.expect("B forgot");
        assert_eq!(*slow.await.expect("A"), "old");
        let after = mb.get_or_load(&key, || async { "new".to_string() }).await;
        assert_eq!(*after, "new", "key {key}: the old value survived a forget");
    }
}
