//! The `#[memoize]` attribute macro for [memocache]: Flask-Caching's
//! `@cache.memoize(timeout=...)`, typed.
//!
//! Use it through `memocache` (feature `macros`, on by default), which
//! re-exports it as `memocache::memoize`.
//!
//! ```
//! use memocache::{Cache, memoize};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct User { id: i64, name: String }
//!
//! struct Db;
//! impl Db {
//!     async fn user(&self, id: i64) -> User { User { id, name: "ada".into() } }
//! }
//!
//! // Cached for 600 s per `user_id`; `cache` and `db` are not part of the key.
//! #[memoize(cache = cache, timeout = 600, skip(db))]
//! async fn load_user(cache: &Cache, db: &Db, user_id: i64) -> User {
//!     db.user(user_id).await
//! }
//!
//! # futures::executor::block_on(async {
//! let cache = Cache::memory();
//! let user = load_user(&cache, &Db, 7).await; // runs the body
//! let again = load_user(&cache, &Db, 7).await; // a cache hit
//! assert_eq!(again.name, user.name);
//!
//! // At logout: `delete_memoized(load_user, 7)`; says whether every process heard it.
//! assert!(load_user_forget(&cache, 7).await.is_fleet());
//! assert!(load_user_forget_all(&cache).await.is_fleet()); // `delete_memoized(load_user)`
//! let memo = load_user_memo(&cache); // the typed `Memo<i64, User>`
//! assert_eq!(memo.name(), "load_user");
//! # });
//! ```
//!
//! [memocache]: https://docs.rs/memocache

use proc_macro::TokenStream;

mod args;
mod expand;
mod sig;

