//! Starts every server for real and talks to it over raw sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use testkit::{
    Chromedriver, Dynalite, MemcachedServer, RedisCluster, RedisServer, S3Server, free_port,
    wait_for_port,
};

/// Sends raw bytes and reads one CRLF-terminated reply line.
fn roundtrip(stream: impl Read + Write, request: &str) -> String {
    let mut reader = BufReader::new(stream);
    reader.get_mut().write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

fn tcp(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Whether `pid` is a live (non-zombie) process.
fn alive(pid: u32) -> bool {
    let signal_reaches = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap())
        .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok());
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    });
    signal_reaches && !zombie
}

/// Waits up to 10 s for `pid` to be gone (for processes we do not reap).
fn gone_soon(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Whether `pid` has left `/proc` altogether (killed and reaped).
fn reaped(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// What [`assert_stops_and_restarts`] needs of a server handle.
trait Restartable {
    fn port(&self) -> u16;
    fn pid(&self) -> Option<u32>;
    fn stop(&mut self);
    fn restart(&mut self);
}

macro_rules! restartable {
    ($($server:ty),*) => {$(
        impl Restartable for $server {
            fn port(&self) -> u16 {
                <$server>::port(self)
            }
            fn pid(&self) -> Option<u32> {
                <$server>::pid(self)
            }
            fn stop(&mut self) {
                <$server>::stop(self);
            }
            fn restart(&mut self) {
                <$server>::restart(self);
            }
        }
    )*};
}

restartable!(RedisServer, MemcachedServer, Dynalite, S3Server);

/// Stops `server`: its process is killed and reaped, its port no longer
/// answers, and stopping again does nothing. Restarts it on the same port as
/// a new process that `answers`; then restarts it while running, which
/// replaces it in place.
fn assert_stops_and_restarts<S: Restartable>(
    server: &mut S,
    what: &str,
    answers: impl Fn(&S) -> bool,
) {
    let port = server.port();
    for stop_first in [true, false] {
        let old_pid = server.pid().unwrap();
        if stop_first {
            server.stop();
            assert_eq!(server.pid(), None);
            assert!(reaped(old_pid), "{what} {old_pid} still running after stop");
            assert!(
                TcpStream::connect(("127.0.0.1", port)).is_err(),
                "port {port} still answers"
            );
            server.stop(); // idempotent
        }
        server.restart();
        assert_eq!(server.port(), port);
        assert_ne!(server.pid(), Some(old_pid));
        assert!(
            reaped(old_pid),
            "{what} {old_pid} still running after restart"
        );
        assert!(answers(server), "{what} does not answer after a restart");
    }
}

#[test]
fn free_port_and_wait_for_port() {
    let port = free_port();
    assert_ne!(port, 0);
    assert!(!wait_for_port(port, Duration::from_millis(100)));
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert!(wait_for_port(port, Duration::from_secs(1)));
    drop(listener);
}

#[test]
fn redis_answers_over_tcp_and_unix_socket() {
    let redis = RedisServer::start();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(roundtrip(tcp(port), "PING\r\n"), "+PONG");
    assert_eq!(roundtrip(tcp(port), "SET greeting hello\r\n"), "+OK");

    let socket = redis.unix_socket_path();
    assert!(
        redis.unix_url().ends_with("/redis.sock"),
        "{}",
        redis.unix_url()
    );
    let mut unix = BufReader::new(UnixStream::connect(&socket).unwrap());
    unix.get_mut().write_all(b"GET greeting\r\n").unwrap();
    let mut lines = String::new();
    unix.read_line(&mut lines).unwrap();
    unix.read_line(&mut lines).unwrap();
    assert_eq!(lines, "$5\r\nhello\r\n");
}

#[test]
fn redis_stops_and_restarts_on_the_same_port() {
    let mut redis = RedisServer::start();
    assert_eq!(roundtrip(tcp(redis.port()), "SET k v\r\n"), "+OK");
    assert_stops_and_restarts(&mut redis, "redis-server", |redis| {
        roundtrip(tcp(redis.port()), "PING\r\n") == "+PONG"
    });
    // No persistence: the restarted server starts empty.
    assert_eq!(roundtrip(tcp(redis.port()), "DBSIZE\r\n"), ":0");
}

#[test]
fn redis_process_and_dir_are_gone_after_drop() {
    let redis = RedisServer::start_with_args(&["--maxmemory", "1mb"]);
    let pid = redis.pid().unwrap();
    let dir = redis.dir().to_owned();
    assert!(alive(pid));
    assert_eq!(
        roundtrip(tcp(redis.port()), "CONFIG GET maxmemory\r\n"),
        "*2",
        "extra args reach the server"
    );
    assert!(format!("{redis:?}").contains(&pid.to_string()));
    drop(redis);
    assert!(!alive(pid), "redis-server {pid} still running after drop");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn parallel_redis_servers_get_distinct_ports() {
    let servers: Vec<RedisServer> = thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(RedisServer::start)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for server in &servers {
        assert_eq!(roundtrip(tcp(server.port()), "PING\r\n"), "+PONG");
    }
}

#[test]
fn redis_cluster_of_three_masters() {
    let cluster = RedisCluster::start(3);
    let ports = cluster.ports();
    assert_eq!(ports.len(), 3);
    assert_eq!(
        cluster.url(),
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
            ports[0], ports[1], ports[2]
        )
    );
    assert_eq!(
        cluster.node_urls(),
        ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
    );

    // Every node is healthy; exactly one node owns a given key.
    let mut owners = 0;
    for &port in &ports {
        assert_eq!(roundtrip(tcp(port), "PING\r\n"), "+PONG");
        let mut info = String::new();
        let mut stream = tcp(port);
        stream.write_all(b"CLUSTER INFO\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        while !info.contains("cluster_known_nodes") {
            assert_ne!(reader.read_line(&mut info).unwrap(), 0);
        }
        assert!(info.contains("cluster_state:ok"), "{info}");
        let reply = roundtrip(tcp(port), "SET somekey v\r\n");
        if reply == "+OK" {
            owners += 1;
        } else {
            assert!(reply.starts_with("-MOVED "), "{reply}");
        }
    }
    assert_eq!(owners, 1);

    let pids: Vec<u32> = cluster
        .nodes()
        .iter()
        .filter_map(RedisServer::pid)
        .collect();
    assert_eq!(pids.len(), 3);
    drop(cluster);
    for pid in pids {
        assert!(!alive(pid), "cluster node {pid} still running after drop");
    }
}

#[test]
fn memcached_sets_gets_and_restarts_on_the_same_port() {
    let mut memcached = MemcachedServer::start();
    let port = memcached.port();
    assert_eq!(memcached.url(), format!("memcached://127.0.0.1:{port}"));

    let mut reader = BufReader::new(tcp(port));
    reader
        .get_mut()
        .write_all(b"set k 0 0 5\r\nhello\r\nget k\r\n")
        .unwrap();
    let mut reply = String::new();
    while !reply.ends_with("END\r\n") {
        assert_ne!(reader.read_line(&mut reply).unwrap(), 0, "{reply}");
    }
    assert_eq!(reply, "STORED\r\nVALUE k 0 5\r\nhello\r\nEND\r\n");

    assert_stops_and_restarts(&mut memcached, "memcached", |memcached| {
        roundtrip(tcp(memcached.port()), "version\r\n").starts_with("VERSION ")
    });
    assert_eq!(
        roundtrip(tcp(port), "get k\r\n"),
        "END",
        "restart starts empty"
    );

    let pid = memcached.pid().unwrap();
    drop(memcached);
    assert!(!alive(pid), "memcached {pid} still running after drop");
}

/// One raw HTTP/1.1 request with a JSON body; returns the status code and body.
fn http(url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let json = [("Content-Type", "application/json")];
    http_with(url, method, path, &json, body)
}

/// One raw HTTP/1.1 request with extra `headers`; returns the status code and body.
fn http_with(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = tcp(port);
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         {headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read by Content-Length: chromedriver keeps the connection open.
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        match line.trim_end().split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                length = value.trim().parse().unwrap();
            }
            Some(_) => {}
            None => break,
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// The string value of `"key":"..."` in a JSON body (no escapes expected).
fn json_str<'a>(body: &'a str, key: &str) -> &'a str {
    let start = body
        .find(&format!("\"{key}\":\""))
        .unwrap_or_else(|| panic!("{key} in {body}"));
    let rest = &body[start + key.len() + 4..];
    &rest[..rest.find('"').unwrap()]
}

#[test]
fn chromedriver_is_ready_and_drives_headless_chromium() {
    let driver = Chromedriver::start();
    let url = driver.url();
    assert_eq!(url, format!("http://127.0.0.1:{}", driver.port()));
    let (status, body) = http(&url, "GET", "/status", "");
    assert_eq!(status, 200);
    assert!(body.contains("\"ready\":true"), "{body}");

    let profile = Chromedriver::fresh_user_data_dir();
    let mut args: Vec<String> = Chromedriver::chrome_args()
        .into_iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    args.push(format!("\"--user-data-dir={}\"", profile.path().display()));
    let capabilities = format!(
        r#"{{"capabilities":{{"alwaysMatch":{{"goog:chromeOptions":{{"binary":"{}","args":[{}]}}}}}}}}"#,
        Chromedriver::chromium_binary(),
        args.join(",")
    );
    let (status, body) = http(&url, "POST", "/session", &capabilities);
    assert_eq!(
        status,
        200,
        "{body}\n--- chromedriver log ---\n{}",
        driver.log()
    );
    let session = json_str(&body, "sessionId").to_owned();
    let browser_pid: u32 = {
        let at = body.find("\"goog:processID\":").unwrap() + "\"goog:processID\":".len();
        body[at..]
            .split([',', '}'])
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };

    let page = r#"{"url":"data:text/html,<title>testkit</title><p>hi</p>"}"#;
    let (status, body) = http(&url, "POST", &format!("/session/{session}/url"), page);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&url, "GET", &format!("/session/{session}/title"), "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_str(&body, "value"), "testkit");

    // The session is left open on purpose: dropping the driver must not
    // leave the browser running.
    let driver_pid = driver.pid().unwrap();
    assert!(alive(browser_pid));
    drop(driver);
    assert!(
        !alive(driver_pid),
        "chromedriver {driver_pid} still running after drop"
    );
    assert!(
        gone_soon(browser_pid),
        "chromium {browser_pid} still running after drop"
    );
}

/// A DynamoDB `ListTables` call.
fn list_tables(endpoint: &str) -> (u16, String) {
    dynamo_call(endpoint, "ListTables", "{}")
}

/// A DynamoDB call of `operation` (dynalite checks the form of the
/// signature, not its value).
fn dynamo_call(endpoint: &str, operation: &str, body: &str) -> (u16, String) {
    let target = format!("DynamoDB_20120810.{operation}");
    let headers = [
        ("X-Amz-Target", target.as_str()),
        ("Content-Type", "application/x-amz-json-1.0"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host, Signature=x",
        ),
        ("X-Amz-Date", "20260101T000000Z"),
    ];
    http_with(endpoint, "POST", "/", &headers, body)
}

#[test]
fn dynalite_answers_dynamodb_and_restarts_on_the_same_port() {
    let mut dynamo = Dynalite::start();
    let port = dynamo.port();
    assert_eq!(dynamo.endpoint(), format!("http://127.0.0.1:{port}"));
    let (status, body) = list_tables(&dynamo.endpoint());
    assert_eq!(status, 200, "{body}\n--- log ---\n{}", dynamo.log());
    assert_eq!(body, r#"{"TableNames":[]}"#);
    assert!(format!("{dynamo:?}").contains(&port.to_string()));

    assert_stops_and_restarts(&mut dynamo, "dynalite", |dynamo| {
        list_tables(&dynamo.endpoint()).0 == 200
    });

    let pid = dynamo.pid().unwrap();
    drop(dynamo);
    assert!(reaped(pid), "dynalite {pid} still running after drop");
}

#[test]
fn dynalite_on_disk_keeps_its_tables_across_a_restart() {
    let mut dynamo = Dynalite::start_on_disk();
    let table = r#"{"TableName":"kept","AttributeDefinitions":[{"AttributeName":"id","AttributeType":"S"}],"KeySchema":[{"AttributeName":"id","KeyType":"HASH"}],"BillingMode":"PAY_PER_REQUEST"}"#;
    let (status, body) = dynamo_call(&dynamo.endpoint(), "CreateTable", table);
    assert_eq!(status, 200, "{body}\n--- log ---\n{}", dynamo.log());

    dynamo.restart();
    let (status, body) = list_tables(&dynamo.endpoint());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"TableNames":["kept"]}"#);
}

#[test]
fn s3rver_serves_its_bucket_and_keeps_objects_across_a_restart() {
    let mut s3 = S3Server::start();
    let port = s3.port();
    let endpoint = s3.endpoint();
    assert_eq!(endpoint, format!("http://127.0.0.1:{port}"));
    assert_eq!(s3.bucket(), "board");
    assert_eq!(
        (s3.access_key_id(), s3.secret_access_key()),
        ("S3RVER", "S3RVER")
    );
    let (status, body) = http_with(&endpoint, "GET", "/board", &[], "");
    assert_eq!(status, 200, "{body}\n--- log ---\n{}", s3.log());
    assert!(body.starts_with("<?xml"), "{body}");
    assert!(body.contains("<Name>board</Name>"), "{body}");
    assert!(format!("{s3:?}").contains(&port.to_string()));

    // Anonymous path-style writes are accepted.
    let (status, body) = http_with(&endpoint, "PUT", "/board/greeting", &[], "hello");
    assert_eq!(status, 200, "{body}");

    assert_stops_and_restarts(&mut s3, "s3rver", |s3| {
        http_with(&s3.endpoint(), "GET", "/board", &[], "").0 == 200
    });
    assert_eq!(
        http_with(&endpoint, "GET", "/board/greeting", &[], ""),
        (200, "hello".to_owned()),
        "objects are on disk and survive a restart"
    );

    let pid = s3.pid().unwrap();
    drop(s3);
    assert!(reaped(pid), "s3rver {pid} still running after drop");
}

#[test]
fn parallel_node_servers_get_distinct_ports() {
    let (dynamos, s3s): (Vec<Dynalite>, Vec<S3Server>) = thread::scope(|s| {
        let dynamos: Vec<_> = (0..3).map(|_| s.spawn(Dynalite::start)).collect();
        let s3s: Vec<_> = (0..3).map(|_| s.spawn(S3Server::start)).collect();
        (
            dynamos.into_iter().map(|h| h.join().unwrap()).collect(),
            s3s.into_iter().map(|h| h.join().unwrap()).collect(),
        )
    });
    let mut ports: Vec<u16> = dynamos
        .iter()
        .map(Dynalite::port)
        .chain(s3s.iter().map(S3Server::port))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 6);
    for dynamo in &dynamos {
        assert_eq!(list_tables(&dynamo.endpoint()).0, 200);
    }
    for s3 in &s3s {
        assert_eq!(http_with(&s3.endpoint(), "GET", "/board", &[], "").0, 200);
    }
}
