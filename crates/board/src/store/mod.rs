//! Where users, sessions and messages live, behind one trait each so that
//! other databases slot in by URL: SQLite ([`sqlite`]) embedded, DynamoDB
//! (`dynamo`, with the `aws` feature) for fleets.
//!
//! Every store a [`Stores`] hands out is wrapped in [`counted`], which
//! counts calls per table and operation for `/metrics` and for tests.

pub mod counted;
#[cfg(feature = "aws")]
pub mod dynamo;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use counted::DbCalls;

/// A user as pages see it (no password hash): what `load_user` caches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Server-generated id (32 hex digits).
    pub id: String,
    /// The account name.
    pub username: String,
    /// When the account was made, Unix milliseconds.
    pub created_at: i64,
}

/// A user with the password hash, for logging in only (never cached).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// PHC string of the argon2 hash.
    pub password_hash: String,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Server-generated id (32 hex digits).
    pub id: String,
    /// The owner: only they may delete it.
    pub user_id: String,
    /// Who it is signed by.
    pub author: String,
    /// Where it was taken (may be empty).
    pub location: String,
    /// What it says.
    pub description: String,
    /// Name of the full image in the media store.
    pub image: String,
    /// Name of the 150x150 thumbnail in the media store.
    pub thumbnail: String,
    /// When it was posted, Unix milliseconds.
    pub created_at: i64,
}

/// A login, as stored: only the hash of the cookie's token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the session token, hex.
    pub token_hash: String,
    /// Who is logged in.
    pub user_id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds after which the session is void.
    pub expires_at: i64,
}

/// How much one account stores: a line of `board accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUsage {
    /// The user's id.
    pub user_id: String,
    /// The account name.
    pub username: String,
    /// How many messages the account has.
    pub messages: u64,
    /// Media bytes its messages store (images and thumbnails), as counted
    /// against `--account-quota`.
    pub bytes: u64,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value (a user name) is taken.
    #[error("already exists")]
    Conflict,
    /// Storing the message would take its owner past the quota given to
    /// [`MessageStore::insert_within`]; nothing was written.
    #[error("account quota full: {stored} bytes stored")]
    OverQuota {
        /// What the account stores already.
        stored: u64,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Backend(String),
}

/// `Result` of store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// The `users` table.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Adds a user; [`StoreError::Conflict`] if the name is taken (names are
    /// compared without case).
    async fn create(&self, user: &User, password_hash: &str) -> StoreResult<()>;
    /// The user with `id`.
    async fn get(&self, id: &str) -> StoreResult<Option<User>>;
    /// The user named `username` (any case) with the password hash.
    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>>;
    /// The password hash of user `id`.
    async fn password_hash(&self, id: &str) -> StoreResult<Option<String>>;
    /// Replaces the password hash of user `id`.
    async fn set_password(&self, id: &str, password_hash: &str) -> StoreResult<()>;
    /// Number of users.
    async fn count(&self) -> StoreResult<u64>;
    /// Renames user `id`; [`StoreError::Conflict`] if another user has the
    /// name (any case). A missing user is a no-op.
    async fn rename(&self, id: &str, username: &str) -> StoreResult<()>;
    /// The user signed in as `subject` at OpenID provider `issuer` (the
    /// provider's stable `sub`, never the e-mail).
    async fn identity(&self, issuer: &str, subject: &str) -> StoreResult<Option<String>>;
    /// Links `issuer` + `subject` to `user_id`; [`StoreError::Conflict`]
    /// if that identity is linked already (to anyone).
    async fn link_identity(&self, issuer: &str, subject: &str, user_id: &str) -> StoreResult<()>;
    /// The `limit` accounts storing the most media bytes, largest first
    /// (ties by id), for `board accounts`. SQLite reads an index;
    /// DynamoDB scans the users table a page at a time, keeping only the
    /// `limit` largest in memory: an admin read, never a page's.
    async fn largest(&self, limit: usize) -> StoreResult<Vec<AccountUsage>>;
}

/// The `sessions` table.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Adds a session.
    async fn create(&self, session: &SessionRecord) -> StoreResult<()>;
    /// The session whose token hashes to `token_hash`.
    async fn get(&self, token_hash: &str) -> StoreResult<Option<SessionRecord>>;
    /// Removes one session.
    async fn delete(&self, token_hash: &str) -> StoreResult<()>;
    /// Removes every session of `user_id` except `keep`; returns the hashes
    /// removed (so their cached copies can be forgotten).
    async fn delete_for_user(&self, user_id: &str, keep: Option<&str>) -> StoreResult<Vec<String>>;
}

