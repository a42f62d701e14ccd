//! One error type for every handler. Users see a clean page with a status
//! and a sentence; internals (database messages) go to the log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::data::{DataError, OverBudget, OverQuota, Scope, Spent};
use crate::store::StoreError;
use crate::views::ErrorPage;

/// What can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such page, message or image.
    #[error("not found")]
    NotFound,
    /// The page needs a logged-in user.
    #[error("login required")]
    LoginRequired,
    /// Logged in, but not allowed (another user's message).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The form's CSRF token is missing or wrong.
    #[error("CSRF token missing or invalid")]
    Csrf,
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The upload is larger than allowed.
    #[error("upload too large")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The form's text fields together are larger than allowed.
    #[error("form text too large")]
    TextTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Too many failed logins.
    #[error("too many login attempts")]
    TooManyAttempts {
        /// Minutes until the window ends at the latest.
        minutes: u64,
    },
    /// Every worker of a bounded pool (password hashing, image decoding)
    /// stayed busy for the whole wait: try again shortly.
    #[error("busy: no free {pool} worker")]
    Busy {
        /// Which pool was full, for the log.
        pool: &'static str,
        /// Seconds the client is asked to wait (`Retry-After`).
        retry_after: u64,
    },
    /// Too many registrations from one address.
    #[error("too many registrations")]
    TooManyRegistrations,
    /// A post or upload budget is spent; nothing was posted.
    #[error("post refused: {0}")]
    OverBudget(OverBudget),
    /// The account's storage quota is full; nothing was posted.
    #[error("post refused: {0}")]
    OverQuota(OverQuota),
    /// A sign-in with an OpenID provider failed; nothing was changed.
    #[error("sign-in: {0}")]
    SignIn(#[from] crate::oidc::OidcError),
    /// The database failed.
    #[error("store: {0}")]
    Store(String),
    /// Anything else that is our fault.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        Self::Store(error.to_string())
    }
}

impl From<std::sync::Arc<StoreError>> for AppError {
    fn from(error: std::sync::Arc<StoreError>) -> Self {
        Self::Store(error.to_string())
    }
}

impl From<DataError> for AppError {
    fn from(error: DataError) -> Self {
        match error {
            DataError::Store(e) => Self::Store(e.to_string()),
            DataError::SharedStore(e) => Self::Store(e.to_string()),
            DataError::Media(e) => Self::Internal(format!("media: {e}")),
            DataError::NotFound => Self::NotFound,
            DataError::NotOwner => Self::Forbidden("You can only delete your own messages."),
            DataError::NameTaken => {
                Self::BadRequest("That user name is taken. Please choose another.".into())
            }
            DataError::OverBudget(over) => Self::OverBudget(over),
            DataError::OverQuota(over) => Self::OverQuota(over),
            DataError::BadCursor(_) => Self::BadRequest(
                "That page link is damaged or was not made by this board. \
                 Start again from the first page."
                    .into(),
            ),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(error: askama::Error) -> Self {
        Self::Internal(format!("template: {error}"))
    }
}

impl From<std::io::Error> for AppError {
    fn from(error: std::io::Error) -> Self {
        Self::Internal(format!("io: {error}"))
    }
}

impl AppError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::LoginRequired => StatusCode::SEE_OTHER,
            Self::Forbidden(_) | Self::Csrf => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } | Self::TextTooLarge { .. } | Self::OverQuota(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::TooManyAttempts { .. } | Self::TooManyRegistrations | Self::OverBudget(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            // The database did not answer (after the store's own retries):
            // a temporary condition, not a bug in the request.
            Self::Store(_) | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::SignIn(e) => {
                use crate::oidc::OidcError as E;
                match e {
                    E::UnknownProvider => StatusCode::NOT_FOUND,
                    E::ProviderDown(_) => StatusCode::BAD_GATEWAY,
                    E::Cancelled => StatusCode::OK,
                    E::ProviderRefused(_) | E::CodeRefused(_) | E::BadToken(_) => {
                        StatusCode::UNAUTHORIZED
                    }
                    E::NoLoginState | E::StateMismatch => StatusCode::BAD_REQUEST,
                }
            }
        }
    }

