//! The layer's request path: what a request is for the cache (`plan`),
//! hits, single-flight misses, stale-if-error, and storing what the view
//! made.

use std::sync::Arc;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use http::header::{self, HeaderMap};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use tower::Service;

use super::CacheTimeout;
use super::entry::{self, Entry, Served};
use super::layer::ResponseCacheLayer;
use super::stats::Counter;
use crate::deps::Recorder;
use crate::flight::{Join, LeaderGuard, Outcome};
use crate::key::KeyHash;
use crate::local::Stored;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What to do with a request.
pub(super) enum Plan {
    /// Not for the cache: straight to the view.
    Bypass,
    /// Look it up under this key (or, forced, refresh it).
    Cache { key: u128, forced: bool },
    /// A `HEAD`: answered from the stored `GET` if there is a fresh one
    /// (the same headers, no body), else passed to the view uncached.
    Head { key: u128 },
}

impl ResponseCacheLayer {
    pub(super) fn plan(&self, parts: &http::request::Parts) -> Plan {
        let config = &self.config;
        let head = parts.method == Method::HEAD;
        if parts.method != Method::GET && !head {
            return Plan::Bypass;
        }
        let credentials = parts.headers.contains_key(header::COOKIE)
            || parts.headers.contains_key(header::AUTHORIZATION);
        if credentials && !config.allow_credentials {
            return Plan::Bypass;
        }
        if config.unless.as_ref().is_some_and(|p| p(parts)) {
            return Plan::Bypass;
        }
        let key = config.key(&Method::GET, parts.uri.path(), parts.uri.query());
        if head {
            return Plan::Head { key };
        }
        let forced = config.forced_update.as_ref().is_some_and(|p| p(parts));
        Plan::Cache { key, forced }
    }

    /// The stored entry for `key` if it may still be served (nothing it
    /// read was invalidated, it fits the request), fresh or not.
    pub(super) fn valid(&self, key: u128, headers: &HeaderMap) -> Option<Arc<Entry>> {
        let cache = &self.config.cache;
        let entry = self
            .state
            .table
            .get(&KeyHash(key), cache.clock().now_ms())?;
        (cache.l1_trusted() && cache.stamps().fresh(&entry.deps) && entry.vary_matches(headers))
            .then_some(entry)
    }

    /// Answers from `entry`, counting how.
    pub(super) fn answer(
        &self,
        entry: &Entry,
        headers: &HeaderMap,
        served: Served,
    ) -> Response<Body> {
        let response = entry.respond(headers, self.config.hit_header.then_some(served));
        let counters = &self.state.counters;
        counters.bump(match served {
            Served::Hit => Counter::Hit,
            Served::Miss => Counter::Miss,
            Served::Stale => Counter::Stale,
        });
        if response.status() == StatusCode::NOT_MODIFIED {
            counters.bump(Counter::NotModified);
        }
        response
    }

    pub(super) fn fresh(&self, entry: &Entry) -> bool {
        self.config.cache.clock().now_ms() < entry.fresh_until
    }
}

/// How the view's answer turned out.
enum Made {
    /// Stored (or storable): answer from the entry.
    Entry(Arc<Entry>),
    /// Not for the cache, or the view failed: pass it on.
    Response(Response<Body>),
}

