//! How a cache forgets one memoized value or every value of a memo, by the
//! memo's name: the one path behind [`Memo::forget`](crate::Memo::forget),
//! [`Memo::forget_all`](crate::Memo::forget_all) and the delivery of an
//! [`Intent`] recorded in an [`Outbox`](crate::outbox::Outbox), which may
//! run in a process that never built the memo.
//!
//! Order, in every mode (see `memo/load.rs`): change the shared store
//! first, then evict this process's in-process tier and detach loads in
//! flight, then tell the other processes. Each step that met a fault is
//! reported in the [`Reach`]; the local eviction always happens.

use super::Cache;
use crate::bus::Invalidation;
use crate::deps::{TAG_SCOPE, scope_hash};
use crate::intent::Intent;
use crate::key::{KeyHash, group_name, memo_key, split_group, version_key};
use crate::reach::Reach;
use crate::registry::MemoControl;
use crate::stats::Counter;

impl Cache {
    /// Tells the other processes, if there is a bus; a fault is counted,
    /// logged and reported.
    pub(crate) async fn publish(&self, invalidation: &Invalidation) -> Reach {
        let Some(bus) = &self.inner.bus else {
            return Reach::FLEET;
        };
        match bus.publish(invalidation).await {
            Ok(()) => Reach::FLEET,
            Err(error) => {
                let _ = self.fault("publish", error, ());
                Reach::MISSED_BUS
            }
        }
    }

    /// Delivers recorded invalidations: each does what the memo's
    /// `forget` or `forget_all` (or [`Cache::invalidate_tag`]) would, in
    /// this process whether or not it built the memo. Delivering one twice
    /// is harmless (a second delete finds nothing; a second version bump
    /// costs one more load).
    ///
    /// ```
    /// use memocache::{Cache, Memo};
    /// # futures::executor::block_on(async {
    /// let cache = Cache::memory();
    /// let users: Memo<u64, String> = Memo::builder("users").build(&cache)?;
    /// users.set(&7, "ada".to_owned()).await;
    /// let recorded = vec![users.intent(&7)?]; // e.g. read back from an outbox
    /// assert!(cache.deliver(&recorded).await.is_fleet());
    /// assert!(users.get(&7).await.is_none());
    /// # Ok::<(), memocache::Error>(()) }).unwrap();
    /// ```
    pub async fn deliver(&self, intents: &[Intent]) -> Reach {
        let deliveries = intents.iter().map(|intent| self.deliver_one(intent));
        Reach::all(futures_util::future::join_all(deliveries).await)
    }

    /// What [`Cache::deliver`] does in this process alone: the in-process
    /// tier, loads in flight, and cached responses and fragments forget;
    /// the shared store and the bus are not asked. For a writer whose
    /// store is unreachable: its intents are in an outbox, the others'
    /// relays deliver them.
    pub(crate) fn deliver_locally(&self, intents: &[Intent]) {
        for intent in intents {
            match intent {
                Intent::Key { memo, hash } => {
                    let (memo, group) = split_group(memo);
                    match self.inner.memo_control(memo) {
                        Some(control) => {
                            control.forget_local(control.version_in(group), KeyHash(*hash));
                        }
                        None => self.inner.stamps.bump_key(scope_hash(memo), *hash),
                    }
                }
                Intent::All { memo } => {
                    let (memo, group) = split_group(memo);
                    match (self.inner.memo_control(memo), group) {
                        // With a shared store, a group bumped here alone
                        // would file entries where no other process looks:
                        // the whole memo goes, in this process.
                        (Some(control), Some(group)) if !self.has_remote() => {
                            control.bump_group_local(group);
                        }
                        (Some(control), _) => {
                            control.bump_local();
                        }
                        (None, _) => self.inner.stamps.bump_scope(scope_hash(memo)),
                    }
                }
                Intent::Tag { tag } => {
                    self.inner
                        .stamps
                        .bump_key(scope_hash(TAG_SCOPE), KeyHash::of_str(tag).0);
                }
            }
        }
    }

    async fn deliver_one(&self, intent: &Intent) -> Reach {
        match intent {
            Intent::Key { memo, hash } => {
                let (memo, group) = split_group(memo);
                let control = self.inner.memo_control(memo);
                self.forget_key(memo, control.as_deref(), KeyHash(*hash), group)
                    .await
            }
            Intent::All { memo } => {
                let (memo, group) = split_group(memo);
                let control = self.inner.memo_control(memo);
                match group {
                    Some(group) => self.forget_group(memo, group, control.as_deref()).await,
                    None => self.forget_memo(memo, control.as_deref()).await,
                }
            }
            Intent::Tag { tag } => {
                self.invalidate_dep_key(TAG_SCOPE, KeyHash::of_str(tag).0)
                    .await
            }
        }
    }

