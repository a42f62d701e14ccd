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

#[tokio::test]
async fn pages_for_a_session_are_kept_out_of_shared_caches() {
    let app = spawn_app().await;
    // The login page: it sets the anonymous CSRF cookie, and once the
    // browser has it, the page carries that browser's token.
    for round in ["first visit", "second visit"] {
        let response = app.get("/login").await;
        assert_eq!(
            response.headers()["cache-control"],
            "private, no-store",
            "login, {round}"
        );
    }
    app.signed_up("ada").await;
    app.posted("cached privately").await;
    let html = app.get_text("/").await.1;
    let thumb = media_links(&html).remove(0);
    let image = html
        .match_indices("/image/")
        .map(|(at, _)| {
            let rest = &html[at..];
            rest[..rest.find('"').expect("quote")].to_owned()
        })
        .next()
        .expect("an image page link");
    for path in [
        "/",
        "/my",
        "/acc",
        "/post",
        "/logout",
        "/nope",
        image.as_str(),
    ] {
        let response = app.get(path).await;
        assert_eq!(
            response.headers()["cache-control"],
            "private, no-store",
            "{path}"
        );
    }
    for path in ["/", image.as_str()] {
        let response = app.get(path).await;
        let vary: Vec<&str> = response
            .headers()
            .get_all("vary")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert!(
            vary.iter().any(|v| v.contains("Cookie")),
            "{path}: {vary:?}"
        );
    }
    // Images and assets keep their long-lived caching, cookie or not.
    for path in [format!("/media/{thumb}"), "/static/board.css".to_owned()] {
        let response = app.get(&path).await;
        let cache = response.headers()["cache-control"].to_str().expect("ascii");
        assert!(cache.starts_with("public, max-age="), "{path}: {cache}");
        assert!(response.headers().get("set-cookie").is_none(), "{path}");
    }
    // A response that sets a cookie is private even without a session.
    let anonymous = crate::helpers::client();
    let response = anonymous
        .get(app.url("/register"))
        .send()
        .await
        .expect("GET");
    assert!(response.headers().get("set-cookie").is_some());
    assert_eq!(response.headers()["cache-control"], "private, no-store");
}

#[tokio::test]
async fn hsts_is_sent_for_https_reported_by_a_trusted_proxy_only() {
    let proxied = crate::helpers::spawn_with(|s| {
        s.trusted_proxies = vec!["127.0.0.1".parse().expect("net")];
    })
    .await;
    let over_https = |app: &crate::helpers::TestApp| {
        app.client
            .get(app.url("/"))
            .header("x-forwarded-proto", "https")
            .send()
    };
    let response = over_https(&proxied).await.expect("GET");
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let plain = proxied.get("/").await;
    assert!(plain.headers().get("strict-transport-security").is_none());
    // Without trusted proxies anyone could send the header: ignored.
    let direct = spawn_app().await;
    let response = over_https(&direct).await.expect("GET");
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
}

#[tokio::test]
async fn the_flash_clearing_cookie_is_secure_when_cookies_are() {
    let app = crate::helpers::spawn_with(|s| s.secure_cookies = true).await;
    // reqwest keeps `Secure` cookies for https only, so send the notice by
    // hand, as a browser on https would.
    let response = reqwest::Client::new()
        .get(app.url("/"))
        .header("cookie", "board_flash=logged-out")
        .send()
        .await
        .expect("GET");
    let line = crate::helpers::set_cookie_line(response.headers(), "board_flash")
        .expect("the notice is cleared");
    assert!(line.contains("Max-Age=0"), "{line}");
    assert!(line.contains("; Secure"), "{line}");
}
