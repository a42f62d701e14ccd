//! Watermarks: strongly consistent listing counters that also name the
//! latest write, which tells a newest-first page whether the index has
//! caught up (see the module docs of [`dynamo`](super), "Pages, counts
//! and index lag").

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{ALIAS, Item, backend, get_n, get_s, s};
use super::{Dynamo, store_error};
use crate::store::{Listing, Message, Position, StoreError, StoreResult};

/// The `message_id` prefix of watermark items in `messages`; message ids
/// are 32 hex digits, so none can start with it.
pub(super) const WATERMARK: &str = "count#";
/// The watermark of the `by_time` listing (every message).
pub(super) const WATERMARK_ALL: &str = "count#all";
/// The number attribute of a watermark item.
const N: &str = "n";
/// The latest message added: `"<created_at>:<id>"`.
const LAST: &str = "last";
/// The id of the latest message removed.
const GONE: &str = "gone";
/// The first wait before querying a lagging index again; it doubles.
const FIRST_WAIT: Duration = Duration::from_millis(20);
/// The longest a page waits, in all, for a lagging index.
pub(super) const LAG_BUDGET: Duration = Duration::from_secs(1);

/// The watermark id of `user_id`'s listing.
pub(super) fn user_watermark(user_id: &str) -> String {
    format!("{WATERMARK}user#{user_id}")
}

/// The watermark id of `listing`.
pub(super) fn watermark_of(listing: &Listing) -> String {
    match listing {
        Listing::All => WATERMARK_ALL.to_owned(),
        Listing::User(id) => user_watermark(id),
    }
}

/// The waits between attempts: 20, 40, 80 ms… the last one cut so that
/// they add up to [`LAG_BUDGET`].
fn waits() -> impl Iterator<Item = Duration> {
    let mut total = Duration::ZERO;
    let mut next = FIRST_WAIT;
    std::iter::from_fn(move || {
        let wait = next.min(LAG_BUDGET.saturating_sub(total));
        if wait.is_zero() {
            return None;
        }
        total += wait;
        next *= 2;
        Some(wait)
    })
}

/// What a write did to a listing, as its watermark records it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change<'a> {
    /// Messages were added; this is the newest of them.
    Added(&'a Message),
    /// This message was removed.
    Removed(&'a str),
}

/// One watermark move: `delta` messages, and the write to record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Move<'a> {
    pub(super) delta: i64,
    pub(super) change: Change<'a>,
}

/// A watermark as read: the count and the latest writes.
#[derive(Debug, Default)]
pub(super) struct Mark {
    /// How many messages the listing holds (`None`: malformed).
    n: Option<u64>,
    /// The latest message added.
    last: Option<Position>,
    /// The id of the latest message removed.
    gone: Option<String>,
}

impl Mark {
    fn from_item(item: &Item, table: &str, id: &str) -> Self {
        let n = get_n(item, table, N)
            .ok()
            .and_then(|n| u64::try_from(n).ok());
        if n.is_none() {
            tracing::warn!(watermark = id, "malformed or negative watermark count");
        }
        let last = get_s(item, table, LAST).ok().and_then(|value| {
            let (at, id) = value.split_once(':')?;
            Some(Position {
                created_at: at.parse().ok()?,
                id: id.to_owned(),
            })
        });
        Self {
            n,
            last,
            gone: get_s(item, table, GONE).ok(),
        }
    }

    /// Whether `page` (the first of the listing, asked for `limit`) shows
    /// the latest removal. The latest addition is [`shows_last`](Self::shows_last).
    fn shows_gone(&self, page: &[Message]) -> bool {
        self.gone
            .as_ref()
            .is_none_or(|gone| !page.iter().any(|m| &m.id == gone))
    }

    /// Whether `page` shows the latest addition, as far as the page alone
    /// tells: it is there, or the page is full of newer messages (so it
    /// belongs further down), or it was the latest removal too. False
    /// means unknown: the message may have been removed since.
    fn shows_last(&self, page: &[Message], limit: u32) -> bool {
        let Some(last) = &self.last else {
            return true;
        };
        let full = u32::try_from(page.len()).is_ok_and(|len| len >= limit);
        let oldest = page.iter().map(|m| m.created_at).min();
        page.iter().any(|m| m.id == last.id)
            || (full && oldest.is_some_and(|at| at > last.created_at))
            || self.gone.as_ref() == Some(&last.id)
    }
}

