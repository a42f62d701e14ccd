// A forget with an argument of the wrong type does not compile (where
// Flask-Caching's `delete_memoized(load_user, "7")` forgets nothing).
use memocache::{Cache, memoize};

#[memoize(cache = cache, timeout = 600)]
async fn load_user(cache: &Cache, user_id: i64) -> String {
    format!("user {user_id}")
}

async fn logout(cache: &Cache) {
    load_user_forget(cache, "7").await;
}

fn main() {
    let _ = logout;
}
