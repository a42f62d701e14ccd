//! Heap bytes per cached entry at one million `u64 -> u64` entries, for
//! `Memo` and the tables it is measured against. Counted by a tracking
//! allocator, so the figure is exact for this build, not an RSS estimate.
//!
//! `cargo bench -p memocache --bench memory`

use std::alloc::System;
use std::collections::HashMap;
use std::time::Duration;

use cap::Cap;
use futures::FutureExt;
use memocache::{Cache, CacheConfig, Memo};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

const ENTRIES: u64 = 1_000_000;

fn per_entry(name: &str, fill: impl FnOnce() -> Box<dyn std::any::Any>) {
    let before = ALLOCATOR.allocated();
    let table = fill();
    let after = ALLOCATOR.allocated();
    let bytes = (after - before) as f64 / ENTRIES as f64;
    println!("{name:<28} {bytes:>7.1} bytes/entry");
    drop(table);
}

fn main() {
    // Criterion passes `--bench`; there is nothing to configure here.
    println!("heap bytes per entry at {ENTRIES} u64 -> u64 entries");
    per_entry("memocache Memo<u64, u64>", || {
        let cache = Cache::new(
            CacheConfig::memory(ENTRIES as usize).default_timeout(Some(Duration::from_secs(600))),
        )
        .expect("cache");
        let memo = Memo::<u64, u64>::builder("m").build(&cache).expect("memo");
        for k in 0..ENTRIES {
            let _ = memo.get_or_load(&k, || async move { k }).now_or_never();
        }
        assert!(memo.stats().loads == ENTRIES);
        Box::new((cache, memo))
    });
    per_entry("quick_cache u64 -> u64", || {
        let table = quick_cache::sync::Cache::<u64, u64>::new(ENTRIES as usize);
        for k in 0..ENTRIES {
            table.insert(k, k);
        }
        Box::new(table)
    });
    per_entry("moka u64 -> u64", || {
        let table = moka::sync::Cache::<u64, u64>::new(ENTRIES);
        for k in 0..ENTRIES {
            table.insert(k, k);
        }
        table.run_pending_tasks();
        Box::new(table)
    });
    per_entry("HashMap u64 -> u64", || {
        let mut table = HashMap::new();
        for k in 0..ENTRIES {
            table.insert(k, k);
        }
        Box::new(table)
    });
}
