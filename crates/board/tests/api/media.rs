//! `/media/{name}` and `/image/{name}`: only stored images, no path tricks,
//! long-lived cache headers with an ETag.

use reqwest::StatusCode;

use crate::helpers::{media_links, spawn_app};

#[tokio::test]
async fn media_are_served_immutable_with_an_etag() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("cached forever").await;
    let thumb = media_links(&app.get_text("/").await.1).remove(0);
    let response = app.get(&format!("/media/{thumb}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let etag = response.headers()["etag"].clone();
    let again = app
        .client
        .get(app.url(&format!("/media/{thumb}")))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.expect("body").is_empty());
}

#[tokio::test]
async fn names_that_are_not_stored_images_or_try_path_tricks_are_404() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("the only one").await;
    let thumb = media_links(&app.get_text("/").await.1).remove(0);
    std::fs::write(app.dir.path().join("secret.txt"), "do not serve").expect("write");
    let tricks = [
        "../board.sqlite".to_owned(),
        "..%2Fboard.sqlite".to_owned(),
        "..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "%2e%2e%2fsecret.txt".to_owned(),
        "secret.txt".to_owned(),
        "0123456789abcdef0123456789abcdef.png".to_owned(),
        "0123456789ABCDEF0123456789ABCDEF.png".to_owned(),
        format!("{thumb}.png"),
        format!("{thumb}%00.png"),
        thumb.replace(".png", ".exe"),
    ];
    for name in &tricks {
        for prefix in ["/media/", "/image/"] {
            let response = app.get(&format!("{prefix}{name}")).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{prefix}{name}");
        }
    }
    // A thumbnail is a stored file but not an image page.
    assert_eq!(
        app.get(&format!("/image/{thumb}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/media/{thumb}")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn no_304_for_a_name_that_is_not_stored() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("soon gone").await;
    let thumb = media_links(&app.get_text("/").await.1).remove(0);
    let conditional = |name: String| {
        app.client
            .get(app.url(&format!("/media/{name}")))
            .header("if-none-match", format!("\"{name}\""))
            .send()
    };
    // Never stored: a well-formed name and its matching ETag, or `*`.
    let unknown = "0123456789abcdef0123456789abcdef.png".to_owned();
    let response = conditional(unknown.clone()).await.expect("GET");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app
        .client
        .get(app.url(&format!("/media/{unknown}")))
        .header("if-none-match", "*")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // Stored: 304; deleted: 404 again.
    assert_eq!(
        conditional(thumb.clone()).await.expect("GET").status(),
        StatusCode::NOT_MODIFIED
    );
    let html = app.get_text("/my").await.1;
    let id = crate::helpers::message_ids(&html).remove(0);
    let deleted = app.post("/delete", &[("id", id.as_str())]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        conditional(thumb).await.expect("GET").status(),
        StatusCode::NOT_FOUND
    );
}

/// An image written without its message (a crash mid-post) is served by
/// name until the sweep, then 404; a posted image stays served. The sweep
/// runs with `now` two hours ahead, so both are past the one-hour grace.
#[tokio::test]
async fn an_orphan_image_is_served_until_the_sweep_removes_it() {
    use std::time::{Duration, SystemTime};

    use board::media::{ImageKind, MediaName};

    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("shown").await;
    let shown = media_links(&app.get_text("/").await.1).remove(0);
    let (orphan, orphan_thumb) = MediaName::fresh_pair(ImageKind::Png, ImageKind::Jpeg);
    for name in [&orphan, &orphan_thumb] {
        app.state
            .data
            .media()
            .put(name, bytes::Bytes::from_static(b"left behind"))
            .await
            .expect("put");
        let response = app.get(&format!("/media/{}", name.as_str())).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", name.as_str());
    }

    let hour = Duration::from_secs(3600);
    let report = app
        .state
        .data
        .sweep_media(hour, SystemTime::now() + 2 * hour)
        .await
        .expect("sweep");
    assert_eq!(report.removed, 2, "{report:?}");
    for name in [&orphan, &orphan_thumb] {
        let response = app.get(&format!("/media/{}", name.as_str())).await;
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{}",
            name.as_str()
        );
    }
    assert_eq!(
        app.get(&format!("/media/{shown}")).await.status(),
        StatusCode::OK
    );
}