impl Dynamo {
    /// Applies `change` to watermark `id`: `ADD n :delta` and `SET last`
    /// or `SET gone`, in one `UpdateItem`. With `create` a missing
    /// watermark is created (at `delta`), else it is left missing. Returns
    /// whether the watermark exists (so was changed).
    async fn bump(&self, id: &str, step: &Move<'_>, create: bool) -> StoreResult<bool> {
        let table = &self.messages;
        let (set, value) = match step.change {
            Change::Added(m) => (LAST, format!("{}:{}", m.created_at, m.id)),
            Change::Removed(gone) => (GONE, gone.to_owned()),
        };
        let mut update = self
            .client
            .update_item()
            .table_name(table)
            .key("message_id", s(id))
            .update_expression("ADD #n :d SET #w = :w")
            .expression_attribute_names("#n", N)
            .expression_attribute_names("#w", set)
            .expression_attribute_values(":d", AttributeValue::N(step.delta.to_string()))
            .expression_attribute_values(":w", s(&value));
        if !create {
            update = update.condition_expression("attribute_exists(#n)");
        }
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) => match store_error(table, "UpdateItem (watermark)", &e) {
                StoreError::Conflict => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Moves the watermarks after a write: `all` on `count#all`, and each
    /// `(user_id, move)` on that user's. Only tables whose `count#all`
    /// exists (made or recounted by `board migrate`) are tracked;
    /// elsewhere nothing is written, so no watermark ever starts from a
    /// wrong count. A failure is logged, not returned: the messages were
    /// written, and a watermark off by one costs wrong counts and slow
    /// first pages (healed by `board migrate`), not data.
    pub(super) async fn move_watermarks(&self, all: &Move<'_>, users: &[(&str, Move<'_>)]) {
        let result = async {
            if self.bump(WATERMARK_ALL, all, false).await? {
                for (user_id, step) in users {
                    // A user's first message creates their watermark; a
                    // removal never creates one (it would start below zero).
                    self.bump(&user_watermark(user_id), step, step.delta > 0)
                        .await?;
                }
            }
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(error) = result {
            tracing::error!(
                %error,
                delta = all.delta,
                "could not move a listing watermark: counts may be off and first pages \
                 may wait for the index until `board migrate` recounts"
            );
        }
    }

    /// Watermark `id`, read strongly consistently; `None` when missing.
    pub(super) async fn mark(&self, id: &str) -> StoreResult<Option<Mark>> {
        Ok(self
            .get_item(&self.messages, "message_id", id)
            .await?
            .map(|item| Mark::from_item(&item, &self.messages, id)))
    }

    /// The count of `listing`: its watermark's `n`, 0 when missing.
    pub(super) async fn counted(&self, listing: &Listing) -> StoreResult<u64> {
        Ok(self
            .mark(&watermark_of(listing))
            .await?
            .and_then(|mark| mark.n)
            .unwrap_or(0))
    }

    /// Whether `page` shows `mark`'s latest writes; asks the table (one
    /// strongly consistent `GetItem`) only when the page alone cannot
    /// tell whether the latest addition is missing from the index or was
    /// removed since. `removed` remembers a removal already seen.
    async fn caught_up(
        &self,
        mark: &Mark,
        page: &[Message],
        limit: u32,
        removed: &mut Option<String>,
    ) -> StoreResult<bool> {
        if !mark.shows_gone(page) {
            return Ok(false);
        }
        if mark.shows_last(page, limit) {
            return Ok(true);
        }
        let Some(last) = &mark.last else {
            return Ok(true);
        };
        if removed.as_ref() == Some(&last.id) {
            return Ok(true);
        }
        // Message ids are never reused: once gone, it stays gone.
        if self
            .get_item(&self.messages, "message_id", &last.id)
            .await?
            .is_none()
        {
            *removed = Some(last.id.clone());
            return Ok(true);
        }
        Ok(false)
    }

    /// The first page of `listing`, by `query`, once it shows the latest
    /// addition and removal its watermark records; waiting 20, 40, 80 ms…
    /// up to [`LAG_BUDGET`] in all, then returning the latest result with
    /// a warning. The watermark is read again before every attempt, so
    /// writes racing the page are caught up with rather than waited out.
    pub(super) async fn checked_first_page<F, Fut>(
        &self,
        listing: &Listing,
        limit: u32,
        mut query: F,
    ) -> StoreResult<Vec<Message>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<Vec<Message>>>,
    {
        let id = watermark_of(listing);
        let mut waits = waits();
        let mut attempts = 1u32;
        let mut removed = None;
        loop {
            let Some(mark) = self.mark(&id).await? else {
                return query().await;
            };
            let page = query().await?;
            if self.caught_up(&mark, &page, limit, &mut removed).await? {
                return Ok(page);
            }
            let Some(wait) = waits.next() else {
                tracing::warn!(
                    watermark = id,
                    last = ?mark.last,
                    gone = ?mark.gone,
                    attempts,
                    "the index still lags its table after {} ms: showing what it has",
                    LAG_BUDGET.as_millis()
                );
                return Ok(page);
            };
            tracing::debug!(watermark = id, "the index lags its table: querying again");
            self.lag_waits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            attempts += 1;
        }
    }

    /// Recounts every watermark from a strongly consistent scan of
    /// `messages` and writes the counts that differ (a missing one counts
    /// as different; a user without messages gets 0), and writes the image
    /// aliases that are missing (messages stored before aliases existed).
    /// Writes racing the scan can leave a watermark off by one: run it
    /// again when the board is quiet.
    pub(super) async fn recount(&self) -> StoreResult<Recount> {
        let table = &self.messages;
        let mut pages = self
            .client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .projection_expression("message_id, user_id, image, target, #n")
            .expression_attribute_names("#n", N)
            .into_paginator()
            .items()
            .send();
        let mut counted: HashMap<String, i64> = HashMap::from([(WATERMARK_ALL.to_owned(), 0)]);
        let mut stored: HashMap<String, Option<i64>> = HashMap::new();
        // image name -> message id, from messages and from aliases
        let mut images: HashMap<String, String> = HashMap::new();
        let mut aliases: HashMap<String, String> = HashMap::new();
        while let Some(item) = pages.next().await {
            let item: Item = item.map_err(backend(table, "Scan"))?;
            let id = get_s(&item, table, "message_id")?;
            if id.starts_with(WATERMARK) {
                stored.insert(id, get_n(&item, table, N).ok());
                continue;
            }
            if let Some(image) = id.strip_prefix(ALIAS) {
                aliases.insert(image.to_owned(), get_s(&item, table, "target")?);
                continue;
            }
            let user_id = get_s(&item, table, "user_id")?;
            *counted.entry(WATERMARK_ALL.to_owned()).or_default() += 1;
            *counted.entry(user_watermark(&user_id)).or_default() += 1;
            if let Ok(image) = get_s(&item, table, "image") {
                images.insert(image, id);
            }
        }
        for id in stored.keys() {
            counted.entry(id.clone()).or_insert(0);
        }
        let mut done = Recount::default();
        for (id, n) in counted {
            if stored.get(&id).copied().flatten() == Some(n) {
                continue;
            }
            // `SET`, not a put: the latest writes recorded stay.
            self.client
                .update_item()
                .table_name(table)
                .key("message_id", s(&id))
                .update_expression("SET #n = :n")
                .expression_attribute_names("#n", N)
                .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
                .send()
                .await
                .map_err(backend(table, "UpdateItem (watermark)"))?;
            done.watermarks += 1;
        }
        for (image, message_id) in images {
            if aliases.get(&image) == Some(&message_id) {
                continue;
            }
            self.put_alias(&image, &message_id).await?;
            done.aliases += 1;
        }
        Ok(done)
    }
}

