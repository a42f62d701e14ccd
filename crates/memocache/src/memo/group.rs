//! Groups: every entry of a memo whose key starts with the same first
//! argument (one instance of a memoized method, one user's pages), forgotten
//! together in O(1) by [`Memo::forget_group`].
//!
//! # How
//!
//! A grouped memo keeps a version per group next to its own version, and
//! files an entry under their sum: `{prefix}{memo}:{memo version + group
//! version}:{hash}` in a shared store, the same sum folded into the key of
//! the in-process tier. Forgetting a group bumps its version (one `INCR` of
//! `{prefix}{memo}\x1f{group}:ver`), so every entry of the group becomes
//! unreachable at once, as [`Memo::forget_all`] does for the whole memo.
//! Both versions only grow and every bump raises the sum of the groups it
//! touches, so a sum is never reused for a group: an old entry is never
//! found again.
//!
//! Other processes hear a group's bump on the bus (an invalidation of the
//! group's name) and raise their mirror of its version; an outbox records
//! it as [`Intent::All`] of the group's name, delivered like any other.
//!
//! # Costs and bounds
//!
//! - A hit of a grouped memo looks the group's version up in this
//!   process's table (a read lock and a hash lookup) besides the key.
//! - With a shared store, a group this process has not seen yet costs one
//!   more read on its first miss (the memo's and the group's version in one
//!   batch), and a grouped memo without a trusted in-process tier reads
//!   both versions before the value: two round trips where an ungrouped
//!   memo's miss takes one.
//! - This process remembers at most [`MAX_GROUPS`] groups per memo. When
//!   it is full it forgets them all and empties the memo's in-process tier
//!   (the shared store keeps the values and the versions); without a
//!   shared store, where the table is the truth, it also moves the memo's
//!   version past every sum used so far.

use serde::Serialize;

use super::{Memo, MemoBuilder, MemoShared, Part};
use crate::error::Result;
use crate::intent::Intent;
use crate::key::{KeyHash, group_name};
use crate::local::PassThroughHash;
use crate::reach::Reach;
use crate::registry::MemoControl;
use crate::value::CacheValue;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// The groups one process remembers per memo.
pub(crate) const MAX_GROUPS: usize = 65_536;

/// A key whose first part names the group it belongs to: a tuple, grouped
/// by its first element. Build the memo with
/// [`MemoBuilder::grouped`](crate::MemoBuilder::grouped) to forget a group
/// with [`Memo::forget_group`].
///
/// ```
/// use memocache::GroupedKey;
/// let key = (7_u64, "page-2".to_owned());
/// assert_eq!(*key.group(), 7);
/// ```
pub trait GroupedKey {
    /// The first part of the key: what [`Memo::forget_group`] takes.
    type Group: Serialize + ?Sized;

    /// The group this key belongs to.
    fn group(&self) -> &Self::Group;
}

macro_rules! grouped_tuple {
    ($($rest:ident),+) => {
        impl<A: Serialize, $($rest),+> GroupedKey for (A, $($rest),+) {
            type Group = A;

            fn group(&self) -> &A {
                &self.0
            }
        }
    };
}

grouped_tuple!(B);
grouped_tuple!(B, C);
grouped_tuple!(B, C, D);
grouped_tuple!(B, C, D, E);
grouped_tuple!(B, C, D, E, F);
grouped_tuple!(B, C, D, E, F, G);
grouped_tuple!(B, C, D, E, F, G, H);

/// The hash of `key`'s group: how a grouped memo files `key`.
pub(super) fn group_hash<K: GroupedKey + ?Sized>(key: &K) -> Result<KeyHash> {
    KeyHash::of(key.group())
}

/// The versions of a memo's groups this process knows.
#[derive(Default)]
pub(super) struct GroupVersions {
    /// By the group's hash, which is uniform already: not hashed again.
    known: RwLock<HashMap<u128, u64, PassThroughHash>>,
    /// Counts the bus's news of groups this process did not know; a read
    /// of the shared store that overlapped one is not remembered (the news
    /// may be newer than what was read).
    unknown_news: AtomicU64,
}

impl GroupVersions {
    fn get(&self, group: KeyHash) -> Option<u64> {
        self.known.read().get(&group.0).copied()
    }
}

