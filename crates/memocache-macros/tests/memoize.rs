//! Behaviour of `#[memoize]` on a real in-process cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use memocache::{Cache, CacheConfig, Clock, Memo, memoize};
use serde::{Deserialize, Serialize};

/// Counts how often a body ran.
#[derive(Default)]
struct Calls(AtomicUsize);

impl Calls {
    fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: i64,
    name: String,
}

/// A stand-in for a database handle: not serializable, so it must be skipped.
#[derive(Default)]
struct Db {
    calls: Calls,
}

impl Db {
    async fn user(&self, id: i64) -> User {
        self.calls.bump();
        tokio::task::yield_now().await;
        User {
            id,
            name: format!("user{id}"),
        }
    }
}

#[memoize(cache = cache, timeout = 600, skip(db))]
async fn load_user(cache: &Cache, db: &Db, user_id: i64) -> User {
    db.user(user_id).await
}

#[tokio::test]
async fn body_runs_once_per_key_until_forgotten() {
    let cache = Cache::memory();
    let db = Db::default();
    assert_eq!(load_user(&cache, &db, 7).await.name, "user7");
    assert_eq!(load_user(&cache, &db, 7).await.name, "user7");
    assert_eq!(db.calls.get(), 1);

    assert_eq!(load_user(&cache, &db, 8).await.id, 8);
    assert_eq!(db.calls.get(), 2);

    // Forgetting another key leaves 7 cached.
    let _ = load_user_forget(&cache, 8).await;
    load_user(&cache, &db, 7).await;
    assert_eq!(db.calls.get(), 2);

    let _ = load_user_forget(&cache, 7).await;
    load_user(&cache, &db, 7).await;
    assert_eq!(db.calls.get(), 3);
    load_user(&cache, &db, 7).await;
    assert_eq!(db.calls.get(), 3);
}

#[tokio::test]
async fn forget_all_forgets_every_key() {
    let cache = Cache::memory();
    let db = Db::default();
    for id in 1..=3 {
        load_user(&cache, &db, id).await;
    }
    assert_eq!(db.calls.get(), 3);
    let _ = load_user_forget_all(&cache).await;
    for id in 1..=3 {
        load_user(&cache, &db, id).await;
    }
    assert_eq!(db.calls.get(), 6);
}

#[tokio::test]
async fn caches_are_separate() {
    let (a, b) = (Cache::memory(), Cache::memory());
    let db = Db::default();
    load_user(&a, &db, 1).await;
    load_user(&b, &db, 1).await;
    assert_eq!(db.calls.get(), 2);
    let _ = load_user_forget(&a, 1).await;
    load_user(&b, &db, 1).await;
    assert_eq!(db.calls.get(), 2);
}

#[tokio::test]
async fn memo_handle_shares_entries() {
    let cache = Cache::memory();
    let db = Db::default();
    let memo: Memo<i64, User> = load_user_memo(&cache);
    assert_eq!(memo.name(), "load_user");
    assert!(memo.get(&7).await.is_none());
    load_user(&cache, &db, 7).await;
    assert_eq!(
        memo.get(&7).await.as_deref(),
        Some(&User {
            id: 7,
            name: "user7".into()
        })
    );
    let _ = memo.forget(&7).await;
    load_user(&cache, &db, 7).await;
    assert_eq!(db.calls.get(), 2);
    let stats = memo.stats();
    assert_eq!(stats.loads, 2);
}

#[memoize(cache = cache, skip(db, tag))]
async fn skipping(cache: &Cache, db: &Db, tag: &str, id: i64) -> i64 {
    db.calls.bump();
    let _ = tag;
    id * 2
}

#[tokio::test]
async fn skipped_parameters_are_not_part_of_the_key() {
    let cache = Cache::memory();
    let db = Db::default();
    assert_eq!(skipping(&cache, &db, "a", 2).await, 4);
    assert_eq!(skipping(&cache, &Db::default(), "b", 2).await, 4);
    assert_eq!(db.calls.get(), 1);
    let memo: Memo<i64, i64> = skipping_memo(&cache);
    assert_eq!(memo.get(&2).await.as_deref(), Some(&4));
}

