use memocache::{Cache, memoize};

struct Db;

#[memoize(cache = cache, skip(database))]
async fn load(cache: &Cache, db: &Db, id: u64) -> u64 {
    let _ = db;
    id
}

#[memoize(cache = cache, skip(self))]
async fn free(cache: &Cache, id: u64) -> u64 {
    id
}

fn main() {}
