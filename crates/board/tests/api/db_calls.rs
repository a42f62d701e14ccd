//! Counting database calls: sessions and users come from memos, so an
//! authenticated view in steady state reads nothing; a post makes the next
//! home view read one page of messages exactly once.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::spawn_with;

#[tokio::test]
async fn a_thousand_authenticated_requests_make_no_database_calls() {
    // Messages cached long enough that the run stays within one timeout.
    let app = spawn_with(|s| s.messages_cache_timeout = Some(Duration::from_secs(600))).await;
    app.signed_up("ada").await;
    app.posted("steady").await;
    // Warm up every page once.
    for path in ["/", "/my", "/acc", "/post"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
    let calls = &app.state.data.stores().calls;
    let (users, sessions, total) = (calls.table("users"), calls.table("sessions"), calls.total());
    for n in 0..1000 {
        let path = ["/", "/my", "/acc", "/post"][n % 4];
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        if n == 0 {
            assert!(
                response.text().await.expect("body").contains(">ada</a>"),
                "authenticated"
            );
        }
    }
    assert_eq!(calls.table("users") - users, 0, "user reads");
    assert_eq!(calls.table("sessions") - sessions, 0, "session reads");
    assert_eq!(
        calls.total() - total,
        0,
        "database calls: {:?}",
        calls.snapshot()
    );
}

#[tokio::test]
async fn with_default_timeouts_my_page_makes_no_database_calls() {
    // Default settings: `all_messages` lives 5 s, but `/my` reads only the
    // user's own messages (`user_messages`, 600 s, forgotten on their posts).
    let app = spawn_with(|_| {}).await;
    app.signed_up("ada").await;
    app.posted("mine").await;
    app.get("/my").await;
    let calls = &app.state.data.stores().calls;
    let before = calls.total();
    for n in 0..1000 {
        let (status, html) = app.get_text("/my").await;
        assert_eq!(status, StatusCode::OK);
        if n == 0 || n == 999 {
            assert!(html.contains("mine") && html.contains(">ada</a>"), "{html}");
        }
    }
    assert_eq!(
        calls.total() - before,
        0,
        "database calls: {:?}",
        calls.snapshot()
    );

    // A post by the user makes the next `/my` read their messages once.
    app.posted("second").await;
    let reads = calls.get("messages", "user_page");
    let (_, html) = app.get_text("/my").await;
    assert!(html.contains("second") && html.contains("mine"), "{html}");
    assert_eq!(calls.get("messages", "user_page"), reads + 1, "one read");
    let total = calls.total();
    for _ in 0..10 {
        app.get("/my").await;
    }
    assert_eq!(calls.total(), total, "then cached again");
}

#[tokio::test]
async fn another_users_post_leaves_my_page_cached() {
    let app = spawn_with(|_| {}).await;
    app.signed_up("ada").await;
    app.posted("adapost").await;
    let other = app.another_browser();
    other.signed_up("bob").await;
    app.get("/my").await;
    let calls = &app.state.data.stores().calls;
    let reads = calls.get("messages", "user_page");
    other.posted("bobpost").await;
    let (_, html) = app.get_text("/my").await;
    assert!(
        html.contains("adapost") && !html.contains("bobpost"),
        "{html}"
    );
    assert_eq!(calls.get("messages", "user_page"), reads, "ada's list kept");
}

#[tokio::test]
async fn a_post_makes_the_next_home_view_read_the_messages_once() {
    let app = spawn_with(|s| s.messages_cache_timeout = Some(Duration::from_secs(600))).await;
    app.signed_up("ada").await;
    app.get("/").await;
    let calls = &app.state.data.stores().calls;
    let scans = calls.get("messages", "page");
    app.get("/").await;
    assert_eq!(calls.get("messages", "page"), scans, "cached");
    app.posted("fresh").await;
    let (_, html) = app.get_text("/").await;
    assert!(html.contains("fresh"), "the post shows at once");
    assert_eq!(
        calls.get("messages", "page"),
        scans + 1,
        "one page query after the post"
    );
    for _ in 0..10 {
        app.get("/").await;
    }
    assert_eq!(
        calls.get("messages", "page"),
        scans + 1,
        "then cached again"
    );
    // The rendered list is a memocache fragment that depends on the memo:
    // later views reuse it without reading the memo at all, and the
    // post's `forget_all` made it render (and load) once more.
    let stats = app.state.data.memos().all_messages.stats();
    assert!(stats.invalidations >= 1 && stats.loads == 2, "{stats:?}");
}

#[tokio::test]
async fn logout_and_password_change_forget_the_cached_user() {
    let app = spawn_with(|_| {}).await;
    app.signed_up("ada").await;
    app.get("/acc").await;
    let before = app.state.data.memos().load_user.stats().invalidations;
    app.post(
        "/acc/password",
        &[
            ("current", "password123"),
            ("new", "password456"),
            ("confirm", "password456"),
        ],
    )
    .await;
    let calls = &app.state.data.stores().calls;
    let reads = calls.get("users", "get");
    app.get("/acc").await;
    assert_eq!(
        calls.get("users", "get"),
        reads + 1,
        "reloaded after the change"
    );
    app.logout().await;
    assert!(app.state.data.memos().load_user.stats().invalidations >= before + 2);
}

#[tokio::test]
async fn with_the_null_cache_everything_works_and_reads_the_database() {
    let app = spawn_with(|s| s.cache_url = "null://".into()).await;
    app.signed_up("ada").await;
    app.posted("uncached").await;
    let calls = &app.state.data.stores().calls;
    let before = calls.total();
    let (status, html) = app.get_text("/my").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("uncached") && html.contains(">ada</a>"));
    // Session, user and messages all come from the database.
    assert!(calls.total() - before >= 3, "{:?}", calls.snapshot());
}
