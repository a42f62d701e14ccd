//! A fleet: a real `redis-server` and three real `board` processes sharing
//! one SQLite file and one media directory, each with a tiered cache
//! (`tiered+redis://`). What one instance changes, every instance shows on
//! its very next request; a logout on one logs out everywhere; Redis going
//! away fails open to the database.
//!
//! `cargo test -p board --test fleet -- --nocapture` also prints the
//! staleness figures (post on A → seen on B and C).

use std::io::Cursor;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, RgbImage};
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use reqwest::{StatusCode, multipart};
use tempfile::TempDir;
use testkit::RedisServer;

const SECRET: &str = "fleet test secret key, the same on every instance";
const PASSWORD: &str = "password123";

mod budget;
mod durable;

/// How to start one board of a fleet (kept, so a killed board can be
/// started again the same way).
#[derive(Clone)]
struct Spec {
    cache_url: String,
    database_url: String,
    media_url: String,
    /// Extra environment (e.g. `FAILPOINTS`).
    env: Vec<(String, String)>,
}

impl Spec {
    /// SQLite and media files in `dir`, shared by the fleet.
    fn embedded(dir: &Path, cache_url: &str) -> Self {
        Self {
            cache_url: cache_url.to_owned(),
            database_url: format!("sqlite://{}", dir.join("board.sqlite").display()),
            media_url: format!("file://{}", dir.join("media").display()),
            env: Vec::new(),
        }
    }
}

/// One `board serve` process; killed and reaped on drop.
struct Board {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Board {
    fn start(dir: &Path, name: &str, cache_url: &str) -> Self {
        Self::start_with(dir, name, &Spec::embedded(dir, cache_url), None)
    }

