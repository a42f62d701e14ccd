//! Building the app from settings: open stores, build the cache and memos,
//! bind the listener (port 0 allowed), then serve until stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use memocache::Cache;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

use crate::auth::csrf::CsrfKey;
use crate::auth::ratelimit::{LoginLimiter, LoginLimits};
use crate::config::Settings;
use crate::data::{CursorKey, Data, DataSettings};
use crate::http::Edge;
use crate::images::Rules;
use crate::net::TrustedProxies;
use crate::server::{ConnLimits, ConnStats};
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

/// Raises the open-files limit to its hard limit (see
/// [`crate::server::raise_open_files_limit`]) and sizes the connection cap
/// from it; logs both limits and the cap.
fn connection_cap(wanted: u32) -> usize {
    let files = crate::server::raise_open_files_limit();
    let cap = crate::server::connection_cap(wanted, files.now);
    tracing::info!(
        open_files_at_start = ?files.before,
        open_files = ?files.now,
        open_files_hard = ?files.hard,
        max_connections = cap,
        "open-files limit and connection cap"
    );
    if cap < wanted as usize {
        tracing::warn!(
            wanted,
            cap,
            "--max-connections lowered to 80% of the open-files limit"
        );
    }
    cap
}

/// A bound, not yet serving, board.
pub struct Application {
    listener: TcpListener,
    app: crate::http::App,
    state: AppState,
    /// `--metrics-address`, bound, and its router.
    metrics: Option<(TcpListener, Router)>,
    limits: ConnLimits,
    connections: Arc<ConnStats>,
    /// The orphan-media sweep, unless `--media-sweep-interval 0`.
    media_sweep: Option<MediaSweep>,
}

/// `--media-sweep-interval` and `--media-sweep-grace`.
#[derive(Debug, Clone, Copy)]
struct MediaSweep {
    interval: Duration,
    grace: Duration,
}

/// How long after start the first media sweep runs (or the interval, if
/// shorter), so a starting board serves first.
pub const FIRST_SWEEP_DELAY: Duration = Duration::from_secs(60);

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
        let listener = bind(settings.address).await?;
        let trusted_proxies = Arc::new(TrustedProxies::new(settings.trusted_proxies.clone()));
        let metrics_token = match &settings.metrics_token {
            Some(token) if token.expose_secret().len() < 16 => {
                return Err(StartupError::Config(
                    "--metrics-token must be at least 16 characters".into(),
                ));
            }
            token => token.clone().map(Arc::new),
        };
        let connections = Arc::new(ConnStats::default());
        let edge = Edge {
            request_timeout: settings.request_timeout,
            trusted_proxies: Arc::clone(&trusted_proxies),
            metrics_token,
            connections: Arc::clone(&connections),
        };
        let metrics = match settings.metrics_address {
            Some(address) => Some((
                bind(address).await?,
                crate::http::metrics_app(state.clone(), &edge),
            )),
            None => None,
        };
        let app = crate::http::app(state.clone(), edge);
        let limits = ConnLimits {
            header_read_timeout: settings.header_read_timeout,
            idle_timeout: settings.idle_timeout,
            max_connections: connection_cap(settings.max_connections),
            max_per_address: settings.max_connections_per_address as usize,
            trusted_proxies,
        };
        let media_sweep = (!settings.media_sweep_interval.is_zero()).then_some(MediaSweep {
            interval: settings.media_sweep_interval,
            grace: settings.media_sweep_grace,
        });
        Ok(Self {
            listener,
            app,
            state,
            metrics,
            limits,
            connections,
            media_sweep,
        })
    }

    /// The address `/metrics` is served on with `--metrics-address`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The accept loop's counters (open connections, refusals).
    pub fn connections(&self) -> Arc<ConnStats> {
        Arc::clone(&self.connections)
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
    /// Meanwhile sweeps orphan media every `--media-sweep-interval`.
    ///
    /// # Errors
    /// When accepting connections fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let Self {
            listener,
            app,
            state,
            metrics,
            limits,
            connections,
            media_sweep,
        } = self;
        // Both stopped with the server (dropping the guards aborts them).
        let _relay = state.data.start_relay(&state.cache);
        let _sweeping = media_sweep.map(|sweep| {
            AbortOnDrop(tokio::spawn(sweep_media_periodically(
                state,
                sweep,
                FIRST_SWEEP_DELAY,
            )))
        });
        // The metrics listener is private: same bounds, its own counters.
        let metrics = metrics.map(|(listener, router)| {
            crate::server::serve(
                listener,
                router,
                limits.clone(),
                Arc::default(),
                until_stopped(),
            )
        });
        let metrics = async move {
            match metrics {
                Some(serving) => serving.await,
                None => Ok(()),
            }
        };
        let public = crate::server::serve(listener, app, limits, connections, until_stopped());
        let signal = async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        };
        let (public, metrics, ()) = tokio::join!(public, metrics, signal);
        public.and(metrics)
    }
}

