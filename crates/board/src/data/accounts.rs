//! Accounts and sessions: `load_user` and `load_session` read through,
//! and every account write (register, rename, password change, logout)
//! with the forgets it causes, recorded in the outbox first (see
//! [`Data::durably`](super::Data)).

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Session;
use crate::store::{Credentials, SessionRecord, StoreError, User};

use super::{Data, DataError, intent};

impl Data {
    /// `load_user(id)`: the user, from the cache or the `users` table.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn user(&self, id: &str) -> Result<Option<Arc<User>>, DataError> {
        let users = &self.stores.users;
        let found = self
            .memos
            .load_user
            .get_or_try_load(id, || async move {
                users.get(id).await.map(|u| u.map(Arc::new))
            })
            .await?;
        Ok(Option::clone(&found))
    }

    /// The live session whose token hashes to `token_hash` and its user:
    /// `load_session` then `load_user`, no database read when both are
    /// cached. An expired session is removed (row and memo).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(Arc<Session>, Arc<User>)>, DataError> {
        let sessions = &self.stores.sessions;
        let csrf = &self.csrf;
        let found = self
            .memos
            .load_session
            .get_or_try_load(token_hash, || async move {
                let record = sessions.get(token_hash).await?;
                Ok::<_, StoreError>(record.map(|r| {
                    Arc::new(Session {
                        csrf: csrf.for_session(&r.token_hash),
                        token_hash: r.token_hash,
                        user_id: r.user_id,
                        expires_at: r.expires_at,
                    })
                }))
            })
            .await?;
        let Some(session) = Option::clone(&found) else {
            return Ok(None);
        };
        if session.expires_at <= now_ms {
            // Expired: remove it so the table does not grow, and forget it.
            if let Err(error) = self.stores.sessions.delete(token_hash).await {
                tracing::warn!(%error, "expired session not removed");
            }
            // Best effort: every process checks the expiry of the session
            // it holds, so a copy another process keeps is refused there.
            let _ = self.memos.load_session.forget(token_hash).await;
            return Ok(None);
        }
        let Some(user) = self.user(&session.user_id).await? else {
            return Ok(None);
        };
        Ok(Some((session, user)))
    }

    /// Stores a new session for `user` and primes both memos, so the next
    /// request reads nothing. Returns the session.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn start_session(
        &self,
        user: User,
        token_hash: String,
        now_ms: i64,
        lifetime: Duration,
    ) -> Result<Arc<Session>, DataError> {
        let expires_at =
            now_ms.saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX));
        let record = SessionRecord {
            token_hash: token_hash.clone(),
            user_id: user.id.clone(),
            created_at: now_ms,
            expires_at,
        };
        self.stores.sessions.create(&record).await?;
        let session = Arc::new(Session {
            csrf: self.csrf.for_session(&token_hash),
            token_hash: token_hash.clone(),
            user_id: user.id.clone(),
            expires_at,
        });
        self.memos
            .load_session
            .set(&token_hash, Some(Arc::clone(&session)))
            .await;
        let user_id = user.id.clone();
        self.memos
            .load_user
            .set(&user_id, Some(Arc::new(user)))
            .await;
        Ok(session)
    }

    /// Revokes a session on the server: the row goes, and so do the cached
    /// copies of the session and the user (`delete_memoized(load_user, id)`).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn end_session(&self, token_hash: &str, user_id: &str) -> Result<(), DataError> {
        let intents = vec![
            intent(&self.memos.load_session, token_hash)?,
            intent(&self.memos.load_user, user_id)?,
        ];
        let sessions = &self.stores.sessions;
        self.durably(
            intents,
            async move { Ok(sessions.delete(token_hash).await?) },
        )
        .await
    }

    /// Adds a user.
    ///
    /// # Errors
    /// [`DataError::NameTaken`] when the name is taken (any case).
    pub async fn register(&self, user: &User, password_hash: &str) -> Result<(), DataError> {
        // A lookup of this id before it existed may have cached None.
        let intents = vec![intent(&self.memos.load_user, &user.id)?];
        let users = &self.stores.users;
        self.durably(intents, async move {
            match users.create(user, password_hash).await {
                Ok(()) => Ok(()),
                Err(StoreError::Conflict) => Err(DataError::NameTaken),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// The user named `username` (any case) with the password hash; never
    /// cached.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn credentials(&self, username: &str) -> Result<Option<Credentials>, DataError> {
        Ok(self.stores.users.credentials(username).await?)
    }

    /// The password hash of user `id`; never cached.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn password_hash(&self, id: &str) -> Result<Option<String>, DataError> {
        Ok(self.stores.users.password_hash(id).await?)
    }

    /// Replaces the password of `user_id` and revokes every other session
    /// of theirs (row and memo). Returns how many were revoked.
    ///
    /// The sessions to revoke are only known once they are deleted, and an
    /// invalidation is recorded before its write: so the whole
    /// `load_session` memo is forgotten (O(1)), which costs every signed-in
    /// user one session read on their next request. Password changes are
    /// rare; a revoked session that stays open is not acceptable.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: &str,
    ) -> Result<usize, DataError> {
        let intents = vec![
            intent(&self.memos.load_user, user_id)?,
            self.memos.load_session.intent_all(),
        ];
        let stores = &self.stores;
        self.durably(intents, async move {
            stores.users.set_password(user_id, password_hash).await?;
            let removed = stores
                .sessions
                .delete_for_user(user_id, Some(keep_session))
                .await?;
            Ok(removed.len())
        })
        .await
    }

    /// Renames `user_id` to `username` and forgets the cached user.
    ///
    /// # Errors
    /// [`DataError::NameTaken`] when another user has the name (any case).
    pub async fn rename_user(&self, user_id: &str, username: &str) -> Result<(), DataError> {
        let intents = vec![intent(&self.memos.load_user, user_id)?];
        let users = &self.stores.users;
        self.durably(intents, async move {
            match users.rename(user_id, username).await {
                Ok(()) => Ok(()),
                Err(StoreError::Conflict) => Err(DataError::NameTaken),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Number of users (`board demo` checks the board is fresh).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn user_count(&self) -> Result<u64, DataError> {
        Ok(self.stores.users.count().await?)
    }
}
