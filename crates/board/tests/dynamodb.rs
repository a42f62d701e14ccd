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
    Bound, Listing, Message, MessageStore, OpenError, Position, SessionRecord, SessionStore,
    StoreError, Stores, User, UserStore,
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
         created table mig_messages with index by_time, by_user\n\
         created table mig_outbox"
    );
    let second = board::store::migrate(&url).await.expect("second migrate");
    assert_eq!(
        second,
        "table mig_users already exists\n\
         table mig_sessions already exists\n\
         table mig_messages already exists\n\
         table mig_outbox already exists"
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

/// OpenID identities (issuer + sub → user) and renames behave alike, and
/// neither kind of helper item is counted as a user.
#[tokio::test]
async fn identities_and_renames_match_sqlite() {
    let (_dynamo, _url, stores) = migrated("ident_").await;
    let sqlite = Sqlite::open(":memory:").expect("sqlite");
    let dynamo = &stores.users;
    let issuer = "https://accounts.google.com";
    for store in [dynamo.as_ref(), &sqlite as &dyn UserStore] {
        store.create(&user("u1", "Ada"), "h").await.expect("create");
        store.create(&user("u2", "bob"), "h").await.expect("create");
        assert_eq!(store.identity(issuer, "123").await.expect("get"), None);
        store
            .link_identity(issuer, "123", "u1")
            .await
            .expect("link");
        let again = store.link_identity(issuer, "123", "u2").await;
        assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
        store
            .link_identity("https://other.example", "123", "u2")
            .await
            .expect("another issuer's 123 is another account");
        assert_eq!(
            store.identity(issuer, "123").await.expect("get").as_deref(),
            Some("u1")
        );

        let taken = store.rename("u2", "ADA").await;
        assert!(matches!(taken, Err(StoreError::Conflict)), "{taken:?}");
        store
            .rename("u1", "ada")
            .await
            .expect("same name, other case");
        store.rename("u1", "Lovelace").await.expect("rename");
        assert_eq!(
            store.get("u1").await.expect("get").map(|u| u.username),
            Some("Lovelace".to_owned())
        );
        assert!(store.credentials("lovelace").await.expect("c").is_some());
        assert!(store.credentials("ada").await.expect("c").is_none());
        // The old name is free again; the refused rename left bob as he was.
        store
            .create(&user("u3", "ADA"), "h")
            .await
            .expect("old name free");
        assert!(store.credentials("bob").await.expect("c").is_some());
        store.rename("missing", "nobody").await.expect("a no-op");
        assert_eq!(store.count().await.expect("count"), 3);
    }
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

/// Records `field` = `value` on watermark `id` behind the store's back, as
/// a write would (`last` = `"<created_at>:<id>"`, `gone` = an id).
async fn set_mark_field(db: &Dynamo, table: &str, id: &str, field: &str, value: &str) {
    db.client()
        .update_item()
        .table_name(table)
        .key("message_id", AttributeValue::S(id.into()))
        .update_expression("SET #f = :v")
        .expression_attribute_names("#f", field)
        .expression_attribute_values(":v", AttributeValue::S(value.into()))
        .send()
        .await
        .expect("update watermark");
}

/// Both watermarks a message of user `u` moves.
const MARKS_OF_U: [&str; 2] = ["count#all", "count#user#u"];

fn listings_of_u() -> [Listing; 2] {
    [Listing::All, Listing::User("u".into())]
}

/// The index "lags": the watermark already names a message the index does
/// not show yet, or still shows a removed one. A first page waits for it.
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

    for (i, listing) in listings_of_u().into_iter().enumerate() {
        // An addition counted, not yet in the index.
        let late = message(
            &format!("late{i}"),
            "u",
            10 + i64::try_from(i).expect("small"),
            "",
        );
        // In the table (a strongly consistent read finds it), not yet in
        // the indexes: the item without its index keys.
        db.client()
            .put_item()
            .table_name(table)
            .item("message_id", AttributeValue::S(late.id.clone()))
            .item("created_at", AttributeValue::N(late.created_at.to_string()))
            .send()
            .await
            .expect("raw put");
        for id in MARKS_OF_U {
            let last = format!("{}:{}", late.created_at, late.id);
            set_mark_field(&db, table, id, "last", &last).await;
        }
        // The gate: the index catches up once the reader is seen waiting
        // for it, however slow either side runs.
        let writer = {
            let (db, late) = (Arc::clone(&db), late.clone());
            let waited = db.lag_waits();
            tokio::spawn(async move {
                until_waiting(&db, waited).await;
                put_raw(&db, table, &late).await;
            })
        };
        let waited = db.lag_waits();
        let page = db.page(&listing, &Bound::Newest, 10).await.expect("page");
        writer.await.expect("writer");
        assert_eq!(page.first().map(|m| m.id.as_str()), Some(late.id.as_str()));
        assert!(
            db.lag_waits() > waited,
            "{listing:?}: the page did not wait"
        );

        // A removal recorded, still in the index.
        for id in MARKS_OF_U {
            set_mark_field(&db, table, id, "gone", &late.id).await;
        }
        let remover = {
            let (db, id) = (Arc::clone(&db), late.id.clone());
            let waited = db.lag_waits();
            tokio::spawn(async move {
                until_waiting(&db, waited).await;
                db.client()
                    .delete_item()
                    .table_name(table)
                    .key("message_id", AttributeValue::S(id))
                    .send()
                    .await
                    .expect("raw delete");
            })
        };
        let waited = db.lag_waits();
        let page = db.page(&listing, &Bound::Newest, 10).await.expect("page");
        remover.await.expect("remover");
        assert!(
            page.iter().all(|m| m.id != late.id),
            "{listing:?}: {page:?}"
        );
        assert!(
            db.lag_waits() > waited,
            "{listing:?}: the page did not wait"
        );
    }
}

/// Returns once a first page read through `db` has found the index
/// lagging since the count was `before` (and is waiting to read again).
async fn until_waiting(db: &Dynamo, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.lag_waits() == before {
        assert!(Instant::now() < deadline, "no reader waited for the index");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Pages the index has caught up with cost no wait: the latest addition
/// on the page, further down a full page, removed again, or removed
/// before the latest removal (which only the table can tell).
#[tokio::test]
async fn pages_of_a_caught_up_index_do_not_wait() {
    let (_dynamo, _url, stores) = migrated("nowait_").await;
    let messages = &stores.messages;
    for i in 1..=4 {
        messages
            .insert(&message(&format!("m{i}"), "u", i, ""))
            .await
            .expect("insert");
    }
    let quick = |listing: Listing, limit: u32, expected: &'static [&'static str]| {
        let messages = Arc::clone(messages);
        async move {
            let started = Instant::now();
            let page = messages
                .page(&listing, &Bound::Newest, limit)
                .await
                .expect("page");
            let took = started.elapsed();
            let ids: Vec<_> = page.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(ids, expected, "{listing:?}");
            assert!(
                took < Duration::from_millis(300),
                "{listing:?} took {took:?}"
            );
        }
    };
    for listing in listings_of_u() {
        quick(listing, 2, &["m4", "m3"]).await;
    }
    // The latest addition removed again (`last` = `gone`).
    assert!(messages.delete("m4").await.expect("delete"));
    for listing in listings_of_u() {
        quick(listing, 2, &["m3", "m2"]).await;
    }
    // Another removal since: `last` (m4) is neither on the page nor
    // `gone`; only the table says it no longer exists.
    assert!(messages.delete("m1").await.expect("delete"));
    for listing in listings_of_u() {
        quick(listing, 5, &["m3", "m2"]).await;
    }
}

/// An addition the index never shows (drift, or an item without index
/// keys) costs the wait, not an error or a hang: the page is what the
/// index has. Deeper pages are not checked.
#[tokio::test]
async fn a_page_the_index_never_catches_up_with_gives_up_after_the_budget() {
    let (_dynamo, url, stores) = migrated("drift_").await;
    let db = Dynamo::open(&url).await.expect("open");
    let table = "drift_messages";
    let m1 = message("m1", "u", 1, "a");
    stores.messages.insert(&m1).await.expect("insert");
    // In the table, never in an index: no `feed`, no `user_id`.
    db.client()
        .put_item()
        .table_name(table)
        .item("message_id", AttributeValue::S("ghost".into()))
        .item("created_at", AttributeValue::N("5".into()))
        .send()
        .await
        .expect("raw put");
    for id in MARKS_OF_U {
        set_mark_field(&db, table, id, "last", "5:ghost").await;
    }

    for listing in listings_of_u() {
        let started = Instant::now();
        let page = stores
            .messages
            .page(&listing, &Bound::Newest, 10)
            .await
            .expect("page");
        let took = started.elapsed();
        assert_eq!(page, std::slice::from_ref(&m1), "{listing:?}");
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(5),
            "{listing:?} took {took:?}"
        );

        let started = Instant::now();
        let deeper = Bound::Older(Position {
            created_at: 9,
            id: "z".into(),
        });
        let page = stores
            .messages
            .page(&listing, &deeper, 10)
            .await
            .expect("page");
        assert_eq!(page, std::slice::from_ref(&m1));
        assert!(started.elapsed() < Duration::from_millis(300), "checked");
    }
}

/// Every page of `listing` from the newest on, following `Older` from the
/// last message of each page.
async fn walk_older(store: &dyn MessageStore, listing: &Listing, size: u32) -> Vec<Vec<Message>> {
    let mut pages = Vec::new();
    let mut bound = Bound::Newest;
    loop {
        let page = store.page(listing, &bound, size).await.expect("page");
        assert!(page.len() <= size as usize, "{} > {size}", page.len());
        let Some(last) = page.last() else {
            break;
        };
        bound = Bound::Older(Position::of(last));
        pages.push(page);
    }
    pages
}

/// Every page of `listing` before `oldest`, following `Newer` from the
/// first message of each page, in listing order (newest page first).
async fn walk_newer(
    store: &dyn MessageStore,
    listing: &Listing,
    oldest: &Message,
    size: u32,
) -> Vec<Vec<Message>> {
    let mut pages = Vec::new();
    let mut bound = Bound::Newer(Position::of(oldest));
    loop {
        let page = store.page(listing, &bound, size).await.expect("page");
        assert!(page.len() <= size as usize, "{} > {size}", page.len());
        let Some(first) = page.first() else {
            break;
        };
        bound = Bound::Newer(Position::of(first));
        pages.push(page);
    }
    pages.reverse();
    pages
}

fn ids(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

/// 23 messages, 7 of them posted in the same millisecond, in pages of 5:
/// walking `Older` to the end and `Newer` back to the start shows each
/// message exactly once, newest first, and both walks agree on the order
/// within the tie (the index's own).
#[tokio::test]
async fn pages_cross_ties_without_losing_or_repeating() {
    let (_dynamo, _url, stores) = migrated("ties_").await;
    let messages = &stores.messages;
    let mut all = Vec::new();
    for i in 0..23_i64 {
        let at = if (8..15).contains(&i) {
            500
        } else {
            100 + i * 40
        };
        let user = if i % 3 == 0 { "v" } else { "u" };
        all.push(message(&format!("m{i:02}"), user, at, ""));
    }
    for m in &all {
        messages.insert(m).await.expect("insert");
    }

    for listing in [
        Listing::All,
        Listing::User("u".into()),
        Listing::User("v".into()),
    ] {
        let expected: Vec<_> = all
            .iter()
            .filter(|m| listing == Listing::All || Listing::User(m.user_id.clone()) == listing)
            .collect();
        let older = walk_older(messages.as_ref(), &listing, 5).await;
        assert!(older[..older.len() - 1].iter().all(|p| p.len() == 5));
        let walked: Vec<Message> = older.concat();
        assert_eq!(
            walked.len(),
            expected.len(),
            "{listing:?}: {:?}",
            ids(&walked)
        );
        let mut seen: Vec<_> = ids(&walked);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), expected.len(), "{listing:?}: a message twice");
        assert!(
            walked
                .windows(2)
                .all(|w| w[0].created_at >= w[1].created_at),
            "{listing:?}: not newest first: {:?}",
            ids(&walked)
        );

        let oldest = walked.last().expect("messages");
        let newer = walk_newer(messages.as_ref(), &listing, oldest, 5).await;
        let mut back = newer.concat();
        back.push(oldest.clone());
        assert_eq!(
            ids(&back),
            ids(&walked),
            "{listing:?}: Newer walks another way"
        );
        // The first page of the walk back ends where the newest page does.
        assert_eq!(newer.last().map(Vec::len), Some(5));
    }
}

