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
//!   compile, where Flask-Caching silently forgets nothing (the
//!   compile-fail cases `forget_wrong_key_type` and
//!   `bypass_wrong_key_type` in `memocache-macros/tests/ui`: the helpers
//!   `#[memoize]` expands to take the key as parts checked against the
//!   memo's key type, not any `Serialize`).
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
//!   It counts entries, or bytes ([`CacheConfig::capacity_bytes`]: a memo
//!   of megabyte pages and one of counters each keep what fits their
//!   budget), where Flask-Caching's `CACHE_THRESHOLD` counts entries only.
//! - Keys are values, in every process: equal arguments (maps and sets in
//!   any iteration order included) share one entry, where Flask-Caching
//!   keys an object on its identity.
//! - Forgetting one instance's entries of a memoized method
//!   (`delete_memoized(obj.method)`), or one user's pages, is O(1) and
//!   fleet-wide: a memo built [`grouped`](MemoBuilder::grouped) (or
//!   `#[memoize(group)]`) keeps a version per first key argument, and
//!   [`Memo::forget_group`] bumps it, where Flask-Caching bumps a version
//!   per function and instance too but only in one cache.
//!
//! - A hot key can be reloaded before it expires
//!   ([`MemoBuilder::refresh_ahead`]): one background reload per key in the
//!   fleet, while readers keep the current value, where Flask-Caching makes
//!   the readers of an expired key wait for its load.
//!
//! Flask-Caching's own test suite (`test_memoize.py`, `test_cache.py`,
//! `test_view.py`) is walked test by test in `tests/suite/parity/`, and
//! `PARITY.md` (next to this crate's `Cargo.toml`) tables every one of its
//! tests: ours, and whether the behaviour is the same, spelled
//! differently, different by design, missing, or Python-only.
//!
//! # Responses and fragments
//!
//! With the `axum` feature, `response::ResponseCacheLayer` caches whole
//! responses (Flask-Caching's `@cache.cached`), with ETags and `304`s, a
//! gzip and brotli encodings stored once, stale-if-error and single flight;
//! [`Fragments`] caches rendered pieces of pages (Jinja's `{% cache %}`).
//! Both record the memos, keys and [tags](Cache::tag) the view read and are
//! dropped when any of them is invalidated, in every process of a tiered
//! cache before the invalidation returns: no URL is ever purged by hand.
//!
//! # Stores
//!
//! A cache is built from a URL (see [`CacheConfig::from_url`]):
//! `memory://` keeps typed values in process; `redis://`,
//! `redis+cluster://`, `redis+sentinel://`, `memcached://` and `file://`
//! keep encoded values in a store shared by every process;
//! `tiered+redis://`, `tiered+redis+cluster://` and
//! `tiered+redis+sentinel://` keep an in-process L1 in front of Redis and
//! keep every process's L1 coherent through an invalidation [`bus`]: when
//! `forget` returns, no process serves the old value. Store faults never
//! fail a memo: the value is loaded from the source, and the fault is
//! counted ([`MemoStats::store_errors`]) and logged once per burst. A
//! store or bus that times out is skipped by a [`breaker`] until a
//! background probe gets through, so a silent partition costs one
//! timeout, not one per request.
//!
//! # Guarantees by store
//!
//! Each cell names the test that backs it (`suite::` is the integration
//! suite in `tests/suite`, the rest are unit tests in `src/`).
//!
//! - **single-flight**: concurrent misses of one key in one process run one
//!   load, whether the store answers or not.
//! - **fleet lease**: concurrent misses in several processes run one load;
//!   the others wait for its value in the shared store.
//! - **no stale set**: a load that started before a `forget` (here or in
//!   another process) never stores its result after the `forget` returned.
//! - **coherent L1**: after `forget` returns, no process serves the old
//!   value from its in-process tier.
//! - **fail-open**: a dead store costs a bounded time per call and the
//!   value comes from the source.
//! - **breaker**: a silent (black-holed) store costs one timeout, then
//!   nothing until a probe closes the breaker; a read waits at most the
//!   read deadline (15 ms by default, [`BreakerConfig::read_deadline`]).
//! - **durable invalidation** (any shared store, with an
//!   [`outbox::Outbox`] in the application's database): a forget that
//!   missed the store or the bus says so ([`Reach`]); one recorded with its
//!   write is delivered by any process's [`outbox::Relay`], so a writer cut
//!   off or killed after its commit leaves no process serving the old value
//!   beyond the relay's bound (`suite::outbox::a_cut_off_writers_invalidation_is_delivered_by_another_process`,
//!   `suite::outbox::a_forget_that_meets_a_fault_is_delivered_afterwards`,
//!   `outbox::tests::the_relay_delivers_at_grace_and_confirms_at_settle`; in
//!   the board, `fleet::durable` on SQLite and on DynamoDB, with partitions,
//!   SIGKILLed writers and a seeded random fault schedule).
//!
//! - **failover forgets nothing** (Redis Sentinel): no value forgotten
//!   (`forget`, `forget_all`, `delete`) before a failover is served after
//!   it, even when the promoted replica never received that forget
//!   (asynchronous replication). Keys are filed under the master's
//!   replication history, which a promotion changes, so nothing written
//!   before the failover is read after it, and each process's bus clears
//!   its L1 when it meets the new history; the price is one load per key
//!   after a failover (see
//!   [`RedisStore::open_sentinel`](store::RedisStore::open_sentinel)).
//!   Tested with forgets that the promoted replica never got, the master
//!   SIGKILLed (`suite::sentinel::the_store_follows_a_failover_and_serves_nothing_forgotten_before_it`,
//!   `suite::sentinel::tiered_processes_follow_a_failover_and_serve_nothing_forgotten_before_it`)
//!   or failed over by `SENTINEL FAILOVER` while still up
//!   (`suite::sentinel::a_planned_failover_is_followed_and_serves_nothing_forgotten_before_it`).
//!   The bound it leaves is the split brain Redis Sentinel itself has: a
//!   forget made on the old master *after* the promotion, while it still
//!   accepts writes, is not seen by a process already on the new one, and
//!   in a tiered cache a forget made on the new master may not reach a
//!   process whose bus still reads the old one. A process checks its
//!   master against a sentinel every second (store and bus), so for
//!   processes in use that window closes about a second (plus a quarter
//!   heartbeat) after the sentinels switch; untested beyond the store's
//!   planned failover (a partitioned old master: bound it on the server
//!   with `min-replicas-to-write` and `min-replicas-max-lag`).
//!
//! | store | single-flight | fleet lease | no stale set | coherent L1 | fail-open | breaker |
//! |---|---|---|---|---|---|---|
//! | `memory` | `memo::tests::concurrent_misses_share_one_load` | n/a (one process) | `memo::tests::load_started_before_forget_does_not_store_afterwards` | n/a (the L1 is the store) | n/a | n/a |
//! | `redis` | as `memory` (the in-process flight is the same engine on every store), also with the store out: `suite::partition::a_black_holed_redis_costs_one_timeout_then_recovers_within_a_probe` | `suite::fleet::redis::one_load_for_the_fleet` | `suite::fleet::redis::a_forget_racing_a_fill_never_leaves_the_old_value` | n/a (no L1) | `suite::remote_faults::redis_dies_mid_test_and_comes_back` | `suite::partition::a_black_holed_redis_costs_one_timeout_then_recovers_within_a_probe` |
//! | `redis+cluster` | as `memory` | `suite::fleet::redis_cluster::one_load_for_the_fleet` | `suite::fleet::redis_cluster::a_forget_racing_a_fill_never_leaves_the_old_value` | n/a (no L1) | `suite::cluster_partition::a_black_holed_cluster_node_opens_only_its_own_breaker` (one node cut off; a process started during it) | per node: `breaker::tests::a_node_that_times_out_opens_only_its_own_breaker`, `suite::cluster_partition::a_black_holed_cluster_node_opens_only_its_own_breaker` |
//! | `memcached` | as `memory` | `suite::fleet::memcached::one_load_for_the_fleet` | `suite::fleet::memcached::a_forget_racing_a_fill_never_leaves_the_old_value` | n/a (no L1) | `suite::remote_faults::memcached_dies_and_comes_back` | `suite::partition::a_black_holed_memcached_costs_one_timeout_and_mixes_up_no_replies` |
//! | `file` | as `memory` | `suite::fleet::filesystem::one_load_for_the_fleet` | `suite::fleet::filesystem::a_forget_racing_a_fill_never_leaves_the_old_value` | n/a (no L1) | n/a (local disk; errors fail open as on every store) | `breaker::tests` (the same wrapper); untested under a fault |
//! | `tiered+redis` | as `memory` | as `redis` | as `redis` | `suite::tiered::single::forget_on_one_process_reaches_the_other_before_it_returns`, `suite::tiered::single::killed_bus_connection_never_yields_a_stale_read`, `suite::tiered::single::redis_restart_clears_l1_instead_of_trusting_it` | `suite::tiered::single::redis_restart_clears_l1_instead_of_trusting_it` | `suite::partition::a_black_holed_bus_drops_the_process_to_read_through_never_stale` (store and bus) |
//! | `redis+sentinel` | as `memory` | as `redis` (same commands, on the master) | as `redis`; across a failover, `suite::sentinel::the_store_follows_a_failover_and_serves_nothing_forgotten_before_it`, `suite::sentinel::a_planned_failover_is_followed_and_serves_nothing_forgotten_before_it` | n/a (no L1) | `suite::sentinel::the_store_follows_a_failover_and_serves_nothing_forgotten_before_it` (the master killed) | as `redis`; untested under a black hole |
//! | `tiered+redis+sentinel` | as `memory` | as `redis+sentinel` | as `redis+sentinel` | `suite::sentinel::tiered_processes_follow_a_failover_and_serve_nothing_forgotten_before_it` | as `redis+sentinel` | as `redis+sentinel` |
//! | `tiered+redis+cluster` | as `memory` | as `redis+cluster` | as `redis+cluster` | `suite::tiered::cluster::forget_on_one_process_reaches_the_other_before_it_returns`, `suite::tiered::cluster::killed_bus_connection_never_yields_a_stale_read`, `suite::tiered::cluster::redis_restart_clears_l1_instead_of_trusting_it`, `suite::tiered::cluster::versions_follow_a_redis_that_restarted_empty`, `suite::cluster_partition::tiered_on_a_cluster_a_black_holed_data_node_is_never_a_stale_read` | `suite::tiered::cluster::redis_restart_clears_l1_instead_of_trusting_it` | `suite::cluster_partition::tiered_on_a_cluster_a_black_holed_data_node_is_never_a_stale_read` (a data node), `suite::cluster_partition::tiered_on_a_cluster_a_black_holed_bus_node_drops_to_read_through` (the bus's node) |
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `macros` | yes | the [`memoize`] attribute macro |
//! | `redis` | yes | Redis, Redis Cluster and Redis Sentinel stores, the Redis Streams bus for tiered caches |
//! | `memcached` | yes | the Memcached store |
//! | `filesystem` | yes | the filesystem store |
//! | `axum` | no | [`response::ResponseCacheLayer`]: whole-response caching for axum with invalidation by dependency |
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The rooms, from the top (each imports only rooms below it; no import
// runs back up: `farm-studio look crates/memocache/src`):
// - memo/ (`Memo`, `#[memoize]`'s runtime: find, load, forget; groups,
//   hooks, refresh ahead), response/ (the axum layer), fragment, outbox/
//   (durable invalidation), metrics;
// - cache/ (the `Cache` handle, the low-level API, invalidation, the bus
//   link); bus/ (the tiered cache's invalidation bus over Redis Streams);
// - store/ (Redis, Cluster, Sentinel, Memcached, files; `guarded.rs` the
//   breaker around them); config/ (types, URL parser, environment);
//   registry, deps (invalidation stamps), local (the in-process table,
//   by count or bytes), flight/ (single flight and its shuttle model);
// - breaker (policy), codec, key/ (canonical keys), intent, fault;
// - error, reach, clock, stats, value, none, sync, redis_conn,
//   redis_sentinel (finding the master).
// Files over 600 lines, each one job: memo/mod.rs (the `Memo` type and
// builder), memo/load.rs (how a memo finds, loads and forgets a value),
// key/encode.rs (the key encoder), bus/redis.rs (the bus over Streams),
// store/memcached.rs, store/redis/mod.rs (one store each), cache/mod.rs
// (the `Cache` handle), local.rs (the in-process table).
pub mod breaker;
pub mod bus;
mod cache;
mod clock;
mod codec;
mod config;
mod deps;
mod error;
mod fault;
mod flight;
mod fragment;
mod intent;
mod key;
mod local;
mod memo;
mod metrics;
mod none;
pub mod outbox;
mod reach;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(feature = "redis")]
mod redis_sentinel;
mod registry;
#[cfg(feature = "axum")]
pub mod response;
mod stats;
pub mod store;
mod sync;
mod value;

pub use breaker::{BreakerConfig, BreakerState, BreakerStats};
pub use cache::Cache;
pub use clock::Clock;
pub use config::{
    CacheConfig, DEFAULT_CAPACITY, DEFAULT_MAX_VALUE_SIZE, DEFAULT_TIMEOUT, ENV_URL_VARIABLE,
    RedisOptions, StoreConfig, Timeout, parse_size,
};
pub use error::{Error, ErrorKind, Result};
pub use fragment::Fragments;
pub use memo::{GroupedKey, Memo, MemoBuilder};
pub use reach::Reach;
pub use stats::MemoStats;
pub use value::CacheValue;

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use memocache_macros::memoize;

#[doc(hidden)]
pub mod __private {
    //! Used by the code `#[memoize]` generates; not a public API.
    pub use crate::key::{KeyHash, memo_key};
    pub use crate::memo::{KeyParts, Part};
    pub use futures_executor::block_on;
    pub use std::sync::{Arc, OnceLock};
}

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
