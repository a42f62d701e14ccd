//! Posting, within budgets: how much one account and one client address
//! may post and upload.
//!
//! Without a bound, one logged-in account posted 200 messages (400 media
//! files) in 0.3 s. Every post now takes from four budgets (see
//! [`crate::budget`]), each an allowance per window, a short window for
//! the burst and a long one for the day:
//!
//! | budget | default | key |
//! | --- | --- | --- |
//! | posts per address | 60 in 10 min, 600 a day | `posts:address:{ip}` |
//! | bytes per address | 200 MiB in 10 min, 2 GiB a day | `post-bytes:address:{ip}` |
//! | posts per account | 30 in 10 min, 200 a day | `posts:account:{id}` |
//! | bytes per account | 100 MiB in 10 min, 1 GiB a day | `post-bytes:account:{id}` |
//!
//! Bytes are what a post stores: the image as kept and its thumbnail. The
//! address comes first, so a client past its address budget makes no new
//! keys, however many accounts it has.
//!
//! The rule: a post's budgets are *taken* before anything is stored
//! ([`Data::post`]): `inc` is atomic, so of 200 posts at once at most the
//! allowance get through, and a refused post stores nothing (no file, no
//! row) and gives back what it took from the budgets it passed. A post
//! whose write fails gives its take back too. Before the form is read and
//! the image decoded, [`Data::may_post`] looks (without taking) whether a
//! budget is spent already, so a flood past its budget costs neither.
//! The counters live in the cache: a fleet sharing it shares the budgets.
//!
//! # The account storage quota
//!
//! Budgets bound a rate; the quota (`--account-quota`, 200 MiB by
//! default) bounds what one account stores in all, whenever it posted
//! it. The total lives in the database with the messages (SQLite
//! `users.stored_bytes`, DynamoDB the user item's `stored_bytes`), and a
//! post's bytes are checked and added in one atomic database operation
//! with (SQLite) or just before (DynamoDB) its row: concurrent posts of
//! one account, from any number of threads or boards, never take the
//! total past the quota (the bound is exact, zero overshoot). The files
//! are written first, so a refused post removes them again: nothing of
//! it stays. A delete gives its bytes back. Refused posts also give back
//! what they took from the budgets.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::budget::{Allowance, Budgets, Over};
use crate::media::MediaName;
use crate::store::{AccountUsage, Message, StoreError};

use super::{Data, DataError, NewMessage};

const MINUTES_10: Duration = Duration::from_secs(600);
const DAY: Duration = Duration::from_secs(86_400);
const MIB: u64 = 1 << 20;
/// `--account-quota`'s default: 200 MiB, some 200 posts of photos as
/// stored (at most 2048 px a side) and far past what a person posting by
/// hand stores, while a full account costs the board a bounded amount.
pub const DEFAULT_ACCOUNT_QUOTA: u64 = 200 * MIB;

/// The allowances of the post and upload budgets (`--post-budget-*`,
/// `--upload-budget-*`; an empty list turns that budget off) and the
/// account storage quota (`--account-quota`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostLimits {
    /// Most media bytes one account may store in all; `None`: no quota.
    pub account_quota: Option<u64>,
    /// Posts per account.
    pub posts_per_account: Vec<Allowance>,
    /// Posts per client address.
    pub posts_per_address: Vec<Allowance>,
    /// Stored bytes per account.
    pub bytes_per_account: Vec<Allowance>,
    /// Stored bytes per client address.
    pub bytes_per_address: Vec<Allowance>,
}

impl Default for PostLimits {
    /// The defaults of the module docs: a person posting by hand never
    /// meets them.
    fn default() -> Self {
        Self {
            account_quota: Some(DEFAULT_ACCOUNT_QUOTA),
            posts_per_account: vec![Allowance::new(30, MINUTES_10), Allowance::new(200, DAY)],
            posts_per_address: vec![Allowance::new(60, MINUTES_10), Allowance::new(600, DAY)],
            bytes_per_account: vec![
                Allowance::new(100 * MIB, MINUTES_10),
                Allowance::new(1024 * MIB, DAY),
            ],
            bytes_per_address: vec![
                Allowance::new(200 * MIB, MINUTES_10),
                Allowance::new(2048 * MIB, DAY),
            ],
        }
    }
}