    /// Starts a board from `spec`, on `port` if given (a restart keeps its
    /// address), else on a free one.
    fn start_with(dir: &Path, name: &str, spec: &Spec, port: Option<u16>) -> Self {
        let log = dir.join(format!("{name}.log"));
        for _ in 0..5 {
            let port = port.unwrap_or_else(testkit::free_port);
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("log file");
            let err = out.try_clone().expect("log file");
            let child = Command::new(env!("CARGO_BIN_EXE_board"))
                .arg("serve")
                .args(["--address", &format!("127.0.0.1:{port}")])
                .args(["--database-url", &spec.database_url])
                .args(["--media-url", &spec.media_url])
                .args(["--cache-url", &spec.cache_url, "--secret-key", SECRET])
                // One page holds every post of the test, so /my lists them all.
                .args(["--page-size", "200"])
                .env("RUST_LOG", "warn")
                // The tests post hundreds of messages by one account:
                // no post budgets and no quota, but where a test sets
                // them (budget.rs).
                .envs(
                    [
                        "BOARD_POST_BUDGET_PER_ACCOUNT",
                        "BOARD_POST_BUDGET_PER_ADDRESS",
                        "BOARD_UPLOAD_BUDGET_PER_ACCOUNT",
                        "BOARD_UPLOAD_BUDGET_PER_ADDRESS",
                        "BOARD_ACCOUNT_QUOTA",
                    ]
                    .map(|name| (name, "none")),
                )
                .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("start board");
            let mut board = Self {
                child,
                base: format!("http://127.0.0.1:{port}"),
                log: log.clone(),
            };
            if board.wait_ready(Duration::from_secs(30)) {
                return board;
            }
            // Lost the port to someone else, or slow: try another.
            board.kill();
        }
        panic!(
            "board {name} did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The port the board listens on.
    fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    /// True once the process has exited (e.g. at a fail point).
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Probes `/healthz` until it answers, or the process exits.
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let address = self.base.trim_start_matches("http://").to_owned();
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
                use std::io::{Read, Write};
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let request = format!(
                    "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
                );
                let mut reply = String::new();
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_string(&mut reply).is_ok()
                    && reply.starts_with("HTTP/1.1 200")
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL (`Child::kill` on Unix), then reaps the process: nothing
    /// of it runs after this.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Redis, three boards and their shared directory. Boards are dropped
/// (killed) before Redis and the directory.
struct Fleet {
    boards: Vec<Board>,
    redis: RedisServer,
    http: reqwest::Client,
    _dir: TempDir,
}

impl Fleet {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let redis = RedisServer::start();
        let cache_url = format!(
            "tiered+redis://127.0.0.1:{}/?l1_capacity=10000&heartbeat_ms=500",
            redis.port()
        );
        let boards = ["a", "b", "c"]
            .iter()
            .map(|name| Board::start(dir.path(), name, &cache_url))
            .collect();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            boards,
            redis,
            http,
            _dir: dir,
        }
    }

    fn a(&self) -> &Board {
        &self.boards[0]
    }

    async fn in_sync(&self, board: &Board) -> bool {
        match self.http.get(board.url("/healthz")).send().await {
            Ok(r) => r
                .text()
                .await
                .is_ok_and(|t| t.contains("\"l1_in_sync\":true")),
            Err(_) => false,
        }
    }

    async fn wait_in_sync(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut all = true;
            for board in &self.boards {
                all &= self.in_sync(board).await;
            }
            if all {
                return;
            }
            assert!(Instant::now() < deadline, "instances never got in sync");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GET `path` on `board` with `session` as cookie.
    async fn get(&self, board: &Board, path: &str, session: Option<&str>) -> (StatusCode, String) {
        let mut request = self.http.get(board.url(path));
        if let Some(token) = session {
            request = request.header(COOKIE, format!("board_session={token}"));
        }
        let response = request.send().await.expect("GET");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// Registers `username` on `board`, then logs in; returns the session.
    async fn register_and_login(&self, board: &Board, username: &str) -> String {
        for (path, fields) in [
            (
                "/register",
                vec![
                    ("username", username),
                    ("password", PASSWORD),
                    ("confirm", PASSWORD),
                ],
            ),
            (
                "/login",
                vec![("username", username), ("password", PASSWORD)],
            ),
        ] {
            let page = self
                .http
                .get(board.url("/login"))
                .send()
                .await
                .expect("GET");
            let anon = cookie(page.headers(), "board_csrf").expect("anonymous CSRF cookie");
            let token = csrf_in(&page.text().await.expect("body"));
            let mut form = vec![("csrf", token.as_str())];
            form.extend(fields);
            let response = self
                .http
                .post(board.url(path))
                .header(COOKIE, format!("board_csrf={anon}"))
                .form(&form)
                .send()
                .await
                .expect("POST");
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
            let session = cookie(response.headers(), "board_session").expect("session cookie");
            if path == "/login" {
                return session;
            }
        }
        unreachable!()
    }

    /// The session's CSRF token (from the logout form of `/logout`).
    async fn session_csrf(&self, board: &Board, session: &str) -> String {
        let (status, html) = self.get(board, "/logout", Some(session)).await;
        assert_eq!(status, StatusCode::OK);
        csrf_in(&html)
    }

    async fn post_message(&self, board: &Board, session: &str, csrf: &str, text: &str) {
        let form = multipart::Form::new()
            .text("csrf", csrf.to_owned())
            .text("author", "Fleet")
            .text("location", "Loopback")
            .text("description", text.to_owned())
            .part(
                "image",
                multipart::Part::bytes(picture()).file_name("pic.png"),
            );
        let response = self
            .http
            .post(board.url("/save"))
            .header(COOKIE, format!("board_session={session}"))
            .multipart(form)
            .send()
            .await
            .expect("POST /save");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "post {text}");
    }

    async fn form(
        &self,
        board: &Board,
        session: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> StatusCode {
        self.http
            .post(board.url(path))
            .header(COOKIE, format!("board_session={session}"))
            .form(fields)
            .send()
            .await
            .expect("POST")
            .status()
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
        })
        .filter(|v| !v.is_empty())
}

fn csrf_in(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("page has a csrf field");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

/// Ids of the delete forms on a page.
fn message_ids(html: &str) -> Vec<String> {
    html.match_indices("name=\"id\" value=\"")
        .map(|(at, pat)| {
            let rest = &html[at + pat.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
        })
        .collect()
}

fn picture() -> Vec<u8> {
    let img = RgbImage::from_fn(32, 24, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 9 % 256) as u8, 80])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut out, ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_of_three_boards_stays_coherent() {
    let mut fleet = Fleet::start();
    fleet.wait_in_sync(Duration::from_secs(10)).await;
    let a = fleet.a();
    let session = fleet.register_and_login(a, "fleetuser").await;
    let csrf = fleet.session_csrf(a, &session).await;

    // A login on A works on every instance.
    for board in &fleet.boards {
        let (status, html) = fleet.get(board, "/my", Some(&session)).await;
        assert_eq!(status, StatusCode::OK, "{}", board.base);
        assert!(html.contains(">fleetuser</a>"), "{}", board.base);
    }
    // Warm every instance's caches.
    for board in &fleet.boards {
        fleet.get(board, "/", Some(&session)).await;
    }

    // 100 posts on A, each shown by A, B and C on their very next request.
    for n in 0..100 {
        let text = format!("fleet post number {n} end");
        fleet.post_message(a, &session, &csrf, &text).await;
        for (i, board) in fleet.boards.iter().enumerate() {
            let (status, html) = fleet.get(board, "/", Some(&session)).await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                html.contains(&text),
                "post {n} not shown by instance {i} ({})",
                board.base
            );
            let (_, mine) = fleet.get(board, "/my", Some(&session)).await;
            assert!(mine.contains(&text), "post {n} not on /my of instance {i}");
        }
    }

    // 100 deletes on A, each gone from A, B and C at once.
    let (_, mine) = fleet.get(a, "/my", Some(&session)).await;
    let ids = message_ids(&mine);
    assert_eq!(ids.len(), 100, "every post listed on /my");
    let (_, home) = fleet.get(a, "/", Some(&session)).await;
    // Occurrences of the marker per message on the home page.
    let per_message = home.matches("fleet post number").count() / 100;
    assert!(per_message >= 1, "{home}");
    for (n, id) in ids.iter().enumerate() {
        let status = fleet
            .form(a, &session, "/delete", &[("csrf", &csrf), ("id", id)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "delete {n}");
        for (i, board) in fleet.boards.iter().enumerate() {
            let (_, mine) = fleet.get(board, "/my", Some(&session)).await;
            assert!(
                !mine.contains(id.as_str()),
                "deleted message {n} still on /my of instance {i}"
            );
            let (_, home) = fleet.get(board, "/", Some(&session)).await;
            let left = 100 - n - 1;
            assert_eq!(
                home.matches("fleet post number").count(),
                left * per_message,
                "instance {i} after delete {n}"
            );
        }
    }

    // Staleness: from a post's response on A until B and C serve it.
    let mut lags = Vec::with_capacity(200);
    for n in 0..200 {
        let text = format!("staleness probe {n} end");
        fleet.post_message(a, &session, &csrf, &text).await;
        let posted = Instant::now();
        for board in &fleet.boards[1..] {
            loop {
                let (_, html) = fleet.get(board, "/", Some(&session)).await;
                if html.contains(&text) {
                    break;
                }
                assert!(posted.elapsed() < Duration::from_secs(5), "never shown");
            }
        }
        lags.push(posted.elapsed());
    }
    lags.sort();
    println!(
        "staleness (post response on A -> served by B and C, 200 trials): p50 {:?} p99 {:?} max {:?}",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags[lags.len() - 1]
    );

    // Redis goes away while requests run: none fails (fail-open).
    let running = Arc::new(AtomicBool::new(true));
    let served = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for board in &fleet.boards {
        for path in ["/", "/my"] {
            let (http, url, running, served) = (
                fleet.http.clone(),
                board.url(path),
                Arc::clone(&running),
                Arc::clone(&served),
            );
            let session = session.clone();
            load.push(tokio::spawn(async move {
                let mut failures = Vec::new();
                while running.load(Ordering::Relaxed) {
                    match http
                        .get(&url)
                        .header(COOKIE, format!("board_session={session}"))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == StatusCode::OK => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failures.push(format!("{url}: {}", r.status())),
                        Err(e) => failures.push(format!("{url}: {e}")),
                    }
                }
                failures
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    fleet.redis.stop();
    let stopped_at = served.load(Ordering::Relaxed);
    // A post while Redis is down is stored and shown by A.
    fleet
        .post_message(fleet.a(), &session, &csrf, "posted without redis")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, Ordering::Relaxed);
    let mut failures = Vec::new();
    for task in load {
        failures.extend(task.await.expect("load task"));
    }
    let during = served.load(Ordering::Relaxed) - stopped_at;
    assert!(failures.is_empty(), "requests failed: {failures:?}");
    assert!(during > 10, "requests kept being served ({during})");
    for board in &fleet.boards {
        let (status, html) = fleet.get(board, "/", Some(&session)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("posted without redis"),
            "{} read through to the database",
            board.base
        );
    }

    // Logout on A: the copied cookie is rejected by B and C at once.
    let a = fleet.a();
    let status = fleet.form(a, &session, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "logout");
    for board in &fleet.boards {
        let (status, _) = fleet.get(board, "/my", Some(&session)).await;
        assert_ne!(status, StatusCode::OK, "{} still logged in", board.base);
        let (_, home) = fleet.get(board, "/", Some(&session)).await;
        assert!(!home.contains(">fleetuser</a>"), "{}", board.base);
    }

    for board in &fleet.boards {
        let log = board.log();
        assert!(!log.contains("panicked"), "{}: {log}", board.base);
    }
}

/// Redis restarts (empty, as configured without persistence): once every
/// instance reports in sync again, a post on A is seen by B and C at once.
///
/// This once failed: instances mirrored each memo's version with
/// `fetch_max`, so after Redis lost its keys (versions restarting from 0)
/// they kept their old, higher version and later `forget_all`s no longer
/// reached their L1 entries. A version read lower than the mirror now
/// clears the L1 and is adopted, and a bus gap makes the version be read
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_redis_restarts_posts_are_seen_everywhere_again() {
    let mut fleet = Fleet::start();
    fleet.wait_in_sync(Duration::from_secs(10)).await;
    let session = fleet.register_and_login(fleet.a(), "restarter").await;
    let csrf = fleet.session_csrf(fleet.a(), &session).await;
    for n in 0..5 {
        let text = format!("before the restart {n} end");
        fleet.post_message(fleet.a(), &session, &csrf, &text).await;
        for board in &fleet.boards {
            fleet.get(board, "/", Some(&session)).await;
        }
    }
    fleet.redis.stop();
    for board in &fleet.boards {
        let (status, _) = fleet.get(board, "/", Some(&session)).await;
        assert_eq!(status, StatusCode::OK, "fail-open");
    }
    fleet.redis.restart();
    fleet.wait_in_sync(Duration::from_secs(20)).await;
    for board in &fleet.boards {
        fleet.get(board, "/", Some(&session)).await;
    }
    for n in 0..10 {
        let text = format!("after the restart {n} end");
        fleet.post_message(fleet.a(), &session, &csrf, &text).await;
        for (i, board) in fleet.boards.iter().enumerate() {
            let (_, html) = fleet.get(board, "/", Some(&session)).await;
            assert!(
                html.contains(&text),
                "instance {i} ({}) after the restart, post {n}",
                board.base
            );
        }
    }
}
