//! The `messages` table: keyset pages on the indexes, counts from the
//! watermarks, image aliases and batch writes (see the module docs of
//! [`dynamo`](super)).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, ReturnValue, WriteRequest};

use super::Dynamo;
use super::items::{
    ALIAS, FEED, Item, MESSAGES_BY_TIME, MESSAGES_BY_USER, alias_id, backend, get_s, message_from,
    message_item, n, newest_first, s,
};
use super::quota::{BYTES, number};
use super::watermark::{Change, Move, WATERMARK};
use crate::store::{Bound, Listing, Message, MessageStore, StoreError, StoreResult};

/// The most items one `BatchWriteItem` takes.
const BATCH: usize = 25;
/// Attempts at one batch while DynamoDB hands back unprocessed items.
const BATCH_ATTEMPTS: u32 = 8;
/// The first wait before retrying unprocessed items; it doubles.
const FIRST_BATCH_WAIT: Duration = Duration::from_millis(50);

/// Ids of the items in `messages` that are not messages: watermarks and
/// image aliases.
fn reserved(id: &str) -> bool {
    id.starts_with(WATERMARK) || id.starts_with(ALIAS)
}

fn refuse(id: &str) -> StoreError {
    StoreError::Backend(format!(
        "`{id}` is a reserved id (a watermark or an image alias), not a message id"
    ))
}

/// The index of `listing`, and its partition key's name and value.
fn index_of(listing: &Listing) -> (&'static str, &'static str, &str) {
    match listing {
        Listing::All => (MESSAGES_BY_TIME, "feed", FEED),
        Listing::User(id) => (MESSAGES_BY_USER, "user_id", id),
    }
}

/// The alias item of image `image`: no index key, so no index holds it.
fn alias_item(image: &str, message_id: &str) -> Item {
    Item::from([
        ("message_id".to_owned(), s(&alias_id(image))),
        ("target".to_owned(), s(message_id)),
    ])
}

fn put(item: Item) -> StoreResult<WriteRequest> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| StoreError::Backend(format!("building a BatchWriteItem failed: {e}")))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

impl Dynamo {
    /// One page of `listing` from `bound`: one `Query` with `Limit`,
    /// continued from `LastEvaluatedKey` only while a 1 MB response cut it
    /// short of `limit`. Among equal `created_at` the index's own order
    /// holds; starting from a message's full key is exact, and the message
    /// need not exist (the key is a place in the index, not a lookup).
    async fn query_page(
        &self,
        listing: &Listing,
        bound: &Bound,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let table = &self.messages;
        let (index, key, value) = index_of(listing);
        let (forward, from) = match bound {
            Bound::Newest => (false, None),
            Bound::Older(place) => (false, Some(place)),
            Bound::Newer(place) => (true, Some(place)),
        };
        let mut start = from.map(|place| {
            Item::from([
                (key.to_owned(), s(value)),
                ("created_at".to_owned(), n(place.created_at)),
                ("message_id".to_owned(), s(&place.id)),
            ])
        });
        let want = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut messages = Vec::with_capacity(want.min(1_000));
        while messages.len() < want {
            let left = i32::try_from(want - messages.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(table)
                .index_name(index)
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", key)
                .expression_attribute_values(":v", s(value))
                .scan_index_forward(forward)
                .limit(left)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend(table, "Query"))?;
            for item in out.items() {
                let message = message_from(item, table)?;
                // Watermarks and aliases have no index keys: never here.
                if !reserved(&message.id) {
                    messages.push(message);
                }
            }
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        if forward {
            messages.reverse();
        }
        Ok(messages)
    }

    /// Every item of an index partition, following `LastEvaluatedKey` to
    /// the end, newest first (ties by id descending, as SQLite).
    async fn query_all(&self, listing: &Listing) -> StoreResult<Vec<Message>> {
        let table = &self.messages;
        let (index, key, value) = index_of(listing);
        let mut pages = self
            .client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", s(value))
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send();
        let mut messages = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(backend(table, "Query"))?;
            let message = message_from(&item, table)?;
            if !reserved(&message.id) {
                messages.push(message);
            }
        }
        newest_first(&mut messages);
        Ok(messages)
    }