    fn page(&self) -> (&'static str, String) {
        match self {
            Self::NotFound => ("Not found", "There is nothing here. It may have been deleted.".into()),
            Self::LoginRequired => ("Log in", "Please log in first.".into()),
            Self::Forbidden(why) => ("Not allowed", (*why).to_owned()),
            Self::Csrf => (
                "Form expired",
                "This form has expired or did not come from this site. Go back, reload the page and try again.".into(),
            ),
            Self::BadRequest(why) => ("Bad request", why.clone()),
            Self::TooLarge { limit } => (
                "File too large",
                format!("Images may be at most {}. Please choose a smaller one.", human_size(*limit)),
            ),
            Self::TextTooLarge { limit } => (
                "Form too large",
                format!("The text of this form may be at most {} in all.", human_size(*limit)),
            ),
            Self::TooManyAttempts { minutes } => (
                "Too many attempts",
                format!("Too many failed logins. Please wait up to {minutes} minutes and try again."),
            ),
            Self::Busy { .. } => (
                "Busy",
                "The board is busy, please try again in a moment.".into(),
            ),
            Self::TooManyRegistrations => (
                "Too many attempts",
                "Too many accounts were registered from your address. Please try again in an hour.".into(),
            ),
            Self::OverBudget(over) => ("Posting limit reached", over_budget_text(over)),
            Self::OverQuota(over) => ("Storage full", over_quota_text(over)),
            Self::Store(_) => (
                "Try again in a moment",
                "The board's database is not answering right now, so this request was not carried out. Everything already posted is safe; please try again in a moment.".into(),
            ),
            Self::Internal(_) => (
                "Something went wrong",
                "The board could not complete this request. Please try again in a moment.".into(),
            ),
            Self::SignIn(e) => sign_in_page(e),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::LoginRequired = self {
            return Redirect::to("/login").into_response();
        }
        let status = self.status();
        let retry_after = match self {
            Self::Busy { retry_after, .. } => Some(retry_after.max(1)),
            Self::OverBudget(over) => Some(whole_seconds(over.retry_after)),
            _ => None,
        };
        if retry_after.is_some() {
            // Expected under load; the pool's size is the remedy, not a bug.
            tracing::warn!(error = %self, "request refused");
        } else if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::info!(error = %self, "request refused");
        }
        let (title, message) = self.page();
        let page = ErrorPage {
            layout: crate::views::Layout::bare(title),
            status: status.as_u16(),
            message: &message,
        };
        let mut response = match askama::Template::render(&page) {
            Ok(body) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response(),
            Err(_) => (status, message).into_response(),
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The page of a failed sign-in: what happened, in words for people (the
/// details go to the log only).
fn sign_in_page(error: &crate::oidc::OidcError) -> (&'static str, String) {
    use crate::oidc::OidcError as E;
    let (title, text) = match error {
        E::UnknownProvider => ("Not found", "There is no such way to sign in here."),
        E::ProviderDown(_) => (
            "Sign-in unavailable",
            "The sign-in provider could not be reached. Nothing was changed; please try again later or log in with a password.",
        ),
        E::Cancelled => (
            "Sign-in cancelled",
            "You cancelled the sign-in at the provider. Nothing was changed.",
        ),
        E::ProviderRefused(_) => (
            "Sign-in refused",
            "The sign-in provider refused the sign-in. Nothing was changed.",
        ),
        E::NoLoginState => (
            "Sign-in expired",
            "This sign-in was not started in this browser or took too long. Nothing was changed; please start again.",
        ),
        E::StateMismatch => (
            "Sign-in refused",
            "The answer from the sign-in provider does not belong to the sign-in this browser started. Nothing was changed; please start again.",
        ),
        E::CodeRefused(_) => (
            "Sign-in refused",
            "The sign-in provider did not accept the sign-in code (it may have been used already). Nothing was changed; please start again.",
        ),
        E::BadToken(_) => (
            "Sign-in refused",
            "The identity the sign-in provider sent could not be verified. Nothing was changed.",
        ),
    };
    (title, text.to_owned())
}

/// What a refused post's page says: whose budget, how much in how long,
/// that nothing was posted, and when to try again.
fn over_budget_text(over: &OverBudget) -> String {
    let window = human_duration(over.allowance.window);
    let spent = match (over.scope, over.spent) {
        (Scope::Account, Spent::Posts) => format!(
            "This account has posted {} messages in {window}, as many as it may.",
            over.allowance.amount
        ),
        (Scope::Account, Spent::Bytes) => format!(
            "This account has uploaded {} of images in {window}, as much as it may.",
            human_size(over.allowance.amount)
        ),
        (Scope::Address, Spent::Posts) => format!(
            "{} messages were posted from your network address in {window}, as many as may be.",
            over.allowance.amount
        ),
        (Scope::Address, Spent::Bytes) => format!(
            "{} of images were uploaded from your network address in {window}, as much as may be.",
            human_size(over.allowance.amount)
        ),
    };
    format!(
        "{spent} Nothing was posted. Please try again in {}.",
        human_duration(over.retry_after)
    )
}

/// What a post refused by the account quota says: how much the account
/// stores of how much, what the post needed, that nothing was posted, and
/// how to make room.
fn over_quota_text(over: &OverQuota) -> String {
    format!(
        "This account stores {} of images, and may store {} in all; this post needs {} more. \
         Nothing was posted. Delete some of your messages to make room.",
        human_size(over.stored),
        human_size(over.quota),
        human_size(over.bytes)
    )
}

/// Whole seconds, rounded up, at least 1 (`Retry-After`).
fn whole_seconds(duration: std::time::Duration) -> u64 {
    duration.as_millis().div_ceil(1000).max(1) as u64
}

/// `45 seconds`, `6 minutes`, `3 hours`, `2 days`: rounded up, so a
/// client waiting that long finds the window over.
///
/// ```
/// use board::error::human_duration;
/// use std::time::Duration;
/// assert_eq!(human_duration(Duration::from_millis(200)), "1 second");
/// assert_eq!(human_duration(Duration::from_secs(45)), "45 seconds");
/// assert_eq!(human_duration(Duration::from_secs(361)), "7 minutes");
/// assert_eq!(human_duration(Duration::from_secs(86_400)), "24 hours");
/// assert_eq!(human_duration(Duration::from_secs(172_800)), "2 days");
/// ```
pub fn human_duration(duration: std::time::Duration) -> String {
    let seconds = whole_seconds(duration);
    let (n, unit) = match seconds {
        0..90 => (seconds, "second"),
        90..5_400 => (seconds.div_ceil(60), "minute"),
        5_400..129_600 => (seconds.div_ceil(3_600), "hour"),
        _ => (seconds.div_ceil(86_400), "day"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// `10 MiB`, `500 KiB`, `12 bytes`.
pub fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const KIB: u64 = 1 << 10;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}