/// Whose budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The account's.
    Account,
    /// The client address's.
    Address,
}

/// What ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// The number of posts.
    Posts,
    /// The bytes stored.
    Bytes,
}

/// A post refused because its account's storage is full; nothing was
/// stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("account quota full: {stored} of {quota} bytes stored, the post needs {bytes}")]
pub struct OverQuota {
    /// The quota.
    pub quota: u64,
    /// What the account stores already.
    pub stored: u64,
    /// What the refused post would have stored.
    pub bytes: u64,
}

/// A post refused by a budget; nothing was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{scope:?} {spent:?} budget spent ({allowance}); retry after {retry_after:?}")]
pub struct OverBudget {
    /// Whose budget.
    pub scope: Scope,
    /// Which.
    pub spent: Spent,
    /// The allowance that ran out.
    pub allowance: Allowance,
    /// Until its window ends.
    pub retry_after: Duration,
}

/// The budgets posts take from, and what they refused.
pub(super) struct PostBudget {
    budgets: Budgets,
    limits: PostLimits,
    refused: Arc<Refused>,
}

#[derive(Debug, Default)]
struct Refused {
    account: AtomicU64,
    address: AtomicU64,
    quota: AtomicU64,
}

/// One budget a post takes from.
struct Take {
    key: String,
    amount: u64,
    allowance: Allowance,
    scope: Scope,
    spent: Spent,
}

impl PostBudget {
    pub(super) fn new(budgets: Budgets, limits: PostLimits) -> Self {
        Self {
            budgets,
            limits,
            refused: Arc::default(),
        }
    }

    /// Every budget a post of `bytes` by `user_id` from `address` takes
    /// from, the address's first.
    fn takes(&self, user_id: &str, address: IpAddr, bytes: u64) -> Vec<Take> {
        let limits = &self.limits;
        let scopes = [
            (
                Scope::Address,
                address.to_canonical().to_string(),
                &limits.posts_per_address,
                &limits.bytes_per_address,
            ),
            (
                Scope::Account,
                user_id.to_owned(),
                &limits.posts_per_account,
                &limits.bytes_per_account,
            ),
        ];
        let mut takes = Vec::new();
        for (scope, who, posts, byte_budgets) in scopes {
            let name = match scope {
                Scope::Account => "account",
                Scope::Address => "address",
            };
            for (spent, allowances, amount, kind) in [
                (Spent::Posts, posts, 1, "posts"),
                (Spent::Bytes, byte_budgets, bytes, "post-bytes"),
            ] {
                takes.extend(allowances.iter().map(|&allowance| Take {
                    key: format!("{kind}:{name}:{who}"),
                    amount,
                    allowance,
                    scope,
                    spent,
                }));
            }
        }
        takes
    }

    fn refused(&self, over: OverBudget) -> DataError {
        let counter = match over.scope {
            Scope::Account => &self.refused.account,
            Scope::Address => &self.refused.address,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%over, "post refused");
        DataError::OverBudget(over)
    }

    /// Refused if a budget is spent already (a look, not a take).
    async fn check(&self, user_id: &str, address: IpAddr) -> Result<(), DataError> {
        for take in self.takes(user_id, address, 0) {
            if let Err(Over { retry_after }) = self.budgets.check(&take.key, take.allowance).await {
                return Err(self.refused(OverBudget {
                    scope: take.scope,
                    spent: take.spent,
                    allowance: take.allowance,
                    retry_after,
                }));
            }
        }
        Ok(())
    }

