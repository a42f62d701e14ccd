//! The outcome of a check: counts per register kind, the violations, the
//! worst lag, and a readable summary of them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::{ReadOp, WriteOp};

/// How many violations [`Report`]'s `Display` lists before eliding the rest.
const SHOWN_VIOLATIONS: usize = 20;

/// A read that saw an older version after a newer one was acknowledged.
///
/// ```
/// use std::time::Duration;
/// use testkit::History;
///
/// let t = History::now();
/// let history = History::new();
/// history.write("msg:abc", 1, t, t); // posted
/// history.write("msg:abc", 2, t, t); // deleted
/// history.read("msg:abc", t + Duration::from_millis(40), t + Duration::from_millis(45), 1);
/// let report = history.check(Duration::from_millis(500));
/// let worst = report.worst_lag().expect("one read lagged");
/// assert_eq!((worst.read.observed, worst.missed.version), (1, 2));
/// assert_eq!(worst.lag, Duration::from_millis(40));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Staleness {
    /// The read that saw the older state.
    pub read: ReadOp,
    /// The newer write it missed: of those acknowledged before the read
    /// began, the one acknowledged first.
    pub missed: WriteOp,
    /// From the missed write's acknowledgement to the read's start.
    pub lag: Duration,
}

/// A read that broke one of the rules.
///
/// ```
/// use std::time::Duration;
/// use testkit::{History, ViolationKind};
///
/// let t = History::now();
/// let history = History::new();
/// history.read("msg:abc", t, t, 3);
/// let report = history.check(Duration::ZERO);
/// assert_eq!(report.violations()[0].kind, ViolationKind::NeverWritten);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Violation {
    /// The offending read.
    pub read: ReadOp,
    /// Which rule it broke.
    pub kind: ViolationKind,
}

/// The rule a [`Violation`] broke.
///
/// ```
/// use std::time::Duration;
/// use testkit::{History, ViolationKind};
///
/// let t = History::now();
/// let history = History::new();
/// history.read("msg:abc", t, t, 1);
/// history.write("msg:abc", 1, t + Duration::from_millis(5), t + Duration::from_millis(9));
/// let report = history.check(Duration::ZERO);
/// assert!(matches!(
///     &report.violations()[0].kind,
///     ViolationKind::BeforeWrite { early, .. } if *early == Duration::from_millis(5)
/// ));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViolationKind {
    /// The read began more than the bound after a newer write was
    /// acknowledged, and still saw the older version.
    Stale {
        /// The newer write, acknowledged first among those missed.
        missed: WriteOp,
        /// From its acknowledgement to the read's start (more than the
        /// bound).
        lag: Duration,
    },
    /// The observed version is neither 0 nor written by any recorded write.
    NeverWritten,
    /// Every write of the observed version was invoked after the read
    /// returned.
    BeforeWrite {
        /// The write of that version invoked first.
        write: WriteOp,
        /// From the read's return to that write's invocation.
        early: Duration,
    },
}

impl Violation {
    /// The write a stale read missed; `None` for the other kinds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use testkit::History;
    ///
    /// let t = History::now();
    /// let history = History::new();
    /// history.write("session:xyz", 1, t, t); // logged out
    /// history.read("session:xyz", t + Duration::from_secs(2), t + Duration::from_secs(2), 0);
    /// let report = history.check(Duration::from_secs(1));
    /// assert_eq!(report.violations()[0].missed().map(|w| w.version), Some(1));
    /// ```
    #[must_use]
    pub fn missed(&self) -> Option<&WriteOp> {
        match &self.kind {
            ViolationKind::Stale { missed, .. } => Some(missed),
            _ => None,
        }
    }
}

/// Operation counts of one register kind (the name's part before its
/// first `:`).
///
/// ```
/// use std::time::Duration;
/// use testkit::History;
///
/// let t = History::now();
/// let history = History::new();
/// history.write("msg:abc", 1, t, t);
/// history.write_unknown("msg:def", 1, t);
/// history.read("session:xyz", t, t, 0);
/// let report = history.check(Duration::ZERO);
/// let msg = &report.kinds()["msg"];
/// assert_eq!((msg.acked_writes, msg.unknown_writes, msg.reads), (1, 1, 0));
/// assert_eq!(report.kinds()["session"].reads, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Writes acknowledged.
    pub acked_writes: usize,
    /// Writes of unknown outcome.
    pub unknown_writes: usize,
    /// Reads.
    pub reads: usize,
    /// Reads that saw an older version after a newer one was acknowledged,
    /// within the bound or not.
    pub lagging_reads: usize,
    /// Reads that broke a rule.
    pub violations: usize,
}