    /// Forgets `hash` of memo `name` (`control`: the memo, if this process
    /// built it; `group`: the key's group, on a grouped memo).
    pub(crate) async fn forget_key(
        &self,
        name: &str,
        control: Option<&dyn MemoControl>,
        hash: KeyHash,
        group: Option<KeyHash>,
    ) -> Reach {
        let evict = |version: u64| match control {
            Some(control) => control.forget_local(version, hash),
            // Responses and fragments of this process that read it.
            None => self.inner.stamps.bump_key(scope_hash(name), hash.0),
        };
        if let Some(control) = control {
            control.count(Counter::Invalidation);
        }
        if !self.has_remote() {
            evict(control.map_or(0, |control| control.version_in(group)));
            return Reach::FLEET;
        }
        let prefix = &self.config().key_prefix;
        let read = match group {
            Some(group) => self.read_versions(name, control, group).await,
            None => {
                let mark = control.map(MemoControl::version_news_mark);
                self.remote_get(&version_key(prefix, name))
                    .await
                    .map(|bytes| {
                        let version = crate::store::parse_version(bytes.as_deref());
                        match (control, mark) {
                            (Some(control), Some(mark)) => control.adopt_version(version, mark),
                            _ => version,
                        }
                    })
            }
        };
        let version = match read {
            Ok(version) => version,
            Err(error) => {
                self.memo_fault(control, "version", error);
                // Cannot read the version: this process forgets, and so do
                // the others, under the version it last saw. On a Redis
                // Cluster the version's node may be cut off while the bus
                // answers (`tiered_on_a_cluster_a_black_holed_data_node_is_never_a_stale_read`
                // caught it: returning here left the others' L1 copies in
                // place). No delete in the store: it would wait out a
                // timeout per call on a store that is down. The store may
                // keep the old value: reported, for the caller to deliver
                // again.
                let version = control.map_or(0, |control| control.version_in(group));
                evict(version);
                let sent = self.publish_key(name, version, hash).await;
                return Reach::MISSED_STORE.and(sent);
            }
        };
        let mut reach = Reach::FLEET;
        if let Err(error) = self
            .remote_delete(&memo_key(prefix, name, version, hash))
            .await
        {
            self.memo_fault(control, "forget", error);
            reach = Reach::MISSED_STORE;
        }
        evict(version);
        reach.and(self.publish_key(name, version, hash).await)
    }

    /// Forgets every value of memo `name`: bumps its version (one `INCR`
    /// on a shared store).
    pub(crate) async fn forget_memo(&self, name: &str, control: Option<&dyn MemoControl>) -> Reach {
        if let Some(control) = control {
            control.count(Counter::Invalidation);
        }
        let memo = name.to_string();
        let key = version_key(&self.config().key_prefix, name);
        let mark = control.map(MemoControl::version_news_mark);
        let Some(bumped) = self.remote_incr(&key, 1).await else {
            match control {
                Some(control) => {
                    control.bump_local();
                }
                None => self.inner.stamps.bump_scope(scope_hash(name)),
            }
            return Reach::FLEET;
        };
        match bumped {
            Ok(version) => {
                let version = u64::try_from(version).unwrap_or_default();
                match (control, mark) {
                    (Some(control), Some(mark)) => {
                        control.adopt_version(version, mark);
                    }
                    _ => self.inner.stamps.bump_scope(scope_hash(name)),
                }
                self.publish(&Invalidation::Memo { memo, version }).await
            }
            Err(error) => {
                self.memo_fault(control, "forget_all", error);
                // Keep this process from serving the old values at least,
                // and the others too: on a Redis Cluster the version's node
                // may be cut off while the bus answers, and their L1 copies
                // would stay trusted.
                let version = match control {
                    Some(control) => control.bump_local(),
                    None => {
                        self.inner.stamps.bump_scope(scope_hash(name));
                        return Reach::MISSED_STORE
                            .and(self.publish(&Invalidation::Memo { memo, version: 0 }).await);
                    }
                };
                let sent = self.publish(&Invalidation::Memo { memo, version }).await;
                Reach::MISSED_STORE.and(sent)
            }
        }
    }

    /// The version a grouped memo files `group`'s entries under in the
    /// shared store (the memo's version plus the group's), both read in one
    /// batch and mirrored locally (`control`, if this process built the
    /// memo).
    pub(crate) async fn remote_versions(
        &self,
        name: &str,
        control: &dyn MemoControl,
        group: KeyHash,
    ) -> crate::error::Result<u64> {
        self.read_versions(name, Some(control), group).await
    }

