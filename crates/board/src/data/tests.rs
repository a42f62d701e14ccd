//! Each write of the data layer, and exactly which memos it forgets. A new
//! write gets a test here, so none can leave a stale cache behind. Also
//! the writes' other rules: pages, the media sweep, the account quota.

use std::collections::BTreeSet;

use bytes::Bytes;
use secrecy::SecretString;

use super::*;
use crate::media::ImageKind;
use crate::store::{Bound, Message, Position};

const SECRET: &str = "a test secret of at least thirty-two characters";

async fn data(page_size: u32) -> Data {
    data_with_dir(page_size).await.0
}

/// A board's data on SQLite in memory and a media directory, and that
/// directory.
async fn data_with_dir(page_size: u32) -> (Data, std::path::PathBuf) {
    data_with(page_size, crate::data::PostLimits::default()).await
}

/// As [`data_with_dir`], with the given budgets and quota.
async fn data_with(page_size: u32, posting: PostLimits) -> (Data, std::path::PathBuf) {
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
        posting,
    };
    let data = Data::new(
        stores,
        media,
        &Cache::memory(),
        CsrfKey::new(&secret),
        CursorKey::new(&secret),
        settings,
    )
    .expect("data");
    (data, dir)
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
        address: [127, 0, 0, 1].into(),
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

/// What a post or a delete forgets: the listing's first page, the
/// poster's first `/my` page, the counts and the image page.
const MESSAGE_WRITE_FORGETS: &[&str] = &[
    "all_messages",
    "user_messages",
    "message_count",
    "image_message",
];

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
    assert_eq!(forgotten, names(MESSAGE_WRITE_FORGETS));
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
    assert_eq!(forgotten, names(MESSAGE_WRITE_FORGETS));
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
        names(&["all_messages", "user_messages", "message_count"])
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

// ---- the orphan-media sweep ----

const HOUR: Duration = Duration::from_secs(3600);

/// Stores `name` with `bytes` and dates it `age` ago.
async fn stored(data: &Data, dir: &std::path::Path, name: &str, age: Duration) -> MediaName {
    let name = MediaName::parse(name).expect("media name");
    data.media()
        .put(&name, Bytes::from_static(b"image"))
        .await
        .expect("put");
    age_file(&dir.join(name.as_str()), age);
    name
}

fn age_file(path: &std::path::Path, age: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    file.set_modified(std::time::SystemTime::now() - age)
        .expect("mtime");
}

fn files_in(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect()
}

fn shown(id: &str, image: &str, thumbnail: &str) -> Message {
    Message {
        id: id.into(),
        user_id: "a".repeat(32),
        author: "ada".into(),
        location: String::new(),
        description: "d".into(),
        image: image.into(),
        thumbnail: thumbnail.into(),
        created_at: 1,
    }
}

