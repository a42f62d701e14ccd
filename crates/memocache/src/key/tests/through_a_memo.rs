//! The measures, on a memo: equal maps share one entry, a
//! forget with an equal map forgets it, `0.0` and `-0.0` share one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::FutureExt;

use super::canonical::Rng;
use crate::{Cache, Memo};

/// An equal map, built anew in its own insertion order and capacity.
fn filter(rng: &mut Rng) -> HashMap<String, i64> {
    let mut keys: Vec<i64> = (0..8).collect();
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut map = HashMap::with_capacity(rng.below(40) as usize);
    map.extend(keys.into_iter().map(|k| (format!("field{k}"), k * 10)));
    map
}

fn now<T>(future: impl std::future::Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("the in-process store answers at once")
}

#[test]
fn equal_maps_share_one_entry_zero_misses_in_a_thousand_calls() {
    let cache = Cache::memory();
    let memo: Memo<HashMap<String, i64>, u64> =
        Memo::builder("totals").build(&cache).expect("memo");
    let mut rng = Rng::new(1);
    now(memo.get_or_load(&filter(&mut rng), || async { 1 }));
    let mut misses = 0;
    for _ in 0..1_000 {
        now(memo.get_or_load(&filter(&mut rng), || async {
            misses += 1;
            2
        }));
    }
    assert_eq!(misses, 0);
    assert_eq!(memo.stats().loads, 1);
}

#[test]
fn a_forget_with_an_equal_map_forgets_zero_stale_in_a_thousand() {
    let cache = Cache::memory();
    let memo: Memo<HashMap<String, i64>, u64> =
        Memo::builder("totals").build(&cache).expect("memo");
    let mut rng = Rng::new(2);
    let mut stale = 0;
    for round in 0..1_000_u64 {
        now(memo.set(&filter(&mut rng), round));
        let _ = now(memo.forget(&filter(&mut rng)));
        let served = now(memo.get_or_load(&filter(&mut rng), || async { u64::MAX }));
        if *served != u64::MAX {
            stale += 1;
        }
    }
    assert_eq!(stale, 0);
}

#[test]
fn equal_sets_share_one_entry_and_forget_together() {
    let cache = Cache::memory();
    let memo: Memo<HashSet<u32>, usize> = Memo::builder("tags").build(&cache).expect("memo");
    let set = |capacity: usize| {
        let mut set = HashSet::with_capacity(capacity);
        set.extend((0..12).rev());
        set
    };
    now(memo.set(&set(0), 1));
    for capacity in 1..1_000 {
        assert_eq!(now(memo.get(&set(capacity))), Some(Arc::new(1)));
    }
    let _ = now(memo.forget(&set(500)));
    assert_eq!(now(memo.get(&set(3))), None);
}

#[test]
fn zero_and_negative_zero_share_one_entry() {
    let cache = Cache::memory();
    let memo: Memo<(u32, f64), String> = Memo::builder("scaled").build(&cache).expect("memo");
    now(memo.set(&(1, 0.0), "zero".to_owned()));
    assert_eq!(
        now(memo.get(&(1, -0.0))).as_deref().map(String::as_str),
        Some("zero")
    );
    let _ = now(memo.forget(&(1, -0.0)));
    assert!(now(memo.get(&(1, 0.0))).is_none());
}