#[derive(Clone, Debug, PartialEq)]
struct Failure(String);

#[memoize(cache = cache, skip(calls, fail))]
async fn fallible(cache: &Cache, calls: &Calls, fail: bool, id: u32) -> Result<u32, Failure> {
    calls.bump();
    if fail {
        return Err(Failure(format!("no {id}")));
    }
    Ok(id + 1)
}

#[tokio::test]
async fn errors_are_returned_and_not_cached() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(
        fallible(&cache, &calls, true, 1).await,
        Err(Failure("no 1".into()))
    );
    assert_eq!(
        fallible(&cache, &calls, true, 1).await,
        Err(Failure("no 1".into()))
    );
    assert_eq!(calls.get(), 2);
    assert_eq!(fallible(&cache, &calls, false, 1).await, Ok(2));
    assert_eq!(fallible(&cache, &calls, true, 1).await, Ok(2));
    assert_eq!(calls.get(), 3);
}

#[derive(Debug)]
struct ParseError;

impl From<std::num::ParseIntError> for ParseError {
    fn from(_: std::num::ParseIntError) -> Self {
        ParseError
    }
}

impl Clone for ParseError {
    fn clone(&self) -> Self {
        ParseError
    }
}

/// `?` in the body converts errors through `From`, as in any function.
#[memoize(cache = cache, skip(calls))]
async fn parse(cache: &Cache, calls: &Calls, text: &str) -> Result<i64, ParseError> {
    calls.bump();
    let n: i64 = text.trim().parse()?;
    Ok(n)
}

#[tokio::test]
async fn question_mark_works_in_the_body() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(parse(&cache, &calls, " 12 ").await.ok(), Some(12));
    assert!(parse(&cache, &calls, "x").await.is_err());
    assert!(parse(&cache, &calls, "x").await.is_err());
    assert_eq!(parse(&cache, &calls, " 12 ").await.ok(), Some(12));
    assert_eq!(calls.get(), 3);
}

#[memoize(cache = cache, skip(calls))]
async fn find(cache: &Cache, calls: &Calls, id: u8) -> Option<String> {
    calls.bump();
    (id % 2 == 0).then(|| format!("even {id}"))
}

#[memoize(cache = cache, skip(calls), cache_none = true)]
async fn find_keeping_none(cache: &Cache, calls: &Calls, id: u8) -> Option<String> {
    calls.bump();
    (id % 2 == 0).then(|| format!("even {id}"))
}

#[tokio::test]
async fn none_is_not_cached_by_default() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(find(&cache, &calls, 1).await, None);
    assert_eq!(find(&cache, &calls, 1).await, None);
    assert_eq!(calls.get(), 2);
    assert_eq!(find(&cache, &calls, 2).await.as_deref(), Some("even 2"));
    assert_eq!(find(&cache, &calls, 2).await.as_deref(), Some("even 2"));
    assert_eq!(calls.get(), 3);
}

#[tokio::test]
async fn cache_none_caches_none() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(find_keeping_none(&cache, &calls, 1).await, None);
    assert_eq!(find_keeping_none(&cache, &calls, 1).await, None);
    assert_eq!(calls.get(), 1);
}

#[memoize(cache = cache, skip(calls))]
async fn greet(cache: &Cache, calls: &Calls, name: &str, punctuation: &[char]) -> String {
    calls.bump();
    let mut greeting = format!("hello {name}");
    greeting.extend(punctuation);
    greeting
}