/// Only files older than the grace period that no message shows go: an
/// orphan pair (a crash between the files and the row) and a lone
/// thumbnail (a half-failed delete), and a staging file of an interrupted
/// write. A posted pair (thumbnail of another kind), a fresh orphan (a
/// post in progress), a picture two demo messages share and files that
/// are not media stay. The sweep forgets no memo.
#[tokio::test]
async fn the_sweep_removes_only_old_files_no_message_shows() {
    let (data, dir) = data_with_dir(2).await;
    two_users(&data).await;
    let ada = "a".repeat(32);
    let old = 2 * HOUR;

    let orphan = stored(&data, &dir, &format!("{:032x}.jpg", 1), old).await;
    let orphan_thumb = stored(&data, &dir, &format!("{:032x}_thumb.png", 1), old).await;
    let lone_thumb = stored(&data, &dir, &format!("{:032x}_thumb.webp", 2), old).await;
    let staging = dir.join(format!("{:032x}.gif#1", 3));
    std::fs::write(&staging, b"half an image").expect("staging");
    age_file(&staging, old);

    let mut post = new_message(&ada, "posted");
    post.thumbnail.0 = ImageKind::Png;
    let posted = data.post(post, 10).await.expect("post");
    age_file(&dir.join(&posted.image), old);
    age_file(&dir.join(&posted.thumbnail), old);
    let fresh = stored(&data, &dir, &format!("{:032x}.bmp", 4), Duration::ZERO).await;
    let fresh_thumb = stored(
        &data,
        &dir,
        &format!("{:032x}_thumb.jpg", 4),
        Duration::ZERO,
    )
    .await;
    let shared = stored(&data, &dir, &format!("{:032x}.png", 5), old).await;
    let shared_thumb = stored(&data, &dir, &format!("{:032x}_thumb.png", 5), old).await;
    data.insert_many(&[
        shown(&"d".repeat(32), shared.as_str(), shared_thumb.as_str()),
        shown(&"e".repeat(32), shared.as_str(), shared_thumb.as_str()),
    ])
    .await
    .expect("demo");
    std::fs::write(dir.join("notes.txt"), b"not media").expect("notes");
    age_file(&dir.join("notes.txt"), old);

    let before = files_in(&dir);
    let mut report = None;
    let forgotten = forgotten_by(&data, async {
        report = Some(
            data.sweep_media(HOUR, std::time::SystemTime::now())
                .await
                .expect("sweep"),
        );
    })
    .await;
    assert!(forgotten.is_empty(), "{forgotten:?}");
    let report = report.expect("report");

    let gone: BTreeSet<String> = before.difference(&files_in(&dir)).cloned().collect();
    let expected: BTreeSet<String> = [
        orphan.as_str(),
        orphan_thumb.as_str(),
        lone_thumb.as_str(),
        &format!("{:032x}.gif#1", 3),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(gone, expected);
    for kept in [
        &posted.image,
        &posted.thumbnail,
        fresh.as_str(),
        fresh_thumb.as_str(),
    ] {
        assert!(dir.join(kept).exists(), "{kept} removed");
    }
    assert_eq!(
        report,
        SweepReport {
            // The staging file is not listed; the notes are, but are no
            // media name.
            scanned: 10,
            old: 7,
            removed: 3,
            failed: 0,
            stale_uploads: 1,
            complete: true,
        }
    );

    // Once the shared picture's last message goes, it is an orphan too.
    data.delete_message(&"d".repeat(32), &ada)
        .await
        .expect("delete");
    data.delete_message(&"e".repeat(32), &ada)
        .await
        .expect("delete");
    assert!(!dir.join(shared.as_str()).exists(), "the delete removed it");
}

/// Each run looks at a batch and the next one continues; after the end
/// the sweep starts over, so every orphan is found, and a `now` past the
/// grace period makes fresh files old.
#[tokio::test]
async fn the_sweep_works_through_the_store_in_batches() {
    let (data, dir) = data_with_dir(2).await;
    two_users(&data).await;
    let ada = "a".repeat(32);
    for i in 0..5 {
        stored(&data, &dir, &format!("{i:032x}.jpg"), Duration::ZERO).await;
        stored(&data, &dir, &format!("{i:032x}_thumb.jpg"), Duration::ZERO).await;
    }
    let posted = data
        .post(new_message(&ada, "kept"), 10)
        .await
        .expect("post");
    let later = std::time::SystemTime::now() + 2 * HOUR;

    // Nothing is old yet: a whole cycle removes nothing.
    let now = std::time::SystemTime::now();
    let mut runs = 0;
    loop {
        runs += 1;
        let report = data.sweep_media_batch(HOUR, now, 3).await.expect("sweep");
        assert_eq!(report.removed, 0);
        assert!(report.scanned <= 3);
        if report.complete {
            break;
        }
    }
    // 12 files in batches of 3: four full pages, then an empty one.
    assert_eq!(runs, 5);

    let mut removed = 0;
    for _ in 0..5 {
        removed += data
            .sweep_media_batch(HOUR, later, 3)
            .await
            .expect("sweep")
            .removed;
    }
    assert_eq!(removed, 10);
    assert_eq!(
        files_in(&dir),
        [posted.image.clone(), posted.thumbnail.clone()]
            .into_iter()
            .collect()
    );
    // Starting over finds the posted pair still shown.
    let report = data.sweep_media_batch(HOUR, later, 3).await.expect("sweep");
    assert_eq!(
        (report.scanned, report.removed, report.complete),
        (2, 0, true)
    );
}

/// Bytes a `new_message` stores: "full" and "thumb".
const POST_BYTES: u64 = 9;

/// Issue 27: an account's stored bytes are bounded. The post that would
/// pass the quota is refused and leaves nothing (no file, no row); a delete makes room; `board accounts` reads the
/// totals largest first.
#[tokio::test]
async fn a_full_account_is_refused_with_nothing_stored_and_a_delete_makes_room() {
    let quota = 3 * POST_BYTES;
    let limits = PostLimits {
        account_quota: Some(quota),
        ..PostLimits::default()
    };
    let (data, dir) = data_with(10, limits).await;
    two_users(&data).await;
    let (ada, bob) = ("a".repeat(32), "b".repeat(32));
    let mut posted = Vec::new();
    for n in 0..3 {
        let message = data.post(new_message(&ada, "fits"), 10 + n).await;
        posted.push(message.expect("within the quota"));
    }
    let Err(DataError::OverQuota(over)) = data.post(new_message(&ada, "full"), 20).await else {
        panic!("a fourth post passed the quota");
    };
    assert_eq!(
        over,
        OverQuota {
            quota,
            stored: quota,
            bytes: POST_BYTES
        }
    );
    assert_eq!(files_in(&dir).len(), 6, "no file of the refused post");
    let mine = Listing::User(ada.clone());
    assert_eq!(data.message_count(&mine).await.expect("count"), 3);
    assert_eq!(data.posts_over_quota(), 1);
    // Another account has its own quota.
    data.post(new_message(&bob, "mine"), 21)
        .await
        .expect("bob posts");

    data.delete_message(&posted[0].id, &ada)
        .await
        .expect("delete");
    data.post(new_message(&ada, "room again"), 30)
        .await
        .expect("the delete made room");
    let largest: Vec<_> = data
        .largest_accounts(10)
        .await
        .expect("largest")
        .into_iter()
        .map(|a| (a.username, a.messages, a.bytes))
        .collect();
    assert_eq!(
        largest,
        [
            ("ada".to_owned(), 3, quota),
            ("bob".to_owned(), 1, POST_BYTES)
        ]
    );
}

/// Eight threads posting for one account at once: the check and the
/// addition are one UPDATE in the posting transaction, so exactly as many
/// posts as fit get through, never one more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_threads_posting_at_once_never_pass_the_quota() {
    let limits = PostLimits {
        account_quota: Some(3 * POST_BYTES + POST_BYTES / 2),
        ..PostLimits::default()
    };
    let (data, dir) = data_with(10, limits).await;
    two_users(&data).await;
    let data = std::sync::Arc::new(data);
    let ada = "a".repeat(32);
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let posts: Vec<_> = (0..8)
        .map(|n| {
            let (data, gate, ada) = (data.clone(), gate.clone(), ada.clone());
            tokio::spawn(async move {
                gate.wait().await;
                data.post(new_message(&ada, "race"), n).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for post in posts {
        outcomes.push(post.await.expect("task"));
    }
    let posted = outcomes.iter().filter(|o| o.is_ok()).count();
    let full = outcomes
        .iter()
        .filter(|o| matches!(o, Err(DataError::OverQuota(_))))
        .count();
    assert_eq!((posted, full), (3, 5), "{outcomes:?}");
    assert_eq!(files_in(&dir).len(), 6);
    let largest = data.largest_accounts(1).await.expect("largest");
    assert_eq!(largest[0].bytes, 3 * POST_BYTES);
}

/// A post the quota refused keeps its place in the budgets: its image was
/// decoded, thumbnailed and written before the database said no, so a
/// full account retrying in a loop meets its post budget, not free work.
#[tokio::test]
async fn a_post_refused_by_the_quota_stays_spent_in_the_budget() {
    let limits = PostLimits {
        account_quota: Some(2 * POST_BYTES),
        posts_per_account: vec![crate::budget::Allowance::new(
            4,
            std::time::Duration::from_secs(600),
        )],
        ..PostLimits::default()
    };
    let (data, _dir) = data_with(10, limits).await;
    two_users(&data).await;
    let ada = "a".repeat(32);
    for n in 0..2 {
        data.post(new_message(&ada, "fits"), 10 + n)
            .await
            .expect("within the quota");
    }
    for n in 0..2 {
        let refused = data.post(new_message(&ada, "full"), 20 + n).await;
        assert!(
            matches!(refused, Err(DataError::OverQuota(_))),
            "{refused:?}"
        );
    }
    let fifth = data.post(new_message(&ada, "again"), 30).await;
    assert!(
        matches!(fifth, Err(DataError::OverBudget(_))),
        "the refused posts were counted: {fifth:?}"
    );
}
