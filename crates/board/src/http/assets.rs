//! Files the board serves itself: uploaded images under `/media/` (named by
//! content-independent random ids, so cached forever) and the stylesheet.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::AppError;
use crate::media::MediaName;
use crate::state::AppState;

const CSS: &str = include_str!("../../static/board.css");
const FAVICON: &str = include_str!("../../static/favicon.svg");
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub(super) fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/media/{name}", get(media))
        .route(
            "/static/board.css",
            get(
                |h: HeaderMap| async move { asset(&h, CSS, "text/css; charset=utf-8", css_etag()) },
            ),
        )
        .route(
            "/static/favicon.svg",
            get(|h: HeaderMap| async move { asset(&h, FAVICON, "image/svg+xml", favicon_etag()) }),
        )
}

fn etag_of(content: &str) -> String {
    let hash = crate::auth::sha256_hex(content);
    format!("\"{}\"", &hash[..16])
}

fn css_etag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| etag_of(CSS))
}

fn favicon_etag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| etag_of(FAVICON))
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn asset(
    headers: &HeaderMap,
    body: &'static str,
    content_type: &'static str,
    etag: &'static str,
) -> Response {
    let etag_header = HeaderValue::from_static(etag);
    // Not immutable: the URL stays the same across releases, so browsers
    // revalidate hourly (a 304 when nothing changed).
    let cache = HeaderValue::from_static("public, max-age=3600");
    if not_modified(headers, etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_header), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::ETAG, etag_header),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

async fn media(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let name = MediaName::parse(&name).ok_or(AppError::NotFound)?;
    // The name is random and never reused, so it is a strong validator.
    let etag = format!("\"{}\"", name.as_str());
    let etag_header =
        HeaderValue::from_str(&etag).map_err(|e| AppError::Internal(e.to_string()))?;
    let cache = HeaderValue::from_static(IMMUTABLE);
    // A 304 says "what you have is still this name's image": only true if
    // there is one (a deleted image's name must not stay valid in caches).
    if not_modified(&headers, &etag) && state.data.media().exists(&name).await? {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_header), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    let bytes = state
        .data
        .media()
        .get(&name)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(name.kind().content_type()),
            ),
            (header::ETAG, etag_header),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response())
}
