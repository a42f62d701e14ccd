//! The login state of one sign-in, in a signed cookie rather than on the
//! server, so the provider's redirect may land on any instance of a fleet.
//!
//! The cookie is `base64url(JSON) "." hex(tag)`, the tag an HMAC-SHA-256
//! of the JSON under the board's secret (`--secret-key`, which a fleet
//! shares) with its own domain-separation label. It is HttpOnly,
//! SameSite=Lax (the provider's redirect is a top-level GET, which Lax
//! lets through), lives [`STATE_LIFETIME`] and is at most
//! [`MAX_STATE_COOKIE`] bytes: a longer or older one is refused before it
//! is decoded or used.
//!
//! Signed, not encrypted: it holds the PKCE verifier, which is useless
//! without the one-time code that only the provider's redirect to this
//! browser carries, and the nonce, which is no secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Name of the login-state cookie.
pub const STATE_COOKIE: &str = "board_oidc";
/// How long a sign-in may take, from the click to the callback.
pub const STATE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(600);
/// Largest login-state cookie accepted, bytes.
pub const MAX_STATE_COOKIE: usize = 3072;

/// What the callback needs to finish a sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// The provider's slug.
    pub provider: String,
    /// The `state` sent to the provider (CSRF of the redirect).
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// The redirect URL sent to the provider (sent again with the code).
    pub redirect_url: String,
    /// A local path to go to afterwards.
    pub return_to: String,
    /// When a signed-in user links a provider: their id.
    pub link_user: Option<String>,
    /// When the sign-in began, Unix milliseconds.
    pub issued_at_ms: i64,
}

impl LoginState {
    /// Whether `given` is this sign-in's `state` (constant time).
    pub fn state_matches(&self, given: &str) -> bool {
        !given.is_empty() && bool::from(self.state.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// Signs and opens login-state cookies.
#[derive(Clone)]
pub struct StateKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// A key from the board's secret.
    ///
    /// ```
    /// use board::oidc::{LoginState, StateKey};
    /// let key = StateKey::new(&"a board secret that is long enough".into());
    /// let state = LoginState {
    ///     provider: "google".into(),
    ///     state: "s".into(),
    ///     nonce: "n".into(),
    ///     verifier: "v".into(),
    ///     redirect_url: "https://board.example/auth/oidc/google/callback".into(),
    ///     return_to: "/".into(),
    ///     link_user: None,
    ///     issued_at_ms: 1_000,
    /// };
    /// let cookie = key.seal(&state);
    /// assert_eq!(key.open(&cookie, 2_000), Some(state));
    /// assert_eq!(key.open(&cookie, 1_000 + 601_000), None); // too old
    /// ```
    pub fn new(secret: &SecretString) -> Self {
        Self {
            key: secret.expose_secret().as_bytes().to_vec(),
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(b"oidc-login-state\0");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The cookie value of `state`.
    pub fn seal(&self, state: &LoginState) -> String {
        let json = serde_json::to_vec(state).unwrap_or_default();
        let tag = self.tag(&json);
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&json), hex::encode(tag))
    }

    /// The state in `cookie` if this board sealed it and it is not older
    /// than [`STATE_LIFETIME`] at `now_ms`.
    pub fn open(&self, cookie: &str, now_ms: i64) -> Option<LoginState> {
        if cookie.len() > MAX_STATE_COOKIE {
            return None;
        }
        let (body, tag) = cookie.split_once('.')?;
        let json = URL_SAFE_NO_PAD.decode(body).ok()?;
        let tag = hex::decode(tag).ok()?;
        if !bool::from(self.tag(&json).as_slice().ct_eq(&tag)) {
            return None;
        }
        let state: LoginState = serde_json::from_slice(&json).ok()?;
        let lifetime = i64::try_from(STATE_LIFETIME.as_millis()).unwrap_or(i64::MAX);
        let age = now_ms.saturating_sub(state.issued_at_ms);
        // A little clock skew between instances is fine; the future is not.
        (-60_000..=lifetime).contains(&age).then_some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> LoginState {
        LoginState {
            provider: "test".into(),
            state: "abc".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            redirect_url: "http://127.0.0.1/cb".into(),
            return_to: "/".into(),
            link_user: Some("u".into()),
            issued_at_ms: 10_000,
        }
    }

    #[test]
    fn a_cookie_opens_only_with_its_key_untouched_and_in_time() {
        let key = StateKey::new(&SecretString::from("k".repeat(40)));
        let other = StateKey::new(&SecretString::from("j".repeat(40)));
        let cookie = key.seal(&state());
        assert_eq!(key.open(&cookie, 10_000), Some(state()));
        assert_eq!(other.open(&cookie, 10_000), None);
        let mut tampered = cookie.clone().into_bytes();
        tampered[3] ^= 1;
        assert_eq!(key.open(&String::from_utf8_lossy(&tampered), 10_000), None);
        assert_eq!(key.open(&cookie, 10_000 + 600_001), None);
        assert_eq!(key.open(&cookie, 10_000 - 60_001), None);
        assert_eq!(key.open(&"a".repeat(MAX_STATE_COOKIE + 1), 10_000), None);
        assert_eq!(key.open("garbage", 10_000), None);
    }

    #[test]
    fn state_compares_whole() {
        let s = state();
        assert!(s.state_matches("abc"));
        assert!(!s.state_matches("ab"));
        assert!(!s.state_matches(""));
    }
}
