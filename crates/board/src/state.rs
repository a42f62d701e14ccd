//! What every handler shares: the data layer, the CSRF key, the login
//! limiter and the per-request settings. Rendering lives in the HTTP
//! layer, reads and writes in [`data`](crate::data).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use memocache::response::ResponseCacheLayer;
use memocache::{Cache, Fragments};

use crate::auth::csrf::CsrfKey;
use crate::auth::ratelimit::LoginLimiter;
use crate::data::Data;

/// Settings handlers read on every request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest image, bytes.
    pub upload_limit: u64,
    /// Largest image side, pixels.
    pub max_image_side: u32,
    /// How long a login lasts.
    pub session_lifetime: Duration,
    /// The clock sessions start and expire by.
    pub session_clock: crate::auth::clock::SessionClock,
    /// Mark cookies `Secure`.
    pub secure_cookies: bool,
}

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// Every read and write of the board's data.
    pub data: Data,
    /// The cache the memos and counters live in (for `/metrics`).
    pub cache: Cache,
    /// CSRF token key.
    pub csrf: CsrfKey,
    /// Login rate limits.
    pub limiter: LoginLimiter,
    /// Per-request settings.
    pub limits: Limits,
    /// Prefix of image URLs: `/media/` or the configured base URL.
    pub media_base: String,
    /// The bounded pools for password hashing and image decoding.
    pub workers: Arc<crate::workers::Workers>,
    /// Sign in with OpenID Connect: the providers (none by default).
    pub oidc: Arc<crate::oidc::Oidc>,
    /// Whole public pages (`/`, `/image/*`) as anonymous visitors get
    /// them, with ETags; forgotten with the memos they read.
    pub pages: ResponseCacheLayer,
    /// Rendered pieces every visitor shares (the home page's list).
    pub fragments: Fragments,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

/// Whether `cache` keeps an in-process L1 coherent through a bus.
pub fn is_tiered(cache: &Cache) -> bool {
    matches!(cache.config().store, memocache::StoreConfig::Tiered { .. })
}
