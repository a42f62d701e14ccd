//! The in-process table: values kept as they are (no serialization), each
//! with a deadline checked against the coarse clock.
//!
//! Built on `quick_cache` (CLOCK-PRO eviction, sharded): measured here, its
//! `get` costs about 20 ns against moka's 100 ns, and it spends about 51
//! bytes per `u64 -> u64` entry against moka's 305.
//!
//! In front of it, each thread keeps a few entries it read last (the
//! *near* slots). A `quick_cache` read takes a shard's read lock: two locked
//! read-modify-writes, most of a hit's cost. A near slot is read without
//! any: it is trusted only while the table's `generation` is the one it was
//! filled under, and every change of the table (insert, update, remove,
//! clear) bumps the generation after it is made. A near slot is filled
//! with the generation read *before* the table was, so a change racing with
//! the fill leaves the slot already outdated. Eviction only happens inside
//! an insert, so a near slot never outlives its entry unnoticed, and the
//! table still sees every key read since its last change (its
//! hot/cold marks stay right).
//!
//! # Bounded by entries or by bytes
//!
//! A table counts its entries (`capacity`), or weighs them (`capacity_bytes`):
//! then each entry is weighed once, when it is stored, by the caller's
//! `weigh` plus [`ENTRY_OVERHEAD`], and `quick_cache`'s own weighted
//! eviction keeps the sum within the budget (`Weighter`; no accounting of
//! our own). The weight lives beside the entry, so a count-bounded table
//! keeps its 32-byte entries and a hit reads no weight. An entry heavier
//! than a sixteenth of the budget ([`MAX_ENTRY_SHARE`]: the table's shards
//! evict each within its share, and an entry must fit into one) is not
//! stored, and the key keeps no older value either; the insert says so
//! ([`Stored::TooLarge`]), and its caller counts it. Near slots never keep values above 64 KiB,
//! so what the budget no longer counts is not kept alive by them.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use quick_cache::sync::{Cache as QuickCache, DefaultLifecycle, EntryAction, EntryResult};
use quick_cache::{OptionsBuilder, UnitWeighter, Weighter};
use thread_local::ThreadLocal;

use crate::key::KeyHash;

/// One value and the clock reading after which it is gone.
#[derive(Clone, Debug)]
pub(crate) struct Entry<T> {
    pub(crate) value: T,
    pub(crate) expires_at: u64,
}

/// An [`Entry`] of a table bounded by bytes, with its weight, worked out
/// once when it was stored (`quick_cache` asks an entry's weight again on
/// every move and eviction, and requires the same answer each time).
#[derive(Clone, Debug)]
struct Weighed<T> {
    entry: Entry<T>,
    weight: u64,
}

/// Reads the weight a [`Weighed`] entry was stored with.
#[derive(Clone, Copy, Debug, Default)]
struct StoredWeight;

impl<T> Weighter<Slot, Weighed<T>> for StoredWeight {
    #[inline]
    fn weight(&self, _: &Slot, value: &Weighed<T>) -> u64 {
        value.weight
    }
}

/// What an entry of a byte-bounded table costs besides its value's
/// weight: the table's own bookkeeping (~51 bytes per entry, measured
/// in issue 2's memory bench) and the value's `Arc` header, rounded up.
/// It also keeps every weight above zero (`quick_cache` never evicts an
/// entry that weighs nothing).
pub(crate) const ENTRY_OVERHEAD: u64 = 64;

/// A byte-bounded table stores no entry heavier than this share of its
/// budget. Its shards ([`BYTE_SHARDS`]) each evict on their own within
/// their share of the budget, so an entry must fit into one, and one
/// that takes most of a shard wastes the rest: at a sixteenth, a shard
/// holds at least four of the heaviest entries, and wastes under a
/// quarter of its share even then.
pub(crate) const MAX_ENTRY_SHARE: u64 = 16;

/// The shards of a byte-bounded table (see [`MAX_ENTRY_SHARE`]); a
/// count-bounded one has `quick_cache`'s default (4 per core).
const BYTE_SHARDS: usize = 4;

/// Entries heavier than this are never kept in a thread's near slots:
/// a slot keeps its value alive until it is overwritten, so eight slots
/// per thread of megabyte values would hold memory the budget no longer
/// counts.
const NEAR_MAX_WEIGHT: u64 = 64 << 10;