impl<V: CacheValue> MemoShared<V> {
    /// The version entries of `group` are filed under (the memo's plus the
    /// group's), if this process knows it; always known without a shared
    /// store. `None` for `group` on an ungrouped memo: the memo's version.
    pub(super) fn version_in(&self, group: Option<KeyHash>) -> Option<u64> {
        let version = self.version.load(Ordering::Acquire);
        let (Some(group), Some(groups)) = (group, &self.groups) else {
            return Some(version);
        };
        match groups.get(group) {
            Some(group_version) => Some(version.wrapping_add(group_version)),
            None if !self.shared_store => Some(version),
            None => None,
        }
    }

    /// A mark to pass to [`MemoShared::adopt_group`] with the group version
    /// read after taking it.
    pub(super) fn group_news_mark(&self) -> u64 {
        self.groups
            .as_ref()
            .map_or(0, |groups| groups.unknown_news.load(Ordering::Acquire))
    }

    /// Takes `group`'s version as read from the shared store (after
    /// `mark`, see [`MemoShared::group_news_mark`]).
    pub(super) fn adopt_group(&self, group: KeyHash, stored: u64, mark: Option<u64>) {
        let Some(groups) = &self.groups else {
            return;
        };
        let mut known = groups.known.write();
        match known.get(&group.0).copied() {
            Some(ours) if stored < ours => {
                drop(known);
                // The store lost it (a restart without persistence): as
                // for the memo's version, drop what this process holds.
                tracing::warn!(
                    memo = %self.name, stored, ours,
                    "shared store's group version went back; clearing the L1"
                );
                self.forget_groups();
                return;
            }
            Some(ours) => {
                if stored > ours {
                    known.insert(group.0, stored);
                    drop(known);
                    self.bump_scope();
                }
                return;
            }
            None => {}
        }
        if mark.is_some_and(|mark| mark != groups.unknown_news.load(Ordering::Acquire)) {
            return;
        }
        if known.len() >= MAX_GROUPS {
            drop(known);
            self.forget_groups();
            groups.known.write().insert(group.0, stored);
            return;
        }
        known.insert(group.0, stored);
    }

    /// Another process bumped `group` to `version`.
    pub(super) fn observe_group(&self, group: KeyHash, version: u64) {
        let Some(groups) = &self.groups else {
            return;
        };
        let mut known = groups.known.write();
        match known.get_mut(&group.0) {
            Some(ours) if version > *ours => {
                *ours = version;
                drop(known);
                self.bump_scope();
            }
            Some(_) => {}
            None if self.shared_store => {
                groups.unknown_news.fetch_add(1, Ordering::AcqRel);
            }
            // Without a shared store no other process files our entries.
            None => {}
        }
    }

    /// Bumps `group` in this process alone (no shared store: the table is
    /// the truth); returns its new version.
    pub(super) fn bump_group_local(&self, group: KeyHash) -> u64 {
        let Some(groups) = &self.groups else {
            return MemoControl::bump_local(self);
        };
        let mut known = groups.known.write();
        let full = known.len() >= MAX_GROUPS && !known.contains_key(&group.0);
        let version = known.get(&group.0).copied().unwrap_or(0) + 1;
        if full {
            drop(known);
            self.forget_groups();
            groups.known.write().insert(group.0, version);
        } else {
            known.insert(group.0, version);
            drop(known);
        }
        self.bump_scope();
        version
    }

    /// Forgets every group's version and empties the in-process tier
    /// (detaching loads in flight). Without a shared store the memo's
    /// version moves past every sum used so far, so none is used again.
    pub(super) fn forget_groups(&self) {
        let Some(groups) = &self.groups else {
            return;
        };
        let reset = || {
            let mut known = groups.known.write();
            if !self.shared_store {
                let highest = known.values().copied().max().unwrap_or(0);
                self.version.fetch_add(highest + 1, Ordering::AcqRel);
            }
            known.clear();
            if let Some(table) = &self.table {
                table.clear();
            }
        };
        if self.table.is_some() {
            self.flights.invalidate_all(reset);
        } else {
            reset();
        }
        self.bump_scope();
    }
}

