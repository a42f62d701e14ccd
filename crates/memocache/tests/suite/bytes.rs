//! Byte budgets of the in-process tier (issue 25): what a memo keeps stays
//! within `capacity_bytes` whatever its values weigh, an entry too heavy
//! to keep is counted and not kept, and a count-bounded cache is as before.

use std::sync::Arc;

use memocache::{Cache, CacheConfig, Memo, Timeout};

const BUDGET: u64 = 32 << 20;

/// A memo of 1 MiB values and one of 8-byte values, under one budget
/// (`capacity_bytes` is per memo, as `capacity` is): the large one keeps
/// what fits and evicts the rest, the small one keeps all of its 20,000
/// (72 bytes each, bookkeeping included), and neither evicts the other.
#[tokio::test]
async fn megabyte_and_eight_byte_memos_share_one_budget_sensibly() {
    let cache = Cache::from_url("memory://?capacity_bytes=32MiB").expect("cache");
    let pages: Memo<u64, String> = Memo::builder("pages").build(&cache).expect("memo");
    let counts: Memo<u64, u64> = Memo::builder("counts").build(&cache).expect("memo");
    for k in 0..20_000 {
        counts.set(&k, k).await;
    }
    let megabyte = "x".repeat(1 << 20);
    for k in 0..40 {
        pages.set(&k, megabyte.clone()).await;
        let weight = pages.local_bytes().expect("bounded by bytes");
        assert!(weight <= BUDGET, "after page {k}: {weight} > {BUDGET}");
    }
    let kept = pages.local_entries();
    // Four shards of 8 MiB, each evicting on its own, hold seven each.
    assert!((16..=31).contains(&kept), "{kept} pages of 1 MiB in 32 MiB");
    assert_eq!(counts.local_entries(), 20_000);
    assert!(counts.local_bytes().expect("bounded") <= BUDGET);
    assert!(counts.get(&0).await.is_some(), "pages evict no counts");
    assert_eq!(pages.stats().too_large, 0);

    // Over a sixteenth of the budget (2 MiB): returned, counted, not kept,
    // and the value it replaced is gone too.
    let three = Arc::new("y".repeat(3 << 20));
    let mut held = None;
    for k in (0..40).rev() {
        if pages.get(&k).await.is_some() {
            held = Some(k);
            break;
        }
    }
    let held = held.expect("some page is kept");
    pages.set(&held, (*three).clone()).await;
    assert!(pages.get(&held).await.is_none());
    let again = pages.get_or_load(&40, || async { (*three).clone() }).await;
    assert_eq!(again.len(), 3 << 20);
    assert!(pages.get(&40).await.is_none());
    assert_eq!(pages.stats().too_large, 2);
}

/// A count-bounded cache behaves as before: entries, not bytes, and no
/// weight asked of a value.
#[tokio::test]
async fn a_count_bound_is_unchanged() {
    let cache = Cache::new(CacheConfig::memory(100)).expect("cache");
    let memo: Memo<u64, String> = Memo::builder("counted")
        .weigher(|_| unreachable!("a count-bounded memo weighs nothing"))
        .build(&cache)
        .expect("memo");
    for k in 0..1_000 {
        memo.set(&k, "x".repeat(1 << 10)).await;
    }
    assert!(memo.local_entries() <= 100, "{}", memo.local_entries());
    assert_eq!(memo.local_bytes(), None);
    // The low-level API, bounded by bytes too.
    let cache =
        Cache::new(CacheConfig::memory(usize::MAX).capacity_bytes(64 << 10)).expect("cache");
    cache
        .set("big", "z".repeat(16 << 10), Timeout::Default)
        .await
        .expect("set");
    assert!(
        cache.get::<String>("big").await.expect("get").is_none(),
        "over 4 KiB"
    );
    cache
        .set("small", "z".repeat(1 << 10), Timeout::Default)
        .await
        .expect("set");
    assert!(cache.get::<String>("small").await.expect("get").is_some());
}
