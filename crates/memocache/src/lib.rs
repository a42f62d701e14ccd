//! Flask-Caching for Rust: typed memoization with per-argument and
//! whole-function invalidation, Flask-Caching's low-level cache API, and
//! pluggable stores.
//!
//! # Quick start
//!
//! The message board this crate was written for memoizes two functions, as
//! its Flask ancestor did: the user loaded on every authenticated request
//! (600 s, forgotten at logout) and the list of all messages (5 s, forgotten
//! when a message is posted or deleted).
//!
//! ```
//! use std::time::Duration;
//! use memocache::{Cache, Memo};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! struct User { id: i64, name: String }
//!
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! struct Message { id: i64, author: String, text: String }
//!
//! struct Memos {
//!     load_user: Memo<i64, User>,
//!     all_messages: Memo<(), Vec<Message>>,
//! }
//!
//! # async fn db_user(id: i64) -> User { User { id, name: "ada".into() } }
//! # async fn db_messages() -> Vec<Message> { vec![] }
//! # async fn db_insert(_: Message) {}
//! # async fn run() -> Result<(), memocache::Error> {
//! let cache = Cache::from_url("memory://?capacity=10000")?;
//! let memos = Memos {
//!     load_user: Memo::builder("load_user")
//!         .timeout(Duration::from_secs(600))
//!         .build(&cache)?,
//!     all_messages: Memo::builder("all_messages")
//!         .timeout(Duration::from_secs(5))
//!         .build(&cache)?,
//! };
//!
//! // Every authenticated request:
//! let user = memos.load_user.get_or_load(&7, || db_user(7)).await;
//! // The home page:
//! let messages = memos.all_messages.get_or_load(&(), db_messages).await;
//!
//! // Posting a message: `cache.delete_memoized(get_all_messages)`.
//! db_insert(Message { id: 1, author: user.name.clone(), text: "hi".into() }).await;
//! memos.all_messages.forget_all().await;
//!
//! // Logout: `cache.delete_memoized(load_user, user_id)`.
//! memos.load_user.forget(&user.id).await;
//! # Ok(()) }
//! # futures::executor::block_on(run()).unwrap();
//! ```
//!
//! The same, spelled with the attribute macro (feature `macros`, on by
//! default):
//!
//! ```
//! # use memocache::{Cache, memoize};
//! # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct User { id: i64 }
//! # struct Db;
//! # impl Db { async fn user(&self, id: i64) -> User { User { id } } }
//! #[memoize(cache = cache, timeout = 600, skip(db))]
//! async fn load_user(cache: &Cache, db: &Db, user_id: i64) -> User {
//!     db.user(user_id).await
//! }
//! # futures::executor::block_on(async {
//! let cache = Cache::memory();
//! let user = load_user(&cache, &Db, 7).await;
//! load_user_forget(&cache, 7).await; // at logout
//! # });
//! ```
//!
//! # How it differs from Flask-Caching
//!
//! - Keys are typed: forgetting with an argument of the wrong type does not
//!   compile, where Flask-Caching silently forgets nothing.
//! - Values are never pickled. In memory they are kept as `Arc<V>` (a hit is
//!   a table lookup and a reference count); remote stores keep a bounded
//!   serde encoding that cannot execute code.
//! - Concurrent misses of one key run one load (Flask-Caching runs one per
//!   thread), and a load that started before an invalidation never stores
//!   its stale result afterwards.
//! - Store faults do not fail the request: the value is loaded from the
//!   source and the fault is counted (fail-open). Strict mode returns them
//!   from the low-level API.
//! - The in-process capacity applies to each memo and to the low-level key
//!   space separately, so a flood of one kind of entry cannot evict another.
//!
//! # Stores
//!
//! A cache is built from a URL (see [`CacheConfig::from_url`]):
//! `memory://` keeps typed values in process; `redis://`,
//! `redis+cluster://`, `memcached://` and `file://` keep encoded values in
//! a store shared by every process; `tiered+redis://` keeps an in-process
//! L1 in front of Redis and keeps every process's L1 coherent through an
//! invalidation [`bus`]: when `forget` returns, no process serves the old
//! value. Store faults never fail a memo: the value is loaded from the
//! source, and the fault is counted ([`MemoStats::store_errors`]) and
//! logged once per burst.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `macros` | yes | the [`memoize`] attribute macro |
//! | `redis` | yes | Redis and Redis Cluster stores, the Redis Streams bus for tiered caches |
//! | `memcached` | yes | the Memcached store |
//! | `filesystem` | yes | the filesystem store |
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod breaker;
pub mod bus;
mod cache;
mod clock;
mod codec;
mod config;
mod error;
mod fault;
mod flight;
mod key;
mod local;
mod memo;
mod metrics;
mod none;
mod stats;
pub mod store;
mod value;

pub use breaker::{BreakerConfig, BreakerState, BreakerStats};
pub use cache::Cache;
pub use clock::Clock;
pub use config::{
    CacheConfig, DEFAULT_CAPACITY, DEFAULT_MAX_VALUE_SIZE, DEFAULT_TIMEOUT, StoreConfig, Timeout,
};
pub use error::{Error, ErrorKind, Result};
pub use key::{KeyHash, memo_key};
pub use memo::{Memo, MemoBuilder};
pub use stats::MemoStats;
pub use value::CacheValue;

#[cfg(feature = "macros")]
pub use memocache_macros::memoize;

#[doc(hidden)]
pub mod __private {
    //! Used by the code `#[memoize]` generates; not a public API.
    pub use futures_executor::block_on;
    pub use std::sync::{Arc, OnceLock};
}

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
