use memocache::{Cache, memoize};

#[memoize(cache = cache)]
async fn describe<T: serde::Serialize + std::fmt::Debug>(cache: &Cache, value: T) -> String {
    format!("{value:?}")
}

fn main() {}
