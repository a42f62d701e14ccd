//! The data layer: every read-through memo of the board and every write
//! together with the invalidations it causes. Handlers call [`Data`]; they
//! never reach into stores, media or memos, so a new handler cannot forget
//! to forget.
//!
//! # Memos
//!
//! | memo | key | value | forgotten by |
//! | --- | --- | --- | --- |
//! | `load_user` | user id | the user | logout, password change, rename |
//! | `load_session` | token hash | the session | logout, expiry, password change (other sessions) |
//! | `all_messages` | `()` | the first page of the home listing | every post and delete (`forget_all`, O(1)) |
//! | `user_messages` | user id | the first page of `/my` | that user's posts and deletes |
//! | `message_count` | listing | its size (a counter) | posts and deletes in it |
//! | `image_message` | image name | the message of `/image/{name}` | the delete (and post) of that message |
//! | `oidc_discovery`, `oidc_jwks` | document URL | an OpenID provider's document | its `Cache-Control` lifetime; an unknown `kid` (see [`oidc`]) |
//!
//! No cached value grows with the number of messages: a page holds at most
//! `page_size` messages, and loading one reads one index range of
//! `page_size + 1` rows ([`MessageStore::page`](crate::store::MessageStore::page)). Only first pages are
//! cached (the home page's and each user's `/my`), which nearly every
//! visit reads: every page link is a valid key, so caching deeper pages
//! would let one client walking the listing fill the cache with
//! page-sized values (a 10,000-entry cache of 75 KB pages is 750 MB).
//! A deeper page costs its one index range per view instead. With a tiered cache every
//! forget reaches every process before the write returns, and memo leases
//! make one process load each page per change, fleet-wide.
//!
//! The table of writes and what each forgets is checked by the tests at
//! the end of this module, one test per write.
//!
//! # Durable invalidation
//!
//! Every write records what it forgets in the database's outbox before it
//! writes (`memocache::outbox`), then delivers it; what cannot be
//! delivered at once (Redis unreachable from this process, a transient
//! fault, the process killed after its commit) is delivered by the relay
//! every board runs. A write whose invalidation cannot be recorded is
//! refused with nothing written. So "after a write returns, no process
//! serves the old value" holds wherever the write was made: at once when
//! the writer reaches Redis, within 0.75 s otherwise (the relay's grace
//! and interval; see `memocache::outbox` for the bound).

mod cursor;
pub mod oidc;
mod posting;
mod sweep;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use memocache::outbox::{Durable, DurableError, Intent, Relay, RelayStats, RelayTask};
use memocache::{Cache, Memo};
use serde::{Deserialize, Serialize};

pub use crate::oidc::OidcDocument;
pub use cursor::{BadCursor, CursorKey};
pub use oidc::Fetched;
pub use posting::{OverBudget, PostLimits, Scope, Spent};
pub use sweep::{SWEEP_BATCH, SweepReport};

use crate::auth::Session;
use crate::auth::csrf::CsrfKey;
use crate::listing::{MessageView, set_images_url};
use crate::media::{ImageKind, MediaName, MediaStore};
use crate::store::{
    Bound, Credentials, Listing, Message, Position, SessionRecord, StoreError, Stores, User,
};

