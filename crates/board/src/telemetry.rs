//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`:
//! one line per request, from `http::access`).
//!
//! Lines are written by a background thread, in batches, never by the
//! thread serving a request: a `write` to stderr per request (a pipe, a
//! file, a terminal) cost the board a fifth of its rate on a cached page.
//! The queue is bounded ([`QUEUE_LINES`]); when a flood outruns the writer,
//! lines beyond it are dropped rather than held in memory or waited for,
//! and counted ([`dropped_lines`], `board_log_lines_dropped_total` in
//! `/metrics`).

use std::io::{BufWriter, IsTerminal};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Most log lines waiting for the writer thread at once. A request's line
/// is at most a few hundred bytes (its path is cut, see `http::access`),
/// so the queue holds a few MiB at most.
pub const QUEUE_LINES: usize = 16_384;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines dropped so far because the writer thread was behind (0 when
/// [`init`] was not called).
///
/// ```
/// assert_eq!(board::telemetry::dropped_lines(), 0);
/// ```
pub fn dropped_lines() -> usize {
    DROPPED.get().map_or(0, ErrorCounter::dropped_lines)
}

/// Keeps the writer thread alive; dropping it writes out what is queued.
/// Hold it for as long as the process logs (in `main`).
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(Option<WorkerGuard>);

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGuard")
            .field("installed", &self.0.is_some())
            .finish()
    }
}

/// Installs the global subscriber; a second call installs nothing and
/// returns an empty guard.
///
/// ```
/// let _logs = board::telemetry::init("warn");
/// tracing::warn!("written by the log thread");
/// ```
pub fn init(default_filter: &str) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUE_LINES)
        .lossy(true)
        .thread_name("board-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let dropped = writer.error_counter();
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi)
        .try_init()
        .is_ok();
    if installed {
        let _ = DROPPED.set(dropped);
    }
    LogGuard(installed.then_some(guard))
}
