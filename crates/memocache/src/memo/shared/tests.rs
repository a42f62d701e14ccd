//! The memo's version mirror: reads of the store against the bus's news.

use super::*;

fn shared() -> MemoShared<String> {
    MemoShared::new(
        "pages",
        Some(crate::local::Bound::entries(16)),
        true,
        Arc::new(Stamps::new()),
        false,
    )
}

/// A version read that a bus message overtook (the forget's `INCR` landed
/// between the read and its reply) is older than the news, not a store
/// that lost its data: following it down would file new entries under the
/// forgotten version, where the shared store still holds the old values.
#[test]
fn a_read_overtaken_by_news_does_not_take_the_version_back() {
    let shared = shared();
    let mark = shared.version_news_mark();
    assert_eq!(shared.adopt_version(4, mark), 4);
    let mark = shared.version_news_mark();
    // The read is under way; the bus brings the forget's version 5.
    MemoControl::observe_version(&shared, 5);
    // The read's reply: 4.
    assert_eq!(
        shared.adopt_version(4, mark),
        5,
        "the newer version is used"
    );
    assert_eq!(shared.version.load(Ordering::Acquire), 5);
    assert!(
        !shared.version_known.load(Ordering::Acquire),
        "the store is read again before the L1 is trusted"
    );
    // Read again with nothing overlapping: the store says 5.
    let mark = shared.version_news_mark();
    assert_eq!(shared.adopt_version(5, mark), 5);
    assert!(shared.version_known.load(Ordering::Acquire));
}

/// The same check leaves the "store went back" path working: a lower
/// version read with no news meanwhile is followed, and the L1 emptied.
#[test]
fn a_store_that_lost_its_versions_is_followed_when_no_news_overlapped() {
    let shared = shared();
    let mark = shared.version_news_mark();
    shared.adopt_version(7, mark);
    let key = KeyHash(1).versioned(7);
    if let Some(table) = &shared.table {
        table.insert(key, Arc::new("old".to_owned()), u64::MAX, |_| 1);
    }
    let mark = shared.version_news_mark();
    assert_eq!(shared.adopt_version(0, mark), 0);
    assert_eq!(shared.version.load(Ordering::Acquire), 0);
    assert!(
        shared
            .table
            .as_ref()
            .is_some_and(|t| t.get(&key, 0).is_none()),
        "the L1 was emptied"
    );
}

/// A forget's own `INCR` reply can be overtaken too: another process's
/// later `INCR` reaches us on the bus first.
#[test]
fn an_incr_reply_older_than_the_bus_news_keeps_the_newer_version() {
    let shared = shared();
    let mark = shared.version_news_mark();
    shared.adopt_version(1, mark);
    let mark = shared.version_news_mark();
    MemoControl::observe_version(&shared, 3); // the other process's INCR
    MemoControl::adopt_version(&shared, 2, mark); // our INCR's reply
    assert_eq!(shared.version.load(Ordering::Acquire), 3);
}