/// What the data layer could not do.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The database failed for a shared load (every waiter gets it).
    #[error("{0}")]
    SharedStore(#[from] Arc<StoreError>),
    /// The media store failed.
    #[error("media: {0}")]
    Media(String),
    /// No such message (or page).
    #[error("not found")]
    NotFound,
    /// The message belongs to someone else.
    #[error("not the owner")]
    NotOwner,
    /// A user name is taken.
    #[error("name taken")]
    NameTaken,
    /// A page link was edited or made elsewhere.
    #[error(transparent)]
    BadCursor(#[from] BadCursor),
    /// A post or upload budget is spent (see [`Data::post`]); nothing was
    /// stored.
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
}

/// Settings the data layer needs.
#[derive(Debug, Clone)]
pub struct DataSettings {
    /// Messages per page.
    pub page_size: u32,
    /// Prefix of image URLs: `/media/` or a CDN's base URL.
    pub media_base: String,
    /// `load_user` timeout.
    pub user_timeout: Duration,
    /// `load_session` timeout.
    pub session_timeout: Duration,
    /// `all_messages`, `message_count` and `image_message`
    /// timeout.
    pub messages_timeout: Duration,
    /// `user_messages` (first page of `/my`) timeout.
    pub my_messages_timeout: Duration,
    /// The post and upload budgets.
    pub posting: PostLimits,
}

/// The memos, by the names the original used where it had them.
pub struct Memos {
    /// `load_user(user_id)`: runs on every authenticated request.
    pub load_user: Memo<str, Option<Arc<User>>>,
    /// `load_session(token_hash)`: so a session costs no database read.
    pub load_session: Memo<str, Option<Arc<Session>>>,
    /// `all_messages()`: the first page of the home listing.
    pub all_messages: Memo<(), FeedPage>,
    /// `user_messages(user_id)`: the first page of `/my`.
    pub user_messages: Memo<str, FeedPage>,
    /// `message_count(listing)`: how many messages a listing holds.
    pub message_count: Memo<Listing, u64>,
    /// `image_message(image)`: the message of one image page.
    pub image_message: Memo<str, Option<MessageView>>,
    /// `oidc_discovery(url)`: an OpenID provider's discovery document.
    pub oidc_discovery: Memo<str, Fetched>,
    /// `oidc_jwks(url)`: an OpenID provider's signing keys.
    pub oidc_jwks: Memo<str, Fetched>,
}

impl Memos {
    fn build(cache: &Cache, settings: &DataSettings) -> Result<Self, memocache::Error> {
        let messages = settings.messages_timeout;
        Ok(Self {
            load_user: Memo::builder("load_user")
                .timeout(settings.user_timeout)
                .build(cache)?,
            load_session: Memo::builder("load_session")
                .timeout(settings.session_timeout)
                .build(cache)?,
            all_messages: Memo::builder("all_messages")
                .timeout(messages)
                .build(cache)?,
            user_messages: Memo::builder("user_messages")
                .timeout(settings.my_messages_timeout)
                .build(cache)?,
            message_count: Memo::builder("message_count")
                .timeout(messages)
                .build(cache)?,
            image_message: Memo::builder("image_message")
                .timeout(messages)
                .build(cache)?,
            oidc_discovery: Memo::builder("oidc_discovery")
                .timeout(crate::oidc::MAX_LIFETIME)
                .build(cache)?,
            oidc_jwks: Memo::builder("oidc_jwks")
                .timeout(crate::oidc::MAX_LIFETIME)
                .build(cache)?,
        })
    }

    /// Every memo's name with its counters, for `/metrics` and tests.
    pub fn stats(&self) -> Vec<(&str, memocache::MemoStats)> {
        vec![
            (self.load_user.name(), self.load_user.stats()),
            (self.load_session.name(), self.load_session.stats()),
            (self.all_messages.name(), self.all_messages.stats()),
            (self.user_messages.name(), self.user_messages.stats()),
            (self.message_count.name(), self.message_count.stats()),
            (self.image_message.name(), self.image_message.stats()),
            (self.oidc_discovery.name(), self.oidc_discovery.stats()),
            (self.oidc_jwks.name(), self.oidc_jwks.stats()),
        ]
    }
}

/// One page of a listing, newest first, with the tokens of its neighbours.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FeedPage {
    /// The messages shown.
    pub messages: Vec<MessageView>,
    /// Token of the next older page, if there are older messages.
    pub older: Option<String>,
    /// Token of the next newer page; `None` on the first page.
    pub newer: Option<String>,
    /// Whether this is the newest page.
    pub first: bool,
}

impl FeedPage {
    /// True for the newest page.
    pub fn is_first(&self) -> bool {
        self.first
    }
}

