//! Password hashes for handlers, computed off the async threads on the
//! bounded hashing [`Pool`]: each hash holds about 19 MiB for its whole run
//! (see [`crate::auth::password`]), so without a bound 300 parallel logins
//! took 5.7 GB. With it, at most the pool's size of hashes are in memory;
//! the rest wait briefly, then get the "busy" page.

use crate::auth::password::{dummy_hash, hash_now, verify_now};
use crate::domain::Password;
use crate::error::AppError;
use crate::workers::Pool;

/// Hashes a new password on `pool`.
///
/// # Errors
/// [`AppError::Busy`] when the pool stayed full; `Internal` when hashing
/// fails (it does not for valid passwords) or the task dies.
pub(crate) async fn hash(pool: &Pool, password: &Password) -> Result<String, AppError> {
    let password = password.expose().to_owned();
    pool.run(move || hash_now(&password))
        .await?
        .map_err(AppError::Internal)
}

/// True if `password` matches `phc`, checked on `pool`. With no hash
/// (unknown user), a dummy hash is checked and `false` returned, so both
/// cases take about as long.
///
/// # Errors
/// [`AppError::Busy`] when the pool stayed full (neither a match nor a
/// failed attempt); `Internal` when the task dies.
pub(crate) async fn verify(
    pool: &Pool,
    password: &str,
    phc: Option<String>,
) -> Result<bool, AppError> {
    let password = password.to_owned();
    pool.run(move || match phc {
        Some(phc) => verify_now(&password, &phc),
        None => {
            let _ = verify_now(&password, dummy_hash());
            false
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let pool = Pool::new("hashing", 2, Duration::from_secs(5));
        let check = |pw: &'static str, phc: Option<String>| {
            let pool = pool.clone();
            async move { verify(&pool, pw, phc).await.expect("not busy") }
        };
        let pw = Password::parse("correct horse").expect("valid");
        let phc = hash(&pool, &pw).await.expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(check("correct horse", Some(phc.clone())).await);
        assert!(!check("wrong horse", Some(phc)).await);
        assert!(!check("anything", None).await);
        assert!(!check("not a real password, only for timing", None).await);
        assert!(!check("x", Some("garbage".into())).await);
    }

    #[tokio::test]
    async fn a_flood_of_hashes_is_answered_busy_not_queued_without_bound() {
        // One permit, no patience: of many simultaneous verifications some
        // run and the rest are refused at once; none is lost or aborted.
        let pool = Pool::new("hashing", 1, Duration::from_millis(1));
        let attempts: Vec<_> = (0..16)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { verify(&pool, "guess", None).await })
            })
            .collect();
        let (mut ran, mut busy) = (0, 0);
        for attempt in attempts {
            match attempt.await.expect("join") {
                Ok(matched) => {
                    assert!(!matched);
                    ran += 1;
                }
                Err(AppError::Busy { .. }) => busy += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(ran >= 1, "ran {ran}, busy {busy}");
        assert!(busy >= 1, "ran {ran}, busy {busy}");
        assert_eq!(pool.available(), 1);
    }
}