/// A task that ends when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Aborts the task and waits until it has ended: after this, nothing
    /// it was doing is still running.
    #[cfg_attr(not(test), allow(dead_code))]
    async fn stop(mut self) {
        self.0.abort();
        // Dropped after the wait; aborting twice is harmless.
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the orphan-media sweep `first` after start, then every
/// `interval` after the previous run ended. A run's error or even its
/// panic is logged and the next run comes as planned. Runs happen inside
/// this task (not a task of their own), so once the task has ended after
/// an abort ([`AbortOnDrop::stop`]) no run is left in flight.
async fn sweep_media_periodically(state: AppState, sweep: MediaSweep, first: Duration) {
    use futures_util::FutureExt as _;
    tracing::info!(
        interval_s = sweep.interval.as_secs(),
        grace_s = sweep.grace.as_secs(),
        "media sweep scheduled"
    );
    let mut wait = sweep.interval.min(first);
    loop {
        tokio::time::sleep(wait).await;
        wait = sweep.interval;
        let run =
            std::panic::AssertUnwindSafe(state.data.sweep_media(sweep.grace, SystemTime::now()))
                .catch_unwind()
                .await;
        match run {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "media sweep failed"),
            Err(_) => tracing::error!("media sweep panicked"),
        }
    }
}

async fn bind(address: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartupError::Bind { address, source })
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
        None if settings.require_secret_key => Err(StartupError::Config(
            "no --secret-key (BOARD_SECRET_KEY) given and --require-secret-key is set: \
             give every instance the same key of at least 32 characters"
                .into(),
        )),
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

/// Longest `load_session` timeout with a cache other processes cannot
/// reach (`memory://`): how long a logout elsewhere may go unseen here.
pub const LOCAL_SESSION_CACHE_TIMEOUT: Duration = Duration::from_secs(5);

/// `--session-cache-timeout`, at most [`LOCAL_SESSION_CACHE_TIMEOUT`] when
/// the cache is in-process only: there a logout on another process of the
/// same database cannot forget this process's copy, so the timeout is what
/// ends the session here. Shared and tiered caches forget everywhere.
fn session_timeout(settings: &Settings, cache: &Cache) -> Duration {
    let configured = settings.session_cache_timeout;
    let in_process = matches!(cache.config().store, memocache::StoreConfig::Memory { .. });
    if in_process && (configured.is_zero() || configured > LOCAL_SESSION_CACHE_TIMEOUT) {
        LOCAL_SESSION_CACHE_TIMEOUT
    } else {
        configured
    }
}

