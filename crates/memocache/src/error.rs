//! The error type of the library.

use std::fmt;

/// What went wrong, for code that must react to the kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration value or cache URL is invalid.
    Config,
    /// The backend named by a configuration is known but not available in
    /// this build (a cargo feature is off, or the store is not written yet).
    Unsupported,
    /// A memo was built twice on one cache with the same name but different
    /// key or value types.
    MemoTypeMismatch,
    /// A stored value could not be encoded or decoded.
    Codec,
    /// The store could not be reached or answered with an error.
    Store,
    /// A stored value is not a number, so `inc`/`dec` cannot apply.
    NotANumber,
}

/// An error of the cache library.
///
/// Store faults are only returned in strict mode (see
/// [`CacheConfig::strict`](crate::CacheConfig::strict)); by default the cache
/// fails open: it counts and logs the fault and behaves as a miss.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    fault: Fault,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            fault: Fault::Other,
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True for configuration errors (bad URL, bad option value).
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }

    /// True when the store could not be reached or failed.
    pub fn is_store(&self) -> bool {
        self.kind == ErrorKind::Store
    }

    /// True when a store (or the bus) gave no answer in time: the mark of
    /// a silent partition or a stalled server, which opens its breaker at
    /// once.
    pub fn is_timeout(&self) -> bool {
        self.fault == Fault::Timeout
    }

    /// True when the store was not even asked: its breaker is open after
    /// a timeout or a burst of connection errors, and a background probe
    /// will close it (see [`Cache::store_breaker`](crate::Cache::store_breaker)).
    pub fn is_breaker_open(&self) -> bool {
        self.fault == Fault::BreakerOpen
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// A store error: no answer within the time limit.
    #[cfg_attr(not(any(feature = "redis", feature = "memcached")), allow(dead_code))]
    pub(crate) fn timed_out(mut self) -> Self {
        self.fault = Fault::Timeout;
        self
    }

    /// A store error: the breaker skipped the call.
    pub(crate) fn breaker_open(what: &str) -> Self {
        let mut error = Self::new(
            ErrorKind::Store,
            format!(
                "{what} skipped: its breaker is open (it timed out or failed repeatedly; a probe will close the breaker)"
            ),
        );
        error.fault = Fault::BreakerOpen;
        error
    }
}

/// Which store faults an error stands for, for the breakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Other,
    Timeout,
    BreakerOpen,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
