//! Register, log in, log out, and the account page.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::AuthContext;
use super::password;
use super::{AuthUser, CsrfForm, HasCsrf, MaybeAuthUser};
use super::{ClientIp, IncomingFlash, redirect_with, secure};
use super::{render, render_with};
use crate::auth as auth_mod;
use crate::auth::csrf::ANON_COOKIE;
use crate::auth::session::{self, SESSION_COOKIE, clear_cookie, set_cookie};
use crate::data::DataError;
use crate::domain::{Password, Username};
use crate::error::AppError;
use crate::listing::format_time;
use crate::state::AppState;
use crate::store::{Listing, User};
use crate::views::{AccountPage, Flash, Layout, LoginPage, LogoutPage};

pub(super) fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/register", get(register_form).post(register))
        .route("/login", get(login_form).post(login))
        .route("/logout", get(logout_form).post(logout))
        .route("/acc", get(account))
        .route("/acc/password", post(change_password))
        .route("/acc/name", post(rename))
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
struct RenameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
}

impl HasCsrf for RenameForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

impl HasCsrf for RegisterForm {
    const ANONYMOUS: bool = true;
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
impl HasCsrf for LoginForm {
    const ANONYMOUS: bool = true;
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
impl HasCsrf for LogoutForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
impl HasCsrf for PasswordForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The anonymous CSRF token for this browser, and the cookie to set if the
/// browser has none yet.
fn anonymous_token(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match session::cookie(headers, ANON_COOKIE).filter(|c| session::is_well_formed(c)) {
        Some(cookie) => (state.csrf.for_anonymous(cookie), None),
        None => {
            let cookie = session::new_token();
            let set = set_cookie(ANON_COOKIE, &cookie, None, secure(state, headers));
            (state.csrf.for_anonymous(&cookie), Some(set))
        }
    }
}

/// The login or register form, with `status` and `errors`.
fn credentials_page(
    state: &AppState,
    headers: &HeaderMap,
    register: bool,
    username: &str,
    errors: &[String],
    status: StatusCode,
) -> Result<Response, AppError> {
    let (token, set) = anonymous_token(state, headers);
    let title = if register { "Register" } else { "Log in" };
    let mut response = render_with(
        status,
        &LoginPage {
            layout: Layout::new(title, None, None),
            register,
            username,
            errors,
            form_csrf: &token,
            providers: &providers(state),
        },
    )?;
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    Ok(response)
}

async fn register_form(
    State(state): State<AppState>,
    MaybeAuthUser(auth): MaybeAuthUser,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if auth.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    credentials_page(&state, &headers, true, "", &[], StatusCode::OK)
}

async fn login_form(
    State(state): State<AppState>,
    MaybeAuthUser(auth): MaybeAuthUser,
    IncomingFlash(flash): IncomingFlash,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if auth.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let errors: Vec<String> = flash
        .filter(|f| *f == Flash::LoginRequired)
        .map(|f| f.text().to_owned())
        .into_iter()
        .collect();
    credentials_page(&state, &headers, false, "", &errors, StatusCode::OK)
}

/// Starts a session for `user` (stored, memos primed so the next request
/// reads nothing) and returns the cookie.
pub(super) async fn start_session(
    state: &AppState,
    user: User,
    secure: bool,
) -> Result<HeaderValue, AppError> {
    let token = session::new_token();
    let lifetime = state.limits.session_lifetime;
    state
        .data
        .start_session(
            user,
            auth_mod::sha256_hex(&token),
            state.limits.session_clock.now_ms(),
            lifetime,
        )
        .await?;
    Ok(set_cookie(SESSION_COOKIE, &token, Some(lifetime), secure))
}

async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<RegisterForm>,
) -> Result<Response, AppError> {
    let mut errors = Vec::new();
    let username = Username::parse(&form.username)
        .map_err(|e| errors.push(e.0))
        .ok();
    let password = Password::parse(&form.password)
        .map_err(|e| errors.push(e.0))
        .ok();
    if form.password != form.confirm {
        errors.push("The two passwords differ.".into());
    }
    let (Some(username), Some(password), true) = (username, password, errors.is_empty()) else {
        return credentials_page(
            &state,
            &headers,
            true,
            &form.username,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    // Counted before the hash and the insert, the costly part.
    if !state.limiter.register(ip).await {
        return Err(AppError::TooManyRegistrations);
    }
    let hash = password::hash(&state.workers.hashing, &password).await?;
    let user = User {
        id: auth_mod::random_hex(16),
        username: username.as_str().to_owned(),
        created_at: auth_mod::now_ms(),
    };
    match state.data.register(&user, &hash).await {
        Ok(()) => {}
        Err(DataError::NameTaken) => {
            let errors = ["That user name is taken. Please choose another.".to_owned()];
            return credentials_page(
                &state,
                &headers,
                true,
                &form.username,
                &errors,
                StatusCode::CONFLICT,
            );
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user = %user.username, "registered");
    let secure = secure(&state, &headers);
    let cookie = start_session(&state, user, secure).await?;
    Ok(redirect_with("/", Flash::Registered, secure, vec![cookie]))
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, AppError> {
    let name = form.username.trim();
    // Reserved before the check: parallel guesses get no more checks.
    let Some(attempt) = state.limiter.reserve(name, ip).await else {
        let minutes = state.limiter.window().as_secs().div_ceil(60);
        return Err(AppError::TooManyAttempts { minutes });
    };
    let found = if Username::parse(name).is_ok() {
        state.data.credentials(name).await?
    } else {
        None
    };
    let (user, hash) = match found {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    let matched = password::verify(&state.workers.hashing, &form.password, hash).await?;
    let Some(user) = user.filter(|_| matched) else {
        drop(attempt); // stays counted
        let errors = ["Wrong user name or password.".to_owned()];
        return credentials_page(
            &state,
            &headers,
            false,
            name,
            &errors,
            StatusCode::UNAUTHORIZED,
        );
    };
    state.limiter.succeeded(attempt).await;
    tracing::info!(user = %user.username, "logged in");
    let secure = secure(&state, &headers);
    let cookie = start_session(&state, user, secure).await?;
    Ok(redirect_with("/", Flash::LoggedIn, secure, vec![cookie]))
}

async fn logout_form(
    MaybeAuthUser(auth): MaybeAuthUser,
    IncomingFlash(flash): IncomingFlash,
) -> Result<Response, AppError> {
    render(&LogoutPage {
        layout: Layout::new("Log out", auth.as_ref(), flash),
    })
}

async fn logout(
    State(state): State<AppState>,
    AuthUser(auth): AuthUser,
    headers: HeaderMap,
    CsrfForm(_form): CsrfForm<LogoutForm>,
) -> Result<Response, AppError> {
    // Revokes the session on the server: the row goes, and so do the
    // cached copies of the session and the user.
    state
        .data
        .end_session(&auth.session.token_hash, &auth.user.id)
        .await?;
    tracing::info!(user = %auth.user.username, "logged out");
    let secure = secure(&state, &headers);
    let clear = clear_cookie(SESSION_COOKIE, secure);
    Ok(redirect_with("/", Flash::LoggedOut, secure, vec![clear]))
}

/// The configured sign-in providers as (slug, display name).
fn providers(state: &AppState) -> Vec<(String, String)> {
    state
        .oidc
        .providers()
        .iter()
        .map(|p| (p.slug.clone(), p.display.clone()))
        .collect()
}

fn account_page(
    state: &AppState,
    auth: &AuthContext,
    message_count: u64,
    flash: Option<Flash>,
    errors: &[String],
    status: StatusCode,
) -> Result<Response, AppError> {
    let (member_since, _) = format_time(auth.user.created_at);
    render_with(
        status,
        &AccountPage {
            layout: Layout::new("Your account", Some(auth), flash),
            user: &auth.user,
            member_since: &member_since,
            message_count,
            errors,
            providers: &providers(state),
        },
    )
}

async fn account(
    State(state): State<AppState>,
    AuthUser(auth): AuthUser,
    IncomingFlash(flash): IncomingFlash,
) -> Result<Response, AppError> {
    let count = state
        .data
        .message_count(&Listing::User(auth.user.id.clone()))
        .await?;
    account_page(&state, &auth, count, flash, &[], StatusCode::OK)
}

async fn change_password(
    State(state): State<AppState>,
    AuthUser(auth): AuthUser,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, AppError> {
    let name = auth.user.username.as_str();
    let Some(attempt) = state.limiter.reserve(name, ip).await else {
        let minutes = state.limiter.window().as_secs().div_ceil(60);
        return Err(AppError::TooManyAttempts { minutes });
    };
    let mut errors = Vec::new();
    let hash = state.data.password_hash(&auth.user.id).await?;
    if password::verify(&state.workers.hashing, &form.current, hash).await? {
        state.limiter.succeeded(attempt).await;
    } else {
        errors.push("The current password is wrong.".to_owned());
    }
    let new = Password::parse(&form.new)
        .map_err(|e| errors.push(e.0))
        .ok();
    if form.new != form.confirm {
        errors.push("The two new passwords differ.".into());
    }
    let (Some(new), true) = (new, errors.is_empty()) else {
        let count = state
            .data
            .message_count(&Listing::User(auth.user.id.clone()))
            .await?;
        return account_page(
            &state,
            &auth,
            count,
            None,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let hash = password::hash(&state.workers.hashing, &new).await?;
    // Other devices must log in again with the new password.
    let revoked = state
        .data
        .change_password(&auth.user.id, &hash, &auth.session.token_hash)
        .await?;
    tracing::info!(user = %auth.user.username, revoked, "password changed");
    Ok(redirect_with(
        "/acc",
        Flash::PasswordChanged,
        secure(&state, &headers),
        vec![],
    ))
}

/// Changes the user name (users made by a sign-in provider got theirs from
/// the profile).
async fn rename(
    State(state): State<AppState>,
    AuthUser(auth): AuthUser,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<RenameForm>,
) -> Result<Response, AppError> {
    let problem = match Username::parse(&form.username) {
        Ok(name) => match state.data.rename_user(&auth.user.id, name.as_str()).await {
            Ok(()) => {
                tracing::info!(from = %auth.user.username, to = %name.as_str(), "renamed");
                return Ok(redirect_with(
                    "/acc",
                    Flash::Renamed,
                    secure(&state, &headers),
                    vec![],
                ));
            }
            Err(DataError::NameTaken) => (
                StatusCode::CONFLICT,
                "That user name is taken. Please choose another.".to_owned(),
            ),
            Err(e) => return Err(e.into()),
        },
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.0),
    };
    let count = state
        .data
        .message_count(&Listing::User(auth.user.id.clone()))
        .await?;
    account_page(&state, &auth, count, None, &[problem.1], problem.0)
}
