//! Sign in with OpenID Connect against a real provider (npm
//! `oidc-provider`, started by testkit): the whole flow over HTTP, the
//! attacks the real provider can be made to carry, key rotation, and the
//! discovery/JWKS fetch counts under a burst.

use reqwest::StatusCode;
use testkit::OidcProvider;

use crate::helpers::{TestApp, client, location, set_cookie_value, spawn_on, spawn_with};
use crate::storage::Backing;

/// Configures `provider` as "Test" (slug `test`, whose callback path the
/// provider has registered).
fn configure(provider: &OidcProvider) -> impl FnOnce(&mut board::Settings) + use<> {
    let issuer = provider.issuer();
    let id = provider.client_id().to_owned();
    let secret = provider.client_secret().to_owned();
    move |s| {
        s.oidc_issuer = vec![issuer];
        s.oidc_client_id = vec![id];
        s.oidc_client_secret = vec![secret.into()];
        s.oidc_name = vec!["Test".into()];
    }
}

/// A board with `provider` configured.
async fn board_with(provider: &OidcProvider) -> TestApp {
    spawn_with(configure(provider)).await
}

/// `location` made absolute against `base` (`http://127.0.0.1:PORT`).
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

/// The value of query parameter `name` in `url`.
fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Starts a sign-in at the board and returns the provider's authorization
/// URL (the login cookie is in `app`'s client).
async fn start(app: &TestApp) -> String {
    let response = app.get("/auth/oidc/test/login").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "login start");
    assert!(set_cookie_value(response.headers(), "board_oidc").is_some());
    location(&response).to_owned()
}

/// Walks the provider's pages as a browser would, signing in as `login`
/// (its dev login form accepts any password) and consenting, until the
/// provider redirects back to the board; returns that callback URL.
async fn at_provider(
    app: &TestApp,
    provider: &OidcProvider,
    authorize: &str,
    login: &str,
) -> String {
    let base = provider.issuer();
    let mut url = authorize.to_owned();
    for _ in 0..12 {
        if url.starts_with(&app.address) {
            return url;
        }
        let response = app.client.get(&url).send().await.expect("GET provider");
        if response.status().is_redirection() {
            url = absolute(&base, location(&response));
            continue;
        }
        let page = response.text().await.expect("provider page");
        let form = if page.contains("name=\"prompt\" value=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else if page.contains("name=\"prompt\" value=\"consent\"") {
            vec![("prompt", "consent")]
        } else {
            panic!("unexpected provider page at {url}: {page}");
        };
        let response = app
            .client
            .post(&url)
            .form(&form)
            .send()
            .await
            .expect("POST provider form");
        assert!(
            response.status().is_redirection(),
            "form: {}",
            response.status()
        );
        url = absolute(&base, location(&response));
    }
    panic!("the provider never sent the browser back to the board");
}

/// A whole sign-in as `login`; returns the board's answer to the callback.
async fn sign_in(app: &TestApp, provider: &OidcProvider, login: &str) -> reqwest::Response {
    let authorize = start(app).await;
    let callback = at_provider(app, provider, &authorize, login).await;
    app.client.get(&callback).send().await.expect("callback")
}

async fn user_count(app: &TestApp) -> u64 {
    app.state.data.user_count().await.expect("count")
}

async fn signed_in_name(app: &TestApp) -> Option<String> {
    let (_, html) = app.get_text("/acc").await;
    let at = html.find("<dt>Name</dt><dd>")?;
    let rest = &html[at + "<dt>Name</dt><dd>".len()..];
    Some(rest[..rest.find('<')?].to_owned())
}

