//! Memo hits on one key shape, timed: the driver behind the key-cost
//! figures in `BENCHMARKS.md` (issue 28). Deterministic enough to count
//! instructions under valgrind, which a shared machine's wall clock is not:
//!
//! ```text
//! cargo build --release -p memocache --example key_hits
//! target/release/examples/key_hits pair 1000000 7      # best of 7 rounds, ns/hit
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/key_hits pair 200000
//! ```
//!
//! Shapes: `u64`, `str`, `pair` (`(u64, String)`), `btree3` and `hash3` (a
//! `BTreeMap` / `HashMap` of three `String → u32` entries), `f64`
//! (`(u64, f64)`), `pair-grouped` (`pair` in a memo built `grouped`: the
//! group's version looked up on every hit), `u64-opts` (`u64` in a memo
//! built with an `unless` that is never true), `u64-many` (hits cycling
//! over 4,096 keys, read from the table past the near slots). With `n = 0` only the setup runs: subtract its
//! instruction count to get the hits'.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::{Duration, Instant};

use futures::FutureExt;
use memocache::{Cache, CacheConfig, Memo};

/// `n` hits on `key` in a memo of its own; how long they took.
fn hits<K: serde::Serialize + 'static>(cache: &Cache, name: &str, key: &K, n: u64) -> Duration {
    let memo = Memo::<K, u64>::builder(name).build(cache).expect("memo");
    let loaded = memo.get_or_load(key, || async { 1 }).now_or_never();
    loaded.expect("the in-process store answers at once");
    let start = Instant::now();
    for _ in 0..n {
        let hit = memo.get_or_load(black_box(key), || async { unreachable!("a hit") });
        black_box(hit.now_or_never().expect("a hit answers at once"));
    }
    start.elapsed()
}

/// [`hits`] on a `u64` memo built with a per-call option (`unless`,
/// never true): the path a memo with options takes.
fn optioned_hits(cache: &Cache, name: &str, n: u64) -> Duration {
    let memo = Memo::<u64, u64>::builder(name)
        .unless(|| false)
        .build(cache)
        .expect("memo");
    let loaded = memo.get_or_load(&42, || async { 1 }).now_or_never();
    loaded.expect("the in-process store answers at once");
    let start = Instant::now();
    for _ in 0..n {
        let hit = memo.get_or_load(black_box(&42), || async { unreachable!("a hit") });
        black_box(hit.now_or_never().expect("a hit answers at once"));
    }
    start.elapsed()
}

/// `n` hits cycling over 4,096 `u64` keys: most are read past the near
/// slots, from the table itself.
fn many_hits(cache: &Cache, name: &str, n: u64) -> Duration {
    let memo = Memo::<u64, u64>::builder(name).build(cache).expect("memo");
    for key in 0..4096_u64 {
        let loaded = memo.get_or_load(&key, || async { 1 }).now_or_never();
        loaded.expect("the in-process store answers at once");
    }
    let start = Instant::now();
    for i in 0..n {
        let key = i.wrapping_mul(0x9e37_79b9) % 4096;
        let hit = memo.get_or_load(black_box(&key), || async { unreachable!("a hit") });
        black_box(hit.now_or_never().expect("a hit answers at once"));
    }
    start.elapsed()
}

/// [`hits`] on a memo built `grouped`.
fn grouped_hits(cache: &Cache, name: &str, key: &(u64, String), n: u64) -> Duration {
    let memo = Memo::<(u64, String), u64>::builder(name)
        .grouped()
        .build(cache)
        .expect("memo");
    let loaded = memo.get_or_load(key, || async { 1 }).now_or_never();
    loaded.expect("the in-process store answers at once");
    let start = Instant::now();
    for _ in 0..n {
        let hit = memo.get_or_load(black_box(key), || async { unreachable!("a hit") });
        black_box(hit.now_or_never().expect("a hit answers at once"));
    }
    start.elapsed()
}

fn filter() -> impl Iterator<Item = (String, u32)> {
    [("page", 2), ("per_page", 20), ("user", 7)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: key_hits <u64|u64-opts|u64-many|str|pair|pair-grouped|btree3|hash3|f64> <hits> [rounds]";
    let (Some(shape), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let rounds: u32 = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(1);
    let config = CacheConfig::memory(10_000).default_timeout(Some(Duration::from_secs(600)));
    let cache = Cache::new(config).expect("cache");
    let mut best = Duration::MAX;
    for round in 0..rounds {
        let name = format!("{shape}{round}");
        let took = match shape.as_str() {
            "u64" => hits(&cache, &name, &42_u64, n),
            "u64-opts" => optioned_hits(&cache, &name, n),
            "u64-many" => many_hits(&cache, &name, n),
            "str" => hits(&cache, &name, &"alice".to_owned(), n),
            "pair" => hits(&cache, &name, &(42_u64, "alice".to_owned()), n),
            "pair-grouped" => grouped_hits(&cache, &name, &(42_u64, "alice".to_owned()), n),
            "btree3" => hits(&cache, &name, &filter().collect::<BTreeMap<_, _>>(), n),
            "hash3" => hits(&cache, &name, &filter().collect::<HashMap<_, _>>(), n),
            "f64" => hits(&cache, &name, &(1_u64, 2.5_f64), n),
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        };
        best = best.min(took);
    }
    if n > 0 {
        let per_hit = best.as_secs_f64() * 1e9 / n as f64;
        println!("{shape}: best of {rounds}: {per_hit:.1} ns/hit");
    }
}
