//! Register, log in, log out, account page, password change, rate limits.

use reqwest::StatusCode;

use crate::helpers::{
    client, csrf_in, location, set_cookie_line, set_cookie_value, spawn_app, spawn_with,
};

#[tokio::test]
async fn registering_logs_in_and_greets() {
    let app = spawn_app().await;
    let response = app.register("ada", "password123").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    let (_, html) = app.get_text("/").await;
    assert!(
        html.contains("Welcome! Your account is ready."),
        "flash shown"
    );
    assert!(html.contains(">ada</a>") && html.contains("Log out"));
    let (_, again) = app.get_text("/").await;
    assert!(!again.contains("Welcome!"), "flash shown once");
}

#[tokio::test]
async fn register_refuses_bad_input_and_keeps_the_name() {
    let app = spawn_app().await;
    let cases: &[(&str, &str, &str, &str)] = &[
        ("ad", "password123", "password123", "3 to 32 characters"),
        ("ada lovelace", "password123", "password123", "may only use"),
        ("<b>ada</b>", "password123", "password123", "may only use"),
        ("ada", "short", "short", "at least 8"),
        ("ada", "password123", "password124", "differ"),
    ];
    for (name, pw, confirm, expected) in cases {
        let response = app
            .post(
                "/register",
                &[("username", name), ("password", pw), ("confirm", confirm)],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}"
        );
        let html = response.text().await.expect("body");
        assert!(html.contains(expected), "{name}: {html}");
        assert!(!html.contains("<b>ada"), "escaped");
    }
    assert_eq!(
        app.state.data.stores().users.count().await.expect("count"),
        0
    );
}

#[tokio::test]
async fn user_names_are_unique_without_case() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.logout().await;
    let response = app.register("ADA", "password123").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.text().await.expect("body").contains("taken"));
}

#[tokio::test]
async fn login_with_wrong_or_unknown_credentials_is_refused() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.logout().await;
    let wrong = app.login("ada", "wrong-password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let html = wrong.text().await.expect("body");
    assert!(html.contains("Wrong user name or password") && html.contains("value=\"ada\""));
    assert_eq!(
        app.login("nobody", "password123").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let ok = app.login("ada", "password123").await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie_value(ok.headers(), "board_session").is_some());
}

#[tokio::test]
async fn session_cookies_are_http_only_and_lax_and_secure_behind_https() {
    let app = spawn_app().await;
    let response = app.register("ada", "password123").await;
    let line = set_cookie_line(response.headers(), "board_session").expect("cookie");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Lax"),
        "{line}"
    );
    assert!(!line.contains("Secure"));

    let secure = spawn_with(|s| s.secure_cookies = true).await;
    let line = set_cookie_line(
        secure.register("ada", "password123").await.headers(),
        "board_session",
    )
    .expect("cookie");
    assert!(line.contains("; Secure"), "{line}");

    let proxied = spawn_app().await;
    let (_, form) = proxied.get_text("/register").await;
    let response = proxied
        .client
        .post(proxied.url("/register"))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("csrf", csrf_in(&form).as_str()),
            ("username", "ada"),
            ("password", "password123"),
            ("confirm", "password123"),
        ])
        .send()
        .await
        .expect("POST");
    let line = set_cookie_line(response.headers(), "board_session").expect("cookie");
    assert!(line.contains("; Secure"), "{line}");
}

