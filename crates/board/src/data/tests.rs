//! Each write of the data layer, and exactly which memos it forgets. A new
//! write gets a test here, so none can leave a stale cache behind.

use std::collections::BTreeSet;

use bytes::Bytes;
use secrecy::SecretString;

use super::*;
use crate::media::ImageKind;

const SECRET: &str = "a test secret of at least thirty-two characters";

async fn data(page_size: u32) -> Data {
    let stores = Stores::open("sqlite::memory:").await.expect("stores");
    let dir = tempfile::tempdir().expect("dir").keep();
    let media = crate::media::open(&format!("file://{}", dir.display())).expect("media");
    let secret = SecretString::from(SECRET.to_owned());
    let settings = DataSettings {
        page_size,
        media_base: "/media/".into(),
        user_timeout: Duration::from_secs(600),
        session_timeout: Duration::from_secs(600),
        messages_timeout: Duration::from_secs(600),
        my_messages_timeout: Duration::from_secs(600),
    };
    Data::new(
        stores,
        media,
        &Cache::memory(),
        CsrfKey::new(&secret),
        CursorKey::new(&secret),
        settings,
    )
    .expect("data")
}

fn user(id: &str, name: &str) -> User {
    User {
        id: id.into(),
        username: name.into(),
        created_at: 1,
    }
}

fn new_message(user_id: &str, text: &str) -> NewMessage {
    NewMessage {
        user_id: user_id.into(),
        author: "a".into(),
        location: String::new(),
        description: text.into(),
        image: (ImageKind::Jpeg, Bytes::from_static(b"full")),
        thumbnail: (ImageKind::Jpeg, Bytes::from_static(b"thumb")),
    }
}

/// Invalidation counters of every memo.
fn invalidations(data: &Data) -> Vec<(String, u64)> {
    data.memos()
        .stats()
        .into_iter()
        .map(|(name, stats)| (name.to_owned(), stats.invalidations))
        .collect()
}

