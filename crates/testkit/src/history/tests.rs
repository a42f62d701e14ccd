//! Histories built by hand from one `Instant` plus offsets: each rule of the
//! checker, both sides of its boundary, and the report.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::{History, ViolationKind, WriteOutcome};

const BOUND: Duration = Duration::from_millis(500);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A fixed origin and a history: times are `t + ms(..)`.
fn setup() -> (Instant, History) {
    (Instant::now(), History::new())
}

#[test]
fn a_clean_history_passes() {
    let (t, h) = setup();
    // Message abc: posted (1), then deleted (2); message def never deleted.
    h.write("msg:abc", 1, t + ms(10), t + ms(20));
    h.write("msg:def", 1, t + ms(15), t + ms(30));
    h.read("msg:abc", t, t + ms(5), 0); // before the post
    h.read("msg:abc", t + ms(25), t + ms(40), 1);
    h.write("msg:abc", 2, t + ms(100), t + ms(120));
    h.read("msg:abc", t + ms(700), t + ms(710), 2);
    h.read("msg:def", t + ms(2000), t + ms(2010), 1);
    // Session xyz: live (0), then logged out (1).
    h.read("session:xyz", t + ms(50), t + ms(60), 0);
    h.write("session:xyz", 1, t + ms(300), t + ms(310));
    h.read("session:xyz", t + ms(900), t + ms(905), 1);

    let report = h.check(BOUND);
    report.assert_ok();
    assert!(report.worst_lag().is_none(), "{report}");
    let total = report.total();
    assert_eq!(
        (total.acked_writes, total.unknown_writes, total.reads),
        (4, 0, 6)
    );
    assert_eq!(total.lagging_reads, 0);
    assert_eq!(report.bound(), BOUND);
}

#[test]
fn a_read_after_ack_plus_bound_that_sees_the_old_version_is_stale_by_its_lag() {
    let (t, h) = setup();
    h.write("msg:abc", 1, t, t + ms(10));
    h.write("msg:abc", 2, t + ms(100), t + ms(150));
    // Began 650 ms after the delete was acknowledged: the message is still shown.
    h.read("msg:abc", t + ms(800), t + ms(820), 1);

    let report = h.check(BOUND);
    assert!(!report.is_ok());
    let [violation] = report.violations() else {
        panic!("one violation expected:\n{report}");
    };
    assert_eq!(violation.read.observed, 1);
    assert_eq!(violation.read.invoked, t + ms(800));
    let ViolationKind::Stale { missed, lag } = &violation.kind else {
        panic!("a stale read expected:\n{report}");
    };
    assert_eq!(missed.version, 2);
    assert_eq!(missed.outcome, WriteOutcome::Acked(t + ms(150)));
    assert_eq!(*lag, ms(650));
    assert_eq!(report.worst_lag().map(|s| s.lag), Some(ms(650)));
    assert_eq!(report.kinds()["msg"].violations, 1);
}

#[test]
fn the_missed_write_is_the_newer_one_acknowledged_first() {
    let (t, h) = setup();
    h.write("msg:abc", 1, t, t + ms(10));
    h.write("msg:abc", 2, t + ms(20), t + ms(30));
    // Still shows nothing at all, long after both writes.
    h.read("msg:abc", t + ms(1000), t + ms(1001), 0);

    let report = h.check(BOUND);
    let missed = report.violations()[0].missed().expect("stale");
    assert_eq!(missed.version, 1);
    assert_eq!(report.worst_lag().map(|s| s.lag), Some(ms(990)));
}

#[test]
fn a_read_that_overlaps_the_write_or_its_bound_may_see_either_version() {
    let (t, h) = setup();
    h.write("msg:abc", 1, t + ms(100), t + ms(200));
    for observed in [0, 1] {
        // Invoked before the write, returned during it.
        h.read("msg:abc", t + ms(50), t + ms(150), observed);
        // Entirely inside the write.
        h.read("msg:abc", t + ms(120), t + ms(130), observed);
        // After the ack, within the bound.
        h.read("msg:abc", t + ms(400), t + ms(410), observed);
        // Exactly at ack + bound: not yet *more* than the bound.
        h.read("msg:abc", t + ms(700), t + ms(710), observed);
    }
    let report = h.check(BOUND);
    report.assert_ok();
    // The measured figure still shows how far behind the old reads were.
    let worst = report.worst_lag().expect("some reads lagged");
    assert_eq!(worst.lag, BOUND);
    assert_eq!(worst.read.observed, 0);
    assert_eq!(report.total().lagging_reads, 2);

    // One tick later it is stale.
    h.read("msg:abc", t + ms(701), t + ms(710), 0);
    let report = h.check(BOUND);
    assert_eq!(report.violations().len(), 1, "{report}");
    assert_eq!(report.worst_lag().map(|s| s.lag), Some(ms(501)));
}

