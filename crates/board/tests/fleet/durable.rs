//! Durable invalidation (issue 23): a write is never acknowledged while its
//! invalidation can be lost. Three boards, each reaching Redis through a
//! `testkit::FaultProxy` of its own, so any one can be cut off silently
//! (a black hole: sockets open, no byte moves), and boards killed with
//! SIGKILL right after a write commits (the `board::after_write` fail
//! point aborts the process there). After a post, delete, logout or
//! password change returns on any board, the other boards serve the new
//! state within [`BOUND`]: at once when the writer reaches Redis, through
//! another board's outbox relay when it does not.
//!
//! The randomized run replays a seeded `testkit::FaultSchedule`
//! (`FAULT_SEED=… cargo test -p board --test fleet randomized` replays
//! one) and checks its history with `testkit::History`.

use testkit::{FaultProxy, FaultSchedule, History, Step};

#[path = "../support/storage.rs"]
mod storage;

use storage::{Backing, Storage};

use super::*;

/// The stated bound: after a write returns, every board serves the new
/// state within this (the relay's grace, 500 ms, and interval, 250 ms,
/// plus one delivery and the reads that observe it).
const BOUND: Duration = Duration::from_secs(2);
/// How long a test waits before it calls a wait a failure (the bound is
/// asserted separately, so a slow machine shows the figure).
const GIVE_UP: Duration = Duration::from_secs(15);

/// A fleet whose boards reach Redis through proxies of their own.
struct CutFleet {
    fleet: Fleet,
    proxies: Vec<FaultProxy>,
    specs: Vec<Spec>,
    _backing: Backing,
}