impl<K, V> Memo<K, V>
where
    K: Serialize + ?Sized + 'static,
    V: CacheValue,
{
    /// Whether the memo was built [`grouped`](crate::MemoBuilder::grouped).
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// let cache = Cache::memory();
    /// let pages: Memo<(u64, u32), String> = Memo::builder("pages").grouped().build(&cache)?;
    /// assert!(pages.is_grouped());
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn is_grouped(&self) -> bool {
        self.shared.groups.is_some()
    }

    /// The group `key` is filed under, if the memo is grouped.
    pub(super) fn group_of(&self, key: &K) -> Option<Result<KeyHash>> {
        self.group_of.map(|of| of(key))
    }

    /// [`Memo::forget_group`] of the group `group` serializes as.
    async fn forget_group_as<G: Serialize + ?Sized>(&self, group: &G) -> Reach {
        if self.shared.groups.is_none() {
            tracing::warn!(memo = %self.shared.name, "forget_group on a memo built without groups: forgetting all");
            return self.forget_all().await;
        }
        match KeyHash::of(group) {
            Ok(group) => {
                let control: &dyn MemoControl = &*self.shared;
                self.cache
                    .forget_group(&self.shared.name, group, Some(control))
                    .await
            }
            Err(error) => {
                // No key of this group could be filed: nothing to forget.
                tracing::warn!(memo = %self.shared.name, %error, "group not cacheable");
                Reach::FLEET
            }
        }
    }
}

impl<K, V> MemoBuilder<K, V>
where
    K: GroupedKey + Serialize + 'static,
    V: CacheValue,
{
    /// Groups the memo's entries by their key's first element, so that
    /// [`Memo::forget_group`] forgets one group's entries in O(1). Every
    /// handle of the memo on a cache is built alike (grouped or not), and
    /// so is every process that shares the cache. See the module
    /// documentation for what a group costs.
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// let cache = Cache::memory();
    /// // One instance's results of a memoized method: keyed by (instance, argument).
    /// let area: Memo<(String, u32), u64> = Memo::builder("area").grouped().build(&cache)?;
    /// assert!(area.is_grouped());
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn grouped(mut self) -> Self {
        self.group_of = Some(group_hash::<K>);
        self
    }
}

impl<K, V> Memo<K, V>
where
    K: GroupedKey + Serialize + ?Sized + 'static,
    V: CacheValue,
{
    /// Forgets every value whose key starts with `group` (Flask-Caching's
    /// `delete_memoized(obj.method)` for one instance; one user's pages),
    /// in every tier and process, leaving the other groups' values in
    /// place. O(1), like [`Memo::forget_all`]: it bumps the group's version
    /// (one `INCR` on a shared store) and tells the other processes. Says
    /// whether the whole fleet was reached, as [`Memo::forget`] does. On a
    /// memo built without [`grouped`](crate::MemoBuilder::grouped) it
    /// forgets every value (and logs a warning).
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// // Keyed by (user, page): one user's pages are one group.
    /// let pages: Memo<(u64, u32), String> = Memo::builder("pages").grouped().build(&cache)?;
    /// pages.set(&(1, 1), "ada's first page".to_owned()).await;
    /// pages.set(&(1, 2), "ada's second page".to_owned()).await;
    /// pages.set(&(2, 1), "grace's first page".to_owned()).await;
    /// assert!(pages.forget_group(&1).await.is_fleet()); // ada posted
    /// assert!(pages.get(&(1, 1)).await.is_none() && pages.get(&(1, 2)).await.is_none());
    /// assert!(pages.get(&(2, 1)).await.is_some());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn forget_group(&self, group: &K::Group) -> Reach {
        self.forget_group_as(group).await
    }

    /// [`Memo::forget_group`] with the group as `#[memoize(group)]` gives
    /// it: borrowed, checked against `K`'s first part (see [`Part`]). Used
    /// by `#[memoize]`; not part of the stable API.
    #[doc(hidden)]
    pub async fn __forget_group_by<T: Serialize + ?Sized>(
        &self,
        group: Part<'_, K::Group, T>,
    ) -> Reach {
        self.forget_group_as(&group).await
    }

    /// What [`Memo::forget_group`] of `group` does, as a value to record
    /// with a write and deliver later (see [`crate::outbox`]).
    ///
    /// ```
    /// use memocache::{Cache, Memo, outbox::Intent};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let pages: Memo<(u64, u32), String> = Memo::builder("pages").grouped().build(&cache)?;
    /// pages.set(&(1, 1), "ada's first page".to_owned()).await;
    /// let recorded = vec![pages.intent_group(&1)?]; // e.g. read back from an outbox
    /// assert!(cache.deliver(&recorded).await.is_fleet());
    /// assert!(pages.get(&(1, 1)).await.is_none());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) when `group` cannot be
    /// serialized.
    pub fn intent_group(&self, group: &K::Group) -> Result<Intent> {
        if self.shared.groups.is_none() {
            return Ok(self.intent_all());
        }
        Ok(Intent::All {
            memo: group_name(&self.shared.name, KeyHash::of(group)?),
        })
    }
}

#[cfg(test)]
mod tests;
