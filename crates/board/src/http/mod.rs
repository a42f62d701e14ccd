//! The HTTP face: one `router()` per module, merged in [`app`], with the
//! layers every response gets (request log, security headers, timeout,
//! the client's address, the caching policy).

mod access;
mod account;
mod assets;
mod chunks;
mod client;
mod extract;

pub use client::ClientIp;
use extract::{AuthUser, CsrfForm, HasCsrf, MaybeAuthUser};
mod flash;
mod messages;
mod metrics;
mod oidc;
mod pages;
mod password;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use memocache::response::ResponseCache;
use secrecy::SecretString;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use flash::IncomingFlash;

use crate::auth::csrf::ANON_COOKIE;
use crate::auth::session::{self, SESSION_COOKIE};
use crate::error::AppError;
use crate::net::TrustedProxies;
use crate::server::ConnStats;
use crate::state::AppState;
use crate::views::Flash;

/// What the HTTP layer is told besides the state.
#[derive(Clone, Debug)]
pub struct Edge {
    /// Longest time a request may take before it gets a 408.
    pub request_timeout: Duration,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// `--metrics-token`: serve `/metrics` publicly to its holders.
    pub metrics_token: Option<Arc<SecretString>>,
    /// The accept loop's counters, for `/metrics`.
    pub connections: Arc<ConnStats>,
}

impl Edge {
    /// Defaults: 30 s requests, no proxies, no public `/metrics`.
    pub fn new(request_timeout: Duration) -> Self {
        Self {
            request_timeout,
            trusted_proxies: Arc::default(),
            metrics_token: None,
            connections: Arc::default(),
        }
    }
}

/// The router of `--metrics-address`: `/metrics` only.
pub fn metrics_app(state: AppState, edge: &Edge) -> Router {
    metrics::admin_router(Arc::clone(&edge.connections)).with_state(state)
}

/// The whole board as one tower service: the routes inside the layers
/// every request passes (request log, client address and HTTPS, page
/// cache). Served as it is ([`crate::server::serve`]), not behind an outer
/// `Router`, which would box and clone the whole stack per request.
///
/// ```no_run
/// # async fn run(state: board::state::AppState) {
/// use std::time::Duration;
/// use tower::ServiceExt as _;
///
/// let app = board::http::app(state, board::http::Edge::new(Duration::from_secs(30)));
/// let request = axum::http::Request::get("/healthz")
///     .body(axum::body::Body::empty())
///     .unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// assert!(response.status().is_success());
/// # }
/// ```
#[derive(Clone)]
pub struct App(Stack);

type Stack = access::AccessLog<client::Client<ResponseCache<Router>>>;

impl tower::Service<Request> for App {
    type Response = <Stack as tower::Service<Request>>::Response;
    type Error = Infallible;
    type Future = <Stack as tower::Service<Request>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.0.call(request)
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// The whole board, ready to serve (see [`App`]).
pub fn app(state: AppState, edge: Edge) -> App {
    let csp = content_security_policy(&state.media_base);
    let headers = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ));
    let client = client::ClientLayer {
        proxies: Arc::clone(&edge.trusted_proxies),
        hsts_always: state.limits.secure_cookies,
    };
    let pages = state.pages.clone();
    let routes = Router::new()
        .merge(pages::router())
        .merge(account::router())
        .merge(oidc::router())
        .merge(messages::router())
        .merge(assets::router())
        .merge(metrics::router(edge.metrics_token, edge.connections))
        .fallback(|| async { AppError::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            flash::clear_shown,
        ))
        .layer(axum::middleware::from_fn(cache_policy))
        .layer(headers)
        // The request's span, for what the views log (the request log's
        // own line is written outside the page cache, for every request);
        // its path as the request log shows it (no query, bounded).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %access::logged_path(request.uri()),
                    )
                })
                .on_request(())
                .on_response(()),
        )
        // Inside the page cache: a hit answers at once and needs no timer
        // (a timer entry per request is a measurable share of a hit); a
        // miss, which runs the view, gets its 408 as before.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            edge.request_timeout,
        ))
        .with_state(state);
    // The layers every request passes wrap the whole router rather than
    // each route (`Router::layer` would): a route clones its whole layer
    // stack for every request it serves, and a page-cache hit should not
    // pay for layers it never reaches.
    let stack = ServiceBuilder::new()
        .layer(access::AccessLogLayer)
        .layer(client)
        // Outside the per-response layers, so that a hit skips them (what
        // they add is stored with the page); inside the client/HTTPS layer,
        // whose HSTS depends on the request.
        .layer(pages)
        .service(routes);
    App(stack)
}