/// A message to post, with its checked image and thumbnail.
#[derive(Debug)]
pub struct NewMessage {
    /// The poster.
    pub user_id: String,
    /// The poster's client address, for the per-address budgets.
    pub address: IpAddr,
    /// Signed by.
    pub author: String,
    /// Where (may be empty).
    pub location: String,
    /// What it says.
    pub description: String,
    /// The full image as it is to be stored, and its kind.
    pub image: (ImageKind, Bytes),
    /// The thumbnail and its kind.
    pub thumbnail: (ImageKind, Bytes),
}

/// The board's data: stores, media and memos behind one handle.
pub struct Data {
    stores: Stores,
    /// Writes with their invalidations recorded first (`stores.outbox`).
    durable: Durable,
    /// Delivers what writers left in the outbox (see [`Data::start_relay`]).
    relay: Arc<Relay>,
    media: Arc<dyn MediaStore>,
    memos: Memos,
    csrf: CsrfKey,
    cursors: CursorKey,
    settings: DataSettings,
    /// Where the next orphan sweep continues listing (`sweep`).
    sweep_cursor: parking_lot::Mutex<Option<String>>,
    /// OpenID provider documents fetched (`oidc`).
    oidc_fetches: oidc::OidcFetches,
    /// The post and upload budgets (`posting`).
    posting: posting::PostBudget,
}

impl Data {
    /// Builds the memos on `cache` around the stores.
    ///
    /// # Errors
    /// When a memo cannot be built on `cache` (a name taken by other types).
    pub fn new(
        stores: Stores,
        media: Arc<dyn MediaStore>,
        cache: &Cache,
        csrf: CsrfKey,
        cursors: CursorKey,
        settings: DataSettings,
    ) -> Result<Self, memocache::Error> {
        Ok(Self {
            memos: Memos::build(cache, &settings)?,
            posting: posting::PostBudget::new(
                crate::budget::Budgets::new(cache.clone()),
                settings.posting.clone(),
            ),
            durable: Durable::new(cache, Arc::clone(&stores.outbox)),
            relay: Arc::new(Relay::new(cache, Arc::clone(&stores.outbox))),
            stores,
            media,
            csrf,
            cursors,
            settings,
            sweep_cursor: parking_lot::Mutex::new(None),
            oidc_fetches: oidc::OidcFetches::default(),
        })
    }

    /// The stores, for tools, metrics and tests; handlers use the methods.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The memos, for metrics and tests; handlers use the methods.
    pub fn memos(&self) -> &Memos {
        &self.memos
    }

    /// The media store, for serving files and tools.
    pub fn media(&self) -> &Arc<dyn MediaStore> {
        &self.media
    }

    /// Starts delivering what writers left in the outbox (their forgets
    /// met a fault, or they died after writing), until the handle is
    /// dropped. Only with a shared cache: without one there is nothing to
    /// deliver to.
    pub fn start_relay(&self, cache: &Cache) -> Option<RelayTask> {
        cache.is_shared().then(|| Arc::clone(&self.relay).spawn())
    }

    /// The outbox relay's counters, for `/metrics`.
    pub fn relay_stats(&self) -> RelayStats {
        self.relay.stats()
    }

    /// Messages per page.
    pub fn page_size(&self) -> u32 {
        self.settings.page_size
    }

    // ---- users and sessions ----

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

    // ---- messages ----

    /// The bound a page token names; `None` for the first page.
    ///
    /// # Errors
    /// [`DataError::BadCursor`] for a token this board did not make.
    pub fn bound(&self, token: Option<&str>) -> Result<Bound, DataError> {
        match token {
            None | Some("") => Ok(Bound::Newest),
            Some(token) => Ok(self.cursors.open(token)?),
        }
    }

    /// One page of the home listing: the first from `all_messages()`,
    /// deeper ones read as they are asked for (see the module docs).
    ///
    /// # Errors
    /// [`DataError::NotFound`] for a page past the oldest message; when the
    /// database fails.
    pub async fn feed_page(&self, bound: &Bound) -> Result<Arc<FeedPage>, DataError> {
        let page = match bound {
            Bound::Newest => {
                self.memos
                    .all_messages
                    .get_or_try_load(&(), || self.load_page(Listing::All, Bound::Newest))
                    .await?
            }
            deeper => Arc::new(self.load_page(Listing::All, deeper.clone()).await?),
        };
        found(page)
    }