#[tokio::test]
async fn logout_needs_a_post_with_csrf_and_revokes_the_copied_cookie() {
    let app = spawn_app().await;
    let token = app.signed_up("ada").await;
    let (status, page) = app.get_text("/logout").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<button type=\"submit\" class=\"button\">Log out</button>"),
        "GET shows a button"
    );
    assert!(
        app.get_text("/acc").await.1.contains("Your account"),
        "GET did not log out"
    );

    let forged = app.post_form("/logout", &[("csrf", "not-the-token")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let missing = app.post_form("/logout", &[]).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/acc").await.status(),
        StatusCode::OK,
        "still logged in"
    );

    let out = app.logout().await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        set_cookie_line(out.headers(), "board_session").is_some_and(|l| l.contains("Max-Age=0"))
    );
    // A copy of the old cookie no longer works.
    let thief = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let stolen = thief
        .get(app.url("/acc"))
        .header("cookie", format!("board_session={token}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(stolen.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&stolen), "/login");
}

#[tokio::test]
async fn pages_for_members_send_visitors_to_login() {
    let app = spawn_app().await;
    for path in ["/my", "/acc", "/post"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/login", "{path}");
    }
    for path in ["/delete", "/acc/password", "/logout"] {
        let response = app.post_form(path, &[("csrf", "x")]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
    }
    let visitor = client();
    let save = visitor
        .post(app.url("/save"))
        .multipart(reqwest::multipart::Form::new().text("csrf", "x"))
        .send()
        .await
        .expect("POST");
    assert_eq!(save.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn forged_session_cookies_are_visitors() {
    let app = spawn_app().await;
    let visitor = client();
    for cookie in [
        "board_session=abc",
        &format!("board_session={}", "a".repeat(64)),
        "board_session=../../x",
    ] {
        let response = visitor
            .get(app.url("/my"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{cookie}");
    }
}

#[tokio::test]
async fn account_page_shows_name_and_message_count() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("one").await;
    app.posted("two").await;
    let (status, html) = app.get_text("/acc").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<dd>ada</dd>"));
    assert!(html.contains("<a href=\"/my\">2</a>"), "{html}");
}

#[tokio::test]
async fn changing_the_password_checks_the_old_one_and_logs_out_other_devices() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    let laptop = app.another_browser();
    assert_eq!(
        laptop.login("ada", "password123").await.status(),
        StatusCode::SEE_OTHER
    );

    let wrong = app
        .post(
            "/acc/password",
            &[
                ("current", "nope-nope"),
                ("new", "newpassword1"),
                ("confirm", "newpassword1"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong
            .text()
            .await
            .expect("body")
            .contains("current password is wrong")
    );
    let differ = app
        .post(
            "/acc/password",
            &[
                ("current", "password123"),
                ("new", "newpassword1"),
                ("confirm", "newpassword2"),
            ],
        )
        .await;
    assert_eq!(differ.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let short = app
        .post(
            "/acc/password",
            &[
                ("current", "password123"),
                ("new", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(short.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let ok = app
        .post(
            "/acc/password",
            &[
                ("current", "password123"),
                ("new", "newpassword1"),
                ("confirm", "newpassword1"),
            ],
        )
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert!(
        app.get_text("/acc")
            .await
            .1
            .contains("Your password is changed")
    );
    assert_eq!(
        laptop.get("/acc").await.status(),
        StatusCode::SEE_OTHER,
        "other device logged out"
    );
    app.logout().await;
    assert_eq!(
        app.login("ada", "password123").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("ada", "newpassword1").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn logins_are_rate_limited_per_account() {
    let app = spawn_with(|s| s.login_failures_per_account = 3).await;
    app.signed_up("ada").await;
    app.logout().await;
    for _ in 0..3 {
        assert_eq!(
            app.login("ada", "wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = app.login("ada", "password123").await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        blocked
            .text()
            .await
            .expect("body")
            .contains("Too many failed logins")
    );
    // Other accounts are not affected.
    app.signed_up("bob").await;
}

#[tokio::test]
async fn logins_are_rate_limited_per_address() {
    let app = spawn_with(|s| s.login_failures_per_address = 4).await;
    for n in 0..4 {
        let name = format!("user{n}");
        assert_eq!(
            app.login(&name, "wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.login("someone", "whatever1").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn login_and_register_forms_need_their_csrf_cookie_and_token() {
    let app = spawn_app().await;
    // A token from another browser does not fit this browser's cookie.
    let (_, form) = app.get_text("/login").await;
    let other = client();
    let response = other
        .post(app.url("/register"))
        .form(&[
            ("csrf", csrf_in(&form).as_str()),
            ("username", "ada"),
            ("password", "password123"),
            ("confirm", "password123"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("Form expired")
    );
    assert_eq!(
        app.state.data.stores().users.count().await.expect("count"),
        0
    );
}

#[tokio::test]
async fn expired_sessions_stop_working_and_are_removed() {
    let clock = board::auth::clock::SessionClock::manual();
    let app = spawn_with(|s| {
        s.session_lifetime = std::time::Duration::from_millis(1200);
        s.session_clock = clock.clone();
    })
    .await;
    let token = app.signed_up("ada").await;
    clock.advance(std::time::Duration::from_millis(1199));
    assert_eq!(app.get("/acc").await.status(), StatusCode::OK);
    clock.advance(std::time::Duration::from_millis(1));
    // The browser would have dropped the cookie; a copy is sent anyway.
    let response = client()
        .get(app.url("/acc"))
        .header("cookie", format!("board_session={token}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
    let hash = board::auth::sha256_hex(&token);
    assert!(
        app.state
            .data
            .stores()
            .sessions
            .get(&hash)
            .await
            .expect("get")
            .is_none(),
        "row removed"
    );
}
