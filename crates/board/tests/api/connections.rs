//! Connection-level bounds (issue 12): slow headers, idle keep-alive, the
//! per-address and total caps, and `/metrics` kept off the public face.
//!
//! Raw sockets on loopback only. A second client address is 127.0.0.2
//! (all of 127.0.0.0/8 is this machine), so a flood from it can be told
//! from the probes sent from 127.0.0.1. Every loop is bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

use crate::helpers::{TestApp, spawn_with};

const FLOODER: [u8; 4] = [127, 0, 0, 2];

/// A connection to the board from 127.0.0.`last`.
async fn connect_from(app: &TestApp, last: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((last, 0)))
        .expect("bind a loopback source");
    socket.connect(app.socket_addr()).await.expect("connect")
}

/// True once the peer has closed `stream` (EOF or reset), waiting at most
/// `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0_u8; 4096];
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {} // a response; keep reading until the close
            Err(_) => return false,
        }
    }
    false
}

/// `/healthz` on a fresh connection from 127.0.0.1.
async fn healthz(app: &TestApp) -> Result<StatusCode, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(app.url("/healthz"))
        .send()
        .await
        .map(|r| r.status())
}

#[tokio::test]
async fn a_client_that_trickles_header_lines_is_cut_off() {
    let app = spawn_with(|s| s.header_read_timeout = Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(app.socket_addr())
        .await
        .expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: board\r\n")
        .await
        .expect("request line");
    let started = Instant::now();
    let mut cut_off = false;
    // One more header line every 300 ms, never the blank line; bounded to
    // 30 lines (9 s), the timeout is 1 s.
    for n in 0..30 {
        if closed_within(&mut slow, Duration::from_millis(300)).await {
            cut_off = true;
            break;
        }
        if slow
            .write_all(format!("X-Slow-{n}: still here\r\n").as_bytes())
            .await
            .is_err()
        {
            cut_off = true;
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(cut_off, "still open after {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(4),
        "cut off only after {elapsed:?}"
    );
    assert_eq!(app.metric("board_connections_timed_out_total").await, 1);
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed_after_the_header_timeout() {
    let app = spawn_with(|s| s.header_read_timeout = Duration::from_secs(1)).await;
    let mut silent = TcpStream::connect(app.socket_addr())
        .await
        .expect("connect");
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_with(|s| s.idle_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.socket_addr())
        .await
        .expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: board\r\n\r\n")
        .await
        .expect("request");
    let mut seen = Vec::new();
    let mut buf = [0_u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("l1_in_sync") {
        let n = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n > 0, "closed before answering");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    assert!(
        answered.elapsed() >= Duration::from_millis(500),
        "closed before it was idle for long: {:?}",
        answered.elapsed()
    );
}

#[tokio::test]
async fn a_flood_of_idle_sockets_from_one_address_leaves_others_served() {
    let app = spawn_with(|s| s.max_connections_per_address = 50).await;
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(connect_from(&app, FLOODER).await);
    }
    // The other 250 are accepted and closed at once.
    let started = Instant::now();
    while app
        .metric("board_connections_refused_total{cap=\"per_address\"}")
        .await
        < 250
    {
        assert!(started.elapsed() < Duration::from_secs(10), "not refused");
        tokio::task::yield_now().await;
    }
    assert_eq!(
        app.metric("board_connections_refused_total{cap=\"per_address\"}")
            .await,
        250
    );
    for _ in 0..5 {
        assert_eq!(healthz(&app).await.expect("healthz"), StatusCode::OK);
    }
    let mut open = 0;
    for socket in &mut flood {
        if !closed_within(socket, Duration::from_millis(1)).await {
            open += 1;
        }
    }
    assert_eq!(open, 50, "the first 50 stay open");
    // Once they go, the address gets its share back.
    drop(flood);
    let started = Instant::now();
    loop {
        let mut again = connect_from(&app, FLOODER).await;
        again
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: board\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        let _ = timeout(Duration::from_secs(2), again.read_to_string(&mut answer)).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "share not returned"
        );
    }
}

/// Waits (bounded) until the metric `series` reaches `at_least`.
async fn metric_reaches(app: &TestApp, series: &str, at_least: u64) {
    let started = Instant::now();
    while app.metric(series).await < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{series} stayed under {at_least}"
        );
        tokio::task::yield_now().await;
    }
}

/// A connection from `from` with a request in flight: a form POST whose
/// body never comes. `Expect: 100-continue` makes the board say when the
/// handler starts reading the body, so the request is known to be in the
/// router (no sleeping on it).
async fn busy_from(app: &TestApp, from: [u8; 4]) -> TcpStream {
    let mut stream = connect_from(app, from).await;
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: board\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 64\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .expect("request head");
    let mut seen = Vec::new();
    let mut buf = [0_u8; 256];
    while !String::from_utf8_lossy(&seen).contains("100 Continue") {
        let n = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("100 Continue in time")
            .expect("read");
        assert!(n > 0, "closed before reading the body");
        seen.extend_from_slice(&buf[..n]);
    }
    stream
}

#[tokio::test]
async fn when_every_connection_serves_a_request_a_new_one_is_closed_until_one_ends() {
    let app = spawn_with(|s| s.max_connections = 20).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(busy_from(&app, FLOODER).await);
    }
    // Nothing idle to shed: a 21st is closed at once.
    let mut extra = connect_from(&app, FLOODER).await;
    assert!(closed_within(&mut extra, Duration::from_secs(5)).await);
    assert!(healthz(&app).await.is_err(), "no slot for 127.0.0.1 either");
    drop(held);
    let started = Instant::now();
    while healthz(&app).await.ok() != Some(StatusCode::OK) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "slots not returned"
        );
    }
    assert_eq!(app.metric("board_connections_shed_total").await, 0);
}

