//! Whole-response caching for axum (feature `axum`): Flask-Caching's
//! `@cache.cached` as a tower layer, with ETag/304, stored encodings,
//! stale-if-error and invalidation by dependency.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), memocache::Error> {
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use memocache::{Cache, Memo, response::ResponseCacheLayer};
//!
//! let cache = Cache::memory();
//! let messages = Memo::<(), Vec<String>>::builder("messages").build(&cache)?;
//! let pages = ResponseCacheLayer::new(&cache)
//!     .timeout(Duration::from_secs(300))
//!     .stale_if_error(Duration::from_secs(600));
//!
//! let view = {
//!     let messages = messages.clone();
//!     move || async move {
//!         let all = messages.get_or_load(&(), || async { vec!["hi".into()] }).await;
//!         all.join("\n")
//!     }
//! };
//! let app: Router = Router::new().route("/", get(view)).layer(pages.clone());
//!
//! // Posting a message: the home page read `messages`, so this alone
//! // makes its next response fresh, in every process of a tiered cache.
//! messages.forget_all().await;
//! # drop(app);
//! # Ok(()) }
//! ```
//!
//! # What is cached
//!
//! `GET` requests, keyed on the layer's prefix, the method, the path and,
//! with [`query_string`](ResponseCacheLayer::query_string), the query with
//! its parameters sorted. By default only `200` responses are stored. A
//! `HEAD` is answered from the stored `GET` (its headers, no body) when
//! there is a fresh one, and otherwise passed to the view uncached.
//!
//! **Privacy by default.** A request carrying `Cookie` or `Authorization`
//! bypasses the cache (neither served from it nor stored) unless the layer
//! of that route opts in with
//! [`allow_credentials`](ResponseCacheLayer::allow_credentials). A
//! response with `Set-Cookie`, `Cache-Control: private` or `no-store` is
//! never stored, whatever the filter says. `Vary` is honoured: a stored
//! response is served only to requests with the same values of the headers
//! it varies on (one variant is kept per key); `Vary: *` is never stored.
//!
//! **Encodings.** The body is stored once plain and, when compressible
//! (text, JSON, JavaScript, XML, SVG of 256 bytes or more), once gzipped
//! and once in brotli (quality 6): each compressed on the first request
//! that takes it, once per stored version and never per request (a
//! version nobody asks an encoding of is never compressed in it). Each
//! request gets the encoding it weighs highest in `Accept-Encoding`
//! (brotli on a tie: it is smaller), or the plain body. Each stored body
//! has its own strong `ETag`; a request whose `If-None-Match` names it
//! (or whose `If-Modified-Since` is not older than the response's
//! `Last-Modified`) gets a `304` with no body and only the headers a `304`
//! repeats (`ETag`, `Vary`, `Cache-Control`, `Expires`,
//! `Content-Location`). `Accept-Encoding` joins the response's own `Vary`
//! line. Headers are built when the response is stored: a hit clones them
//! and the body's `Bytes` handle, and allocates nothing else.
//!
//! **Single flight.** Concurrent misses of one key run the view once; the
//! others wait for it (up to the cache's `stall_timeout`) and are answered
//! from its response, or run the view themselves if it was not storable.
//!
//! # Invalidation by dependency
//!
//! While the view runs (in the request's task), every memo lookup, low-level
//! `get` and [`Cache::tag`](crate::Cache::tag) made through the same
//! [`Cache`](crate::Cache) is recorded. The response is stored with those
//! dependencies and served only while none of them was invalidated: a
//! `forget`, `forget_all`, `clear`, a low-level `set`/`delete` of a key it
//! read, or [`Cache::invalidate_tag`](crate::Cache::invalidate_tag). The
//! guarantee is the memos': once the invalidation returns, no process of a
//! tiered cache serves the response. An app never names a URL to purge
//! (though [`delete_cached`](ResponseCacheLayer::delete_cached) and
//! [`forget_all`](ResponseCacheLayer::forget_all) exist).
//!
//! Responses are kept in the process that made them. On a shared store
//! without an invalidation bus (`redis://` rather than `tiered+redis://`),
//! other processes' forgets cannot reach this one, so a response that read
//! a memo or a low-level key is not stored there; responses that read
//! nothing are stored for their timeout. Reads in tasks the view spawns are
//! not seen (run them inside the view's task).
//!
//! A memo's own expiry does not end a response that read it (only
//! invalidations do): when the data can change without one (another writer
//! outside this cache), give the layer a timeout no longer than the memos'.
//!
//! # Compared
//!
//! | | this layer | `axum-response-cache` 0.3 | Flask-Caching `@cached` |
//! |---|---|---|---|
//! | key | prefix + method + path, sorted query opt-in | method + URI | `view/` + path, `query_string=True` hashes sorted args |
//! | timeout | cache default, per layer, per response ([`CacheTimeout`]) | per layer | per view |
//! | `unless` / `forced_update` | yes / yes | no / no | yes / yes |
//! | response filter | yes (default 200), never `Set-Cookie`/`private`/`no-store` | status only | `response_filter` (default all) |
//! | requests with cookies | bypass unless opted in | cached | cached (it is the app's duty) |
//! | `Vary` | honoured (one variant per key) | ignored | ignored |
//! | encodings | plain + gzip + brotli, each compressed once | as produced by the view | as produced by the view |
//! | ETag / 304 | strong ETag per body, `If-None-Match`, `If-Modified-Since` | no | no |
//! | stale-if-error | yes, with a window and a view timeout | `use_stale_on_failure` | no |
//! | single flight | yes | no | no |
//! | body limit | yes (pass-through above it) | yes | no |
//! | invalidation | by dependency (memos, keys, tags), fleet-wide on tiered; `delete_cached`, `forget_all` | none (timeout) | `cache.delete(key)` by hand, per process for in-process stores |
//! | hit header | `x-cache: hit/miss/stale` | no | no |
//!
//! # Not (yet) done
//!
//! zstd; storing responses in the shared tier (each
//! process renders its own copy).

mod entry;
mod future;
mod layer;
mod request;
mod service;
mod stats;

pub use future::ResponseFuture;
pub use layer::ResponseCacheLayer;
pub use service::ResponseCache;
pub use stats::ResponseCacheStats;

use std::time::Duration;

/// A response extension setting how long this response is served
/// (`Duration::ZERO`: until invalidated), over the layer's timeout.
///
/// ```
/// use std::time::Duration;
/// use axum::response::IntoResponse;
/// use memocache::response::CacheTimeout;
///
/// async fn view() -> impl IntoResponse {
///     (axum::Extension(CacheTimeout(Duration::from_secs(5))), "changes often")
/// }
/// # drop(view());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheTimeout(pub Duration);
