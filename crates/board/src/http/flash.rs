//! Flash notices: a cookie naming one of a fixed set of notices, shown on
//! the next page and then cleared.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::session::{self, clear_cookie, set_cookie};
use crate::state::AppState;
use crate::views::Flash;

const FLASH_COOKIE: &str = "board_flash";

/// The notice the request carries, if any.
#[derive(Debug, Clone, Copy)]
pub struct IncomingFlash(pub Option<Flash>);

impl<S: Send + Sync> FromRequestParts<S> for IncomingFlash {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            session::cookie(&parts.headers, FLASH_COOKIE).and_then(Flash::from_code),
        ))
    }
}

/// The `Set-Cookie` that carries `flash` to the next page.
pub(super) fn set(flash: Flash, secure: bool) -> HeaderValue {
    set_cookie(
        FLASH_COOKIE,
        flash.code(),
        Some(std::time::Duration::from_secs(60)),
        secure,
    )
}

/// Clears the notice once a page has been shown with it (`Secure` like the
/// cookie that set it).
pub(super) async fn clear_shown(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let had_flash = session::cookie(request.headers(), FLASH_COOKIE).is_some();
    let secure = super::secure(&state, request.headers());
    let mut response = next.run(request).await;
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if had_flash && is_page && response.status().is_success() {
        let sets_flash = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.as_bytes().starts_with(FLASH_COOKIE.as_bytes()));
        if !sets_flash {
            response
                .headers_mut()
                .append(header::SET_COOKIE, clear_cookie(FLASH_COOKIE, secure));
        }
    }
    response
}
