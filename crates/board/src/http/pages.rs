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
use super::render;
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::data::FeedPage;
use crate::error::AppError;
use crate::media::MediaName;
use crate::state::AppState;
use crate::views::{HomePage, ImagePage, Layout, ListFragment, MyPage};

pub(super) fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/my", get(my_messages))
        .route("/image/{name}", get(image))
}

/// The `cursor` query parameter, if any.
fn cursor(query: Option<&str>) -> Option<String> {
    let query = query?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.into_owned())
}

/// A home-page list rendered once per cached page: the fragment for
/// logged-in frames, and the whole page as visitors without a session or
/// a notice get it, plain and gzipped.
struct RenderedHome {
    list: Bytes,
    page: Bytes,
    gzip: Bytes,
}

/// The renderings of `page`, made on first use and kept with the cached
/// page (so a page is rendered and compressed once per process and
/// version, not per request).
fn rendered(page: &FeedPage) -> Result<Arc<RenderedHome>, AppError> {
    if let Some(done) = page.view.get().and_then(|v| Arc::clone(v).downcast().ok()) {
        return Ok(done);
    }
    let list = ListFragment {
        messages: &page.messages,
        path: "/",
        older: page.older.as_deref(),
        newer: page.newer.as_deref(),
        first: page.first,
        delete_csrf: "",
    }
    .render()?;
    let whole = HomePage {
        layout: Layout::new("All messages", None, None),
        list: &list,
    }
    .render()?;
    let gzip = gzip(whole.as_bytes())?;
    let made: Arc<dyn std::any::Any + Send + Sync> = Arc::new(RenderedHome {
        list: Bytes::from(list),
        page: Bytes::from(whole),
        gzip: Bytes::from(gzip),
    });
    // Another request may have rendered it meanwhile: either copy serves.
    let kept = page.view.get_or_init(|| made);
    Arc::clone(kept)
        .downcast()
        .map_err(|_| AppError::Internal("home rendering of another type".into()))
}

async fn home(
    State(state): State<AppState>,
    MaybeAuthUser(auth): MaybeAuthUser,
    IncomingFlash(flash): IncomingFlash,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let bound = state.data.bound(cursor(query.as_deref()).as_deref())?;
    let page = state.data.feed_page(&bound).await?;
    let rendered = rendered(&page)?;
    let vary = (header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let html = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if auth.is_none() && flash.is_none() {
        // Every visitor gets the same page: sent from the cache, no copy.
        if accepts_gzip(&headers) {
            let encoding = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            return Ok(([html, vary, encoding], rendered.gzip.clone()).into_response());
        }
        return Ok(([html, vary], rendered.page.clone()).into_response());
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
        rendered.list.clone(),
        Bytes::copy_from_slice(bottom.as_bytes()),
    ]);
    Ok(([html, vary], Body::new(body)).into_response())
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

/// Where the list goes in the rendered frame.
const LIST_MARKER: &str = "<!--board:list-->";

async fn my_messages(
    State(state): State<AppState>,
    AuthUser(auth): AuthUser,
    IncomingFlash(flash): IncomingFlash,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let bound = state.data.bound(cursor(query.as_deref()).as_deref())?;
    let page = state.data.user_page(&auth.user.id, &bound).await?;
    let list = ListFragment {
        messages: &page.messages,
        path: "/my",
        older: page.older.as_deref(),
        newer: page.newer.as_deref(),
        first: page.first,
        delete_csrf: &auth.session.csrf,
    }
    .render()?;
    render(&MyPage {
        layout: Layout::new("My messages", Some(&auth), flash),
        list: &list,
    })
}

async fn image(
    State(state): State<AppState>,
    MaybeAuthUser(auth): MaybeAuthUser,
    IncomingFlash(flash): IncomingFlash,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let name = MediaName::parse(&name).ok_or(AppError::NotFound)?;
    let m = state
        .data
        .image_message(&name)
        .await?
        .ok_or(AppError::NotFound)?;
    let own = auth
        .as_ref()
        .is_some_and(|a| a.user.id == m.message.user_id);
    render(&ImagePage {
        layout: Layout::new("Picture", auth.as_ref(), flash),
        m: &m,
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
    fn cursors_from_the_query() {
        assert_eq!(cursor(None), None);
        assert_eq!(cursor(Some("cursor=ab12")).as_deref(), Some("ab12"));
        assert_eq!(cursor(Some("x=1&cursor=cd")).as_deref(), Some("cd"));
        assert_eq!(cursor(Some("other=1")), None);
    }
}
