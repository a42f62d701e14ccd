//! Building the app from settings: open stores, build the cache and memos,
//! bind the listener (port 0 allowed), then serve until stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use memocache::Cache;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

use crate::auth::csrf::CsrfKey;
use crate::auth::ratelimit::LoginLimiter;
use crate::config::Settings;
use crate::data::{CursorKey, Data, DataSettings};
use crate::images::Rules;
use crate::state::{AppState, Inner, Limits, is_tiered};
use crate::store::Stores;
use crate::workers::Workers;

/// Why the board could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting is wrong; the message says which and why.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The database or media store could not be opened.
    #[error("{0}")]
    Storage(String),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl StartupError {
    /// The process exit code for this error: 2 for configuration, 1 else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) => 2,
            Self::Storage(_) | Self::Bind { .. } => 1,
        }
    }
}

/// A bound, not yet serving, board.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Opens everything and binds the listener.
    ///
    /// # Errors
    /// See [`StartupError`].
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let state = build_state(settings).await?;
        if settings.demo {
            crate::demo::fill_if_empty(&state.data)
                .await
                .map_err(StartupError::Storage)?;
        }
        let listener = TcpListener::bind(settings.address)
            .await
            .map_err(|source| StartupError::Bind {
                address: settings.address,
                source,
            })?;
        let router = crate::http::app(state.clone(), settings.request_timeout);
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The shared state (stores, cache, memos), for tests and tools.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until Ctrl-C or SIGTERM, then finishes requests in flight.
    ///
    /// # Errors
    /// When accepting connections fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown_signal())
            .await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// The prefix of image URLs: the configured base (ending in `/`) or the
/// board's own `/media/`.
fn media_base(settings: &Settings) -> Result<String, StartupError> {
    let Some(base) = settings.media_base_url.as_deref().filter(|b| !b.is_empty()) else {
        return Ok("/media/".into());
    };
    let absolute = url::Url::parse(base)
        .ok()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !absolute && !base.starts_with('/') {
        return Err(StartupError::Config(format!(
            "--media-base-url `{base}` must be an http(s) URL or a path starting with /"
        )));
    }
    Ok(if base.ends_with('/') {
        base.to_owned()
    } else {
        format!("{base}/")
    })
}

fn secret(settings: &Settings) -> Result<SecretString, StartupError> {
    match &settings.secret_key {
        Some(key) if key.expose_secret().len() < 32 => Err(StartupError::Config(
            "--secret-key must be at least 32 characters".into(),
        )),
        Some(key) => Ok(key.clone()),
        None => {
            tracing::info!(
                "no --secret-key given: using a random one (open forms need a reload after a restart)"
            );
            Ok(SecretString::from(crate::auth::random_hex(32)))
        }
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(config_error)`
fn config_error(error: memocache::Error) -> StartupError {
    StartupError::Config(format!("{error:#}"))
}

/// `all_messages`' timeout when none is given.
pub const MESSAGES_CACHE_TIMEOUT: Duration = Duration::from_secs(5);

/// `all_messages`' timeout with a tiered cache when none is given: its bus
/// makes every forget synchronous across the fleet, so the timeout need
/// not bound staleness.
pub const TIERED_MESSAGES_CACHE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The `--messages-cache-timeout` given, or the default for `cache`'s kind.
fn messages_timeout(settings: &Settings, cache: &Cache) -> Duration {
    settings.messages_cache_timeout.unwrap_or_else(|| {
        if is_tiered(cache) {
            TIERED_MESSAGES_CACHE_TIMEOUT
        } else {
            MESSAGES_CACHE_TIMEOUT
        }
    })
}

/// The hashing and decoding pools, sized by the settings or the machine.
fn workers(settings: &Settings) -> Workers {
    let size = |n: Option<u32>| n.map_or_else(crate::workers::default_size, |n| n as usize);
    Workers::new(
        size(settings.hash_concurrency),
        size(settings.decode_concurrency),
        settings.busy_wait,
        Rules {
            max_side: settings.max_image_side,
            decode_memory: settings.decode_memory,
            max_stored_side: settings.max_stored_side,
        },
    )
}

/// Builds the state the router runs on.
///
/// # Errors
/// See [`StartupError`].
pub async fn build_state(settings: &Settings) -> Result<AppState, StartupError> {
    let media_base = media_base(settings)?;
    let secret = secret(settings)?;
    let cache = Cache::from_url(&settings.cache_url)
        .map_err(|e| StartupError::Config(format!("--cache-url: {e}")))?;
    let stores = Stores::open(&settings.database_url)
        .await
        .map_err(|e| match e {
            crate::store::OpenError::Url(m) => StartupError::Config(format!("--database-url: {m}")),
            crate::store::OpenError::Database(m) => StartupError::Storage(m),
        })?;
    let media = crate::media::open(&settings.media_url)
        .map_err(|m| StartupError::Config(format!("--media-url: {m}")))?;
    let csrf = CsrfKey::new(&secret);
    let data = Data::new(
        stores,
        media,
        &cache,
        csrf.clone(),
        CursorKey::new(&secret),
        DataSettings {
            page_size: settings.page_size,
            media_base: media_base.clone(),
            user_timeout: settings.user_cache_timeout,
            session_timeout: settings.session_cache_timeout,
            messages_timeout: messages_timeout(settings, &cache),
            my_messages_timeout: settings.my_messages_cache_timeout,
        },
    )
    .map_err(config_error)?;
    let limiter = LoginLimiter::new(
        cache.clone(),
        settings.login_failures_per_account,
        settings.login_failures_per_address,
        settings.login_window,
    );
    Ok(AppState::new(Inner {
        data,
        csrf,
        limiter,
        limits: Limits {
            upload_limit: settings.upload_limit,
            max_image_side: settings.max_image_side,
            session_lifetime: settings.session_lifetime,
            secure_cookies: settings.secure_cookies,
        },
        media_base,
        cache,
        workers: Arc::new(workers(settings)),
    }))
}
