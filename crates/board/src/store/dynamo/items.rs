//! The store traits on DynamoDB items: conversions and calls.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};

use super::{Dynamo, store_error};
use crate::store::{
    AccountUsage, Credentials, Message, SessionRecord, SessionStore, StoreError, StoreResult, User,
    UserStore,
};

/// Index of `sessions` by `user_id`.
pub(super) const SESSIONS_BY_USER: &str = "by_user";
/// Index of `messages` by `feed` and `created_at`: newest first.
pub(super) const MESSAGES_BY_TIME: &str = "by_time";
/// Index of `messages` by `user_id` and `created_at`.
pub(super) const MESSAGES_BY_USER: &str = "by_user";
/// The one `feed` value every message has (see the module docs on hot
/// partitions).
pub(super) const FEED: &str = "all";
/// The `id` prefix of name-claim items in `users`.
const CLAIM: &str = "username#";
/// The `id` prefix of OpenID identity items in `users` (see the module
/// docs); user ids are 32 hex digits, so none can start with it.
const IDENTITY: &str = "identity#";
/// The `message_id` prefix of image-alias items in `messages` (see the
/// module docs); message ids are 32 hex digits, so none can start with it.
pub(super) const ALIAS: &str = "image#";

/// The id of the alias item of image `image`.
pub(super) fn alias_id(image: &str) -> String {
    format!("{ALIAS}{image}")
}

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The claim id of a user name: SQLite's `NOCASE` folds ASCII only.
fn claim_id(username: &str) -> String {
    format!("{CLAIM}{}", username.to_ascii_lowercase())
}

/// The id of the identity item of `subject` at `issuer`. The issuer is a
/// URL and has no newline, so the pair is unambiguous.
fn identity_id(issuer: &str, subject: &str) -> String {
    format!("{IDENTITY}{issuer}\n{subject}")
}

fn malformed(table: &str, what: &str) -> StoreError {
    StoreError::Backend(format!("malformed item in {table}: {what}"))
}

pub(super) fn get_s(item: &Item, table: &str, name: &str) -> StoreResult<String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(malformed(table, &format!("no string `{name}`"))),
    }
}

/// A non-key string that may be empty: stored only when it is not, for
/// emulators that predate empty strings.
fn get_opt_s(item: &Item, table: &str, name: &str) -> StoreResult<String> {
    match item.get(name) {
        None => Ok(String::new()),
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        Some(_) => Err(malformed(table, &format!("`{name}` is not a string"))),
    }
}

fn put_opt_s(item: &mut Item, name: &str, value: &str) {
    if !value.is_empty() {
        item.insert(name.to_owned(), s(value));
    }
}

pub(super) fn get_n(item: &Item, table: &str, name: &str) -> StoreResult<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| malformed(table, &format!("`{name}` = {value} is not an integer"))),
        _ => Err(malformed(table, &format!("no number `{name}`"))),
    }
}

fn user_from(item: &Item, table: &str) -> StoreResult<User> {
    Ok(User {
        id: get_s(item, table, "id")?,
        username: get_s(item, table, "username")?,
        created_at: get_n(item, table, "created_at")?,
    })
}

pub(super) fn message_item(m: &Message) -> Item {
    let mut item = Item::from([
        ("message_id".to_owned(), s(&m.id)),
        ("feed".to_owned(), s(FEED)),
        ("user_id".to_owned(), s(&m.user_id)),
        ("created_at".to_owned(), n(m.created_at)),
    ]);
    put_opt_s(&mut item, "author", &m.author);
    put_opt_s(&mut item, "location", &m.location);
    put_opt_s(&mut item, "description", &m.description);
    put_opt_s(&mut item, "image", &m.image);
    put_opt_s(&mut item, "thumbnail", &m.thumbnail);
    item
}

pub(super) fn message_from(item: &Item, table: &str) -> StoreResult<Message> {
    Ok(Message {
        id: get_s(item, table, "message_id")?,
        user_id: get_s(item, table, "user_id")?,
        author: get_opt_s(item, table, "author")?,
        location: get_opt_s(item, table, "location")?,
        description: get_opt_s(item, table, "description")?,
        image: get_opt_s(item, table, "image")?,
        thumbnail: get_opt_s(item, table, "thumbnail")?,
        created_at: get_n(item, table, "created_at")?,
    })
}

/// Newest first, ties by id descending: the order pages show, and the same
/// every time (items with equal sort keys come back in no set order).
pub(super) fn newest_first(messages: &mut [Message]) {
    messages.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });
}

pub(super) fn backend<'a, E, R>(
    table: &'a str,
    operation: &'a str,
) -> impl Fn(SdkError<E, R>) -> StoreError + 'a
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    move |e| store_error(table, operation, &e)
}

impl Dynamo {
    pub(super) async fn get_item(
        &self,
        table: &str,
        key: &str,
        value: &str,
    ) -> StoreResult<Option<Item>> {
        self.client
            .get_item()
            .table_name(table)
            .key(key, s(value))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(backend(table, "GetItem"))
    }
}

