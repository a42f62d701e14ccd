//! The container image and the Kubernetes manifests, played for real with
//! podman: `scripts/cluster up` plays the local overlay
//! (`deploy/k8s/overlays/local`: two board replicas, Redis, dynalite,
//! s3rver and a haproxy load balancer on 127.0.0.1), then
//!
//! - each board pod, addressed directly, shows what the other one did on
//!   its very next request: a post, a delete, a logout;
//! - a rolling restart (`scripts/cluster delete-pod` on each board pod in
//!   turn: drained from the load balancer, preStop, SIGTERM, a replacement
//!   from the Deployment's template) under a steady load of `GET /` and
//!   posts through the load balancer fails no request and loses no post,
//!   and every stopped board exited 0 within its grace period;
//! - the image runs as a non-root user on a read-only root filesystem,
//!   exits 0 on SIGTERM, and a bad setting (cache URL, a missing or
//!   placeholder secret key) stops it at once with a clear line, no panic.
//!
//! Every container and pod is removed at the end, by id, pass or fail
//! (`scripts/cluster down` and `podman rm` in `Drop`). Needs the images
//! (`scripts/image all`, or `BOARD_BINARY=target/debug/board scripts/image
//! all` to reuse the test build) and is `#[ignore]`d in the plain `cargo
//! test`: `scripts/test` runs it as its own step,
//!
//! ```sh
//! cargo test --workspace --all-features --test cluster -- --ignored --nocapture --test-threads 1
//! ```
//!
//! and prints the figures of BENCHMARKS.md ("The board in containers").

mod container;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use reqwest::StatusCode;
use reqwest::header::COOKIE;

use support::{
    cookie, csrf_in, first_thumbnail, message_ids, ok, percentile, podman, post_form, rss_kib, run,
    workspace,
};

const PASSWORD: &str = "password123";
/// The load balancer's published port (the overlay's default is 18000).
const LB_PORT: u16 = 18_080;
const LB_ADMIN_PORT: u16 = 18_081;
const NETWORK: &str = "board-local";

fn scripts_cluster(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(workspace().join("scripts/cluster"));
    command
        .args(args)
        .env("LB_PORT", LB_PORT.to_string())
        .env("LB_ADMIN_PORT", LB_ADMIN_PORT.to_string())
        .current_dir(workspace());
    command
}

/// The local overlay, played; `scripts/cluster down` on drop.
struct Cluster {
    http: reqwest::Client,
}

