//! `tests/test_view.py`: whole responses, `ResponseCacheLayer` (its
//! memoized-view tests are answered in `memoize.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::routing::get;
use memocache::Cache;
use memocache::response::{CacheTimeout, ResponseCacheLayer};

use super::{Runs, manual, secs};
use crate::response::{fetch, get_text, serve};

/// An app whose every path renders `<path> <run>`, behind `layer`.
fn counting(layer: ResponseCacheLayer, runs: &Runs) -> Router {
    let view = |State(runs): State<Runs>, uri: axum::http::Uri| async move {
        format!("{} {}", uri.path(), runs.run())
    };
    Router::new()
        .route("/", get(view))
        .route("/{*path}", get(view))
        .layer(layer)
        .with_state(runs.clone())
}

/// `test_cached_view`, `test_async_cached_view`, `test_cached_view_class`
/// (every axum handler is async, and a class-based view is one handler).
#[tokio::test]
async fn a_view_is_cached_for_its_timeout() {
    let (cache, clock) = manual(None);
    let runs = Runs::default();
    let layer = ResponseCacheLayer::new(&cache).timeout(secs(2));
    let app = serve(counting(layer, &runs)).await;
    let url = format!("{}/", app.base);
    let first = get_text(&url, &[]).await.0;
    clock.advance(secs(1));
    assert_eq!(get_text(&url, &[]).await.0, first);
    clock.advance(secs(1));
    assert_ne!(get_text(&url, &[]).await.0, first);
}

/// `test_cached_view_unless`.
#[tokio::test]
async fn unless_bypasses_the_cache() {
    let cache = Cache::memory();
    let runs = Runs::default();
    let layer = ResponseCacheLayer::new(&cache).unless(|req| req.uri.path() == "/a");
    let app = serve(counting(layer, &runs)).await;
    let (a, b) = (format!("{}/a", app.base), format!("{}/b", app.base));
    let first = get_text(&a, &[]).await.0;
    assert_ne!(get_text(&a, &[]).await.0, first);
    let first = get_text(&b, &[]).await.0;
    assert_eq!(get_text(&b, &[]).await.0, first);
}

/// `test_cached_view_response_filter`: a 500 is not stored, a 200 is.
#[tokio::test]
async fn only_responses_the_filter_takes_are_stored() {
    let cache = Cache::memory();
    let runs = Runs::default();
    let status = Arc::new(AtomicU16::new(500));
    let view = {
        let status = Arc::clone(&status);
        move |State(runs): State<Runs>| async move {
            let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).expect("status");
            (code, runs.run().to_string())
        }
    };
    let layer = ResponseCacheLayer::new(&cache).response_filter(|r| r.status.as_u16() < 400);
    let app = Router::new()
        .route("/a", get(view))
        .layer(layer)
        .with_state(runs);
    let app = serve(app).await;
    let url = format!("{}/a", app.base);
    let first = get_text(&url, &[]).await.0;
    assert_ne!(get_text(&url, &[]).await.0, first, "a 500 is not stored");
    status.store(200, Ordering::SeqCst);
    let first = get_text(&url, &[]).await.0;
    assert_eq!(get_text(&url, &[]).await.0, first, "a 200 is");
}

/// `test_cached_view_forced_update`.
#[tokio::test]
async fn a_forced_update_replaces_the_stored_response() {
    let cache = Cache::memory();
    let runs = Runs::default();
    let forced = Arc::new(AtomicBool::new(false));
    let layer = ResponseCacheLayer::new(&cache).forced_update({
        let forced = Arc::clone(&forced);
        move |_| forced.load(Ordering::SeqCst)
    });
    let app = serve(counting(layer, &runs)).await;
    let url = format!("{}/a", app.base);
    let first = get_text(&url, &[]).await.0;
    assert_eq!(get_text(&url, &[]).await.0, first);
    forced.store(true, Ordering::SeqCst);
    let second = get_text(&url, &[]).await.0;
    assert_ne!(second, first);
    forced.store(false, Ordering::SeqCst);
    assert_eq!(get_text(&url, &[]).await.0, second);
}

/// `test_cache_timeout_dynamic_via_cached_reponse`: a response sets its
/// own timeout (Flask-Caching's `CachedResponse(timeout=2)`).
#[tokio::test]
async fn a_response_sets_its_own_timeout() {
    let (cache, clock) = manual(None);
    let runs = Runs::default();
    let view = |State(runs): State<Runs>| async move {
        (
            axum::Extension(CacheTimeout(secs(2))),
            runs.run().to_string(),
        )
    };
    let layer = ResponseCacheLayer::new(&cache).timeout(secs(1));
    let app = Router::new()
        .route("/", get(view))
        .layer(layer)
        .with_state(runs);
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    let body = get_text(&url, &[]).await.0;
    clock.advance(secs(1));
    assert_eq!(
        get_text(&url, &[]).await.0,
        body,
        "t=1: past the layer's 1 s"
    );
    clock.advance(secs(1));
    assert_ne!(
        get_text(&url, &[]).await.0,
        body,
        "t=2: past the response's 2 s"
    );
}

