//! The axum response-cache layer, on real axum apps over real sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use memocache::response::{CacheTimeout, ResponseCacheLayer};
use memocache::{Cache, CacheConfig, Clock, Fragments, Memo};

const LIMIT: Duration = Duration::from_secs(60);

/// An app served on a free loopback port until dropped.
pub(super) struct Served {
    pub(super) base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) async fn serve(app: Router) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    Served { base, task }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("an HTTP client")
}

/// A GET with extra headers: status, headers, body.
pub(super) async fn fetch(url: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(LIMIT, request.send())
        .await
        .expect("answer in time")
        .expect("a response");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let mut map = HeaderMap::new();
    for (name, value) in response.headers() {
        let name = header::HeaderName::from_bytes(name.as_str().as_bytes()).expect("name");
        let value = header::HeaderValue::from_bytes(value.as_bytes()).expect("value");
        map.append(name, value);
    }
    let body = response.bytes().await.expect("body").to_vec();
    (status, map, body)
}

/// A GET's body as text and its `x-cache` header (`none` when absent).
pub(super) async fn get_text(url: &str, headers: &[(&str, &str)]) -> (String, String) {
    let (_, map, body) = fetch(url, headers).await;
    let label = map
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    (String::from_utf8(body).expect("utf-8"), label)
}

/// Counts view calls.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicU32>);