#[tokio::test]
async fn a_first_sign_in_makes_a_user_and_the_next_finds_it() {
    let provider = OidcProvider::start();
    let app = board_with(&provider).await;
    let (_, login_page) = app.get_text("/login").await;
    assert!(login_page.contains("Sign in with Test"), "{login_page}");

    let response = sign_in(&app, &provider, "ada").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    assert!(set_cookie_value(response.headers(), "board_session").is_some());
    // The login cookie is spent.
    assert_eq!(
        set_cookie_value(response.headers(), "board_oidc").as_deref(),
        Some("")
    );
    assert_eq!(signed_in_name(&app).await.as_deref(), Some("ada"));
    assert_eq!(user_count(&app).await, 1);

    // Signed in like a password user: logout works.
    assert_eq!(app.logout().await.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in_name(&app).await, None);

    // Another browser, same provider account: the same board user.
    let other = app.another_browser();
    let response = sign_in(&other, &provider, "ada").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in_name(&other).await.as_deref(), Some("ada"));
    assert_eq!(user_count(&app).await, 1);

    // Another account whose name is taken gets a free one.
    app.another_browser().register("bob", "password123").await;
    let third = app.another_browser();
    sign_in(&third, &provider, "bob").await;
    assert_eq!(signed_in_name(&third).await.as_deref(), Some("bob2"));

    // The derived name can be changed on /acc, but not to a taken one.
    let response = third.post("/acc/name", &[("username", "robert")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in_name(&third).await.as_deref(), Some("robert"));
    let response = third.post("/acc/name", &[("username", "ADA")]).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = third.post("/acc/name", &[("username", "x")]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(signed_in_name(&third).await.as_deref(), Some("robert"));
    // The old name is free again.
    assert_eq!(
        app.another_browser()
            .register("bob2", "password123")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_signed_in_user_links_a_provider_and_signs_in_with_it() {
    let provider = OidcProvider::start();
    let app = board_with(&provider).await;
    app.signed_up("carol").await;
    let (_, account) = app.get_text("/acc").await;
    assert!(account.contains("/acc/oidc/test/link"), "{account}");
    let response = app.post("/acc/oidc/test/link", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let callback = at_provider(&app, &provider, location(&response), "carol-at-idp").await;
    let response = app.client.get(&callback).send().await.expect("callback");
    assert_eq!(location(&response), "/acc");

    let other = app.another_browser();
    sign_in(&other, &provider, "carol-at-idp").await;
    assert_eq!(signed_in_name(&other).await.as_deref(), Some("carol"));
    assert_eq!(user_count(&app).await, 1);

    // Linking without the CSRF token is refused.
    let forged = app
        .client
        .post(app.url("/acc/oidc/test/link"))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

/// Asserts the board answered a refused sign-in: `status`, a page that
/// says `words`, no session, the login cookie cleared, and no user made.
async fn refused(
    app: &TestApp,
    response: reqwest::Response,
    status: StatusCode,
    words: &str,
    users: u64,
) {
    assert_eq!(response.status(), status);
    assert!(set_cookie_value(response.headers(), "board_session").is_none());
    assert_eq!(
        set_cookie_value(response.headers(), "board_oidc").as_deref(),
        Some("")
    );
    let page = response.text().await.expect("page");
    assert!(page.contains(words), "expected {words:?} in {page}");
    assert!(page.contains("Nothing was changed"), "{page}");
    assert_eq!(user_count(app).await, users);
    assert_eq!(signed_in_name(app).await, None);
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused() {
    let provider = OidcProvider::start();
    let app = board_with(&provider).await;
    let authorize = start(&app).await;
    let callback = at_provider(&app, &provider, &authorize, "mallory").await;
    let state = param(&callback, "state").expect("state");
    let forged = callback.replace(&format!("state={state}"), "state=forged");
    let response = app.client.get(&forged).send().await.expect("callback");
    refused(
        &app,
        response,
        StatusCode::BAD_REQUEST,
        "does not belong",
        0,
    )
    .await;

    // Without the login cookie (another browser, or after it was spent).
    let response = app.client.get(&callback).send().await.expect("callback");
    refused(
        &app,
        response,
        StatusCode::BAD_REQUEST,
        "not started in this browser",
        0,
    )
    .await;
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let provider = OidcProvider::start();
    let app = board_with(&provider).await;
    let authorize = start(&app).await;
    let callback = at_provider(&app, &provider, &authorize, "dave").await;
    assert_eq!(
        app.client.get(&callback).send().await.expect("cb").status(),
        StatusCode::SEE_OTHER
    );
    app.logout().await;
    // A fresh sign-in in this browser, answered with the old code.
    let authorize = start(&app).await;
    let state = param(&authorize, "state").expect("state");
    let code = param(&callback, "code").expect("code");
    let replay = app.url(&format!(
        "/auth/oidc/test/callback?code={code}&state={state}"
    ));
    let response = app.client.get(&replay).send().await.expect("replay");
    refused(
        &app,
        response,
        StatusCode::UNAUTHORIZED,
        "did not accept the sign-in code",
        1,
    )
    .await;
}

#[tokio::test]
async fn cancelling_at_the_provider_changes_nothing() {
    let provider = OidcProvider::start();
    let app = board_with(&provider).await;
    let authorize = start(&app).await;
    let response = app.client.get(&authorize).send().await.expect("authorize");
    let interaction = absolute(&provider.issuer(), location(&response));
    let response = app
        .client
        .get(format!("{interaction}/abort"))
        .send()
        .await
        .expect("abort");
    let mut url = absolute(&provider.issuer(), location(&response));
    for _ in 0..5 {
        if url.starts_with(&app.address) {
            break;
        }
        let response = app.client.get(&url).send().await.expect("redirect");
        url = absolute(&provider.issuer(), location(&response));
    }
    assert_eq!(param(&url, "error").as_deref(), Some("access_denied"));
    let response = app.client.get(&url).send().await.expect("callback");
    refused(
        &app,
        response,
        StatusCode::OK,
        "You cancelled the sign-in",
        0,
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_provider_gets_a_clear_page() {
    let mut provider = OidcProvider::start();
    let app = board_with(&provider).await;
    provider.stop();
    let response = app.get("/auth/oidc/test/login").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let page = response.text().await.expect("page");
    assert!(page.contains("could not be reached"), "{page}");
    assert_eq!(user_count(&app).await, 0);
    // An unknown provider is a 404.
    assert_eq!(
        app.get("/auth/oidc/nope/login").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn keys_rotated_at_the_provider_are_fetched_once_without_a_restart() {
    let mut provider = OidcProvider::start();
    let app = board_with(&provider).await;
    assert_eq!(
        sign_in(&app, &provider, "erin").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.state.data.oidc_fetches(), (1, 1));
    // A new signing key (new `kid`) on the same issuer.
    provider.restart();
    let other = app.another_browser();
    assert_eq!(
        sign_in(&other, &provider, "erin").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(signed_in_name(&other).await.as_deref(), Some("erin"));
    // Discovery still cached; the key set fetched again exactly once.
    assert_eq!(app.state.data.oidc_fetches(), (1, 2));
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("board_oidc_fetches_total{document=\"jwks\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_burst_of_sign_ins_fetches_each_document_once() {
    let provider = OidcProvider::start();
    // One test address for 100 browsers: a budget that lets them all be
    // in flight at once (each callback reserves one attempt).
    let app = spawn_with(|s| {
        configure(&provider)(s);
        s.login_failures_per_address = 1000;
    })
    .await;
    // 100 browsers sign in at once, each all the way through the provider.
    let sign_ins = (0..100).map(|i| {
        let browser = app.another_browser();
        let provider = &provider;
        async move {
            let response = sign_in(&browser, provider, &format!("burst{i}")).await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "sign-in {i}");
        }
    });
    futures_util::future::join_all(sign_ins).await;
    assert_eq!(user_count(&app).await, 100);
    assert_eq!(app.state.data.oidc_fetches(), (1, 1));
    let metrics = app.metrics().await;
    for document in ["discovery", "jwks"] {
        let line = format!("board_oidc_fetches_total{{document=\"{document}\"}} 1");
        assert!(metrics.contains(&line), "{metrics}");
    }
}

#[tokio::test]
async fn the_callback_may_land_on_another_instance_of_the_fleet() {
    let provider = OidcProvider::start();
    let a = board_with(&provider).await;
    // A second board on the same storage and secret: the login state is
    // in the signed cookie, not in either process.
    let mut b = spawn_on(
        Backing::borrowed(&a.backing),
        tempfile::tempdir().expect("dir"),
        configure(&provider),
    )
    .await;
    // One browser: its cookie jar is shared by both (cookies ignore ports).
    b.client = client();
    let mut a_view = a.another_browser();
    a_view.client = b.client.clone();
    let authorize = start(&a_view).await;
    let callback = at_provider(&a_view, &provider, &authorize, "fleet").await;
    let on_b = callback.replace(&a.address, &b.address);
    assert_ne!(on_b, callback);
    let response = b.client.get(&on_b).send().await.expect("callback on b");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in_name(&b).await.as_deref(), Some("fleet"));
    // And the session is good on the first instance too.
    assert_eq!(signed_in_name(&a_view).await.as_deref(), Some("fleet"));
}

/// Callbacks cost code exchanges with the provider: a client replaying
/// made-up codes spends its address's login budget and is then refused
/// before anything reaches the provider.
#[tokio::test]
async fn a_flood_of_callbacks_is_bounded_by_the_address_budget() {
    let provider = OidcProvider::start();
    let app = spawn_with(|s| {
        configure(&provider)(s);
        s.login_failures_per_address = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let forged = app.url(&format!(
            "/auth/oidc/test/callback?code=made-up-{i}&state=s{i}"
        ));
        statuses.push(
            app.client
                .get(&forged)
                .send()
                .await
                .expect("callback")
                .status(),
        );
    }
    assert!(
        statuses[..3]
            .iter()
            .all(|s| *s != StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(
        statuses[3..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(user_count(&app).await, 0);
}