    /// Writes the alias of image `image`: `message_id = "image#<image>"`,
    /// `target` = the message's id.
    pub(super) async fn put_alias(&self, image: &str, message_id: &str) -> StoreResult<()> {
        let table = &self.messages;
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(alias_item(image, message_id)))
            .send()
            .await
            .map_err(backend(table, "PutItem (image alias)"))?;
        Ok(())
    }

    /// Removes the alias of image `image` if it still names `message_id`.
    /// Best effort: a stale alias is harmless, since `by_image` checks the
    /// message it leads to.
    async fn delete_alias(&self, image: &str, message_id: &str) {
        let table = &self.messages;
        let result = self
            .client
            .delete_item()
            .table_name(table)
            .key("message_id", s(&alias_id(image)))
            .condition_expression("target = :t")
            .expression_attribute_values(":t", s(message_id))
            .send()
            .await
            .map_err(backend(table, "DeleteItem (image alias)"));
        match result {
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(error) => tracing::warn!(%error, image, "image alias not removed"),
        }
    }

    /// Writes the alias of `message`'s image, then the message with the
    /// media bytes it stores (when any).
    async fn put_message(&self, message: &Message, bytes: u64) -> StoreResult<()> {
        let table = &self.messages;
        // The alias first: a message is never without one. Should the
        // message then be refused, the alias leads to a message with
        // another image (or none), which `by_image` does not return.
        if !message.image.is_empty() {
            self.put_alias(&message.image, &message.id).await?;
        }
        let mut item = message_item(message);
        if bytes > 0 {
            item.insert(
                BYTES.to_owned(),
                n(i64::try_from(bytes).unwrap_or(i64::MAX)),
            );
        }
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(message_id)")
            .send()
            .await
            .map_err(backend(table, "PutItem"))?;
        Ok(())
    }

    /// One `BatchWriteItem` of at most [`BATCH`] requests, retrying the
    /// unprocessed ones with backoff, [`BATCH_ATTEMPTS`] times at most.
    async fn batch_write(&self, mut pending: Vec<WriteRequest>) -> StoreResult<()> {
        let table = &self.messages;
        let mut wait = FIRST_BATCH_WAIT;
        for attempt in 1..=BATCH_ATTEMPTS {
            let out = self
                .client
                .batch_write_item()
                .request_items(table.clone(), pending)
                .send()
                .await
                .map_err(backend(table, "BatchWriteItem"))?;
            pending = out
                .unprocessed_items
                .and_then(|mut left| left.remove(table))
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            if attempt < BATCH_ATTEMPTS {
                tracing::debug!(left = pending.len(), "unprocessed batch items: retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Err(StoreError::Backend(format!(
            "DynamoDB BatchWriteItem on {table}: {} items still unprocessed after \
             {BATCH_ATTEMPTS} attempts",
            pending.len()
        )))
    }

    /// Moves the watermarks for `written`, the messages of one
    /// `BatchWriteItem`: once for every message and once per user, by the
    /// batch's counts, each recording the newest message of the call so
    /// far (`newest`, kept across batches), so that after the last batch
    /// `last` names the newest message of the whole call.
    async fn count_batch<'a>(&self, written: &[&'a Message], newest: &mut Newest<'a>) {
        let mut users: HashMap<&str, i64> = HashMap::new();
        for &m in written {
            *users.entry(m.user_id.as_str()).or_default() += 1;
            newest.see(m);
        }
        let Some(all) = newest.all else {
            return;
        };
        let all = Move {
            delta: i64::try_from(written.len()).unwrap_or(i64::MAX),
            change: Change::Added(all),
        };
        let users: Vec<_> = users
            .into_iter()
            .map(|(user_id, delta)| {
                let change = Change::Added(newest.users[user_id]);
                (user_id, Move { delta, change })
            })
            .collect();
        self.move_watermarks(&all, &users).await;
    }
}

/// The newest message of an `insert_many` so far, in all and per user.
#[derive(Default)]
struct Newest<'a> {
    all: Option<&'a Message>,
    users: HashMap<&'a str, &'a Message>,
}

impl<'a> Newest<'a> {
    fn see(&mut self, m: &'a Message) {
        let newer = |old: &Message| (m.created_at, &m.id) > (old.created_at, &old.id);
        if self.all.is_none_or(newer) {
            self.all = Some(m);
        }
        let user = self.users.entry(m.user_id.as_str()).or_insert(m);
        if newer(user) {
            *user = m;
        }
    }
}

