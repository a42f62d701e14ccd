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
    assert!(one.contains("href=\"/?page=2\""), "link to older");
    let (status, two) = app.get_text("/?page=2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(two.contains("message number 1") && two.contains("href=\"/?page=1\""));
    assert_eq!(app.get("/?page=3").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/?page=0").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get("/?page=abc").await.status(),
        StatusCode::BAD_REQUEST
    );
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
        text.contains("board_db_calls_total{table=\"messages\",operation=\"scan\"} 1"),
        "{text}"
    );
    assert!(text.contains("board_db_calls_total{table=\"users\",operation=\"insert\"} 1"));
    for memo in ["load_user", "all_messages", "load_session", "home_page"] {
        assert!(
            text.contains(&format!("memocache_hits_total{{memo=\"{memo}\"}}")),
            "{memo}"
        );
    }
    assert!(text.contains("# TYPE memocache_misses_total counter"));
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
async fn visitors_who_take_gzip_get_the_same_page_compressed() {
    use std::io::Read as _;
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("squeezed").await;
    let visitor = crate::helpers::client();
    let plain = visitor.get(app.url("/")).send().await.expect("GET");
    assert_eq!(plain.headers()["vary"], "Accept-Encoding");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.text().await.expect("body");
    let zipped = visitor
        .get(app.url("/"))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .expect("GET");
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["vary"], "Accept-Encoding");
    let bytes = zipped.bytes().await.expect("body");
    assert!(bytes.len() < plain.len());
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut unzipped)
        .expect("valid gzip");
    assert_eq!(unzipped, plain);
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
        .stores
        .users
        .credentials("ada")
        .await
        .expect("credentials")
        .expect("ada exists")
        .user;
    // About 1.1 KB an item: 1,200 of them are 1.3 MB.
    let description = "A long description that pads the item. ".repeat(25);
    let mut inserts = tokio::task::JoinSet::new();
    for i in 0..MESSAGES {
        let messages = std::sync::Arc::clone(&app.state.stores.messages);
        let message = board::store::Message {
            id: format!("{i:032x}"),
            user_id: ada.id.clone(),
            author: "Ada".into(),
            location: "Tallinn".into(),
            description: description.clone(),
            image: format!("{i:032x}.jpg"),
            thumbnail: format!("{i:032x}_thumb.jpg"),
            created_at: 1_700_000_000_000 + i as i64,
        };
        inserts.spawn(async move { messages.insert(&message).await });
        if inserts.len() >= 16 {
            inserts
                .join_next()
                .await
                .expect("task")
                .expect("join")
                .expect("insert");
        }
    }
    while let Some(done) = inserts.join_next().await {
        done.expect("join").expect("insert");
    }
    app.state.messages_changed(&ada.id).await;

    let mut listed = Vec::new();
    for page in 1.. {
        let (status, html) = app.get_text(&format!("/?page={page}")).await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(status, StatusCode::OK, "page {page}");
        let thumbs: Vec<String> = media_links(&html)
            .into_iter()
            .filter(|link| link.ends_with("_thumb.jpg"))
            .collect();
        if thumbs.is_empty() {
            break;
        }
        listed.extend(thumbs);
    }
    let newest_first: Vec<String> = (0..MESSAGES)
        .rev()
        .map(|i| format!("{i:032x}_thumb.jpg"))
        .collect();
    assert_eq!(listed.len(), MESSAGES, "every message is listed");
    assert_eq!(listed, newest_first);
}