/// `test_generate_cache_key_from_query_string`,
/// `test_generate_cache_key_from_query_string_repeated_paramaters`: with
/// the query in the key, its parameters count in any order.
#[tokio::test]
async fn query_parameters_in_any_order_share_a_response() {
    let cache = Cache::memory();
    let runs = Runs::default();
    let app = serve(counting(
        ResponseCacheLayer::new(&cache).query_string(true),
        &runs,
    ))
    .await;
    let works = |query: &str| format!("{}/works?{query}", app.base);
    let first = get_text(&works("mock=true&offset=20&limit=15"), &[])
        .await
        .0;
    let second = get_text(&works("limit=15&mock=true&offset=20"), &[])
        .await
        .0;
    assert_eq!(second, first);
    let third = get_text(&works("limit=20&mock=true&offset=60"), &[])
        .await
        .0;
    assert_ne!(third, second);

    let repeated = get_text(&works("limit=15&user[]=123&user[]=124"), &[])
        .await
        .0;
    let reordered = get_text(&works("user[]=124&limit=15&user[]=123"), &[])
        .await
        .0;
    assert_eq!(reordered, repeated);
    let other = get_text(&works("limit=15&user[]=125&user[]=124"), &[])
        .await
        .0;
    assert_ne!(other, repeated);
}

/// `test_hit_cache`: Flask-Caching's `hit_cache: True` header is
/// `x-cache: hit` (and `miss`), off by default.
#[tokio::test]
async fn the_hit_header_tells_a_hit() {
    let (cache, clock) = manual(None);
    let runs = Runs::default();
    let layer = ResponseCacheLayer::new(&cache).timeout(secs(2));
    let app = serve(counting(layer.clone().hit_header(true), &runs)).await;
    let url = format!("{}/", app.base);
    assert_eq!(get_text(&url, &[]).await.1, "miss");
    assert_eq!(get_text(&url, &[]).await.1, "hit");
    assert_eq!(get_text(&url, &[]).await.1, "hit");
    clock.advance(secs(2));
    assert_eq!(get_text(&url, &[]).await.1, "miss");

    let quiet = serve(counting(layer.key_prefix("quiet/"), &runs)).await;
    let url = format!("{}/indication-false", quiet.base);
    for _ in 0..3 {
        assert_eq!(get_text(&url, &[]).await.1, "none");
    }
}

/// `test_delete_cached_query_string`,
/// `test_delete_cached_query_string_only_deletes_matching_arguments`,
/// `test_delete_cached_query_string_repeated_parameters`,
/// `test_delete_cached_view`: `delete_cached` names a path (and query, in
/// any order) and forgets that response only.
#[tokio::test]
async fn delete_cached_forgets_one_path_and_query() {
    let cache = Cache::memory();
    let runs = Runs::default();
    let layer = ResponseCacheLayer::new(&cache).query_string(true);
    let app = serve(counting(layer.clone(), &runs)).await;
    let url = |path: &str| format!("{}{path}", app.base);

    let first = get_text(&url("/works?mock=true&offset=20&limit=15"), &[])
        .await
        .0;
    let kept = get_text(&url("/works?limit=15"), &[]).await.0;
    let _ = layer
        .delete_cached(&Method::GET, "/works?limit=15&mock=true&offset=20")
        .await;
    let second = get_text(&url("/works?mock=true&offset=20&limit=15"), &[])
        .await
        .0;
    assert_ne!(second, first);
    assert_eq!(get_text(&url("/works?limit=15"), &[]).await.0, kept);

    let repeated = get_text(&url("/works?user[]=123&user[]=124"), &[]).await.0;
    let _ = layer
        .delete_cached(&Method::GET, "/works?user[]=124&user[]=123")
        .await;
    assert_ne!(
        get_text(&url("/works?user[]=123&user[]=124"), &[]).await.0,
        repeated
    );

    let bob = get_text(&url("/user/bob"), &[]).await.0;
    let alice = get_text(&url("/user/alice"), &[]).await.0;
    assert_eq!(get_text(&url("/user/bob"), &[]).await.0, bob);
    let _ = layer.delete_cached(&Method::GET, "/user/bob").await;
    assert_ne!(get_text(&url("/user/bob"), &[]).await.0, bob);
    assert_eq!(get_text(&url("/user/alice"), &[]).await.0, alice);
}

/// `test_cached_view_returning_stream_template`: a streamed body is stored
/// as its bytes and served again whole, with its content type (not turned
/// into anything else).
#[tokio::test]
async fn a_streamed_body_is_stored_as_its_bytes() {
    let cache = Cache::memory();
    let runs = Runs::default();
    let view = |State(runs): State<Runs>| async move {
        runs.run();
        let chunks = ["<html><body>", "hello", "</body></html>"]
            .map(|chunk| Ok::<_, std::io::Error>(chunk.as_bytes().to_vec()));
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            axum::body::Body::from_stream(futures::stream::iter(chunks)),
        )
    };
    let app = Router::new()
        .route("/stream", get(view))
        .layer(ResponseCacheLayer::new(&cache))
        .with_state(runs.clone());
    let app = serve(app).await;
    let url = format!("{}/stream", app.base);
    for _ in 0..2 {
        let (status, headers, body) = fetch(&url, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(body, b"<html><body>hello</body></html>");
    }
    assert_eq!(runs.count(), 1);
}
