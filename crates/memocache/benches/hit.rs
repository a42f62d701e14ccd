//! Hit, scaling and miss costs of `Memo` on the in-process store, beside the
//! tables it is measured against.
//!
//! `cargo bench -p memocache --bench hit` (`-- zipf` for the Zipf(1.0)
//! trace alone)

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::FutureExt;
use memocache::{Cache, CacheConfig, Memo};
use serde::{Deserialize, Serialize};

/// A small record, as a loaded user is.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    active: bool,
}

fn user(id: u64) -> User {
    User {
        id,
        name: format!("user-{id}"),
        active: true,
    }
}

fn memo_cache() -> Cache {
    Cache::new(CacheConfig::memory(10_000).default_timeout(Some(Duration::from_secs(600))))
        .expect("cache")
}

/// Polls a future that completes without waiting (a hit does) once.
fn now<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("a hit completes at once")
}

#[cached::proc_macro::cached(ttl_secs = 600)]
fn cached_user(id: u64) -> Arc<User> {
    Arc::new(user(id))
}

fn hits(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit");
    let cache = memo_cache();

    let by_id = Memo::<u64, User>::builder("by_id")
        .timeout(Duration::from_secs(600))
        .build(&cache)
        .expect("memo");
    now(by_id.get_or_load(&42, || async { user(42) }));
    group.bench_function("memo u64", |b| {
        b.iter(|| now(by_id.get_or_load(black_box(&42), || async { unreachable!() })))
    });

    let by_name = Memo::<str, User>::builder("by_name")
        .timeout(Duration::from_secs(600))
        .build(&cache)
        .expect("memo");
    now(by_name.get_or_load("alice", || async { user(1) }));
    group.bench_function("memo str", |b| {
        b.iter(|| now(by_name.get_or_load(black_box("alice"), || async { unreachable!() })))
    });

    // Keys that are not one integer or string go through the general
    // encoder: a pair, as `#[memoize]` builds for two parameters, and a map.
    let by_pair = Memo::<(u64, String), User>::builder("by_pair")
        .timeout(Duration::from_secs(600))
        .build(&cache)
        .expect("memo");
    let pair = (42_u64, "alice".to_owned());
    now(by_pair.get_or_load(&pair, || async { user(42) }));
    group.bench_function("memo (u64, String)", |b| {
        b.iter(|| now(by_pair.get_or_load(black_box(&pair), || async { unreachable!() })))
    });

    let by_filter = Memo::<BTreeMap<String, u32>, User>::builder("by_filter")
        .timeout(Duration::from_secs(600))
        .build(&cache)
        .expect("memo");
    let filter: BTreeMap<String, u32> = [("page", 2), ("per_page", 20), ("user", 7)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    now(by_filter.get_or_load(&filter, || async { user(7) }));
    group.bench_function("memo BTreeMap of 3", |b| {
        b.iter(|| now(by_filter.get_or_load(black_box(&filter), || async { unreachable!() })))
    });

    let quick = quick_cache::sync::Cache::<u64, Arc<User>>::new(10_000);
    quick.insert(42, Arc::new(user(42)));
    group.bench_function("quick_cache u64", |b| b.iter(|| quick.get(black_box(&42))));

    let quick_str = quick_cache::sync::Cache::<String, Arc<User>>::new(10_000);
    quick_str.insert("alice".into(), Arc::new(user(1)));
    group.bench_function("quick_cache str", |b| {
        b.iter(|| quick_str.get(black_box("alice")))
    });

    let moka = moka::sync::Cache::<u64, Arc<User>>::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(600))
        .build();
    moka.insert(42, Arc::new(user(42)));
    group.bench_function("moka u64", |b| b.iter(|| moka.get(black_box(&42))));

    cached_user(42);
    group.bench_function("cached #[cached] u64", |b| {
        b.iter(|| cached_user(black_box(42)))
    });

    let mut map = HashMap::new();
    map.insert(42_u64, Arc::new(user(42)));
    group.bench_function("HashMap u64 (floor)", |b| {
        b.iter(|| map.get(black_box(&42)).cloned())
    });
    group.finish();
}

