use memocache::memoize;

#[memoize(timeout = 60)]
async fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
