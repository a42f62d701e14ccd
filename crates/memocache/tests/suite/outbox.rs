//! Durable invalidation across real Redis and a fault proxy: a forget that
//! cannot reach the fleet says so, and an outbox entry recorded with the
//! write is delivered by another process's relay (while the writer is cut
//! off) or after a transient fault, so no process keeps serving the old
//! value. The outbox here is an in-memory table both "processes" share,
//! standing for the application's database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memocache::outbox::{Durable, Intent, Outbox, Pending, Relay, RelayConfig, wall_ms};
use memocache::{Cache, Memo};
use parking_lot::Mutex;
use testkit::{FaultProxy, RedisServer};

use crate::partition::until;

const LIMIT: Duration = Duration::from_secs(60);
/// Relay pacing in these tests: first delivery at `GRACE`, confirmation
/// at `SETTLE`.
const GRACE: Duration = Duration::from_millis(200);
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Default)]
struct SharedTable {
    rows: Mutex<Vec<Pending>>,
    next: AtomicU32,
}

#[async_trait::async_trait]
impl Outbox for SharedTable {
    async fn record(&self, intents: &[Intent], recorded_ms: u64) -> memocache::Result<String> {
        let id = self.next.fetch_add(1, Ordering::SeqCst).to_string();
        self.rows.lock().push(Pending {
            id: id.clone(),
            intents: intents.to_vec(),
            recorded_ms,
        });
        Ok(id)
    }

