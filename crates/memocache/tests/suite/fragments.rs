//! Fragments (`Fragments`, Jinja's `{% cache %}`) on the shared stores,
//! with two `Cache` instances standing for two processes: a fragment is
//! kept only where every invalidation of what it read reaches this
//! process before it returns (a tiered cache, through its bus), and is
//! never served after one, whichever process made it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memocache::{Cache, Fragments, Memo};

const LIMIT: Duration = Duration::from_secs(60);

/// Two processes' caches on one store, what keeps the store alive, and
/// whether fragments are kept there.
struct Fleet {
    _server: Box<dyn std::any::Any>,
    a: Cache,
    b: Cache,
    kept: bool,
}

fn pair(url: &str) -> (Cache, Cache) {
    let cache = || Cache::from_url(url).expect("cache");
    (cache(), cache())
}

fn redis() -> Fleet {
    let server = testkit::RedisServer::start();
    let (a, b) = pair(&format!("{}?prefix=fr:", server.url()));
    Fleet {
        _server: Box::new(server),
        a,
        b,
        kept: false,
    }
}

fn memcached() -> Fleet {
    let server = testkit::MemcachedServer::start();
    let (a, b) = pair(&format!("{}?prefix=fr:", server.url()));
    Fleet {
        _server: Box::new(server),
        a,
        b,
        kept: false,
    }
}

fn tiered_redis() -> Fleet {
    let server = testkit::RedisServer::start();
    let (a, b) = pair(&format!(
        "tiered+{}?prefix=fr:&heartbeat_ms=50",
        server.url()
    ));
    Fleet {
        _server: Box::new(server),
        a,
        b,
        kept: true,
    }
}

macro_rules! fragment_tests {
    ($($store:ident),*) => {$(
        mod $store {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_fragment_never_outlives_a_change_to_the_memo_it_read() {
                super::a_fragment_never_outlives_a_change_to_the_memo_it_read(super::$store()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_forget_in_one_process_re_renders_in_the_other() {
                super::a_forget_in_one_process_re_renders_in_the_other(super::$store()).await;
            }
        }
    )*};
}

fragment_tests!(redis, memcached, tiered_redis);

/// Counts renders.
#[derive(Clone, Default)]
struct Renders(Arc<AtomicU32>);

impl Renders {
    fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Waits until the bus has put `cache` in sync (readiness, not timing);
/// at once on a cache without a bus.
async fn in_sync(cache: &Cache) {
    tokio::time::timeout(LIMIT, async {
        while !cache.l1_in_sync() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the bus brings the cache in sync");
}

async fn a_fragment_never_outlives_a_change_to_the_memo_it_read(fleet: Fleet) {
    let Fleet { a, b, kept, .. } = fleet;
    in_sync(&a).await;
    in_sync(&b).await;
    let names_a = Memo::<(), String>::builder("names")
        .build(&a)
        .expect("memo");
    let names_b = Memo::<(), String>::builder("names")
        .build(&b)
        .expect("memo");
    let fragments = Fragments::new(&a);
    let renders = Renders::default();
    let sidebar = || async {
        let n = renders.next();
        let names = names_a
            .get_or_load(&(), || async { "ada".to_owned() })
            .await;
        format!("<aside>{names} {n}</aside>")
    };
    assert_eq!(
        &*fragments.get_or_render("sidebar", &"en", sidebar).await,
        "<aside>ada 1</aside>"
    );
    let again = fragments.get_or_render("sidebar", &"en", sidebar).await;
    let expected = if kept {
        "<aside>ada 1</aside>"
    } else {
        "<aside>ada 2</aside>"
    };
    assert_eq!(&*again, expected, "kept only where invalidations reach it");

    // Another process changes what the fragment read.
    names_b.set(&(), "grace".to_owned()).await;
    let after = fragments.get_or_render("sidebar", &"en", sidebar).await;
    assert!(
        after.starts_with("<aside>grace "),
        "stale fragment: {after}"
    );
    assert!(names_b.forget_all().await.is_fleet());
    let after = fragments.get_or_render("sidebar", &"en", sidebar).await;
    assert!(after.starts_with("<aside>ada "), "stale fragment: {after}");
}

async fn a_forget_in_one_process_re_renders_in_the_other(fleet: Fleet) {
    let Fleet { a, b, kept, .. } = fleet;
    in_sync(&a).await;
    in_sync(&b).await;
    let (here, there) = (Fragments::new(&a), Fragments::new(&b));
    let renders = Renders::default();
    let motd = || async { format!("hello {}", renders.next()) };
    assert_eq!(&*here.get_or_render("motd", &(), motd).await, "hello 1");
    let again = here.get_or_render("motd", &(), motd).await;
    assert_eq!(&*again, if kept { "hello 1" } else { "hello 2" });

    // The other process forgets it (Jinja's cache block deleted by key).
    assert!(there.forget("motd", &()).await.is_fleet());
    let after = here.get_or_render("motd", &(), motd).await;
    assert_ne!(after, again, "a forgotten fragment was served");
}