/// One newest-first listing: every message (the home page) or one user's
/// (`/my`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Listing {
    /// Every message.
    All,
    /// The messages of the user with this id.
    User(String),
}

/// A place in a listing: the sort key of one message. Listings are ordered
/// by `created_at` descending, ties by `id` descending (SQLite; DynamoDB
/// keeps its index's own order among equal times and resumes from the
/// message itself, so a page boundary inside a tie loses nothing there
/// either). The message need not exist any more: a place stays valid after
/// its message is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// `created_at` of the message, Unix milliseconds.
    pub created_at: i64,
    /// Its id.
    pub id: String,
}

impl Position {
    /// The place of `message`.
    pub fn of(message: &Message) -> Self {
        Self {
            created_at: message.created_at,
            id: message.id.clone(),
        }
    }
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Bound {
    /// The newest messages.
    Newest,
    /// Messages older than (after, in listing order) this place.
    Older(Position),
    /// Messages newer than (before, in listing order) this place: the page
    /// that precedes it. Still returned newest first.
    Newer(Position),
}

/// The `messages` table.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Adds a message that stores no media bytes (tools, tests).
    async fn insert(&self, message: &Message) -> StoreResult<()>;
    /// Adds a message whose media take `bytes`, and adds them to its
    /// owner's stored total in the same write: refused with
    /// [`StoreError::OverQuota`], nothing written, when the total would
    /// pass `quota`. The check and the addition are one atomic database
    /// operation, so concurrent posts of one account never together pass
    /// the quota. [`delete`](Self::delete) gives the bytes back.
    async fn insert_within(
        &self,
        message: &Message,
        bytes: u64,
        quota: Option<u64>,
    ) -> StoreResult<()>;
    /// Adds many messages in as few round trips as the database allows
    /// (one SQLite transaction; DynamoDB `BatchWriteItem`s of 25), for
    /// `board demo` and tools. Counters move as for [`insert`](Self::insert).
    async fn insert_many(&self, messages: &[Message]) -> StoreResult<()>;
    /// One page of `listing`: at most `limit` messages from `bound`, newest
    /// first. Reads only what it returns (an index range, never a scan).
    async fn page(&self, listing: &Listing, bound: &Bound, limit: u32)
    -> StoreResult<Vec<Message>>;
    /// How many messages `listing` holds: a counter kept with every write,
    /// never a count of rows.
    async fn count(&self, listing: &Listing) -> StoreResult<u64>;
    /// The message whose full image is named `image`.
    async fn by_image(&self, image: &str) -> StoreResult<Option<Message>>;
    /// Every message, in no promised order: a whole-table read for tools,
    /// tests and migrations only; no page calls it.
    async fn all(&self) -> StoreResult<Vec<Message>>;
    /// Every message of one user, newest first: for tools and tests only.
    async fn by_user(&self, user_id: &str) -> StoreResult<Vec<Message>>;
    /// One message.
    async fn get(&self, id: &str) -> StoreResult<Option<Message>>;
    /// Removes one message, and its media bytes from its owner's total;
    /// true if it was there.
    async fn delete(&self, id: &str) -> StoreResult<bool>;
}

/// The three tables, opened from a database URL and counted.
#[derive(Clone)]
pub struct Stores {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Messages.
    pub messages: Arc<dyn MessageStore>,
    /// Invalidations recorded with the writes that cause them, until they
    /// are delivered (see [`memocache::outbox`]). Not counted in `calls`:
    /// the relays read it on a timer, not per request.
    pub outbox: Arc<dyn memocache::outbox::Outbox>,
    /// Calls made so far, per table and operation.
    pub calls: DbCalls,
}

