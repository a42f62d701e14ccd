//! The memos built on one cache, by name, and what the cache needs from
//! them without knowing their types.
//!
//! Below both `cache` and `memo`: the cache holds a [`Registry`] of
//! [`MemoControl`]s, and a memo registers its shared state here, so neither
//! module imports the other's internals in both directions.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::key::KeyHash;
use crate::stats::{Counter, MemoStats};

/// What the cache needs from a memo whose types it does not know.
pub(crate) trait MemoControl: Send + Sync {
    /// After `clear()`: every value of the memo is gone.
    fn invalidate_everything(&self);
    /// Drops the in-process tier (and detaches loads in flight).
    fn clear_local(&self);
    /// Another process forgot one key.
    fn evict_key(&self, version: u64, hash: u128);
    /// Another process bumped the memo's version.
    fn observe_version(&self, version: u64);
    fn stats(&self) -> MemoStats;
    /// This process forgets `hash` at `version` (its own invalidation).
    fn forget_local(&self, version: u64, hash: KeyHash);
    /// A mark taken before reading the memo's version from the shared
    /// store (for `adopt_version`).
    fn version_news_mark(&self) -> u64;
    /// Takes the version read from the shared store, which holds the truth,
    /// by a read that began at `mark`; returns the version to file this
    /// request's entry under (the newer of the read and the mirror).
    fn adopt_version(&self, version: u64, mark: u64) -> u64;
    /// Bumps the version in this process alone; returns the new one.
    fn bump_local(&self) -> u64;
    /// Counts one event of the memo.
    fn count(&self, counter: Counter);
    /// The version entries of `group` are filed under (the memo's version
    /// for `None` or an ungrouped memo), as this process last saw it.
    fn version_in(&self, group: Option<KeyHash>) -> u64;
    /// A mark taken before reading a group's version from the shared store.
    fn group_news_mark(&self) -> u64;
    /// Takes a group's version read from the shared store (after `mark`).
    fn adopt_group(&self, group: KeyHash, version: u64, mark: Option<u64>);
    /// Another process bumped a group's version.
    fn observe_group(&self, group: KeyHash, version: u64);
    /// Bumps a group's version in this process alone (no shared store).
    fn bump_group_local(&self, group: KeyHash) -> u64;
}

struct RegisteredMemo {
    key_type: TypeId,
    value_type: TypeId,
    typed: Arc<dyn Any + Send + Sync>,
    control: Arc<dyn MemoControl>,
}

/// The memos of one cache by name.
#[derive(Default)]
pub(crate) struct Registry {
    memos: Mutex<HashMap<Arc<str>, RegisteredMemo>>,
}

impl Registry {
    /// The shared state `T` of memo `name` with key type `K` and value type
    /// `V`, made by `make` on first use; an error if `name` is already
    /// registered with other types.
    pub(crate) fn get_or_register<K, V, T>(
        &self,
        name: &str,
        make: impl FnOnce() -> Arc<T>,
    ) -> Result<Arc<T>>
    where
        K: ?Sized + 'static,
        V: 'static,
        T: MemoControl + Any + Send + Sync,
    {
        let mut memos = self.memos.lock();
        if let Some(existing) = memos.get(name) {
            let same_types =
                existing.key_type == TypeId::of::<K>() && existing.value_type == TypeId::of::<V>();
            return match Arc::clone(&existing.typed).downcast::<T>() {
                Ok(shared) if same_types => Ok(shared),
                _ => Err(Error::new(
                    ErrorKind::MemoTypeMismatch,
                    format!(
                        "memo `{name}` is already built on this cache with other key or value \
                         types than {} -> {}",
                        std::any::type_name::<K>(),
                        std::any::type_name::<V>()
                    ),
                )),
            };
        }
        let shared = make();
        memos.insert(
            Arc::from(name),
            RegisteredMemo {
                key_type: TypeId::of::<K>(),
                value_type: TypeId::of::<V>(),
                typed: Arc::clone(&shared) as Arc<dyn Any + Send + Sync>,
                control: Arc::clone(&shared) as Arc<dyn MemoControl>,
            },
        );
        Ok(shared)
    }

    /// Every memo's control.
    pub(crate) fn controls(&self) -> Vec<Arc<dyn MemoControl>> {
        self.memos
            .lock()
            .values()
            .map(|m| Arc::clone(&m.control))
            .collect()
    }

    /// Memo `name`'s control, if it is built here.
    pub(crate) fn control(&self, name: &str) -> Option<Arc<dyn MemoControl>> {
        self.memos.lock().get(name).map(|m| Arc::clone(&m.control))
    }

    /// Every memo's counters, sorted by name.
    pub(crate) fn stats(&self) -> Vec<(String, MemoStats)> {
        let memos = self.memos.lock();
        let mut all: Vec<_> = memos
            .iter()
            .map(|(name, m)| (name.to_string(), m.control.stats()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
