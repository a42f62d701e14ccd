//! `/metrics` in the Prometheus text format: database calls per table and
//! operation, and the counters of every memo; `/healthz` for load balancers
//! and fleet scripts.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

pub(super) fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
}

/// `{"status":"ok","cache":"tiered","l1_in_sync":true,"store_available":true}`:
/// always 200 while the board serves (a stale bus only makes it read through
/// to Redis and the database); `l1_in_sync` tells whether the in-process
/// tier is trusted, `store_available` is false (degraded: served from the
/// database) while a breaker skips Redis or the bus.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let kind = if crate::startup::is_tiered(&state.cache) {
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

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exposition(&state),
    )
}

/// The metrics as Prometheus text.
pub(super) fn exposition(state: &AppState) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("# HELP board_db_calls_total Database calls by table and operation.\n");
    out.push_str("# TYPE board_db_calls_total counter\n");
    for (table, operation, n) in state.stores.calls.snapshot() {
        let _ = writeln!(
            out,
            "board_db_calls_total{{table=\"{table}\",operation=\"{operation}\"}} {n}"
        );
    }
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
