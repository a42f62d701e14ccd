//! `/metrics` in the Prometheus text format: database calls per table and
//! operation, the rate limits and the accept loop (the board's own
//! `board_*` lines), then everything memocache's exporter
//! ([`memocache::Cache::prometheus_text`]) writes: every memo's counters,
//! the tiers and the breakers; `/healthz` for load balancers and fleet
//! scripts.
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

/// `{"status":"ok","cache":"tiered","l1_in_sync":true,"store_available":true,
/// "breakers":{"store":"closed","bus":"closed"},"open_nodes":[]}`: always
/// 200 while the board serves (a stale bus only makes it read through to
/// Redis and the database); `l1_in_sync` tells whether the in-process tier
/// is trusted, `store_available` is false (degraded: served from the
/// database) while a breaker skips Redis or the bus; `breakers` has the
/// state of each breaker the cache has (none for the local cache), and
/// `open_nodes` the Redis Cluster nodes whose own breaker is open.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let cache = &state.cache;
    let kind = if crate::state::is_tiered(cache) {
        "tiered"
    } else {
        "local"
    };
    let state_name = |stats: memocache::BreakerStats| match stats.state {
        memocache::BreakerState::Open => "open",
        _ => "closed",
    };
    let breakers: Vec<String> = [
        ("store", cache.store_breaker()),
        ("bus", cache.bus_breaker()),
    ]
    .into_iter()
    .filter_map(|(name, stats)| Some(format!("\"{name}\":\"{}\"", state_name(stats?))))
    .collect();
    let open_nodes: Vec<String> = cache
        .node_breakers()
        .into_iter()
        .filter(|(_, stats)| stats.state == memocache::BreakerState::Open)
        .map(|(node, _)| format!("\"{}\"", json_escape(&node)))
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!(
            "{{\"status\":\"ok\",\"cache\":\"{kind}\",\"l1_in_sync\":{},\"store_available\":{},\
             \"breakers\":{{{}}},\"open_nodes\":[{}]}}\n",
            cache.l1_in_sync(),
            cache.store_available(),
            breakers.join(","),
            open_nodes.join(",")
        ),
    )
}

/// Escapes a JSON string's content (node names are `host:port`, but a
/// host name comes from the cluster, not from this process).
fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
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
    let pages = state.pages.stats();
    out.push_str(
        "# HELP board_page_cache_total Public pages by how the response cache answered them.\n",
    );
    out.push_str("# TYPE board_page_cache_total counter\n");
    for (outcome, n) in [
        ("hit", pages.hits),
        ("not_modified", pages.not_modified),
        ("miss", pages.misses),
        ("stale", pages.stale),
        ("bypassed", pages.bypassed),
        ("stored", pages.stored),
    ] {
        let _ = writeln!(out, "board_page_cache_total{{outcome=\"{outcome}\"}} {n}");
    }
    let relay = state.data.relay_stats();
    out.push_str(
        "# HELP board_outbox_relay_total Outbox entries this board's relay handled (durable invalidation).\n",
    );
    out.push_str("# TYPE board_outbox_relay_total counter\n");
    for (outcome, n) in [
        ("delivered", relay.delivered),
        ("confirmed", relay.confirmed),
        ("failed", relay.failed),
        ("skipped_rounds", relay.skipped),
    ] {
        let _ = writeln!(out, "board_outbox_relay_total{{outcome=\"{outcome}\"}} {n}");
    }
    // Every memo, breaker and tier line comes from the library's
    // exporter, so a counter added there shows up here.
    out.push_str(&state.cache.prometheus_text());
    out
}

/// The rate limits' and the accept loop's counters.
fn abuse_metrics(out: &mut String, state: &AppState, connections: &ConnStats) {
    let limiter = &state.limiter;
    let counters: [(&str, &str, &str, u64); 8] = [
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
        (
            "board_connections_shed_total",
            "counter",
            "Idle connections closed at --max-connections to admit a new one.",
            connections.shed(),
        ),
        (
            "board_log_lines_dropped_total",
            "counter",
            "Log lines dropped because the log writer was behind (a flood).",
            u64::try_from(crate::telemetry::dropped_lines()).unwrap_or(u64::MAX),
        ),
    ];
    for (name, kind, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
    let (account, address) = state.data.posts_refused();
    out.push_str(
        "# HELP board_posts_refused_total Posts refused (429, nothing stored) by the post and upload budgets, by whose budget was spent.\n",
    );
    out.push_str("# TYPE board_posts_refused_total counter\n");
    let _ = writeln!(
        out,
        "board_posts_refused_total{{budget=\"account\"}} {account}"
    );
    let _ = writeln!(
        out,
        "board_posts_refused_total{{budget=\"address\"}} {address}"
    );
    out.push_str(
        "# HELP board_posts_over_quota_total Posts refused (413, nothing stored) because their account's storage quota was full.\n",
    );
    out.push_str("# TYPE board_posts_over_quota_total counter\n");
    let _ = writeln!(
        out,
        "board_posts_over_quota_total {}",
        state.data.posts_over_quota()
    );
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