#[tokio::test]
async fn borrowed_arguments_key_like_owned_ones() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(greet(&cache, &calls, "ada", &['!']).await, "hello ada!");
    let owned = String::from("ada");
    assert_eq!(greet(&cache, &calls, &owned, &['!']).await, "hello ada!");
    assert_eq!(greet(&cache, &calls, "ada", &['?']).await, "hello ada?");
    assert_eq!(calls.get(), 2);

    // The key type is the owned tuple, and hashes like the borrowed one.
    let memo: Memo<(String, Vec<char>), String> = greet_memo(&cache);
    let key = ("ada".to_string(), vec!['!']);
    assert_eq!(
        memo.get(&key).await.as_deref().map(String::as_str),
        Some("hello ada!")
    );

    let _ = greet_forget(&cache, "ada", &['!']).await;
    assert!(memo.get(&key).await.is_none());
    greet(&cache, &calls, "ada", &['?']).await;
    assert_eq!(calls.get(), 2);
}

#[memoize(cache = cache, skip(calls))]
async fn nothing_but_cache(cache: &Cache, calls: &Calls) -> Vec<u32> {
    calls.bump();
    vec![1, 2, 3]
}

#[tokio::test]
async fn no_key_parameters_means_one_entry() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(nothing_but_cache(&cache, &calls).await, [1, 2, 3]);
    assert_eq!(nothing_but_cache(&cache, &calls).await, [1, 2, 3]);
    assert_eq!(calls.get(), 1);
    let memo: Memo<(), Vec<u32>> = nothing_but_cache_memo(&cache);
    assert!(memo.get(&()).await.is_some());
    let _ = nothing_but_cache_forget(&cache).await;
    nothing_but_cache(&cache, &calls).await;
    assert_eq!(calls.get(), 2);
}

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static STATIC_CALLS: Calls = Calls(AtomicUsize::new(0));

#[memoize(cache = CACHE, name = "static_square")]
async fn square(n: u64) -> u64 {
    STATIC_CALLS.bump();
    n * n
}

#[tokio::test]
async fn cache_given_as_a_static() {
    assert_eq!(square(12).await, 144);
    assert_eq!(square(12).await, 144);
    assert_eq!(STATIC_CALLS.get(), 1);
    let _ = square_forget(12).await;
    assert_eq!(square(12).await, 144);
    assert_eq!(STATIC_CALLS.get(), 2);
    let _ = square_forget_all().await;
    assert_eq!(square(12).await, 144);
    assert_eq!(STATIC_CALLS.get(), 3);
    let memo: Memo<u64, u64> = square_memo();
    assert_eq!(memo.name(), "static_square");
    assert_eq!(memo.get(&12).await.as_deref(), Some(&144));
}

fn make_cache() -> Cache {
    CACHE.clone()
}

static CALL_CALLS: Calls = Calls(AtomicUsize::new(0));

#[memoize(cache = make_cache())]
fn cube(n: u64) -> u64 {
    CALL_CALLS.bump();
    n * n * n
}

#[test]
fn cache_given_as_a_call_on_a_plain_function() {
    assert_eq!(cube(3), 27);
    assert_eq!(cube(3), 27);
    assert_eq!(CALL_CALLS.get(), 1);
    let _ = cube_forget(3);
    assert_eq!(cube(3), 27);
    assert_eq!(CALL_CALLS.get(), 2);
    let _ = cube_forget_all();
    assert_eq!(cube(3), 27);
    assert_eq!(CALL_CALLS.get(), 3);
}

#[memoize(cache = cache, timeout = 30, skip(calls))]
fn plain(cache: &Cache, calls: &Calls, word: &str) -> usize {
    calls.bump();
    word.len()
}

#[memoize(cache = cache, skip(calls))]
fn plain_fallible(cache: &Cache, calls: &Calls, word: &str) -> Result<usize, String> {
    calls.bump();
    if word.is_empty() {
        return Err("empty".into());
    }
    Ok(word.len())
}

