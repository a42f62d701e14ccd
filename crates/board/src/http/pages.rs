//! Pages that show messages: home, my messages, one image.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::get;

use super::IncomingFlash;
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::error::AppError;
use crate::media::MediaName;
use crate::state::AppState;
use crate::views::{HomePage, ImagePage, Layout, MyPage, render};

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
    render(&HomePage {
        layout: Layout::new("All messages", auth.as_ref(), flash),
        list: &list.html,
    })
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
