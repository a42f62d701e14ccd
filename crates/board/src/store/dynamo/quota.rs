//! The account storage quota on DynamoDB: a number `stored_bytes` on the
//! user item, and the admin listing of the largest accounts.
//!
//! dynalite has no `TransactWriteItems`, so the check and the addition are
//! one conditional `UpdateItem` on the user item, made *before* the
//! message is written: `ADD stored_bytes :b` only if `stored_bytes <=
//! quota - b` (or the attribute is missing: a user from before the quota,
//! who starts at 0; messages posted before it recorded no size). DynamoDB
//! applies conditional updates of one item one at a time, so concurrent
//! posts of one account, from any number of boards, never together take
//! the total past the quota. A message write that then fails gives its
//! bytes back; a board that dies between the two leaves the total too
//! high by one post (it errs towards refusing, never towards storing
//! more). A delete gives the bytes back after the row is gone (the same
//! error, the same direction, if that update fails).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Dynamo;
use super::items::{backend, get_s, n, s};
use crate::store::{AccountUsage, Listing, StoreError, StoreResult};

/// The attribute of the user item holding the account's media bytes.
pub(super) const STORED: &str = "stored_bytes";
/// The attribute of a message item holding its media bytes.
pub(super) const BYTES: &str = "bytes";
/// Users read per `Scan` page by `board accounts`.
const SCAN_PAGE: i32 = 500;

impl Dynamo {
    /// Adds `bytes` to `user_id`'s total if it stays within `quota`.
    ///
    /// # Errors
    /// [`StoreError::OverQuota`] when it would not (nothing changed);
    /// [`StoreError::Backend`] when there is no such user or DynamoDB
    /// fails.
    pub(super) async fn take_quota(
        &self,
        user_id: &str,
        bytes: u64,
        quota: Option<u64>,
    ) -> StoreResult<()> {
        let table = &self.users;
        let amount = i64::try_from(bytes).unwrap_or(i64::MAX);
        let mut update = self
            .client
            .update_item()
            .table_name(table)
            .key("id", s(user_id))
            .update_expression("ADD #s :b")
            .expression_attribute_names("#s", STORED)
            .expression_attribute_values(":b", n(amount));
        update = match quota {
            Some(quota) => {
                let Some(room) = quota.checked_sub(bytes) else {
                    return Err(StoreError::OverQuota {
                        stored: self.stored(user_id).await?,
                    });
                };
                update
                    .condition_expression(
                        "attribute_exists(username) AND (attribute_not_exists(#s) OR #s <= :room)",
                    )
                    .expression_attribute_values(
                        ":room",
                        n(i64::try_from(room).unwrap_or(i64::MAX)),
                    )
            }
            None => update.condition_expression("attribute_exists(username)"),
        };
        match update
            .send()
            .await
            .map_err(backend(table, "UpdateItem (stored bytes)"))
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict) => match self.user_stored(user_id).await? {
                Some(stored) => Err(StoreError::OverQuota { stored }),
                None => Err(StoreError::Backend(format!(
                    "no user {user_id} to store a message for"
                ))),
            },
            Err(e) => Err(e),
        }
    }

    /// Gives `bytes` back to `user_id`'s total. Best effort: a failure is
    /// logged and leaves the total too high (see the module docs).
    pub(super) async fn give_quota_back(&self, user_id: &str, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let table = &self.users;
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key("id", s(user_id))
            .update_expression("ADD #s :b")
            .condition_expression("attribute_exists(username)")
            .expression_attribute_names("#s", STORED)
            .expression_attribute_values(":b", n(-i64::try_from(bytes).unwrap_or(i64::MAX)))
            .send()
            .await
            .map_err(backend(table, "UpdateItem (stored bytes)"));
        match result {
            // The user is gone: nothing to give back to.
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(error) => {
                tracing::error!(%error, user_id, bytes, "stored bytes not given back");
            }
        }
    }

    /// The total of `user_id`, 0 when none was recorded; an error when
    /// there is no such user.
    async fn stored(&self, user_id: &str) -> StoreResult<u64> {
        self.user_stored(user_id)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("no user {user_id}")))
    }

    async fn user_stored(&self, user_id: &str) -> StoreResult<Option<u64>> {
        let Some(item) = self.get_item(&self.users, "id", user_id).await? else {
            return Ok(None);
        };
        if !item.contains_key("username") {
            return Ok(None);
        }
        Ok(Some(number(item.get(STORED))))
    }

    /// The `limit` users with the most stored bytes: a paginated `Scan` of
    /// `users` ([`SCAN_PAGE`] items a page, only three attributes), keeping
    /// the `limit` largest in a heap, then one `GetItem` per listed user
    /// for its message count (its watermark).
    pub(super) async fn largest_accounts(&self, limit: usize) -> StoreResult<Vec<AccountUsage>> {
        let table = &self.users;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut pages = self
            .client
            .scan()
            .table_name(table)
            .limit(SCAN_PAGE)
            .filter_expression("attribute_exists(username)")
            .projection_expression("id, username, #s")
            .expression_attribute_names("#s", STORED)
            .into_paginator()
            .send();
        // The smallest of the kept on top, so a larger one replaces it.
        let mut kept: BinaryHeap<Reverse<(u64, Reverse<String>, String)>> = BinaryHeap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(backend(table, "Scan"))?;
            for item in page.items.unwrap_or_default() {
                let id = get_s(&item, table, "id")?;
                let username = get_s(&item, table, "username")?;
                kept.push(Reverse((number(item.get(STORED)), Reverse(id), username)));
                if kept.len() > limit {
                    kept.pop();
                }
            }
        }
        let mut largest: Vec<_> = kept.into_iter().map(|Reverse(k)| k).collect();
        largest.sort_unstable_by(|a, b| b.cmp(a));
        let mut usage = Vec::with_capacity(largest.len());
        for (bytes, Reverse(user_id), username) in largest {
            let messages = self.counted(&Listing::User(user_id.clone())).await?;
            usage.push(AccountUsage {
                user_id,
                username,
                messages,
                bytes,
            });
        }
        Ok(usage)
    }
}

/// A non-negative number attribute, 0 when missing or malformed.
pub(super) fn number(value: Option<&aws_sdk_dynamodb::types::AttributeValue>) -> u64 {
    value
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(0, |v| u64::try_from(v).unwrap_or(0))
}
