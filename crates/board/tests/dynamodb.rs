//! The DynamoDB stores against a real `dynalite` (no mocks): `board migrate`,
//! every store call compared with SQLite's answers, pagination past 1 MB,
//! and a dead endpoint. Each test has its own server and table prefix.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use board::store::dynamo::Dynamo;
use board::store::sqlite::Sqlite;
use board::store::{
    Message, MessageStore, OpenError, SessionRecord, SessionStore, StoreError, Stores, User,
    UserStore,
};
use testkit::Dynalite;

fn url(dynamo: &Dynalite, prefix: &str) -> String {
    format!(
        "dynamodb://us-east-1?endpoint={}&prefix={prefix}",
        dynamo.endpoint()
    )
}

/// A server with migrated tables and the stores on it.
async fn migrated(prefix: &str) -> (Dynalite, String, Stores) {
    let dynamo = Dynalite::start();
    let url = url(&dynamo, prefix);
    board::store::migrate(&url)
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}\n{}", dynamo.log()));
    let stores = Stores::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open: {e}\n{}", dynamo.log()));
    (dynamo, url, stores)
}

fn user(id: &str, name: &str) -> User {
    User {
        id: id.into(),
        username: name.into(),
        created_at: 1_700_000_000_000,
    }
}

/// A SQLite database in memory (the reference behaviour) with users `u`
/// (ada) and `v` (bob), whom its foreign keys require.
async fn sqlite_with_ada_and_bob() -> Sqlite {
    let sqlite = Sqlite::open(":memory:").expect("sqlite");
    for (id, name) in [("u", "ada"), ("v", "bob")] {
        UserStore::create(&sqlite, &user(id, name), "h")
            .await
            .expect("user");
    }
    sqlite
}

fn message(id: &str, user_id: &str, created_at: i64, description: &str) -> Message {
    Message {
        id: id.into(),
        user_id: user_id.into(),
        author: format!("author of {id}"),
        location: if created_at % 2 == 0 {
            String::new()
        } else {
            "Lisbon".into()
        },
        description: description.into(),
        image: format!("{id}.jpg"),
        thumbnail: format!("{id}_thumb.jpg"),
        created_at,
    }
}

/// The order pages show (`MessageList::build`): newest first, ties by id.
fn newest_first(mut messages: Vec<Message>) -> Vec<Message> {
    messages.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    messages
}

#[tokio::test]
async fn migrate_is_idempotent_and_open_without_tables_says_to_run_it() {
    let dynamo = Dynalite::start();
    let url = url(&dynamo, "mig_");

    let Err(OpenError::Database(message)) = Stores::open(&url).await else {
        panic!("opened without tables");
    };
    assert!(
        message.contains("table mig_users does not exist")
            && message.contains("board migrate --database-url 'dynamodb://"),
        "{message}"
    );

    let first = board::store::migrate(&url).await.expect("first migrate");
    assert_eq!(
        first,
        "created table mig_users\n\
         created table mig_sessions with index by_user\n\
         created table mig_messages with index by_time, by_user"
    );
    let second = board::store::migrate(&url).await.expect("second migrate");
    assert_eq!(
        second,
        "table mig_users already exists\n\
         table mig_sessions already exists\n\
         table mig_messages already exists"
    );
    Stores::open(&url).await.expect("open after migrate");

    // Another prefix on the same server is another board.
    let other = format!(
        "dynamodb://us-east-1?endpoint={}&prefix=other_",
        dynamo.endpoint()
    );
    assert!(Stores::open(&other).await.is_err());
}

#[tokio::test]
async fn malformed_urls_are_url_errors() {
    for url in [
        "dynamodb://",
        "dynamodb://eu-west-1?endpoint=not a url",
        "dynamodb://eu-west-1?colour=blue",
    ] {
        let result = Stores::open(url).await;
        assert!(matches!(result, Err(OpenError::Url(_))), "{url}");
    }
}