impl Calls {
    fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn count(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

/// An app whose `/` renders `view-N` and whose layer shows the hit header.
async fn counting(layer: ResponseCacheLayer) -> (Served, Calls) {
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/",
            get(|State(calls): State<Calls>| async move { format!("view-{}", calls.next()) }),
        )
        .route(
            "/q",
            get(|State(calls): State<Calls>| async move { format!("q-{}", calls.next()) }),
        )
        .layer(layer.hit_header(true))
        .with_state(calls.clone());
    (serve(app).await, calls)
}

#[tokio::test]
async fn a_second_get_is_a_hit_and_the_view_runs_once() {
    let cache = Cache::memory();
    let layer = ResponseCacheLayer::new(&cache);
    let (app, calls) = counting(layer.clone()).await;
    let url = format!("{}/", app.base);
    assert_eq!(get_text(&url, &[]).await, ("view-1".into(), "miss".into()));
    assert_eq!(get_text(&url, &[]).await, ("view-1".into(), "hit".into()));
    assert_eq!(calls.count(), 1);
    let stats = layer.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.stored),
        (1, 1, 1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_head_is_answered_from_the_stored_get_and_never_stores() {
    let cache = Cache::memory();
    let layer = ResponseCacheLayer::new(&cache);
    let (app, calls) = counting(layer.clone()).await;
    let url = format!("{}/", app.base);
    let head = |url: String| async move {
        let response = client().head(url).send().await.expect("a response");
        let length = response.headers().get("content-length").cloned();
        let label = response.headers().get("x-cache").cloned();
        let body = response.bytes().await.expect("body");
        (length, label, body.len())
    };
    // Nothing stored yet: the view answers, and nothing is kept.
    let (_, label, body) = head(url.clone()).await;
    assert_eq!((label, body), (None, 0));
    assert_eq!(get_text(&url, &[]).await, ("view-2".into(), "miss".into()));
    // Now the stored GET answers: its length, no body, no view call.
    let (length, label, body) = head(url.clone()).await;
    assert_eq!(length.as_ref().map(|v| v.as_bytes()), Some(&b"6"[..]));
    assert_eq!(label.as_ref().map(|v| v.as_bytes()), Some(&b"hit"[..]));
    assert_eq!(body, 0);
    assert_eq!(calls.count(), 2);
}

#[tokio::test]
async fn the_query_counts_only_when_asked_and_sorted() {
    let cache = Cache::memory();
    let (plain, _) = counting(ResponseCacheLayer::new(&cache)).await;
    assert_eq!(
        get_text(&format!("{}/q?a=1", plain.base), &[]).await.0,
        "q-1"
    );
    assert_eq!(
        get_text(&format!("{}/q?a=2", plain.base), &[]).await.0,
        "q-1"
    );

    let (sorted, _) = counting(
        ResponseCacheLayer::new(&cache)
            .key_prefix("s/")
            .query_string(true),
    )
    .await;
    let at = |q: &str| format!("{}/q?{q}", sorted.base);
    assert_eq!(get_text(&at("a=1&b=2"), &[]).await.0, "q-1");
    assert_eq!(
        get_text(&at("b=2&a=1"), &[]).await,
        ("q-1".into(), "hit".into())
    );
    assert_eq!(get_text(&at("a=2"), &[]).await.0, "q-2");
}

/// The rule the layer exists for: a view that read a memo is re-run as
/// soon as the memo is forgotten, with no URL named anywhere.
#[tokio::test]
async fn forgetting_a_memo_the_view_read_makes_the_next_response_fresh() {
    let cache = Cache::memory();
    let source = Calls::default();
    let messages = Memo::<(), String>::builder("messages")
        .build(&cache)
        .expect("memo");
    let users = Memo::<u32, String>::builder("users")
        .build(&cache)
        .expect("memo");
    let view = {
        let (messages, users, source) = (messages.clone(), users.clone(), source.clone());
        move || async move {
            let n = source.clone();
            let list = messages
                .get_or_load(&(), || async move { format!("list-{}", n.next()) })
                .await;
            let user = users.get_or_load(&7, || async { "ada".to_string() }).await;
            format!("{list} by {user}")
        }
    };
    let app = Router::new()
        .route("/", get(view))
        .layer(ResponseCacheLayer::new(&cache).hit_header(true));
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    assert_eq!(
        get_text(&url, &[]).await,
        ("list-1 by ada".into(), "miss".into())
    );
    assert_eq!(get_text(&url, &[]).await.1, "hit");

    let _ = messages.forget_all().await;
    assert_eq!(
        get_text(&url, &[]).await,
        ("list-2 by ada".into(), "miss".into())
    );
    assert_eq!(get_text(&url, &[]).await.1, "hit");

    // One key of another memo it read.
    let _ = users.forget(&7).await;
    assert_eq!(get_text(&url, &[]).await.1, "miss");
    // A key it did not read changes nothing.
    let _ = users.forget(&8).await;
    assert_eq!(get_text(&url, &[]).await.1, "hit");
    // Low-level keys and tags the same way.
    cache.clear().await.expect("clear");
    assert_eq!(get_text(&url, &[]).await.1, "miss");
}

#[tokio::test]
async fn low_level_keys_and_tags_are_dependencies_too() {
    let cache = Cache::memory();
    cache
        .set("motd", "hello".to_string(), memocache::Timeout::Default)
        .await
        .expect("set");
    let view = {
        let cache = cache.clone();
        move || async move {
            cache.tag("banner");
            let motd = cache.get::<String>("motd").await.ok().flatten();
            motd.map_or_else(String::new, |m| m.to_string())
        }
    };
    let app = Router::new()
        .route("/", get(view))
        .layer(ResponseCacheLayer::new(&cache).hit_header(true));
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    assert_eq!(get_text(&url, &[]).await, ("hello".into(), "miss".into()));
    assert_eq!(get_text(&url, &[]).await.1, "hit");
    cache
        .set("motd", "bye".to_string(), memocache::Timeout::Default)
        .await
        .expect("set");
    assert_eq!(get_text(&url, &[]).await, ("bye".into(), "miss".into()));
    let _ = cache.invalidate_tag("banner").await;
    assert_eq!(get_text(&url, &[]).await.1, "miss");
    let _ = cache.invalidate_tag("another").await;
    assert_eq!(get_text(&url, &[]).await.1, "hit");
}

#[tokio::test]
async fn a_fragment_passes_its_dependencies_to_the_response() {
    let cache = Cache::memory();
    let sidebar = Memo::<(), String>::builder("sidebar")
        .build(&cache)
        .expect("memo");
    let fragments = Arc::new(Fragments::new(&cache));
    let renders = Calls::default();
    let view = {
        let (sidebar, fragments, renders) = (sidebar.clone(), fragments.clone(), renders.clone());
        move || async move {
            let html = fragments
                .get_or_render("sidebar", &(), || async {
                    let n = renders.next();
                    let names = sidebar
                        .get_or_load(&(), || async { "ada".to_string() })
                        .await;
                    format!("<aside>{names} {n}</aside>")
                })
                .await;
            html.to_string()
        }
    };
    let app = Router::new()
        .route("/", get(view.clone()))
        .route("/other", get(view))
        .layer(ResponseCacheLayer::new(&cache).hit_header(true));
    let app = serve(app).await;
    let (home, other) = (format!("{}/", app.base), format!("{}/other", app.base));
    assert_eq!(
        get_text(&home, &[]).await,
        ("<aside>ada 1</aside>".into(), "miss".into())
    );
    // Another page gets the fragment from the fragment cache: a hit that
    // still records the fragment's dependencies.
    assert_eq!(
        get_text(&other, &[]).await,
        ("<aside>ada 1</aside>".into(), "miss".into())
    );
    assert_eq!(renders.count(), 1);
    let _ = sidebar.forget_all().await;
    assert_eq!(
        get_text(&other, &[]).await,
        ("<aside>ada 2</aside>".into(), "miss".into())
    );
    assert_eq!(
        get_text(&home, &[]).await,
        ("<aside>ada 2</aside>".into(), "miss".into())
    );
    assert_eq!(renders.count(), 2);
    let _ = fragments.forget("sidebar", &()).await;
    assert_eq!(get_text(&home, &[]).await.1, "miss");
    assert_eq!(renders.count(), 3);
}

#[tokio::test]
async fn requests_with_credentials_and_responses_with_cookies_are_never_shared() {
    let cache = Cache::memory();
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/",
            get(
                |State(calls): State<Calls>, headers: HeaderMap| async move {
                    let who = headers
                        .get(header::COOKIE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("anonymous")
                        .to_string();
                    format!("{who} {}", calls.next())
                },
            ),
        )
        .route(
            "/login",
            get(|State(calls): State<Calls>| async move {
                (
                    [(header::SET_COOKIE, "session=s3cret")],
                    format!("login {}", calls.next()),
                )
            }),
        )
        .route(
            "/private",
            get(|State(calls): State<Calls>| async move {
                (
                    [(header::CACHE_CONTROL, "private")],
                    format!("private {}", calls.next()),
                )
            }),
        )
        .route(
            "/nostore",
            get(|State(calls): State<Calls>| async move {
                (
                    [(header::CACHE_CONTROL, "no-store")],
                    format!("nostore {}", calls.next()),
                )
            }),
        )
        .layer(ResponseCacheLayer::new(&cache).hit_header(true))
        .with_state(calls.clone());
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    // A signed-in request is neither served from the cache nor stored.
    assert_eq!(
        get_text(&url, &[("cookie", "session=alice")]).await,
        ("session=alice 1".into(), "none".into())
    );
    assert_eq!(
        get_text(&url, &[]).await,
        ("anonymous 2".into(), "miss".into())
    );
    assert_eq!(
        get_text(&url, &[("cookie", "session=bob")]).await,
        ("session=bob 3".into(), "none".into())
    );
    assert_eq!(
        get_text(&url, &[("authorization", "Bearer x")]).await.0,
        "anonymous 4"
    );
    assert_eq!(
        get_text(&url, &[]).await,
        ("anonymous 2".into(), "hit".into())
    );
    for path in ["login", "private", "nostore"] {
        let url = format!("{}/{path}", app.base);
        let (first, _) = get_text(&url, &[]).await;
        let (second, label) = get_text(&url, &[]).await;
        assert_ne!(first, second, "{path} is never stored");
        assert_eq!(label, "none", "{path} passes through");
    }
}

#[tokio::test]
async fn credentials_can_be_allowed_per_route() {
    let cache = Cache::memory();
    let calls = Calls::default();
    let public =
        get(|State(calls): State<Calls>| async move { format!("public {}", calls.next()) }).layer(
            ResponseCacheLayer::new(&cache)
                .allow_credentials(true)
                .key_prefix("p/"),
        );
    let app = Router::new()
        .route("/public", public)
        .with_state(calls.clone());
    let app = serve(app).await;
    let url = format!("{}/public", app.base);
    assert_eq!(get_text(&url, &[("cookie", "a=1")]).await.0, "public 1");
    assert_eq!(get_text(&url, &[("cookie", "b=2")]).await.0, "public 1");
}

#[tokio::test]
async fn a_matching_etag_or_date_gets_304_without_a_body() {
    let cache = Cache::memory();
    let layer = ResponseCacheLayer::new(&cache);
    let (app, calls) = counting(layer.clone()).await;
    let url = format!("{}/", app.base);
    let (status, headers, _) = fetch(&url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let etag = headers[header::ETAG].to_str().expect("etag").to_string();
    assert!(etag.starts_with('"'), "strong: {etag}");
    let (status, headers, body) = fetch(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(headers[header::ETAG], etag.as_str());
    let (status, _, _) = fetch(&url, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = fetch(&url, &[("if-none-match", &format!("\"x\", W/{etag}"))]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    let modified = headers_of(&url).await[header::LAST_MODIFIED]
        .to_str()
        .expect("date")
        .to_string();
    let (status, _, _) = fetch(&url, &[("if-modified-since", &modified)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, _) = fetch(
        &url,
        &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(calls.count(), 1);
    assert_eq!(layer.stats().not_modified, 3, "{:?}", layer.stats());
}

async fn headers_of(url: &str) -> HeaderMap {
    fetch(url, &[]).await.1
}

#[tokio::test]
async fn gzip_and_brotli_are_stored_once_and_served_to_who_takes_them() {
    let cache = Cache::memory();
    let calls = Calls::default();
    let page = "<p>hello, board</p>\n".repeat(200);
    let app = Router::new()
        .route(
            "/",
            get(move |State(calls): State<Calls>| async move {
                calls.next();
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page)
            }),
        )
        .layer(ResponseCacheLayer::new(&cache))
        .with_state(calls.clone());
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    let (_, plain_headers, plain) = fetch(&url, &[]).await;
    assert!(plain_headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(plain.len(), 20 * 200);
    let (_, gz_headers, gz) = fetch(&url, &[("accept-encoding", "deflate, gzip;q=0.8")]).await;
    assert_eq!(gz_headers[header::CONTENT_ENCODING], "gzip");
    assert!(gz.len() < plain.len() / 4, "{} bytes", gz.len());
    assert_eq!(
        gz_headers[header::CONTENT_LENGTH],
        gz.len().to_string().as_str()
    );
    assert!(
        gz_headers[header::VARY]
            .to_str()
            .expect("vary")
            .eq_ignore_ascii_case("accept-encoding")
    );
    assert_ne!(gz_headers[header::ETAG], plain_headers[header::ETAG]);
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped)
        .expect("gunzip");
    assert_eq!(unzipped, plain);
    // The gzip variant revalidates with its own tag.
    let etag = gz_headers[header::ETAG].to_str().expect("etag").to_string();
    let (status, _, _) = fetch(
        &url,
        &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, _) = fetch(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::OK, "the plain body has another tag");
    // Brotli, preferred when weighed at least as high, smaller again, with
    // a tag of its own.
    let (_, br_headers, br) = fetch(&url, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(br_headers[header::CONTENT_ENCODING], "br");
    assert!(br.len() <= gz.len(), "{} bytes", br.len());
    assert_ne!(br_headers[header::ETAG], gz_headers[header::ETAG]);
    assert_ne!(br_headers[header::ETAG], plain_headers[header::ETAG]);
    let (_, weighed, _) = fetch(&url, &[("accept-encoding", "br;q=0.5, gzip")]).await;
    assert_eq!(weighed[header::CONTENT_ENCODING], "gzip");
    assert_eq!(calls.count(), 1);
}

#[tokio::test]
async fn vary_is_honoured() {
    let cache = Cache::memory();
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/",
            get(
                |State(calls): State<Calls>, headers: HeaderMap| async move {
                    let lang = headers
                        .get("accept-language")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("en")
                        .to_string();
                    (
                        [(header::VARY, "accept-language")],
                        format!("{lang} {}", calls.next()),
                    )
                },
            ),
        )
        .layer(ResponseCacheLayer::new(&cache))
        .with_state(calls.clone());
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    assert_eq!(get_text(&url, &[("accept-language", "fr")]).await.0, "fr 1");
    assert_eq!(get_text(&url, &[("accept-language", "fr")]).await.0, "fr 1");
    assert_eq!(get_text(&url, &[("accept-language", "de")]).await.0, "de 2");
    assert_eq!(get_text(&url, &[]).await.0, "en 3");
}

/// A response served past its timeout while the view fails: the old body,
/// marked stale, within the window only. Time is a manual clock.
#[tokio::test]
async fn stale_if_error_serves_the_old_body_while_the_view_fails() {
    let clock = Clock::manual();
    let cache = Cache::with_clock(CacheConfig::default(), clock.clone()).expect("cache");
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/",
            get(|State(calls): State<Calls>| async move {
                match calls.next() {
                    1 => (StatusCode::OK, "good".to_string()),
                    n => (StatusCode::SERVICE_UNAVAILABLE, format!("down {n}")),
                }
            }),
        )
        .layer(
            ResponseCacheLayer::new(&cache)
                .timeout(Duration::from_secs(10))
                .stale_if_error(Duration::from_secs(60))
                .hit_header(true),
        )
        .with_state(calls.clone());
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    assert_eq!(get_text(&url, &[]).await, ("good".into(), "miss".into()));
    clock.advance(Duration::from_secs(11));
    let (status, headers, body) = fetch(&url, &[]).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"good"[..]));
    assert_eq!(headers["x-cache"], "stale");
    assert_eq!(calls.count(), 2, "the view was asked and failed");
    clock.advance(Duration::from_secs(60));
    let (status, _, body) = fetch(&url, &[]).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::SERVICE_UNAVAILABLE, &b"down 3"[..])
    );
}

#[tokio::test]
async fn a_view_that_hangs_is_cut_off_and_the_stale_copy_served() {
    let clock = Clock::manual();
    let cache = Cache::with_clock(CacheConfig::default(), clock.clone()).expect("cache");
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/",
            get(|State(calls): State<Calls>| async move {
                if calls.next() > 1 {
                    std::future::pending::<()>().await;
                }
                "good"
            }),
        )
        .layer(
            ResponseCacheLayer::new(&cache)
                .timeout(Duration::from_secs(10))
                .stale_if_error(Duration::from_secs(60))
                .inner_timeout(Duration::from_millis(100))
                .hit_header(true),
        )
        .with_state(calls.clone());
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    assert_eq!(get_text(&url, &[]).await.0, "good");
    clock.advance(Duration::from_secs(11));
    assert_eq!(get_text(&url, &[]).await, ("good".into(), "stale".into()));
    clock.advance(Duration::from_secs(60));
    let (status, _, _) = fetch(&url, &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn a_response_sets_its_own_timeout() {
    let clock = Clock::manual();
    let cache = Cache::with_clock(CacheConfig::default(), clock.clone()).expect("cache");
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/",
            get(|State(calls): State<Calls>| async move {
                (
                    axum::Extension(CacheTimeout(Duration::from_secs(2))),
                    format!("v{}", calls.next()),
                )
            }),
        )
        .layer(ResponseCacheLayer::new(&cache).timeout(Duration::from_secs(600)))
        .with_state(calls.clone());
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    assert_eq!(get_text(&url, &[]).await.0, "v1");
    clock.advance(Duration::from_secs(1));
    assert_eq!(get_text(&url, &[]).await.0, "v1");
    clock.advance(Duration::from_secs(2));
    assert_eq!(get_text(&url, &[]).await.0, "v2");
}

#[tokio::test]
async fn unless_forced_update_and_the_response_filter() {
    let cache = Cache::memory();
    let layer = ResponseCacheLayer::new(&cache)
        .unless(|req| req.uri.path() == "/q")
        .forced_update(|req| req.headers.contains_key("x-refresh"));
    let (app, _) = counting(layer).await;
    let (home, q) = (format!("{}/", app.base), format!("{}/q", app.base));
    assert_eq!(get_text(&home, &[]).await.0, "view-1");
    assert_eq!(get_text(&q, &[]).await, ("q-2".into(), "none".into()));
    assert_eq!(get_text(&q, &[]).await.0, "q-3");
    assert_eq!(
        get_text(&home, &[("x-refresh", "1")]).await,
        ("view-4".into(), "miss".into())
    );
    assert_eq!(get_text(&home, &[]).await, ("view-4".into(), "hit".into()));

    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/missing",
            get(|State(calls): State<Calls>| async move {
                (StatusCode::NOT_FOUND, format!("nf {}", calls.next()))
            }),
        )
        .route(
            "/gone",
            get(|State(calls): State<Calls>| async move {
                (StatusCode::GONE, format!("gone {}", calls.next()))
            }),
        )
        .layer(
            ResponseCacheLayer::new(&cache)
                .key_prefix("f/")
                .response_filter(|r| r.status != StatusCode::GONE),
        )
        .with_state(calls);
    let app = serve(app).await;
    let (missing, gone) = (
        format!("{}/missing", app.base),
        format!("{}/gone", app.base),
    );
    assert_eq!(get_text(&missing, &[]).await.0, "nf 1");
    assert_eq!(get_text(&missing, &[]).await.0, "nf 1");
    assert_eq!(get_text(&gone, &[]).await.0, "gone 2");
    assert_eq!(get_text(&gone, &[]).await.0, "gone 3");
}

#[tokio::test]
async fn a_body_over_the_limit_passes_through_uncached() {
    let cache = Cache::memory();
    let calls = Calls::default();
    let app = Router::new()
        .route(
            "/big",
            get(|State(calls): State<Calls>| async move {
                calls.next();
                // Streamed: no length known in advance.
                let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1000]));
                axum::body::Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .layer(
            ResponseCacheLayer::new(&cache)
                .max_body(4000)
                .hit_header(true),
        )
        .with_state(calls.clone());
    let app = serve(app).await;
    let url = format!("{}/big", app.base);
    for _ in 0..2 {
        let (status, headers, body) = fetch(&url, &[]).await;
        assert_eq!((status, body.len()), (StatusCode::OK, 10_000));
        assert!(headers.get("x-cache").is_none());
    }
    assert_eq!(calls.count(), 2);
}

#[tokio::test]
async fn delete_cached_and_forget_all() {
    let cache = Cache::memory();
    let layer = ResponseCacheLayer::new(&cache);
    let (app, _) = counting(layer.clone()).await;
    let (home, q) = (format!("{}/", app.base), format!("{}/q", app.base));
    assert_eq!(get_text(&home, &[]).await.0, "view-1");
    assert_eq!(get_text(&q, &[]).await.0, "q-2");
    let _ = layer.delete_cached(&axum::http::Method::GET, "/").await;
    assert_eq!(get_text(&home, &[]).await.0, "view-3");
    assert_eq!(get_text(&q, &[]).await.0, "q-2");
    let _ = layer.forget_all().await;
    assert_eq!(get_text(&home, &[]).await.0, "view-4");
    assert_eq!(get_text(&q, &[]).await.0, "q-5");
}

/// Concurrent misses wait for one view call: the view is held on a gate
/// until every request reached the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_run_the_view_once() {
    let cache = Cache::memory();
    let calls = Calls::default();
    let arrived = Calls::default();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let app = Router::new()
        .route(
            "/",
            get({
                let (calls, gate) = (calls.clone(), gate.clone());
                move || async move {
                    let n = calls.next();
                    let _pass = gate.acquire().await.expect("gate");
                    format!("view-{n}")
                }
            }),
        )
        .layer(ResponseCacheLayer::new(&cache))
        .layer(axum::middleware::from_fn({
            let arrived = arrived.clone();
            move |request, next: axum::middleware::Next| {
                arrived.next();
                async move { next.run(request).await }
            }
        }));
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get_text(&url, &[]).await.0 })
        })
        .collect();
    tokio::time::timeout(LIMIT, async {
        while arrived.count() < 8 || calls.count() < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every request arrives");
    gate.add_permits(100);
    for request in requests {
        assert_eq!(request.await.expect("request"), "view-1");
    }
    assert_eq!(calls.count(), 1);
}

/// Two `Cache` instances on one Redis stand for two processes of a fleet,
/// each serving the app: a forget in one makes the other's very next
/// response fresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forget_in_one_process_refreshes_the_other_before_it_returns() {
    let redis = testkit::RedisServer::start();
    let tiered = || {
        Cache::from_url(&format!(
            "tiered+{}?prefix=rc:&heartbeat_ms=2000",
            redis.url()
        ))
        .expect("tiered cache")
    };
    let (a, b) = (tiered(), tiered());
    for cache in [&a, &b] {
        tokio::time::timeout(LIMIT, async {
            while !cache.l1_in_sync() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("the bus brings the cache in sync");
    }
    let source = Calls::default();
    let app_on = |cache: &Cache| {
        let memo = Memo::<(), String>::builder("messages")
            .build(cache)
            .expect("memo");
        let source = source.clone();
        let view = move || async move {
            let source = source.clone();
            memo.get_or_load(&(), || async move { format!("list-{}", source.next()) })
                .await
                .to_string()
        };
        Router::new()
            .route("/", get(view))
            .layer(ResponseCacheLayer::new(cache).hit_header(true))
    };
    let (app_a, app_b) = (serve(app_on(&a)).await, serve(app_on(&b)).await);
    let memo_a = Memo::<(), String>::builder("messages")
        .build(&a)
        .expect("memo");
    let (url_a, url_b) = (format!("{}/", app_a.base), format!("{}/", app_b.base));
    assert_eq!(get_text(&url_b, &[]).await.0, "list-1");
    assert_eq!(get_text(&url_b, &[]).await, ("list-1".into(), "hit".into()));
    assert_eq!(
        get_text(&url_a, &[]).await.0,
        "list-1",
        "from the shared tier"
    );
    for round in 2..12 {
        let _ = memo_a.forget_all().await;
        let expected = format!("list-{round}");
        assert_eq!(
            get_text(&url_b, &[]).await,
            (expected.clone(), "miss".into()),
            "B, round {round}"
        );
        assert_eq!(get_text(&url_a, &[]).await.0, expected, "A, round {round}");
        assert_eq!(get_text(&url_b, &[]).await.1, "hit");
    }
    // Tags and delete_cached travel the same bus.
    let layer_a = ResponseCacheLayer::new(&a);
    let _ = layer_a.delete_cached(&axum::http::Method::GET, "/").await;
    assert_eq!(get_text(&url_b, &[]).await.1, "miss");
}

/// The race the stamps exist for (the stale set of "Scaling Memcache at
/// Facebook", one level up): a view reads a memo, the memo is forgotten
/// while the view is still rendering, and the view's response (built from
/// the old value) arrives after the forget returned. It is answered to its
/// own request but must never be stored: the next request runs the view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forget_while_the_view_runs_keeps_its_response_out() {
    let Gated {
        news,
        gate,
        first,
        url,
        _app,
    } = first_view_held_at_a_gate().await;
    let _ = news.forget_all().await;
    gate.add_permits(100);
    assert_eq!(
        first.await.expect("first"),
        ("news-1".into(), "miss".into())
    );
    assert_eq!(get_text(&url, &[]).await, ("news-2".into(), "miss".into()));
    assert_eq!(get_text(&url, &[]).await, ("news-2".into(), "hit".into()));
}

/// A request that arrives after a `forget` returned never gets the answer
/// of a view that started before it, even by joining that view's flight.
/// In process (the router called as a service), so that one poll takes
/// the second request as far as it can go while the first view is held:
/// into the first view's flight if it would join it (the case this test
/// is for), or through a view of its own; no pause, no timing.
#[tokio::test]
async fn a_request_after_a_forget_never_shares_an_older_views_answer() {
    use tower::ServiceExt as _;
    let cache = Cache::memory();
    let news = Memo::<(), String>::builder("news")
        .build(&cache)
        .expect("memo");
    let (app, gate, entered) = gated_news_app(&cache, &news);
    let request = || {
        axum::http::Request::get("/")
            .body(axum::body::Body::empty())
            .expect("request")
    };
    let first = tokio::spawn(app.clone().oneshot(request()));
    tokio::time::timeout(LIMIT, async {
        while entered.count() < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the view starts");
    let _ = news.forget_all().await;
    let mut second = Box::pin(app.oneshot(request()));
    let early = futures::poll!(second.as_mut());
    gate.add_permits(100);
    let body = |response: axum::response::Response| async move {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let first = first.await.expect("first task").expect("first response");
    assert_eq!(body(first).await, "news-1");
    let second = match early {
        std::task::Poll::Ready(response) => response,
        std::task::Poll::Pending => second.await,
    };
    assert_eq!(
        body(second.expect("second response")).await,
        "news-2",
        "asked after the forget returned"
    );
}

/// A router whose `/` reads memo `news` behind a response cache; its
/// first view waits at the returned gate once it has read the memo.
fn gated_news_app(
    cache: &Cache,
    news: &Memo<(), String>,
) -> (Router, Arc<tokio::sync::Semaphore>, Calls) {
    let (source, entered) = (Calls::default(), Calls::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let view = {
        let (news, source, entered, gate) =
            (news.clone(), source.clone(), entered.clone(), gate.clone());
        move || async move {
            let source = source.clone();
            let value = news
                .get_or_load(&(), || async move { format!("news-{}", source.next()) })
                .await;
            if entered.next() == 1 {
                let _pass = gate.acquire().await.expect("gate");
            }
            value.to_string()
        }
    };
    let app = Router::new()
        .route("/", get(view))
        .layer(ResponseCacheLayer::new(cache).hit_header(true));
    (app, gate, entered)
}

/// A view reading memo `news` behind a response cache, and a first
/// request whose view has read the memo and now waits at `gate`.
struct Gated {
    news: Memo<(), String>,
    gate: Arc<tokio::sync::Semaphore>,
    first: tokio::task::JoinHandle<(String, String)>,
    url: String,
    _app: Served,
}

async fn first_view_held_at_a_gate() -> Gated {
    let cache = Cache::memory();
    let news = Memo::<(), String>::builder("news")
        .build(&cache)
        .expect("memo");
    let (app, gate, entered) = gated_news_app(&cache, &news);
    let app = serve(app).await;
    let url = format!("{}/", app.base);
    let first = tokio::spawn({
        let url = url.clone();
        async move { get_text(&url, &[]).await }
    });
    tokio::time::timeout(LIMIT, async {
        while entered.count() < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the view starts");
    Gated {
        news,
        gate,
        first,
        url,
        _app: app,
    }
}

/// A layer bounded by bytes keeps what it stores within them, with each
/// page weighed with room for the encodings it may make later; a page over
/// a sixteenth of the budget (16 KiB) is served, counted, and not kept.
#[tokio::test]
async fn a_byte_budget_bounds_the_stored_pages() {
    const BUDGET: u64 = 256 << 10;
    let cache = Cache::memory();
    let layer = ResponseCacheLayer::new(&cache).capacity_bytes(BUDGET);
    let app =
        Router::new()
            .route(
                "/page/{n}",
                get(
                    |axum::extract::Path(n): axum::extract::Path<u32>| async move {
                        format!("{n:>4096}")
                    },
                ),
            )
            .route("/big", get(|| async { "b".repeat(20 << 10) }))
            .layer(layer.clone().hit_header(true));
    let app = serve(app).await;
    for n in 0..60 {
        let (body, label) = get_text(&format!("{}/page/{n}", app.base), &[]).await;
        assert_eq!((body.len(), label.as_str()), (4096, "miss"));
        let weight = layer.stored_bytes().expect("bounded by bytes");
        assert!(weight <= BUDGET, "page {n}: {weight} > {BUDGET}");
    }
    let kept = layer.stored_entries();
    // Each 4 KiB text page is weighed as three bodies (it may be stored
    // gzipped and in brotli too) and its headers: about 13 KiB.
    assert!((8..=17).contains(&kept), "{kept} pages kept");
    let mut hit = false;
    for n in (0..60).rev() {
        if get_text(&format!("{}/page/{n}", app.base), &[]).await.1 == "hit" {
            hit = true;
            break;
        }
    }
    assert!(hit, "a kept page is served from the cache");
    let big = format!("{}/big", app.base);
    for _ in 0..2 {
        let (body, label) = get_text(&big, &[]).await;
        assert_eq!((body.len(), label.as_str()), (20 << 10, "miss"));
    }
    assert_eq!(layer.stats().too_large, 2);
}