#[test]
fn plain_functions_block() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(plain(&cache, &calls, "four"), 4);
    assert_eq!(plain(&cache, &calls, "four"), 4);
    assert_eq!(calls.get(), 1);
    let _ = plain_forget(&cache, "four");
    assert_eq!(plain(&cache, &calls, "four"), 4);
    assert_eq!(calls.get(), 2);
    let _ = plain_forget_all(&cache);
    assert_eq!(plain(&cache, &calls, "four"), 4);
    assert_eq!(calls.get(), 3);

    let calls = Calls::default();
    assert_eq!(plain_fallible(&cache, &calls, ""), Err("empty".into()));
    assert_eq!(plain_fallible(&cache, &calls, ""), Err("empty".into()));
    assert_eq!(plain_fallible(&cache, &calls, "ab"), Ok(2));
    assert_eq!(plain_fallible(&cache, &calls, "ab"), Ok(2));
    assert_eq!(calls.get(), 3);
}

#[test]
fn plain_functions_share_loads_between_threads() {
    let cache = Cache::memory();
    let calls = Calls::default();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| assert_eq!(slow_plain(&cache, &calls, 5), 10));
        }
    });
    assert_eq!(calls.get(), 1);
}

#[memoize(cache = cache, skip(calls))]
fn slow_plain(cache: &Cache, calls: &Calls, n: u32) -> u32 {
    calls.bump();
    std::thread::sleep(Duration::from_millis(50));
    n * 2
}

/// A value that cannot be cloned: returned as the memo's own `Arc`.
#[derive(Debug, Serialize, Deserialize)]
struct Page {
    html: String,
}

#[memoize(cache = cache, skip(calls))]
async fn render(cache: &Cache, calls: &Calls, path: &str) -> Arc<Page> {
    calls.bump();
    Arc::new(Page {
        html: format!("<h1>{path}</h1>"),
    })
}

static SHARED_PAGE: LazyLock<Arc<Page>> = LazyLock::new(|| {
    Arc::new(Page {
        html: "shared".into(),
    })
});

#[memoize(cache = cache, skip(calls))]
async fn render_shared(cache: &Cache, calls: &Calls, path: &str) -> Arc<Page> {
    calls.bump();
    let _ = path;
    Arc::clone(&SHARED_PAGE)
}

#[tokio::test]
async fn arc_results_are_the_memos_arc() {
    let cache = Cache::memory();
    let calls = Calls::default();
    let first = render(&cache, &calls, "/").await;
    let second = render(&cache, &calls, "/").await;
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(first.html, "<h1>/</h1>");
    assert_eq!(calls.get(), 1);
    let memo: Memo<String, Page> = render_memo(&cache);
    let cached = memo.get(&"/".to_string()).await;
    assert!(cached.is_some_and(|page| Arc::ptr_eq(&page, &first)));

    // An `Arc` shared elsewhere is returned, but cannot be cached.
    let calls = Calls::default();
    let page = render_shared(&cache, &calls, "/").await;
    assert!(Arc::ptr_eq(&page, &SHARED_PAGE));
    render_shared(&cache, &calls, "/").await;
    assert_eq!(calls.get(), 2);
}

#[memoize(cache = cache, skip(calls, fail))]
async fn render_fallible(
    cache: &Cache,
    calls: &Calls,
    fail: bool,
    path: &str,
) -> Result<Arc<Page>, Failure> {
    calls.bump();
    if fail {
        Err(Failure(path.to_owned()))
    } else {
        Ok(Arc::new(Page {
            html: path.to_owned(),
        }))
    }
}

#[tokio::test]
async fn result_of_arc() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(
        render_fallible(&cache, &calls, true, "/a")
            .await
            .unwrap_err(),
        Failure("/a".into())
    );
    let first = render_fallible(&cache, &calls, false, "/a").await.unwrap();
    let second = render_fallible(&cache, &calls, true, "/a").await.unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(calls.get(), 2);
}

/// A shard of data: serializable, so `&self` can be part of the key.
#[derive(Serialize)]
struct Shard {
    id: u32,
    #[serde(skip)]
    calls: Calls,
}