#[tokio::test]
async fn users_match_sqlite() {
    let (_dynamo, _url, stores) = migrated("users_").await;
    let sqlite = Sqlite::open(":memory:").expect("sqlite");
    let dynamo = &stores.users;

    for store in [dynamo.as_ref(), &sqlite as &dyn UserStore] {
        store
            .create(&user("u1", "Ada"), "hash-1")
            .await
            .expect("create");
        store
            .create(&user("u2", "grace"), "hash-2")
            .await
            .expect("create");
    }
    for store in [dynamo.as_ref(), &sqlite as &dyn UserStore] {
        let again = store.create(&user("u3", "ADA"), "h").await;
        assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    }
    // The failed create left nothing behind: the id is free for another name.
    dynamo
        .create(&user("u3", "Linus"), "hash-3")
        .await
        .expect("the id of a refused create stays free");
    UserStore::create(&sqlite, &user("u3", "Linus"), "hash-3")
        .await
        .expect("sqlite");

    for name in ["ada", "ADA", "aDa"] {
        let d = dynamo.credentials(name).await.expect("credentials");
        let s = sqlite.credentials(name).await.expect("credentials");
        let (d, s) = (d.expect("found"), s.expect("found"));
        assert_eq!(d.user, s.user);
        assert_eq!(d.user.username, "Ada");
        assert_eq!(d.password_hash, "hash-1");
    }
    assert!(dynamo.credentials("nobody").await.expect("query").is_none());
    assert_eq!(
        dynamo.get("u2").await.expect("get"),
        UserStore::get(&sqlite, "u2").await.expect("get")
    );
    assert!(dynamo.get("missing").await.expect("get").is_none());
    assert!(
        dynamo.get("username#ada").await.expect("get").is_none(),
        "claim items are not users"
    );

    dynamo.set_password("u2", "new").await.expect("set");
    assert_eq!(
        dynamo.password_hash("u2").await.expect("hash").as_deref(),
        Some("new")
    );
    dynamo
        .set_password("missing", "x")
        .await
        .expect("a no-op, as in SQLite");
    assert!(dynamo.get("missing").await.expect("get").is_none());

    assert_eq!(dynamo.count().await.expect("count"), 3);
    assert_eq!(UserStore::count(&sqlite).await.expect("count"), 3);
}

#[tokio::test]
async fn sessions_match_sqlite() {
    let (_dynamo, _url, stores) = migrated("sess_").await;
    let sqlite = sqlite_with_ada_and_bob().await;
    let sessions = &stores.sessions;
    for store in [sessions.as_ref(), &sqlite as &dyn SessionStore] {
        for (hash, user_id) in [("s1", "u"), ("s2", "u"), ("s3", "u"), ("t1", "v")] {
            let record = SessionRecord {
                token_hash: hash.into(),
                user_id: user_id.into(),
                created_at: 5,
                expires_at: 10,
            };
            store.create(&record).await.expect("session");
        }
    }
    assert_eq!(
        sessions.get("s1").await.expect("get"),
        SessionStore::get(&sqlite, "s1").await.expect("get")
    );
    assert_eq!(
        sessions.get("s1").await.expect("get").map(|s| s.expires_at),
        Some(10)
    );

    sessions.delete("s1").await.expect("delete");
    assert!(sessions.get("s1").await.expect("get").is_none());
    SessionStore::delete(&sqlite, "s1").await.expect("delete");

    let mut removed = sessions
        .delete_for_user("u", Some("s2"))
        .await
        .expect("delete_for_user");
    removed.sort();
    let mut expected = sqlite
        .delete_for_user("u", Some("s2"))
        .await
        .expect("delete_for_user");
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(removed, ["s3"]);
    assert!(sessions.get("s2").await.expect("get").is_some());
    assert!(sessions.get("t1").await.expect("get").is_some());

    let removed = sessions.delete_for_user("u", None).await.expect("all");
    assert_eq!(removed, ["s2"]);
    assert!(sessions.get("s2").await.expect("get").is_none());
}

