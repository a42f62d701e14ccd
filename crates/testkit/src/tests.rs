//! Unit tests of the shared plumbing: missing binaries, port races, process
//! ownership of a port, and killing a whole process tree.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crate::ports::{free_port, owns_listener};
use crate::process::{
    Failure, ServerProcess, find_binary, locate_node_binary, node_tools_bin_dir, temp_dir,
};
use crate::redis::RedisServer;

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[test]
#[should_panic(
    expected = "no-such-server-xyz not found on PATH: install it with `apt-get install -y no-such-server-xyz`"
)]
fn a_missing_binary_panics_with_install_advice() {
    let _ = find_binary(
        "no-such-server-xyz",
        "apt-get install -y no-such-server-xyz",
    );
}

#[test]
fn finds_binaries_on_path() {
    assert!(find_binary("sh", "-").is_absolute());
}

#[test]
#[should_panic(expected = "run scripts/install-test-deps (npm ci --prefix tools/node)")]
fn a_missing_npm_server_panics_with_install_advice() {
    let empty = temp_dir("unit");
    let _ = locate_node_binary("no-such-npm-server-xyz", "NO_SUCH_BIN", None, empty.path());
}

#[test]
#[should_panic(expected = "NO_SUCH_BIN=/nonexistent/dynalite is not a file")]
fn an_npm_server_override_must_exist() {
    let empty = temp_dir("unit");
    let _ = locate_node_binary(
        "dynalite",
        "NO_SUCH_BIN",
        Some("/nonexistent/dynalite".into()),
        empty.path(),
    );
}

#[test]
fn npm_servers_are_found_by_override_then_workspace_then_path() {
    let bin_dir = temp_dir("unit");
    let local = bin_dir.path().join("sh");
    std::fs::write(&local, "#!/bin/sh\n").unwrap();
    let other = temp_dir("unit");
    let overridden = other.path().join("custom");
    std::fs::write(&overridden, "#!/bin/sh\n").unwrap();

    let find = |env_value: Option<&Path>, dir: &Path| {
        locate_node_binary("sh", "SH_BIN", env_value.map(Into::into), dir)
    };
    assert_eq!(find(Some(&overridden), bin_dir.path()), overridden);
    assert_eq!(
        find(Some(Path::new("")), bin_dir.path()),
        local,
        "empty = unset"
    );
    assert_eq!(find(None, bin_dir.path()), local);
    assert_eq!(find(None, other.path()), find_binary("sh", "-"));
}

#[test]
fn the_workspace_npm_bin_dir_is_under_tools_node() {
    let dir = node_tools_bin_dir();
    assert!(
        dir.join("../../package.json").is_file(),
        "{} has no tools/node/package.json above it",
        dir.display()
    );
    assert!(dir.ends_with("tools/node/node_modules/.bin"));
}

#[test]
fn a_start_retries_on_a_new_port_when_its_port_is_taken() {
    // Someone else grabs the port between `free_port` and the server's bind.
    let squatter = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let picks = AtomicUsize::new(0);
    let redis = RedisServer::start_with(&[], || match picks.fetch_add(1, Ordering::SeqCst) {
        0 => taken,
        _ => free_port(),
    });
    assert_ne!(redis.port(), taken);
    assert_eq!(picks.load(Ordering::SeqCst), 2);
    // Each attempt has a fresh directory, so the log is the successful one's.
    let log = redis.log();
    assert!(log.contains(&format!("port={}", redis.port())), "{log}");
}

#[test]
fn answers_from_another_process_are_not_mistaken_for_readiness() {
    let squatter = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = squatter.local_addr().unwrap().port();
    assert!(owns_listener(std::process::id(), port));

    // A "server" that never binds, while the probe succeeds against the squatter.
    let dir = temp_dir("unit");
    let mut sleeper = Command::new("sleep");
    sleeper.arg("30");
    let err = ServerProcess::launch(&mut sleeper, &dir.path().join("log"), port, |_| true)
        .expect_err("the squatter's listener must not count as ready");
    assert!(matches!(err.failure, Failure::PortTaken), "{err:?}");
}

#[test]
fn an_early_exit_is_reported_with_the_log() {
    let dir = temp_dir("unit");
    let mut failing = Command::new("sh");
    failing.args(["-c", "echo bind failed: address in use >&2; exit 3"]);
    let err = ServerProcess::launch(&mut failing, &dir.path().join("log"), free_port(), |_| {
        false
    })
    .expect_err("the process exits");
    assert!(matches!(err.failure, Failure::Exited(_)), "{err:?}");
    assert!(
        err.log.contains("bind failed: address in use"),
        "{}",
        err.log
    );
}