/// The order is defined when no two messages share a time: then DynamoDB's
/// pages are SQLite's, page for page, both ways and per user.
#[tokio::test]
async fn pages_match_sqlite_when_times_differ() {
    let (_dynamo, _url, stores) = migrated("pgsql_").await;
    let sqlite = sqlite_with_ada_and_bob().await;
    let batch: Vec<_> = (0..17_i64)
        .map(|i| {
            let user = if i % 4 == 1 { "v" } else { "u" };
            message(&format!("m{i:02}"), user, 1_000 - i * 7, &format!("#{i}"))
        })
        .collect();
    for store in [stores.messages.as_ref(), &sqlite as &dyn MessageStore] {
        for m in &batch[..9] {
            store.insert(m).await.expect("insert");
        }
        store.insert_many(&batch[9..]).await.expect("insert_many");
    }
    for listing in [
        Listing::All,
        Listing::User("u".into()),
        Listing::User("v".into()),
        Listing::User("nobody".into()),
    ] {
        for size in [1, 4, 5, 100] {
            let dynamo = walk_older(stores.messages.as_ref(), &listing, size).await;
            let reference = walk_older(&sqlite, &listing, size).await;
            assert_eq!(dynamo, reference, "{listing:?} in pages of {size}");
            if let Some(oldest) = reference.last().and_then(|p| p.last()) {
                let dynamo = walk_newer(stores.messages.as_ref(), &listing, oldest, size).await;
                let reference = walk_newer(&sqlite, &listing, oldest, size).await;
                assert_eq!(dynamo, reference, "{listing:?} back in pages of {size}");
            }
        }
        assert_eq!(
            stores.messages.count(&listing).await.expect("count"),
            MessageStore::count(&sqlite, &listing).await.expect("count"),
            "{listing:?}"
        );
    }
}