/// Item `key = value` of `table`, read strongly consistently behind the
/// store's back.
async fn raw_item(
    db: &Dynamo,
    table: &str,
    key: &str,
    value: &str,
) -> Option<HashMap<String, AttributeValue>> {
    db.client()
        .get_item()
        .table_name(table)
        .key(key, AttributeValue::S(value.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key} = {value} from {table}: {e}"))
        .item
}

/// The hashes in user `id`'s session set, sorted.
async fn session_set(db: &Dynamo, table: &str, id: &str) -> Vec<String> {
    let item = raw_item(db, table, "id", id).await;
    let mut set = match item.and_then(|mut item| item.remove("sessions")) {
        Some(AttributeValue::Ss(set)) => set,
        None => Vec::new(),
        Some(other) => panic!("sessions of {id}: {other:?}"),
    };
    set.sort();
    set
}

/// "Log out everywhere" must not depend on the `by_user` index, which lags
/// on AWS: a session the index does not show yet is still found through
/// the user's strongly consistent session set, and removed.
#[tokio::test]
async fn logging_out_everywhere_reaches_sessions_the_index_does_not_show() {
    let (_dynamo, url, stores) = migrated("lag_").await;
    let db = Dynamo::open(&url).await.expect("open");
    stores
        .users
        .create(&user("u", "ada"), "h")
        .await
        .expect("user");
    let sessions = &stores.sessions;
    for hash in ["s1", "s2"] {
        let record = SessionRecord {
            token_hash: hash.into(),
            user_id: "u".into(),
            created_at: 5,
            expires_at: 10,
        };
        sessions.create(&record).await.expect("session");
    }
    assert_eq!(session_set(&db, "lag_users", "u").await, ["s1", "s2"]);
    sessions.delete("s1").await.expect("delete");
    assert_eq!(session_set(&db, "lag_users", "u").await, ["s2"]);

    // A session as the index would show it before catching up: the item
    // without `user_id` (so the sparse index leaves it out), listed in the
    // user's set as `create` leaves it.
    db.client()
        .put_item()
        .table_name("lag_sessions")
        .item("token_hash", AttributeValue::S("unindexed".into()))
        .item("created_at", AttributeValue::N("5".into()))
        .item("expires_at", AttributeValue::N("10".into()))
        .send()
        .await
        .expect("raw put");
    db.client()
        .update_item()
        .table_name("lag_users")
        .key("id", AttributeValue::S("u".into()))
        .update_expression("ADD sessions :s")
        .expression_attribute_values(":s", AttributeValue::Ss(vec!["unindexed".into()]))
        .send()
        .await
        .expect("raw add");

    let mut removed = sessions.delete_for_user("u", None).await.expect("delete");
    removed.sort();
    assert_eq!(removed, ["s2", "unindexed"]);
    assert!(session_set(&db, "lag_users", "u").await.is_empty());
    let left = raw_item(&db, "lag_sessions", "token_hash", "unindexed").await;
    assert!(left.is_none(), "the unindexed session is gone");

    // A session of a user who does not exist creates no user item.
    let stray = SessionRecord {
        token_hash: "stray".into(),
        user_id: "nobody".into(),
        created_at: 5,
        expires_at: 10,
    };
    sessions.create(&stray).await.expect("session");
    assert!(stores.users.get("nobody").await.expect("get").is_none());
    assert_eq!(stores.users.count().await.expect("count"), 1);
}

#[tokio::test]
async fn messages_match_sqlite() {
    let (_dynamo, _url, stores) = migrated("msg_").await;
    let sqlite = sqlite_with_ada_and_bob().await;
    let dynamo = &stores.messages;
    // Two pairs share a time: ties are ordered by id.
    let all = [
        message("m1", "u", 100, "first"),
        message("m2", "v", 200, "second"),
        message("m3", "u", 200, "third"),
        message("m4", "u", 300, ""),
        message("m5", "v", 50, "early"),
    ];
    for store in [dynamo.as_ref(), &sqlite as &dyn MessageStore] {
        for m in &all {
            store.insert(m).await.expect("insert");
        }
        let again = store.insert(&all[0]).await;
        assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    }

    let from_sqlite = newest_first(MessageStore::all(&sqlite).await.expect("all"));
    let from_dynamo = dynamo.all().await.expect("all");
    assert_eq!(from_dynamo, from_sqlite);
    let ids: Vec<_> = from_dynamo.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m4", "m3", "m2", "m1", "m5"]);
    assert_eq!(
        dynamo.by_user("u").await.expect("by_user"),
        newest_first(sqlite.by_user("u").await.expect("by_user"))
    );
    assert!(dynamo.by_user("nobody").await.expect("by_user").is_empty());

    assert_eq!(
        dynamo.get("m4").await.expect("get"),
        MessageStore::get(&sqlite, "m4").await.expect("get")
    );
    assert_eq!(
        dynamo.get("m4").await.expect("get").map(|m| m.description),
        Some(String::new()),
        "empty strings survive"
    );
    assert!(dynamo.get("nope").await.expect("get").is_none());

    assert!(dynamo.delete("m3").await.expect("delete"));
    assert!(!dynamo.delete("m3").await.expect("delete again"));
    assert!(MessageStore::delete(&sqlite, "m3").await.expect("delete"));
    assert_eq!(
        dynamo.all().await.expect("all"),
        newest_first(MessageStore::all(&sqlite).await.expect("all"))
    );
}

/// 1,200 messages of about 1 KiB are more than one 1 MB page: `all()` and
/// `by_user()` must follow `LastEvaluatedKey` to return every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listings_follow_every_page() {
    const COUNT: usize = 1_200;
    let (_dynamo, url, stores) = migrated("page_").await;
    let filler = "x".repeat(1_024);

    let started = Instant::now();
    let mut expected = Vec::with_capacity(COUNT);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..COUNT {
        let m = message(
            &format!("m{i:05}"),
            "u",
            1_000 + i64::try_from(i % 700).expect("small"),
            &format!("{i} {filler}"),
        );
        expected.push(m.clone());
        let messages = Arc::clone(&stores.messages);
        tasks.spawn(async move { messages.insert(&m).await });
        if tasks.len() >= 32 {
            tasks
                .join_next()
                .await
                .expect("task")
                .expect("join")
                .expect("insert");
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("join").expect("insert");
    }
    let inserted = started.elapsed();

    let started = Instant::now();
    let all = stores.messages.all().await.expect("all");
    let listed = started.elapsed();
    let expected = newest_first(expected);
    assert_eq!(all.len(), COUNT);
    assert!(all == expected, "all() is not every message newest first");
    let mine = stores.messages.by_user("u").await.expect("by_user");
    assert_eq!(mine.len(), COUNT);
    assert!(
        mine == expected,
        "by_user() is not every message newest first"
    );

    // One raw Query is not enough: the proof that paging was needed.
    let db = Dynamo::open(&url).await.expect("open");
    for (index, key) in [("by_time", "feed"), ("by_user", "user_id")] {
        let value = if key == "feed" { "all" } else { "u" };
        let page = db
            .client()
            .query()
            .table_name("page_messages")
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", AttributeValue::S(value.into()))
            .scan_index_forward(false)
            .send()
            .await
            .expect("query");
        assert!(
            page.last_evaluated_key.is_some(),
            "{index}: one page held everything"
        );
        assert!(
            usize::try_from(page.count).expect("count") < COUNT,
            "{index}: {}",
            page.count
        );
    }
    eprintln!("pagination: {COUNT} inserts in {inserted:?}, all() of {COUNT} in {listed:?}");
}

/// A dead endpoint fails within the operation timeout with a readable
/// `Backend` error. dynalite keeps its data in memory, so "nothing lost
/// after a restart" cannot be checked here: after the restart the tables
/// are gone, and calls say to run `board migrate`.
#[tokio::test]
async fn a_dead_endpoint_fails_in_bounded_time() {
    let (mut dynamo, _url, stores) = migrated("dead_").await;
    stores
        .messages
        .insert(&message("m1", "u", 1, "hello"))
        .await
        .expect("insert");

    dynamo.stop();
    let started = Instant::now();
    let result = stores.messages.get("m1").await;
    let took = started.elapsed();
    let Err(StoreError::Backend(message)) = result else {
        panic!("{result:?}");
    };
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(
        message.contains("dead_messages") && message.contains("GetItem"),
        "{message}"
    );
    assert!(!message.contains("SdkError"), "a Debug dump: {message}");

    dynamo.restart();
    let result = stores.messages.get("m1").await;
    let Err(StoreError::Backend(message)) = result else {
        panic!("{result:?}");
    };
    assert!(
        message.contains("dead_messages does not exist") && message.contains("board migrate"),
        "{message}"
    );
}

/// Watermark `id` of table `table`, read strongly consistently (`None`
/// when missing).
async fn watermark(db: &Dynamo, table: &str, id: &str) -> Option<i64> {
    match raw_item(db, table, "message_id", id).await?.get("n") {
        Some(AttributeValue::N(n)) => Some(n.parse().expect("a number")),
        other => panic!("watermark {id}: {other:?}"),
    }
}

/// Sets watermark `id` to `n`, behind the store's back.
async fn set_watermark(db: &Dynamo, table: &str, id: &str, n: i64) {
    db.client()
        .put_item()
        .table_name(table)
        .item("message_id", AttributeValue::S(id.into()))
        .item("n", AttributeValue::N(n.to_string()))
        .send()
        .await
        .expect("put watermark");
}

/// Writes `m` as `insert` does but without touching the watermarks: what
/// the index shows once it catches up with a write already counted.
async fn put_raw(db: &Dynamo, table: &str, m: &Message) {
    db.client()
        .put_item()
        .table_name(table)
        .item("message_id", AttributeValue::S(m.id.clone()))
        .item("feed", AttributeValue::S("all".into()))
        .item("user_id", AttributeValue::S(m.user_id.clone()))
        .item("created_at", AttributeValue::N(m.created_at.to_string()))
        .item("author", AttributeValue::S(m.author.clone()))
        .item("image", AttributeValue::S(m.image.clone()))
        .item("thumbnail", AttributeValue::S(m.thumbnail.clone()))
        .send()
        .await
        .expect("raw put");
}

#[tokio::test]
async fn watermarks_follow_inserts_and_deletes() {
    let (_dynamo, url, stores) = migrated("wm_").await;
    let db = Dynamo::open(&url).await.expect("open");
    let table = "wm_messages";
    let messages = &stores.messages;
    assert_eq!(
        watermark(&db, table, "count#all").await,
        Some(0),
        "migrate made it"
    );
    assert_eq!(watermark(&db, table, "count#user#u").await, None);

    for m in [
        message("m1", "u", 1, "a"),
        message("m2", "u", 2, "b"),
        message("m3", "v", 3, "c"),
    ] {
        messages.insert(&m).await.expect("insert");
    }
    // A refused insert counts nothing.
    let again = messages.insert(&message("m1", "u", 1, "a")).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    assert_eq!(watermark(&db, table, "count#all").await, Some(3));
    assert_eq!(watermark(&db, table, "count#user#u").await, Some(2));
    assert_eq!(watermark(&db, table, "count#user#v").await, Some(1));

    assert!(messages.delete("m1").await.expect("delete"));
    assert!(!messages.delete("m1").await.expect("delete again"));
    assert!(!messages.delete("missing").await.expect("delete missing"));
    assert!(!messages.delete("count#all").await.expect("not a message"));
    assert_eq!(watermark(&db, table, "count#all").await, Some(2));
    assert_eq!(watermark(&db, table, "count#user#u").await, Some(1));
    assert_eq!(watermark(&db, table, "count#user#v").await, Some(1));

    // Watermarks are not messages, wherever one looks.
    let ids: Vec<_> = messages
        .all()
        .await
        .expect("all")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["m3", "m2"]);
    assert_eq!(messages.by_user("u").await.expect("mine").len(), 1);
    for id in ["count#all", "count#user#u"] {
        assert!(messages.get(id).await.expect("get").is_none(), "{id}");
        assert!(messages.by_user(id).await.expect("by_user").is_empty());
    }

    // Nothing to correct: migrate says only what it always says.
    let report = board::store::migrate(&url).await.expect("migrate");
    assert!(!report.contains("recounted"), "{report}");
}

