//! OpenID Connect: the provider documents behind memos, and the identity
//! writes (first sign-in, linking).
//!
//! | memo | key | value | forgotten by |
//! | --- | --- | --- | --- |
//! | `oidc_discovery` | discovery URL | the document and when it goes stale | its lifetime |
//! | `oidc_jwks` | JWKS URL | the key set and when it goes stale | its lifetime; an ID token with an unknown `kid` (once per token) |
//!
//! A document's lifetime is its `Cache-Control: max-age`, clamped to
//! [1 min, 24 h] (1 h without one). The memo keeps entries up to 24 h; an
//! entry past its own lifetime is forgotten and loaded again on read. The
//! memos are single-flight (fleet-wide with a tiered cache), so a burst of
//! sign-ins costs one fetch of each document per lifetime, not one per
//! login; [`Data::oidc_fetches`] counts them for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::{Data, DataError};
use crate::oidc::{Documents, Oidc, OidcDocument, OidcError};
use crate::store::{StoreError, User};

/// A fetched document and when it goes stale.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fetched {
    /// The body, as fetched.
    pub body: String,
    /// Unix milliseconds after which it is fetched again.
    pub stale_at_ms: i64,
}

/// Fetches made, per document kind.
#[derive(Debug, Default)]
pub struct OidcFetches {
    discovery: AtomicU64,
    jwks: AtomicU64,
}

/// Fetches one document and counts it.
async fn fetch(
    oidc: &Oidc,
    fetches: &OidcFetches,
    kind: OidcDocument,
    url: &str,
    now_ms: i64,
) -> Result<Fetched, OidcError> {
    let (body, lifetime) = oidc.get_document(url).await?;
    match kind {
        OidcDocument::Discovery => &fetches.discovery,
        OidcDocument::Jwks => &fetches.jwks,
    }
    .fetch_add(1, Ordering::Relaxed);
    let lifetime = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
    Ok(Fetched {
        body,
        stale_at_ms: now_ms.saturating_add(lifetime),
    })
}

/// Longest user name a provider's profile gives (the board's limit).
const NAME_MAX: usize = 30;
/// How many names a first sign-in tries before giving up.
const NAME_TRIES: u32 = 20;

impl Data {
    /// The body of `kind` at `url`, from its memo; fetched (once, for all
    /// concurrent callers) when missing or stale at `now_ms`.
    ///
    /// # Errors
    /// [`OidcError::ProviderDown`] when it must be fetched and cannot be.
    pub async fn oidc_document(
        &self,
        oidc: &Oidc,
        kind: OidcDocument,
        url: &str,
        now_ms: i64,
    ) -> Result<String, OidcError> {
        let memo = match kind {
            OidcDocument::Discovery => &self.memos.oidc_discovery,
            OidcDocument::Jwks => &self.memos.oidc_jwks,
        };
        let fetches = &self.oidc_fetches;
        let load = || fetch(oidc, fetches, kind, url, now_ms);
        let found = memo
            .get_or_try_load(url, load)
            .await
            .map_err(|e: Arc<OidcError>| OidcError::ProviderDown(e.to_string()))?;
        if found.stale_at_ms > now_ms {
            return Ok(found.body.clone());
        }
        // A refresh of this process's copy; others refresh theirs by age.
        let _ = memo.forget(url).await;
        let fresh = memo
            .get_or_try_load(url, load)
            .await
            .map_err(|e: Arc<OidcError>| OidcError::ProviderDown(e.to_string()))?;
        Ok(fresh.body.clone())
    }

    /// Forgets the key set at `jwks_uri` (an ID token named a key it does
    /// not have: the provider may have rotated its keys).
    pub async fn oidc_forget_keys(&self, jwks_uri: &str) {
        // Best effort: another process that meets the unknown key forgets
        // its own copy the same way.
        let _ = self.memos.oidc_jwks.forget(jwks_uri).await;
    }

    /// Discovery and JWKS fetches made by this process so far.
    pub fn oidc_fetches(&self) -> (u64, u64) {
        (
            self.oidc_fetches.discovery.load(Ordering::Relaxed),
            self.oidc_fetches.jwks.load(Ordering::Relaxed),
        )
    }