/// The place of a deleted message still works as a cursor, both ways.
#[tokio::test]
async fn a_deleted_message_still_marks_its_place() {
    let (_dynamo, _url, stores) = migrated("gone_").await;
    let messages = &stores.messages;
    for i in 1..=9 {
        messages
            .insert(&message(&format!("m{i}"), "u", i * 10, ""))
            .await
            .expect("insert");
    }
    // Two share m5's time, to land the place inside a tie as well.
    messages
        .insert(&message("m5b", "u", 50, ""))
        .await
        .expect("insert");
    let m5 = messages.get("m5").await.expect("get").expect("m5");
    let whole = walk_older(messages.as_ref(), &Listing::All, 100)
        .await
        .concat();
    let at = whole.iter().position(|m| m.id == "m5").expect("listed");
    assert!(messages.delete("m5").await.expect("delete"));

    for listing in listings_of_u() {
        let place = Position::of(&m5);
        let older = messages
            .page(&listing, &Bound::Older(place.clone()), 3)
            .await
            .expect("older");
        let newer = messages
            .page(&listing, &Bound::Newer(place), 3)
            .await
            .expect("newer");
        assert_eq!(older, whole[at + 1..at + 4], "{listing:?}");
        assert_eq!(newer, whole[at - 3..at], "{listing:?}");
    }
}