impl ResponseCacheLayer {
    pub(super) async fn miss<S, ReqB, ResB>(
        &self,
        inner: S,
        request: Request<ReqB>,
        key: u128,
        forced: bool,
    ) -> Result<Response<Body>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let headers = request.headers().clone();
        // A response past its freshness but still valid: served if the
        // view fails within the stale-if-error window.
        let stale = self.valid(key, &headers);
        if forced {
            return self.lead(None, inner, request, key, &headers, stale).await;
        }
        let stall = self.config.cache.config().stall_timeout;
        loop {
            match self.state.flights.join(KeyHash(key)) {
                Join::Lead(guard) => {
                    // The last flight may have stored its answer between
                    // this request's lookup and its join: no second view.
                    if let Some(entry) = self.valid(key, &headers).filter(|e| self.fresh(e)) {
                        guard.finish(&entry, |_| {});
                        return Ok(self.answer(&entry, &headers, Served::Hit));
                    }
                    return self
                        .lead(Some(guard), inner, request, key, &headers, stale)
                        .await;
                }
                Join::Wait(flight) => {
                    let outcome = loop {
                        let listener = flight.listen();
                        let outcome = flight.outcome();
                        if !matches!(outcome, Outcome::Running) {
                            break outcome;
                        }
                        if tokio::time::timeout(stall, listener).await.is_err() {
                            break flight.outcome();
                        }
                    };
                    match outcome {
                        // Only if nothing its view read was forgotten since:
                        // this request may have come after the forget.
                        Outcome::Done(entry)
                            if entry.vary_matches(&headers)
                                && self.config.cache.stamps().fresh(&entry.deps) =>
                        {
                            return Ok(self.answer(&entry, &headers, Served::Hit));
                        }
                        Outcome::Abandoned => {}
                        // Not storable, failed, stalled, another variant:
                        // ask the view ourselves.
                        _ => return self.lead(None, inner, request, key, &headers, stale).await,
                    }
                }
            }
        }
    }

    /// Runs the view once for `key`, stores what may be stored, and
    /// answers; `guard` (if leading a flight) publishes the result.
    async fn lead<S, ReqB, ResB>(
        &self,
        guard: Option<LeaderGuard<'_, Entry>>,
        mut inner: S,
        request: Request<ReqB>,
        key: u128,
        headers: &HeaderMap,
        stale: Option<Arc<Entry>>,
    ) -> Result<Response<Body>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let cache = &self.config.cache;
        let recorder = Recorder::start(cache.stamps());
        let scope = crate::deps::scope_hash(&self.config.scope());
        let view = recorder.run(async {
            // The layer's own key: `delete_cached` and `forget_all`.
            crate::deps::record_key(cache.stamps(), scope, key, || true);
            inner.call(request).await
        });
        let result = match self.config.inner_timeout {
            Some(limit) => tokio::time::timeout(limit, view).await.ok(),
            None => Some(view.await),
        };
        let stale_answer = |stale: Option<Arc<Entry>>| {
            stale.map(|entry| self.answer(&entry, headers, Served::Stale))
        };
        let made = match result {
            None => {
                fail(guard);
                return Ok(stale_answer(stale).unwrap_or_else(gateway_timeout));
            }
            Some(Err(error)) => {
                fail(guard);
                return stale_answer(stale).ok_or(error);
            }
            Some(Ok(response)) => {
                if response.status().is_server_error() {
                    if let Some(answer) = stale_answer(stale) {
                        fail(guard);
                        return Ok(answer);
                    }
                }
                self.make(response, headers, &recorder).await
            }
        };
        match made {
            Made::Response(response) => {
                fail(guard);
                self.state.counters.bump(Counter::Miss);
                Ok(response)
            }
            Made::Entry(entry) => {
                let store = |entry: &Arc<Entry>| {
                    // Stored only if nothing it read moved meanwhile.
                    if cache.stamps().fresh(&entry.deps) {
                        let keep = crate::clock::duration_ms(self.config.stale_if_error);
                        let until = entry.fresh_until.saturating_add(keep);
                        let stored = self.state.table.insert(
                            KeyHash(key),
                            Arc::clone(entry),
                            until,
                            |entry| entry.weight(),
                        );
                        self.state.counters.bump(match stored {
                            Stored::Yes => Counter::Stored,
                            Stored::TooLarge => Counter::TooLarge,
                        });
                    }
                };
                match guard {
                    Some(guard) => {
                        guard.finish(&entry, store);
                    }
                    None => store(&entry),
                }
                Ok(self.answer(&entry, headers, Served::Miss))
            }
        }
    }

    /// Buffers a storable response into an entry; anything else is passed
    /// on as it came.
    async fn make<ResB>(
        &self,
        response: Response<ResB>,
        headers: &HeaderMap,
        recorder: &Recorder,
    ) -> Made
    where
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let (parts, body) = response.into_parts();
        if !entry::storable(&parts) || !(self.config.response_filter)(&parts) {
            return Made::Response(Response::from_parts(parts, Body::new(body)));
        }
        let Some(deps) = recorder.finish() else {
            return Made::Response(Response::from_parts(parts, Body::new(body)));
        };
        let body = match buffer(Body::new(body), self.config.max_body).await {
            Ok(bytes) => bytes,
            Err(body) => return Made::Response(Response::from_parts(parts, body)),
        };
        let lifetime = parts
            .extensions
            .get::<CacheTimeout>()
            .map_or(self.config.lifetime, |t| (!t.0.is_zero()).then_some(t.0));
        let fresh_until = self.config.cache.clock().deadline(lifetime);
        Made::Entry(Arc::new(Entry::build(entry::Parts {
            response: &parts,
            request: headers,
            body,
            deps,
            fresh_until,
            codings: self.config.codings,
        })))
    }
}

/// Tells a flight's waiters to ask the view themselves.
fn fail(guard: Option<LeaderGuard<'_, Entry>>) {
    if let Some(guard) = guard {
        guard.fail(Arc::new(()));
    }
}

fn gateway_timeout() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    response
}

/// The whole body if it fits in `limit`; else a body that streams what was
/// read and the rest.
async fn buffer(mut body: Body, limit: usize) -> Result<Bytes, Body> {
    use http_body::Body as _;
    if body
        .size_hint()
        .upper()
        .is_some_and(|upper| upper > limit as u64)
        || body.size_hint().lower() > limit as u64
    {
        return Err(body);
    }
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not kept
                };
                if read.len() + data.len() > limit {
                    let head = futures_util::stream::iter([
                        Ok::<Bytes, axum::Error>(read.freeze()),
                        Ok(data),
                    ]);
                    return Err(Body::from_stream(head.chain(body.into_data_stream())));
                }
                read.extend_from_slice(&data);
            }
            Err(error) => {
                let head = futures_util::stream::iter([Ok(read.freeze()), Err(error)]);
                return Err(Body::from_stream(head));
            }
        }
    }
    Ok(read.freeze())
}
