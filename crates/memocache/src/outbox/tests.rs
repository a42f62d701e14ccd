//! The outbox protocol against an in-memory outbox and a cache whose
//! shared store can be made to fail.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Durable, Intent, Outbox, Pending, Relay, RelayConfig};
use crate::{Cache, Memo, Result};

#[derive(Default)]
struct InMemory {
    rows: Mutex<Vec<Pending>>,
    next: Mutex<u64>,
    fail_record: Mutex<bool>,
}

#[async_trait::async_trait]
impl Outbox for InMemory {
    async fn record(&self, intents: &[Intent], recorded_ms: u64) -> Result<String> {
        if *self.fail_record.lock() {
            return Err(crate::Error::new(crate::ErrorKind::Outbox, "disk full"));
        }
        let mut next = self.next.lock();
        *next += 1;
        let id = next.to_string();
        self.rows.lock().push(Pending {
            id: id.clone(),
            intents: intents.to_vec(),
            recorded_ms,
        });
        Ok(id)
    }

    async fn pending(&self, recorded_before_ms: u64, limit: usize) -> Result<Vec<Pending>> {
        Ok(self
            .rows
            .lock()
            .iter()
            .filter(|p| p.recorded_ms <= recorded_before_ms)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn confirm(&self, id: &str) -> Result<()> {
        self.rows.lock().retain(|p| p.id != id);
        Ok(())
    }
}

#[test]
fn intents_round_trip_and_unknown_formats_are_refused() {
    let intents = vec![
        Intent::Key {
            memo: "load_user".into(),
            hash: u128::MAX - 3,
        },
        Intent::All {
            memo: "all_messages".into(),
        },
        Intent::Tag { tag: "t".into() },
    ];
    let bytes = Intent::encode(&intents);
    assert_eq!(Intent::decode(&bytes).expect("decodes"), intents);
    assert!(Intent::decode(&[]).is_err());
    assert!(Intent::decode(&[2, 0]).is_err(), "a newer format");
    assert!(Intent::decode(&[1, 9, 9]).is_err(), "truncated");
}

#[tokio::test]
async fn a_write_whose_delivery_reached_the_fleet_leaves_nothing_pending() {
    let cache = Cache::memory();
    let memo: Memo<u64, String> = Memo::builder("names").build(&cache).expect("memo");
    memo.set(&1, "old".into()).await;
    let outbox = Arc::new(InMemory::default());
    let durable = Durable::new(&cache, outbox.clone());
    let written = durable
        .write(vec![memo.intent(&1).expect("key")], async {
            Ok::<_, std::io::Error>(())
        })
        .await
        .expect("written");
    assert!(written.reach.is_fleet());
    assert!(memo.get(&1).await.is_none());
    assert!(outbox.rows.lock().is_empty());
}

/// A write whose intents cannot be recorded is not made (a cache with a
/// shared store: one without records nothing, it has no fleet to miss).
#[tokio::test]
async fn a_write_is_refused_when_its_intents_cannot_be_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let cache = Cache::from_url(&format!("file://{}", dir.path().display())).expect("cache");
    assert!(cache.is_shared());
    let outbox = Arc::new(InMemory::default());
    *outbox.fail_record.lock() = true;
    let durable = Durable::new(&cache, outbox);
    let wrote = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&wrote);
    let result = durable
        .write(vec![Intent::All { memo: "m".into() }], async move {
            *flag.lock() = true;
            Ok::<_, std::io::Error>(())
        })
        .await;
    assert!(matches!(result, Err(super::DurableError::Record(_))));
    assert!(!*wrote.lock(), "nothing written");
}

/// The relay's two deliveries: once at `grace` (the writer is presumed
/// gone), again at `settle` before the entry is removed (a write that was
/// still running at the first delivery is visible by then).
#[tokio::test]
async fn the_relay_delivers_at_grace_and_confirms_at_settle() {
    let cache = Cache::memory();
    let memo: Memo<u64, String> = Memo::builder("names").build(&cache).expect("memo");
    let outbox = Arc::new(InMemory::default());
    let t0 = 1_000_000;
    outbox
        .record(&[memo.intent(&1).expect("key")], t0)
        .await
        .expect("recorded");
    let relay = Relay::new(&cache, outbox.clone()).with_config(RelayConfig::default().times(
        Duration::from_millis(100),
        Duration::from_millis(500),
        Duration::from_secs(10),
    ));

    // Too young: the writer may still be delivering it.
    memo.set(&1, "old".into()).await;
    let report = relay.run_once(t0 + 499).await;
    assert_eq!(report.delivered, 0);
    assert!(memo.get(&1).await.is_some());

    // At grace: delivered, kept.
    let report = relay.run_once(t0 + 500).await;
    assert_eq!((report.delivered, report.confirmed), (1, 0));
    assert!(memo.get(&1).await.is_none());

    // The write lands late and someone re-caches the old value: the
    // relay does not deliver again before settle...
    memo.set(&1, "old".into()).await;
    assert_eq!(relay.run_once(t0 + 5_000).await.delivered, 0);
    // ...and does at settle, then removes the entry.
    let report = relay.run_once(t0 + 10_000).await;
    assert_eq!((report.delivered, report.confirmed), (1, 1));
    assert!(memo.get(&1).await.is_none());
    assert!(outbox.rows.lock().is_empty());
    assert_eq!(relay.stats().confirmed, 1);
}

/// An intent recorded by another process for a memo this one never built
/// is still delivered: the shared store and the bus are told by name.
#[tokio::test]
async fn the_relay_delivers_intents_of_memos_it_never_built() {
    let cache = Cache::memory();
    let outbox = Arc::new(InMemory::default());
    outbox
        .record(
            &[
                Intent::All {
                    memo: "elsewhere".into(),
                },
                Intent::Key {
                    memo: "elsewhere".into(),
                    hash: 7,
                },
            ],
            0,
        )
        .await
        .expect("recorded");
    let relay = Relay::new(&cache, outbox.clone());
    let report = relay.run_once(60_000).await;
    assert_eq!((report.delivered, report.confirmed), (1, 1));
}
