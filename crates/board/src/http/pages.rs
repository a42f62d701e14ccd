//! Pages that show messages: home, my messages, one image.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::chunks::Chunks;

use super::IncomingFlash;
use crate::auth::extract::AuthContext;
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::error::AppError;
use crate::media::MediaName;
use crate::state::AppState;
use crate::views::{Flash, GzipPage, HomePage, ImagePage, Layout, MyPage, RenderedPage, render};

pub(super) fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/my", get(my_messages))
        .route("/image/{name}", get(image))
}

/// The `page` query parameter: 1 when absent.
fn page_number(query: Option<&str>) -> Result<u32, AppError> {
    let Some(query) = query else { return Ok(1) };
    match url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "page") {
        None => Ok(1),
        Some((_, value)) => value
            .parse::<u32>()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| {
                AppError::BadRequest("The page number must be a whole number from 1.".into())
            }),
    }
}

async fn home(
    State(state): State<AppState>,
    MaybeAuthUser(auth): MaybeAuthUser,
    IncomingFlash(flash): IncomingFlash,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let page = page_number(query.as_deref())?;
    let list = state.home_page(page).await?.ok_or(AppError::NotFound)?;
    let vary = (header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let html = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if auth.is_none() && flash.is_none() && accepts_gzip(&headers) {
        // Every visitor gets the same page: compress it once per rendering.
        let gzipped = state
            .memos
            .home_page_gzip
            .get_or_try_load(&list.key, || async {
                let page = frame(None, None, &list)?;
                gzip(page.as_bytes()).map(|bytes| GzipPage { bytes })
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let body = Chunks::new([Bytes::from_owner(SharedGzip(gzipped))]);
        let encoding = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return Ok(([html, vary, encoding], Body::new(body)).into_response());
    }
    // The frame is rendered per request (it names the user); the list is
    // shared, and sent from the cache without being copied.
    let frame = HomePage {
        layout: Layout::new("All messages", auth.as_ref(), flash),
        list: LIST_MARKER,
    }
    .render()?;
    let (top, bottom) = frame
        .split_once(LIST_MARKER)
        .ok_or_else(|| AppError::Internal("home frame lost its list marker".into()))?;
    let body = Chunks::new([
        Bytes::copy_from_slice(top.as_bytes()),
        Bytes::from_owner(SharedHtml(list)),
        Bytes::copy_from_slice(bottom.as_bytes()),
    ]);
    Ok(([html, vary], Body::new(body)).into_response())
}

/// The whole home page for `auth` with `flash`, as one string.
fn frame(
    auth: Option<&AuthContext>,
    flash: Option<Flash>,
    list: &RenderedPage,
) -> Result<String, AppError> {
    Ok(HomePage {
        layout: Layout::new("All messages", auth, flash),
        list: &list.html,
    }
    .render()?)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, AppError> {
    use std::io::Write as _;
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// True if the client takes gzip (`Accept-Encoding: gzip`, not `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// A cached gzipped page as the bytes of a response body.
struct SharedGzip(Arc<GzipPage>);

impl AsRef<[u8]> for SharedGzip {
    fn as_ref(&self) -> &[u8] {
        &self.0.bytes
    }
}

/// Where the list goes in the rendered frame.
const LIST_MARKER: &str = "<!--board:list-->";

/// A cached page's HTML as the bytes of a response body.
struct SharedHtml(Arc<RenderedPage>);

impl AsRef<[u8]> for SharedHtml {
    fn as_ref(&self) -> &[u8] {
        self.0.html.as_bytes()
    }
}

async fn my_messages(
    State(state): State<AppState>,
    AuthUser(auth): AuthUser,
    IncomingFlash(flash): IncomingFlash,
) -> Result<Response, AppError> {
    let mine = state.user_messages(&auth.user.id).await?;
    render(&MyPage {
        layout: Layout::new("My messages", Some(&auth), flash),
        messages: mine.iter().collect(),
    })
}

async fn image(
    State(state): State<AppState>,
    MaybeAuthUser(auth): MaybeAuthUser,
    IncomingFlash(flash): IncomingFlash,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let name = MediaName::parse(&name).ok_or(AppError::NotFound)?;
    let list = state.messages().await?;
    let m = list.by_image(name.as_str()).ok_or(AppError::NotFound)?;
    let own = auth
        .as_ref()
        .is_some_and(|a| a.user.id == m.message.user_id);
    render(&ImagePage {
        layout: Layout::new("Picture", auth.as_ref(), flash),
        m,
        own,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_acceptance() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            accepts_gzip(&headers)
        };
        assert!(with("gzip"));
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, gzip;q=0.8"));
        assert!(with("*"));
        assert!(!with("br"));
        assert!(!with("gzip;q=0"));
        assert!(!with("gzip; q=0.0"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn page_numbers() {
        assert_eq!(page_number(None).ok(), Some(1));
        assert_eq!(page_number(Some("page=3")).ok(), Some(3));
        assert_eq!(page_number(Some("x=1&page=2")).ok(), Some(2));
        assert_eq!(page_number(Some("other=1")).ok(), Some(1));
        assert!(page_number(Some("page=0")).is_err());
        assert!(page_number(Some("page=-1")).is_err());
        assert!(page_number(Some("page=abc")).is_err());
    }
}