/// The outcome of [`History::check`](super::History::check): counts, violations and the worst lag.
///
/// Its `Display` is a readable summary listing the first 20 violations.
///
/// ```
/// use std::time::Duration;
/// use testkit::History;
///
/// let t = History::now();
/// let history = History::new();
/// history.write("msg:abc", 1, t, t);
/// history.read("msg:abc", t + Duration::from_secs(1), t + Duration::from_secs(1), 0);
/// let report = history.check(Duration::from_millis(250));
/// assert!(!report.is_ok());
/// let summary = report.to_string();
/// assert!(summary.contains("1 violation"), "{summary}");
/// assert!(summary.contains("stale: msg:abc read"), "{summary}");
/// ```
#[derive(Clone, Debug)]
pub struct Report {
    bound: Duration,
    origin: Instant,
    kinds: BTreeMap<String, Counts>,
    violations: Vec<Violation>,
    worst: Option<Staleness>,
}

impl Report {
    /// A report; `origin` is the instant times are shown from.
    pub(super) fn new(
        bound: Duration,
        origin: Instant,
        kinds: BTreeMap<String, Counts>,
        violations: Vec<Violation>,
        worst: Option<Staleness>,
    ) -> Self {
        Self {
            bound,
            origin,
            kinds,
            violations,
            worst,
        }
    }