#[test]
fn stop_kills_the_whole_process_tree() {
    let dir = temp_dir("unit");
    let pid_file = dir.path().join("grandchild.pid");
    let mut tree = Command::new("sh");
    tree.arg("-c")
        .arg(format!("sleep 60 & echo $! > {}; wait", pid_file.display()));
    let mut process = ServerProcess::spawn(&mut tree, &dir.path().join("log"));
    let grandchild = wait_for_pid_file(&pid_file);
    let child = process.pid().unwrap();
    assert!(running(child) && running(grandchild));

    process.stop();
    assert_eq!(process.pid(), None);
    assert!(!running(child), "sh {child} survived");
    // The orphaned sleep is reaped by init, so allow it a moment.
    for _ in 0..100 {
        if !running(grandchild) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("grandchild {grandchild} survived stop");
}

fn wait_for_pid_file(path: &Path) -> u32 {
    for _ in 0..250 {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never written", path.display());
}

#[test]
fn logs_are_kept_across_restarts_and_shown_whole_when_short() {
    let dir = temp_dir("unit");
    let log = dir.path().join("log");
    std::fs::File::create(&log)
        .unwrap()
        .write_all(b"first run\n")
        .unwrap();
    let mut echo = Command::new("sh");
    echo.args(["-c", "echo second run"]);
    let mut process = ServerProcess::spawn(&mut echo, &log);
    assert!(process.wait_exit(Duration::from_secs(5)).is_some());
    assert_eq!(process.log(), "first run\nsecond run\n");
}

#[test]
fn a_tls_server_speaks_only_tls_and_survives_a_restart() {
    let mut redis = RedisServer::start_tls();
    let port = redis.port();
    assert_eq!(
        redis.tls_url(),
        format!("rediss://127.0.0.1:{port}/#insecure")
    );
    assert!(redis.tls_cert_path().is_file());
    let tls_ping = || {
        Command::new(find_binary("redis-cli", "-"))
            .args([
                "--tls",
                "--insecure",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .arg("PING")
            .output()
            .expect("redis-cli")
            .stdout
    };
    assert_eq!(tls_ping().trim_ascii(), b"PONG");
    // The port is TLS-only: a plain-text PING gets no `+PONG`.
    assert!(!crate::redis::query(port, &["PING"]).is_ok_and(|r| r == "+PONG"));
    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(tls_ping().trim_ascii(), b"PONG");
    let pid = redis.pid().expect("running");
    drop(redis);
    assert!(!running(pid), "stopped on drop");
}

#[test]
fn the_oidc_provider_serves_discovery_and_rotates_its_key_on_restart() {
    let mut provider = crate::OidcProvider::start();
    let port = provider.port();
    let (status, discovery) =
        crate::http::request(port, "GET", "/.well-known/openid-configuration", &[], "")
            .expect("discovery");
    assert_eq!(status, 200);
    assert!(
        discovery.contains(&format!("\"issuer\":\"{}\"", provider.issuer())),
        "{discovery}"
    );
    let kid = |port| {
        let (_, jwks) = crate::http::request(port, "GET", "/jwks", &[], "").expect("jwks");
        let at = jwks.find("\"kid\":\"").expect("a kid") + 7;
        jwks[at..at + jwks[at..].find('"').expect("end")].to_owned()
    };
    let before = kid(port);
    provider.restart();
    assert_eq!(provider.port(), port);
    assert_ne!(kid(port), before, "a restart is a key rotation");
}

#[test]
fn a_cluster_behind_proxies_announces_the_proxies_and_a_black_hole_cuts_one_node() {
    let cluster = crate::RedisCluster::start_behind_proxies(3);
    let proxy_ports = cluster.client_ports();
    assert_ne!(proxy_ports, cluster.ports());
    // Clients are told the proxies' ports.
    let nodes = crate::redis::query(cluster.ports()[0], &["CLUSTER", "NODES"]).expect("nodes");
    for port in &proxy_ports {
        assert!(nodes.contains(&format!("127.0.0.1:{port}@")), "{nodes}");
    }
    cluster.proxies()[1].black_hole();
    let started = std::time::Instant::now();
    assert!(crate::redis::query(proxy_ports[0], &["PING"]).is_ok_and(|r| r == "+PONG"));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    cluster.proxies()[1].pass_through();
    assert!(crate::redis::query(proxy_ports[1], &["PING"]).is_ok_and(|r| r == "+PONG"));
}