/// Posts and deletes between page loads: of the messages that existed
/// throughout, none is skipped and none shown twice, even when the very
/// message a page ended on is deleted before the next page is asked for.
#[tokio::test]
async fn writes_between_page_loads_lose_and_repeat_nothing() {
    let (_dynamo, _url, stores) = migrated("churn_").await;
    let messages = &stores.messages;
    let seeded: Vec<_> = (0..30_i64)
        .map(|i| message(&format!("s{i:02}"), "u", 100 + (i / 2) * 10, ""))
        .collect();
    messages.insert_many(&seeded).await.expect("seed");

    let mut removed = Vec::new();
    for (walk, listing) in listings_of_u().into_iter().enumerate() {
        let mut shown: Vec<String> = Vec::new();
        let mut bound = Bound::Newest;
        let mut round = 0_i64;
        loop {
            let page = messages.page(&listing, &bound, 4).await.expect("page");
            let Some(last) = page.last() else {
                break;
            };
            shown.extend(page.iter().map(|m| m.id.clone()));
            bound = Bound::Older(Position::of(last));
            // Between loads: a new post, and a delete, alternately of the
            // message the page ended on and of one further down.
            round += 1;
            let post = message(&format!("p{walk}_{round}"), "u", 10_000 + round, "");
            messages.insert(&post).await.expect("post");
            let victim = if round % 2 == 1 {
                Some(last.id.clone())
            } else {
                let later = messages.page(&listing, &bound, 3).await.expect("peek");
                later.get(2).map(|m| m.id.clone())
            };
            if let Some(victim) = victim {
                if messages.delete(&victim).await.expect("delete") {
                    removed.push(victim);
                }
            }
        }
        let mut sorted = shown.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            shown.len(),
            "{listing:?}: shown twice: {shown:?}"
        );
        for m in &seeded {
            assert!(
                removed.contains(&m.id) || shown.contains(&m.id),
                "{listing:?}: {} skipped",
                m.id
            );
        }
        assert!(removed.len() >= 4 * (walk + 1), "{removed:?}");
    }
}

