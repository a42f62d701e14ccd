//! [`ResponseCacheLayer`]: the options, and the handle that forgets.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use xxhash_rust::xxh3::Xxh3;

use super::entry::{Codings, Entry};
use super::stats::{Counters, ResponseCacheStats};
use crate::cache::Cache;
use crate::flight::Flights;
use crate::key::KeyHash;
use crate::local::{Bound, LocalTable};
use crate::reach::Reach;

/// A predicate on a request.
pub(super) type RequestPredicate = Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>;
/// A predicate on a response.
pub(super) type ResponsePredicate = Arc<dyn Fn(&http::response::Parts) -> bool + Send + Sync>;

/// Responses kept by default.
const DEFAULT_CAPACITY: usize = 1000;
/// Largest body kept by default.
const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The options of a layer.
#[derive(Clone)]
pub(super) struct Config {
    pub(super) cache: Cache,
    pub(super) prefix: String,
    pub(super) lifetime: Option<Duration>,
    pub(super) query_string: bool,
    pub(super) unless: Option<RequestPredicate>,
    pub(super) forced_update: Option<RequestPredicate>,
    pub(super) response_filter: ResponsePredicate,
    pub(super) allow_credentials: bool,
    pub(super) hit_header: bool,
    pub(super) stale_if_error: Duration,
    pub(super) inner_timeout: Option<Duration>,
    pub(super) max_body: usize,
    pub(super) codings: Codings,
}

/// What every clone of a layer, and every service it made, shares.
pub(super) struct State {
    pub(super) table: LocalTable<Arc<Entry>>,
    pub(super) flights: Flights<Entry>,
    pub(super) counters: Counters,
}

/// Flask-Caching's `@cache.cached` for axum: caches whole responses of
/// the routes it wraps. See the [module docs](super) for what it does.
///
/// Options are set on the layer before it is applied; clones share the
/// stored responses, so a clone kept aside can
/// [`delete_cached`](Self::delete_cached).
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use memocache::{Cache, response::ResponseCacheLayer};
///
/// let cache = Cache::memory();
/// let pages = ResponseCacheLayer::new(&cache).timeout(Duration::from_secs(60));
/// let app: Router = Router::new()
///     .route("/", get(|| async { "home" }))
///     .layer(pages.clone()); // `pages` stays at hand for delete_cached
/// ```
#[derive(Clone)]
pub struct ResponseCacheLayer {
    /// Behind an `Arc`: the service is cloned for every request (as
    /// axum's routes are), so a clone must cost one reference count.
    pub(super) config: Arc<Config>,
    pub(super) state: Arc<State>,
    /// The entries [`capacity`](Self::capacity) set, for
    /// [`capacity_bytes`](Self::capacity_bytes) set after it.
    capacity: usize,
}

