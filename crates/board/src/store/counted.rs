//! Counting wrappers: every store call bumps a counter for its table and
//! operation (`users`/`get`, `messages`/`scan`, …).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    AccountUsage, Bound, Credentials, Listing, Message, MessageStore, SessionRecord, SessionStore,
    StoreResult, User, UserStore,
};

/// Database calls made so far, per (table, operation). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct DbCalls {
    counts: Arc<Mutex<BTreeMap<(&'static str, &'static str), u64>>>,
}

impl DbCalls {
    fn bump(&self, table: &'static str, operation: &'static str) {
        *self.counts.lock().entry((table, operation)).or_default() += 1;
    }

    /// Every (table, operation, count) so far, sorted.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.counts
            .lock()
            .iter()
            .map(|(&(table, op), &n)| (table, op, n))
            .collect()
    }

    /// Calls to `table`, every operation.
    pub fn table(&self, table: &str) -> u64 {
        self.counts
            .lock()
            .iter()
            .filter(|((t, _), _)| *t == table)
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls of one operation on one table.
    pub fn get(&self, table: &str, operation: &str) -> u64 {
        self.counts
            .lock()
            .iter()
            .find(|((t, o), _)| *t == table && *o == operation)
            .map_or(0, |(_, n)| *n)
    }

    /// All calls.
    pub fn total(&self) -> u64 {
        self.counts.lock().values().sum()
    }
}

/// A store that counts the calls it forwards.
pub struct Counted<S: ?Sized> {
    inner: Arc<S>,
    calls: DbCalls,
}

impl<S: ?Sized> Counted<S> {
    /// Wraps `inner`, counting into `calls`.
    pub fn new(inner: Arc<S>, calls: DbCalls) -> Self {
        Self { inner, calls }
    }
}

#[async_trait]
impl<S: UserStore + ?Sized> UserStore for Counted<S> {
    async fn create(&self, user: &User, password_hash: &str) -> StoreResult<()> {
        self.calls.bump("users", "insert");
        self.inner.create(user, password_hash).await
    }
    async fn get(&self, id: &str) -> StoreResult<Option<User>> {
        self.calls.bump("users", "get");
        self.inner.get(id).await
    }
    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>> {
        self.calls.bump("users", "get_by_name");
        self.inner.credentials(username).await
    }
    async fn password_hash(&self, id: &str) -> StoreResult<Option<String>> {
        self.calls.bump("users", "get_password");
        self.inner.password_hash(id).await
    }
    async fn set_password(&self, id: &str, password_hash: &str) -> StoreResult<()> {
        self.calls.bump("users", "update");
        self.inner.set_password(id, password_hash).await
    }
    async fn count(&self) -> StoreResult<u64> {
        self.calls.bump("users", "count");
        self.inner.count().await
    }
    async fn rename(&self, id: &str, username: &str) -> StoreResult<()> {
        self.calls.bump("users", "update");
        self.inner.rename(id, username).await
    }
    async fn identity(&self, issuer: &str, subject: &str) -> StoreResult<Option<String>> {
        self.calls.bump("identities", "get");
        self.inner.identity(issuer, subject).await
    }
    async fn link_identity(&self, issuer: &str, subject: &str, user_id: &str) -> StoreResult<()> {
        self.calls.bump("identities", "insert");
        self.inner.link_identity(issuer, subject, user_id).await
    }
    async fn largest(&self, limit: usize) -> StoreResult<Vec<AccountUsage>> {
        self.calls.bump("users", "largest");
        self.inner.largest(limit).await
    }
}

#[async_trait]
impl<S: SessionStore + ?Sized> SessionStore for Counted<S> {
    async fn create(&self, session: &SessionRecord) -> StoreResult<()> {
        self.calls.bump("sessions", "insert");
        self.inner.create(session).await
    }
    async fn get(&self, token_hash: &str) -> StoreResult<Option<SessionRecord>> {
        self.calls.bump("sessions", "get");
        self.inner.get(token_hash).await
    }
    async fn delete(&self, token_hash: &str) -> StoreResult<()> {
        self.calls.bump("sessions", "delete");
        self.inner.delete(token_hash).await
    }
    async fn delete_for_user(&self, user_id: &str, keep: Option<&str>) -> StoreResult<Vec<String>> {
        self.calls.bump("sessions", "delete_for_user");
        self.inner.delete_for_user(user_id, keep).await
    }
}

#[async_trait]
impl<S: MessageStore + ?Sized> MessageStore for Counted<S> {
    async fn insert(&self, message: &Message) -> StoreResult<()> {
        self.calls.bump("messages", "insert");
        self.inner.insert(message).await
    }
    async fn insert_within(
        &self,
        message: &Message,
        bytes: u64,
        quota: Option<u64>,
    ) -> StoreResult<()> {
        self.calls.bump("messages", "insert");
        self.inner.insert_within(message, bytes, quota).await
    }
    async fn insert_many(&self, messages: &[Message]) -> StoreResult<()> {
        self.calls.bump("messages", "insert_many");
        self.inner.insert_many(messages).await
    }
    async fn page(
        &self,
        listing: &Listing,
        bound: &Bound,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        self.calls.bump(
            "messages",
            match listing {
                Listing::All => "page",
                Listing::User(_) => "user_page",
            },
        );
        self.inner.page(listing, bound, limit).await
    }
    async fn count(&self, listing: &Listing) -> StoreResult<u64> {
        self.calls.bump("messages", "count");
        self.inner.count(listing).await
    }
    async fn by_image(&self, image: &str) -> StoreResult<Option<Message>> {
        self.calls.bump("messages", "by_image");
        self.inner.by_image(image).await
    }
    async fn all(&self) -> StoreResult<Vec<Message>> {
        self.calls.bump("messages", "scan");
        self.inner.all().await
    }
    async fn by_user(&self, user_id: &str) -> StoreResult<Vec<Message>> {
        self.calls.bump("messages", "by_user");
        self.inner.by_user(user_id).await
    }
    async fn get(&self, id: &str) -> StoreResult<Option<Message>> {
        self.calls.bump("messages", "get");
        self.inner.get(id).await
    }
    async fn delete(&self, id: &str) -> StoreResult<bool> {
        self.calls.bump("messages", "delete");
        self.inner.delete(id).await
    }
}
