use memocache::{Cache, memoize};

#[memoize(cache = cache, timeot = 60)]
async fn square(cache: &Cache, n: u64) -> u64 {
    n * n
}

fn main() {}
