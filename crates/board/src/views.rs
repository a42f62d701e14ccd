//! Page templates (askama, compiled in) and the data each page shows.

use askama::Template;

use crate::auth::session::AuthContext;
use crate::listing::MessageView;
use crate::store::User;

/// A one-line notice shown at the top of the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flash {
    /// Account made and logged in.
    Registered,
    /// Logged in.
    LoggedIn,
    /// Logged out.
    LoggedOut,
    /// Message posted.
    Posted,
    /// Message deleted.
    Deleted,
    /// Password changed.
    PasswordChanged,
    /// A page needed a login.
    LoginRequired,
    /// A sign-in provider was linked to the account.
    Linked,
    /// The user name was changed.
    Renamed,
}

impl Flash {
    const ALL: [Self; 9] = [
        Self::Registered,
        Self::LoggedIn,
        Self::LoggedOut,
        Self::Posted,
        Self::Deleted,
        Self::PasswordChanged,
        Self::LoginRequired,
        Self::Linked,
        Self::Renamed,
    ];

    /// The cookie value for this notice.
    pub fn code(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::LoggedIn => "logged-in",
            Self::LoggedOut => "logged-out",
            Self::Posted => "posted",
            Self::Deleted => "deleted",
            Self::PasswordChanged => "password-changed",
            Self::LoginRequired => "login-required",
            Self::Linked => "linked",
            Self::Renamed => "renamed",
        }
    }

    /// The notice for a cookie value; unknown values show nothing, so a
    /// cookie can never put words of its own on a page.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }

    /// The sentence shown.
    pub fn text(self) -> &'static str {
        match self {
            Self::Registered => "Welcome! Your account is ready.",
            Self::LoggedIn => "You are logged in.",
            Self::LoggedOut => "You are logged out.",
            Self::Posted => "Your message is posted.",
            Self::Deleted => "The message is deleted.",
            Self::PasswordChanged => "Your password is changed. Other devices were logged out.",
            Self::LoginRequired => "Please log in first.",
            Self::Linked => "The sign-in provider is linked: you can sign in with it now.",
            Self::Renamed => "Your user name is changed.",
        }
    }

    /// `ok` or `error`, for styling.
    pub fn kind(self) -> &'static str {
        match self {
            Self::LoginRequired => "error",
            _ => "ok",
        }
    }
}

/// What every page's frame needs: title, who is logged in, the CSRF token
/// of the logout button, and a notice.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// Page title.
    pub title: &'a str,
    /// The logged-in user.
    pub user: Option<&'a User>,
    /// CSRF token for the session's forms (empty when logged out).
    pub csrf: &'a str,
    /// A notice to show.
    pub flash: Option<Flash>,
}

impl<'a> Layout<'a> {
    /// A frame for `auth` (or nobody).
    pub fn new(title: &'a str, auth: Option<&'a AuthContext>, flash: Option<Flash>) -> Self {
        Self {
            title,
            user: auth.map(|a| &*a.user),
            csrf: auth.map_or("", |a| a.session.csrf.as_str()),
            flash,
        }
    }

    /// A frame with nobody logged in and no notice (error pages).
    pub fn bare(title: &'a str) -> Self {
        Self {
            title,
            user: None,
            csrf: "",
            flash: None,
        }
    }
}

/// The list of one page of messages with its links to newer and older
/// pages: the part of `/` and `/my` that is the same for every viewer.
#[derive(Template)]
#[template(path = "list.html")]
pub struct ListFragment<'a> {
    /// Messages of this page.
    pub messages: &'a [MessageView],
    /// The path the page links go to (`/` or `/my`).
    pub path: &'a str,
    /// Token of the older page.
    pub older: Option<&'a str>,
    /// Token of the newer page (`None` on the first page).
    pub newer: Option<&'a str>,
    /// Whether this is the first page (then "newer" links to `path`).
    pub first: bool,
    /// The CSRF token for delete buttons; empty: no delete buttons.
    pub delete_csrf: &'a str,
}

/// `/`.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage<'a> {
    /// Frame.
    pub layout: Layout<'a>,
    /// The rendered list fragment.
    pub list: &'a str,
}

/// `/my`.
#[derive(Template)]
#[template(path = "my.html")]
pub struct MyPage<'a> {
    /// Frame.
    pub layout: Layout<'a>,
    /// The rendered list fragment.
    pub list: &'a str,
}

/// `/image/{name}`.
#[derive(Template)]
#[template(path = "image.html")]
pub struct ImagePage<'a> {
    /// Frame.
    pub layout: Layout<'a>,
    /// The message.
    pub m: &'a MessageView,
    /// Whether the viewer may delete it.
    pub own: bool,
}

/// What the post form shows: the values typed so far and what is wrong.
#[derive(Debug, Default, Clone)]
pub struct PostFormValues {
    /// Author field.
    pub author: String,
    /// Location field.
    pub location: String,
    /// Description field.
    pub description: String,
    /// Problems to fix.
    pub errors: Vec<String>,
}

/// `/post`.
#[derive(Template)]
#[template(path = "post.html")]
pub struct PostPage<'a> {
    /// Frame.
    pub layout: Layout<'a>,
    /// The form.
    pub form: &'a PostFormValues,
    /// Problems to fix (the form's).
    pub errors: &'a [String],
    /// Largest upload, for the hint.
    pub limit: &'a str,
}

/// `/login` and `/register`.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    /// Frame.
    pub layout: Layout<'a>,
    /// True for the register form.
    pub register: bool,
    /// The name typed so far.
    pub username: &'a str,
    /// Problems to fix.
    pub errors: &'a [String],
    /// CSRF token of the form.
    pub form_csrf: &'a str,
    /// "Sign in with …" buttons: (slug, display name).
    pub providers: &'a [(String, String)],
}

/// `GET /logout`: a button.
#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    /// Frame.
    pub layout: Layout<'a>,
}

/// `/acc`.
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    /// Frame.
    pub layout: Layout<'a>,
    /// The user.
    pub user: &'a User,
    /// Since when.
    pub member_since: &'a str,
    /// How many messages they have.
    pub message_count: u64,
    /// Problems with the password form.
    pub errors: &'a [String],
    /// Providers that can be linked: (slug, display name).
    pub providers: &'a [(String, String)],
}

/// Any error.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// Frame.
    pub layout: Layout<'a>,
    /// HTTP status.
    pub status: u16,
    /// What happened, for the user.
    pub message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_codes_round_trip_and_unknown_codes_show_nothing() {
        for flash in Flash::ALL {
            assert_eq!(Flash::from_code(flash.code()), Some(flash));
            assert!(!flash.text().is_empty());
        }
        assert_eq!(Flash::from_code("<script>alert(1)</script>"), None);
        assert_eq!(Flash::from_code(""), None);
    }
}
