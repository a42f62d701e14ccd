// The helpers `#[memoize]` calls take the key as checked parts: a user
// reaching for them with a key of another type is refused too.
use memocache::__private::Part;
use memocache::{Cache, Memo};

async fn logout(cache: &Cache) {
    let users: Memo<i64, String> = Memo::builder("load_user").build(cache).unwrap();
    users.__forget_by(Part::str("7")).await;
    let pages: Memo<(i64, u32), String> = Memo::builder("pages").grouped().build(cache).unwrap();
    pages.__forget_by((Part::<u32, u32>::of(&2), Part::<i64, i64>::of(&7))).await;
    pages.__forget_group_by(Part::str("7")).await;
}

fn main() {
    let _ = logout;
}