    /// Takes a post of `bytes` from every budget, or from none.
    async fn reserve(
        &self,
        user_id: &str,
        address: IpAddr,
        bytes: u64,
    ) -> Result<Vec<Take>, DataError> {
        let takes = self.takes(user_id, address, bytes);
        for (n, take) in takes.iter().enumerate() {
            if let Err(Over { retry_after }) = self
                .budgets
                .take(&take.key, take.amount, take.allowance)
                .await
            {
                self.give_back(&takes[..=n]).await;
                return Err(self.refused(OverBudget {
                    scope: take.scope,
                    spent: take.spent,
                    allowance: take.allowance,
                    retry_after,
                }));
            }
        }
        Ok(takes)
    }

    async fn give_back(&self, takes: &[Take]) {
        for take in takes {
            self.budgets
                .give_back(&take.key, take.amount, take.allowance)
                .await;
        }
    }
}

impl Data {
    /// Whether `user_id` posting from `address` is within the post and
    /// upload budgets now: a cheap look before the form is read and the
    /// image decoded. [`Data::post`] takes from them and decides.
    ///
    /// # Errors
    /// [`DataError::OverBudget`] when a budget is spent.
    pub async fn may_post(&self, user_id: &str, address: IpAddr) -> Result<(), DataError> {
        self.posting.check(user_id, address).await
    }

    /// Posts refused by a budget: (the account's, the address's).
    pub fn posts_refused(&self) -> (u64, u64) {
        let refused = &self.posting.refused;
        (
            refused.account.load(Ordering::Relaxed),
            refused.address.load(Ordering::Relaxed),
        )
    }

    /// Posts refused because their account's storage quota was full.
    pub fn posts_over_quota(&self) -> u64 {
        self.posting.refused.quota.load(Ordering::Relaxed)
    }