impl Shard {
    #[memoize(cache = cache, name = "Shard::lookup")]
    async fn lookup(&self, cache: &Cache, row: u32) -> String {
        self.calls.bump();
        format!("shard {} row {row}", self.id)
    }

    #[memoize(cache = cache, name = "Shard::size")]
    fn size(&self, cache: &Cache) -> u32 {
        self.calls.bump();
        self.id * 100
    }
}

#[tokio::test]
async fn methods_key_on_their_receiver() {
    let cache = Cache::memory();
    let one = Shard {
        id: 1,
        calls: Calls::default(),
    };
    let other_one = Shard {
        id: 1,
        calls: Calls::default(),
    };
    let two = Shard {
        id: 2,
        calls: Calls::default(),
    };
    assert_eq!(one.lookup(&cache, 5).await, "shard 1 row 5");
    assert_eq!(other_one.lookup(&cache, 5).await, "shard 1 row 5");
    assert_eq!(one.calls.get(), 1);
    assert_eq!(other_one.calls.get(), 0);
    assert_eq!(two.lookup(&cache, 5).await, "shard 2 row 5");
    assert_eq!(two.calls.get(), 1);

    // The helpers take `&self` because it is part of the key.
    let _ = one.lookup_forget(&cache, 5).await;
    one.lookup(&cache, 5).await;
    two.lookup(&cache, 5).await;
    assert_eq!((one.calls.get(), two.calls.get()), (2, 1));
    let _ = Shard::lookup_forget_all(&cache).await;
    two.lookup(&cache, 5).await;
    assert_eq!(two.calls.get(), 2);

    let memo: Memo<(Shard, u32), String> = Shard::lookup_memo(&cache);
    assert_eq!(memo.name(), "Shard::lookup");

    assert_eq!(two.size(&cache), 200);
    assert_eq!(two.size(&cache), 200);
    assert_eq!(two.calls.get(), 3);
    let _ = two.size_forget(&cache);
    assert_eq!(two.size(&cache), 200);
    assert_eq!(two.calls.get(), 4);
}

/// A service holding its own cache and database.
struct Service {
    cache: Cache,
    db: Db,
}

impl Service {
    #[memoize(cache = self.cache, timeout = 60)]
    async fn user(&self, id: i64) -> User {
        self.db.user(id).await
    }

    #[memoize(cache = cache, skip(self), name = "Service::count")]
    async fn count(&self, cache: &Cache, word: String) -> usize {
        self.db.calls.bump();
        word.len()
    }
}

#[tokio::test]
async fn methods_with_the_cache_or_receiver_left_out() {
    let service = Service {
        cache: Cache::memory(),
        db: Db::default(),
    };
    assert_eq!(service.user(3).await.id, 3);
    assert_eq!(service.user(3).await.id, 3);
    assert_eq!(service.db.calls.get(), 1);
    // `self` is used by the cache expression, so the helpers take `&self`.
    let _ = service.user_forget(3).await;
    service.user(3).await;
    assert_eq!(service.db.calls.get(), 2);
    let _ = service.user_forget_all().await;
    service.user(3).await;
    assert_eq!(service.db.calls.get(), 3);
    let memo: Memo<i64, User> = service.user_memo();
    assert!(memo.get(&3).await.is_some());

    // A skipped receiver: any service shares the entries.
    let cache = Cache::memory();
    let other = Service {
        cache: Cache::memory(),
        db: Db::default(),
    };
    assert_eq!(service.count(&cache, "four".into()).await, 4);
    assert_eq!(other.count(&cache, "four".into()).await, 4);
    assert_eq!(other.db.calls.get(), 0);
    let _ = Service::count_forget(&cache, "four".into()).await;
    assert_eq!(other.count(&cache, "four".into()).await, 4);
    assert_eq!(other.db.calls.get(), 1);
}

struct AppState {
    cache: Cache,
    calls: Calls,
}