/// The memos whose invalidation counter moved during `write`.
async fn forgotten_by<F: Future<Output = ()>>(data: &Data, write: F) -> BTreeSet<String> {
    let before = invalidations(data);
    write.await;
    invalidations(data)
        .into_iter()
        .zip(before)
        .filter(|((_, after), (_, before))| after > before)
        .map(|((name, _), _)| name)
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn two_users(data: &Data) {
    data.register(&user(&"a".repeat(32), "ada"), "h")
        .await
        .expect("ada");
    data.register(&user(&"b".repeat(32), "bob"), "h")
        .await
        .expect("bob");
}

#[tokio::test]
async fn posting_forgets_the_listings_counts_and_the_posters_first_page() {
    let data = data(2).await;
    two_users(&data).await;
    let (ada, bob) = ("a".repeat(32), "b".repeat(32));
    data.user_page(&bob, &Bound::Newest)
        .await
        .expect("bob's page");
    data.user_page(&ada, &Bound::Newest)
        .await
        .expect("ada's page");
    let mut posted = None;
    let forgotten = forgotten_by(&data, async {
        posted = Some(data.post(new_message(&ada, "hi"), 10).await.expect("post"));
    })
    .await;
    assert_eq!(
        forgotten,
        names(&[
            "all_messages",
            "user_pages",
            "user_messages",
            "message_count",
            "image_message"
        ])
    );
    // Ada's first page is gone, Bob's is still cached.
    assert!(data.memos().user_messages.get(&ada).await.is_none());
    assert!(data.memos().user_messages.get(&bob).await.is_some());
    let page = data.feed_page(&Bound::Newest).await.expect("page");
    assert_eq!(page.messages.len(), 1);
    assert_eq!(data.message_count(&Listing::All).await.expect("count"), 1);
    let posted = posted.expect("posted");
    let name = MediaName::parse(&posted.image).expect("name");
    assert!(data.image_message(&name).await.expect("image").is_some());
}

#[tokio::test]
async fn deleting_forgets_what_posting_does_and_the_image_page() {
    let data = data(2).await;
    two_users(&data).await;
    let ada = "a".repeat(32);
    let posted = data.post(new_message(&ada, "hi"), 10).await.expect("post");
    let name = MediaName::parse(&posted.image).expect("name");
    assert!(data.image_message(&name).await.expect("image").is_some());
    let forgotten = forgotten_by(&data, async {
        data.delete_message(&posted.id, &ada).await.expect("delete");
    })
    .await;
    assert_eq!(
        forgotten,
        names(&[
            "all_messages",
            "user_pages",
            "user_messages",
            "message_count",
            "image_message"
        ])
    );
    assert!(data.image_message(&name).await.expect("image").is_none());
    assert_eq!(data.message_count(&Listing::All).await.expect("count"), 0);
}

#[tokio::test]
async fn a_refused_delete_forgets_nothing() {
    let data = data(2).await;
    two_users(&data).await;
    let ada = "a".repeat(32);
    let posted = data.post(new_message(&ada, "hi"), 10).await.expect("post");
    let forgotten = forgotten_by(&data, async {
        let refused = data.delete_message(&posted.id, &"b".repeat(32)).await;
        assert!(matches!(refused, Err(DataError::NotOwner)), "{refused:?}");
    })
    .await;
    assert!(forgotten.is_empty(), "{forgotten:?}");
    assert_eq!(data.message_count(&Listing::All).await.expect("count"), 1);
}

#[tokio::test]
async fn sessions_start_primed_and_end_forgotten() {
    let data = data(2).await;
    two_users(&data).await;
    let ada = user(&"a".repeat(32), "ada");
    let forgotten = forgotten_by(&data, async {
        data.start_session(ada.clone(), "s1".into(), 0, Duration::from_secs(60))
            .await
            .expect("start");
    })
    .await;
    assert!(forgotten.is_empty(), "starting primes, never forgets");
    let calls = data.stores().calls.total();
    assert!(data.session("s1", 1).await.expect("session").is_some());
    assert_eq!(
        data.stores().calls.total(),
        calls,
        "a primed session reads nothing"
    );
    let forgotten = forgotten_by(&data, async {
        data.end_session("s1", &ada.id).await.expect("end");
    })
    .await;
    assert_eq!(forgotten, names(&["load_session", "load_user"]));
    assert!(data.session("s1", 1).await.expect("session").is_none());
}

#[tokio::test]
async fn an_expired_session_is_forgotten_and_removed() {
    let data = data(2).await;
    two_users(&data).await;
    let ada = user(&"a".repeat(32), "ada");
    data.start_session(ada, "s1".into(), 0, Duration::from_millis(5))
        .await
        .expect("start");
    let forgotten = forgotten_by(&data, async {
        assert!(data.session("s1", 5).await.expect("lookup").is_none());
    })
    .await;
    assert_eq!(forgotten, names(&["load_session"]));
    assert!(
        data.stores()
            .sessions
            .get("s1")
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn a_password_change_forgets_the_user_and_the_other_sessions() {
    let data = data(2).await;
    two_users(&data).await;
    let ada = user(&"a".repeat(32), "ada");
    for token in ["keep", "other"] {
        data.start_session(ada.clone(), token.into(), 0, Duration::from_secs(60))
            .await
            .expect("start");
    }
    let forgotten = forgotten_by(&data, async {
        let revoked = data
            .change_password(&ada.id, "new hash", "keep")
            .await
            .expect("change");
        assert_eq!(revoked, 1);
    })
    .await;
    assert_eq!(forgotten, names(&["load_session", "load_user"]));
    assert!(data.session("keep", 1).await.expect("keep").is_some());
    assert!(data.session("other", 1).await.expect("other").is_none());
}

#[tokio::test]
async fn registering_forgets_a_cached_absence() {
    let data = data(2).await;
    let id = "c".repeat(32);
    assert!(data.user(&id).await.expect("lookup").is_none());
    let forgotten = forgotten_by(&data, async {
        data.register(&user(&id, "cy"), "h")
            .await
            .expect("register");
    })
    .await;
    assert_eq!(forgotten, names(&["load_user"]));
    assert!(data.user(&id).await.expect("lookup").is_some());
    let again = data.register(&user(&"d".repeat(32), "CY"), "h").await;
    assert!(matches!(again, Err(DataError::NameTaken)), "{again:?}");
}

#[tokio::test]
async fn a_batch_forgets_once_what_posts_do() {
    let data = data(2).await;
    two_users(&data).await;
    let ada = "a".repeat(32);
    let batch: Vec<Message> = (0..5)
        .map(|i| Message {
            id: format!("{i:032x}"),
            user_id: ada.clone(),
            author: "ada".into(),
            location: String::new(),
            description: "d".into(),
            image: format!("{i:032x}.jpg"),
            thumbnail: format!("{i:032x}_thumb.jpg"),
            created_at: i,
        })
        .collect();
    let forgotten = forgotten_by(&data, async {
        data.insert_many(&batch).await.expect("batch");
    })
    .await;
    assert_eq!(
        forgotten,
        names(&[
            "all_messages",
            "user_pages",
            "user_messages",
            "message_count"
        ])
    );
    assert_eq!(data.message_count(&Listing::All).await.expect("all"), 5);
    assert_eq!(
        data.message_count(&Listing::User(ada)).await.expect("mine"),
        5
    );
}

/// Walks a listing with page size 2 through 7 messages, three of them at
/// the same millisecond: newest first, each exactly once, and back again.
#[tokio::test]
async fn pages_walk_the_listing_both_ways() {
    let data = data(2).await;
    two_users(&data).await;
    let ada = "a".repeat(32);
    for (i, at) in [1, 2, 3, 3, 3, 4, 5].into_iter().enumerate() {
        data.post(new_message(&ada, &format!("m{i}")), at)
            .await
            .expect("post");
    }
    let mut seen = Vec::new();
    let mut bound = Bound::Newest;
    let mut pages = Vec::new();
    loop {
        let page = data.feed_page(&bound).await.expect("page");
        assert!(page.messages.len() <= 2);
        seen.extend(page.messages.iter().map(|m| m.message.clone()));
        pages.push(page.clone());
        let Some(older) = &page.older else { break };
        bound = data.bound(Some(older)).expect("token");
    }
    assert_eq!(seen.len(), 7, "every message once");
    let keys: Vec<_> = seen.iter().map(|m| (m.created_at, m.id.clone())).collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "newest first, ties by id");
    // Back from the last page by "newer" links: the same pages.
    let mut back = pages.last().and_then(|p| p.newer.clone());
    for expected in pages.iter().rev().skip(1) {
        let token = back.expect("a newer link");
        let page = data
            .feed_page(&data.bound(Some(&token)).expect("token"))
            .await
            .expect("page");
        let ids = |p: &FeedPage| {
            p.messages
                .iter()
                .map(|m| m.message.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&page), ids(expected));
        back = page.newer.clone();
    }
    assert!(back.is_none(), "the first page has no newer link");
}

#[tokio::test]
async fn bad_and_exhausted_cursors_are_refused() {
    let data = data(2).await;
    two_users(&data).await;
    let ada = "a".repeat(32);
    let first = data.post(new_message(&ada, "only"), 1).await.expect("post");
    assert!(matches!(
        data.bound(Some("nonsense")),
        Err(DataError::BadCursor(_))
    ));
    // A genuine token past the oldest message: a 404, not an empty page.
    let past = data
        .cursors
        .seal(&Bound::Older(Position::of(&first)))
        .expect("token");
    let bound = data.bound(Some(&past)).expect("valid token");
    assert!(matches!(
        data.feed_page(&bound).await,
        Err(DataError::NotFound)
    ));
    // "Newer" than the newest message is the first page.
    let newer = data
        .cursors
        .seal(&Bound::Newer(Position::of(&first)))
        .expect("token");
    let page = data
        .feed_page(&data.bound(Some(&newer)).expect("valid"))
        .await
        .expect("first page");
    assert!(page.is_first());
    assert_eq!(page.messages.len(), 1);
}
