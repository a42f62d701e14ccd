use super::*;

#[test]
fn expired_entries_are_misses_and_get_dropped() {
    let table = LocalTable::<u32>::new(10);
    table.insert(KeyHash(1), 7, 100, |_| 0);
    assert_eq!(table.get(&KeyHash(1), 99), Some(7));
    assert_eq!(table.get(&KeyHash(1), 100), None);
    assert_eq!(table.len(), 0);
}

#[test]
fn near_slots_follow_every_change_of_the_table() {
    let table = LocalTable::<u32>::new(10);
    table.insert(KeyHash(1), 7, 100, |_| 0);
    assert_eq!(table.get(&KeyHash(1), 0), Some(7)); // fills the near slot
    assert_eq!(table.get(&KeyHash(1), 0), Some(7)); // served near
    table.insert(KeyHash(1), 8, 100, |_| 0);
    assert_eq!(table.get(&KeyHash(1), 0), Some(8), "a replaced value");
    assert!(table.remove(&KeyHash(1)));
    assert_eq!(table.get(&KeyHash(1), 0), None, "a removed value");
    table.insert(KeyHash(2), 9, 100, |_| 0);
    assert_eq!(table.get(&KeyHash(2), 0), Some(9));
    table.clear();
    assert_eq!(table.get(&KeyHash(2), 0), None, "a cleared table");
    table.insert(KeyHash(3), 1, 100, |_| 0);
    assert_eq!(table.get(&KeyHash(3), 0), Some(1));
    assert_eq!(table.get(&KeyHash(3), 100), None, "expiry applies near too");
    // Keys sharing a near slot (same low bits) do not mix.
    let (a, b) = (KeyHash(4), KeyHash(4 + NEAR_SLOTS as u128));
    table.insert(a, 40, 100, |_| 0);
    table.insert(b, 41, 100, |_| 0);
    assert_eq!(table.get(&a, 0), Some(40));
    assert_eq!(table.get(&b, 0), Some(41));
    assert_eq!(table.get(&a, 0), Some(40));
}

#[test]
fn a_change_on_one_thread_voids_another_threads_near_slot() {
    let table = LocalTable::<u32>::new(10);
    table.insert(KeyHash(1), 7, 100, |_| 0);
    let (read, go) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            assert_eq!(table.get(&KeyHash(1), 0), Some(7)); // near now
            read.wait();
            go.wait();
            table.get(&KeyHash(1), 0)
        });
        read.wait();
        table.remove(&KeyHash(1));
        go.wait();
        assert_eq!(reader.join().unwrap(), None);
    });
    // An eviction by capacity leaves the near slot valid only until the
    // next change: the evicting insert is one.
    let small = LocalTable::<u32>::new(1);
    small.insert(KeyHash(1), 1, 100, |_| 0);
    assert_eq!(small.get(&KeyHash(1), 0), Some(1));
    for k in 2..50 {
        small.insert(KeyHash(k), 0, 100, |_| 0);
    }
    assert!(small.len() < 49);
    let remaining = (1..50)
        .filter(|&k| small.get(&KeyHash(k), 0).is_some())
        .count();
    assert_eq!(
        remaining,
        small.len(),
        "near slots never resurrect evicted keys"
    );
}

#[test]
fn insert_if_absent_respects_live_entries_only() {
    let table = LocalTable::<u32>::new(10);
    assert!(table.insert_if_absent(KeyHash(1), 1, 100, 0, |_| 0));
    assert!(!table.insert_if_absent(KeyHash(1), 2, 100, 50, |_| 0));
    assert_eq!(table.get(&KeyHash(1), 50), Some(1));
    assert!(table.insert_if_absent(KeyHash(1), 3, 300, 150, |_| 0));
    assert_eq!(table.get(&KeyHash(1), 150), Some(3));
}

#[test]
fn update_sees_live_value() {
    let table = LocalTable::<i64>::new(10);
    let bump = |t: &LocalTable<i64>, now| {
        t.update(
            KeyHash(9),
            now,
            |_| 8,
            |old| {
                let n = old.map_or(0, |e| e.value) + 1;
                (
                    Some(Entry {
                        value: n,
                        expires_at: 1_000,
                    }),
                    n,
                )
            },
        )
    };
    assert_eq!(bump(&table, 0), 1);
    assert_eq!(bump(&table, 0), 2);
    assert_eq!(bump(&table, 1_000), 1, "expired value starts over");
}