/// A table made before watermarks: nothing is counted until `board
/// migrate` recounts, which also heals a watermark that drifted.
#[tokio::test]
async fn migrate_recounts_watermarks() {
    let (_dynamo, url, stores) = migrated("rc_").await;
    let db = Dynamo::open(&url).await.expect("open");
    let table = "rc_messages";
    db.client()
        .delete_item()
        .table_name(table)
        .key("message_id", AttributeValue::S("count#all".into()))
        .send()
        .await
        .expect("forget the watermark");
    for m in [
        message("m1", "u", 1, "a"),
        message("m2", "u", 2, "b"),
        message("m3", "v", 3, "c"),
    ] {
        stores.messages.insert(&m).await.expect("insert");
    }
    assert!(stores.messages.delete("m3").await.expect("delete"));
    assert_eq!(watermark(&db, table, "count#all").await, None);
    assert_eq!(watermark(&db, table, "count#user#u").await, None);
    assert_eq!(watermark(&db, table, "count#user#v").await, None);
    let started = Instant::now();
    assert_eq!(stores.messages.all().await.expect("all").len(), 2);
    assert!(started.elapsed() < Duration::from_millis(500), "unchecked");

    let report = board::store::migrate(&url).await.expect("migrate");
    assert!(
        report.ends_with("recounted rc_messages: corrected 2 listing watermarks"),
        "{report}"
    );
    assert_eq!(watermark(&db, table, "count#all").await, Some(2));
    assert_eq!(watermark(&db, table, "count#user#u").await, Some(2));
    assert_eq!(watermark(&db, table, "count#user#v").await, None);

    // Drift (a crash between a write and its watermark) is healed.
    set_watermark(&db, table, "count#all", 7).await;
    set_watermark(&db, table, "count#user#v", 1).await;
    let report = board::store::migrate(&url).await.expect("migrate");
    assert!(
        report.contains("corrected 2 listing watermarks"),
        "{report}"
    );
    assert_eq!(watermark(&db, table, "count#all").await, Some(2));
    assert_eq!(watermark(&db, table, "count#user#v").await, Some(0));
    stores
        .messages
        .insert(&message("m4", "v", 4, "d"))
        .await
        .expect("insert");
    assert_eq!(watermark(&db, table, "count#all").await, Some(3));
    assert_eq!(watermark(&db, table, "count#user#v").await, Some(1));
}

