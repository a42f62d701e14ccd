use memocache::{Cache, memoize};

#[memoize(cache = cache, timeout = 60, timeout_ms = 500)]
async fn square(cache: &Cache, n: u64) -> u64 {
    n * n
}

fn main() {}
