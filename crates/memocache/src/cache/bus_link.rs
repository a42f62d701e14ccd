//! The bus's handle on a cache: how invalidations from other processes
//! reach this one, and how the bus vouches for the L1.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::CacheInner;
use crate::bus::{BusSink, Invalidation};
use crate::deps::scope_hash;

impl CacheInner {
    /// Keeps the bus sink alive as long as the cache.
    pub(super) fn sink_keepalive(&self, sink: Arc<dyn BusSink>) {
        *self.sink.lock() = Some(sink);
    }
}

/// The cache as the bus sees it: held weakly, so the bus never keeps a
/// dropped cache alive.
pub(super) struct SinkLink(pub(super) Weak<CacheInner>);

impl BusSink for SinkLink {
    fn apply(&self, invalidation: &Invalidation) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        match invalidation {
            Invalidation::Key {
                memo,
                version,
                hash,
            } => {
                if let Some(control) = inner.memo_control(memo) {
                    control.evict_key(*version, *hash);
                }
                // Responses and fragments that read it (tags and the
                // like travel under reserved names no memo has).
                inner.stamps.bump_key(scope_hash(memo), *hash);
            }
            Invalidation::Memo { memo, version } => {
                // A memo's name, or one of its groups' (see `memo::group`).
                let (memo, group) = crate::key::split_group(memo);
                if let Some(control) = inner.memo_control(memo) {
                    match group {
                        Some(group) => control.observe_group(group, *version),
                        None => control.observe_version(*version),
                    }
                }
                inner.stamps.bump_scope(scope_hash(memo));
            }
            Invalidation::Clear => {
                for control in inner.memo_controls() {
                    control.invalidate_everything();
                }
                inner.stamps.bump_all();
            }
        }
    }

    fn trust_until(&self, deadline_ms: u64) {
        if let Some(inner) = self.0.upgrade() {
            inner.trusted_until.store(deadline_ms, Ordering::Release);
        }
    }

    fn distrust(&self, clear_l1: bool) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        inner.trusted_until.store(0, Ordering::Release);
        if clear_l1 {
            for control in inner.memo_controls() {
                control.clear_local();
            }
            inner.stamps.bump_all();
        }
    }

    fn now_ms(&self) -> u64 {
        self.0
            .upgrade()
            .map_or(0, |inner| inner.clock.precise_now_ms())
    }
}
