//! Headers every response carries, and escaping.

use reqwest::StatusCode;

use crate::helpers::{media_links, spawn_app};

#[tokio::test]
async fn every_kind_of_response_has_the_security_headers() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("headers").await;
    let thumb = media_links(&app.get_text("/").await.1).remove(0);
    for path in [
        "/",
        "/my",
        "/acc",
        "/post",
        "/login",
        "/nope",
        "/static/board.css",
        "/metrics",
        &format!("/media/{thumb}"),
    ] {
        let response = app.get(path).await;
        let h = response.headers();
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(
            h["referrer-policy"], "strict-origin-when-cross-origin",
            "{path}"
        );
    }
}

#[tokio::test]
async fn pages_use_no_external_resources() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("local only").await;
    for path in ["/", "/my", "/post", "/acc"] {
        let (status, html) = app.get_text(path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{path} links out"
        );
        assert!(!html.contains("<script"), "{path} has scripts");
        assert!(
            !html.contains("style=\""),
            "{path} has inline styles (CSP forbids them)"
        );
    }
}

#[tokio::test]
async fn hsts_is_sent_only_when_served_over_https() {
    let plain = spawn_app().await;
    assert!(
        plain
            .get("/")
            .await
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
    let https = crate::helpers::spawn_with(|s| s.secure_cookies = true).await;
    let response = https.get("/").await;
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}