/// Key `k` as a real key hash would be: spread over all its bits (the
/// table picks a shard from the high ones).
fn spread(k: u128) -> KeyHash {
    KeyHash(k.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) | 1)
}

/// A byte budget holds whatever the values weigh: megabyte values and
/// 8-byte ones alike stay within it, as `quick_cache` measures it.
#[test]
fn a_byte_budget_bounds_the_weight_of_what_is_kept() {
    const BUDGET: u64 = 32 << 20;
    let large = LocalTable::<u64>::bounded(Bound {
        entries: usize::MAX,
        bytes: Some(BUDGET),
    });
    assert!(large.weighs());
    for k in 0..200 {
        let stored = large.insert(spread(k), k as u64, u64::MAX, |_| 1 << 20);
        assert_eq!(stored, Stored::Yes);
        assert!(large.weight() <= BUDGET, "{} > {BUDGET}", large.weight());
    }
    // Four shards of 8 MiB hold seven each.
    assert!(
        (16..=31).contains(&large.len()),
        "1 MiB values in 32 MiB: {}",
        large.len()
    );
    const SMALL: u64 = 1 << 20;
    let small = LocalTable::<u64>::bounded(Bound {
        entries: usize::MAX,
        bytes: Some(SMALL),
    });
    for k in 0..30_000 {
        small.insert(spread(k), k as u64, u64::MAX, |_| 8);
        assert!(small.weight() <= SMALL);
    }
    // 72 bytes an entry: most of a budget's worth is kept.
    let fit = (SMALL / (8 + ENTRY_OVERHEAD)) as usize;
    assert!(
        small.len() > fit / 2 && small.len() <= fit,
        "{} of {fit}",
        small.len()
    );
}

#[test]
fn an_entry_heavier_than_its_share_is_not_stored_and_is_counted() {
    let table = LocalTable::<u32>::bounded(Bound {
        entries: usize::MAX,
        bytes: Some(8 << 20),
    });
    assert_eq!(table.insert(KeyHash(1), 1, 100, |_| 10), Stored::Yes);
    assert_eq!(table.get(&KeyHash(1), 0), Some(1));
    // Over a sixteenth of the budget: the older value goes too.
    assert_eq!(
        table.insert(KeyHash(1), 2, 100, |_| 2 << 20),
        Stored::TooLarge
    );
    assert_eq!(table.get(&KeyHash(1), 0), None);
    assert!(!table.insert_if_absent(KeyHash(2), 2, 100, 0, |_| 9 << 20));
    assert_eq!(table.len(), 0);
}

#[test]
fn both_bounds_hold_at_once_and_a_count_bound_is_unchanged() {
    // 1,000 entries or 1 MiB, whichever comes first.
    let both = LocalTable::<u32>::bounded(Bound {
        entries: 1_000,
        bytes: Some(1 << 20),
    });
    for k in 0..20_000 {
        both.insert(spread(k), 0, 100, |_| 8);
    }
    assert!(both.len() <= 1_000, "{}", both.len());
    assert!(both.weight() <= 1 << 20);
    // A count under 16 with bytes: the floor does not reject entries.
    let few = LocalTable::<u32>::bounded(Bound {
        entries: 4,
        bytes: Some(1 << 20),
    });
    for k in 0..100 {
        assert_eq!(few.insert(spread(k), 0, 100, |_| 8), Stored::Yes);
    }
    assert!(few.len() <= 16 && few.weight() <= 1 << 20, "{}", few.len());
    let counted = LocalTable::<u32>::new(1_000);
    assert!(!counted.weighs());
    for k in 0..20_000 {
        // A count-bounded table never asks a weight.
        counted.insert(spread(k), 0, 100, |_| unreachable!("weighed"));
    }
    assert!(
        counted.len() <= 1_000 && counted.len() > 800,
        "{}",
        counted.len()
    );
    assert_eq!(counted.weight(), counted.len() as u64);
}
