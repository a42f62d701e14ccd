//! Pages that show messages: home, my messages, one image.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

use super::chunks::Chunks;

use super::IncomingFlash;
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::error::AppError;
use crate::media::MediaName;
use crate::state::AppState;
use crate::views::{HomePage, ImagePage, Layout, MyPage, RenderedPage, render};

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
) -> Result<Response, AppError> {
    let page = page_number(query.as_deref())?;
    let list = state.home_page(page).await?.ok_or(AppError::NotFound)?;
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
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::new(body),
    )
        .into_response())
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
    let list = state.messages().await?;
    render(&MyPage {
        layout: Layout::new("My messages", Some(&auth), flash),
        messages: list.by_user(&auth.user.id).collect(),
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