#[memoize(cache = state.cache)]
async fn from_state(state: &AppState, id: u16) -> u16 {
    state.calls.bump();
    id + 1
}

#[memoize(cache = cache, skip(calls))]
async fn owned_cache(cache: Cache, calls: &Calls, id: u16) -> u16 {
    calls.bump();
    id + 2
}

#[tokio::test]
async fn cache_expressions_using_parameters() {
    let state = AppState {
        cache: Cache::memory(),
        calls: Calls::default(),
    };
    assert_eq!(from_state(&state, 1).await, 2);
    assert_eq!(from_state(&state, 1).await, 2);
    assert_eq!(state.calls.get(), 1);
    let _ = from_state_forget(&state, 1).await;
    assert_eq!(from_state(&state, 1).await, 2);
    assert_eq!(state.calls.get(), 2);

    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(owned_cache(cache.clone(), &calls, 1).await, 3);
    assert_eq!(owned_cache(cache.clone(), &calls, 1).await, 3);
    assert_eq!(calls.get(), 1);
    let _ = owned_cache_forget(cache.clone(), 1).await;
    assert_eq!(owned_cache(cache.clone(), &calls, 1).await, 3);
    assert_eq!(calls.get(), 2);
}

#[memoize(cache = cache, skip(calls))]
async fn with_lifetimes<'a>(cache: &'a Cache, calls: &'a Calls, name: &'a str) -> String {
    calls.bump();
    name.to_uppercase()
}

#[tokio::test]
async fn lifetime_parameters_are_fine() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(with_lifetimes(&cache, &calls, "a").await, "A");
    assert_eq!(with_lifetimes(&cache, &calls, "a").await, "A");
    assert_eq!(calls.get(), 1);
    let _ = with_lifetimes_forget(&cache, "a").await;
    with_lifetimes(&cache, &calls, "a").await;
    assert_eq!(calls.get(), 2);
}

fn manual_cache() -> (Cache, Clock) {
    let clock = Clock::manual();
    let cache = Cache::with_clock(CacheConfig::memory(100), clock.clone()).unwrap();
    (cache, clock)
}

#[memoize(cache = cache, timeout = 5, skip(calls))]
async fn five_seconds(cache: &Cache, calls: &Calls, id: u8) -> u8 {
    calls.bump();
    id
}

#[memoize(cache = cache, timeout_ms = 1500, skip(calls))]
async fn one_and_a_half_seconds(cache: &Cache, calls: &Calls, id: u8) -> u8 {
    calls.bump();
    id
}

#[memoize(cache = cache, timeout = 0, skip(calls))]
async fn forever(cache: &Cache, calls: &Calls, id: u8) -> u8 {
    calls.bump();
    id
}

#[memoize(cache = cache, skip(calls))]
async fn default_timeout(cache: &Cache, calls: &Calls, id: u8) -> u8 {
    calls.bump();
    id
}

#[tokio::test]
async fn timeouts() {
    let (cache, clock) = manual_cache();
    let calls = Calls::default();
    five_seconds(&cache, &calls, 1).await;
    clock.advance(Duration::from_millis(4_900));
    five_seconds(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 1);
    clock.advance(Duration::from_millis(200));
    five_seconds(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 2);

    let calls = Calls::default();
    one_and_a_half_seconds(&cache, &calls, 1).await;
    clock.advance(Duration::from_millis(1_400));
    one_and_a_half_seconds(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 1);
    clock.advance(Duration::from_millis(200));
    one_and_a_half_seconds(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 2);

    let calls = Calls::default();
    let default = cache.config().default_timeout.unwrap();
    forever(&cache, &calls, 1).await;
    default_timeout(&cache, &calls, 1).await;
    clock.advance(default - Duration::from_millis(100));
    default_timeout(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 2);
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    forever(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 2);
    default_timeout(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 3);
}

#[memoize(cache = cache, name = "shared_name", skip(calls))]
async fn first_spelling(cache: &Cache, calls: &Calls, id: u32) -> u32 {
    calls.bump();
    id
}

