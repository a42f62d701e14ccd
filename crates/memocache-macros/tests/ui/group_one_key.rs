use memocache::{Cache, memoize};

#[memoize(cache = cache, group)]
fn square(cache: &Cache, n: u64) -> u64 {
    n * n
}

fn main() {}
