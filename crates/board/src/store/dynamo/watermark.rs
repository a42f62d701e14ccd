//! Watermarks: strongly consistent message counts that tell an index
//! listing whether the index has caught up (see the module docs of
//! [`dynamo`](super), "Listing and index lag").

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{Item, backend, get_n, get_s, s};
use super::{Dynamo, store_error};
use crate::store::{StoreError, StoreResult};

/// The `message_id` prefix of watermark items in `messages`; message ids
/// are 32 hex digits, so none can start with it.
pub(super) const WATERMARK: &str = "count#";
/// The watermark of the `by_time` listing (every message).
pub(super) const WATERMARK_ALL: &str = "count#all";
/// The number attribute of a watermark item.
const N: &str = "n";
/// The first wait before querying a lagging index again; it doubles.
const FIRST_WAIT: Duration = Duration::from_millis(20);
/// The longest a listing waits, in all, for a lagging index.
pub(super) const LAG_BUDGET: Duration = Duration::from_secs(1);

/// The watermark id of `user_id`'s listing.
pub(super) fn user_watermark(user_id: &str) -> String {
    format!("{WATERMARK}user#{user_id}")
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

impl Dynamo {
    /// Adds `delta` to watermark `id`. With `create` a missing watermark is
    /// created (at `delta`), else it is left missing. Returns whether the
    /// watermark exists (so was changed).
    async fn bump(&self, id: &str, delta: i64, create: bool) -> StoreResult<bool> {
        let table = &self.messages;
        let mut update = self
            .client
            .update_item()
            .table_name(table)
            .key("message_id", s(id))
            .update_expression("ADD #n :d")
            .expression_attribute_names("#n", N)
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()));
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

    /// Moves the watermarks after a message of `user_id` was added (+1) or
    /// removed (-1). Only tables whose `count#all` exists (made or recounted
    /// by `board migrate`) are tracked; elsewhere nothing is written, so no
    /// watermark ever starts from a wrong count. A failure is logged, not
    /// returned: the message itself was written, and a watermark off by one
    /// costs slow listings (healed by `board migrate`), not data.
    pub(super) async fn move_watermarks(&self, user_id: &str, delta: i64) {
        let result = async {
            if self.bump(WATERMARK_ALL, delta, false).await? {
                // A user's first message creates their watermark; a removal
                // never creates one (it would start below zero).
                self.bump(&user_watermark(user_id), delta, delta > 0)
                    .await?;
            }
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(error) = result {
            tracing::error!(
                %error,
                user_id,
                delta,
                "could not move a listing watermark: listings may wait for the index \
                 until `board migrate` recounts"
            );
        }
    }

    /// The value of watermark `id`, read strongly consistently; `None` when
    /// it is missing or malformed (the check is then skipped).
    async fn watermark(&self, id: &str) -> StoreResult<Option<usize>> {
        let Some(item) = self.get_item(&self.messages, "message_id", id).await? else {
            return Ok(None);
        };
        match get_n(&item, &self.messages, N).map(usize::try_from) {
            Ok(Ok(n)) => Ok(Some(n)),
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(
                    watermark = id,
                    "malformed or negative watermark: not checked"
                );
                Ok(None)
            }
        }
    }

    /// Runs `query` until it returns as many items as watermark `id` says
    /// there are, waiting 20, 40, 80 ms… up to [`LAG_BUDGET`] in all; then
    /// returns the latest result with a warning. The watermark is read
    /// again before every attempt, so writes racing the listing are caught
    /// up with rather than waited out.
    pub(super) async fn checked<T, F, Fut>(&self, id: &str, mut query: F) -> StoreResult<Vec<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<Vec<T>>>,
    {
        let mut waits = waits();
        let mut attempts = 1u32;
        loop {
            let Some(expected) = self.watermark(id).await? else {
                return query().await;
            };
            let found = query().await?;
            if found.len() == expected {
                return Ok(found);
            }
            let Some(wait) = waits.next() else {
                tracing::warn!(
                    watermark = id,
                    expected,
                    found = found.len(),
                    attempts,
                    "the index still lags its table after {} ms: listing what it has",
                    LAG_BUDGET.as_millis()
                );
                return Ok(found);
            };
            tracing::debug!(
                watermark = id,
                expected,
                found = found.len(),
                "the index lags its table: querying again"
            );
            tokio::time::sleep(wait).await;
            attempts += 1;
        }
    }

    /// Recounts every watermark from a strongly consistent scan of
    /// `messages` and writes those that differ (a missing one counts as
    /// different; a user without messages gets 0). Returns how many were
    /// written. Writes racing the scan can leave a watermark off by one:
    /// run it again when the board is quiet.
    pub(super) async fn recount(&self) -> StoreResult<usize> {
        let table = &self.messages;
        let mut pages = self
            .client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .projection_expression("message_id, user_id, #n")
            .expression_attribute_names("#n", N)
            .into_paginator()
            .items()
            .send();
        let mut counted: HashMap<String, i64> = HashMap::from([(WATERMARK_ALL.to_owned(), 0)]);
        let mut stored: HashMap<String, Option<i64>> = HashMap::new();
        while let Some(item) = pages.next().await {
            let item: Item = item.map_err(backend(table, "Scan"))?;
            let id = get_s(&item, table, "message_id")?;
            if id.starts_with(WATERMARK) {
                stored.insert(id, get_n(&item, table, N).ok());
                continue;
            }
            let user_id = get_s(&item, table, "user_id")?;
            *counted.entry(WATERMARK_ALL.to_owned()).or_default() += 1;
            *counted.entry(user_watermark(&user_id)).or_default() += 1;
        }
        for id in stored.keys() {
            counted.entry(id.clone()).or_insert(0);
        }
        let mut written = 0;
        for (id, n) in counted {
            if stored.get(&id).copied().flatten() == Some(n) {
                continue;
            }
            self.client
                .put_item()
                .table_name(table)
                .item("message_id", s(&id))
                .item(N, AttributeValue::N(n.to_string()))
                .send()
                .await
                .map_err(backend(table, "PutItem (watermark)"))?;
            written += 1;
        }
        Ok(written)
    }
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
    }
}