    /// The `limit` accounts storing the most media bytes, largest first
    /// (`board accounts --largest`): an admin read, never cached.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn largest_accounts(&self, limit: usize) -> Result<Vec<AccountUsage>, DataError> {
        Ok(self.stores.users.largest(limit).await?)
    }

    /// Posts a message within its budgets and its account's quota: takes
    /// the post from the budgets (see the module docs), stores the image
    /// and thumbnail, then the row with its size added to the account's
    /// total (refused if that passes the quota), and forgets every cached
    /// value the new message changes. If the row cannot be written the
    /// files are removed again and the budgets get the post back (not when
    /// the quota refused it: that attempt's work was done and stays spent).
    ///
    /// # Errors
    /// [`DataError::OverBudget`] when a budget is spent,
    /// [`DataError::OverQuota`] when the account's storage is full
    /// (nothing stored either way); when the media store or the database
    /// fails (nothing posted).
    pub async fn post(&self, new: NewMessage, now_ms: i64) -> Result<Message, DataError> {
        let bytes = (new.image.1.len() + new.thumbnail.1.len()) as u64;
        let taken = self
            .posting
            .reserve(&new.user_id, new.address, bytes)
            .await?;
        let posted = self.store_post(new, now_ms).await;
        // A post the quota refused stays spent: its image was decoded,
        // thumbnailed and written before the database said no, so a full
        // account retrying must not get that work for free.
        if matches!(&posted, Err(e) if !matches!(e, DataError::OverQuota(_))) {
            self.posting.give_back(&taken).await;
        }
        posted
    }

    async fn store_post(&self, new: NewMessage, now_ms: i64) -> Result<Message, DataError> {
        let new_bytes = (new.image.1.len(), new.thumbnail.1.len());
        let (full, thumb) = MediaName::fresh_pair(new.image.0, new.thumbnail.0);
        self.media
            .put(&full, new.image.1)
            .await
            .map_err(|e| DataError::Media(e.to_string()))?;
        if let Err(e) = self.media.put(&thumb, new.thumbnail.1).await {
            self.remove_files(&[&full]).await;
            return Err(DataError::Media(e.to_string()));
        }
        let message = Message {
            id: crate::auth::random_hex(16),
            user_id: new.user_id,
            author: new.author,
            location: new.location,
            description: new.description,
            image: full.as_str().to_owned(),
            thumbnail: thumb.as_str().to_owned(),
            created_at: now_ms,
        };
        let messages = &self.stores.messages;
        let quota = self.settings.posting.account_quota;
        let bytes = (new_bytes.0 + new_bytes.1) as u64;
        let inserted = self
            .durably(self.message_intents(&message)?, async {
                match messages.insert_within(&message, bytes, quota).await {
                    Ok(()) => Ok(()),
                    Err(StoreError::OverQuota { stored }) => Err(DataError::OverQuota(OverQuota {
                        quota: quota.unwrap_or(u64::MAX),
                        stored,
                        bytes,
                    })),
                    Err(e) => Err(e.into()),
                }
            })
            .await;
        if let Err(DataError::OverQuota(over)) = &inserted {
            self.posting.refused.quota.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%over, "post refused");
        }
        if let Err(e) = inserted {
            self.remove_files(&[&full, &thumb]).await;
            return Err(e);
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memocache::{Cache, CacheConfig, Clock};

    fn budget(limits: PostLimits) -> (PostBudget, Clock) {
        let clock = Clock::manual();
        let cache = Cache::with_clock(CacheConfig::default(), clock.clone()).expect("cache");
        (PostBudget::new(Budgets::new(cache), limits), clock)
    }

    fn ip(last: u8) -> IpAddr {
        [127, 0, 0, last].into()
    }

    fn small() -> PostLimits {
        PostLimits {
            account_quota: None,
            posts_per_account: vec![Allowance::new(3, MINUTES_10), Allowance::new(5, DAY)],
            posts_per_address: vec![Allowance::new(4, MINUTES_10)],
            bytes_per_account: vec![Allowance::new(1000, MINUTES_10)],
            bytes_per_address: vec![],
        }
    }

    #[tokio::test]
    async fn parallel_posts_get_at_most_the_burst_and_refusals_take_nothing() {
        let (budget, _) = budget(small());
        let posts = (0..50).map(|_| budget.reserve("ada", ip(1), 10));
        let granted = futures_util::future::join_all(posts)
            .await
            .into_iter()
            .filter(Result::is_ok)
            .count();
        assert_eq!(granted, 3);
        // The refused 47 gave back what they took from the address.
        assert!(budget.reserve("bob", ip(1), 10).await.is_ok());
        assert_eq!(budget.refused.account.load(Ordering::Relaxed), 47);
    }

    #[tokio::test]
    async fn the_burst_window_ends_but_the_day_holds() {
        let (budget, clock) = budget(small());
        for _ in 0..3 {
            budget.reserve("ada", ip(1), 10).await.expect("burst");
        }
        let Err(DataError::OverBudget(over)) = budget.reserve("ada", ip(2), 10).await else {
            panic!("not refused");
        };
        assert_eq!((over.scope, over.spent), (Scope::Account, Spent::Posts));
        assert_eq!(over.retry_after, MINUTES_10);
        clock.advance(MINUTES_10);
        for _ in 0..2 {
            budget.reserve("ada", ip(2), 10).await.expect("next burst");
        }
        let Err(DataError::OverBudget(over)) = budget.check("ada", ip(3)).await else {
            panic!("the day's 5 are spent");
        };
        assert_eq!(over.allowance, Allowance::new(5, DAY));
        assert_eq!(over.retry_after, DAY - MINUTES_10);
    }

    #[tokio::test]
    async fn bytes_are_budgeted_and_one_address_serves_many_accounts_within_its_own() {
        let (budget, _) = budget(small());
        budget.reserve("ada", ip(1), 900).await.expect("900 bytes");
        let Err(DataError::OverBudget(over)) = budget.reserve("ada", ip(1), 200).await else {
            panic!("over 1000 bytes");
        };
        assert_eq!(over.spent, Spent::Bytes);
        // The address: 4 posts in 10 minutes, whoever posts them.
        for user in ["bob", "cy", "di"] {
            budget
                .reserve(user, ip(1), 1)
                .await
                .expect("address has room");
        }
        let Err(DataError::OverBudget(over)) = budget.reserve("eve", ip(1), 1).await else {
            panic!("address spent");
        };
        assert_eq!(over.scope, Scope::Address);
        assert!(budget.reserve("eve", ip(2), 1).await.is_ok());
    }
}