type Lifecycle<V> = DefaultLifecycle<Slot, V>;
type CountTable<T> = QuickCache<Slot, Entry<T>, UnitWeighter, PassThroughHash, Lifecycle<Entry<T>>>;
type ByteTable<T> =
    QuickCache<Slot, Weighed<T>, StoredWeight, PassThroughHash, Lifecycle<Weighed<T>>>;

/// How a table is bounded: by entries, and optionally by bytes.
///
/// With both, an entry weighs at least `bytes / entries`, so a table full
/// of small entries stops at `entries` and one of large ones at `bytes`
/// (`n × bytes/entries ≤ bytes` gives `n ≤ entries`); a count under 16
/// holds as 16 (no entry weighs more than a sixteenth of the bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bound {
    /// Entries kept at most (`usize::MAX`: no count bound).
    pub(crate) entries: usize,
    /// Bytes kept at most, as the entries' weights add up.
    pub(crate) bytes: Option<u64>,
}

impl Bound {
    /// Bounded by a number of entries only.
    pub(crate) fn entries(entries: usize) -> Self {
        Self {
            entries,
            bytes: None,
        }
    }
}

/// The `quick_cache` table behind a [`LocalTable`]: counting entries, or
/// weighing them.
enum Table<T> {
    Count(CountTable<T>),
    Bytes {
        table: ByteTable<T>,
        /// The weight every entry has at least (see [`Bound`]).
        floor: u64,
        /// Heavier entries are not stored (see [`MAX_ENTRY_SHARE`]).
        max_entry: u64,
    },
}
/// A table key: 96 of the key hash's 128 bits.
///
/// Twelve bytes with 4-byte alignment let the key and an [`Entry`] pack into
/// 32 bytes where a `u128` key would need 40, which is what keeps a cached
/// entry under 100 bytes. A collision among a million live entries of one
/// memo has a probability of about 2^-57; remote stores use all 128 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot([u32; 3]);

impl From<KeyHash> for Slot {
    #[inline]
    fn from(key: KeyHash) -> Self {
        let k = key.0;
        Self([(k >> 96) as u32, (k >> 64) as u32, k as u32])
    }
}

impl std::hash::Hash for Slot {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [a, b, c] = self.0;
        state.write_u64((u64::from(a) << 32 | u64::from(b)) ^ u64::from(c));
    }
}

/// How many entries each thread keeps near, per table: few, as they keep
/// their values alive until overwritten.
const NEAR_SLOTS: usize = 8;

/// One entry a thread read, and the table generation it is valid under.
struct NearEntry<T> {
    slot: Slot,
    generation: u64,
    expires_at: u64,
    value: T,
}

/// A live near slot holding another key is taken over on one table read
/// in this many: a thread cycling through more keys than it has slots
/// would otherwise pay a slot fill (two reference-count changes) on every
/// read, while a key read often still gets a slot soon.
const TAKEOVER_EVERY: u32 = 16;

/// One thread's near slots of one table, indexed by the key's low bits,
/// and its count of table reads (for [`TAKEOVER_EVERY`]).
struct Near<T> {
    slots: RefCell<[Option<NearEntry<T>>; NEAR_SLOTS]>,
    far_reads: std::cell::Cell<u32>,
}

impl<T> Default for Near<T> {
    fn default() -> Self {
        Self {
            slots: RefCell::new(std::array::from_fn(|_| None)),
            far_reads: std::cell::Cell::new(0),
        }
    }
}

/// A bounded table of `T` (an `Arc` of the value) keyed by [`KeyHash`].
pub(crate) struct LocalTable<T: Send> {
    table: Table<T>,
    /// Bumped after every change of `table` (see the module docs).
    generation: CachePadded<AtomicU64>,
    /// Padded: the threads' blocks sit side by side, and every read writes
    /// its own block's borrow flag (two threads must not share a line).
    near: ThreadLocal<CachePadded<Near<T>>>,
}

/// Whether a value was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    Yes,
    /// Not stored (and nothing older left under its key): it weighed more
    /// than a byte-bounded table keeps in one entry.
    TooLarge,
}