/// What [`Dynamo::recount`] wrote.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Recount {
    /// Watermark counts corrected.
    pub(super) watermarks: usize,
    /// Image aliases written for messages that lacked one.
    pub(super) aliases: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_and_add_up_to_the_budget() {
        let waits: Vec<_> = waits().map(|w| w.as_millis()).collect();
        assert_eq!(waits, [20, 40, 80, 160, 320, 380]);
        assert_eq!(waits.iter().sum::<u128>(), LAG_BUDGET.as_millis());
    }

    #[test]
    fn watermark_ids_cannot_be_message_ids() {
        assert!(user_watermark("u").starts_with(WATERMARK));
        assert!(WATERMARK_ALL.starts_with(WATERMARK));
        assert!(!WATERMARK.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!ALIAS.chars().all(|c| c.is_ascii_hexdigit()));
    }

    fn at(id: &str, created_at: i64) -> Message {
        Message {
            id: id.into(),
            user_id: "u".into(),
            author: String::new(),
            location: String::new(),
            description: String::new(),
            image: String::new(),
            thumbnail: String::new(),
            created_at,
        }
    }

    fn mark(last: Option<(i64, &str)>, gone: Option<&str>) -> Mark {
        Mark {
            n: Some(0),
            last: last.map(|(created_at, id)| Position {
                created_at,
                id: id.into(),
            }),
            gone: gone.map(Into::into),
        }
    }

    #[test]
    fn a_page_shows_the_latest_writes() {
        let page = [at("c", 30), at("b", 20)];
        // Nothing recorded, the last addition on the page, or removed.
        assert!(mark(None, None).shows_last(&page, 2));
        assert!(mark(Some((30, "c")), None).shows_last(&page, 5));
        assert!(mark(Some((40, "d")), Some("d")).shows_last(&page, 5));
        // A full page of newer messages: the addition is further down.
        assert!(mark(Some((10, "a")), None).shows_last(&page, 2));
        // Not full, or a tie with the oldest: the page cannot tell.
        assert!(!mark(Some((10, "a")), None).shows_last(&page, 3));
        assert!(!mark(Some((20, "x")), None).shows_last(&page, 2));
        assert!(!mark(Some((40, "d")), None).shows_last(&page, 5));
        // A removal still listed.
        assert!(!mark(None, Some("b")).shows_gone(&page));
        assert!(mark(None, Some("z")).shows_gone(&page));
    }
}
