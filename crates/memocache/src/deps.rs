//! Invalidation by dependency: what a cached response or fragment read,
//! and whether any of it was forgotten since.
//!
//! # The rule
//!
//! A cached response (or fragment) is served only if nothing it read has
//! been invalidated since it read it. No URL is ever purged by hand: the
//! memos, keys and tags a view read are its dependencies.
//!
//! # How
//!
//! Every cache keeps a fixed table of [`SLOTS`] invalidation *stamps*
//! (counters). A dependency is a slot: one per (memo, argument key), one
//! per memo as a whole, one per tag. Every invalidation bumps its slot's
//! stamp *after* it evicted the value (`forget` bumps the key's slot,
//! `forget_all` and a version change the memo's, `clear` and an L1 cleared
//! by the bus the cache's epoch). While a view runs, the layer puts a
//! [`Recorder`] in a task-local; every memo lookup reports its slots with
//! the stamps they hold at that moment, *before* the value is read. The
//! stored entry keeps those (slot, stamp) pairs, and is fresh only while
//! every stamp still holds its recorded value.
//!
//! The race this closes: a view reads the old value, a `forget` runs, the
//! view's response is stored after. Because the stamp was read before the
//! value and the bump comes after the eviction, either the view read the
//! new value, or its recorded stamp is older than the slot's: the stored
//! response is never served. A stamp collision (two dependencies sharing a
//! slot) only costs an extra miss, never a stale hit.
//!
//! Across processes, the bumps ride the invalidations the bus already
//! carries: a process applies a `forget` made elsewhere (bumping the slot)
//! before that `forget` returns, the same guarantee memos' L1 entries have.
//! Tags, `delete_cached` and fragment forgets travel as invalidations of
//! reserved memo names (starting with `\0`), which other processes only
//! turn into bumps.
//!
//! Bounds: the table is a fixed 32 KiB per cache; a recorder keeps at most
//! [`MAX_DEPS`] dependencies (beyond, the result is not stored).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use xxhash_rust::xxh3::xxh3_64;

/// Stamps per cache.
pub(crate) const SLOTS: usize = 4096;
/// Dependencies one recorder keeps before giving up on storing.
pub(crate) const MAX_DEPS: usize = 4096;

/// The reserved scope of explicit tags.
pub(crate) const TAG_SCOPE: &str = "\0tag";
/// The reserved scope of low-level keys.
pub(crate) const RAW_SCOPE: &str = "\0raw";

/// The hash that names a scope (a memo, or a reserved name) in the table.
pub(crate) fn scope_hash(scope: &str) -> u64 {
    xxh3_64(scope.as_bytes())
}

/// One cache's invalidation stamps.
pub(crate) struct Stamps {
    slots: Box<[AtomicU64]>,
    /// Bumped when everything goes (`clear`, an L1 dropped on a bus gap).
    epoch: AtomicU64,
}

impl Stamps {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
        }
    }

    fn key_slot(scope: u64, hash: u128) -> usize {
        let folded = (hash as u64) ^ ((hash >> 64) as u64) ^ scope.rotate_left(17);
        (crate::key::splitmix64(folded) as usize) % SLOTS
    }

    fn scope_slot(scope: u64) -> usize {
        (crate::key::splitmix64(scope) as usize) % SLOTS
    }

    /// One key of `scope` was invalidated.
    pub(crate) fn bump_key(&self, scope: u64, hash: u128) {
        self.slots[Self::key_slot(scope, hash)].fetch_add(1, Ordering::AcqRel);
    }

    /// Every key of `scope` was invalidated.
    pub(crate) fn bump_scope(&self, scope: u64) {
        self.slots[Self::scope_slot(scope)].fetch_add(1, Ordering::AcqRel);
    }

    /// Everything was invalidated.
    pub(crate) fn bump_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn read(&self, slot: usize) -> (u32, u64) {
        // SLOTS fits in a u32.
        (slot as u32, self.slots[slot].load(Ordering::Acquire))
    }

    /// The key slot of (`scope`, `hash`) and its current stamp.
    pub(crate) fn key_dep(&self, scope: u64, hash: u128) -> (u32, u64) {
        self.read(Self::key_slot(scope, hash))
    }

    /// The scope slot of `scope` and its current stamp.
    pub(crate) fn scope_dep(&self, scope: u64) -> (u32, u64) {
        self.read(Self::scope_slot(scope))
    }

    /// True while no recorded stamp moved.
    pub(crate) fn fresh(&self, deps: &Deps) -> bool {
        deps.epoch == self.epoch()
            && deps.slots.iter().all(|&(slot, stamp)| {
                self.slots
                    .get(slot as usize)
                    .is_some_and(|s| s.load(Ordering::Acquire) == stamp)
            })
    }
}

/// What one cached result depends on: (slot, stamp) pairs and the epoch.
#[derive(Clone, Debug, Default)]
pub(crate) struct Deps {
    pub(crate) slots: Box<[(u32, u64)]>,
    pub(crate) epoch: u64,
}

tokio::task_local! {
    static CURRENT: Arc<Recorder>;
}

/// Recorders alive in the process. A memo hit outside any recorder (the
/// common case without the response layer) checks only this, not the
/// task-local: one relaxed load of a line written only on misses.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether any recorder exists; if not, no task has one current.
#[inline]
fn recording() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

/// Collects the dependencies of one response or fragment while it is made.
pub(crate) struct Recorder {
    stamps: Arc<Stamps>,
    parent: Option<Arc<Recorder>>,
    epoch: u64,
    state: Mutex<RecorderState>,
}

