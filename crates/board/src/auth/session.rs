//! Sessions: a random 256-bit token in an HttpOnly cookie; the server keeps
//! only its SHA-256, and looks it up through the `load_session` memo.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};

use crate::store::User;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "board_session";

/// A live login, as cached by `load_session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// SHA-256 of the cookie's token, hex: the key of the session.
    pub token_hash: String,
    /// Who is logged in.
    pub user_id: String,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    /// Unix milliseconds after which the session is void.
    pub expires_at: i64,
}

/// A logged-in user and their session.
#[derive(Debug, Clone)]
pub struct AuthContext {
    /// The user (from `load_user`).
    pub user: Arc<User>,
    /// The session (from `load_session`).
    pub session: Arc<Session>,
}

/// A fresh session token (256 random bits, hex).
pub fn new_token() -> String {
    super::random_hex(32)
}

/// True for strings that could be a token this board issued.
pub fn is_well_formed(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path `/`, `Secure` if
/// asked; a session cookie (gone when the browser closes) without `max_age`.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    // Names and values are ours: hex digits and fixed words.
    HeaderValue::from_str(&cookie)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A `Set-Cookie` value that removes cookie `name`.
pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", Some(Duration::ZERO), secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; board_session=abc"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(cookie(&headers, "board_session"), Some("abc"));
        assert_eq!(cookie(&headers, "c"), Some("3"));
        assert_eq!(cookie(&headers, "board"), None);
    }

    #[test]
    fn tokens_are_256_bit_hex() {
        let token = new_token();
        assert!(is_well_formed(&token));
        assert_ne!(token, new_token());
        assert!(!is_well_formed("abc"));
        assert!(!is_well_formed(&"G".repeat(64)));
    }

    #[test]
    fn cookie_attributes() {
        let c = set_cookie("s", "v", Some(Duration::from_secs(60)), true);
        assert_eq!(c, "s=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure");
        assert_eq!(
            clear_cookie("s", false),
            "s=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }
}