/// Memoizes a function: its body runs once per distinct key, and later
/// calls with the same key return the cached result until it expires or
/// is forgotten. Flask-Caching's `@cache.memoize(timeout=...)`.
///
/// ```
/// # use memocache::{Cache, memoize};
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct User { id: i64 }
/// # struct Db;
/// # impl Db { async fn user(&self, id: i64) -> User { User { id } } }
/// #[memoize(cache = cache, timeout = 600, skip(db))]
/// async fn load_user(cache: &Cache, db: &Db, user_id: i64) -> User {
///     db.user(user_id).await
/// }
/// ```
///
/// generates, next to the function and with its visibility:
///
/// ```text
/// async fn load_user_forget(cache: &Cache, user_id: i64) -> Reach  // delete_memoized(load_user, user_id)
/// async fn load_user_forget_all(cache: &Cache) -> Reach            // delete_memoized(load_user)
/// fn load_user_memo(cache: &Cache) -> Memo<i64, User>     // the typed memo, for the fast path
/// ```
///
/// The forget helpers take the key parameters with the function's own
/// types. On a method they are associated functions of the same `impl`
/// (taking `&self` when `self` is part of the key or of the cache
/// expression), so `#[memoize]` works in inherent `impl` blocks but not in
/// trait impls, which cannot have extra items.
///
/// # Options
///
/// | option | meaning |
/// |--------|---------|
/// | `cache = <expr>` | **Required.** The cache: an expression of type `&Cache`, `Cache`, or anything that derefs to `Cache` (a `static CACHE: LazyLock<Cache>`). Parameters it names (`cache`, or `state` in `state.cache`) are left out of the key, and the helpers take them first, with the same types. Otherwise (`crate::CACHE`, `cache()`) the helpers take no cache parameter. |
/// | `timeout = <secs>` | How long results live, in whole seconds; `0` = never expire. Absent: the cache's default timeout. |
/// | `timeout_ms = <ms>` | The same in milliseconds. Give one of `timeout` and `timeout_ms`. |
/// | `skip(a, b, self)` | Parameters left out of the key: database handles, loggers… |
/// | `name = "..."` | The memo's name, unique per cache (it is part of the stored keys). Default: the function's name. |
/// | `cache_none = <bool>` | Whether `None` (or `()`) results are cached. Default `false`, as Flask-Caching's `cache_none=False`. |
/// | `unless = <fn or closure>` | `Fn() -> bool`, asked on every call: when true, the body runs and nothing is read or stored. Flask-Caching's `unless`. See `MemoBuilder::unless`. |
/// | `forced_update = <fn or closure>` | `Fn() -> bool`, asked on every call: when true, the body runs and its result is stored over the cached one. Flask-Caching's `forced_update`. See `MemoBuilder::forced_update`. |
/// | `filter = <fn or closure>` | `Fn(&V) -> bool`, asked when the body ran: results it refuses are returned but not kept. Flask-Caching's `response_filter`, for any value. See `MemoBuilder::filter`. |
/// | `source_check = <bool>` | Whether values stored by another version of the function's code are misses (see "Source check"). Default `true`. |
/// | `group` | Groups results by the first key parameter (`self` on a method: one instance), and generates `<name>_forget_group`, which forgets one group's results in O(1): Flask-Caching's `delete_memoized(obj.method)`. Needs two key parameters or more. See `Memo::forget_group`. |
///
/// On methods the default name is the method's name alone: give `name`
/// when methods of one name on two types are memoized in one cache.
/// Memos of one name with the same key and value types share entries;
/// with other types the first call panics (see below).
///
/// # The key
///
/// Every parameter that is neither skipped nor used by the cache expression
/// is part of the key, including the receiver (`self`, `&self`, …), which
/// then needs `Self: Serialize`. The memo's key type `K` is the tuple of
/// the owned versions of their types (`&str` → `String`, `&[T]` →
/// `Vec<T>`, `&T` → `T`, also inside tuples and generic arguments:
/// `Option<&str>` → `Option<String>`), the type alone for a single key
/// parameter, and `()` for none. Calls hash the arguments by reference
/// (the owned and borrowed types serialize alike), so nothing is cloned.
///
/// A key is the arguments' *value*: equal arguments share one entry, and
/// the forget helper with equal arguments forgets it. Maps and hash sets
/// count whatever order they iterate in (a `&HashMap` argument built anew
/// finds the entry of an equal one), `0.0` and `-0.0` are one key, and so
/// are all NaNs; see `Memo`'s "Keys" for the details.
///
/// # Changing the timeout at run time
///
/// `<name>_memo(&cache).set_timeout(...)` changes the timeout of the
/// function's memo on that cache, for every call from then on (Flask-Caching's
/// `f.cache_timeout = ...`); values already stored keep theirs.
///
/// ```
/// # use memocache::{Cache, Timeout, memoize};
/// #[memoize(cache = cache, timeout = 600)]
/// fn square(cache: &Cache, n: u64) -> u64 {
///     n * n
/// }
///
/// let cache = Cache::memory();
/// square_memo(&cache).set_timeout(Timeout::secs(60));
/// assert_eq!(square_memo(&cache).timeout(), Some(std::time::Duration::from_secs(60)));
/// assert_eq!(square(&cache, 12), 144); // stored for 60 s
/// ```
///
/// ```
/// # use memocache::{Cache, memoize};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// static PREVIEW: AtomicBool = AtomicBool::new(false);
///
/// #[memoize(
///     cache = cache,
///     timeout = 60,
///     unless = || PREVIEW.load(Ordering::Relaxed),
///     filter = |hits: &Vec<u64>| !hits.is_empty()
/// )]
/// fn search(cache: &Cache, query: &str) -> Vec<u64> {
///     if query == "rust" { vec![7] } else { vec![] }
/// }
///
/// let cache = Cache::memory();
/// assert!(search(&cache, "nothing").is_empty()); // returned, not kept
/// assert_eq!(search_memo(&cache).stats().loads, 1);
/// search(&cache, "nothing");
/// assert_eq!(search_memo(&cache).stats().loads, 2); // loaded again
/// ```
///
/// # Source check
///
/// A deploy that changes the function's code reads none of the values the
/// old code stored (Flask-Caching's `source_check=True`, on by default
/// here): the macro hashes the function's signature and body as tokens at
/// compile time and gives the hash to the memo
/// (`MemoBuilder::source_hash`), which stamps every value it stores in a
/// shared store; a value with another stamp is a miss and is replaced. It
/// costs nothing at run time: the in-process tier needs no stamp (one
/// process runs one build), and the stamp is checked where a value is
/// decoded anyway.
///
/// - Whitespace, comments and doc comments are not tokens, so they do not
///   count; any other edit of the function does, including one that does
///   not change its results (the next deploy loads every key once more).
/// - Only the function's own text counts: a change in a function it calls
///   is not seen. Rename the memo (`name`), or `<name>_forget_all` at
///   deploy, for those.
/// - Invalidation is not split: names, versions and keys stay the same, so
///   `<name>_forget` and `<name>_forget_all` from either build reach both
///   builds' entries, fleet-wide. During a rolling deploy the two builds
///   each read the other's value of a key as a miss and replace it.
/// - The token text comes from the compiler: a new toolchain may format it
///   otherwise, which costs one cold cache, never a wrong value.
///
/// Opt out with `source_check = false`, for a memo whose entries must
/// survive edits of its function (an expensive load whose result an edit
/// does not change):
///
/// ```
/// # use memocache::{Cache, memoize};
/// #[memoize(cache = cache, timeout = 3600, source_check = false)]
/// fn report(cache: &Cache, day: u32) -> String {
///     format!("report for day {day}") // reformatting this keeps yesterday's entries
/// }
/// let cache = Cache::memory();
/// assert_eq!(report(&cache, 3), "report for day 3");
/// ```
///
/// # The result
///
/// - `-> V`: the cached `Arc<V>` is cloned out, so `V: Clone`.
/// - `-> Arc<T>`: the memo's `Arc<T>` is returned as is (`V = T`, no clone).
///   If the body returns an `Arc` that is shared elsewhere, its value cannot
///   move into the memo; that result is returned but not cached.
/// - `-> Result<V, E>` (any type whose last path segment is `Result`, with
///   the value type as its first argument, such as `io::Result<V>`): only
///   `Ok` values are cached; errors go to this call and to calls waiting
///   on the same load, and need `E: Clone` when shared. `Result<Arc<T>, E>`
///   combines both.
///
/// `V` must be a `CacheValue` (`Serialize + DeserializeOwned + Send +
/// Sync + 'static`).
///
/// # Cost of a call
///
/// The function keeps the memo of the first cache it is called with in a
/// `static`, so calls on that cache (usually the application's only one)
/// go straight to the lookup; that cache then stays alive for the life of
/// the process. Calls on other caches, calls of methods whose key or value
/// type names `Self`, and the helpers find the memo in the cache's registry
/// (a short mutex-guarded lookup). Code that wants to skip even the
/// first check can keep the handle from `<name>_memo` and call it directly.
///
/// # Plain and async functions
///
/// On an `async fn` the helpers are `async` too. A plain `fn` and its
/// helpers block the calling thread while another caller loads the same
/// key; do not call them from inside an async task.
///
/// # Limits
///
/// - Generic functions (type or const parameters) are rejected: a memo has
///   one key type and one value type. Lifetime parameters are fine. In a
///   generic `impl` block the key and value types cannot name the block's
///   type parameters (the `static` above cannot); `Self` is fine.
/// - At most 12 key parameters (group more in a struct).
/// - Key parameters must be plain names (not patterns such as
///   `(a, b): (i32, i32)`) and cannot be `impl Trait`.
/// - The body runs in a closure while the key borrows the key parameters,
///   so it cannot move or mutate a key parameter: take `&str` instead of
///   `String`, `&T` instead of `T` (the key is the same), or clone.
///   Skipped parameters can be moved freely.
///
/// # Panics
///
/// The function and its helpers panic if a memo of the same name but with
/// other key or value types is already built on the cache: give one of
/// them another `name`.
///
/// # Errors
///
/// Misuse is reported at compile time, at the offending token: a missing
/// `cache`, an unknown option, `skip` naming no parameter, a generic
/// function, an `impl Trait` or pattern key parameter, a timeout that is
/// not a whole number, or both `timeout` and `timeout_ms`.
#[proc_macro_attribute]
pub fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::memoize(attr.into(), &item.into()).into()
}
