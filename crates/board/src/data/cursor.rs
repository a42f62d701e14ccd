//! Page links: a [`Bound`] sealed into an opaque, tamper-proof token.
//!
//! A token is hex of `direction (1 byte) ‖ created_at (8 bytes, big-endian)
//! ‖ id (16 bytes) ‖ tag (16 bytes)`, where the tag is an HMAC-SHA-256 of
//! the rest under a key derived from the board's secret (truncated to 128
//! bits). A token can only name a place in a listing that this board (or a
//! board sharing its `--secret-key`) handed out; an edited one fails the
//! tag and gets a 400 page, and never reaches the database. Tokens do not
//! expire: a place stays valid after its message is deleted.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::store::{Bound, Position};

/// Length of the authentication tag, bytes.
const TAG: usize = 16;
/// Length of the sealed fields: direction, time, id.
const BODY: usize = 1 + 8 + 16;

/// Seals and opens page tokens.
#[derive(Clone)]
pub struct CursorKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the page link is damaged or was not made by this board")]
pub struct BadCursor;

impl CursorKey {
    /// A key for page tokens from the board's secret.
    pub fn new(secret: &SecretString) -> Self {
        Self {
            key: secret.expose_secret().as_bytes().to_vec(),
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(b"page-cursor\0");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut tag = [0; TAG];
        tag.copy_from_slice(&full[..TAG]);
        tag
    }

    /// The token of `bound`; `None` for [`Bound::Newest`] (the first page
    /// has no token) or a place whose id is not 32 hex digits (no message
    /// of this board has one).
    pub fn seal(&self, bound: &Bound) -> Option<String> {
        let (direction, place) = match bound {
            Bound::Newest => return None,
            Bound::Older(p) => (b'o', p),
            Bound::Newer(p) => (b'n', p),
        };
        let id = hex::decode(&place.id).ok().filter(|id| id.len() == 16)?;
        let mut bytes = Vec::with_capacity(BODY + TAG);
        bytes.push(direction);
        bytes.extend_from_slice(&place.created_at.to_be_bytes());
        bytes.extend_from_slice(&id);
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag);
        Some(hex::encode(bytes))
    }

    /// The bound a token names.
    ///
    /// # Errors
    /// [`BadCursor`] for anything this key did not seal.
    pub fn open(&self, token: &str) -> Result<Bound, BadCursor> {
        if token.len() != 2 * (BODY + TAG) {
            return Err(BadCursor);
        }
        let bytes = hex::decode(token).map_err(|_| BadCursor)?;
        let (body, tag) = bytes.split_at(BODY);
        if !bool::from(self.tag(body).ct_eq(tag)) {
            return Err(BadCursor);
        }
        let mut at = [0; 8];
        at.copy_from_slice(&body[1..9]);
        let place = Position {
            created_at: i64::from_be_bytes(at),
            id: hex::encode(&body[9..]),
        };
        match body[0] {
            b'o' => Ok(Bound::Older(place)),
            b'n' => Ok(Bound::Newer(place)),
            _ => Err(BadCursor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> CursorKey {
        CursorKey::new(&SecretString::from(secret.to_owned()))
    }

    fn place() -> Position {
        Position {
            created_at: 1_764_074_760_123,
            id: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    #[test]
    fn tokens_round_trip_and_the_first_page_has_none() {
        let k = key("a secret of at least thirty-two characters");
        for bound in [Bound::Older(place()), Bound::Newer(place())] {
            let token = k.seal(&bound).expect("sealed");
            assert_eq!(k.open(&token), Ok(bound));
        }
        assert_eq!(k.seal(&Bound::Newest), None);
        let odd = Position {
            created_at: 1,
            id: "not hex".into(),
        };
        assert_eq!(k.seal(&Bound::Older(odd)), None);
    }

    #[test]
    fn edited_or_foreign_tokens_are_refused() {
        let k = key("a secret of at least thirty-two characters");
        let token = k.seal(&Bound::Older(place())).expect("sealed");
        // Every single-character edit is caught.
        for i in 0..token.len() {
            let mut edited = token.clone().into_bytes();
            edited[i] = if edited[i] == b'0' { b'1' } else { b'0' };
            let edited = String::from_utf8(edited).expect("ascii");
            assert_eq!(k.open(&edited), Err(BadCursor), "edit at {i}");
        }
        let other = key("another secret of at least thirty-two chars");
        assert_eq!(other.open(&token), Err(BadCursor));
        for junk in ["", "zz", &token[..token.len() - 2], &format!("{token}00")] {
            assert_eq!(k.open(junk), Err(BadCursor), "{junk}");
        }
    }
}
