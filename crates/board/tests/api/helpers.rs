//! `spawn_app()` and small generic helpers: a board on a free port with
//! fresh storage of the binary's kind (`crate::STORAGE`: SQLite and a media
//! directory, or DynamoDB and S3), and a cookie-keeping client that does
//! not follow redirects.

use std::io::Cursor;
use std::sync::LazyLock;

use board::{AppState, Application, Settings};
use image::{DynamicImage, ImageFormat, RgbImage};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Response, StatusCode, multipart};
use tempfile::TempDir;

use crate::storage::Backing;

static TRACING: LazyLock<Option<board::telemetry::LogGuard>> =
    LazyLock::new(|| std::env::var_os("TEST_LOG").map(|_| board::telemetry::init("info")));

/// The `--metrics-token` every test board gets, so tests can read
/// `/metrics` (which is not public without one).
pub(crate) const METRICS_TOKEN: &str = "test metrics token, long enough";

pub(crate) struct TestApp {
    pub(crate) address: String,
    /// `http://` address of `--metrics-address`, when configured.
    pub(crate) metrics_address: Option<String>,
    pub(crate) client: reqwest::Client,
    pub(crate) state: AppState,
    /// The storage's servers (kept alive for the test); declared before
    /// `dir` so they stop before their data directory goes.
    pub(crate) backing: Backing,
    pub(crate) dir: TempDir,
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub(crate) async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let backing = crate::STORAGE.provision(dir.path()).await;
    spawn_on(backing, dir, configure).await
}

/// A board on the given storage (for tests that need control of its
/// servers), `dir` its temporary directory.
pub(crate) async fn spawn_on(
    backing: Backing,
    dir: TempDir,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    LazyLock::force(&TRACING);
    let mut settings = Settings::defaults();
    settings.address = "127.0.0.1:0".parse().expect("address");
    settings
        .storage
        .database_url
        .clone_from(&backing.database_url);
    settings.storage.media_url.clone_from(&backing.media_url);
    settings.secret_key = Some("test secret key that is long enough to use".into());
    settings.metrics_token = Some(METRICS_TOKEN.into());
    configure(&mut settings);
    let app = Application::build(&settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app.metrics_addr().map(|a| format!("http://{a}"));
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        client: client(),
        state,
        backing,
        dir,
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `value` of the first `name="csrf"` input in `html`.
pub(crate) fn csrf_in(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("page has a csrf field");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

/// The value of cookie `name` set by `headers`, if any.
pub(crate) fn set_cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
        })
}

/// The whole `Set-Cookie` line for cookie `name`.
pub(crate) fn set_cookie_line(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

pub(crate) fn location(response: &Response) -> &str {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl TestApp {
    /// Every stored message, read straight from the table (no cache).
    pub(crate) async fn stored_messages(&self) -> Vec<board::store::Message> {
        self.state
            .data
            .stores()
            .messages
            .all()
            .await
            .expect("messages readable")
    }

    /// The same running board seen through another client (another
    /// browser: its own cookies), sharing this one's storage.
    pub(crate) fn another_browser(&self) -> TestApp {
        TestApp {
            address: self.address.clone(),
            metrics_address: self.metrics_address.clone(),
            client: client(),
            state: self.state.clone(),
            backing: Backing::borrowed(&self.backing),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The board's TCP address, for raw sockets.
    #[allow(dead_code)] // connections.rs, which `api_on_aws` does not run
    pub(crate) fn socket_addr(&self) -> std::net::SocketAddr {
        self.address
            .trim_start_matches("http://")
            .parse()
            .expect("socket address")
    }

    /// `/metrics`, with the test token.
    pub(crate) async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), StatusCode::OK, "/metrics");
        response.text().await.expect("body")
    }

    /// The value of the metric line `series` (name and labels) in
    /// `/metrics`; 0 when absent.
    #[allow(dead_code)] // abuse.rs and connections.rs, not in `api_on_aws`
    pub(crate) async fn metric(&self, series: &str) -> u64 {
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0, |value| value.trim().parse().expect("integer metric"))
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub(crate) async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// A CSRF token valid for this client now: from the nav's logout form
    /// when logged in, from the login form otherwise.
    pub(crate) async fn csrf(&self) -> String {
        let (_, home) = self.get_text("/logout").await;
        if home.contains("name=\"csrf\"") {
            return csrf_in(&home);
        }
        let (_, login) = self.get_text("/login").await;
        csrf_in(&login)
    }

    /// POSTs a URL-encoded form as is.
    pub(crate) async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .expect("POST")
    }

    /// POSTs a form with a valid CSRF token added.
    pub(crate) async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let token = self.csrf().await;
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post_form(path, &all).await
    }

    pub(crate) async fn register(&self, username: &str, password: &str) -> Response {
        self.post(
            "/register",
            &[
                ("username", username),
                ("password", password),
                ("confirm", password),
            ],
        )
        .await
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> Response {
        self.post("/login", &[("username", username), ("password", password)])
            .await
    }

    /// Registers `username` (logged in afterwards) and returns the session
    /// token from the cookie.
    pub(crate) async fn signed_up(&self, username: &str) -> String {
        let response = self.register(username, "password123").await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "register {username}"
        );
        set_cookie_value(response.headers(), "board_session").expect("session cookie")
    }

    pub(crate) async fn logout(&self) -> Response {
        self.post("/logout", &[]).await
    }

    /// Posts a message through the multipart form; `csrf` None means a
    /// valid token.
    pub(crate) async fn post_message(
        &self,
        fields: &[(&str, &str)],
        image: Option<(&str, Vec<u8>)>,
        csrf: Option<&str>,
    ) -> Response {
        let token = match csrf {
            Some(t) => t.to_owned(),
            None => self.csrf().await,
        };
        let mut form = multipart::Form::new().text("csrf", token);
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        if let Some((file_name, bytes)) = image {
            form = form.part(
                "image",
                multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
            );
        }
        self.client
            .post(self.url("/save"))
            .multipart(form)
            .send()
            .await
            .expect("POST /save")
    }

    /// Posts a valid message and returns nothing; panics if refused.
    pub(crate) async fn posted(&self, description: &str) {
        let response = self
            .post_message(
                &[
                    ("author", "Ada"),
                    ("location", "Tallinn"),
                    ("description", description),
                ],
                Some(("pic.png", picture(64, 48, ImageFormat::Png))),
                None,
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "post refused: {}",
            response.text().await.unwrap_or_default()
        );
    }
}

/// A generated `w`x`h` picture in `format`.
pub(crate) fn picture(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 3 % 256) as u8, (y * 5 % 256) as u8, 120])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .expect("encode");
    out.into_inner()
}

/// Names of the images a page links to under `/media/`.
pub(crate) fn media_links(html: &str) -> Vec<String> {
    html.match_indices("/media/")
        .map(|(at, _)| {
            let rest = &html[at + "/media/".len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
        })
        .collect()
}

/// Ids of the delete forms on a page.
pub(crate) fn message_ids(html: &str) -> Vec<String> {
    html.match_indices("name=\"id\" value=\"")
        .map(|(at, pat)| {
            let rest = &html[at + pat.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
        })
        .collect()
}
