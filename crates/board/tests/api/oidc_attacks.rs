//! The attacks on the ID token that a real provider will not carry out:
//! a fake provider on loopback (discovery, JWKS and a token endpoint, an
//! axum server in the test) hands the board ID tokens minted here with
//! `jsonwebtoken`, each wrong in one way. Every one is refused with a page
//! and nothing is created. A correct token from the same fake is accepted
//! (the control), so each refusal is the check under test.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, location, spawn_with};

/// A 2048-bit RSA key made for these tests only (`openssl genrsa`).
const PRIVATE_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1ydO7aFNVufZ0yJCP7PMQcMOdXnAzXAwl6ONZqUaNJTVT3G3\nfSbA+wOF57i9eR1qzl07QiLyBZ4bTiGYrfHUPLleZpF1RxUVKNF4W5W9WTgY5WqY\ndCSjSD0ahgRWRMIaosGUUyn7/6hGM2RtZkKGoLFyd0wAqXO707yp/NHEddBuifxm\nLx3IuC4SVBAmIF9gop0oLOfVhmt2AI8C8IOxrjD+WXsKQb/Rst0s4QIbphPmSaIV\nB5FNMph3GFC1zw48Sq4QUYPtZWAtyN8TVzN2az8NESwzb3v4VBRx8yXA9SrF6zvZ\nRUWAr8T/tzw3/MaDBGpzXPSlzViti5Dutso6qQIDAQABAoIBAAen4msaPkJFZb7Z\njTnvD+mXI0CS4IVu5IvAyhtI7LHKSfzVsw3E/0DvUyh3rmZM4awOLTmhPLNueNJC\n58fovwCaJ/3GV0H8QhB9w6aeoWo3UMt5C4u2cgj0A6mZJei0b3YzJTAAYnMqbbUO\nccYdv+Sf687K6YseDyTtpa7VWARJIa/xAwLPjQaNLufTbJYrsn97M8RuCDxdifF8\nqZhMi3C1RPhdI1RuzQaUihfsuFOGQ/kbVsBljnogLBXgB1+85zxBsbLQqUGpcWyA\nkg/5T8AiUdbgd7kOV5Y3r6y4F6AWk1xc562B9S6HwRd3S5ooAICBjeeZ9UR/5Zbg\nvHLoLTECgYEA8i9vuPj5PjYb7ytzYS4NvYeOrmA6hryk+DcPMzjwXdNXbVhk8cqf\na5WOx5ZbAqn/nkamKPiYJnoKkmxOwKvan2QqZsDmP+tpaw/ElgqF9oSvi0/81Dbt\nOdfr9kY1AtVYe8xdOEa/MQWZF8tsXbkrqWprX/czXrn9/GaYDr5HAd8CgYEA420i\nhwdQ6K9+4E2uSdI7m7sk8+l16DZ6thmR6mWqoQAYnR621753nwwCWyQkN0Gc5ijS\nqVfU1DQXh8ucYvCsevY4XDnaREZKuwtv1YAfQkRNbIvMufLzqxpRHMihOe7Wvbj3\np1DlvdPItYJiLYkHBJQP77PuaQ5lcLrkT4sbJHcCgYBIazDgQerd1HZD7V1CCPBo\n5TkgIXw+v/gglO5BpdwSYlj5RH5i4vEKzZz1R5uNT2I1ZPDYvYVZtBKnOCXQbVMh\naGVZdoMjR/Ss4/kn2Ju4XHLVmKSEnKwRKOTRLqs5Xqxn0HNrmZQgR4lA2T5dRDqv\nHThgaN3+jGVLbS448mLvRwKBgBtyHzmWa3A5RaGCHmdwRJtNoW8CHKWSdYqmWVKl\nREs7vLyxaTVuGfeKtnoTSX+Vnn60LIAdRmT5iGFt9AiIrPgF4NVYcfvNU9Vw0uU8\nGgmgPou770/9fuSGP4WuvK5GIYox2UlK3P7koRMukfSW1c76o1W1LC9nelx5YXYr\n/nGPAoGBALppt1HfmHko6sZWiOdly8ecN3G3QzK38EQMHucX+V6A5/sXFK1WD3aJ\nj5PjUMLqBx3P9IHk2+HTV0rXTWHdv9UglAZhdigU1R4lf1EzmEQbjy6gsogPX978\nhbZtcpOWKtoyE8PZOv51v8rtWZ2bwr+pk7oH4n7wlSviDYYz9Ynh\n-----END RSA PRIVATE KEY-----";
/// Its modulus, base64url, for the JWKS.
const MODULUS: &str = "1ydO7aFNVufZ0yJCP7PMQcMOdXnAzXAwl6ONZqUaNJTVT3G3fSbA-wOF57i9eR1qzl07QiLyBZ4bTiGYrfHUPLleZpF1RxUVKNF4W5W9WTgY5WqYdCSjSD0ahgRWRMIaosGUUyn7_6hGM2RtZkKGoLFyd0wAqXO707yp_NHEddBuifxmLx3IuC4SVBAmIF9gop0oLOfVhmt2AI8C8IOxrjD-WXsKQb_Rst0s4QIbphPmSaIVB5FNMph3GFC1zw48Sq4QUYPtZWAtyN8TVzN2az8NESwzb3v4VBRx8yXA9SrF6zvZRUWAr8T_tzw3_MaDBGpzXPSlzViti5Dutso6qQ";
const KID: &str = "test-key";
const CLIENT_ID: &str = "board-fake";