    /// Whether no read broke a rule.
    ///
    /// ```
    /// let report = testkit::History::new().check(std::time::Duration::ZERO);
    /// assert!(report.is_ok());
    /// ```
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// Panics with the summary if any read broke a rule.
    ///
    /// ```should_panic
    /// use std::time::Duration;
    /// use testkit::History;
    ///
    /// let t = History::now();
    /// let history = History::new();
    /// history.read("msg:abc", t, t, 1); // never written
    /// history.check(Duration::from_millis(500)).assert_ok();
    /// ```
    ///
    /// # Panics
    /// If there are violations.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.is_ok(), "{self}");
    }

    /// The allowed staleness the history was checked against.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let report = testkit::History::new().check(Duration::from_millis(500));
    /// assert_eq!(report.bound(), Duration::from_millis(500));
    /// ```
    #[must_use]
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// The violations, ordered by the read's start.
    ///
    /// ```
    /// let report = testkit::History::new().check(std::time::Duration::ZERO);
    /// assert!(report.violations().is_empty());
    /// ```
    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// The read that lagged longest behind an acknowledged newer write,
    /// within the bound or not; `None` if no read ever saw an older version
    /// after a newer one was acknowledged. Reads that broke another rule
    /// are left out.
    ///
    /// ```
    /// use std::time::Duration;
    /// use testkit::History;
    ///
    /// let t = History::now();
    /// let ms = Duration::from_millis;
    /// let history = History::new();
    /// history.write("msg:abc", 1, t, t);
    /// history.read("msg:abc", t + ms(20), t + ms(25), 0);
    /// history.read("msg:abc", t + ms(70), t + ms(75), 0);
    /// history.read("msg:abc", t + ms(90), t + ms(95), 1);
    /// let report = history.check(ms(100));
    /// assert_eq!(report.worst_lag().map(|s| s.lag), Some(ms(70)));
    /// ```
    #[must_use]
    pub fn worst_lag(&self) -> Option<&Staleness> {
        self.worst.as_ref()
    }

    /// Operation counts per register kind (the name's part before its
    /// first `:`), in name order.
    ///
    /// ```
    /// let t = testkit::History::now();
    /// let history = testkit::History::new();
    /// history.read("session:xyz", t, t, 0);
    /// let report = history.check(std::time::Duration::ZERO);
    /// assert_eq!(report.kinds().keys().collect::<Vec<_>>(), ["session"]);
    /// ```
    #[must_use]
    pub fn kinds(&self) -> &BTreeMap<String, Counts> {
        &self.kinds
    }

    /// The counts of all kinds added up.
    ///
    /// ```
    /// let t = testkit::History::now();
    /// let history = testkit::History::new();
    /// history.write("msg:abc", 1, t, t);
    /// history.read("session:xyz", t, t, 0);
    /// let total = history.check(std::time::Duration::ZERO).total();
    /// assert_eq!((total.acked_writes, total.reads), (1, 1));
    /// ```
    #[must_use]
    pub fn total(&self) -> Counts {
        self.kinds
            .values()
            .fold(Counts::default(), |sum, c| Counts {
                acked_writes: sum.acked_writes + c.acked_writes,
                unknown_writes: sum.unknown_writes + c.unknown_writes,
                reads: sum.reads + c.reads,
                lagging_reads: sum.lagging_reads + c.lagging_reads,
                violations: sum.violations + c.violations,
            })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        let n = self.violations.len();
        writeln!(
            f,
            "history checked against a {} staleness bound: {n} violation{}",
            Millis(self.bound),
            if n == 1 { "" } else { "s" },
        )?;
        writeln!(
            f,
            "  {:<12} {:>7} {:>7} {:>7} {:>7} {:>10}",
            "kind", "acked", "unknown", "reads", "lagging", "violations"
        )?;
        let rows = self.kinds.iter().map(|(k, c)| (k.as_str(), c));
        for (kind, c) in rows.chain([("(total)", &total)]) {
            writeln!(
                f,
                "  {kind:<12} {:>7} {:>7} {:>7} {:>7} {:>10}",
                c.acked_writes, c.unknown_writes, c.reads, c.lagging_reads, c.violations
            )?;
        }
        match &self.worst {
            Some(worst) => writeln!(
                f,
                "worst lag: {} ({} the bound): {} after v{} was acknowledged (at {})",
                Millis(worst.lag),
                if worst.lag > self.bound {
                    "beyond"
                } else {
                    "within"
                },
                self.describe_read(&worst.read),
                worst.missed.version,
                self.at(worst.missed.outcome.acked().unwrap_or(worst.missed.invoked)),
            )?,
            None => writeln!(
                f,
                "worst lag: none (no read saw an older version after a newer one was acknowledged)"
            )?,
        }
        if n > 0 {
            writeln!(f, "violations (first {} of {n}):", n.min(SHOWN_VIOLATIONS))?;
        }
        for violation in self.violations.iter().take(SHOWN_VIOLATIONS) {
            let read = self.describe_read(&violation.read);
            match &violation.kind {
                ViolationKind::Stale { missed, lag } => writeln!(
                    f,
                    "  stale: {read}, {} after v{} was acknowledged (at {})",
                    Millis(*lag),
                    missed.version,
                    self.at(missed.outcome.acked().unwrap_or(missed.invoked)),
                )?,
                ViolationKind::NeverWritten => {
                    writeln!(f, "  never written: {read}, a version no write wrote")?;
                }
                ViolationKind::BeforeWrite { write, early } => writeln!(
                    f,
                    "  before its write: {read}, {} before v{} was first written (at {})",
                    Millis(*early),
                    write.version,
                    self.at(write.invoked),
                )?,
            }
        }
        if n > SHOWN_VIOLATIONS {
            writeln!(f, "  ... and {} more", n - SHOWN_VIOLATIONS)?;
        }
        write!(f, "(times are from the history's first instant)")
    }
}

impl Report {
    fn at(&self, instant: Instant) -> impl fmt::Display {
        Offset(instant.saturating_duration_since(self.origin))
    }

    fn describe_read<'a>(&'a self, read: &'a ReadOp) -> impl fmt::Display + 'a {
        DisplayRead { report: self, read }
    }
}

struct DisplayRead<'a> {
    report: &'a Report,
    read: &'a ReadOp,
}

impl fmt::Display for DisplayRead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let read = self.read;
        write!(
            f,
            "{} read [{}, {}] saw v{}",
            read.register,
            self.report.at(read.invoked),
            self.report.at(read.returned),
            read.observed
        )
    }
}

/// A duration as milliseconds, or seconds from 1 s on.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < Duration::from_secs(1) {
            write!(f, "{:.1}ms", self.0.as_secs_f64() * 1e3)
        } else {
            write!(f, "{:.3}s", self.0.as_secs_f64())
        }
    }
}

/// A time as seconds after the history's first instant.
struct Offset(Duration);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{:.3}s", self.0.as_secs_f64())
    }
}