impl ResponseCacheLayer {
    /// A layer storing into `cache` (its default timeout, up to 1000
    /// responses of up to 1 MiB, key prefix `view/`).
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use memocache::{Cache, response::ResponseCacheLayer};
    ///
    /// let cache = Cache::memory();
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "home" }))
    ///     .layer(ResponseCacheLayer::new(&cache));
    /// # drop(app);
    /// ```
    pub fn new(cache: &Cache) -> Self {
        Self {
            config: Arc::new(Config {
                cache: cache.clone(),
                prefix: "view/".to_string(),
                lifetime: cache.config().default_timeout,
                query_string: false,
                unless: None,
                forced_update: None,
                response_filter: Arc::new(|parts| parts.status == http::StatusCode::OK),
                allow_credentials: false,
                hit_header: false,
                stale_if_error: Duration::ZERO,
                inner_timeout: None,
                max_body: DEFAULT_MAX_BODY,
                codings: Codings {
                    gzip: true,
                    br: true,
                },
            }),
            state: Arc::new(State {
                table: LocalTable::new(DEFAULT_CAPACITY),
                flights: Flights::new(),
                counters: Counters::default(),
            }),
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// How many responses this layer keeps (in process; least recently
    /// used go first).
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache).capacity(10_000);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self.state = Arc::new(State {
            table: LocalTable::new(self.capacity),
            flights: Flights::new(),
            counters: Counters::default(),
        });
        self
    }

    /// Bounds the responses this layer keeps by bytes: at most `bytes`,
    /// each response weighed as its headers and body plus, for each
    /// compressed encoding it may store (gzip, brotli: each made on first
    /// request, kept only if smaller), one more body's length, so the bound
    /// holds whichever encodings are made later. A response heavier than
    /// a sixteenth of `bytes` is served but not stored (counted in
    /// [`ResponseCacheStats::too_large`](super::ResponseCacheStats::too_large)).
    /// [`capacity`](Self::capacity), if set too, still bounds the number;
    /// set after it, this keeps its count. Drops what the layer held.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache)
    ///     .capacity(10_000)
    ///     .capacity_bytes(64 << 20);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn capacity_bytes(mut self, bytes: u64) -> Self {
        let bound = Bound {
            entries: self.capacity,
            bytes: Some(bytes.max(1)),
        };
        self.state = Arc::new(State {
            table: LocalTable::bounded(bound),
            flights: Flights::new(),
            counters: Counters::default(),
        });
        self
    }

    /// How many responses this layer keeps now.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache);
    /// assert_eq!(layer.stored_entries(), 0);
    /// ```
    pub fn stored_entries(&self) -> usize {
        self.state.table.len()
    }

    /// What the responses this layer keeps weigh now, in bytes (never
    /// more than [`capacity_bytes`](Self::capacity_bytes)); `None` when
    /// the layer is bounded by count only.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// use memocache::response::ResponseCacheLayer;
    /// assert_eq!(ResponseCacheLayer::new(&cache).stored_bytes(), None);
    /// let bounded = ResponseCacheLayer::new(&cache).capacity_bytes(1 << 20);
    /// assert_eq!(bounded.stored_bytes(), Some(0));
    /// ```
    pub fn stored_bytes(&self) -> Option<u64> {
        let table = &self.state.table;
        table.weighs().then(|| table.weight())
    }

    /// How long a response is served (default: the cache's timeout;
    /// `Duration::ZERO`: until invalidated). A response can set its own
    /// with a [`CacheTimeout`](super::CacheTimeout) extension.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// use std::time::Duration;
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache)
    ///     .timeout(Duration::from_secs(300));
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.config).lifetime = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// The key prefix (default `view/`): layers with different prefixes
    /// keep apart, and [`forget_all`](Self::forget_all) forgets one prefix.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache).key_prefix("pages/");
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).prefix = prefix.into();
        self
    }

    /// Whether the query string is part of the key (off: `/?a=1` and `/`
    /// share a response, as Flask-Caching's default). On, its parameters
    /// are sorted first, so `?a=1&b=2` and `?b=2&a=1` share one.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache).query_string(true);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn query_string(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).query_string = on;
        self
    }

    /// Requests for which `predicate` is true bypass the cache (neither
    /// served from it nor stored): Flask-Caching's `unless`.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache)
    ///     .unless(|req| req.uri.path().starts_with("/admin"));
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn unless(
        mut self,
        predicate: impl Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.config).unless = Some(Arc::new(predicate));
        self
    }

    /// Requests for which `predicate` is true run the view and replace
    /// the stored response: Flask-Caching's `forced_update`.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache)
    ///     .forced_update(|req| req.headers.contains_key("x-refresh"));
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn forced_update(
        mut self,
        predicate: impl Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.config).forced_update = Some(Arc::new(predicate));
        self
    }

    /// Which responses are stored (default: status 200). Whatever it says,
    /// a response with `Set-Cookie`, `Cache-Control: private` or
    /// `no-store`, a `Content-Encoding` or `Vary: *` is never stored.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// use http::StatusCode;
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache)
    ///     .response_filter(|resp| matches!(resp.status, StatusCode::OK | StatusCode::NOT_FOUND));
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn response_filter(
        mut self,
        predicate: impl Fn(&http::response::Parts) -> bool + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.config).response_filter = Arc::new(predicate);
        self
    }

    /// Whether requests carrying `Cookie` or `Authorization` may be served
    /// from and stored into the cache (default: no, they bypass it). Turn
    /// on only for routes whose response does not depend on who asks.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache).allow_credentials(true);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        Arc::make_mut(&mut self.config).allow_credentials = allow;
        self
    }

    /// Whether answers carry `x-cache: hit|miss|stale` (default: no).
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache).hit_header(true);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn hit_header(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).hit_header = on;
        self
    }

    /// Stale-if-error: for `window` after a response expired, it is served
    /// (marked `stale`) when the view fails (a 5xx, an error, or the
    /// [`inner_timeout`](Self::inner_timeout)). A response whose
    /// dependencies were invalidated is never served stale.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// use std::time::Duration;
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache)
    ///     .stale_if_error(Duration::from_secs(600))
    ///     .inner_timeout(Duration::from_secs(2));
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        Arc::make_mut(&mut self.config).stale_if_error = window;
        self
    }

    /// How long the view may take on a miss before it counts as failed
    /// (a stale response is served if there is one, else `504`).
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// use std::time::Duration;
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache)
    ///     .inner_timeout(Duration::from_secs(5))
    ///     .stale_if_error(Duration::from_secs(300));
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn inner_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.config).inner_timeout = Some(timeout);
        self
    }

    /// Bodies larger than `bytes` pass through, uncached (default 1 MiB).
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache).max_body(256 * 1024);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).max_body = bytes;
        self
    }

    /// Whether a gzip encoding is stored next to the plain body of
    /// compressible responses and served to clients that take it (default:
    /// yes). It is compressed once per stored response (on the first
    /// request that takes it), never per request.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache).gzip(false);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn gzip(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).codings.gzip = on;
        self
    }

    /// Whether a brotli encoding is stored as well (default: yes), on the
    /// same terms as [`gzip`](Self::gzip); a client that takes both gets
    /// the one it weighs higher, brotli on a tie (it is smaller).
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache).brotli(false);
    /// # drop(layer);
    /// ```
    #[must_use]
    pub fn brotli(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).codings.br = on;
        self
    }

    /// What this layer (and its clones) did so far.
    ///
    /// ```
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache);
    /// let stats = layer.stats();
    /// assert_eq!((stats.hits, stats.not_modified, stats.misses), (0, 0, 0));
    /// ```
    pub fn stats(&self) -> ResponseCacheStats {
        self.state.counters.snapshot()
    }

    /// Forgets the response to `method` on `path_and_query` (the query
    /// counts only with [`query_string`](Self::query_string)), in every
    /// process of a tiered cache, before it returns (see [`Reach`]).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache);
    /// assert!(layer.delete_cached(&http::Method::GET, "/").await.is_fleet());
    /// # });
    /// ```
    pub async fn delete_cached(&self, method: &Method, path_and_query: &str) -> Reach {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let key = self.config.key(method, path, query);
        self.state.table.remove(&KeyHash(key));
        self.config
            .cache
            .invalidate_dep_key(&self.config.scope(), key)
            .await
    }

    /// Forgets every response of this layer's key prefix, in every process.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// # let cache = memocache::Cache::memory();
    /// let layer = memocache::response::ResponseCacheLayer::new(&cache);
    /// assert!(layer.forget_all().await.is_fleet());
    /// # });
    /// ```
    pub async fn forget_all(&self) -> Reach {
        self.config
            .cache
            .invalidate_dep_scope(&self.config.scope())
            .await
    }
}

impl Config {
    /// The dependency scope of this layer's responses.
    pub(super) fn scope(&self) -> String {
        format!("\0response:{}", self.prefix)
    }

    /// The key of a request: prefix, method, path and (if on) the sorted
    /// query.
    pub(super) fn key(&self, method: &Method, path: &str, query: Option<&str>) -> u128 {
        let mut hasher = Xxh3::new();
        hasher.update(self.prefix.as_bytes());
        hasher.update(&[0]);
        hasher.update(method.as_str().as_bytes());
        hasher.update(&[0]);
        hasher.update(path.as_bytes());
        if let (true, Some(query)) = (self.query_string, query) {
            let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
            pairs.sort_unstable();
            for pair in pairs {
                hasher.update(&[0]);
                hasher.update(pair.as_bytes());
            }
        }
        hasher.digest128()
    }
}

impl fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheLayer")
            .field("cache", &self.config.cache)
            .field("prefix", &self.config.prefix)
            .field("lifetime", &self.config.lifetime)
            .field("query_string", &self.config.query_string)
            .finish_non_exhaustive()
    }
}