/// The index "lags": the watermark already counts a message the index does
/// not show yet. `all()` and `by_user()` wait for it.
#[tokio::test]
async fn a_lagging_index_is_waited_for() {
    let (_dynamo, url, stores) = migrated("lag_").await;
    let db = Arc::new(Dynamo::open(&url).await.expect("open"));
    let table = "lag_messages";
    stores
        .messages
        .insert(&message("m1", "u", 1, "a"))
        .await
        .expect("insert");

    for (listing, id) in [("all", "count#all"), ("by_user", "count#user#u")] {
        let n = watermark(&db, table, id).await.expect("watermark");
        set_watermark(&db, table, "count#all", n + 1).await;
        set_watermark(&db, table, "count#user#u", n + 1).await;
        let late = message(&format!("late_{listing}"), "u", 10 + n, "late");
        let writer = {
            let (db, late) = (Arc::clone(&db), late.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                put_raw(&db, table, &late).await;
            })
        };
        let started = Instant::now();
        let listed = if listing == "all" {
            stores.messages.all().await
        } else {
            stores.messages.by_user("u").await
        }
        .expect("listing");
        let took = started.elapsed();
        writer.await.expect("writer");
        assert_eq!(
            listed.first().map(|m| m.id.as_str()),
            Some(late.id.as_str())
        );
        assert_eq!(listed.len(), usize::try_from(n + 1).expect("small"));
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(5),
            "{listing} took {took:?}"
        );
    }
}

/// A watermark that never matches (drift) costs the wait, not an error or
/// a hang: the listing is what the index has.
#[tokio::test]
async fn a_watermark_that_never_matches_gives_up_after_the_budget() {
    let (_dynamo, url, stores) = migrated("drift_").await;
    let db = Dynamo::open(&url).await.expect("open");
    let table = "drift_messages";
    stores
        .messages
        .insert(&message("m1", "u", 1, "a"))
        .await
        .expect("insert");
    set_watermark(&db, table, "count#all", 5).await;
    set_watermark(&db, table, "count#user#u", 0).await;

    for listing in ["all", "by_user"] {
        let started = Instant::now();
        let listed = if listing == "all" {
            stores.messages.all().await
        } else {
            stores.messages.by_user("u").await
        }
        .expect("listing");
        let took = started.elapsed();
        assert_eq!(listed.len(), 1, "{listing}");
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(5),
            "{listing} took {took:?}"
        );
    }
}