    async fn read_versions(
        &self,
        name: &str,
        control: Option<&dyn MemoControl>,
        group: KeyHash,
    ) -> crate::error::Result<u64> {
        let Some(store) = self.remote() else {
            return Ok(control.map_or(0, |control| control.version_in(Some(group))));
        };
        let prefix = &self.config().key_prefix;
        let keys = [
            version_key(prefix, name),
            version_key(prefix, &group_name(name, group)),
        ];
        let mark = control.map(MemoControl::group_news_mark);
        let version_mark = control.map(MemoControl::version_news_mark);
        let read = store.get_many(&keys).await?;
        let mut versions = read
            .iter()
            .map(|bytes| crate::store::parse_version(bytes.as_deref()));
        let mut version = versions.next().unwrap_or_default();
        let group_version = versions.next().unwrap_or_default();
        if let (Some(control), Some(version_mark)) = (control, version_mark) {
            version = control.adopt_version(version, version_mark);
            control.adopt_group(group, group_version, mark);
        }
        Ok(version.wrapping_add(group_version))
    }

    /// Forgets every value of group `group` of memo `name`: bumps the
    /// group's version (one `INCR` on a shared store). See `memo::group`.
    pub(crate) async fn forget_group(
        &self,
        name: &str,
        group: KeyHash,
        control: Option<&dyn MemoControl>,
    ) -> Reach {
        if let Some(control) = control {
            control.count(Counter::Invalidation);
            control.count(Counter::GroupInvalidation);
        }
        let memo = group_name(name, group);
        let key = version_key(&self.config().key_prefix, &memo);
        let Some(bumped) = self.remote_incr(&key, 1).await else {
            match control {
                Some(control) => {
                    control.bump_group_local(group);
                }
                None => self.inner.stamps.bump_scope(scope_hash(name)),
            }
            return Reach::FLEET;
        };
        match bumped {
            Ok(version) => {
                let version = u64::try_from(version).unwrap_or_default();
                match control {
                    Some(control) => control.adopt_group(group, version, None),
                    None => self.inner.stamps.bump_scope(scope_hash(name)),
                }
                self.publish(&Invalidation::Memo { memo, version }).await
            }
            Err(error) => {
                self.memo_fault(control, "forget_group", error);
                // A group bumped here alone would file entries where no
                // other process looks: as `forget_all` under a fault, this
                // process drops every value of the memo, and tells the
                // others to do the same (they follow the store again when
                // they next read its version).
                let Some(control) = control else {
                    self.inner.stamps.bump_scope(scope_hash(name));
                    let memo = name.to_string();
                    return Reach::MISSED_STORE
                        .and(self.publish(&Invalidation::Memo { memo, version: 0 }).await);
                };
                let version = control.bump_local();
                let memo = name.to_string();
                let sent = self.publish(&Invalidation::Memo { memo, version }).await;
                Reach::MISSED_STORE.and(sent)
            }
        }
    }

    async fn publish_key(&self, name: &str, version: u64, hash: KeyHash) -> Reach {
        let invalidation = Invalidation::Key {
            memo: name.to_string(),
            version,
            hash: hash.0,
        };
        self.publish(&invalidation).await
    }

    fn memo_fault(
        &self,
        control: Option<&dyn MemoControl>,
        operation: &str,
        error: crate::error::Error,
    ) {
        if let Some(control) = control {
            control.count(Counter::StoreError);
        }
        // Memos always fail open; strict mode only shapes the low-level API.
        let _ = self.fault(operation, error, ());
    }

    /// Bumps the key dependency (`scope`, `hash`) here and, over the bus,
    /// everywhere.
    pub(crate) async fn invalidate_dep_key(&self, scope: &str, hash: u128) -> Reach {
        self.inner.stamps.bump_key(scope_hash(scope), hash);
        let invalidation = Invalidation::Key {
            memo: scope.to_string(),
            version: 0,
            hash,
        };
        self.publish(&invalidation).await
    }

    /// Bumps the scope dependency `scope` here and everywhere.
    #[cfg(feature = "axum")]
    pub(crate) async fn invalidate_dep_scope(&self, scope: &str) -> Reach {
        self.inner.stamps.bump_scope(scope_hash(scope));
        let invalidation = Invalidation::Memo {
            memo: scope.to_string(),
            version: 0,
        };
        self.publish(&invalidation).await
    }
}