impl CutFleet {
    async fn start(storage: Storage, env: &[&[(&str, &str)]]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let backing = storage.provision(dir.path()).await;
        let redis = RedisServer::start();
        let mut proxies = Vec::new();
        let mut specs = Vec::new();
        let mut boards = Vec::new();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let proxy = FaultProxy::start(redis.port());
            let spec = Spec {
                cache_url: format!(
                    "tiered+redis://127.0.0.1:{}/?l1_capacity=10000&heartbeat_ms=500",
                    proxy.port()
                ),
                database_url: backing.database_url.clone(),
                media_url: backing.media_url.clone(),
                env: env
                    .get(i)
                    .map(|vars| {
                        vars.iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            boards.push(Board::start_with(dir.path(), name, &spec, None));
            proxies.push(proxy);
            specs.push(spec);
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let fleet = Fleet {
            boards,
            redis,
            http,
            _dir: dir,
        };
        fleet.wait_in_sync(Duration::from_secs(20)).await;
        Self {
            fleet,
            proxies,
            specs,
            _backing: backing,
        }
    }

    /// Starts board `i` again, on its old port, after it died.
    fn restart(&mut self, i: usize) {
        let port = self.fleet.boards[i].port();
        self.fleet.boards[i].kill();
        let name = ["a", "b", "c"][i];
        let dir = self.fleet._dir.path().to_owned();
        self.fleet.boards[i] = Board::start_with(&dir, name, &self.specs[i], Some(port));
    }

    /// Logs `username` in on board `i`; returns the new session.
    async fn login(&self, i: usize, username: &str) -> String {
        let board = &self.fleet.boards[i];
        let page = self
            .fleet
            .http
            .get(board.url("/login"))
            .send()
            .await
            .expect("GET /login");
        let anon = cookie(page.headers(), "board_csrf").expect("anonymous CSRF cookie");
        let token = csrf_in(&page.text().await.expect("body"));
        let response = self
            .fleet
            .http
            .post(board.url("/login"))
            .header(COOKIE, format!("board_csrf={anon}"))
            .form(&[
                ("csrf", token.as_str()),
                ("username", username),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .expect("POST /login");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "login");
        cookie(response.headers(), "board_session").expect("session cookie")
    }

    /// Whether board `i`'s home page shows `text` (as `session`).
    async fn shows(&self, i: usize, session: &str, text: &str) -> bool {
        let (status, html) = self
            .fleet
            .get(&self.fleet.boards[i], "/", Some(session))
            .await;
        assert_eq!(status, StatusCode::OK, "GET / on board {i}");
        html.contains(text)
    }

    /// Whether `session` opens `/my` on board `i`.
    async fn signed_in(&self, i: usize, session: &str) -> bool {
        let (status, _) = self
            .fleet
            .get(&self.fleet.boards[i], "/my", Some(session))
            .await;
        status == StatusCode::OK
    }

    /// Polls boards `which` until `holds` is true on each; the time from
    /// `since` until the last one held.
    async fn until_all<F, Fut>(
        &self,
        which: &[usize],
        since: Instant,
        what: &str,
        holds: F,
    ) -> Duration
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for &i in which {
            while !holds(i).await {
                assert!(
                    since.elapsed() < GIVE_UP,
                    "{what}: board {i} still serves the old state after {GIVE_UP:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        since.elapsed()
    }
}

/// The id of the delete form of the message showing `text` on `html`
/// (`/my`).
fn id_of(html: &str, text: &str) -> String {
    let at = html.find(text).expect("the message is listed");
    message_ids(&html[at..])
        .into_iter()
        .next()
        .expect("its delete form")
}

/// Post, delete, logout and password change made on a board that Redis
/// cannot hear: each answers, and the other two boards serve the new
/// state within the bound, during the partition and after it heals.
async fn writes_on_a_cut_off_board(storage: Storage) {
    let cut = CutFleet::start(storage, &[]).await;
    let fleet = &cut.fleet;
    let (a, c) = (0, 2);
    let main = fleet.register_and_login(&fleet.boards[a], "cutoff").await;
    let csrf = fleet.session_csrf(&fleet.boards[a], &main).await;
    let leaving = cut.login(a, "cutoff").await;
    let leaving_csrf = fleet.session_csrf(&fleet.boards[a], &leaving).await;
    let other_device = cut.login(a, "cutoff").await;
    fleet
        .post_message(&fleet.boards[a], &main, &csrf, "doomed message end")
        .await;
    // Every board has the old state cached.
    for i in 0..3 {
        assert!(cut.shows(i, &main, "doomed message end").await);
        assert!(cut.signed_in(i, &leaving).await && cut.signed_in(i, &other_device).await);
    }

    cut.proxies[c].black_hole();
    let mut lags = Vec::new();

    fleet
        .post_message(&fleet.boards[c], &main, &csrf, "posted while cut off end")
        .await;
    let acked = Instant::now();
    let lag = cut
        .until_all(&[0, 1], acked, "post", |i| {
            cut.shows(i, &main, "posted while cut off end")
        })
        .await;
    lags.push(("post", lag));

    let (_, mine) = fleet.get(&fleet.boards[a], "/my", Some(&main)).await;
    let id = id_of(&mine, "doomed message end");
    let status = fleet
        .form(
            &fleet.boards[c],
            &main,
            "/delete",
            &[("csrf", &csrf), ("id", &id)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "delete on the cut-off board");
    let acked = Instant::now();
    let lag = cut
        .until_all(&[0, 1], acked, "delete", |i| {
            let (cut, main) = (&cut, main.as_str());
            async move { !cut.shows(i, main, "doomed message end").await }
        })
        .await;
    lags.push(("delete", lag));

    let status = fleet
        .form(
            &fleet.boards[c],
            &leaving,
            "/logout",
            &[("csrf", &leaving_csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "logout on the cut-off board");
    let acked = Instant::now();
    let lag = cut
        .until_all(&[0, 1], acked, "logout", |i| {
            let (cut, leaving) = (&cut, leaving.as_str());
            async move { !cut.signed_in(i, leaving).await }
        })
        .await;
    lags.push(("logout", lag));

    let status = fleet
        .form(
            &fleet.boards[c],
            &main,
            "/acc/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("new", "a new password 456"),
                ("confirm", "a new password 456"),
            ],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "password change on the cut-off board"
    );
    let acked = Instant::now();
    let lag = cut
        .until_all(&[0, 1], acked, "password change", |i| {
            let (cut, other_device) = (&cut, other_device.as_str());
            async move { !cut.signed_in(i, other_device).await }
        })
        .await;
    lags.push(("password change", lag));

    // Healed: the cut-off board agrees too, and nothing came back.
    cut.proxies[c].pass_through();
    fleet.wait_in_sync(Duration::from_secs(20)).await;
    for i in 0..3 {
        assert!(
            cut.shows(i, &main, "posted while cut off end").await,
            "board {i}"
        );
        assert!(
            !cut.shows(i, &main, "doomed message end").await,
            "board {i}"
        );
        assert!(!cut.signed_in(i, &leaving).await, "board {i}");
        assert!(!cut.signed_in(i, &other_device).await, "board {i}");
        assert!(
            cut.signed_in(i, &main).await,
            "board {i}: the changer stays in"
        );
    }
    println!("{storage:?}: write on a cut-off board -> served by the others: {lags:?}");
    for (what, lag) in lags {
        assert!(lag <= BOUND, "{what}: {lag:?} > {BOUND:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_on_a_cut_off_board_reach_the_others_on_sqlite() {
    writes_on_a_cut_off_board(Storage::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_on_a_cut_off_board_reach_the_others_on_dynamodb() {
    writes_on_a_cut_off_board(Storage::Aws).await;
}

/// Board C dies (abort, as a SIGKILL would) right after each write
/// commits, before it delivers a single invalidation: the client sees the
/// connection drop, and the other boards serve the new state within the
/// bound anyway. C is started again (it dies again at its next write).
async fn a_writer_killed_after_its_commit(storage: Storage) {
    let die = [("FAILPOINTS", "board::after_write=return")];
    let mut cut = CutFleet::start(storage, &[&[], &[], &die]).await;
    let (a, c) = (0, 2);
    let main = cut
        .fleet
        .register_and_login(&cut.fleet.boards[a], "killed")
        .await;
    let csrf = cut.fleet.session_csrf(&cut.fleet.boards[a], &main).await;
    let leaving = cut.login(a, "killed").await;
    let leaving_csrf = cut.fleet.session_csrf(&cut.fleet.boards[a], &leaving).await;
    cut.fleet
        .post_message(&cut.fleet.boards[a], &main, &csrf, "to be removed end")
        .await;
    for i in 0..2 {
        assert!(cut.shows(i, &main, "to be removed end").await);
        assert!(cut.signed_in(i, &leaving).await);
    }
    let mut lags = Vec::new();

    // A post on C: C dies after the commit.
    let form = multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("author", "Fleet")
        .text("location", "Loopback")
        .text("description", "posted by a dying board end")
        .part(
            "image",
            multipart::Part::bytes(picture()).file_name("pic.png"),
        );
    let died = cut
        .fleet
        .http
        .post(cut.fleet.boards[c].url("/save"))
        .header(COOKIE, format!("board_session={main}"))
        .multipart(form)
        .send()
        .await;
    assert!(died.is_err(), "the board died before answering: {died:?}");
    let since = Instant::now();
    let lag = cut
        .until_all(&[0, 1], since, "post by a killed writer", |i| {
            cut.shows(i, &main, "posted by a dying board end")
        })
        .await;
    lags.push(("post", lag));
    assert!(cut.fleet.boards[c].exited());
    cut.restart(c);

    // A delete on C.
    let (_, mine) = cut
        .fleet
        .get(&cut.fleet.boards[a], "/my", Some(&main))
        .await;
    let id = id_of(&mine, "to be removed end");
    let died = cut
        .fleet
        .http
        .post(cut.fleet.boards[c].url("/delete"))
        .header(COOKIE, format!("board_session={main}"))
        .form(&[("csrf", csrf.as_str()), ("id", id.as_str())])
        .send()
        .await;
    assert!(died.is_err(), "{died:?}");
    let since = Instant::now();
    let lag = cut
        .until_all(&[0, 1], since, "delete by a killed writer", |i| {
            let (cut, main) = (&cut, main.as_str());
            async move { !cut.shows(i, main, "to be removed end").await }
        })
        .await;
    lags.push(("delete", lag));
    cut.restart(c);

    // A logout on C.
    let died = cut
        .fleet
        .http
        .post(cut.fleet.boards[c].url("/logout"))
        .header(COOKIE, format!("board_session={leaving}"))
        .form(&[("csrf", leaving_csrf.as_str())])
        .send()
        .await;
    assert!(died.is_err(), "{died:?}");
    let since = Instant::now();
    let lag = cut
        .until_all(&[0, 1], since, "logout by a killed writer", |i| {
            let (cut, leaving) = (&cut, leaving.as_str());
            async move { !cut.signed_in(i, leaving).await }
        })
        .await;
    lags.push(("logout", lag));

    println!("{storage:?}: writer killed after its commit -> served by the others: {lags:?}");
    for (what, lag) in lags {
        assert!(lag <= BOUND, "{what}: {lag:?} > {BOUND:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_killed_after_its_commit_is_invalidated_anyway_on_sqlite() {
    a_writer_killed_after_its_commit(Storage::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_killed_after_its_commit_is_invalidated_anyway_on_dynamodb() {
    a_writer_killed_after_its_commit(Storage::Aws).await;
}

/// A seeded fault schedule over the fleet (partitions, Redis restarts,
/// SIGKILLs and restarts of members) while clients post, delete and read
/// on random members; no read that began more than [`BOUND`] after a
/// write was acknowledged returns the state from before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn randomized_faults_never_serve_a_stale_page_beyond_the_bound() {
    let seed = FaultSchedule::seed_from_env(0x5eed_0023);
    let schedule = FaultSchedule::new(seed, 40, 3);
    println!("replay with FAULT_SEED={seed:#x}: {schedule:#}");
    let mut cut = CutFleet::start(Storage::Embedded, &[]).await;
    let session = cut
        .fleet
        .register_and_login(&cut.fleet.boards[0], "chaos")
        .await;
    let csrf = cut.fleet.session_csrf(&cut.fleet.boards[0], &session).await;
    let history = Arc::new(History::new());
    let mut rng = seed;
    let mut next = move |n: usize| {
        // splitmix64: the same sequence of choices for the same seed.
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        usize::try_from((z ^ (z >> 31)) % n as u64).unwrap_or(0)
    };
    let mut down = [false; 3];
    let mut posted: Vec<(String, bool)> = Vec::new(); // (text, deleted)
    let mut operations = 0usize;
    let mut faults = 0usize;
    for step in &schedule {
        match *step {
            Step::Partition(m) => cut.proxies[m].black_hole(),
            Step::Heal(m) => cut.proxies[m].pass_through(),
            Step::RestartRedis => {
                cut.fleet.redis.stop();
                cut.fleet.redis.restart();
            }
            Step::KillMember(m) => {
                cut.fleet.boards[m].kill();
                down[m] = true;
            }
            Step::RestartMember(m) => {
                cut.restart(m);
                down[m] = false;
            }
            Step::Pause(d) => tokio::time::sleep(d).await,
            _ => {}
        }
        if !matches!(step, Step::Pause(_)) {
            faults += 1;
        }
        // A burst of operations after each step.
        for _ in 0..50 {
            let up: Vec<usize> = (0..3).filter(|&m| !down[m]).collect();
            let board = up[next(up.len())];
            let choice = next(10);
            operations += 1;
            if choice == 0 && posted.len() < 150 {
                let text = format!("chaos {} end", posted.len());
                let t0 = History::now();
                let ok = post(&cut, board, &session, &csrf, &text).await;
                record_write(&history, &text, 1, t0, ok);
                posted.push((text, false));
            } else if choice == 1 {
                let live: Vec<usize> = (0..posted.len()).filter(|&k| !posted[k].1).collect();
                if live.is_empty() {
                    continue;
                }
                let k = live[next(live.len())];
                let text = posted[k].0.clone();
                let Some(id) = find_id(&cut, &up, &session, &text).await else {
                    continue;
                };
                let t0 = History::now();
                let ok = delete(&cut, board, &session, &csrf, &id).await;
                record_write(&history, &text, 2, t0, ok);
                // Refused: nothing deleted, still expected on the page.
                posted[k].1 = ok != Some(false);
            } else {
                let t0 = History::now();
                let Some(html) = home(&cut, board, &session).await else {
                    continue;
                };
                let t1 = History::now();
                for (text, deleted) in &posted {
                    // Not shown: deleted if a delete was asked for, else
                    // not posted yet.
                    let observed = if html.contains(text.as_str()) {
                        1
                    } else if *deleted {
                        2
                    } else {
                        0
                    };
                    history.read(format!("msg:{text}"), t0, t1, observed);
                }
            }
        }
    }
    let report = history.check(BOUND);
    println!("seed {seed:#x}: {operations} operations, {faults} faults\n{report}");
    report.assert_ok();
}

fn record_write(history: &History, text: &str, version: u64, t0: Instant, ok: Option<bool>) {
    match ok {
        Some(true) => history.write(format!("msg:{text}"), version, t0, History::now()),
        // Refused with nothing written (e.g. 503): no write at all.
        Some(false) => {}
        None => history.write_unknown(format!("msg:{text}"), version, t0),
    }
}

/// `Some(true)`: acknowledged; `Some(false)`: refused; `None`: unknown.
async fn post(cut: &CutFleet, i: usize, session: &str, csrf: &str, text: &str) -> Option<bool> {
    let form = multipart::Form::new()
        .text("csrf", csrf.to_owned())
        .text("author", "Chaos")
        .text("location", "Loopback")
        .text("description", text.to_owned())
        .part(
            "image",
            multipart::Part::bytes(picture()).file_name("pic.png"),
        );
    let sent = cut
        .fleet
        .http
        .post(cut.fleet.boards[i].url("/save"))
        .header(COOKIE, format!("board_session={session}"))
        .multipart(form)
        .send()
        .await;
    outcome(sent)
}

async fn delete(cut: &CutFleet, i: usize, session: &str, csrf: &str, id: &str) -> Option<bool> {
    let sent = cut
        .fleet
        .http
        .post(cut.fleet.boards[i].url("/delete"))
        .header(COOKIE, format!("board_session={session}"))
        .form(&[("csrf", csrf), ("id", id)])
        .send()
        .await;
    outcome(sent)
}

fn outcome(sent: reqwest::Result<reqwest::Response>) -> Option<bool> {
    match sent {
        Ok(r) if r.status() == StatusCode::SEE_OTHER => Some(true),
        Ok(r) if r.status().is_server_error() => None,
        Ok(_) => Some(false),
        Err(_) => None,
    }
}

async fn home(cut: &CutFleet, i: usize, session: &str) -> Option<String> {
    let response = cut
        .fleet
        .http
        .get(cut.fleet.boards[i].url("/"))
        .header(COOKIE, format!("board_session={session}"))
        .send()
        .await
        .ok()?;
    (response.status() == StatusCode::OK).then_some(())?;
    response.text().await.ok()
}

/// The id of the message showing `text`, from `/my` of any live member.
async fn find_id(cut: &CutFleet, up: &[usize], session: &str, text: &str) -> Option<String> {
    for &i in up {
        let response = cut
            .fleet
            .http
            .get(cut.fleet.boards[i].url("/my"))
            .header(COOKIE, format!("board_session={session}"))
            .send()
            .await
            .ok()?;
        let html = response.text().await.ok()?;
        if html.contains(text) {
            return Some(id_of(&html, text));
        }
    }
    None
}