#[tokio::test]
async fn counts_follow_inserts_deletes_and_batches() {
    let (_dynamo, _url, stores) = migrated("count_").await;
    let sqlite = sqlite_with_ada_and_bob().await;
    let u = Listing::User("u".into());
    let v = Listing::User("v".into());
    for store in [stores.messages.as_ref(), &sqlite as &dyn MessageStore] {
        assert_eq!(store.count(&Listing::All).await.expect("count"), 0);
        assert_eq!(store.count(&u).await.expect("count"), 0);
        for (id, user) in [("m1", "u"), ("m2", "u"), ("m3", "v")] {
            store
                .insert(&message(id, user, 1, ""))
                .await
                .expect("insert");
        }
        assert!(store.insert(&message("m1", "u", 1, "")).await.is_err());
        assert!(store.delete("m2").await.expect("delete"));
        assert!(!store.delete("m2").await.expect("delete again"));
        let batch: Vec<_> = (0..60_i64)
            .map(|i| {
                message(
                    &format!("b{i:02}"),
                    ["u", "v"][(i % 3 == 0) as usize],
                    i,
                    "",
                )
            })
            .collect();
        store.insert_many(&batch).await.expect("insert_many");
        assert_eq!(store.count(&Listing::All).await.expect("count"), 62);
        assert_eq!(store.count(&u).await.expect("count"), 41);
        assert_eq!(store.count(&v).await.expect("count"), 21);
        assert_eq!(
            store
                .count(&Listing::User("nobody".into()))
                .await
                .expect("count"),
            0
        );
    }
}