impl Cluster {
    fn up() -> Self {
        let started = Instant::now();
        let output = run(&mut scripts_cluster(&["up"]));
        // Down even if up failed half-way (up removes what it made itself,
        // but a panic here must leave nothing behind either).
        let cluster = Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "scripts/cluster up failed:\n{text}"
        );
        println!(
            "scripts/cluster up: {:.1} s\n{text}",
            started.elapsed().as_secs_f64()
        );
        cluster
    }

    /// The board pods, by name, with their address on the pods' network.
    fn boards(&self) -> Vec<Pod> {
        let names = ok(podman().args([
            "pod",
            "ps",
            "--filter",
            "label=app.kubernetes.io/name=board",
            "--filter",
            "status=running",
            "--format",
            "{{.Name}}",
        ]));
        let mut pods: Vec<Pod> = names.split_whitespace().map(Pod::named).collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        pods
    }

    fn lb(&self, path: &str) -> String {
        format!("http://127.0.0.1:{LB_PORT}{path}")
    }

    async fn get(&self, url: &str, session: Option<&str>) -> (StatusCode, String) {
        let mut request = self.http.get(url);
        if let Some(token) = session {
            request = request.header(COOKIE, format!("board_session={token}"));
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// Registers `username` at `base`, logs in; the session cookie.
    async fn register_and_login(&self, base: &str, username: &str) -> String {
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
                .get(format!("{base}/login"))
                .send()
                .await
                .expect("GET /login");
            let anon = cookie(page.headers(), "board_csrf").expect("anonymous CSRF cookie");
            let token = csrf_in(&page.text().await.expect("body"));
            let mut form = vec![("csrf", token.as_str())];
            form.extend(fields);
            let response = self
                .http
                .post(format!("{base}{path}"))
                .header(COOKIE, format!("board_csrf={anon}"))
                .form(&form)
                .send()
                .await
                .expect("POST");
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{base}{path}");
            if path == "/login" {
                return cookie(response.headers(), "board_session").expect("session cookie");
            }
        }
        unreachable!()
    }

    /// The session's CSRF token (from the form of `/logout`).
    async fn session_csrf(&self, base: &str, session: &str) -> String {
        let (status, html) = self.get(&format!("{base}/logout"), Some(session)).await;
        assert_eq!(status, StatusCode::OK, "{base}/logout");
        csrf_in(&html)
    }

    async fn form(&self, url: &str, session: &str, fields: &[(&str, &str)]) -> StatusCode {
        self.http
            .post(url)
            .header(COOKIE, format!("board_session={session}"))
            .form(fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
            .status()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = run(scripts_cluster(&["logs"]).env("LINES_PER_POD", "30"));
            eprintln!(
                "the cluster's logs:\n{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        let down = run(&mut scripts_cluster(&["down"]));
        if !down.status.success() {
            eprintln!(
                "scripts/cluster down failed: {}",
                String::from_utf8_lossy(&down.stderr)
            );
        }
    }
}

/// A pod of the cluster, addressed directly on its network.
#[derive(Debug, Clone)]
struct Pod {
    name: String,
    base: String,
}

impl Pod {
    fn named(name: &str) -> Self {
        let infra =
            ok(podman().args(["pod", "inspect", "--format", "{{.InfraContainerID}}", name]));
        let address = ok(podman().args([
            "inspect",
            "--format",
            &format!("{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}"),
            infra.trim(),
        ]));
        Self {
            name: name.to_owned(),
            base: format!("http://{}:8000", address.trim()),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The pod's main container (not the infra one).
    fn container(&self) -> String {
        let names = ok(podman().args([
            "pod",
            "inspect",
            "--format",
            "{{range .Containers}}{{.Name}} {{end}}",
            &self.name,
        ]));
        names
            .split_whitespace()
            .find(|n| !n.ends_with("-infra"))
            .expect("a container")
            .to_owned()
    }

    fn logs(&self) -> String {
        let output = run(podman().args(["logs", &self.container()]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

/// What the load saw: answered requests (when, what, how long), failures
/// and the texts posted.
#[derive(Default)]
struct Load {
    answered: Vec<(Duration, &'static str, Duration)>,
    failures: Vec<String>,
    posted: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "plays the manifests under podman; scripts/test runs it as its own step"]
async fn the_local_overlay_plays_as_a_coherent_fleet_that_rolls_without_failing_a_request() {
    let cluster = Cluster::up();
    let boards = cluster.boards();
    assert_eq!(boards.len(), 2, "two board replicas: {boards:?}");
    let (a, b) = (&boards[0], &boards[1]);

    // The manifests' securityContext, as podman applied it.
    for pod in &boards {
        let applied = ok(podman().args([
            "inspect",
            "--format",
            "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}",
            &pod.container(),
        ]));
        assert_eq!(applied.trim(), "true 10001:10001", "{}", pod.name);
    }

    // Both replicas ready, and behind the load balancer.
    for pod in &boards {
        let (status, body) = cluster.get(&pod.url("/healthz"), None).await;
        assert_eq!(status, StatusCode::OK, "{}", pod.name);
        assert!(
            body.contains("\"cache\":\"tiered\""),
            "{}: {body}",
            pod.name
        );
    }
    let (status, _) = cluster.get(&cluster.lb("/healthz"), None).await;
    assert_eq!(status, StatusCode::OK);

    // A post through A is on B's next page, its picture served by B (S3).
    let session = cluster.register_and_login(&a.base, "podfan").await;
    let csrf = cluster.session_csrf(&a.base, &session).await;
    let (status, _) = cluster.get(&b.url("/my"), Some(&session)).await;
    assert_eq!(status, StatusCode::OK, "a login on A holds on B");
    for pod in &boards {
        cluster.get(&pod.url("/"), Some(&session)).await; // warm both caches
    }
    let response = cluster
        .http
        .post(a.url("/save"))
        .header(COOKIE, format!("board_session={session}"))
        .multipart(post_form(&csrf, "posted through pod A"))
        .send()
        .await
        .expect("POST /save");
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "post on A");
    let (_, home) = cluster.get(&b.url("/"), Some(&session)).await;
    assert!(
        home.contains("posted through pod A"),
        "B shows A's post at once"
    );
    let thumbnail = first_thumbnail(&home).expect("a thumbnail");
    let thumb = cluster
        .http
        .get(b.url(&thumbnail))
        .send()
        .await
        .expect("GET thumbnail");
    assert_eq!(thumb.status(), StatusCode::OK, "B serves {thumbnail}");
    let (_, mine) = cluster.get(&b.url("/my"), Some(&session)).await;
    assert!(mine.contains("posted through pod A"), "on B's /my at once");

    // And back: a post through B is on A's next page.
    let response = cluster
        .http
        .post(b.url("/save"))
        .header(COOKIE, format!("board_session={session}"))
        .multipart(post_form(&csrf, "posted through pod B"))
        .send()
        .await
        .expect("POST /save");
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "post on B");
    let (_, home) = cluster.get(&a.url("/"), Some(&session)).await;
    assert!(
        home.contains("posted through pod B"),
        "A shows B's post at once"
    );

    // A delete through A is gone from B at once.
    let (_, mine) = cluster.get(&a.url("/my"), Some(&session)).await;
    let ids = message_ids(&mine);
    assert_eq!(ids.len(), 2, "both posts on /my");
    for id in &ids {
        let status = cluster
            .form(&a.url("/delete"), &session, &[("csrf", &csrf), ("id", id)])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "delete {id}");
        let (_, mine) = cluster.get(&b.url("/my"), Some(&session)).await;
        assert!(!mine.contains(id.as_str()), "deleted {id} still on B's /my");
    }
    let (_, home) = cluster.get(&b.url("/"), Some(&session)).await;
    assert!(
        !home.contains("posted through pod"),
        "B's home after the deletes"
    );

    // A logout through A: the copied cookie is refused by both at once.
    let status = cluster
        .form(&a.url("/logout"), &session, &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "logout");
    for pod in &boards {
        let (status, _) = cluster.get(&pod.url("/my"), Some(&session)).await;
        assert_ne!(
            status,
            StatusCode::OK,
            "{} still takes the cookie",
            pod.name
        );
    }

    rolling_restart_under_load(&cluster).await;

    for pod in cluster.boards() {
        let logs = pod.logs();
        assert!(!logs.contains("panicked"), "{}: {logs}", pod.name);
    }
}

/// Every board pod deleted in turn (`scripts/cluster restart`) while GETs
/// and posts go through the load balancer: none fails, none is lost.
async fn rolling_restart_under_load(cluster: &Cluster) {
    let lb = format!("http://127.0.0.1:{LB_PORT}");
    let session = cluster.register_and_login(&lb, "roller").await;
    let csrf = cluster.session_csrf(&lb, &session).await;
    let before: Vec<String> = cluster.boards().iter().map(|p| p.name.clone()).collect();

    let running = Arc::new(AtomicBool::new(true));
    let load = Arc::new(Mutex::new(Load::default()));
    let load_started = Instant::now();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut tasks = Vec::new();
    // Four readers of the home page, as fast as they are answered.
    for _ in 0..4 {
        let (http, lb, running, load, session) = (
            http.clone(),
            lb.clone(),
            Arc::clone(&running),
            Arc::clone(&load),
            session.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let started = Instant::now();
                let result = http
                    .get(format!("{lb}/"))
                    .header(COOKIE, format!("board_session={session}"))
                    .send()
                    .await;
                let mut load = load.lock();
                match result {
                    Ok(r) if r.status() == StatusCode::OK => {
                        load.answered
                            .push((started - load_started, "GET /", started.elapsed()))
                    }
                    Ok(r) => load.failures.push(format!("GET /: {}", r.status())),
                    Err(e) => load.failures.push(format!("GET /: {e}")),
                }
            }
        }));
    }
    // One poster, a post every 600 ms, 30 at most: one account's burst
    // budget (`--post-budget-per-account`, 30 per 10 minutes by default),
    // and one page of /my holds them all.
    {
        let (http, lb, running, load) = (
            http.clone(),
            lb.clone(),
            Arc::clone(&running),
            Arc::clone(&load),
        );
        let (session, csrf) = (session.clone(), csrf.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while running.load(Ordering::Relaxed) && n < 30 {
                let text = format!("rolling post {n} end");
                let started = Instant::now();
                let result = http
                    .post(format!("{lb}/save"))
                    .header(COOKIE, format!("board_session={session}"))
                    .multipart(post_form(&csrf, &text))
                    .send()
                    .await;
                {
                    let mut load = load.lock();
                    match result {
                        Ok(r) if r.status() == StatusCode::SEE_OTHER => {
                            load.answered.push((
                                started - load_started,
                                "POST /save",
                                started.elapsed(),
                            ));
                            load.posted.push(text);
                        }
                        Ok(r) => load.failures.push(format!("POST /save: {}", r.status())),
                        Err(e) => load.failures.push(format!("POST /save: {e}")),
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_under_load: Vec<(String, (u64, u64))> = cluster
        .boards()
        .iter()
        .map(|p| (p.name.clone(), rss_kib(&p.container())))
        .collect();
    let restart_started = Instant::now();
    let restart_at = restart_started - load_started;
    let restart = tokio::task::spawn_blocking(|| run(&mut scripts_cluster(&["restart"])))
        .await
        .expect("restart");
    let restart_took = restart_started.elapsed();
    let restart_log = format!(
        "{}{}",
        String::from_utf8_lossy(&restart.stdout),
        String::from_utf8_lossy(&restart.stderr)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("load task");
    }
    assert!(
        restart.status.success(),
        "scripts/cluster restart:\n{restart_log}"
    );

    let mut load = std::mem::take(&mut *load.lock());
    let mut latencies: Vec<Duration> = load.answered.iter().map(|a| a.2).collect();
    latencies.sort();
    load.answered.sort_by_key(|a| std::cmp::Reverse(a.2));
    println!(
        "rolling restart of {before:?} under load: {:.1} s\n{restart_log}\
         requests {} answered, {} failed; latency p50 {:?} p99 {:?} max {:?}; {} posts",
        restart_took.as_secs_f64(),
        latencies.len(),
        load.failures.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        load.posted.len(),
    );
    println!(
        "restart from {:.1} s to {:.1} s of the load; slowest: {}",
        restart_at.as_secs_f64(),
        (restart_at + restart_took).as_secs_f64(),
        load.answered[..3.min(load.answered.len())]
            .iter()
            .map(|(at, what, took)| format!("{what} at {:.1} s took {took:?}", at.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (name, (rss, peak)) in &rss_under_load {
        println!(
            "{name}: RSS under load {} MiB (peak {} MiB)",
            rss / 1024,
            peak / 1024
        );
    }
    assert!(
        load.failures.is_empty(),
        "failed requests: {:?}",
        load.failures
    );
    assert!(
        latencies.len() > 100,
        "too little load: {}",
        latencies.len()
    );

    // New pods, none of the old ones, and every post is there.
    let after = cluster.boards();
    assert_eq!(after.len(), 2, "two replicas after the restart: {after:?}");
    assert!(
        after.iter().all(|p| !before.contains(&p.name)),
        "{after:?} vs {before:?}"
    );
    for pod in &after {
        let (status, mine) = cluster.get(&pod.url("/my"), Some(&session)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}: the session outlived the restart",
            pod.name
        );
        for text in &load.posted {
            assert!(mine.contains(text.as_str()), "{}: {text} lost", pod.name);
        }
    }
    for pod in &after {
        let (rss, peak) = rss_kib(&pod.container());
        println!(
            "{}: RSS after the restart {} MiB (peak {} MiB)",
            pod.name,
            rss / 1024,
            peak / 1024
        );
    }
}
