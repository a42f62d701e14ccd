//! `/metrics` in the Prometheus text format: database calls per table and
//! operation, the counters of every memo, the rate limits and the accept
//! loop; `/healthz` for load balancers and fleet scripts.
//!
//! `/metrics` is not public by default: it is served on the public address
//! only with `--metrics-token` (as `Authorization: Bearer TOKEN`), and on
//! its own address with `--metrics-address`; with neither it is a 404.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::server::ConnStats;
use crate::state::AppState;

/// `/healthz`, and `/metrics` for holders of `token` if one is set.
pub(super) fn router(
    token: Option<Arc<SecretString>>,
    connections: Arc<ConnStats>,
) -> axum::Router<AppState> {
    let router = Router::new().route("/healthz", get(healthz));
    let Some(token) = token else {
        return router;
    };
    router.route(
        "/metrics",
        get(
            move |State(state): State<AppState>, headers: HeaderMap| async move {
                if bearer(&headers).is_some_and(|given| {
                    bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes()))
                }) {
                    metrics(&state, &connections)
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, "Bearer")],
                        "/metrics needs Authorization: Bearer with the --metrics-token\n",
                    )
                        .into_response()
                }
            },
        ),
    )
}

/// The router of `--metrics-address`: `/metrics` and nothing else.
pub(super) fn admin_router(connections: Arc<ConnStats>) -> axum::Router<AppState> {
    Router::new()
        .route(
            "/metrics",
            get(move |State(state): State<AppState>| async move { metrics(&state, &connections) }),
        )
        .fallback(|| async { AppError::NotFound })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `{"status":"ok","cache":"tiered","l1_in_sync":true,"store_available":true}`:
/// always 200 while the board serves (a stale bus only makes it read through
/// to Redis and the database); `l1_in_sync` tells whether the in-process
/// tier is trusted, `store_available` is false (degraded: served from the
/// database) while a breaker skips Redis or the bus.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let kind = if crate::state::is_tiered(&state.cache) {
        "tiered"
    } else {
        "local"
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!(
            "{{\"status\":\"ok\",\"cache\":\"{kind}\",\"l1_in_sync\":{},\"store_available\":{}}}\n",
            state.cache.l1_in_sync(),
            state.cache.store_available()
        ),
    )
}

fn metrics(state: &AppState, connections: &ConnStats) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        exposition(state, connections),
    )
        .into_response()
}

/// The metrics as Prometheus text.
pub(super) fn exposition(state: &AppState, connections: &ConnStats) -> String {
    let mut out = String::with_capacity(4096);
    abuse_metrics(&mut out, state, connections);
    out.push_str("# HELP board_db_calls_total Database calls by table and operation.\n");
    out.push_str("# TYPE board_db_calls_total counter\n");
    for (table, operation, n) in state.data.stores().calls.snapshot() {
        let _ = writeln!(
            out,
            "board_db_calls_total{{table=\"{table}\",operation=\"{operation}\"}} {n}"
        );
    }
    let (discovery, jwks) = state.data.oidc_fetches();
    out.push_str(
        "# HELP board_oidc_fetches_total OpenID provider documents fetched (once per lifetime, not per login).\n",
    );
    out.push_str("# TYPE board_oidc_fetches_total counter\n");
    let _ = writeln!(
        out,
        "board_oidc_fetches_total{{document=\"discovery\"}} {discovery}"
    );
    let _ = writeln!(out, "board_oidc_fetches_total{{document=\"jwks\"}} {jwks}");
    out.push_str(
        "# HELP memocache_l1_in_sync 1 while the in-process tier is trusted (the bus is in sync).\n",
    );
    out.push_str("# TYPE memocache_l1_in_sync gauge\n");
    let _ = writeln!(
        out,
        "memocache_l1_in_sync {}",
        u8::from(state.cache.l1_in_sync())
    );
    let memos = state.cache.memo_stats();
    let mut family =
        |name: &str, kind: &str, help: &str, value: &dyn Fn(&memocache::MemoStats) -> String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (memo, stats) in &memos {
                let _ = writeln!(out, "{name}{{memo=\"{memo}\"}} {}", value(stats));
            }
        };
    family(
        "memocache_hits_total",
        "counter",
        "Lookups answered from the cache.",
        &|s| s.hits().to_string(),
    );
    family(
        "memocache_misses_total",
        "counter",
        "Lookups that found nothing.",
        &|s| s.misses.to_string(),
    );
    family(
        "memocache_loads_total",
        "counter",
        "Loader calls that returned a value.",
        &|s| s.loads.to_string(),
    );
    family(
        "memocache_load_errors_total",
        "counter",
        "Loader calls that failed.",
        &|s| s.load_errors.to_string(),
    );
    family(
        "memocache_load_seconds_total",
        "counter",
        "Time spent in loaders.",
        &|s| format!("{:.6}", s.load_time.as_secs_f64()),
    );
    family(
        "memocache_invalidations_total",
        "counter",
        "forget and forget_all calls.",
        &|s| s.invalidations.to_string(),
    );
    family(
        "memocache_waited_for_load_total",
        "counter",
        "Misses that waited for another caller's load.",
        &|s| s.waited_for_load.to_string(),
    );
    family(
        "memocache_store_errors_total",
        "counter",
        "Cache store faults survived.",
        &|s| s.store_errors.to_string(),
    );
    out
}

/// The rate limits' and the accept loop's counters.
fn abuse_metrics(out: &mut String, state: &AppState, connections: &ConnStats) {
    let limiter = &state.limiter;
    let counters: [(&str, &str, &str, u64); 6] = [
        (
            "board_login_checks_total",
            "counter",
            "Password checks granted by the login limiter (logins and password changes).",
            limiter.checked(),
        ),
        (
            "board_login_refused_total",
            "counter",
            "Login attempts refused by the limiter, without a password check.",
            limiter.refused(),
        ),
        (
            "board_registrations_refused_total",
            "counter",
            "Registrations refused by --registrations-per-address.",
            limiter.registrations_refused(),
        ),
        (
            "board_connections_open",
            "gauge",
            "Connections open now.",
            connections.open(),
        ),
        (
            "board_connections_accepted_total",
            "counter",
            "Connections accepted and served.",
            connections.accepted(),
        ),
        (
            "board_connections_timed_out_total",
            "counter",
            "Connections closed by the header-read or idle deadline.",
            connections.timed_out(),
        ),
    ];
    for (name, kind, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
    out.push_str(
        "# HELP board_connections_refused_total Connections closed at accept, by the cap that was full.\n",
    );
    out.push_str("# TYPE board_connections_refused_total counter\n");
    let _ = writeln!(
        out,
        "board_connections_refused_total{{cap=\"total\"}} {}",
        connections.refused_total()
    );
    let _ = writeln!(
        out,
        "board_connections_refused_total{{cap=\"per_address\"}} {}",
        connections.refused_address()
    );
}
