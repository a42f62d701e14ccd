use memocache::{Cache, memoize};

#[memoize(cache = cache, timeout = "600")]
async fn quoted(cache: &Cache, n: u64) -> u64 {
    n
}

#[memoize(cache = cache, timeout = 1.5)]
async fn fractional(cache: &Cache, n: u64) -> u64 {
    n
}

#[memoize(cache = cache, timeout_ms = -1)]
async fn negative(cache: &Cache, n: u64) -> u64 {
    n
}

fn main() {}
