//! The error type of the library.

use std::fmt;

/// What went wrong, for code that must react to the kind of failure.
///
/// ```
/// use memocache::{Cache, ErrorKind};
///
/// let error = Cache::from_url("nosuchstore://").unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::Config);
/// ```
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
    /// An [`Outbox`](crate::outbox::Outbox) could not record, list or
    /// remove invalidations (the application's database failed).
    Outbox,
}

/// An error of the cache library.
///
/// Store faults are only returned in strict mode (see
/// [`CacheConfig::strict`](crate::CacheConfig::strict)); by default the cache
/// fails open: it counts and logs the fault and behaves as a miss.
///
/// ```
/// use memocache::Cache;
///
/// match Cache::from_url("memory://?capacity=lots") {
///     Err(error) if error.is_config() => println!("bad cache URL: {error}"),
///     Err(error) => panic!("unexpected: {error}"),
///     Ok(_) => panic!("a capacity must be a number"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    fault: Fault,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a human-readable message, for
    /// [`RemoteStore`](crate::store::RemoteStore) implementations.
    ///
    /// ```
    /// use memocache::{Error, ErrorKind};
    ///
    /// let error = Error::new(ErrorKind::Store, "my store is down");
    /// assert!(error.is_store());
    /// assert_eq!(error.to_string(), "my store is down");
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            fault: Fault::Other,
            source: None,
        }
    }

    /// Attaches the underlying cause.
    ///
    /// ```
    /// use std::error::Error as _;
    /// use memocache::{Error, ErrorKind};
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// let error = Error::new(ErrorKind::Store, "cannot reach the store").with_source(io);
    /// assert_eq!(error.source().map(|s| s.to_string()).as_deref(), Some("refused"));
    /// ```
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    ///
    /// ```
    /// use memocache::{Error, ErrorKind};
    /// assert_eq!(Error::new(ErrorKind::Codec, "bad bytes").kind(), ErrorKind::Codec);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True for configuration errors (bad URL, bad option value).
    ///
    /// ```
    /// assert!(memocache::Cache::from_url("redis://h/?timeout_ms=soon").unwrap_err().is_config());
    /// ```
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }

    /// True when the store could not be reached or failed.
    ///
    /// ```
    /// use memocache::{Error, ErrorKind};
    /// assert!(Error::new(ErrorKind::Store, "down").is_store());
    /// assert!(!Error::new(ErrorKind::Config, "typo").is_store());
    /// ```
    pub fn is_store(&self) -> bool {
        self.kind == ErrorKind::Store
    }

    /// True when a store (or the bus) gave no answer in time: the mark of
    /// a silent partition or a stalled server, which opens its breaker at
    /// once.
    ///
    /// ```
    /// use memocache::{Error, ErrorKind};
    /// // Errors built outside the library are never timeouts.
    /// assert!(!Error::new(ErrorKind::Store, "down").is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.fault == Fault::Timeout
    }

    /// True when the store was not even asked: its breaker is open after
    /// a timeout or a burst of connection errors, and a background probe
    /// will close it (see [`Cache::store_breaker`](crate::Cache::store_breaker)).
    ///
    /// ```
    /// use memocache::{Error, ErrorKind};
    /// assert!(!Error::new(ErrorKind::Store, "down").is_breaker_open());
    /// ```
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
///
/// ```
/// fn cache() -> memocache::Result<memocache::Cache> {
///     memocache::Cache::from_url("memory://")
/// }
/// assert!(cache().is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A store fault with its cause.
#[cfg(any(feature = "redis", feature = "memcached", feature = "filesystem"))]
pub(crate) fn store_error(
    message: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
) -> Error {
    Error::new(ErrorKind::Store, message).with_source(source)
}