/// Builds the state the router runs on.
///
/// # Errors
/// See [`StartupError`].
pub async fn build_state(settings: &Settings) -> Result<AppState, StartupError> {
    let media_base = media_base(settings)?;
    let secret = secret(settings)?;
    let cache = match &settings.cache_clock {
        None => Cache::from_url(&settings.cache_url),
        Some(clock) => memocache::CacheConfig::from_url(&settings.cache_url)
            .and_then(|config| Cache::with_clock(config, clock.clone())),
    }
    .map_err(|e| StartupError::Config(format!("--cache-url: {e}")))?;
    let stores = Stores::open(&settings.storage.database_url)
        .await
        .map_err(|e| match e {
            crate::store::OpenError::Url(m) => StartupError::Config(format!("--database-url: {m}")),
            crate::store::OpenError::Database(m) => StartupError::Storage(m),
        })?;
    let media = crate::media::open(&settings.storage.media_url)
        .map_err(|m| StartupError::Config(format!("--media-url: {m}")))?;
    let csrf = CsrfKey::new(&secret);
    let pages_timeout = messages_timeout(settings, &cache);
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
            session_timeout: session_timeout(settings, &cache),
            messages_timeout: messages_timeout(settings, &cache),
            my_messages_timeout: settings.my_messages_cache_timeout,
            posting: settings.post_limits(),
        },
    )
    .map_err(config_error)?;
    let limiter = LoginLimiter::new(
        cache.clone(),
        LoginLimits {
            per_account_address: settings.login_failures_per_account_address,
            per_account: settings.login_failures_per_account,
            per_address: settings.login_failures_per_address,
            window: settings.login_window,
            registrations_per_address: settings.registrations_per_address,
        },
    );
    let providers = settings.oidc_providers().map_err(StartupError::Config)?;
    let oidc = crate::oidc::Oidc::new(providers, &secret).map_err(StartupError::Config)?;
    Ok(AppState::new(Inner {
        oidc: Arc::new(oidc),
        data,
        csrf,
        limiter,
        limits: Limits {
            upload_limit: settings.upload_limit,
            max_image_side: settings.max_image_side,
            session_lifetime: settings.session_lifetime,
            session_clock: settings.session_clock.clone(),
            secure_cookies: settings.secure_cookies,
        },
        media_base,
        pages: crate::http::page_cache(&cache, pages_timeout),
        fragments: memocache::Fragments::with_capacity(&cache, 16).timeout(pages_timeout),
        cache,
        workers: Arc::new(workers(settings)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{ImageKind, MediaName};

    /// The scheduled sweep removes an old orphan by itself, runs again
    /// every interval, and stops when its guard is dropped (as at shutdown).
    #[tokio::test]
    async fn the_scheduled_sweep_removes_old_orphans_and_stops_with_the_server() {
        let dir = tempfile::tempdir().expect("dir");
        let media = dir.path().join("media");
        let mut settings = Settings::defaults();
        settings.storage.database_url =
            format!("sqlite://{}", dir.path().join("b.sqlite").display());
        settings.storage.media_url = format!("file://{}", media.display());
        let state = build_state(&settings).await.expect("state");
        let hour = Duration::from_secs(3600);
        let orphan = |age: Duration| {
            let state = state.clone();
            let media = media.clone();
            async move {
                let (name, _) = MediaName::fresh_pair(ImageKind::Png, ImageKind::Png);
                state
                    .data
                    .media()
                    .put(&name, bytes::Bytes::from_static(b"png"))
                    .await
                    .expect("put");
                let path = media.join(name.as_str());
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now() - age))
                    .expect("mtime");
                path
            }
        };
        let gone_soon = |path: std::path::PathBuf| async move {
            for _ in 0..200 {
                if !path.exists() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        };

        let first = orphan(2 * hour).await;
        let fresh = orphan(Duration::ZERO).await;
        let sweep = MediaSweep {
            interval: Duration::from_millis(20),
            grace: hour,
        };
        let sweeping = AbortOnDrop(tokio::spawn(sweep_media_periodically(
            state.clone(),
            sweep,
            Duration::ZERO,
        )));
        assert!(gone_soon(first).await, "the first run removed nothing");
        let second = orphan(2 * hour).await;
        assert!(gone_soon(second).await, "no second run");
        assert!(fresh.exists(), "a fresh file was removed");

        // Stopped and ended: no run is in flight, none will start (no
        // wait for a run that might still be going: `stop` is the gate).
        sweeping.stop().await;
        let after = orphan(2 * hour).await;
        // Three intervals, not to win a race (none is left) but to give a
        // sweeper that outlived `stop` the chance to show itself.
        tokio::time::sleep(sweep.interval * 3).await;
        assert!(after.exists(), "swept after it was stopped");
    }
}