#[async_trait]
impl MessageStore for Dynamo {
    async fn insert(&self, message: &Message) -> StoreResult<()> {
        self.insert_within(message, 0, None).await
    }

    /// The bytes are taken from the account first (one conditional
    /// `UpdateItem`, see the `quota` module), then the alias and
    /// the message are written; a write that fails gives them back.
    async fn insert_within(
        &self,
        message: &Message,
        bytes: u64,
        quota: Option<u64>,
    ) -> StoreResult<()> {
        if reserved(&message.id) {
            return Err(refuse(&message.id));
        }
        if bytes > 0 {
            self.take_quota(&message.user_id, bytes, quota).await?;
        }
        let written = self.put_message(message, bytes).await;
        if let Err(error) = written {
            self.give_quota_back(&message.user_id, bytes).await;
            return Err(error);
        }
        let step = Move {
            delta: 1,
            change: Change::Added(message),
        };
        self.move_watermarks(&step, &[(message.user_id.as_str(), step)])
            .await;
        Ok(())
    }

    async fn insert_many(&self, messages: &[Message]) -> StoreResult<()> {
        if let Some(m) = messages.iter().find(|m| reserved(&m.id)) {
            return Err(refuse(&m.id));
        }
        let mut requests = Vec::with_capacity(messages.len() * 2);
        for m in messages {
            requests.push((put(message_item(m))?, Some(m)));
            if !m.image.is_empty() {
                requests.push((put(alias_item(&m.image, &m.id))?, None));
            }
        }
        let mut newest = Newest::default();
        for chunk in requests.chunks(BATCH) {
            self.batch_write(chunk.iter().map(|(r, _)| r.clone()).collect())
                .await?;
            let written: Vec<&Message> = chunk.iter().filter_map(|(_, m)| *m).collect();
            self.count_batch(&written, &mut newest).await;
        }
        Ok(())
    }

    async fn page(
        &self,
        listing: &Listing,
        bound: &Bound,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match bound {
            Bound::Newest => {
                self.checked_first_page(listing, limit, || self.query_page(listing, bound, limit))
                    .await
            }
            Bound::Older(_) | Bound::Newer(_) => self.query_page(listing, bound, limit).await,
        }
    }

    async fn count(&self, listing: &Listing) -> StoreResult<u64> {
        self.counted(listing).await
    }

    async fn by_image(&self, image: &str) -> StoreResult<Option<Message>> {
        let table = &self.messages;
        if image.is_empty() {
            return Ok(None);
        }
        let Some(alias) = self.get_item(table, "message_id", &alias_id(image)).await? else {
            return Ok(None);
        };
        let target = get_s(&alias, table, "target")?;
        let found = MessageStore::get(self, &target).await?;
        Ok(found.filter(|m| m.image == image))
    }

    async fn all(&self) -> StoreResult<Vec<Message>> {
        self.query_all(&Listing::All).await
    }

    async fn by_user(&self, user_id: &str) -> StoreResult<Vec<Message>> {
        self.query_all(&Listing::User(user_id.to_owned())).await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Message>> {
        if reserved(id) {
            return Ok(None);
        }
        self.get_item(&self.messages, "message_id", id)
            .await?
            .map(|item| message_from(&item, &self.messages))
            .transpose()
    }

    async fn delete(&self, id: &str) -> StoreResult<bool> {
        let table = &self.messages;
        if reserved(id) {
            return Ok(false);
        }
        let out = self
            .client
            .delete_item()
            .table_name(table)
            .key("message_id", s(id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend(table, "DeleteItem"))?;
        let Some(old) = out.attributes else {
            return Ok(false);
        };
        if let Ok(image) = get_s(&old, table, "image") {
            self.delete_alias(&image, id).await;
        }
        match get_s(&old, table, "user_id") {
            Ok(user_id) => {
                self.give_quota_back(&user_id, number(old.get(BYTES))).await;
                let step = Move {
                    delta: -1,
                    change: Change::Removed(id),
                };
                self.move_watermarks(&step, &[(user_id.as_str(), step)])
                    .await;
            }
            Err(error) => tracing::error!(%error, id, "deleted a message without a user"),
        }
        Ok(true)
    }
}
