//! A history of operations recorded by a fleet test, and a checker for one
//! property: **no read is stale beyond a bound**.
//!
//! # The rule
//!
//! A fleet of servers with caches may serve an old state for a while after a
//! write: an invalidation travels, a cache entry expires. What it must not do
//! is serve it *for ever*, nor serve a state nobody wrote. For a bound `b`:
//!
//! - **Stale read.** A read `R` of register `r` that observed version `v` is
//!   stale if some *acknowledged* write `W` of `r` with version `w > v`
//!   satisfies `W.acked + b < R.invoked`: the read began more than `b` after
//!   the newer write was acknowledged and still saw the older state.
//! - **Never written.** A read may observe version 0 (every register starts
//!   there) or a version some recorded write (acknowledged or not) wrote.
//! - **Before its write.** A read may not observe a version all of whose
//!   writes were invoked after the read returned.
//!
//! A read that overlaps a write (it began before `W.acked + b`) may see
//! either state. A write whose outcome is unknown (the request failed or
//! timed out, so the server may or may not have applied it) is recorded with
//! [`History::write_unknown`]: reads may observe its version, and it never
//! makes an older read stale. Both rules together leave no false positives
//! from a fault schedule: only an acknowledged write obliges anyone.
//!
//! # The model
//!
//! Each *register* is named by a string (`"msg:abc"`, `"session:xyz"`) and
//! holds a version, a `u64` the test assigns: a message is `1` once posted
//! and `2` once deleted; a session is `0` while live and `1` once logged out.
//! Versions of one register are totally ordered, and each acknowledged write
//! moves it to a higher one. The part of a name before its first `:` is its
//! *kind*, under which the [`Report`] counts operations.
//!
//! Times are [`Instant`]s captured by the test around each request
//! ([`History::now`]), so checking is pure and needs no sleeping: unit tests
//! build histories by hand from one `Instant` plus offsets. A [`History`] is
//! `Send + Sync`: many tasks record into one `Arc<History>`.
//!
//! Besides the violations, the [`Report`] gives the *worst lag*: over all
//! reads, the longest time from a newer write's acknowledgement to the start
//! of a read that still saw the older state. It is the measured figure to
//! compare with the bound, even when no read exceeded it.
//!
//! The checker looks at one register at a time, in the spirit of Jepsen's
//! Knossos but for this single, cheap property: it is linear in the number
//! of reads times the writes per register.

mod report;
#[cfg(test)]
mod tests;

pub use report::{Counts, Report, Staleness, Violation, ViolationKind};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A concurrent record of the writes and reads of a fleet test, checked for
/// reads stale beyond a bound.
///
/// Registers are named by strings (`"msg:abc"`; the part before the first
/// `:` is the kind the [`Report`] counts by) and hold `u64` versions that
/// the test assigns, starting at 0; each acknowledged write moves a register
/// to a higher version. [`History::check`] reports a read of version `v` as
///
/// - **stale** if an acknowledged write of a version `w > v` was
///   acknowledged more than the bound before the read began;
/// - **never written** if `v` is neither 0 nor written by any recorded
///   write;
/// - **before its write** if every write of `v` was invoked after the read
///   returned.
///
/// A write of unknown outcome ([`History::write_unknown`]) may be seen or
/// not, and never makes a read stale. Times are [`Instant`]s the test takes
/// around each request ([`History::now`]). `Send + Sync`: share it in an
/// `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use testkit::History;
///
/// let history = Arc::new(History::new());
/// // A client posts message abc (version 1) ...
/// let invoked = History::now();
/// // ... POST /messages on server 0 ...
/// history.write("msg:abc", 1, invoked, History::now());
/// // ... and another asks server 1 whether the home page shows it.
/// let invoked = History::now();
/// // ... GET / on server 1: the message is there ...
/// history.read("msg:abc", invoked, History::now(), 1);
///
/// history.check(Duration::from_millis(500)).assert_ok();
/// ```
#[derive(Debug)]
pub struct History {
    created: Instant,
    ops: Mutex<Ops>,
}

#[derive(Debug, Default, Clone)]
struct Ops {
    writes: Vec<WriteOp>,
    reads: Vec<ReadOp>,
}

/// A recorded write: version `version` of `register`.
///
/// ```
/// use std::time::Duration;
/// use testkit::{History, WriteOutcome};
///
/// let t = History::now();
/// let history = History::new();
/// history.write("msg:abc", 1, t, t);
/// history.write("msg:abc", 2, t, t);
/// history.read("msg:abc", t + Duration::from_secs(1), t + Duration::from_secs(1), 1);
/// let report = history.check(Duration::from_millis(500));
/// let missed = report.violations()[0].missed().expect("a stale read");
/// assert_eq!((missed.version, missed.outcome), (2, WriteOutcome::Acked(t)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOp {
    /// The register written.
    pub register: String,
    /// The version written.
    pub version: u64,
    /// When the client sent the request.
    pub invoked: Instant,
    /// Whether, and when, the write was acknowledged.
    pub outcome: WriteOutcome,
}

