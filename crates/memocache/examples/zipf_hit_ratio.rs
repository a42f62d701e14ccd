//! Hit ratio of the in-process tier bounded by bytes against one bounded
//! by entries, at equal memory, on a Zipf(1.0) trace over 100,000 keys
//! whose values have mixed sizes: the figures in `BENCHMARKS.md`
//! (issue 25). Deterministic: the seed is printed, and given again it
//! replays the same trace.
//!
//! ```text
//! cargo run --release -p memocache --example zipf_hit_ratio [budget MiB] [seed]
//! ```
//!
//! Value sizes depend on the key, not on its popularity: 80% of keys hold
//! 64–512 bytes, 15% 4–16 KiB, 5% 64–256 KiB. The count-bounded cache gets
//! the capacity whose entries, at the mean weight of a key, fill the same
//! budget; both memos weigh a value the same way (its encoded size and 64
//! bytes of bookkeeping), and what each holds at the end is measured.

use std::time::Instant;

use futures::FutureExt;
use memocache::{Cache, CacheConfig, Memo};

const KEYS: usize = 100_000;
const REQUESTS: usize = 2_000_000;
/// Requests left out of the ratio while the caches fill.
const WARMUP: usize = 200_000;
/// What an entry costs besides its value (as the library weighs it).
const OVERHEAD: u64 = 64;

/// SplitMix64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// Zipf(`s`) over ranks `0..n`, drawn by inverting its distribution.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for rank in 1..=n {
            sum += 1.0 / (rank as f64).powf(s);
            cdf.push(sum);
        }
        for p in &mut cdf {
            *p /= sum;
        }
        Self(cdf)
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|&p| p < u).min(self.0.len() - 1)
    }
}

/// The size of key `k`'s value: fixed per key, unrelated to its rank.
fn size_of(k: u64) -> usize {
    let mut rng = Rng(k.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed);
    let class = rng.next() % 100;
    let (low, high) = match class {
        0..80 => (64, 512),
        80..95 => (4 << 10, 16 << 10),
        _ => (64 << 10, 256 << 10),
    };
    low + (rng.next() % (high - low) as u64) as usize
}

/// What the library weighs a `String` of `len` bytes at: its postcard
/// encoding (a varint length, then the bytes) and the bookkeeping.
fn weight(len: usize) -> u64 {
    let varint = match len {
        0..128 => 1,
        128..16_384 => 2,
        16_384..2_097_152 => 3,
        _ => 4,
    };
    len as u64 + varint + OVERHEAD
}

struct Outcome {
    hits: u64,
    requests: u64,
    hit_bytes: u64,
    bytes: u64,
    held_entries: usize,
    held_bytes: u64,
    too_large: u64,
}

fn run(cache: &Cache, trace: &[u64]) -> Outcome {
    let memo: Memo<u64, String> = Memo::builder("values").build(cache).expect("memo");
    let mut out = Outcome {
        hits: 0,
        requests: 0,
        hit_bytes: 0,
        bytes: 0,
        held_entries: 0,
        held_bytes: 0,
        too_large: 0,
    };
    for (i, &k) in trace.iter().enumerate() {
        let mut loaded = false;
        let value = memo
            .get_or_load(&k, || {
                loaded = true;
                async move { "v".repeat(size_of(k)) }
            })
            .now_or_never()
            .expect("the in-process store answers at once");
        if i >= WARMUP {
            out.requests += 1;
            out.bytes += value.len() as u64;
            if !loaded {
                out.hits += 1;
                out.hit_bytes += value.len() as u64;
            }
        }
    }
    for k in 0..KEYS as u64 {
        if let Some(value) = memo.get(&k).now_or_never().flatten() {
            out.held_entries += 1;
            out.held_bytes += weight(value.len());
        }
    }
    out.too_large = memo.stats().too_large;
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let budget_mib: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seed: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0x25_2026);
    let budget = budget_mib << 20;
    let zipf = Zipf::new(KEYS, 1.0);
    let mut rng = Rng(seed);
    // Ranks to keys through a fixed shuffle, so popularity says nothing
    // of a key's number either.
    let mut keys: Vec<u64> = (0..KEYS as u64).collect();
    for i in (1..KEYS).rev() {
        keys.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let trace: Vec<u64> = (0..REQUESTS).map(|_| keys[zipf.sample(&mut rng)]).collect();
    let mean_weight =
        (0..KEYS as u64).map(|k| weight(size_of(k))).sum::<u64>() as f64 / KEYS as f64;
    let count = (budget as f64 / mean_weight) as usize;
    println!(
        "seed {seed}, {KEYS} keys, Zipf(1.0), {REQUESTS} requests ({WARMUP} warm-up), \
         budget {budget_mib} MiB, mean entry {mean_weight:.0} B -> count bound {count}"
    );
    let by_bytes =
        Cache::new(CacheConfig::memory(usize::MAX).capacity_bytes(budget)).expect("cache");
    let by_count = Cache::new(CacheConfig::memory(count)).expect("cache");
    for (name, cache) in [("bytes", &by_bytes), ("count", &by_count)] {
        let started = Instant::now();
        let o = run(cache, &trace);
        println!(
            "{name}: hit ratio {:.4}, byte hit ratio {:.4}, holds {} entries / {:.1} MiB \
             (budget {budget_mib} MiB), too large {}, {:.1} s",
            o.hits as f64 / o.requests as f64,
            o.hit_bytes as f64 / o.bytes as f64,
            o.held_entries,
            o.held_bytes as f64 / (1 << 20) as f64,
            o.too_large,
            started.elapsed().as_secs_f64(),
        );
    }
}
