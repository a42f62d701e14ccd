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

mod accounts;
mod cursor;
mod messages;
pub mod oidc;
mod posting;
mod sweep;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use memocache::outbox::{Durable, DurableError, Intent, Relay, RelayStats, RelayTask};
use memocache::{Cache, Memo};
use serde::Serialize;

pub use crate::oidc::OidcDocument;
pub use cursor::{BadCursor, CursorKey};
pub use messages::FeedPage;
pub use oidc::Fetched;
pub use posting::{DEFAULT_ACCOUNT_QUOTA, OverBudget, OverQuota, PostLimits, Scope, Spent};
pub use sweep::{SWEEP_BATCH, SweepReport};

use crate::auth::Session;
use crate::auth::csrf::CsrfKey;
use crate::listing::MessageView;
use crate::media::{ImageKind, MediaName, MediaStore};
use crate::store::{Listing, StoreError, Stores, User};

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
    /// The account's storage quota is full (see [`Data::post`]); nothing
    /// was stored.
    #[error(transparent)]
    OverQuota(#[from] OverQuota),
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
    /// The post and upload budgets and the account quota.
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

#[cfg(test)]
mod tests;