    /// One page of `user_id`'s messages (`/my`): the first from
    /// `user_messages(user_id)`, deeper ones read as they are asked for.
    ///
    /// # Errors
    /// As [`Data::feed_page`].
    pub async fn user_page(
        &self,
        user_id: &str,
        bound: &Bound,
    ) -> Result<Arc<FeedPage>, DataError> {
        let listing = Listing::User(user_id.to_owned());
        let page = match bound {
            Bound::Newest => {
                self.memos
                    .user_messages
                    .get_or_try_load(user_id, || self.load_page(listing, Bound::Newest))
                    .await?
            }
            deeper => Arc::new(self.load_page(listing, deeper.clone()).await?),
        };
        found(page)
    }

    /// How many messages `listing` holds (`message_count(listing)`).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn message_count(&self, listing: &Listing) -> Result<u64, DataError> {
        let store = &self.stores.messages;
        Ok(*self
            .memos
            .message_count
            .get_or_try_load(listing, || store.count(listing))
            .await?)
    }

    /// The message whose full image is `image` (`image_message(image)`).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn image_message(&self, image: &MediaName) -> Result<Option<MessageView>, DataError> {
        let store = &self.stores.messages;
        let base = &self.settings.media_base;
        let name = image.as_str();
        let found = self
            .memos
            .image_message
            .get_or_try_load(name, || async move {
                Ok::<_, StoreError>(store.by_image(name).await?.map(|m| set_images_url(m, base)))
            })
            .await?;
        Ok(Option::clone(&found))
    }

    /// Reads one page: `page_size + 1` rows of one index range, the extra
    /// row only telling whether the page has a neighbour that way.
    async fn load_page(&self, listing: Listing, bound: Bound) -> Result<FeedPage, StoreError> {
        let size = self.settings.page_size.max(1) as usize;
        let limit = self.settings.page_size.max(1).saturating_add(1);
        let mut rows = self.stores.messages.page(&listing, &bound, limit).await?;
        let (older_exists, newer_exists) = match &bound {
            Bound::Newest => {
                let more = rows.len() > size;
                rows.truncate(size);
                (more, false)
            }
            Bound::Older(_) => {
                let more = rows.len() > size;
                rows.truncate(size);
                (more, true)
            }
            Bound::Newer(_) => {
                if rows.len() <= size {
                    // Nothing newer than these: this is the first page,
                    // shown whole (as page one, not a short page).
                    return Box::pin(self.load_page(listing, Bound::Newest)).await;
                }
                // Newest first, so the extra row is the first one.
                rows.remove(0);
                (true, true)
            }
        };
        let older = older_exists
            .then(|| rows.last())
            .flatten()
            .and_then(|m| self.cursors.seal(&Bound::Older(Position::of(m))));
        let newer = newer_exists
            .then(|| rows.first())
            .flatten()
            .and_then(|m| self.cursors.seal(&Bound::Newer(Position::of(m))));
        let base = &self.settings.media_base;
        Ok(FeedPage {
            messages: rows.into_iter().map(|m| set_images_url(m, base)).collect(),
            older,
            newer,
            first: bound == Bound::Newest,
        })
    }

    /// Deletes message `id` if `user_id` owns it (checked against the
    /// stored owner, never the request), forgets what it changes, then
    /// removes its files.
    ///
    /// # Errors
    /// [`DataError::NotFound`], [`DataError::NotOwner`], or a database
    /// failure (nothing deleted).
    pub async fn delete_message(&self, id: &str, user_id: &str) -> Result<Message, DataError> {
        let message = self
            .stores
            .messages
            .get(id)
            .await?
            .ok_or(DataError::NotFound)?;
        if message.user_id != user_id {
            return Err(DataError::NotOwner);
        }
        let messages = &self.stores.messages;
        self.durably(self.message_intents(&message)?, async {
            Ok(messages.delete(&message.id).await?)
        })
        .await?;
        // Demo messages share pictures: keep files another message shows.
        // The message is gone either way; if the check fails the files
        // stay (an orphan the media sweep removes later), never an error.
        match self.stores.messages.by_image(&message.image).await {
            Ok(None) => {}
            Ok(Some(_)) => return Ok(message),
            Err(error) => {
                tracing::warn!(%error, id = %message.id, "images kept: cannot tell if another message shows them");
                return Ok(message);
            }
        }
        let names: Vec<MediaName> = [&message.image, &message.thumbnail]
            .into_iter()
            .filter_map(|n| MediaName::parse(n))
            .collect();
        self.remove_files(&names.iter().collect::<Vec<_>>()).await;
        Ok(message)
    }

    /// Adds many messages at once (`board demo`), then forgets as a post
    /// would, once.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn insert_many(&self, messages: &[Message]) -> Result<(), DataError> {
        let mut users: Vec<&str> = messages.iter().map(|m| m.user_id.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        let mut intents = vec![
            self.memos.all_messages.intent_all(),
            self.memos.message_count.intent_all(),
        ];
        for user in users {
            intents.push(intent(&self.memos.user_messages, user)?);
        }
        let store = &self.stores.messages;
        self.durably(
            intents,
            async move { Ok(store.insert_many(messages).await?) },
        )
        .await
    }

    /// `delete_memoized(...)` of everything `message`'s arrival or
    /// departure changes, as intents recorded with the write. With a
    /// tiered cache every process has dropped the old values when the
    /// write returns, or the outbox keeps them for the relays.
    fn message_intents(&self, message: &Message) -> Result<Vec<Intent>, DataError> {
        let memos = &self.memos;
        let mine = Listing::User(message.user_id.clone());
        Ok(vec![
            memos.all_messages.intent_all(),
            intent(&memos.user_messages, &message.user_id)?,
            intent(&memos.message_count, &Listing::All)?,
            intent(&memos.message_count, &mine)?,
            intent(&memos.image_message, &message.image)?,
        ])
    }

    /// Runs `write` with `intents` recorded first and delivered after
    /// (see [`memocache::outbox`]): an invalidation that cannot be recorded
    /// refuses the write; one that cannot be delivered now is delivered by
    /// a relay.
    async fn durably<T, F>(&self, intents: Vec<Intent>, write: F) -> Result<T, DataError>
    where
        F: std::future::Future<Output = Result<T, DataError>>,
    {
        let write = async {
            let written = write.await?;
            // Tests kill the process here: committed, nothing delivered.
            fail::fail_point!("board::after_write", |_| std::process::abort());
            Ok(written)
        };
        match self.durable.write(intents, write).await {
            Ok(written) => Ok(written.value),
            Err(DurableError::Record(error)) => {
                Err(StoreError::Backend(format!("nothing written: {error}")).into())
            }
            Err(DurableError::Write(error)) => Err(error),
        }
    }

    async fn remove_files(&self, names: &[&MediaName]) {
        for name in names {
            if let Err(error) = self.media.delete(name).await {
                tracing::warn!(%error, name = name.as_str(), "image not removed");
            }
        }
    }
}

/// What `memo.forget(key)` does, as an intent to record.
fn intent<K, V>(memo: &Memo<K, V>, key: &K) -> Result<Intent, DataError>
where
    K: Serialize + ?Sized + 'static,
    V: memocache::CacheValue,
{
    memo.intent(key)
        .map_err(|e| StoreError::Backend(format!("cache key: {e}")).into())
}

/// A loaded page, or `NotFound` when a token led past the oldest message.
fn found(page: Arc<FeedPage>) -> Result<Arc<FeedPage>, DataError> {
    if page.messages.is_empty() && !page.is_first() {
        return Err(DataError::NotFound);
    }
    Ok(page)
}

#[cfg(test)]
mod tests;
