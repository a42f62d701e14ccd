//! Groups in one process: the table's bound, the news the bus brings, and
//! the names that carry a group.

use super::*;
use std::sync::Arc;

use crate::Cache;
use crate::key::split_group;

fn pages(cache: &Cache) -> Memo<(u64, u32), String> {
    Memo::builder("pages").grouped().build(cache).expect("memo")
}

#[test]
fn a_group_name_splits_back_into_the_memo_and_the_group() {
    let group = KeyHash::of(&7_u64).expect("hash");
    let name = group_name("pages", group);
    assert_eq!(split_group(&name), ("pages", Some(group)));
    assert_eq!(split_group("pages"), ("pages", None));
    // Not a group's name: left whole.
    assert_eq!(split_group("a\x1fb"), ("a\x1fb", None));
    assert_eq!(split_group("a\x1f12"), ("a\x1f12", None));
}

/// Without a shared store the table is the truth: when it is full and
/// forgets every group, a group forgotten before must not find its old
/// entries again (the memo's version moves past every sum used).
#[tokio::test]
async fn a_full_group_table_never_brings_a_forgotten_value_back() {
    let cache = Cache::memory();
    let memo = pages(&cache);
    memo.set(&(1, 0), "old".to_owned()).await;
    memo.set(&(2, 0), "kept".to_owned()).await;
    assert!(memo.forget_group(&1).await.is_fleet());
    // As many other groups forgotten as the table holds: it fills, then
    // forgets them all.
    for user in 10..(10 + MAX_GROUPS as u64 + 1) {
        let _ = memo.forget_group(&user).await;
    }
    let known = memo.shared.groups.as_ref().map(|g| g.known.read().len());
    assert!(known.is_some_and(|n| n <= MAX_GROUPS), "bounded: {known:?}");
    assert!(
        memo.get(&(1, 0)).await.is_none(),
        "the forgotten value stays gone"
    );
    // The price: the other groups' entries are loaded again.
    assert!(memo.get(&(2, 0)).await.is_none());
    memo.set(&(1, 0), "new".to_owned()).await;
    assert_eq!(
        memo.get(&(1, 0)).await.as_deref().map(String::as_str),
        Some("new")
    );
    assert_eq!(memo.stats().group_invalidations, MAX_GROUPS as u64 + 2);
}

/// A group version read from the shared store while the bus brought news
/// of a group this process did not know is not remembered: the news may be
/// newer than what was read.
#[test]
fn a_read_that_overlapped_news_of_an_unknown_group_is_not_kept() {
    let shared = MemoShared::<String>::new(
        "pages",
        Some(crate::local::Bound::entries(16)),
        true,
        Arc::new(crate::deps::Stamps::new()),
        true,
    );
    let group = KeyHash(7);
    let mark = shared.group_news_mark();
    shared.observe_group(group, 4); // the bus: group 7 is now at 4
    shared.adopt_group(group, 3, Some(mark)); // a read from before the bump
    assert_eq!(
        shared.version_in(Some(group)),
        None,
        "still unknown: read again"
    );
    let mark = shared.group_news_mark();
    shared.adopt_group(group, 4, Some(mark));
    assert_eq!(shared.version_in(Some(group)), Some(4));
    // Known groups only move forward with the bus.
    shared.observe_group(group, 2);
    assert_eq!(shared.version_in(Some(group)), Some(4));
    shared.observe_group(group, 6);
    assert_eq!(shared.version_in(Some(group)), Some(6));
}

/// The store's group version going back (a restart without persistence)
/// empties the in-process tier rather than trusting it.
#[test]
fn a_group_version_that_went_back_forgets_the_groups() {
    let shared = MemoShared::<String>::new(
        "pages",
        Some(crate::local::Bound::entries(16)),
        true,
        Arc::new(crate::deps::Stamps::new()),
        true,
    );
    let (a, b) = (KeyHash(1), KeyHash(2));
    shared.adopt_group(a, 5, None);
    shared.adopt_group(b, 2, None);
    shared.adopt_group(a, 1, None);
    assert_eq!(shared.version_in(Some(a)), None);
    assert_eq!(
        shared.version_in(Some(b)),
        None,
        "every group is read again"
    );
}

/// A memo built without groups: `forget_group` forgets everything rather
/// than nothing.
#[tokio::test]
async fn forget_group_on_an_ungrouped_memo_forgets_everything() {
    let cache = Cache::memory();
    let memo: Memo<(u64, u32), String> = Memo::builder("plain").build(&cache).expect("memo");
    memo.set(&(1, 0), "a".to_owned()).await;
    memo.set(&(2, 0), "b".to_owned()).await;
    assert!(memo.forget_group(&1).await.is_fleet());
    assert!(memo.get(&(2, 0)).await.is_none());
    assert_eq!(memo.intent_group(&1).expect("intent"), memo.intent_all());
}