#[memoize(cache = cache, name = "shared_name", skip(calls))]
async fn second_spelling(cache: &Cache, calls: &Calls, id: u32) -> u32 {
    calls.bump();
    id + 1000
}

#[memoize(cache = cache, name = "shared_name")]
async fn clashing(cache: &Cache, id: u32) -> String {
    id.to_string()
}

#[tokio::test]
async fn memos_of_one_name_share_entries() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(first_spelling(&cache, &calls, 1).await, 1);
    assert_eq!(second_spelling(&cache, &calls, 1).await, 1);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
#[should_panic(expected = "#[memoize] on `clashing`")]
async fn one_name_with_other_types_panics() {
    let cache = Cache::memory();
    first_spelling(&cache, &Calls::default(), 1).await;
    clashing(&cache, 1).await;
}

#[memoize(cache = cache, skip(calls))]
async fn slow(cache: &Cache, calls: &Calls, id: u32) -> u32 {
    calls.bump();
    tokio::time::sleep(Duration::from_millis(50)).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn futures_are_send_and_loads_are_shared() {
    let cache = Cache::memory();
    let calls = Arc::new(Calls::default());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (cache, calls) = (cache.clone(), Arc::clone(&calls));
            tokio::spawn(async move { slow(&cache, &calls, 9).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 9);
    }
    assert_eq!(calls.get(), 1);
}

#[memoize(cache = cache, skip(calls))]
async fn early_return(cache: &Cache, calls: &Calls, n: i32) -> String {
    calls.bump();
    if n < 0 {
        return "negative".into();
    }
    "non-negative".into()
}

#[tokio::test]
async fn return_in_the_body_returns_the_value() {
    let cache = Cache::memory();
    let calls = Calls::default();
    assert_eq!(early_return(&cache, &calls, -1).await, "negative");
    assert_eq!(early_return(&cache, &calls, -1).await, "negative");
    assert_eq!(calls.get(), 1);
}

mod visibility {
    use memocache::{Cache, memoize};

    /// Public with its helpers.
    #[memoize(cache = cache)]
    pub async fn double(cache: &Cache, n: i32) -> i32 {
        n * 2
    }
}

#[tokio::test]
async fn helpers_have_the_functions_visibility() {
    let cache = Cache::memory();
    assert_eq!(visibility::double(&cache, 2).await, 4);
    let _ = visibility::double_forget(&cache, 2).await;
    let _ = visibility::double_forget_all(&cache).await;
    let _: Memo<i32, i32> = visibility::double_memo(&cache);
}

#[memoize(cache = cache, skip(calls))]
async fn two_caches(cache: &Cache, calls: &Calls, id: u32) -> u32 {
    calls.bump();
    id
}

/// The function keeps the memo of the first cache it sees in a `static`;
/// other caches still get their own entries, and the helpers reach both.
#[tokio::test]
async fn the_first_cache_and_later_ones_stay_apart() {
    let (first, second) = (Cache::memory(), Cache::memory());
    let (on_first, on_second) = (Calls::default(), Calls::default());
    for _ in 0..2 {
        two_caches(&first, &on_first, 1).await;
        two_caches(&second, &on_second, 1).await;
    }
    assert_eq!((on_first.get(), on_second.get()), (1, 1));

    let _ = two_caches_forget(&second, 1).await;
    two_caches(&first, &on_first, 1).await;
    two_caches(&second, &on_second, 1).await;
    assert_eq!((on_first.get(), on_second.get()), (1, 2));

    let _ = two_caches_forget_all(&first).await;
    two_caches(&first, &on_first, 1).await;
    two_caches(&second, &on_second, 1).await;
    assert_eq!((on_first.get(), on_second.get()), (2, 2));

    // A cache built later, after `first` is gone, is a cache of its own.
    drop(first);
    let third = Cache::memory();
    let on_third = Calls::default();
    two_caches(&third, &on_third, 1).await;
    assert_eq!(on_third.get(), 1);
}

#[memoize(cache = cache, skip(calls))]
async fn clear_me(cache: &Cache, calls: &Calls, id: u32) -> u32 {
    calls.bump();
    id
}

#[tokio::test]
async fn cache_clear_forgets_memoized_results() {
    let cache = Cache::memory();
    let calls = Calls::default();
    clear_me(&cache, &calls, 1).await;
    cache.clear().await.unwrap();
    clear_me(&cache, &calls, 1).await;
    assert_eq!(calls.get(), 2);
}

#[memoize(cache = cache, skip(calls))]
async fn on_null(cache: &Cache, calls: &Calls) -> u32 {
    calls.bump();
    1
}

#[tokio::test]
async fn a_null_cache_always_loads() {
    let cache = Cache::null();
    let calls = Calls::default();
    on_null(&cache, &calls).await;
    on_null(&cache, &calls).await;
    assert_eq!(calls.get(), 2);
}

/// A shape with an id, memoized per instance and argument, grouped by the
/// instance: `delete_memoized(shape.scaled)` forgets one shape's results.
#[derive(Serialize)]
struct Shape {
    id: u32,
    side: u64,
}

static SCALED_CALLS: LazyLock<Calls> = LazyLock::new(Calls::default);

impl Shape {
    #[memoize(cache = cache, group)]
    fn scaled(&self, cache: &Cache, factor: u64) -> u64 {
        SCALED_CALLS.bump();
        self.side * factor
    }
}

#[test]
fn a_group_is_one_instance_of_a_method() {
    let cache = Cache::memory();
    let (a, b) = (Shape { id: 1, side: 2 }, Shape { id: 2, side: 3 });
    let before = SCALED_CALLS.get();
    for factor in 1..=3 {
        assert_eq!(a.scaled(&cache, factor), 2 * factor);
        assert_eq!(b.scaled(&cache, factor), 3 * factor);
    }
    assert_eq!(SCALED_CALLS.get() - before, 6);
    // One instance's results go, the other's stay.
    assert!(a.scaled_forget_group(&cache).is_fleet());
    for factor in 1..=3 {
        a.scaled(&cache, factor);
        b.scaled(&cache, factor);
    }
    assert_eq!(SCALED_CALLS.get() - before, 9, "only `a` ran again");
    // One key of a grouped memo, through the generated helper.
    assert!(b.scaled_forget(&cache, 2).is_fleet());
    b.scaled(&cache, 2);
    assert_eq!(SCALED_CALLS.get() - before, 10);
    // The typed memo sees the same groups.
    let memo = Shape::scaled_memo(&cache);
    assert!(memo.is_grouped());
}

/// One user's pages, grouped by user.
#[memoize(cache = cache, group, skip(calls))]
async fn page_of(cache: &Cache, calls: &Calls, user: &str, page: u32) -> String {
    calls.bump();
    format!("{user}:{page}")
}

#[tokio::test]
async fn a_group_is_one_user_of_a_free_function() {
    let cache = Cache::memory();
    let calls = Calls::default();
    for page in 0..3 {
        page_of(&cache, &calls, "ada", page).await;
        page_of(&cache, &calls, "grace", page).await;
    }
    assert!(page_of_forget_group(&cache, "ada").await.is_fleet());
    for page in 0..3 {
        page_of(&cache, &calls, "ada", page).await;
        page_of(&cache, &calls, "grace", page).await;
    }
    assert_eq!(
        calls.get(),
        9,
        "ada's three pages loaded again, grace's served"
    );
    // The typed memo's `forget_group` takes the owned first key type.
    let memo = page_of_memo(&cache);
    assert!(memo.forget_group(&"grace".to_owned()).await.is_fleet());
    page_of(&cache, &calls, "grace", 0).await;
    assert_eq!(calls.get(), 10);
}