/// The fake provider: its issuer URL and the ID token its token endpoint
/// will hand out next.
struct FakeProvider {
    issuer: String,
    next_token: Arc<Mutex<String>>,
}

async fn fake_provider() -> FakeProvider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let next_token = Arc::new(Mutex::new(String::new()));
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let jwks = json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID,
        "n": MODULUS, "e": "AQAB",
    }]});
    let token = Arc::clone(&next_token);
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(discovery) }),
        )
        .route("/jwks", get(move || async move { axum::Json(jwks) }))
        .route(
            "/token",
            post(move || async move {
                let id_token = token.lock().expect("lock").clone();
                axum::Json(json!({
                    "access_token": "at", "token_type": "Bearer",
                    "expires_in": 3600, "id_token": id_token,
                }))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeProvider { issuer, next_token }
}

async fn board_with(fake: &FakeProvider) -> TestApp {
    let issuer = fake.issuer.clone();
    spawn_with(move |s| {
        s.oidc_issuer = vec![issuer];
        s.oidc_client_id = vec![CLIENT_ID.into()];
        s.oidc_client_secret = vec!["fake secret".to_owned().into()];
        s.oidc_name = vec!["Fake".into()];
    })
    .await
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(secs).expect("seconds")
}

/// Claims the board accepts for `nonce` from `issuer`.
fn good_claims(issuer: &str, nonce: &str) -> Value {
    json!({
        "iss": issuer, "sub": "victim", "aud": CLIENT_ID,
        "iat": now(), "exp": now() + 600, "nonce": nonce,
        "preferred_username": "victim",
    })
}

fn sign(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.into());
    let key = EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).expect("key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// Starts a sign-in, makes the fake answer the code with `mint(nonce)`,
/// and returns the board's answer to the callback.
async fn callback_with(
    app: &TestApp,
    fake: &FakeProvider,
    mint: impl FnOnce(&str) -> String,
) -> reqwest::Response {
    let response = app.get("/auth/oidc/fake/login").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let authorize = url::Url::parse(location(&response)).expect("authorize URL");
    let param = |name: &str| {
        authorize
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .expect("param")
    };
    assert_eq!(param("code_challenge_method"), "S256");
    let (state, nonce) = (param("state"), param("nonce"));
    *fake.next_token.lock().expect("lock") = mint(&nonce);
    let callback = format!("/auth/oidc/fake/callback?code=any&state={state}");
    app.get(&callback).await
}

/// Makes an ID token for a nonce.
type Mint<'a> = Box<dyn FnOnce(&str) -> String + 'a>;

async fn assert_refused(app: &TestApp, response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    let page = response.text().await.expect("page");
    assert!(page.contains("could not be verified"), "{what}: {page}");
    assert_eq!(
        app.state.data.user_count().await.expect("count"),
        0,
        "{what}"
    );
}

#[tokio::test]
async fn forged_and_stale_id_tokens_are_refused_and_a_good_one_accepted() {
    let fake = fake_provider().await;
    let app = board_with(&fake).await;
    let issuer = fake.issuer.clone();

    let attacks: Vec<(&str, Mint<'_>)> = vec![
        (
            "wrong nonce",
            Box::new(|_: &str| sign(&good_claims(&issuer, "not-the-nonce"))),
        ),
        (
            "another audience",
            Box::new(|n: &str| {
                let mut c = good_claims(&issuer, n);
                c["aud"] = json!("some-other-client");
                sign(&c)
            }),
        ),
        (
            "expired",
            Box::new(|n: &str| {
                let mut c = good_claims(&issuer, n);
                c["iat"] = json!(now() - 7200);
                c["exp"] = json!(now() - 3600);
                sign(&c)
            }),
        ),
        (
            "another issuer",
            Box::new(|n: &str| {
                let mut c = good_claims(&issuer, n);
                c["iss"] = json!("https://evil.example");
                sign(&c)
            }),
        ),
        (
            "tampered signature",
            Box::new(|n: &str| {
                // A valid token whose payload is swapped for another subject's.
                let token = sign(&good_claims(&issuer, n));
                let mut parts: Vec<&str> = token.split('.').collect();
                let mut c = good_claims(&issuer, n);
                c["sub"] = json!("admin");
                let payload = URL_SAFE_NO_PAD.encode(c.to_string());
                parts[1] = &payload;
                parts.join(".")
            }),
        ),
        (
            "alg none",
            Box::new(|n: &str| {
                let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
                let payload = URL_SAFE_NO_PAD.encode(good_claims(&issuer, n).to_string());
                format!("{header}.{payload}.")
            }),
        ),
        (
            "HS256 with the client secret",
            Box::new(|n: &str| {
                let key = EncodingKey::from_secret(b"fake secret");
                jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &good_claims(&issuer, n),
                    &key,
                )
                .expect("sign")
            }),
        ),
    ];
    for (what, mint) in attacks {
        let response = callback_with(&app, &fake, mint).await;
        assert_refused(&app, response, what).await;
    }

    // The control: the same fake, a correct token.
    let response = callback_with(&app, &fake, |n| sign(&good_claims(&issuer, n))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    assert_eq!(app.state.data.user_count().await.expect("count"), 1);
}

/// The documents' lifetime, with the clock passed in: a provider that
/// sends no `Cache-Control` gets an hour; within it one fetch serves every
/// sign-in, past it the next one fetches again, once.
#[tokio::test]
async fn provider_documents_are_fetched_again_only_when_their_lifetime_ends() {
    use board::data::OidcDocument;
    let fake = fake_provider().await;
    let app = board_with(&fake).await;
    let (data, oidc) = (&app.state.data, &app.state.oidc);
    let url = format!("{}/.well-known/openid-configuration", fake.issuer);
    let t0 = 1_000_000_000_000;
    let minute = 60_000;
    for at in [t0, t0 + minute, t0 + 59 * minute] {
        data.oidc_document(oidc, OidcDocument::Discovery, &url, at)
            .await
            .expect("document");
    }
    assert_eq!(data.oidc_fetches(), (1, 0));
    for at in [t0 + 61 * minute, t0 + 62 * minute] {
        data.oidc_document(oidc, OidcDocument::Discovery, &url, at)
            .await
            .expect("document");
    }
    assert_eq!(data.oidc_fetches(), (2, 0));
}

/// A provider answering with more than the board reads (256 KiB) is
/// treated as down: a 502 page, nothing cached, nothing created.
#[tokio::test]
async fn an_oversized_provider_document_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let padding = "x".repeat(300 * 1024);
    let huge = json!({ "issuer": issuer, "padding": padding }).to_string();
    let app = Router::new().route(
        "/.well-known/openid-configuration",
        get(move || async move { huge }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let fake = FakeProvider {
        issuer,
        next_token: Arc::default(),
    };
    let board = board_with(&fake).await;
    let response = board.get("/auth/oidc/fake/login").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let page = response.text().await.expect("page");
    assert!(page.contains("could not be reached"), "{page}");
    assert_eq!(board.state.data.oidc_fetches(), (0, 0));
}
