//! The breaker's rules on a store the tests switch between answering,
//! timing out and refusing, with a manual clock for probe times and
//! Tokio's paused time for the background prober's sleeps.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32};

use super::*;
use crate::error::ErrorKind;
use crate::store::{BreakerStore, RemoteStore};
use async_trait::async_trait;

const ANSWERS: u8 = 0;
const TIMES_OUT: u8 = 1;
const REFUSES: u8 = 2;

/// A store whose every call (pings included) answers, times out or is
/// refused, as the test says, and counts the calls that reached it.
#[derive(Debug, Default)]
struct Flaky {
    mode: AtomicU8,
    calls: AtomicU32,
    pings: AtomicU32,
}

impl Flaky {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn answer(&self) -> Result<(), Error> {
        match self.mode.load(Ordering::SeqCst) {
            ANSWERS => Ok(()),
            TIMES_OUT => Err(Error::new(ErrorKind::Store, "no answer").timed_out()),
            _ => Err(Error::new(ErrorKind::Store, "connection refused")),
        }
    }
}

#[async_trait]
impl RemoteStore for Flaky {
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer().map(|()| None)
    }
    async fn set(&self, _: &str, _: &[u8], _: Option<Duration>) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer()
    }
    async fn add(&self, _: &str, _: &[u8], _: Option<Duration>) -> Result<bool, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer().map(|()| true)
    }
    async fn delete(&self, _: &str) -> Result<bool, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer().map(|()| true)
    }
    async fn incr(&self, _: &str, delta: i64) -> Result<i64, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer().map(|()| delta)
    }
    async fn clear(&self, _: &str) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer()
    }
    async fn ping(&self) -> Result<(), Error> {
        self.pings.fetch_add(1, Ordering::SeqCst);
        self.answer()
    }
}

fn guarded(clock: &Clock) -> (Arc<Flaky>, BreakerStore, Arc<Breaker>) {
    let store = Arc::new(Flaky::default());
    let config = BreakerConfig {
        probe_interval: Duration::from_millis(100),
        probe_max: Duration::from_millis(400),
        ..BreakerConfig::default()
    };
    let breaker = Arc::new(Breaker::new("store", config, clock.clone()));
    let guarded = BreakerStore::new(
        Arc::clone(&store) as Arc<dyn RemoteStore>,
        Arc::clone(&breaker),
    );
    (store, guarded, breaker)
}

/// Lets the background prober run its due work (paused time advances
/// only while every task waits).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(start_paused = true)]
async fn the_first_timeout_opens_it_and_later_calls_skip_the_store() {
    let clock = Clock::manual();
    let (store, guarded, breaker) = guarded(&clock);
    assert!(guarded.get("k").await.is_ok());
    store.set(TIMES_OUT);
    let error = guarded.get("k").await.expect_err("times out");
    assert!(error.is_timeout(), "{error}");
    assert_eq!(breaker.stats().state, BreakerState::Open);
    let reached = store.calls.load(Ordering::SeqCst);
    for _ in 0..100 {
        let error = guarded.set("k", b"v", None).await.expect_err("skipped");
        assert!(error.is_breaker_open() && error.is_store(), "{error}");
    }
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        reached,
        "none reached it"
    );
    let stats = breaker.stats();
    assert_eq!((stats.opened, stats.skipped), (1, 100), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn refused_connections_open_it_only_in_a_burst() {
    let clock = Clock::manual();
    let (store, guarded, breaker) = guarded(&clock);
    store.set(REFUSES);
    for _ in 0..2 {
        let _ = guarded.get("k").await;
    }
    store.set(ANSWERS);
    assert!(guarded.get("k").await.is_ok(), "an answer resets the count");
    store.set(REFUSES);
    for _ in 0..2 {
        let _ = guarded.get("k").await;
    }
    assert_eq!(breaker.stats().state, BreakerState::Closed);
    let _ = guarded.get("k").await;
    assert_eq!(
        breaker.stats().state,
        BreakerState::Open,
        "the third in a row"
    );
}

#[tokio::test(start_paused = true)]
async fn a_background_probe_closes_it_one_interval_after_healing() {
    let clock = Clock::manual();
    let (store, guarded, breaker) = guarded(&clock);
    store.set(TIMES_OUT);
    let _ = guarded.get("k").await;
    store.set(ANSWERS);
    clock.advance(Duration::from_millis(99));
    settle().await;
    assert_eq!(store.pings.load(Ordering::SeqCst), 0, "not due yet");
    assert!(guarded.get("k").await.unwrap_err().is_breaker_open());
    clock.advance(Duration::from_millis(1));
    settle().await;
    assert_eq!(store.pings.load(Ordering::SeqCst), 1);
    let stats = breaker.stats();
    assert_eq!(
        (stats.state, stats.closed, stats.probes),
        (BreakerState::Closed, 1, 1)
    );
    assert!(
        guarded.get("k").await.is_ok(),
        "calls reach the store again"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_probes_back_off_exponentially_up_to_the_cap() {
    let clock = Clock::manual();
    let (store, guarded, breaker) = guarded(&clock);
    store.set(TIMES_OUT);
    let _ = guarded.get("k").await;
    let pings = || store.pings.load(Ordering::SeqCst);
    // Pauses: 100 (first), then 100, 200, 400, 400 (capped) after failures.
    let mut expected = 0;
    for pause in [100, 100, 200, 400, 400] {
        clock.advance(Duration::from_millis(pause - 1));
        settle().await;
        assert_eq!(pings(), expected, "not before {pause} ms");
        clock.advance(Duration::from_millis(1));
        settle().await;
        expected += 1;
        assert_eq!(pings(), expected, "after {pause} ms");
    }
    assert_eq!(breaker.stats().state, BreakerState::Open);
    store.set(ANSWERS);
    clock.advance(Duration::from_millis(400));
    settle().await;
    assert_eq!(breaker.stats().state, BreakerState::Closed);
}

#[test]
fn outside_a_runtime_one_call_per_due_probe_goes_through() {
    futures_executor::block_on(async {
        let clock = Clock::manual();
        let (store, guarded, breaker) = guarded(&clock);
        store.set(TIMES_OUT);
        let _ = guarded.get("k").await;
        let reached = store.calls.load(Ordering::SeqCst);
        assert!(guarded.get("k").await.unwrap_err().is_breaker_open());
        clock.advance(Duration::from_millis(100));
        let _ = guarded.get("k").await;
        assert_eq!(store.calls.load(Ordering::SeqCst), reached + 1, "the trial");
        assert!(guarded.get("k").await.unwrap_err().is_breaker_open());
        store.set(ANSWERS);
        clock.advance(Duration::from_millis(200));
        assert!(guarded.get("k").await.is_ok(), "the next trial closes it");
        assert_eq!(breaker.stats().state, BreakerState::Closed);
    });
}

#[test]
fn non_store_errors_do_not_count() {
    let breaker = Breaker::new("store", BreakerConfig::default(), Clock::manual());
    for _ in 0..10 {
        let result: Result<(), Error> = Err(Error::new(ErrorKind::NotANumber, "text"));
        assert!(!breaker.record(&result));
    }
    assert_eq!(breaker.stats().state, BreakerState::Closed);
}

/// Two nodes, named by a key's first letter; node `b` times out while the
/// test says so.
#[derive(Debug, Default)]
struct TwoNodes {
    b_times_out: AtomicBool,
    calls: AtomicU32,
    pings: AtomicU32,
}

impl TwoNodes {
    fn answer(&self, key: &str) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if key.starts_with('b') && self.b_times_out.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Store, "no answer").timed_out());
        }
        Ok(())
    }
}