/// The response cache of the public pages (`/`, `/image/*`; every other
/// path bypasses it): anonymous requests only (the layer's default: a
/// request with a cookie bypasses it), first pages only (a request with a
/// query, a deeper page, bypasses it: as the data layer caches only first
/// pages, so a client walking the listing cannot fill the cache), kept as
/// long as the memos they read and forgotten with them.
pub fn page_cache(
    cache: &memocache::Cache,
    timeout: Duration,
) -> memocache::response::ResponseCacheLayer {
    memocache::response::ResponseCacheLayer::new(cache)
        .key_prefix("page/")
        .timeout(timeout)
        .capacity(1000)
        .unless(|request| {
            let path = request.uri.path();
            request.uri.query().is_some() || !(path == "/" || path.starts_with("/image/"))
        })
}

/// Same-origin everything; images also from the CDN's origin when one is
/// configured. No inline scripts or styles, no plugins, no framing.
/// Scripts, styles and (without a CDN) images fall back to `default-src`,
/// so they are not repeated: the header goes out with every page.
fn content_security_policy(media_base: &str) -> HeaderValue {
    let images = url::Url::parse(media_base)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .map(|o| format!(" img-src 'self' {o};"))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self';{images} object-src 'none'; base-uri 'self'; form-action 'self'; \
         frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// Renders `template` as an HTML response.
///
/// # Errors
/// When rendering fails.
pub fn render<T: Template>(template: &T) -> Result<Response, AppError> {
    Ok(Html(template.render()?).into_response())
}

/// Renders `template` with `status`.
///
/// # Errors
/// When rendering fails.
pub fn render_with<T: Template>(
    status: axum::http::StatusCode,
    template: &T,
) -> Result<Response, AppError> {
    Ok((
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        template.render()?,
    )
        .into_response())
}

/// Whether cookies of this response should be `Secure`.
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.limits.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A 303 to `to` that shows `flash` on the next page.
fn redirect_with(to: &str, flash: Flash, secure: bool, mut extra: Vec<HeaderValue>) -> Response {
    let mut response = Redirect::to(to).into_response();
    extra.push(flash::set(flash, secure));
    for cookie in extra {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Responses made for one browser stay out of shared caches: those to a
/// request that carries a session (or the anonymous CSRF cookie, whose
/// token is in the page) and those that set a cookie get
/// `Cache-Control: private, no-store`. Responses that chose their own
/// caching (images, assets, health) keep it unless they set a cookie.
/// Pages whose nav differs by session (`/`, `/image/*`) get
/// `Vary: Cookie`, so a cache that keeps the anonymous page never hands
/// it to a logged-in browser.
async fn cache_policy(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let varies = path == "/" || path.starts_with("/image/");
    let personal = [SESSION_COOKIE, ANON_COOKIE]
        .iter()
        .any(|name| session::cookie(request.headers(), name).is_some_and(session::is_well_formed));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let sets_cookie = headers.contains_key(header::SET_COOKIE);
    if sets_cookie || (personal && !headers.contains_key(header::CACHE_CONTROL)) {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    if varies {
        headers.append(header::VARY, HeaderValue::from_static("Cookie"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handlers go through the data layer: none reaches into the stores or
    /// the memos (only `/metrics` reads their counters, and the media
    /// route serves files).
    #[test]
    fn handlers_never_touch_stores_or_memos() {
        let handlers = [
            ("account.rs", include_str!("account.rs")),
            ("oidc.rs", include_str!("oidc.rs")),
            ("messages.rs", include_str!("messages.rs")),
            ("pages.rs", include_str!("pages.rs")),
            ("flash.rs", include_str!("flash.rs")),
            ("assets.rs", include_str!("assets.rs")),
            ("mod.rs", include_str!("mod.rs")),
            ("extract.rs", include_str!("extract.rs")),
            ("password.rs", include_str!("password.rs")),
        ];
        for (file, source) in handlers {
            let code = source.split("#[cfg(test)]").next().unwrap_or(source);
            for reach in [".stores", ".memos", "Memo::", "StoreError"] {
                assert!(!code.contains(reach), "{file} uses `{reach}`");
            }
        }
    }

    #[test]
    fn csp_names_the_cdn_origin_only_when_absolute() {
        let own = content_security_policy("/media/");
        assert_eq!(
            own,
            "default-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
             frame-ancestors 'none'"
        );
        let cdn = content_security_policy("https://cdn.example.com/media/");
        assert!(
            cdn.to_str()
                .is_ok_and(|p| p.contains("img-src 'self' https://cdn.example.com;"))
        );
    }
}