/// 60 messages in one call: `BatchWriteItem`s of 25 (messages and their
/// aliases), every message listed, counted and found by image.
#[tokio::test]
async fn insert_many_writes_sixty_in_batches() {
    let (_dynamo, url, stores) = migrated("many_").await;
    let db = Dynamo::open(&url).await.expect("open");
    let batch: Vec<_> = (0..60_i64)
        .map(|i| {
            message(
                &format!("b{i:02}"),
                ["u", "v"][(i % 4 == 0) as usize],
                i * 3,
                "",
            )
        })
        .collect();
    stores
        .messages
        .insert_many(&batch)
        .await
        .expect("insert_many");
    assert_eq!(stores.calls.get("messages", "insert_many"), 1);

    let listed = walk_older(stores.messages.as_ref(), &Listing::All, 25).await;
    assert_eq!(
        listed.iter().map(Vec::len).collect::<Vec<_>>(),
        [25, 25, 10]
    );
    assert_eq!(listed.concat(), newest_first(batch.clone()));
    assert_eq!(stores.messages.count(&Listing::All).await.expect("n"), 60);
    assert_eq!(
        stores
            .messages
            .count(&Listing::User("v".into()))
            .await
            .expect("n"),
        15
    );
    for m in [&batch[0], &batch[31], &batch[59]] {
        assert_eq!(
            stores
                .messages
                .by_image(&m.image)
                .await
                .expect("by_image")
                .as_ref(),
            Some(m)
        );
    }
    // `last` names the newest of the batch (of the user's, per user).
    let mark = raw_item(&db, "many_messages", "message_id", "count#all")
        .await
        .expect("watermark");
    assert_eq!(mark.get("last"), Some(&AttributeValue::S("177:b59".into())));
    let mark = raw_item(&db, "many_messages", "message_id", "count#user#v")
        .await
        .expect("watermark");
    assert_eq!(mark.get("last"), Some(&AttributeValue::S("168:b56".into())));
    // Nothing for `board migrate` to correct or backfill.
    let report = board::store::migrate(&url).await.expect("migrate");
    assert!(
        !report.contains("recounted") && !report.contains("alias"),
        "{report}"
    );
}

