//! The HTTP face: one `router()` per module, merged in [`app`], with the
//! layers every response gets (request log, security headers, timeout).

mod account;
mod assets;
mod chunks;
mod flash;
mod messages;
mod metrics;
mod pages;

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use flash::IncomingFlash;

use crate::error::AppError;
use crate::state::AppState;
use crate::views::Flash;

/// The whole board as a router, ready to serve or to call in tests.
pub fn app(state: AppState, request_timeout: std::time::Duration) -> Router {
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
    // Browsers remember to use HTTPS only when the board says it is served
    // over HTTPS (as Talisman did by default).
    let hsts = state.limits.secure_cookies.then(|| {
        SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        )
    });
    Router::new()
        .merge(pages::router())
        .merge(account::router())
        .merge(messages::router())
        .merge(assets::router())
        .merge(metrics::router())
        .fallback(|| async { AppError::NotFound })
        .layer(axum::middleware::from_fn(flash::clear_shown))
        .layer(headers)
        .layer(tower::util::option_layer(hsts))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// Same-origin everything; images also from the CDN's origin when one is
/// configured. No inline scripts or styles, no framing.
fn content_security_policy(media_base: &str) -> HeaderValue {
    let media_origin = url::Url::parse(media_base)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; img-src 'self'{media_origin}; style-src 'self'; script-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
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

/// The client's address (the TCP peer), for rate limits.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(Self(ip))
    }
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
            ("messages.rs", include_str!("messages.rs")),
            ("pages.rs", include_str!("pages.rs")),
            ("flash.rs", include_str!("flash.rs")),
            ("assets.rs", include_str!("assets.rs")),
            ("mod.rs", include_str!("mod.rs")),
            ("extract.rs", include_str!("../auth/extract.rs")),
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
        assert!(own.to_str().is_ok_and(|p| p.contains("img-src 'self';")));
        let cdn = content_security_policy("https://cdn.example.com/media/");
        assert!(
            cdn.to_str()
                .is_ok_and(|p| p.contains("img-src 'self' https://cdn.example.com;"))
        );
    }
}
