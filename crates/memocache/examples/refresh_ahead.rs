//! Read latency of a hot key under steady reads, with and without refresh
//! ahead: the measurement behind `BENCHMARKS.md` (issue 25).
//!
//! ```text
//! cargo run --release -p memocache --example refresh_ahead [seconds]
//! ```
//!
//! Reads of one key arrive at a fixed rate (open loop: each read is
//! spawned at its scheduled instant, and its latency runs from that
//! instant, so a stalled read does not hide the ones behind it). The key
//! lives 1 s and its load takes 50 ms. Three runs:
//!
//! - `hit`: the key never expires (every read a hit): the floor;
//! - `expire`: plain expiry: each second, the reads that arrive during the
//!   50 ms load wait for it;
//! - `refresh`: `refresh_ahead(250 ms, ...)`: a hit in the last 250 ms of
//!   the key's life reloads it in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use memocache::{Cache, Memo};
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(1);
const LOAD: Duration = Duration::from_millis(50);
const WINDOW: Duration = Duration::from_millis(250);
/// 2,000 reads a second.
const PERIOD: Duration = Duration::from_micros(500);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Hit,
    Expire,
    Refresh,
}

/// The source: 50 ms per load, counted.
fn loader(
    loads: &Arc<AtomicU64>,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = u64> + Send>> + Send + Sync + Clone + 'static
{
    let loads = Arc::clone(loads);
    move |key| {
        let loads = Arc::clone(&loads);
        Box::pin(async move {
            tokio::time::sleep(LOAD).await;
            loads.fetch_add(1, Ordering::Relaxed);
            key
        })
    }
}

async fn run(mode: Mode, seconds: u64) -> (Vec<Duration>, u64) {
    let cache = Cache::memory();
    let loads = Arc::new(AtomicU64::new(0));
    let load = loader(&loads);
    let builder = Memo::<u64, u64>::builder("hot");
    let builder = match mode {
        Mode::Hit => builder.no_timeout(),
        Mode::Expire => builder.timeout(TIMEOUT),
        Mode::Refresh => builder.timeout(TIMEOUT).refresh_ahead(WINDOW, load.clone()),
    };
    let memo = Arc::new(builder.build(&cache).expect("memo"));
    memo.get_or_load(&1, || load(1)).await;
    let reads = seconds * 1_000_000 / u64::try_from(PERIOD.as_micros()).expect("period");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..reads {
        let at = start + PERIOD * u32::try_from(i).expect("reads");
        tokio::time::sleep_until(at).await;
        let (memo, load) = (Arc::clone(&memo), load.clone());
        tasks.push(tokio::spawn(async move {
            memo.get_or_load(&1, || load(1)).await;
            at.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await.expect("read"));
    }
    latencies.sort_unstable();
    (latencies, loads.load(Ordering::Relaxed))
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let last = sorted.len() - 1;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((last as f64) * q).round() as usize;
    sorted[index]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    println!(
        "{seconds} s of reads every {PERIOD:?} of one key (timeout {TIMEOUT:?}, load {LOAD:?})"
    );
    println!("mode      reads   loads  p50        p99        p99.9      max");
    for (mode, name) in [
        (Mode::Hit, "hit"),
        (Mode::Expire, "expire"),
        (Mode::Refresh, "refresh"),
    ] {
        let (latencies, loads) = run(mode, seconds).await;
        println!(
            "{name:<8} {:>6} {:>7}  {:<10?} {:<10?} {:<10?} {:?}",
            latencies.len(),
            loads,
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99),
            quantile(&latencies, 0.999),
            latencies[latencies.len() - 1],
        );
    }
}