/// Issue 27: the distributed slowloris. Idle sockets from 40 addresses, 3
/// each (under any per-address cap), three times the total cap: each new
/// one closes the oldest idle one, and a new client gets in at once.
#[tokio::test]
async fn idle_sockets_from_many_addresses_make_room_for_new_clients_at_the_cap() {
    const CAP: usize = 40;
    let app = spawn_with(|s| s.max_connections = CAP as u32).await;
    let mut flood = Vec::new();
    for n in 0..(3 * CAP) {
        let address = [127, 0, 1, 1 + (n % CAP) as u8];
        flood.push(connect_from(&app, address).await);
    }
    metric_reaches(&app, "board_connections_shed_total", 2 * CAP as u64).await;
    assert_eq!(
        app.metric("board_connections_refused_total{cap=\"total\"}")
            .await,
        0
    );
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(healthz(&app).await.expect("healthz"), StatusCode::OK);
        let page = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(1))
            .build()
            .expect("client")
            .get(app.url("/"))
            .send()
            .await
            .expect("GET / within 1 s");
        assert_eq!(page.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    // The oldest went first; the newest are still open.
    for old in &mut flood[..CAP] {
        assert!(
            closed_within(old, Duration::from_secs(5)).await,
            "oldest shed"
        );
    }
    let newest = flood.last_mut().expect("a socket");
    assert!(!closed_within(newest, Duration::from_millis(50)).await);
}

#[tokio::test]
async fn metrics_are_not_public_without_a_token_or_an_address_of_their_own() {
    let closed = spawn_with(|s| s.metrics_token = None).await;
    assert_eq!(closed.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(closed.get("/healthz").await.status(), StatusCode::OK);

    let token = spawn_with(|_| {}).await;
    assert_eq!(
        token.get("/metrics").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let wrong = token
        .client
        .get(token.url("/metrics"))
        .bearer_auth("not the token at all")
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(token.metrics().await.contains("board_db_calls_total"));

    let admin = spawn_with(|s| {
        s.metrics_token = None;
        s.metrics_address = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    assert_eq!(admin.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    let private = admin.metrics_address.clone().expect("metrics address");
    let get = |path: &str| admin.client.get(format!("{private}{path}")).send();
    let metrics = get("/metrics").await.expect("GET");
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics
            .text()
            .await
            .expect("body")
            .contains("memocache_hits_total")
    );
    assert_eq!(
        get("/healthz").await.expect("GET").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(get("/").await.expect("GET").status(), StatusCode::NOT_FOUND);
}