#[async_trait]
impl UserStore for Dynamo {
    async fn create(&self, user: &User, password_hash: &str) -> StoreResult<()> {
        let table = &self.users;
        let claim = claim_id(&user.username);
        self.client
            .put_item()
            .table_name(table)
            .item("id", s(&claim))
            .item("user_id", s(&user.id))
            .item("created_at", n(user.created_at))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map_err(backend(table, "PutItem (name claim)"))?;
        let written = self
            .client
            .put_item()
            .table_name(table)
            .item("id", s(&user.id))
            .item("username", s(&user.username))
            .item("password_hash", s(password_hash))
            .item("created_at", n(user.created_at))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map_err(backend(table, "PutItem"));
        if let Err(error) = written {
            // Free the name again; if even that fails the claim stays and
            // the name remains taken (reported with the original error).
            let undo = self
                .client
                .delete_item()
                .table_name(table)
                .key("id", s(&claim))
                .condition_expression("user_id = :u")
                .expression_attribute_values(":u", s(&user.id))
                .send()
                .await;
            if let Err(undo) = undo {
                let undo = store_error(table, "DeleteItem (name claim)", &undo);
                tracing::error!(%undo, claim, "could not release a user-name claim");
            }
            return Err(error);
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> StoreResult<Option<User>> {
        if id.starts_with(CLAIM) || id.starts_with(IDENTITY) {
            return Ok(None);
        }
        self.get_item(&self.users, "id", id)
            .await?
            .map(|item| user_from(&item, &self.users))
            .transpose()
    }

    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>> {
        let table = &self.users;
        let Some(claim) = self.get_item(table, "id", &claim_id(username)).await? else {
            return Ok(None);
        };
        let user_id = get_s(&claim, table, "user_id")?;
        // A claim without its user is a create that failed half-way.
        let Some(item) = self.get_item(table, "id", &user_id).await? else {
            return Ok(None);
        };
        Ok(Some(Credentials {
            user: user_from(&item, table)?,
            password_hash: get_s(&item, table, "password_hash")?,
        }))
    }

    async fn password_hash(&self, id: &str) -> StoreResult<Option<String>> {
        if id.starts_with(CLAIM) {
            return Ok(None);
        }
        self.get_item(&self.users, "id", id)
            .await?
            .map(|item| get_s(&item, &self.users, "password_hash"))
            .transpose()
    }

    async fn set_password(&self, id: &str, password_hash: &str) -> StoreResult<()> {
        let table = &self.users;
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key("id", s(id))
            .update_expression("SET password_hash = :h")
            .condition_expression("attribute_exists(username)")
            .expression_attribute_values(":h", s(password_hash))
            .send()
            .await
            .map_err(backend(table, "UpdateItem"));
        match result {
            // No such user: a no-op, as SQLite's UPDATE.
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn count(&self) -> StoreResult<u64> {
        let table = &self.users;
        let mut pages = self
            .client
            .scan()
            .table_name(table)
            .select(Select::Count)
            .filter_expression("attribute_not_exists(user_id)")
            .into_paginator()
            .send();
        let mut total = 0u64;
        while let Some(page) = pages.next().await {
            let page = page.map_err(backend(table, "Scan"))?;
            total += u64::try_from(page.count).unwrap_or(0);
        }
        Ok(total)
    }

    /// Claims the new name, renames the user item, then frees the old
    /// name; a step that fails undoes the claim (see the module docs).
    async fn rename(&self, id: &str, username: &str) -> StoreResult<()> {
        let table = &self.users;
        let Some(user) = UserStore::get(self, id).await? else {
            return Ok(());
        };
        let (old, new) = (claim_id(&user.username), claim_id(username));
        if old != new {
            self.client
                .put_item()
                .table_name(table)
                .item("id", s(&new))
                .item("user_id", s(id))
                .item("created_at", n(user.created_at))
                .condition_expression("attribute_not_exists(id)")
                .send()
                .await
                .map_err(backend(table, "PutItem (name claim)"))?;
        }
        let renamed = self
            .client
            .update_item()
            .table_name(table)
            .key("id", s(id))
            .update_expression("SET username = :n")
            .condition_expression("attribute_exists(username)")
            .expression_attribute_values(":n", s(username))
            .send()
            .await
            .map_err(backend(table, "UpdateItem (rename)"));
        let release = if renamed.is_ok() {
            old.clone()
        } else {
            new.clone()
        };
        if old != new {
            let freed = self
                .client
                .delete_item()
                .table_name(table)
                .key("id", s(&release))
                .condition_expression("user_id = :u")
                .expression_attribute_values(":u", s(id))
                .send()
                .await;
            if let Err(error) = freed {
                let error = store_error(table, "DeleteItem (name claim)", &error);
                tracing::error!(%error, claim = release, "could not release a user-name claim");
            }
        }
        renamed.map(drop)
    }

    async fn identity(&self, issuer: &str, subject: &str) -> StoreResult<Option<String>> {
        let table = &self.users;
        self.get_item(table, "id", &identity_id(issuer, subject))
            .await?
            .map(|item| get_s(&item, table, "user_id"))
            .transpose()
    }

    async fn largest(&self, limit: usize) -> StoreResult<Vec<AccountUsage>> {
        self.largest_accounts(limit).await
    }

    async fn link_identity(&self, issuer: &str, subject: &str, user_id: &str) -> StoreResult<()> {
        let table = &self.users;
        self.client
            .put_item()
            .table_name(table)
            .item("id", s(&identity_id(issuer, subject)))
            .item("user_id", s(user_id))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map(drop)
            .map_err(backend(table, "PutItem (identity)"))
    }
}

#[async_trait]
impl SessionStore for Dynamo {
    async fn create(&self, session: &SessionRecord) -> StoreResult<()> {
        let table = &self.sessions;
        self.client
            .put_item()
            .table_name(table)
            .item("token_hash", s(&session.token_hash))
            .item("user_id", s(&session.user_id))
            .item("created_at", n(session.created_at))
            .item("expires_at", n(session.expires_at))
            .condition_expression("attribute_not_exists(token_hash)")
            .send()
            .await
            .map_err(backend(table, "PutItem"))?;
        self.track_sessions(&session.user_id, vec![session.token_hash.clone()], true)
            .await;
        Ok(())
    }

    async fn get(&self, token_hash: &str) -> StoreResult<Option<SessionRecord>> {
        let table = &self.sessions;
        self.get_item(table, "token_hash", token_hash)
            .await?
            .map(|item| {
                Ok(SessionRecord {
                    token_hash: get_s(&item, table, "token_hash")?,
                    user_id: get_s(&item, table, "user_id")?,
                    created_at: get_n(&item, table, "created_at")?,
                    expires_at: get_n(&item, table, "expires_at")?,
                })
            })
            .transpose()
    }

    async fn delete(&self, token_hash: &str) -> StoreResult<()> {
        let table = &self.sessions;
        let old = self
            .client
            .delete_item()
            .table_name(table)
            .key("token_hash", s(token_hash))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend(table, "DeleteItem"))?;
        if let Some(AttributeValue::S(user_id)) =
            old.attributes.as_ref().and_then(|a| a.get("user_id"))
        {
            self.track_sessions(user_id, vec![token_hash.to_owned()], false)
                .await;
        }
        Ok(())
    }

    async fn delete_for_user(&self, user_id: &str, keep: Option<&str>) -> StoreResult<Vec<String>> {
        let table = &self.sessions;
        let mut pages = self
            .client
            .query()
            .table_name(table)
            .index_name(SESSIONS_BY_USER)
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", s(user_id))
            .into_paginator()
            .items()
            .send();
        // The user's session set (strongly consistent) and the index
        // (which may lag, but also knows sessions made before the set).
        let mut hashes: BTreeSet<String> = self
            .get_item(&self.users, "id", user_id)
            .await?
            .and_then(|mut item| match item.remove(SESSION_SET) {
                Some(AttributeValue::Ss(set)) => Some(set),
                _ => None,
            })
            .unwrap_or_default()
            .into_iter()
            .collect();
        while let Some(item) = pages.next().await {
            let item = item.map_err(backend(table, "Query"))?;
            hashes.insert(get_s(&item, table, "token_hash")?);
        }
        if let Some(keep) = keep {
            hashes.remove(keep);
        }
        let mut removed = Vec::with_capacity(hashes.len());
        for hash in &hashes {
            // Only what was still there counts as removed.
            let out = self
                .client
                .delete_item()
                .table_name(table)
                .key("token_hash", s(hash))
                .return_values(ReturnValue::AllOld)
                .send()
                .await
                .map_err(backend(table, "DeleteItem"))?;
            if out.attributes.is_some() {
                removed.push(hash.clone());
            }
        }
        self.track_sessions(user_id, hashes.into_iter().collect(), false)
            .await;
        Ok(removed)
    }
}

/// The attribute of a user item listing the hashes of the user's sessions.
const SESSION_SET: &str = "sessions";

impl Dynamo {
    /// Adds (`add`) or removes `hashes` in the user's session set: a
    /// strongly consistent record of a user's sessions, which the
    /// `by_user` index (eventually consistent on AWS) cannot be, so that
    /// "log out everywhere" also reaches a session made a moment before.
    /// String-set `ADD`/`DELETE` are atomic, so concurrent logins do not
    /// lose each other's entries. Best effort: a failure is logged, and
    /// the index still finds the session later.
    async fn track_sessions(&self, user_id: &str, hashes: Vec<String>, add: bool) {
        if hashes.is_empty() {
            return;
        }
        let table = &self.users;
        let expression = if add {
            format!("ADD {SESSION_SET} :s")
        } else {
            format!("DELETE {SESSION_SET} :s")
        };
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key("id", s(user_id))
            .update_expression(expression)
            // Only on a user item: never creates an item for a stray id.
            .condition_expression("attribute_exists(username)")
            .expression_attribute_values(":s", AttributeValue::Ss(hashes))
            .send()
            .await
            .map_err(backend(table, "UpdateItem (session set)"));
        match result {
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(error) => tracing::warn!(%error, user_id, "session set not updated"),
        }
    }
}