impl<T: Clone + Send> LocalTable<T> {
    /// A table of up to `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self::bounded(Bound::entries(capacity))
    }

    /// A table within `bound`.
    pub(crate) fn bounded(bound: Bound) -> Self {
        let entries = bound.entries.max(1);
        let table = match bound.bytes {
            None => Table::Count(QuickCache::with(
                entries,
                entries as u64,
                UnitWeighter,
                PassThroughHash,
                DefaultLifecycle::default(),
            )),
            Some(bytes) => {
                let bytes = bytes.max(1);
                // A guess at how many entries fit, for the table's sizing
                // (shards, the memory of evicted keys): within an order of
                // magnitude or two is enough, says `quick_cache`.
                let estimate = usize::try_from(bytes / 512)
                    .unwrap_or(usize::MAX)
                    .max(32)
                    .min(entries);
                let options = OptionsBuilder::new()
                    .estimated_items_capacity(estimate)
                    .weight_capacity(bytes)
                    .shards(BYTE_SHARDS)
                    .build();
                let table = match options {
                    Ok(options) => QuickCache::with_options(
                        options,
                        StoredWeight,
                        PassThroughHash,
                        DefaultLifecycle::default(),
                    ),
                    // Every option above is valid; the defaults otherwise.
                    Err(_) => QuickCache::with(
                        estimate,
                        bytes,
                        StoredWeight,
                        PassThroughHash,
                        DefaultLifecycle::default(),
                    ),
                };
                Table::Bytes {
                    table,
                    floor: if bound.entries == usize::MAX {
                        0
                    } else {
                        bytes / entries as u64
                    },
                    max_entry: (bytes / MAX_ENTRY_SHARE).max(1),
                }
            }
        };
        Self {
            table,
            generation: CachePadded::new(AtomicU64::new(0)),
            near: ThreadLocal::new(),
        }
    }

    /// Whether entries are weighed (the table is bounded by bytes): only
    /// then is a `weigh` given to the methods below called.
    pub(crate) fn weighs(&self) -> bool {
        matches!(self.table, Table::Bytes { .. })
    }

    /// Marks a change of the table: every near slot filled before is void.
    #[inline]
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The value under `key` unless it expired at or before `now`.
    #[inline]
    pub(crate) fn get(&self, key: &KeyHash, now: u64) -> Option<T> {
        let slot = Slot::from(*key);
        // Read before the table: see the module docs.
        let generation = self.generation.load(Ordering::Acquire);
        let near = self.near.get_or_default();
        let index = (key.0 as usize) % NEAR_SLOTS;
        // Whether the slot may be filled without taking it from a live
        // entry of another key; `None` while the slots are borrowed.
        let free = match near.slots.try_borrow() {
            Ok(slots) => match &slots[index] {
                Some(e) if e.generation == generation && e.expires_at > now => {
                    if e.slot == slot {
                        return Some(e.value.clone());
                    }
                    Some(false)
                }
                _ => Some(true),
            },
            Err(_) => None,
        };
        self.get_far(slot, generation, near, index, now, free)
    }

    /// The table read behind [`LocalTable::get`], filling the near slot.
    /// A count-bounded table reads as it did before byte budgets existed,
    /// after one test of the table's kind.
    #[inline(never)]
    fn get_far(
        &self,
        slot: Slot,
        generation: u64,
        near: &CachePadded<Near<T>>,
        index: usize,
        now: u64,
        free: Option<bool>,
    ) -> Option<T> {
        let entry = match &self.table {
            Table::Count(table) => table.get(&slot)?,
            Table::Bytes { table, .. } => {
                let weighed = table.get(&slot)?;
                // Heavy values stay out of the near slots (module docs).
                let free = free.filter(|_| weighed.weight <= NEAR_MAX_WEIGHT);
                return self.serve_far(slot, weighed.entry, generation, near, index, now, free);
            }
        };
        self.serve_far(slot, entry, generation, near, index, now, free)
    }

    /// Serves `entry`, read from the table, unless it expired (then drops
    /// it); fills the near slot as `free` allows (`None`: not at all).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn serve_far(
        &self,
        slot: Slot,
        entry: Entry<T>,
        generation: u64,
        near: &CachePadded<Near<T>>,
        index: usize,
        now: u64,
        free: Option<bool>,
    ) -> Option<T> {
        if entry.expires_at > now {
            let reads = near.far_reads.get().wrapping_add(1);
            near.far_reads.set(reads);
            let fill = match free {
                Some(free) => free || reads % TAKEOVER_EVERY == 0,
                None => false,
            };
            if fill {
                if let Ok(mut slots) = near.slots.try_borrow_mut() {
                    let old = slots[index].replace(NearEntry {
                        slot,
                        generation,
                        expires_at: entry.expires_at,
                        value: entry.value.clone(),
                    });
                    drop(slots);
                    // The old value's destructor may use this table again.
                    drop(old);
                }
            }
            return Some(entry.value);
        }
        // Expired entries are never served, near or far: no bump needed.
        match &self.table {
            Table::Count(table) => {
                table.remove_if(&slot, |e| e.expires_at <= now);
            }
            Table::Bytes { table, .. } => {
                table.remove_if(&slot, |w| w.entry.expires_at <= now);
            }
        }
        None
    }

    /// When the entry under `key` expires, if it is live at `now`: for a
    /// memo built with refresh ahead, off the hit path of every other memo.
    pub(crate) fn expires_at(&self, key: &KeyHash, now: u64) -> Option<u64> {
        let slot = Slot::from(*key);
        let expires_at = match &self.table {
            Table::Count(table) => table.get(&slot)?.expires_at,
            Table::Bytes { table, .. } => table.get(&slot)?.entry.expires_at,
        };
        (expires_at > now).then_some(expires_at)
    }

    /// The weight `value` is stored with in a byte-bounded table (`None`:
    /// too heavy to store), given what `weigh` says of it.
    fn weight_of(&self, value: &T, weigh: impl FnOnce(&T) -> u64) -> Option<u64> {
        let Table::Bytes {
            floor, max_entry, ..
        } = &self.table
        else {
            return Some(1);
        };
        let weight = weigh(value).saturating_add(ENTRY_OVERHEAD);
        // The floor never makes an entry too heavy: with fewer than 16
        // entries allowed it is capped, and the count bound is 16.
        (weight <= *max_entry).then(|| weight.max(*floor).min(*max_entry))
    }

    /// Stores `value` under `key` until `expires_at`. `weigh` says how
    /// many bytes the value holds (asked only of a byte-bounded table).
    /// A value too heavy to store leaves nothing under `key`: not the
    /// value, not the one it replaces.
    pub(crate) fn insert(
        &self,
        key: KeyHash,
        value: T,
        expires_at: u64,
        weigh: impl FnOnce(&T) -> u64,
    ) -> Stored {
        let slot = Slot::from(key);
        let entry = Entry { value, expires_at };
        let stored = match &self.table {
            Table::Count(table) => {
                table.insert(slot, entry);
                Stored::Yes
            }
            Table::Bytes { table, .. } => match self.weight_of(&entry.value, weigh) {
                Some(weight) => {
                    table.insert(slot, Weighed { entry, weight });
                    Stored::Yes
                }
                None => {
                    table.remove(&slot);
                    Stored::TooLarge
                }
            },
        };
        self.changed();
        stored
    }

    /// Inserts only when no live entry is there; true when inserted.
    pub(crate) fn insert_if_absent(
        &self,
        key: KeyHash,
        value: T,
        expires_at: u64,
        now: u64,
        weigh: impl FnOnce(&T) -> u64,
    ) -> bool {
        let slot = Slot::from(key);
        let inserted = match &self.table {
            Table::Count(table) => {
                let fresh = Entry { value, expires_at };
                insert_if_absent(table, &slot, fresh, now, |e| e)
            }
            Table::Bytes { table, .. } => {
                let Some(weight) = self.weight_of(&value, weigh) else {
                    return false;
                };
                let fresh = Weighed {
                    entry: Entry { value, expires_at },
                    weight,
                };
                insert_if_absent(table, &slot, fresh, now, |w| &w.entry)
            }
        };
        if inserted {
            self.changed();
        }
        inserted
    }

    /// Replaces the live value under `key` through `update` (given `None`
    /// when absent or expired; returning `None` leaves the table as it
    /// is), atomically with respect to other updates of the same key.
    /// Returns what `update` returned. A replacement is weighed by `weigh`
    /// in a byte-bounded table; one too heavy removes the entry.
    pub(crate) fn update<R>(
        &self,
        key: KeyHash,
        now: u64,
        weigh: impl Fn(&T) -> u64,
        update: impl FnOnce(Option<&Entry<T>>) -> (Option<Entry<T>>, R),
    ) -> R {
        let slot = Slot::from(key);
        let result = match &self.table {
            Table::Count(table) => update_in(table, &slot, now, |e| e, Some, update),
            Table::Bytes { table, .. } => update_in(
                table,
                &slot,
                now,
                |w| &w.entry,
                |entry| {
                    let weight = self.weight_of(&entry.value, &weigh)?;
                    Some(Weighed { entry, weight })
                },
                update,
            ),
        };
        self.changed();
        match result {
            Some(r) => r,
            // `entry` always runs the callback or hands out a guard, so this
            // arm is unreachable; being defensive costs nothing here.
            None => self.update_fallback(),
        }
    }

    #[cold]
    fn update_fallback<R>(&self) -> R {
        unreachable!("quick_cache::entry neither ran the callback nor returned a guard")
    }

    pub(crate) fn remove(&self, key: &KeyHash) -> bool {
        let slot = Slot::from(*key);
        let removed = match &self.table {
            Table::Count(table) => table.remove(&slot).is_some(),
            Table::Bytes { table, .. } => table.remove(&slot).is_some(),
        };
        // Even when absent from the table: a near slot may still hold it
        // (the table evicted it since).
        self.changed();
        removed
    }

    pub(crate) fn clear(&self) {
        match &self.table {
            Table::Count(table) => table.clear(),
            Table::Bytes { table, .. } => table.clear(),
        }
        self.changed();
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        match &self.table {
            Table::Count(table) => table.len(),
            Table::Bytes { table, .. } => table.len(),
        }
    }

    /// What the entries held weigh: bytes in a byte-bounded table (as
    /// weighed when stored, bookkeeping included), else their number.
    pub(crate) fn weight(&self) -> u64 {
        match &self.table {
            Table::Count(table) => table.weight(),
            Table::Bytes { table, .. } => table.weight(),
        }
    }
}