#[async_trait]
impl RemoteStore for TwoNodes {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.answer(key).map(|()| Some(key.as_bytes().to_vec()))
    }
    async fn set(&self, key: &str, _: &[u8], _: Option<Duration>) -> Result<(), Error> {
        self.answer(key)
    }
    async fn add(&self, key: &str, _: &[u8], _: Option<Duration>) -> Result<bool, Error> {
        self.answer(key).map(|()| true)
    }
    async fn delete(&self, key: &str) -> Result<bool, Error> {
        self.answer(key).map(|()| true)
    }
    async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.answer(key).map(|()| delta)
    }
    async fn clear(&self, _: &str) -> Result<(), Error> {
        Ok(())
    }
    fn node_of(&self, key: &str) -> Option<Arc<str>> {
        key.get(..1).map(Arc::from)
    }
    async fn ping_node(&self, node: &str) -> Result<(), Error> {
        self.pings.fetch_add(1, Ordering::SeqCst);
        self.answer(node)
    }
}

/// A timeout on one node opens that node's breaker only: keys of the other
/// node keep reaching the store, a batch across both is split so the
/// healthy half is not charged, the set counts as open (the L1 stops
/// trusting), and the node's own probe closes it.
#[tokio::test(start_paused = true)]
async fn a_node_that_times_out_opens_only_its_own_breaker() {
    let clock = Clock::manual();
    let store = Arc::new(TwoNodes::default());
    let config = BreakerConfig {
        probe_interval: Duration::from_millis(100),
        probe_max: Duration::from_millis(400),
        ..BreakerConfig::default()
    };
    let set = Arc::new(BreakerSet::new(Arc::new(Breaker::new(
        "store",
        config,
        clock.clone(),
    ))));
    let guarded =
        BreakerStore::with_set(Arc::clone(&store) as Arc<dyn RemoteStore>, Arc::clone(&set));
    store.b_times_out.store(true, Ordering::SeqCst);
    let keys = vec!["a1".to_owned(), "b1".to_owned()];
    let error = guarded.get_many(&keys).await.expect_err("b times out");
    assert!(error.is_timeout(), "{error}");
    let nodes = set.node_stats();
    assert_eq!(
        nodes
            .iter()
            .map(|(n, s)| (n.as_str(), s.state))
            .collect::<Vec<_>>(),
        [("a", BreakerState::Closed), ("b", BreakerState::Open)]
    );
    assert!(set.any_open());
    assert_eq!(set.stats().state, BreakerState::Open);
    let reached = store.calls.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert!(guarded.get("b2").await.unwrap_err().is_breaker_open());
        assert!(guarded.get("a2").await.is_ok(), "a healthy node answers");
    }
    assert_eq!(store.calls.load(Ordering::SeqCst), reached + 20, "only a's");
    // A memo lookup whose version is on `a` and value on `b` skips `b`.
    let error = guarded
        .get_versioned("a:ver", "b:", ":1", 0)
        .await
        .expect_err("b is skipped");
    assert!(error.is_breaker_open());
    assert!(guarded.get_versioned("a:ver", "a:", ":1", 0).await.is_ok());

    store.b_times_out.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_millis(100));
    settle().await;
    assert!(store.pings.load(Ordering::SeqCst) >= 1, "b was probed");
    assert!(!set.any_open(), "{:?}", set.node_stats());
    assert!(guarded.get("b2").await.is_ok());
    assert_eq!(set.stats().opened, 1);
}
