use memocache::{Cache, memoize};

#[memoize(cache = cache)]
async fn distance(cache: &Cache, (x, y): (i64, i64)) -> i64 {
    x.abs() + y.abs()
}

fn main() {}
