//! Sign in with an OpenID provider: start, callback, and linking a
//! provider to a signed-in account (see [`crate::oidc`] for the flow).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::account::start_session;
use super::{AuthUser, CsrfForm, HasCsrf, MaybeAuthUser};
use super::{ClientIp, redirect_with, secure};
use crate::auth::now_ms;
use crate::auth::session::{self, clear_cookie, set_cookie};
use crate::data::DataError;
use crate::error::AppError;
use crate::oidc::{self, CallbackParams, OidcError, Provider, STATE_COOKIE, STATE_LIFETIME};
use crate::state::AppState;
use crate::views::Flash;

pub(super) fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/auth/oidc/{provider}/login", get(login))
        .route("/auth/oidc/{provider}/callback", get(callback))
        .route("/acc/oidc/{provider}/link", post(link))
}

#[derive(Deserialize)]
struct LinkForm {
    #[serde(default)]
    csrf: String,
}

impl HasCsrf for LinkForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

fn provider<'s>(state: &'s AppState, slug: &str) -> Result<&'s Provider, AppError> {
    state
        .oidc
        .provider(slug)
        .ok_or(AppError::SignIn(OidcError::UnknownProvider))
}

/// Longest `Host` header used to build a redirect URL.
const MAX_HOST: usize = 255;

/// The redirect URL of `provider`: configured, or this request's origin.
fn redirect_url(
    state: &AppState,
    headers: &HeaderMap,
    provider: &Provider,
) -> Result<String, AppError> {
    if let Some(url) = &provider.redirect_url {
        return Ok(url.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.len() <= MAX_HOST)
        .ok_or_else(|| AppError::BadRequest("The request names no host.".into()))?;
    let scheme = if secure(state, headers) {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{host}/auth/oidc/{}/callback", provider.slug);
    url::Url::parse(&url)
        .map_err(|_| AppError::BadRequest("The request's host is malformed.".into()))?;
    Ok(url)
}

/// Sends the browser to the provider with a fresh login cookie.
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    provider: &Provider,
    link_user: Option<String>,
) -> Result<Response, AppError> {
    let redirect = redirect_url(state, headers, provider)?;
    let return_to = if link_user.is_some() { "/acc" } else { "/" };
    let begun = oidc::begin(
        &state.oidc,
        &state.data,
        provider,
        redirect,
        return_to.to_owned(),
        link_user,
        now_ms(),
    )
    .await?;
    let mut response = Redirect::to(&begun.url).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            STATE_COOKIE,
            &begun.cookie,
            Some(STATE_LIFETIME),
            secure(state, headers),
        ),
    );
    Ok(response)
}

async fn login(
    State(state): State<AppState>,
    MaybeAuthUser(auth): MaybeAuthUser,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let provider = provider(&state, &slug)?;
    if auth.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    start(&state, &headers, provider, None).await
}

async fn link(
    State(state): State<AppState>,
    AuthUser(auth): AuthUser,
    Path(slug): Path<String>,
    headers: HeaderMap,
    CsrfForm(_form): CsrfForm<LinkForm>,
) -> Result<Response, AppError> {
    let provider = provider(&state, &slug)?;
    start(&state, &headers, provider, Some(auth.user.id.clone())).await
}

async fn callback(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    MaybeAuthUser(auth): MaybeAuthUser,
    Path(slug): Path<String>,
    Query(params): Query<CallbackParams>,
    headers: HeaderMap,
) -> Response {
    let secure = secure(&state, &headers);
    // The login cookie is spent whatever happens.
    let clear = clear_cookie(STATE_COOKIE, secure);
    // Each callback may cost a code exchange with the provider: from the
    // client address's login budget, given back when it signs in.
    let mut response = match state.limiter.reserve_sign_in(ip).await {
        None => {
            let minutes = state.limiter.window().as_secs().div_ceil(60);
            AppError::TooManyAttempts { minutes }.into_response()
        }
        Some(attempt) => match finish(&state, auth, &slug, params, &headers, secure).await {
            Ok(response) => {
                state.limiter.signed_in(attempt).await;
                response
            }
            Err(error) => error.into_response(),
        },
    };
    response.headers_mut().append(header::SET_COOKIE, clear);
    response
}

async fn finish(
    state: &AppState,
    auth: Option<super::extract::AuthContext>,
    slug: &str,
    params: CallbackParams,
    headers: &HeaderMap,
    secure: bool,
) -> Result<Response, AppError> {
    let provider = provider(state, slug)?;
    let cookie = session::cookie(headers, STATE_COOKIE);
    let now = now_ms();
    let verified = oidc::finish(&state.oidc, &state.data, provider, cookie, params, now).await?;
    if let Some(link_user) = &verified.state.link_user {
        // Linking: only for the user who asked, still signed in here.
        if auth.as_ref().map(|a| &a.user.id) != Some(link_user) {
            return Err(AppError::LoginRequired);
        }
        return match state
            .data
            .oidc_link(&verified.issuer, &verified.subject, link_user)
            .await
        {
            Ok(()) => {
                tracing::info!(user = %link_user, provider = %provider.slug, "provider linked");
                Ok(redirect_with("/acc", Flash::Linked, secure, vec![]))
            }
            Err(DataError::NameTaken) => Err(AppError::BadRequest(format!(
                "That {} account is already linked to another board user.",
                provider.display
            ))),
            Err(e) => Err(e.into()),
        };
    }
    let (user, new) = state
        .data
        .oidc_user(
            &verified.issuer,
            &verified.subject,
            verified.name_hint.as_deref(),
            now,
        )
        .await?;
    tracing::info!(user = %user.username, provider = %provider.slug, new, "signed in");
    let cookie: HeaderValue = start_session(state, user, secure).await?;
    let flash = if new {
        Flash::Registered
    } else {
        Flash::LoggedIn
    };
    Ok(redirect_with(
        &verified.state.return_to,
        flash,
        secure,
        vec![cookie],
    ))
}