/// [`LocalTable::insert_if_absent`] on one kind of table.
fn insert_if_absent<V, W, T>(
    table: &QuickCache<Slot, V, W, PassThroughHash, Lifecycle<V>>,
    slot: &Slot,
    fresh: V,
    now: u64,
    entry_of: impl Fn(&V) -> &Entry<T>,
) -> bool
where
    V: Clone,
    W: Weighter<Slot, V> + Clone,
{
    let mut fresh = Some(fresh);
    match table.entry(slot, None, |_, existing| {
        if entry_of(existing).expires_at > now {
            EntryAction::Retain(false)
        } else if let Some(entry) = fresh.take() {
            *existing = entry;
            EntryAction::Retain(true)
        } else {
            EntryAction::Retain(false)
        }
    }) {
        EntryResult::Retained(inserted) => inserted,
        EntryResult::Vacant(guard) => match fresh.take() {
            Some(entry) => guard.insert(entry).is_ok(),
            None => false,
        },
        _ => false,
    }
}

/// [`LocalTable::update`] on one kind of table: `entry_of` reads a stored
/// value's entry, `store` makes one to store (`None`: too heavy).
fn update_in<V, W, T, R>(
    table: &QuickCache<Slot, V, W, PassThroughHash, Lifecycle<V>>,
    slot: &Slot,
    now: u64,
    entry_of: impl Fn(&V) -> &Entry<T>,
    store: impl Fn(Entry<T>) -> Option<V>,
    update: impl FnOnce(Option<&Entry<T>>) -> (Option<Entry<T>>, R),
) -> Option<R>
where
    V: Clone,
    W: Weighter<Slot, V> + Clone,
{
    let mut update = Some(update);
    let mut result = None;
    let outcome = table.entry(slot, None, |_, existing| {
        let Some(update) = update.take() else {
            return EntryAction::Retain(());
        };
        let current = entry_of(existing);
        let live = (current.expires_at > now).then_some(current);
        let (replacement, r) = update(live);
        result = Some(r);
        match replacement.map(&store) {
            None => EntryAction::Retain(()),
            Some(Some(value)) => {
                *existing = value;
                EntryAction::Retain(())
            }
            // Too heavy: the older value goes too.
            Some(None) => EntryAction::Remove,
        }
    });
    if let EntryResult::Vacant(guard) = outcome {
        if let Some(update) = update.take() {
            let (replacement, r) = update(None);
            result = Some(r);
            if let Some(value) = replacement.and_then(&store) {
                let _ = guard.insert(value);
            }
        }
    }
    result
}

impl<T: Clone + Send> std::fmt::Debug for LocalTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTable")
            .field("len", &self.len())
            .field("weight", &self.weight())
            .field("by_bytes", &self.weighs())
            .finish()
    }
}

/// Keys are already uniform 128-bit hashes: fold them instead of hashing
/// them again.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PassThroughHash;

impl BuildHasher for PassThroughHash {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 ^= i;
    }

    /// A [`KeyHash`]'s 128 bits (the groups of a memo), folded.
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.0 ^= (i as u64) ^ ((i >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used for `KeyHash`, but keep any other input well mixed.
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
}

#[cfg(test)]
mod tests;
