//! Argon2id password hashes (PHC strings), computed on the calling thread:
//! each holds about 19 MiB (Argon2's default `m = 19456` KiB) for its whole
//! run, so handlers run them on the bounded hashing pool
//! (`http::password`).

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash};

/// An Argon2id hash of `password` with a fresh salt, as a PHC string;
/// blocking (handlers call it through `http::password::hash`).
///
/// # Errors
/// When hashing fails.
pub fn hash_now(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `phc` (false for one that
/// does not parse).
pub fn verify_now(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of no account's password, checked when the account does not
/// exist, so that a missing account takes as long as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_now("not a real password, only for timing").unwrap_or_default())
}
