use memocache::{Cache, memoize};

#[memoize(cache = cache)]
async fn describe(cache: &Cache, value: impl std::fmt::Display) -> String {
    value.to_string()
}

fn main() {}