    async fn pending(&self, before: u64, limit: usize) -> memocache::Result<Vec<Pending>> {
        let rows = self.rows.lock();
        Ok(rows
            .iter()
            .filter(|p| p.recorded_ms <= before)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn confirm(&self, id: &str) -> memocache::Result<()> {
        self.rows.lock().retain(|p| p.id != id);
        Ok(())
    }
}

fn tiered(port: u16) -> Cache {
    Cache::from_url(&format!(
        "tiered+redis://127.0.0.1:{port}/?prefix=o:&heartbeat_ms=300&timeout_ms=300&probe_ms=100&probe_max_ms=200"
    ))
    .expect("cache")
}

fn relay(cache: &Cache, outbox: &Arc<SharedTable>) -> Relay {
    Relay::new(cache, Arc::clone(outbox) as Arc<dyn Outbox>)
        .with_config(RelayConfig::default().times(Duration::from_millis(50), GRACE, SETTLE))
}

/// The database row the memo caches: a version the "write" bumps.
#[derive(Clone, Default)]
struct Row(Arc<AtomicU32>);

impl Row {
    fn load(&self) -> impl FnOnce() -> std::future::Ready<u32> + use<> {
        let row = Arc::clone(&self.0);
        move || std::future::ready(row.load(Ordering::SeqCst))
    }
}

/// The writer is cut off from Redis: its forget reports the miss, the
/// entry stays in the outbox, the cut-off writer's own relay skips it
/// (its breaker is open), and the other process's relay delivers it: the
/// other process stops serving the old value within the relay's grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_writers_invalidation_is_delivered_by_another_process() {
    tokio::time::timeout(LIMIT, async {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.port());
        let cut = tiered(proxy.port());
        let other = tiered(server.port());
        until("in sync", LIMIT, || cut.l1_in_sync() && other.l1_in_sync()).await;
        let m_cut: Memo<u32, u32> = Memo::builder("row").build(&cut).expect("memo");
        let m_other: Memo<u32, u32> = Memo::builder("row").build(&other).expect("memo");
        let row = Row::default();
        let outbox = Arc::new(SharedTable::default());
        assert_eq!(*m_other.get_or_load(&1, row.load()).await, 0);
        assert_eq!(*m_other.get_or_load(&1, row.load()).await, 0, "cached");

        proxy.black_hole();
        let durable = Durable::new(&cut, Arc::clone(&outbox) as Arc<dyn Outbox>);
        let written = durable
            .write(vec![m_cut.intent(&1).expect("key")], async {
                row.0.store(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
            .await
            .expect("the write is made: its invalidation is recorded");
        assert!(!written.reach.is_fleet(), "{}", written.reach);
        assert_eq!(outbox.rows.lock().len(), 1, "kept for the relays");
        assert_eq!(
            *m_cut.get_or_load(&1, row.load()).await,
            1,
            "the writer reads its write"
        );

        let cut_relay = relay(&cut, &outbox);
        let other_relay = relay(&other, &outbox);
        let report = cut_relay.run_once(wall_ms() + 10_000).await;
        assert!(
            report.skipped,
            "a cut-off relay waits for the others: {report:?}"
        );
        let report = other_relay.run_once(wall_ms() + millis(GRACE)).await;
        assert_eq!(report.delivered, 1, "{report:?}");
        assert_eq!(
            *m_other.get_or_load(&1, row.load()).await,
            1,
            "fresh on the other process"
        );

        // At settle the entry is delivered again and removed.
        let report = other_relay.run_once(wall_ms() + millis(SETTLE)).await;
        assert_eq!((report.delivered, report.confirmed), (1, 1), "{report:?}");
        assert!(outbox.rows.lock().is_empty());

        proxy.pass_through();
        until("healed", Duration::from_secs(10), || {
            cut.l1_in_sync() && cut.store_available()
        })
        .await;
        assert_eq!(*m_cut.get_or_load(&1, row.load()).await, 1);
    })
    .await
    .expect("within the test limit");
}

/// A forget that meets a fault (connections reset) reports it; the relay
/// delivers the entry once the store answers again, and the L2 copy the
/// failed forget left behind is gone for every process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forget_that_meets_a_fault_is_delivered_afterwards() {
    tokio::time::timeout(LIMIT, async {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.port());
        let writer = tiered(proxy.port());
        let reader = tiered(server.port());
        until("in sync", LIMIT, || {
            writer.l1_in_sync() && reader.l1_in_sync()
        })
        .await;
        let m_writer: Memo<u32, u32> = Memo::builder("row").build(&writer).expect("memo");
        let m_reader: Memo<u32, u32> = Memo::builder("row").build(&reader).expect("memo");
        let row = Row::default();
        let outbox = Arc::new(SharedTable::default());
        assert_eq!(*m_reader.get_or_load(&7, row.load()).await, 0);

        // Every connection through the proxy is reset: the forget fails.
        proxy.black_hole();
        let durable = Durable::new(&writer, Arc::clone(&outbox) as Arc<dyn Outbox>);
        let written = durable
            .write(vec![m_writer.intent(&7).expect("key")], async {
                row.0.store(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
            .await
            .expect("written");
        assert!(!written.reach.is_fleet());
        proxy.reset();
        proxy.pass_through();
        until(
            "the writer's store answers again",
            Duration::from_secs(10),
            || writer.store_available(),
        )
        .await;

        // The writer's own relay delivers it (the reader's would too).
        let report = relay(&writer, &outbox)
            .run_once(wall_ms() + millis(SETTLE))
            .await;
        assert_eq!((report.delivered, report.confirmed), (1, 1), "{report:?}");
        assert_eq!(*m_reader.get_or_load(&7, row.load()).await, 1);
        assert!(outbox.rows.lock().is_empty());
    })
    .await
    .expect("within the test limit");
}

/// Forgets report how far they got: a healthy fleet is reached, a
/// black-holed process is not (and says which part it missed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forget_says_whether_it_reached_the_fleet() {
    tokio::time::timeout(LIMIT, async {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.port());
        let cut = tiered(proxy.port());
        let healthy = tiered(server.port());
        until("in sync", LIMIT, || {
            cut.l1_in_sync() && healthy.l1_in_sync()
        })
        .await;
        let m_cut: Memo<u32, u32> = Memo::builder("r").build(&cut).expect("memo");
        let m_healthy: Memo<u32, u32> = Memo::builder("r").build(&healthy).expect("memo");
        assert!(m_healthy.forget(&1).await.is_fleet());
        assert!(m_healthy.forget_all().await.is_fleet());
        assert!(m_cut.forget(&1).await.is_fleet());
        proxy.black_hole();
        let reach = m_cut.forget(&1).await;
        assert!(reach.missed_store(), "{reach}");
        let reach = m_cut.forget_all().await;
        assert!(!reach.is_fleet(), "{reach}");
        assert!(!cut.invalidate_tag("t").await.is_fleet());
    })
    .await
    .expect("within the test limit");
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).expect("small")
}