/// Hits per second with one and with two threads, each thread on its own
/// keys. Throughput is in hits, so the ratio of the two is the scaling.
fn scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("scaling");
    let cache = memo_cache();
    let memo = Memo::<u64, User>::builder("scale")
        .timeout(Duration::from_secs(600))
        .build(&cache)
        .expect("memo");
    // Each thread's keys are loaded together, so their values sit in their
    // own stretch of memory (as values loaded by different requests would),
    // not interleaved with the other thread's on shared cache lines.
    for key in (0..512).chain(10_000..10_512) {
        now(memo.get_or_load(&key, || async move { user(key) }));
    }
    for threads in [1_u64, 2] {
        group.throughput(Throughput::Elements(threads));
        group.bench_function(format!("memo hit, {threads} thread(s)"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for t in 0..threads {
                        let memo = &memo;
                        scope.spawn(move || {
                            for i in 0..iters {
                                let key = (i % 512) + t * 10_000;
                                black_box(now(memo.get_or_load(&key, || async { unreachable!() })));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// SplitMix64, for a trace that is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Keys of 100,000 drawn Zipf(1.0) (by inverting its distribution), with
/// `seed`; ranks map to keys through a shuffle.
fn zipf_trace(len: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(ZIPF_KEYS);
    let mut sum = 0.0;
    for rank in 1..=ZIPF_KEYS {
        sum += 1.0 / rank as f64;
        cdf.push(sum);
    }
    let mut rng = Rng(seed);
    let mut keys: Vec<u64> = (0..ZIPF_KEYS as u64).collect();
    for i in (1..ZIPF_KEYS).rev() {
        keys.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    (0..len)
        .map(|_| {
            let u = (rng.next() >> 11) as f64 / (1_u64 << 53) as f64 * sum;
            keys[cdf.partition_point(|&p| p < u).min(ZIPF_KEYS - 1)]
        })
        .collect()
}

const ZIPF_KEYS: usize = 100_000;

/// Hits on a Zipf(1.0) trace over 100,000 keys (all held), from two
/// threads, each on its own trace (seeds `0x2500` and `0x2501`): a memo
/// beside `quick_cache`'s `get` on the same keys. Unlike one repeated
/// key, most reads here go past the threads' near slots to the table.
fn zipf(c: &mut Criterion) {
    let mut group = c.benchmark_group("zipf");
    const THREADS: u64 = 2;
    let traces: Vec<Vec<u64>> = (0..THREADS)
        .map(|t| zipf_trace(1 << 16, 0x2500 + t))
        .collect();
    let cache = Cache::new(
        CacheConfig::memory(2 * ZIPF_KEYS).default_timeout(Some(Duration::from_secs(600))),
    )
    .expect("cache");
    let memo = Memo::<u64, User>::builder("zipf")
        .build(&cache)
        .expect("memo");
    let quick = quick_cache::sync::Cache::<u64, Arc<User>>::new(2 * ZIPF_KEYS);
    for key in 0..ZIPF_KEYS as u64 {
        now(memo.get_or_load(&key, || async move { user(key) }));
        quick.insert(key, Arc::new(user(key)));
    }
    group.throughput(Throughput::Elements(THREADS));
    let run = |iters: u64, read: &(dyn Fn(u64) + Sync)| {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for trace in &traces {
                scope.spawn(move || {
                    for i in 0..iters as usize {
                        read(trace[i & (trace.len() - 1)]);
                    }
                });
            }
        });
        start.elapsed()
    };
    group.bench_function("memo hit, 2 threads", |b| {
        b.iter_custom(|iters| {
            run(iters, &|key| {
                black_box(now(memo.get_or_load(&key, || async move { user(key) })));
            })
        })
    });
    group.bench_function("quick_cache get, 2 threads", |b| {
        b.iter_custom(|iters| {
            run(iters, &|key| {
                black_box(quick.get(&key));
            })
        })
    });
    group.finish();
}

/// A miss that runs a trivial loader and stores its result: the overhead
/// the cache adds to a load (including eviction once the table is full).
fn miss(c: &mut Criterion) {
    let mut group = c.benchmark_group("miss");
    let cache = Cache::new(CacheConfig::memory(100_000)).expect("cache");
    let memo = Memo::<u64, u64>::builder("miss")
        .build(&cache)
        .expect("memo");
    let mut next = 0_u64;
    group.bench_function("memo miss + load + store", |b| {
        b.iter(|| {
            next += 1;
            now(memo.get_or_load(&next, || async move { next }))
        })
    });
    group.bench_function("loader alone", |b| {
        b.iter(|| {
            next += 1;
            now(async move { black_box(next) })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = hits, scaling, zipf, miss
}
criterion_main!(benches);