/// Whether a write is known to have taken effect.
///
/// ```
/// use testkit::WriteOutcome;
///
/// let now = testkit::History::now();
/// assert_eq!(WriteOutcome::Acked(now).acked(), Some(now));
/// assert_eq!(WriteOutcome::Unknown.acked(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The server acknowledged the write at this time: every read that
    /// begins more than the bound later must see it (or a newer version).
    Acked(Instant),
    /// The request failed or timed out: the write may or may not have been
    /// applied, so reads may see it or not.
    Unknown,
}

impl WriteOutcome {
    /// The acknowledgement time, if acknowledged.
    ///
    /// ```
    /// use testkit::WriteOutcome;
    ///
    /// assert_eq!(WriteOutcome::Unknown.acked(), None);
    /// ```
    #[must_use]
    pub fn acked(self) -> Option<Instant> {
        match self {
            Self::Acked(at) => Some(at),
            Self::Unknown => None,
        }
    }
}

/// A recorded read of `register` that observed version `observed`.
///
/// ```
/// use std::time::Duration;
/// use testkit::History;
///
/// let t = History::now();
/// let history = History::new();
/// history.read("msg:abc", t, t + Duration::from_millis(3), 7);
/// let report = history.check(Duration::ZERO);
/// let read = &report.violations()[0].read;
/// assert_eq!((read.register.as_str(), read.observed), ("msg:abc", 7));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOp {
    /// The register read.
    pub register: String,
    /// When the client sent the request.
    pub invoked: Instant,
    /// When the response came back.
    pub returned: Instant,
    /// The version the response showed.
    pub observed: u64,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history.
    ///
    /// ```
    /// let history = testkit::History::new();
    /// assert!(history.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            created: Instant::now(),
            ops: Mutex::new(Ops::default()),
        }
    }

    /// The current time, to take just before sending a request and just
    /// after its response (or failure) comes back.
    ///
    /// ```
    /// let before = testkit::History::now();
    /// assert!(testkit::History::now() >= before);
    /// ```
    #[must_use]
    pub fn now() -> Instant {
        Instant::now()
    }

    /// Records a write of `version` to `register`, sent at `invoked` and
    /// acknowledged at `acked`.
    ///
    /// ```
    /// use testkit::History;
    ///
    /// let history = History::new();
    /// let invoked = History::now();
    /// history.write("session:xyz", 1, invoked, History::now()); // logged out
    /// assert_eq!(history.len(), 1);
    /// ```
    ///
    /// # Panics
    /// If `acked` is before `invoked` (the test swapped its times).
    pub fn write(
        &self,
        register: impl Into<String>,
        version: u64,
        invoked: Instant,
        acked: Instant,
    ) {
        let register = register.into();
        assert!(
            acked >= invoked,
            "history: write of {register} v{version} acknowledged before it was invoked"
        );
        self.push_write(WriteOp {
            register,
            version,
            invoked,
            outcome: WriteOutcome::Acked(acked),
        });
    }

    /// Records a write of `version` to `register`, sent at `invoked`, whose
    /// outcome is unknown: the request failed or timed out, and the server
    /// may or may not have applied it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use testkit::History;
    ///
    /// let t = History::now();
    /// let history = History::new();
    /// history.write_unknown("msg:abc", 1, t);
    /// // Later reads may see the message or not.
    /// history.read("msg:abc", t + Duration::from_secs(5), t + Duration::from_secs(5), 0);
    /// history.read("msg:abc", t + Duration::from_secs(6), t + Duration::from_secs(6), 1);
    /// assert!(history.check(Duration::ZERO).is_ok());
    /// ```
    pub fn write_unknown(&self, register: impl Into<String>, version: u64, invoked: Instant) {
        self.push_write(WriteOp {
            register: register.into(),
            version,
            invoked,
            outcome: WriteOutcome::Unknown,
        });
    }

    /// Records a read of `register`, sent at `invoked` and answered at
    /// `returned`, that observed `observed`.
    ///
    /// ```
    /// use testkit::History;
    ///
    /// let history = History::new();
    /// let invoked = History::now();
    /// history.read("session:xyz", invoked, History::now(), 0); // still live
    /// assert_eq!(history.len(), 1);
    /// ```
    ///
    /// # Panics
    /// If `returned` is before `invoked` (the test swapped its times).
    pub fn read(
        &self,
        register: impl Into<String>,
        invoked: Instant,
        returned: Instant,
        observed: u64,
    ) {
        let register = register.into();
        assert!(
            returned >= invoked,
            "history: read of {register} returned before it was invoked"
        );
        self.lock().reads.push(ReadOp {
            register,
            invoked,
            returned,
            observed,
        });
    }

    /// How many operations are recorded.
    ///
    /// ```
    /// let history = testkit::History::new();
    /// let t = testkit::History::now();
    /// history.write_unknown("msg:abc", 1, t);
    /// assert_eq!(history.len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        let ops = self.lock();
        ops.writes.len() + ops.reads.len()
    }

    /// Whether nothing is recorded yet.
    ///
    /// ```
    /// assert!(testkit::History::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the history recorded so far against the rules (see
    /// [`History`]), with `bound` as the allowed staleness.
    ///
    /// ```
    /// use std::time::Duration;
    /// use testkit::History;
    ///
    /// let t = History::now();
    /// let ms = Duration::from_millis;
    /// let history = History::new();
    /// history.write("msg:abc", 1, t, t + ms(10));
    /// // 300 ms after the ack the home page still lacks the message.
    /// history.read("msg:abc", t + ms(310), t + ms(320), 0);
    ///
    /// assert!(history.check(ms(500)).is_ok());
    /// assert_eq!(history.check(ms(500)).worst_lag().map(|s| s.lag), Some(ms(300)));
    /// assert_eq!(history.check(ms(100)).violations().len(), 1);
    /// ```
    #[must_use]
    pub fn check(&self, bound: Duration) -> Report {
        let ops = self.lock().clone();
        check(self.created, bound, ops)
    }

    fn push_write(&self, write: WriteOp) {
        self.lock().writes.push(write);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ops> {
        // A recording task that panicked leaves whole entries behind.
        self.ops.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The part of a register name before its first `:`.
fn kind_of(register: &str) -> &str {
    register.split_once(':').map_or(register, |(kind, _)| kind)
}

fn check(created: Instant, bound: Duration, ops: Ops) -> Report {
    let Ops { writes, mut reads } = ops;
    let origin = writes
        .iter()
        .map(|w| w.invoked)
        .chain(reads.iter().map(|r| r.invoked))
        .fold(created, Instant::min);
    let mut kinds = BTreeMap::<String, Counts>::new();
    let mut by_register = HashMap::<&str, Vec<&WriteOp>>::new();
    for write in &writes {
        let counts = kinds
            .entry(kind_of(&write.register).to_owned())
            .or_default();
        match write.outcome {
            WriteOutcome::Acked(_) => counts.acked_writes += 1,
            WriteOutcome::Unknown => counts.unknown_writes += 1,
        }
        by_register.entry(&write.register).or_default().push(write);
    }

    reads.sort_by_key(|r| (r.invoked, r.returned));
    let mut violations = Vec::new();
    let mut worst: Option<Staleness> = None;
    for read in reads {
        let counts = kinds.entry(kind_of(&read.register).to_owned()).or_default();
        counts.reads += 1;
        let writes = by_register
            .get(read.register.as_str())
            .map_or(&[][..], Vec::as_slice);
        if let Some(kind) = existence_violation(&read, writes) {
            counts.violations += 1;
            violations.push(Violation { read, kind });
            continue;
        }
        let Some(lagging) = lag_behind(&read, writes) else {
            continue;
        };
        counts.lagging_reads += 1;
        if lagging.lag > bound {
            counts.violations += 1;
            violations.push(Violation {
                read: read.clone(),
                kind: ViolationKind::Stale {
                    missed: lagging.missed.clone(),
                    lag: lagging.lag,
                },
            });
        }
        if worst.as_ref().is_none_or(|w| lagging.lag > w.lag) {
            worst = Some(Staleness {
                read,
                missed: lagging.missed.clone(),
                lag: lagging.lag,
            });
        }
    }
    Report::new(bound, origin, kinds, violations, worst)
}

/// A read's observed version must have been written (or be 0), and not
/// only by writes invoked after the read returned.
fn existence_violation(read: &ReadOp, writes: &[&WriteOp]) -> Option<ViolationKind> {
    if read.observed == 0 {
        return None;
    }
    let Some(first) = writes
        .iter()
        .filter(|w| w.version == read.observed)
        .min_by_key(|w| w.invoked)
    else {
        return Some(ViolationKind::NeverWritten);
    };
    // A write invoked before the read returned may have been seen.
    let early = first
        .invoked
        .checked_duration_since(read.returned)
        .filter(|early| !early.is_zero())?;
    Some(ViolationKind::BeforeWrite {
        write: (*first).clone(),
        early,
    })
}

/// The newer acknowledged write the read lags furthest behind (the one
/// acknowledged first), if the read began after its acknowledgement.
struct Lagging<'a> {
    missed: &'a WriteOp,
    lag: Duration,
}

fn lag_behind<'a>(read: &ReadOp, writes: &[&'a WriteOp]) -> Option<Lagging<'a>> {
    let (missed, acked) = writes
        .iter()
        .filter(|w| w.version > read.observed)
        .filter_map(|w| Some((*w, w.outcome.acked()?)))
        .min_by_key(|&(_, acked)| acked)?;
    let lag = read.invoked.checked_duration_since(acked)?;
    (!lag.is_zero()).then_some(Lagging { missed, lag })
}
