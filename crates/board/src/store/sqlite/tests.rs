//! Tests of the SQLite store: migrations, counters, quota totals and
//! query plans (every page an index range).

use super::*;
use crate::store::Position;

fn user(id: &str, name: &str) -> User {
    User {
        id: id.into(),
        username: name.into(),
        created_at: 1,
    }
}

#[tokio::test]
async fn users_are_unique_by_name_without_case() {
    let db = Sqlite::open(":memory:").expect("open");
    UserStore::create(&db, &user("a", "Ada"), "h")
        .await
        .expect("first");
    let again = UserStore::create(&db, &user("b", "ada"), "h").await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    let found = db.credentials("ADA").await.expect("query").expect("found");
    assert_eq!(found.user.id, "a");
}

#[tokio::test]
async fn sessions_of_a_user_are_removed_except_one() {
    let db = Sqlite::open(":memory:").expect("open");
    UserStore::create(&db, &user("u", "ada"), "h")
        .await
        .expect("user");
    for hash in ["s1", "s2", "s3"] {
        let record = SessionRecord {
            token_hash: hash.into(),
            user_id: "u".into(),
            created_at: 0,
            expires_at: 10,
        };
        SessionStore::create(&db, &record).await.expect("session");
    }
    let mut removed = db.delete_for_user("u", Some("s2")).await.expect("delete");
    removed.sort();
    assert_eq!(removed, ["s1", "s3"]);
    assert!(SessionStore::get(&db, "s2").await.expect("get").is_some());
}

/// Every page query is an index range in listing order: no table scan,
/// no sort, whatever the table's size.
#[tokio::test]
async fn pages_are_index_ranges() {
    let db = Sqlite::open(":memory:").expect("open");
    db.call(|conn| {
        check_plans(conn);
        Ok(())
    })
    .await
    .expect("plans");
}

fn check_plans(conn: &Connection) {
    let place = Position {
        created_at: 5,
        id: "0".repeat(32),
    };
    for listing in [Listing::All, Listing::User("u".into())] {
        for bound in [
            Bound::Newest,
            Bound::Older(place.clone()),
            Bound::Newer(place.clone()),
        ] {
            let filter = match &listing {
                Listing::All => "",
                Listing::User(_) => "user_id = 'u' AND ",
            };
            let (range, order) = match bound {
                Bound::Newest => ("1", "DESC"),
                Bound::Older(_) => ("(created_at, id) < (5, 'x')", "DESC"),
                Bound::Newer(_) => ("(created_at, id) > (5, 'x')", "ASC"),
            };
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT {MESSAGE_COLUMNS} FROM messages WHERE {filter}{range} \
                 ORDER BY created_at {order}, id {order} LIMIT 51"
            );
            let plan: Vec<String> = conn
                .prepare(&sql)
                .expect("plan")
                .query_map([], |row| row.get::<_, String>(3))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("plan rows");
            let plan = plan.join(" | ");
            assert!(
                plan.contains("USING INDEX messages_"),
                "{listing:?} {bound:?}: {plan}"
            );
            assert!(
                !plan.contains("TEMP B-TREE"),
                "{listing:?} {bound:?}: {plan}"
            );
        }
    }
}

fn message(id: &str, user: &str, at: i64) -> Message {
    Message {
        id: id.into(),
        user_id: user.into(),
        author: "a".into(),
        location: String::new(),
        description: "d".into(),
        image: format!("{id}.jpg"),
        thumbnail: format!("{id}_t.jpg"),
        created_at: at,
    }
}

#[tokio::test]
async fn counters_follow_inserts_and_deletes_by_any_path() {
    let db = Sqlite::open(":memory:").expect("open");
    for (id, name) in [("u", "ada"), ("v", "bob")] {
        UserStore::create(&db, &user(id, name), "h")
            .await
            .expect("user");
    }
    db.insert(&message("m1", "u", 1)).await.expect("insert");
    db.insert_many(&[message("m2", "u", 2), message("m3", "v", 3)])
        .await
        .expect("batch");
    // A row written by hand is counted too (the counters are triggers).
    db.call(|c| {
        c.execute(
            "INSERT INTO messages (id, user_id, author, location, description, image, thumbnail, created_at)
             VALUES ('m4', 'v', 'a', '', 'd', 'm4.jpg', 'm4_t.jpg', 4)",
            [],
        )
    })
    .await
    .expect("raw insert");
    assert_eq!(
        MessageStore::count(&db, &Listing::All).await.expect("all"),
        4
    );
    assert_eq!(
        MessageStore::count(&db, &Listing::User("u".into()))
            .await
            .expect("u"),
        2
    );
    assert!(MessageStore::delete(&db, "m1").await.expect("delete"));
    assert!(!MessageStore::delete(&db, "m1").await.expect("again"));
    assert_eq!(
        MessageStore::count(&db, &Listing::All).await.expect("all"),
        3
    );
    assert_eq!(
        MessageStore::count(&db, &Listing::User("u".into()))
            .await
            .expect("u"),
        1
    );
    assert_eq!(
        MessageStore::count(&db, &Listing::User("w".into()))
            .await
            .expect("w"),
        0
    );
    let found = db.by_image("m3.jpg").await.expect("by image");
    assert_eq!(found.map(|m| m.id), Some("m3".to_owned()));
    assert!(db.by_image("m3_t.jpg").await.expect("thumb").is_none());
    let page = db
        .page(&Listing::User("v".into()), &Bound::Newest, 1)
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["m4"]
    );
}

#[test]
fn reopening_does_not_migrate_twice() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("nested/board.sqlite");
    let path = path.to_str().expect("utf-8");
    let version = || -> usize {
        rusqlite::Connection::open(path)
            .and_then(|c| c.query_row("PRAGMA user_version", [], |row| row.get(0)))
            .expect("user_version")
    };
    drop(Sqlite::open(path).expect("first open"));
    assert_eq!(version(), MIGRATIONS.len(), "every migration ran once");
    // A second open finds them done: it runs none (one run twice
    // would fail on its CREATE TABLE) and the version stays.
    drop(Sqlite::open(path).expect("second open"));
    assert_eq!(version(), MIGRATIONS.len());
}