#[test]
fn unknown_outcome_writes_cause_no_false_positives() {
    let (t, h) = setup();
    // A post timed out: the server may or may not have applied it.
    h.write_unknown("msg:abc", 1, t);
    h.read("msg:abc", t + ms(5000), t + ms(5010), 0);
    h.read("msg:abc", t + ms(6000), t + ms(6010), 1);
    h.read("msg:abc", t + ms(7000), t + ms(7010), 0);
    // A logout that failed, then one that succeeded.
    h.write_unknown("session:xyz", 1, t + ms(100));
    h.write("session:xyz", 1, t + ms(200), t + ms(250));
    h.read("session:xyz", t + ms(300), t + ms(301), 0); // within bound
    h.read("session:xyz", t + ms(120), t + ms(130), 1); // the failed one landed

    let report = h.check(BOUND);
    report.assert_ok();
    let msg = report.kinds()["msg"];
    assert_eq!((msg.acked_writes, msg.unknown_writes, msg.reads), (0, 1, 3));
    assert_eq!(msg.lagging_reads, 0);

    // An unknown write never makes an older read stale, but an acknowledged
    // newer one still does.
    h.write("msg:abc", 2, t + ms(7100), t + ms(7200));
    h.read("msg:abc", t + ms(9000), t + ms(9001), 1);
    let report = h.check(BOUND);
    assert_eq!(report.violations().len(), 1, "{report}");
    assert_eq!(report.violations()[0].missed().map(|w| w.version), Some(2));
}

#[test]
fn a_read_of_a_version_never_written_is_a_violation() {
    let (t, h) = setup();
    h.write("msg:abc", 1, t, t + ms(10));
    h.read("msg:abc", t + ms(20), t + ms(30), 3);
    // Version 1 of another register does not count.
    h.read("msg:def", t + ms(20), t + ms(30), 1);
    // Version 0 is every register's initial state.
    h.read("msg:ghi", t + ms(20), t + ms(30), 0);

    let report = h.check(BOUND);
    let kinds: Vec<_> = report
        .violations()
        .iter()
        .map(|v| (v.read.register.as_str(), &v.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("msg:abc", &ViolationKind::NeverWritten),
            ("msg:def", &ViolationKind::NeverWritten)
        ],
        "{report}"
    );
    // A bogus read is not counted as lagging either.
    assert!(report.worst_lag().is_none());
}

#[test]
fn a_read_cannot_see_a_write_invoked_after_it_returned() {
    let (t, h) = setup();
    h.read("msg:abc", t, t + ms(10), 1);
    h.write_unknown("msg:abc", 1, t + ms(40));
    h.write("msg:abc", 1, t + ms(30), t + ms(50));
    // A read in flight when the write began may see it, even before the ack.
    h.read("msg:abc", t + ms(20), t + ms(30), 1);

    let report = h.check(BOUND);
    let [violation] = report.violations() else {
        panic!("one violation expected:\n{report}");
    };
    assert_eq!(violation.read.invoked, t);
    let ViolationKind::BeforeWrite { write, early } = &violation.kind else {
        panic!("a read before its write expected:\n{report}");
    };
    assert_eq!(write.invoked, t + ms(30));
    assert_eq!(*early, ms(20));
}

#[test]
fn many_threads_record_into_one_history() {
    let t = Instant::now();
    let history = Arc::new(History::new());
    thread::scope(|scope| {
        for client in 0..8_u64 {
            let history = Arc::clone(&history);
            scope.spawn(move || {
                for i in 0..100 {
                    let register = format!("msg:{client}-{i}");
                    let at = t + ms(i * 10);
                    history.write(register.as_str(), 1, at, at + ms(1));
                    history.read(register, at + ms(2), at + ms(3), 1);
                }
            });
        }
    });
    assert_eq!(history.len(), 1600);
    let report = history.check(Duration::ZERO);
    report.assert_ok();
    assert_eq!(report.kinds()["msg"].reads, 800);
}

#[test]
fn the_summary_lists_twenty_violations_and_counts_the_rest() {
    let (t, h) = setup();
    h.write("msg:abc", 1, t, t);
    for i in 0..25 {
        h.read("msg:abc", t + ms(1000 + i), t + ms(1000 + i), 0);
    }
    h.read("session:xyz", t, t, 9);
    let report = h.check(BOUND);
    let summary = report.to_string();
    assert!(summary.contains("26 violations"), "{summary}");
    assert!(summary.contains("violations (first 20 of 26)"), "{summary}");
    assert!(summary.contains("... and 6 more"), "{summary}");
    // Ordered by the read's start: the never-written read (at t) comes first.
    assert!(
        summary.contains("never written: session:xyz read [+0.000s, +0.000s] saw v9"),
        "{summary}"
    );
    assert!(
        summary.contains("stale: msg:abc read [+1.000s, +1.000s] saw v0, 1.000s after v1 was acknowledged (at +0.000s)"),
        "{summary}"
    );
    assert!(
        summary.contains("worst lag: 1.024s (beyond the bound)"),
        "{summary}"
    );
    assert_eq!(summary.matches("\n  stale: ").count(), 19, "{summary}");
}

#[test]
#[should_panic(expected = "stale: msg:abc read")]
fn assert_ok_panics_with_the_summary() {
    let (t, h) = setup();
    h.write("msg:abc", 2, t, t + ms(1));
    h.read("msg:abc", t + ms(600), t + ms(601), 0);
    h.check(BOUND).assert_ok();
}

#[test]
#[should_panic(expected = "history: read of msg:abc returned before it was invoked")]
fn swapped_times_are_a_test_bug() {
    let (t, h) = setup();
    h.read("msg:abc", t + ms(1), t, 0);
}