#[derive(Default)]
struct RecorderState {
    slots: Vec<(u32, u64)>,
    /// Something was read that cannot be tracked (another cache, a shared
    /// store without a bus, too many dependencies): do not store.
    untracked: bool,
}

impl Recorder {
    /// A recorder on `stamps`, nested in the current one if any (a
    /// fragment inside a response: both get the fragment's dependencies).
    pub(crate) fn start(stamps: &Arc<Stamps>) -> Arc<Self> {
        // Before it can be current anywhere; see `recording`.
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            stamps: Arc::clone(stamps),
            parent: CURRENT.try_with(Arc::clone).ok(),
            epoch: stamps.epoch(),
            state: Mutex::new(RecorderState::default()),
        })
    }

    /// Runs `future` with this recorder current.
    pub(crate) async fn run<F: Future>(self: &Arc<Self>, future: F) -> F::Output {
        CURRENT.scope(Arc::clone(self), future).await
    }

    fn push(&self, stamps: &Arc<Stamps>, deps: &[(u32, u64)]) {
        let mut recorder = Some(self);
        while let Some(r) = recorder {
            let mut state = r.state.lock();
            if !Arc::ptr_eq(&r.stamps, stamps) || state.slots.len() + deps.len() > MAX_DEPS {
                state.untracked = true;
            } else {
                state.slots.extend_from_slice(deps);
            }
            drop(state);
            recorder = r.parent.as_deref();
        }
    }

    /// Marks this recorder and its parents as unable to store.
    fn poison(&self) {
        let mut recorder = Some(self);
        while let Some(r) = recorder {
            r.state.lock().untracked = true;
            recorder = r.parent.as_deref();
        }
    }

    /// The dependencies recorded, or `None` if the result must not be
    /// stored.
    pub(crate) fn finish(&self) -> Option<Deps> {
        let mut state = self.state.lock();
        if state.untracked {
            return None;
        }
        let mut slots = std::mem::take(&mut state.slots);
        // One entry per slot, the oldest stamp: the conservative one.
        slots.sort_unstable();
        slots.dedup_by_key(|d| d.0);
        Some(Deps {
            slots: slots.into_boxed_slice(),
            epoch: self.epoch,
        })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reports a read of key `hash` of `scope` to the current recorder, if
/// any; `tracked` says whether invalidations of it reach this process (a
/// shared store without a bus: no, so the result is not stored).
#[inline]
pub(crate) fn record_key(
    stamps: &Arc<Stamps>,
    scope: u64,
    hash: u128,
    tracked: impl FnOnce() -> bool,
) {
    if !recording() {
        return;
    }
    let _ = CURRENT.try_with(|r| {
        if tracked() {
            let deps = [stamps.key_dep(scope, hash), stamps.scope_dep(scope)];
            r.push(stamps, &deps);
        } else {
            r.poison();
        }
    });
}

/// Reports already-recorded dependencies (a fragment served from cache).
pub(crate) fn record_deps(stamps: &Arc<Stamps>, deps: &Deps) {
    if !recording() {
        return;
    }
    let _ = CURRENT.try_with(|r| {
        if deps.epoch != r.epoch {
            r.poison();
        } else {
            r.push(stamps, &deps.slots);
        }
    });
}

/// Reports a read that cannot be tracked: the current result is not stored.
pub(crate) fn record_untracked() {
    if recording() {
        let _ = CURRENT.try_with(|r| r.poison());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bump_after_the_read_makes_the_recording_stale() {
        let stamps = Arc::new(Stamps::new());
        let memo = scope_hash("all_messages");
        let recorder = Recorder::start(&stamps);
        recorder
            .run(async { record_key(&stamps, memo, 7, || true) })
            .await;
        let deps = recorder.finish().unwrap();
        assert_eq!(deps.slots.len(), 2);
        assert!(stamps.fresh(&deps));
        stamps.bump_key(memo, 7);
        assert!(!stamps.fresh(&deps));
    }

    #[tokio::test]
    async fn forget_all_and_clear_reach_every_key() {
        let stamps = Arc::new(Stamps::new());
        let memo = scope_hash("load_user");
        let recorder = Recorder::start(&stamps);
        recorder
            .run(async { record_key(&stamps, memo, 1, || true) })
            .await;
        let deps = recorder.finish().unwrap();
        stamps.bump_scope(memo);
        assert!(!stamps.fresh(&deps));

        let recorder = Recorder::start(&stamps);
        recorder
            .run(async { record_key(&stamps, memo, 1, || true) })
            .await;
        let deps = recorder.finish().unwrap();
        assert!(stamps.fresh(&deps));
        stamps.bump_all();
        assert!(!stamps.fresh(&deps));
    }

    #[tokio::test]
    async fn nested_recorders_report_to_their_parents() {
        let stamps = Arc::new(Stamps::new());
        let outer = Recorder::start(&stamps);
        let inner_deps = outer
            .run(async {
                let inner = Recorder::start(&stamps);
                inner
                    .run(async { record_key(&stamps, 1, 2, || true) })
                    .await;
                inner.finish().unwrap()
            })
            .await;
        let outer_deps = outer.finish().unwrap();
        assert_eq!(inner_deps.slots, outer_deps.slots);
    }

    #[tokio::test]
    async fn reads_of_another_cache_are_untracked() {
        let ours = Arc::new(Stamps::new());
        let theirs = Arc::new(Stamps::new());
        let recorder = Recorder::start(&ours);
        recorder
            .run(async { record_key(&theirs, 1, 2, || true) })
            .await;
        assert!(recorder.finish().is_none());
    }
}
