//! Argon2id password hashes (PHC strings), computed off the async threads.

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash};

use crate::domain::Password;

/// Hashes a new password.
///
/// # Errors
/// When hashing fails (it does not for valid passwords) or the task dies.
pub async fn hash(password: &Password) -> Result<String, String> {
    let password = password.expose().to_owned();
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| e.to_string())?
}

/// [`hash`], blocking.
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

/// True if `password` matches `phc`. With no hash (unknown user), a dummy
/// hash is checked and `false` returned, so both cases take about as long.
pub async fn verify(password: &str, phc: Option<String>) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_now(&password, &phc),
        None => {
            let _ = verify_now(&password, dummy_hash());
            false
        }
    })
    .await
    .unwrap_or(false)
}

fn verify_now(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_now("not a real password, only for timing").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let pw = Password::parse("correct horse").expect("valid");
        let phc = hash(&pw).await.expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse", Some(phc.clone())).await);
        assert!(!verify("wrong horse", Some(phc)).await);
        assert!(!verify("anything", None).await);
        assert!(!verify("not a real password, only for timing", None).await);
        assert!(!verify("x", Some("garbage".into())).await);
    }
}
