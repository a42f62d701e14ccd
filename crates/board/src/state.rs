//! What every handler shares: stores, the cache and its memos, settings.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use memocache::{Cache, Memo};

use crate::auth::Session;
use crate::auth::csrf::CsrfKey;
use crate::auth::ratelimit::LoginLimiter;
use crate::error::AppError;
use crate::listing::{MessageList, MessageView};
use crate::media::MediaStore;
use crate::store::{Stores, User};
use crate::views::{GzipPage, ListFragment, RenderedPage};

/// The memoized functions of the board, by the names the original used.
pub struct Memos {
    /// `load_user(user_id)`: runs on every authenticated request.
    pub load_user: Memo<str, Option<Arc<User>>>,
    /// `load_session(token_hash)`: so a session costs no database read.
    pub load_session: Memo<str, Option<Arc<Session>>>,
    /// `all_messages()`: the scanned, sorted message list with image URLs.
    pub all_messages: Memo<(), MessageList>,
    /// `user_messages(user_id)`: one user's messages, newest first, for
    /// `/my`; forgotten whenever that user posts or deletes.
    pub user_messages: Memo<str, Vec<MessageView>>,
    /// One rendered page of the home page's list, by (list generation, page).
    pub home_page: Memo<(u64, u32), RenderedPage>,
    /// The same page whole and gzipped, as visitors get it.
    pub home_page_gzip: Memo<(u64, u32), GzipPage>,
}

/// Settings handlers read on every request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Messages per home page.
    pub page_size: u32,
    /// Largest image, bytes.
    pub upload_limit: u64,
    /// Largest image side, pixels.
    pub max_image_side: u32,
    /// How long a login lasts.
    pub session_lifetime: Duration,
    /// Mark cookies `Secure`.
    pub secure_cookies: bool,
}

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// The tables.
    pub stores: Stores,
    /// The images.
    pub media: Arc<dyn MediaStore>,
    /// The cache every memo and counter lives in.
    pub cache: Cache,
    /// The memos.
    pub memos: Memos,
    /// CSRF token key.
    pub csrf: CsrfKey,
    /// Login rate limits.
    pub limiter: LoginLimiter,
    /// Per-request settings.
    pub limits: Limits,
    /// Prefix of image URLs: `/media/` or the configured base URL.
    pub media_base: String,
    /// The bounded pools for password hashing and image decoding.
    pub workers: Arc<crate::workers::Workers>,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// `load_user(id)`: the user, from the cache or the `users` table.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn user(&self, id: &str) -> Result<Option<Arc<User>>, AppError> {
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

    /// `load_session(hash)`: the session, from the cache or the table.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn session(&self, token_hash: &str) -> Result<Option<Arc<Session>>, AppError> {
        let sessions = &self.stores.sessions;
        let csrf = &self.csrf;
        let found = self
            .memos
            .load_session
            .get_or_try_load(token_hash, || async move {
                let record = sessions.get(token_hash).await?;
                Ok::<_, crate::store::StoreError>(record.map(|r| {
                    Arc::new(Session {
                        csrf: csrf.for_session(&r.token_hash),
                        token_hash: r.token_hash,
                        user_id: r.user_id,
                        expires_at: r.expires_at,
                    })
                }))
            })
            .await?;
        Ok(Option::clone(&found))
    }

    /// `all_messages()`: every message, newest first, with image URLs.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn messages(&self) -> Result<Arc<MessageList>, AppError> {
        let store = &self.stores.messages;
        let base = &self.media_base;
        Ok(self
            .memos
            .all_messages
            .get_or_try_load(&(), || async move {
                store.all().await.map(|all| MessageList::build(all, base))
            })
            .await?)
    }

    /// `user_messages(user_id)`: one user's messages, newest first, with
    /// image URLs.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn user_messages(&self, user_id: &str) -> Result<Arc<Vec<MessageView>>, AppError> {
        let store = &self.stores.messages;
        let base = &self.media_base;
        Ok(self
            .memos
            .user_messages
            .get_or_try_load(user_id, || async move {
                store
                    .by_user(user_id)
                    .await
                    .map(|mine| MessageList::build(mine, base).messages)
            })
            .await?)
    }

    /// Page `page` (1-based) of the home page's list, rendered once per
    /// list; `None` past the last page.
    ///
    /// # Errors
    /// When the database fails or rendering fails.
    pub async fn home_page(&self, page: u32) -> Result<Option<Arc<RenderedPage>>, AppError> {
        let list = self.messages().await?;
        let size = self.limits.page_size.max(1) as usize;
        let total = list.messages.len();
        let pages = u32::try_from(total.div_ceil(size))
            .unwrap_or(u32::MAX)
            .max(1);
        if page == 0 || page > pages {
            return Ok(None);
        }
        let rendered = self
            .memos
            .home_page
            .get_or_try_load(&(list.generation, page), || async {
                let start = (page as usize - 1) * size;
                let end = (start + size).min(total);
                let fragment = ListFragment {
                    messages: &list.messages[start..end],
                    page,
                    pages,
                    total,
                };
                askama::Template::render(&fragment).map(|html| RenderedPage {
                    html,
                    pages,
                    key: (list.generation, page),
                })
            })
            .await
            .map_err(|e| AppError::Internal(format!("template: {e}")))?;
        Ok(Some(rendered))
    }

    /// `delete_memoized(get_all_messages)` and
    /// `delete_memoized(user_messages, user_id)`: after `user_id` posted or
    /// deleted a message. With a tiered cache every process has dropped
    /// the old values when this returns.
    pub async fn messages_changed(&self, user_id: &str) {
        let memos = &self.memos;
        tokio::join!(
            memos.all_messages.forget_all(),
            memos.home_page.forget_all(),
            memos.home_page_gzip.forget_all(),
            memos.user_messages.forget(user_id),
        );
    }
}
