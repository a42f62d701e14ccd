//! Home, my messages, one image's page, pagination, assets, metrics.

use image::ImageFormat;
use reqwest::StatusCode;

use crate::helpers::{media_links, picture, spawn_app, spawn_with};

#[tokio::test]
async fn an_empty_board_invites_the_first_post() {
    let app = spawn_app().await;
    let (status, html) = app.get_text("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No messages yet"), "{html}");
    assert!(html.contains("href=\"/login\""));
}

#[tokio::test]
async fn home_lists_every_message_newest_first_with_author_location_and_time() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("first words").await;
    app.posted("second words").await;
    let (_, html) = app.get_text("/").await;
    let first = html.find("first words").expect("first shown");
    let second = html.find("second words").expect("second shown");
    assert!(second < first, "newest first");
    assert!(html.contains("<strong>Ada</strong>"));
    assert!(html.contains("in Tallinn"));
    assert!(html.contains("<time datetime="));
    // Visitors see the same list.
    let visitor = crate::helpers::client();
    let page = visitor
        .get(app.url("/"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(page.contains("second words") && page.contains("Log in"));
}

/// The `href` of the link with `rel` (`next`: older, `prev`: newer).
fn link(html: &str, rel: &str) -> Option<String> {
    let marker = format!("rel=\"{rel}\" href=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

#[tokio::test]
async fn home_is_paginated_by_the_configured_page_size() {
    let app = spawn_with(|s| s.page_size = 2).await;
    app.signed_up("ada").await;
    for n in 1..=3 {
        app.posted(&format!("message number {n}")).await;
    }
    let (_, one) = app.get_text("/").await;
    assert!(one.contains("message number 3") && one.contains("message number 2"));
    assert!(!one.contains("message number 1"));
    assert_eq!(link(&one, "prev"), None, "the first page has no newer link");
    let older = link(&one, "next").expect("link to older");
    assert!(older.starts_with("/?cursor="), "{older}");
    let (status, two) = app.get_text(&older).await;
    assert_eq!(status, StatusCode::OK);
    assert!(two.contains("message number 1") && !two.contains("message number 2"));
    assert_eq!(link(&two, "next"), None, "the last page has no older link");
    let newer = link(&two, "prev").expect("link to newer");
    let (_, back) = app.get_text(&newer).await;
    assert!(back.contains("message number 3") && back.contains("message number 2"));
    assert_eq!(link(&back, "prev"), None, "back on the first page");

    // Forged, edited and foreign tokens: a clear 400 page, never a 500.
    let token = older.trim_start_matches("/?cursor=");
    let mut edited = token.to_owned().into_bytes();
    edited[3] = if edited[3] == b'0' { b'1' } else { b'0' };
    let edited = String::from_utf8(edited).expect("hex");
    for bad in ["zz", "0", edited.as_str(), &"ab".repeat(41)] {
        let (status, html) = app.get_text(&format!("/?cursor={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(html.contains("page link is damaged"), "{html}");
    }
    // A stale link past the oldest message (deleted meanwhile): 404.
    let ada_messages = app.stored_messages().await;
    let oldest = ada_messages
        .iter()
        .find(|m| m.description == "message number 1")
        .expect("oldest");
    let response = app.post("/delete", &[("id", oldest.id.as_str())]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, html) = app.get_text(&older).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{html}");
}

/// Posts and deletes between page loads: the older page continues from
/// the last message shown, so nothing is skipped or shown twice.
#[tokio::test]
async fn writes_between_page_loads_skip_nothing_and_repeat_nothing() {
    let app = spawn_with(|s| s.page_size = 3).await;
    app.signed_up("ada").await;
    for n in 1..=7 {
        app.posted(&format!("msg-{n:02}-end")).await;
    }
    let (_, one) = app.get_text("/").await;
    let older = link(&one, "next").expect("older");
    // Meanwhile: two new posts and the newest of page one deleted.
    app.posted("msg-08-end").await;
    app.posted("msg-09-end").await;
    let newest = app
        .stored_messages()
        .await
        .into_iter()
        .find(|m| m.description == "msg-07-end")
        .expect("msg 7");
    app.post("/delete", &[("id", newest.id.as_str())]).await;
    let (_, two) = app.get_text(&older).await;
    let shown = |html: &str| -> Vec<String> {
        html.match_indices("msg-")
            .map(|(i, _)| html[i..i + 6].to_owned())
            .collect()
    };
    assert_eq!(shown(&one), ["msg-07", "msg-06", "msg-05"]);
    assert_eq!(shown(&two), ["msg-04", "msg-03", "msg-02"]);
    let (_, three) = app.get_text(&link(&two, "next").expect("older")).await;
    assert_eq!(shown(&three), ["msg-01"]);
}

#[tokio::test]
async fn my_messages_shows_only_mine_with_delete_buttons() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("ada's picture").await;
    app.logout().await;
    app.signed_up("bob").await;
    app.posted("bob's picture").await;
    let (status, html) = app.get_text("/my").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("bob&#39;s picture") || html.contains("bob&#x27;s picture"),
        "{html}"
    );
    assert!(!html.contains("ada&#"));
    assert_eq!(crate::helpers::message_ids(&html).len(), 1);
    assert_eq!(media_links(&html).len(), 1, "one thumbnail");
}

#[tokio::test]
async fn an_image_page_shows_the_full_image_and_details() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("look at this").await;
    let (_, home) = app.get_text("/").await;
    let thumb = &media_links(&home)[0];
    let full = thumb.replace("_thumb", "");
    let (status, page) = app.get_text(&format!("/image/{full}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(&format!("src=\"/media/{full}\"")));
    assert!(page.contains("look at this"));
    assert!(page.contains("Delete this message"), "the owner may delete");
    // Another visitor sees no delete button.
    let visitor = crate::helpers::client();
    let other = visitor
        .get(app.url(&format!("/image/{full}")))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(!other.contains("Delete this message"));
}

#[tokio::test]
async fn stylesheet_and_icon_are_served_with_validators() {
    let app = spawn_app().await;
    let css = app.get("/static/board.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let etag = css.headers()["etag"].clone();
    let again = app
        .client
        .get(app.url("/static/board.css"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        app.get("/static/favicon.svg").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/static/nope.css").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unknown_pages_get_a_friendly_404() {
    let app = spawn_app().await;
    let (status, html) = app.get_text("/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Not found") && html.contains("Go to the board"));
}

#[tokio::test]
async fn metrics_expose_database_calls_and_memo_counters() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("counted").await;
    app.get("/").await;
    let text = app.metrics().await;
    assert!(
        text.contains("board_db_calls_total{table=\"messages\",operation=\"page\"} 1"),
        "{text}"
    );
    assert!(text.contains("board_db_calls_total{table=\"users\",operation=\"insert\"} 1"));
    for memo in ["load_user", "all_messages", "load_session", "user_messages"] {
        assert!(
            text.contains(&format!(
                "memocache_hits_total{{memo=\"{memo}\",tier=\"local\"}}"
            )),
            "{memo}"
        );
    }
    assert!(text.contains("# TYPE memocache_misses_total counter"));
    // memocache's exporter: every counter, the tier and store gauges.
    for line in [
        "memocache_invalidations_received_total{memo=\"load_user\"} 0",
        "memocache_l1_in_sync 1",
        "memocache_store_available 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn media_base_url_replaces_the_own_media_routes() {
    let app = spawn_with(|s| s.media_base_url = Some("https://cdn.example.com/board".into())).await;
    app.signed_up("ada").await;
    let response = app
        .post_message(
            &[("author", "Ada"), ("description", "on the cdn")],
            Some(("a.gif", picture(20, 20, ImageFormat::Gif))),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let home = app.get("/").await;
    let csp = home.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("img-src 'self' https://cdn.example.com;"),
        "{csp}"
    );
    let html = home.text().await.expect("body");
    assert!(
        html.contains("src=\"https://cdn.example.com/board/"),
        "{html}"
    );
    assert!(html.contains("_thumb.png\""));
}

#[tokio::test]
async fn visitors_who_take_gzip_or_brotli_get_the_same_page_compressed() {
    use std::io::Read as _;
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("squeezed").await;
    let visitor = crate::helpers::client();
    let plain = visitor.get(app.url("/")).send().await.expect("GET");
    let varies_on_encoding = |headers: &reqwest::header::HeaderMap| {
        headers
            .get_all("vary")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding"))
    };
    assert!(varies_on_encoding(plain.headers()));
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.text().await.expect("body");
    let zipped = visitor
        .get(app.url("/"))
        .header("accept-encoding", "gzip, deflate")
        .send()
        .await
        .expect("GET");
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert!(varies_on_encoding(zipped.headers()));
    let bytes = zipped.bytes().await.expect("body");
    assert!(bytes.len() < plain.len());
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut unzipped)
        .expect("valid gzip");
    assert_eq!(unzipped, plain);
    // A browser (Chromium sends `gzip, deflate, br, zstd`) gets brotli,
    // smaller still.
    let brotli = visitor
        .get(app.url("/"))
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .send()
        .await
        .expect("GET");
    assert_eq!(brotli.headers()["content-encoding"], "br");
    assert!(varies_on_encoding(brotli.headers()));
    assert!(brotli.bytes().await.expect("body").len() < bytes.len());
    // Logged-in pages name the user, so they are not shared.
    let mine = app
        .client
        .get(app.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET");
    assert!(mine.headers().get("content-encoding").is_none());
    assert!(mine.text().await.expect("body").contains(">ada</a>"));
}

/// More messages than one DynamoDB page holds (over 1 MB of items; the
/// original scanned once and dropped the rest): every message is listed,
/// newest first, across the board's pages.
#[tokio::test]
async fn a_board_bigger_than_one_scan_page_lists_every_message_in_order() {
    const MESSAGES: usize = 1_200;
    let app = spawn_with(|s| s.page_size = 200).await;
    app.signed_up("ada").await;
    let ada = app
        .state
        .data
        .stores()
        .users
        .credentials("ada")
        .await
        .expect("credentials")
        .expect("ada exists")
        .user;
    // About 1.1 KB an item: 1,200 of them are 1.3 MB.
    let description = "A long description that pads the item. ".repeat(25);
    let batch: Vec<board::store::Message> = (0..MESSAGES)
        .map(|i| board::store::Message {
            id: format!("{i:032x}"),
            user_id: ada.id.clone(),
            author: "Ada".into(),
            location: "Tallinn".into(),
            description: description.clone(),
            image: format!("{i:032x}.jpg"),
            thumbnail: format!("{i:032x}_thumb.jpg"),
            created_at: 1_700_000_000_000 + i as i64,
        })
        .collect();
    app.state.data.insert_many(&batch).await.expect("insert");

    let mut listed = Vec::new();
    let mut next = Some("/".to_owned());
    while let Some(url) = next {
        let (status, html) = app.get_text(&url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        listed.extend(
            media_links(&html)
                .into_iter()
                .filter(|link| link.ends_with("_thumb.jpg")),
        );
        next = link(&html, "next");
    }
    let newest_first: Vec<String> = (0..MESSAGES)
        .rev()
        .map(|i| format!("{i:032x}_thumb.jpg"))
        .collect();
    assert_eq!(listed.len(), MESSAGES, "every message is listed");
    assert_eq!(listed, newest_first);
}

/// Anonymous public pages go through memocache's response cache: an ETag,
/// `Cache-Control: no-cache` so browsers revalidate, a `304` while nothing
/// changed, and a post (which forgets `all_messages`) changes the page at
/// once without naming any URL. Logged-in pages are never shared.
#[tokio::test]
async fn anonymous_pages_revalidate_with_304_until_a_post_changes_them() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("first words").await;
    let visitor = reqwest::Client::new();
    let home = visitor.get(app.url("/")).send().await.expect("GET");
    assert_eq!(home.headers()["cache-control"], "no-cache");
    let etag = home.headers()["etag"].clone();
    assert!(home.text().await.expect("body").contains("first words"));
    let again = visitor
        .get(app.url("/"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.expect("body").is_empty());
    assert!(
        app.metrics()
            .await
            .contains("board_page_cache_total{outcome=\"not_modified\"} 1"),
        "the 304 is counted on /metrics"
    );

    app.posted("second words").await;
    let changed = visitor
        .get(app.url("/"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .expect("GET");
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"], etag);
    assert!(changed.text().await.expect("body").contains("second words"));

    // The signed-in client carries its session: no ETag, never a 304.
    let mine = app
        .client
        .get(app.url("/"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(mine.status(), StatusCode::OK);
    assert!(mine.headers().get("etag").is_none());
    assert_eq!(mine.headers()["cache-control"], "private, no-store");
    // Deeper pages are not kept (as the data layer keeps first pages only).
    let deeper = visitor
        .get(app.url("/?cursor=x"))
        .send()
        .await
        .expect("GET");
    assert!(deeper.headers().get("etag").is_none());
}

/// On a tiered cache over a Redis Cluster, the node that holds the home
/// listing's memo version is black-holed: a post opens that node's breaker
/// only, `/healthz` names it and says the store is degraded, `/metrics`
/// has its breaker line (from memocache's exporter); after healing both
/// show it closed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_name_a_cut_off_cluster_node() {
    let cluster = tokio::task::spawn_blocking(|| testkit::RedisCluster::start_behind_proxies(3))
        .await
        .expect("cluster");
    let url = format!(
        "tiered+{}?prefix=b:&timeout_ms=300&probe_ms=100&probe_max_ms=200&heartbeat_ms=300",
        cluster.url()
    );
    let app = spawn_with(|s| s.cache_url = url).await;
    app.signed_up("ada").await;
    app.posted("before").await;
    let (_, health) = app.get_text("/healthz").await;
    assert!(
        health.contains(r#""breakers":{"store":"closed","bus":"closed"},"open_nodes":[]"#),
        "{health}"
    );
    let victim = cluster.node_of_key("b:all_messages:ver");
    let node = format!("127.0.0.1:{}", cluster.proxies()[victim].port());
    cluster.proxies()[victim].black_hole();
    app.posted("during").await;
    let (_, health) = app.get_text("/healthz").await;
    assert!(
        health.contains(&format!(
            r#""store_available":false,"breakers":{{"store":"open","bus":"closed"}},"open_nodes":["{node}"]"#
        )),
        "{health}"
    );
    let text = app.metrics().await;
    for line in [
        format!("memocache_breaker_open{{breaker=\"store\",node=\"{node}\"}} 1"),
        "memocache_store_available 0".to_owned(),
        "memocache_breaker_open{breaker=\"bus\"} 0".to_owned(),
    ] {
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
    cluster.proxies()[victim].pass_through();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, health) = app.get_text("/healthz").await;
        if health.contains(r#""open_nodes":[]"#) && health.contains(r#""store_available":true"#) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still open: {health}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
