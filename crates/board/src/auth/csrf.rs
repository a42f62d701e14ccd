//! CSRF tokens: an HMAC of the session (for logged-in users) or of a random
//! per-browser cookie (for the login and register forms, the signed
//! double-submit pattern). A forged form cannot carry a valid token because
//! it can neither read the cookie nor compute the HMAC without the key.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Name of the per-browser cookie for forms shown before logging in.
pub const ANON_COOKIE: &str = "board_csrf";

/// The key tokens are derived with.
#[derive(Clone)]
pub struct CsrfKey {
    key: Vec<u8>,
}

impl CsrfKey {
    /// A key from the configured secret.
    pub fn new(secret: &SecretString) -> Self {
        Self {
            key: secret.expose_secret().as_bytes().to_vec(),
        }
    }

    fn mac(&self, purpose: &str, value: &str) -> String {
        // HMAC takes keys of any length.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The token for forms of the session whose token hashes to `token_hash`.
    pub fn for_session(&self, token_hash: &str) -> String {
        self.mac("session", token_hash)
    }

    /// The token for forms of a browser holding anonymous cookie `cookie`.
    pub fn for_anonymous(&self, cookie: &str) -> String {
        self.mac("anonymous", cookie)
    }
}

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(…)")
    }
}

/// Compares tokens in constant time.
pub fn matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_depend_on_key_purpose_and_value() {
        let a = CsrfKey::new(&SecretString::from("key one, long enough for tests"));
        let b = CsrfKey::new(&SecretString::from("key two, long enough for tests"));
        assert_eq!(a.for_session("s"), a.for_session("s"));
        assert_ne!(a.for_session("s"), b.for_session("s"));
        assert_ne!(a.for_session("s"), a.for_anonymous("s"));
        assert!(matches(&a.for_session("s"), &a.for_session("s")));
        assert!(!matches(&a.for_session("s"), ""));
        assert!(!matches("", ""));
    }
}
