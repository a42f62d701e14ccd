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
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
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

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
