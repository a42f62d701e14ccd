//! Who is asking, as building blocks: session tokens and cookies,
//! password hashes, CSRF tokens, login rate limits. They import nothing of
//! the app above them; the extractors handlers use (`AuthUser`,
//! `MaybeAuthUser`, `CsrfForm`) and the pool-bound hashing live with the
//! handlers in `http`.

pub mod clock;
pub mod csrf;
pub mod password;
pub mod ratelimit;
pub mod session;

use rand::RngCore;
use sha2::{Digest, Sha256};

pub use session::Session;

/// `bytes` random bytes from the OS-seeded generator, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// SHA-256 of `text`, lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
