//! Extractors: who is logged in ([`MaybeAuthUser`], [`AuthUser`]) and forms
//! whose CSRF token is checked before the handler runs ([`CsrfForm`]).

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::auth::csrf::{self, ANON_COOKIE};
pub(crate) use crate::auth::session::AuthContext;
use crate::auth::session::{self, SESSION_COOKIE};
use crate::error::AppError;
use crate::state::AppState;

/// The user if logged in.
#[derive(Debug, Clone)]
pub(crate) struct MaybeAuthUser(pub Option<AuthContext>);

/// A logged-in user; other requests are sent to the login page.
#[derive(Debug, Clone)]
pub(crate) struct AuthUser(pub AuthContext);

/// Resolved once per request and kept in the extensions for later
/// extractors.
#[derive(Clone)]
struct Resolved(Option<AuthContext>);

async fn resolve(parts: &mut Parts, state: &AppState) -> Result<Option<AuthContext>, AppError> {
    if let Some(Resolved(found)) = parts.extensions.get::<Resolved>() {
        return Ok(found.clone());
    }
    let found = match session::cookie(&parts.headers, SESSION_COOKIE) {
        Some(token) if session::is_well_formed(token) => {
            let token_hash = crate::auth::sha256_hex(token);
            lookup(state, &token_hash).await?
        }
        _ => None,
    };
    parts.extensions.insert(Resolved(found.clone()));
    Ok(found)
}

async fn lookup(state: &AppState, token_hash: &str) -> Result<Option<AuthContext>, AppError> {
    let found = state
        .data
        .session(token_hash, state.limits.session_clock.now_ms())
        .await?;
    Ok(found.map(|(session, user)| AuthContext { user, session }))
}

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        resolve(parts, state).await.map(Self)
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        resolve(parts, state)
            .await?
            .map(Self)
            .ok_or(AppError::LoginRequired)
    }
}

/// A form with a CSRF token.
pub(crate) trait HasCsrf {
    /// Whether the form is shown to logged-out visitors (login, register),
    /// so that a token of the anonymous cookie is accepted too.
    const ANONYMOUS: bool = false;

    /// The token the form carried.
    fn csrf(&self) -> &str;
}

/// A URL-encoded form whose CSRF token has been checked.
#[derive(Debug)]
pub(crate) struct CsrfForm<T>(pub T);

impl<T> FromRequest<AppState> for CsrfForm<T>
where
    T: DeserializeOwned + HasCsrf + Send,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let (mut parts, body) = req.into_parts();
        let auth = resolve(&mut parts, state).await?;
        let anonymous = if T::ANONYMOUS {
            session::cookie(&parts.headers, ANON_COOKIE).map(|c| state.csrf.for_anonymous(c))
        } else {
            None
        };
        let req = Request::from_parts(parts, body);
        let Form(form) = Form::<T>::from_request(req, state)
            .await
            .map_err(|rejection| AppError::BadRequest(rejection.body_text()))?;
        if verify(auth.as_ref(), anonymous.as_deref(), form.csrf()) {
            Ok(Self(form))
        } else {
            Err(AppError::Csrf)
        }
    }
}

/// True if `given` is the session's token, or the anonymous cookie's token
/// where one is accepted.
pub(crate) fn verify(auth: Option<&AuthContext>, anonymous: Option<&str>, given: &str) -> bool {
    auth.is_some_and(|a| csrf::matches(&a.session.csrf, given))
        || anonymous.is_some_and(|expected| csrf::matches(expected, given))
}