    /// The user signed in as `subject` at `issuer`; on a first sign-in a
    /// new user (without a password) named after `name_hint`, the first
    /// free of `name`, `name2`, `name3`, … Returns the user and whether it
    /// is new.
    ///
    /// # Errors
    /// When the database fails, or no free name is found.
    pub async fn oidc_user(
        &self,
        issuer: &str,
        subject: &str,
        name_hint: Option<&str>,
        now_ms: i64,
    ) -> Result<(User, bool), DataError> {
        let users = &self.stores.users;
        if let Some(id) = users.identity(issuer, subject).await? {
            if let Some(user) = self.user(&id).await? {
                return Ok((Arc::unwrap_or_clone(user), false));
            }
        }
        let base = base_name(name_hint);
        let id = crate::auth::random_hex(16);
        let mut made = None;
        for n in 1..=NAME_TRIES {
            let username = if n == 1 {
                base.clone()
            } else {
                let suffix = n.to_string();
                let keep = NAME_MAX - suffix.len();
                format!("{}{suffix}", &base[..base.len().min(keep)])
            };
            let user = User {
                id: id.clone(),
                username,
                created_at: now_ms,
            };
            // No password hash: no password ever matches it.
            match users.create(&user, "!oidc").await {
                Ok(()) => {
                    made = Some(user);
                    break;
                }
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let user = made.ok_or(DataError::NameTaken)?;
        // The id is new and random: no process can hold a copy of it, so
        // this forget is a formality and needs no outbox.
        let _ = self.memos.load_user.forget(&user.id).await;
        match users.link_identity(issuer, subject, &user.id).await {
            Ok(()) => Ok((user, true)),
            Err(StoreError::Conflict) => {
                // Two first sign-ins of one account raced; the other won.
                // Ours stays an unused user without a password.
                let id = users
                    .identity(issuer, subject)
                    .await?
                    .ok_or(DataError::NotFound)?;
                let user = self.user(&id).await?.ok_or(DataError::NotFound)?;
                Ok((Arc::unwrap_or_clone(user), false))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Links `issuer` + `subject` to `user_id` (a signed-in user adding a
    /// provider on `/acc`). Linking an identity already linked to the same
    /// user is fine.
    ///
    /// # Errors
    /// [`DataError::NameTaken`] when it belongs to another user; when the
    /// database fails.
    pub async fn oidc_link(
        &self,
        issuer: &str,
        subject: &str,
        user_id: &str,
    ) -> Result<(), DataError> {
        let users = &self.stores.users;
        match users.link_identity(issuer, subject, user_id).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => {
                if users.identity(issuer, subject).await?.as_deref() == Some(user_id) {
                    Ok(())
                } else {
                    Err(DataError::NameTaken)
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A valid board user name from a profile's name: letters, digits, `_`
/// and `-` kept, at most [`NAME_MAX`], at least 3 (padded with `user`).
fn base_name(hint: Option<&str>) -> String {
    let mut name: String = hint
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .take(NAME_MAX)
        .collect();
    if name.len() < 3 {
        name.insert_str(0, "user");
    }
    name
}

/// The sign-in flow reads the provider's documents through the memos.
impl Documents for Data {
    async fn document(
        &self,
        oidc: &Oidc,
        kind: OidcDocument,
        url: &str,
        now_ms: i64,
    ) -> Result<String, OidcError> {
        self.oidc_document(oidc, kind, url, now_ms).await
    }

    async fn forget_keys(&self, jwks_uri: &str) {
        self.oidc_forget_keys(jwks_uri).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_profiles_are_valid_user_names() {
        for hint in [
            Some("Ada Lovelace"),
            Some("é"),
            None,
            Some(&"x".repeat(99)[..]),
        ] {
            let name = base_name(hint);
            assert!(crate::domain::Username::parse(&name).is_ok(), "{name}");
        }
        assert_eq!(base_name(Some("Ada Lovelace")), "AdaLovelace");
        assert_eq!(base_name(None), "user");
    }
}
