//! Store faults: counted always, logged once per burst.
//!
//! A dead Redis under load fails every request's cache call; logging each
//! would bury the log. The first fault of a burst is logged at `warn`, the
//! rest are counted and summarised when the next burst starts.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;

/// Quiet period after a logged fault.
const BURST_MS: u64 = 10_000;

#[derive(Debug, Default)]
pub(crate) struct FaultLog {
    total: AtomicU64,
    suppressed: AtomicU64,
    /// Clock reading of the last logged fault, plus one (0 = never).
    last_logged: AtomicU64,
}

impl FaultLog {
    pub(crate) fn record(&self, now_ms: u64, operation: &str, error: &Error) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let last = self.last_logged.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last - 1) >= BURST_MS;
        if due
            && self
                .last_logged
                .compare_exchange(last, now_ms + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let suppressed = self.suppressed.swap(0, Ordering::AcqRel);
            tracing::warn!(
                operation,
                error = %error,
                cause = ?std::error::Error::source(error).map(ToString::to_string),
                faults_since_last_report = suppressed,
                "cache store fault; serving from the source (fail-open)"
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}