impl Stores {
    /// Opens the database at `url`: `sqlite://PATH`, `sqlite:PATH` or
    /// `sqlite::memory:` (created and migrated if needed), or, in builds
    /// with the `aws` feature, `dynamodb://REGION?endpoint=URL&prefix=P`
    /// (whose tables [`migrate`] must have made).
    ///
    /// # Errors
    /// [`OpenError::Url`] for an unknown or malformed URL,
    /// [`OpenError::Database`] when the database cannot be opened.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        match Backend::parse(url)? {
            Backend::Sqlite(path) => {
                let db = open_sqlite(url, &path).await?;
                Ok(Self::counted(Arc::new(db)))
            }
            #[cfg(feature = "aws")]
            Backend::Dynamo => {
                let db = dynamo::Dynamo::open(url).await?;
                Ok(Self::counted(Arc::new(db)))
            }
        }
    }

    /// Wraps one database holding every table in counters.
    fn counted<D>(db: Arc<D>) -> Self
    where
        D: UserStore + SessionStore + MessageStore + memocache::outbox::Outbox,
    {
        let calls = DbCalls::default();
        Self {
            users: Arc::new(counted::Counted::new(Arc::clone(&db), calls.clone())),
            sessions: Arc::new(counted::Counted::new(Arc::clone(&db), calls.clone())),
            messages: Arc::new(counted::Counted::new(Arc::clone(&db), calls.clone())),
            outbox: db,
            calls,
        }
    }
}

/// Brings the database at `url` up to date: for `dynamodb://`, creates the
/// missing tables and indexes and waits until they are active; for
/// `sqlite://`, opens the file, which migrates it. Idempotent. Returns what
/// was done, for people.
///
/// # Errors
/// As [`Stores::open`].
pub async fn migrate(url: &str) -> Result<String, OpenError> {
    match Backend::parse(url)? {
        Backend::Sqlite(path) => {
            drop(open_sqlite(url, &path).await?);
            Ok(format!(
                "SQLite database {path} is up to date (it migrates itself on open)"
            ))
        }
        #[cfg(feature = "aws")]
        Backend::Dynamo => dynamo::migrate(url).await,
    }
}

/// The kind of database a URL names.
enum Backend {
    /// A SQLite file (or `:memory:`).
    Sqlite(String),
    /// DynamoDB; the URL is parsed by [`dynamo::DynamoUrl`].
    #[cfg(feature = "aws")]
    Dynamo,
}

impl Backend {
    fn parse(url: &str) -> Result<Self, OpenError> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(OpenError::Url(format!(
                    "`{url}` names no file (try sqlite://data/board.sqlite)"
                )));
            }
            return Ok(Self::Sqlite(path.to_owned()));
        }
        if url.starts_with("dynamodb:") {
            #[cfg(feature = "aws")]
            return Ok(Self::Dynamo);
            #[cfg(not(feature = "aws"))]
            return Err(OpenError::Url(format!(
                "`{url}`: this build has no DynamoDB support; rebuild with `--features aws`"
            )));
        }
        Err(OpenError::Url(format!(
            "unsupported database URL `{url}` (this build knows sqlite://PATH, sqlite::memory:{})",
            if cfg!(feature = "aws") {
                " and dynamodb://REGION?endpoint=URL&prefix=board_"
            } else {
                ""
            }
        )))
    }
}

/// Opens (and migrates) a SQLite file off the async threads.
async fn open_sqlite(url: &str, path: &str) -> Result<sqlite::Sqlite, OpenError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || sqlite::Sqlite::open(&owned))
        .await
        .map_err(|e| OpenError::Database(format!("{url}: opening failed: {e}")))?
        .map_err(|e| OpenError::Database(format!("{url}: {e}")))
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is malformed or names an unknown kind of store.
    #[error("{0}")]
    Url(String),
    /// The database could not be opened or migrated.
    #[error("{0}")]
    Database(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_urls_need_the_aws_feature() {
        let parsed = Backend::parse("dynamodb://eu-west-1");
        #[cfg(feature = "aws")]
        assert!(matches!(parsed, Ok(Backend::Dynamo)));
        #[cfg(not(feature = "aws"))]
        match parsed {
            Err(OpenError::Url(message)) => assert!(
                message
                    .contains("this build has no DynamoDB support; rebuild with `--features aws`"),
                "{message}"
            ),
            _ => panic!("dynamodb:// accepted without the aws feature"),
        }
    }

    #[tokio::test]
    async fn migrating_sqlite_opens_it() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("b.sqlite").display());
        let report = migrate(&url).await.expect("migrate");
        assert!(report.contains("up to date"), "{report}");
        Stores::open(&url).await.expect("open");
        assert!(matches!(migrate("mysql://x").await, Err(OpenError::Url(_))));
    }
}
