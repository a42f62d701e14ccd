//! Pages that show messages: home, my messages, one image.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

use super::chunks::Chunks;

use super::IncomingFlash;
use super::render;
use super::{AuthUser, MaybeAuthUser};
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

/// A rendered fragment as a body chunk, shared rather than copied.
struct Fragment(Arc<str>);

impl AsRef<[u8]> for Fragment {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The list of the home page: the first page's rendering is shared by
/// every request (a memocache fragment, re-rendered when `all_messages`
/// is forgotten), a deeper page's is rendered for its request.
async fn home_list(state: &AppState, cursor: Option<&str>) -> Result<Bytes, AppError> {
    let bound = state.data.bound(cursor)?;
    let render = |page: &FeedPage| {
        ListFragment {
            messages: &page.messages,
            path: "/",
            older: page.older.as_deref(),
            newer: page.newer.as_deref(),
            first: page.first,
            delete_csrf: "",
        }
        .render()
    };
    if cursor.is_some() {
        let page = state.data.feed_page(&bound).await?;
        return Ok(Bytes::from(render(&page)?));
    }
    let list = state
        .fragments
        .try_get_or_render("home-list", &(), || async {
            let page = state.data.feed_page(&bound).await?;
            Ok::<_, AppError>(render(&page)?)
        })
        .await?;
    Ok(Bytes::from_owner(Fragment(list)))
}

/// Public pages are the same for every anonymous visitor: the response
/// cache gives them an ETag, and browsers revalidate them on every view
/// (a `304` when nothing changed). Pages for a session or with a notice
/// are left to `cache_policy` (`private, no-store`).
fn revalidate(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

async fn home(
    State(state): State<AppState>,
    MaybeAuthUser(auth): MaybeAuthUser,
    IncomingFlash(flash): IncomingFlash,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let list = home_list(&state, cursor(query.as_deref()).as_deref()).await?;
    let public = auth.is_none() && flash.is_none();
    // The frame names the user, if any; the list is shared, and sent
    // without being copied.
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
        list,
        Bytes::copy_from_slice(bottom.as_bytes()),
    ]);
    let html = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let mut response = ([html], Body::new(body)).into_response();
    if public {
        revalidate(&mut response);
    }
    Ok(response)
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
    let public = auth.is_none() && flash.is_none();
    let mut response = render(&ImagePage {
        layout: Layout::new("Picture", auth.as_ref(), flash),
        m: &m,
        own,
    })?;
    if public {
        revalidate(&mut response);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_from_the_query() {
        assert_eq!(cursor(None), None);
        assert_eq!(cursor(Some("cursor=ab12")).as_deref(), Some("ab12"));
        assert_eq!(cursor(Some("x=1&cursor=cd")).as_deref(), Some("cd"));
        assert_eq!(cursor(Some("other=1")), None);
    }
}