#[tokio::test]
async fn messages_are_found_by_image() {
    let (_dynamo, url, stores) = migrated("img_").await;
    let sqlite = sqlite_with_ada_and_bob().await;
    let db = Dynamo::open(&url).await.expect("open");
    let table = "img_messages";
    let m1 = message("m1", "u", 1, "one");
    for store in [stores.messages.as_ref(), &sqlite as &dyn MessageStore] {
        store.insert(&m1).await.expect("insert");
        assert_eq!(
            store.by_image("m1.jpg").await.expect("by_image"),
            Some(m1.clone())
        );
        assert_eq!(
            store.by_image("m1_thumb.jpg").await.expect("by_image"),
            None
        );
        assert_eq!(store.by_image("nope.jpg").await.expect("by_image"), None);
    }
    let messages = &stores.messages;

    // Aliases are not messages, wherever one looks.
    assert!(messages.get("image#m1.jpg").await.expect("get").is_none());
    assert!(!messages.delete("image#m1.jpg").await.expect("delete"));
    let mut sneaky = message("x", "u", 2, "");
    sneaky.id = "image#x.jpg".into();
    assert!(messages.insert(&sneaky).await.is_err());
    assert!(messages.insert_many(&[sneaky]).await.is_err());
    assert_eq!(ids(&messages.all().await.expect("all")), ["m1"]);
    assert_eq!(messages.count(&Listing::All).await.expect("count"), 1);
    assert!(
        raw_item(&db, table, "message_id", "image#m1.jpg")
            .await
            .is_some()
    );

    // A second insert of the same id is refused and leaves no stray alias
    // that would find it by another image.
    let mut again = m1.clone();
    again.image = "other.jpg".into();
    assert!(matches!(
        messages.insert(&again).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        messages.by_image("other.jpg").await.expect("by_image"),
        None
    );
    assert_eq!(
        messages.by_image("m1.jpg").await.expect("by_image"),
        Some(m1.clone())
    );

    assert!(messages.delete("m1").await.expect("delete"));
    assert_eq!(messages.by_image("m1.jpg").await.expect("by_image"), None);
    assert!(
        raw_item(&db, table, "message_id", "image#m1.jpg")
            .await
            .is_none()
    );

    // Messages stored before aliases existed: `board migrate` backfills.
    let (m2, m3) = (message("m2", "u", 2, ""), message("m3", "v", 3, ""));
    put_raw(&db, table, &m2).await;
    put_raw(&db, table, &m3).await;
    assert_eq!(messages.by_image("m2.jpg").await.expect("by_image"), None);
    let report = board::store::migrate(&url).await.expect("migrate");
    assert!(
        report.ends_with("backfilled img_messages: wrote 2 image aliases"),
        "{report}"
    );
    for m in [&m2, &m3] {
        let found = messages.by_image(&m.image).await.expect("by_image");
        assert_eq!(found.map(|f| f.id), Some(m.id.clone()));
    }
    let report = board::store::migrate(&url).await.expect("migrate");
    assert!(!report.contains("alias"), "{report}");
}

/// A TCP relay in front of dynalite that keeps every request byte, so a
/// test can count DynamoDB calls on the wire.
struct Wiretap {
    endpoint: String,
    sent: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Wiretap {
    fn start(upstream: &str) -> Self {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        fn pump(mut from: TcpStream, mut to: TcpStream, log: Option<&std::sync::Mutex<Vec<u8>>>) {
            let mut buf = [0; 16 * 1024];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if let Some(log) = log {
                    log.lock().expect("log").extend_from_slice(&buf[..n]);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        }
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    break;
                };
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let log = Arc::clone(&log);
                std::thread::spawn(move || pump(client, server, Some(&log)));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        Self { endpoint, sent }
    }

    /// What was sent since the last call, as text.
    fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.sent.lock().expect("log"));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn calls_of(sent: &str, operation: &str) -> usize {
    sent.matches(&format!("DynamoDB_20120810.{operation}"))
        .count()
}

/// Raw proof that a page costs one `Query` with `Limit`, whatever its depth
/// (plus the watermark `GetItem` for the first page), seen on the wire.
#[tokio::test]
async fn a_page_is_one_query_with_limit() {
    let dynamo = Dynalite::start();
    let tap = Wiretap::start(&dynamo.endpoint());
    let url = format!(
        "dynamodb://us-east-1?endpoint={}&prefix=wire_",
        tap.endpoint
    );
    board::store::migrate(&url).await.expect("migrate");
    let stores = Stores::open(&url).await.expect("open");
    let batch: Vec<_> = (0..40_i64)
        .map(|i| message(&format!("m{i:02}"), "u", i, ""))
        .collect();
    stores
        .messages
        .insert_many(&batch)
        .await
        .expect("insert_many");
    let sent = tap.take();
    assert_eq!(calls_of(&sent, "BatchWriteItem"), 4, "80 items in 25s");

    let newest = stores
        .messages
        .page(&Listing::All, &Bound::Newest, 5)
        .await
        .expect("page");
    let sent = tap.take();
    assert_eq!(ids(&newest), ["m39", "m38", "m37", "m36", "m35"]);
    assert_eq!(calls_of(&sent, "Query"), 1, "{sent}");
    assert_eq!(calls_of(&sent, "GetItem"), 1, "the watermark: {sent}");
    assert!(sent.contains("\"Limit\":5"), "{sent}");

    let deep = Bound::Older(Position::of(&batch[20]));
    for listing in listings_of_u() {
        let page = stores
            .messages
            .page(&listing, &deep, 7)
            .await
            .expect("page");
        let sent = tap.take();
        assert_eq!(
            ids(&page),
            ["m19", "m18", "m17", "m16", "m15", "m14", "m13"]
        );
        assert_eq!(calls_of(&sent, "Query"), 1, "{sent}");
        assert_eq!(calls_of(&sent, "GetItem"), 0, "{sent}");
        assert!(sent.contains("\"Limit\":7") && sent.contains("\"ScanIndexForward\":false"));
    }
    let page = stores
        .messages
        .page(&Listing::All, &Bound::Newer(Position::of(&batch[20])), 3)
        .await
        .expect("page");
    let sent = tap.take();
    assert_eq!(ids(&page), ["m23", "m22", "m21"]);
    assert_eq!(calls_of(&sent, "Query"), 1, "{sent}");
    assert!(sent.contains("\"Limit\":3") && sent.contains("\"ScanIndexForward\":true"));

    assert_eq!(stores.messages.count(&Listing::All).await.expect("n"), 40);
    let sent = tap.take();
    assert_eq!(calls_of(&sent, "GetItem"), 1, "{sent}");
    assert_eq!(calls_of(&sent, "Query") + calls_of(&sent, "Scan"), 0);
    assert_eq!(stores.calls.get("messages", "page"), 3);
    assert_eq!(stores.calls.get("messages", "user_page"), 1);
}

/// A page cut short by DynamoDB's 1 MB response limit is continued from
/// `LastEvaluatedKey` until it holds `limit` messages, and no further.
#[tokio::test]
async fn a_page_past_one_megabyte_is_completed() {
    let dynamo = Dynalite::start();
    let tap = Wiretap::start(&dynamo.endpoint());
    let url = format!("dynamodb://us-east-1?endpoint={}&prefix=big_", tap.endpoint);
    board::store::migrate(&url).await.expect("migrate");
    let stores = Stores::open(&url).await.expect("open");
    let filler = "x".repeat(100 * 1024);
    let batch: Vec<_> = (0..30_i64)
        .map(|i| message(&format!("m{i:02}"), "u", i, &filler))
        .collect();
    stores
        .messages
        .insert_many(&batch)
        .await
        .expect("insert_many");
    tap.take();

    let page = stores
        .messages
        .page(&Listing::All, &Bound::Older(Position::of(&batch[29])), 15)
        .await
        .expect("page");
    let sent = tap.take();
    assert_eq!(page.len(), 15);
    assert_eq!(page[0].id, "m28");
    assert_eq!(page[14].id, "m14");
    assert_eq!(
        calls_of(&sent, "Query"),
        2,
        "one cut at 1 MB, one more: {sent:.2000}"
    );
}

/// Issue 27 on DynamoDB: sixteen posts of one account at once, through two
/// boards (two clients), against a quota that holds three and a half: the
/// check and the addition are one conditional `UpdateItem` on the user
/// item, so exactly three get through, never a fourth. A delete gives its
/// bytes back, and `board accounts` reads the totals largest first.
#[tokio::test]
async fn posts_racing_from_two_boards_never_pass_the_quota() {
    let (_dynamo, url, stores) = migrated("quota_").await;
    let other = Stores::open(&url).await.expect("a second board");
    for (id, name) in [("u", "ada"), ("v", "bob")] {
        stores
            .users
            .create(&user(id, name), "h")
            .await
            .expect("user");
    }
    let quota = 35;
    let posts = (0..16).map(|i| {
        let board = if i % 2 == 0 { &stores } else { &other };
        let store = Arc::clone(&board.messages);
        let m = message(&format!("q{i:02}"), "u", i, "");
        async move { store.insert_within(&m, 10, Some(quota)).await }
    });
    let outcomes = futures_util::future::join_all(posts).await;
    let posted = outcomes.iter().filter(|o| o.is_ok()).count();
    let full = outcomes
        .iter()
        .filter(|o| matches!(o, Err(StoreError::OverQuota { .. })))
        .count();
    assert_eq!((posted, full), (3, 13), "{outcomes:?}");
    let mine = stores.messages.by_user("u").await.expect("ada's");
    assert_eq!(mine.len(), 3, "no row of a refused post");
    let usage = |list: Vec<board::store::AccountUsage>| {
        list.into_iter()
            .map(|a| (a.username, a.messages, a.bytes))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        usage(stores.users.largest(5).await.expect("largest")),
        [("ada".to_owned(), 3, 30), ("bob".to_owned(), 0, 0)]
    );

    assert!(stores.messages.delete(&mine[0].id).await.expect("delete"));
    assert_eq!(
        usage(other.users.largest(1).await.expect("largest")),
        [("ada".to_owned(), 2, 20)]
    );
    let again = message("q99", "u", 99, "");
    other
        .messages
        .insert_within(&again, 10, Some(quota))
        .await
        .expect("the delete made room");
    // A post larger than the whole quota is refused as it is.
    let huge = message("q98", "v", 98, "");
    assert!(matches!(
        stores.messages.insert_within(&huge, 36, Some(quota)).await,
        Err(StoreError::OverQuota { stored: 0 })
    ));
}
