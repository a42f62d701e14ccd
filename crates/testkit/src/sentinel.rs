//! A Redis master, one replica and Redis Sentinels watching them, on
//! loopback, tuned to fail over within a couple of seconds.

use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{self, Launcher, Server, ServerProcess, find_binary, server_handle};
use crate::redis::{self, INSTALL, RedisServer};

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "mymaster";
/// A master unanswered this long is down for a sentinel.
const DOWN_AFTER_MS: u32 = 300;
/// Sentinel's `failover-timeout` (also the pause between two failovers of
/// the same master).
const FAILOVER_TIMEOUT_MS: u32 = 2000;
/// Bound on the replica's first sync and on the sentinels learning the
/// topology.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// One `redis-server --sentinel` process on a free loopback port.
///
/// Dropping it kills the process.
pub struct SentinelServer {
    server: Server,
}

server_handle!(SentinelServer {
    pid: "The sentinel's process id, or `None` while stopped.",
    stop: "Kills the sentinel and waits for it. Does nothing if already stopped.",
    restart: "Starts the sentinel again on the same port, with the state it \
              wrote to its configuration file.",
    debug: [],
});

/// A master, one replica of it, and `n` sentinels (quorum: a majority)
/// with `down-after-milliseconds` 300 and `failover-timeout` 2000, each a
/// process of its own on a free loopback port, no persistence.
///
/// Dropping it kills them all.
///
/// ```no_run
/// let mut topology = testkit::RedisSentinel::start(1);
/// let url = topology.url(); // redis+sentinel://127.0.0.1:P/mymaster
/// let old = topology.kill_master();
/// let new = topology.wait_for_failover(old, std::time::Duration::from_secs(15));
/// assert_ne!(old, new);
/// ```
pub struct RedisSentinel {
    /// The first master, then its replica.
    servers: Vec<RedisServer>,
    sentinels: Vec<SentinelServer>,
}

impl std::fmt::Debug for RedisSentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSentinel")
            .field("servers", &self.servers)
            .field("sentinels", &self.sentinels)
            .finish()
    }
}

impl RedisSentinel {
    /// Starts the master, its replica (waiting for its first sync), then
    /// `sentinels` sentinels, and waits until every sentinel knows the
    /// replica and the other sentinels.
    ///
    /// # Panics
    /// If `sentinels` is 0, `redis-server` or `redis-cli` is missing, or the
    /// topology does not settle within 20 s; the message has the logs.
    #[must_use]
    pub fn start(sentinels: usize) -> Self {
        assert!(sentinels > 0, "a Sentinel topology needs a sentinel");
        let master = RedisServer::start();
        let replica =
            RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &master.port().to_string()]);
        let mut topology = Self {
            servers: vec![master, replica],
            sentinels: Vec::new(),
        };
        topology.settle("the replica's first sync", |t| {
            t.info(t.servers[1].port())
                .contains("master_link_status:up")
        });
        let quorum = sentinels / 2 + 1;
        let master_port = topology.servers[0].port();
        let binary = find_binary("redis-server", INSTALL);
        for _ in 0..sentinels {
            let binary = binary.clone();
            let launch: Launcher =
                Box::new(move |port, dir| launch_sentinel(&binary, port, dir, master_port, quorum));
            topology.sentinels.push(SentinelServer {
                server: Server::start("redis-sentinel", crate::ports::free_port, launch),
            });
        }
        let replica_port = topology.servers[1].port().to_string();
        let others = (sentinels - 1).to_string();
        topology.settle("the sentinels learning the topology", |t| {
            t.sentinel_ports().into_iter().all(|port| {
                let replicas = cli(port, &["SENTINEL", "REPLICAS", MASTER_NAME]);
                let master = cli(port, &["SENTINEL", "MASTER", MASTER_NAME]);
                // The sentinel has the replica's own INFO (it promotes no
                // replica it has not heard from).
                let heard = field(&replicas, "info-refresh")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .is_some_and(|ms| ms < 5_000);
                replicas.lines().any(|l| l == replica_port)
                    && heard
                    && field(&replicas, "master-link-status") == Some("ok")
                    && field(&master, "num-other-sentinels") == Some(others.as_str())
            })
        });
        topology
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2/mymaster`.
    #[must_use]
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinel_ports()
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", sentinels.join(","))
    }

    /// The sentinels' ports.
    #[must_use]
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(SentinelServer::port).collect()
    }

    /// The data servers' ports: the first master, then its replica.
    #[must_use]
    pub fn server_ports(&self) -> Vec<u16> {
        self.servers.iter().map(RedisServer::port).collect()
    }

    /// The data servers, the first master first.
    #[must_use]
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// The port of the master, as the first sentinel that answers names it.
    #[must_use]
    pub fn master_port(&self) -> Option<u16> {
        self.sentinel_ports().into_iter().find_map(|port| {
            let reply = cli(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]);
            reply.lines().nth(1)?.trim().parse().ok()
        })
    }

    /// Kills the master the sentinels name (SIGKILL: no goodbye to its
    /// replica or clients) and returns its port.
    ///
    /// # Panics
    /// If no sentinel names a master among the servers.
    pub fn kill_master(&mut self) -> u16 {
        let port = self.master_port().expect("no sentinel names a master");
        let server = self
            .servers
            .iter_mut()
            .find(|s| s.port() == port)
            .unwrap_or_else(|| panic!("the master {port} is not one of ours"));
        server.stop();
        port
    }

    /// Asks the first sentinel for a failover (`SENTINEL FAILOVER`): the
    /// replica is promoted while the old master is still up, then demoted
    /// by the sentinel (which kills its clients' connections).
    ///
    /// # Panics
    /// If the sentinel refuses.
    pub fn failover(&self) {
        let port = self.sentinel_ports()[0];
        let reply = cli(port, &["SENTINEL", "FAILOVER", MASTER_NAME]);
        assert_eq!(reply.trim(), "OK", "SENTINEL FAILOVER on {port}");
    }

    /// Cuts every replica's link to its master, for good: the replica is
    /// given a wrong `masterauth` (so its reconnects fail the handshake)
    /// and its link is killed (`CLIENT KILL TYPE master`). From then on the
    /// master's writes reach no replica. Together with
    /// [`kill_master`](Self::kill_master) it makes a failover lose the
    /// writes made in between, as asynchronous replication can.
    ///
    /// # Panics
    /// If a replica refuses either command.
    pub fn cut_replication(&self) {
        let master = self.master_port();
        for server in &self.servers {
            if Some(server.port()) == master || server.pid().is_none() {
                continue;
            }
            for command in [
                &["CONFIG", "SET", "masterauth", "testkit-cut-replication"][..],
                &["CLIENT", "KILL", "TYPE", "master"][..],
            ] {
                let reply = redis::query(server.port(), command);
                assert!(
                    matches!(reply.as_deref(), Ok(r) if !r.starts_with('-')),
                    "{command:?} on replica {}: {reply:?}",
                    server.port()
                );
            }
        }
    }

    /// Waits until a sentinel names a master other than `old` and that
    /// server answers `ROLE` as a master; returns its port.
    ///
    /// # Panics
    /// If that takes longer than `timeout`; the message has the logs.
    #[must_use]
    pub fn wait_for_failover(&self, old: u16, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(port) = self.master_port().filter(|p| *p != old) {
                if cli(port, &["ROLE"]).lines().next() == Some("master") {
                    return port;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no failover from {old} within {timeout:?}\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one command to the server on `port` and returns its reply
    /// (simple replies and bulk strings only: `+OK`, `:3`, the payload, or
    /// an empty string for nil).
    ///
    /// # Errors
    /// If the server cannot be reached.
    pub fn query(port: u16, args: &[&str]) -> io::Result<String> {
        redis::query(port, args)
    }

    fn info(&self, port: u16) -> String {
        cli(port, &["INFO", "replication"])
    }

    fn settle(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "Sentinel topology: no {what} within {SETTLE_TIMEOUT:?}\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for server in &self.servers {
            out.push_str(&format!(
                "--- redis {} ---\n{}\n",
                server.port(),
                server.log()
            ));
        }
        for sentinel in &self.sentinels {
            out.push_str(&format!(
                "--- sentinel {} ---\n{}\n",
                sentinel.port(),
                sentinel.log()
            ));
        }
        out
    }
}

/// Writes the sentinel's configuration (once: a restart keeps what the
/// sentinel rewrote) and starts it.
fn launch_sentinel(
    binary: &Path,
    port: u16,
    dir: &Path,
    master_port: u16,
    quorum: usize,
) -> Result<ServerProcess, process::StartError> {
    let conf = dir.join("sentinel.conf");
    if !conf.exists() {
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n",
            dir = dir.display()
        );
        fs::write(&conf, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
    }
    let mut command = Command::new(binary);
    command.current_dir(dir).arg(&conf).arg("--sentinel");
    ServerProcess::launch(&mut command, &dir.join("sentinel.log"), port, |port| {
        redis::query(port, &["PING"]).is_ok_and(|reply| reply == "+PONG")
    })
}

/// `redis-cli -p PORT args...`'s output (empty if it fails).
fn cli(port: u16, args: &[&str]) -> String {
    let binary = find_binary("redis-cli", INSTALL);
    Command::new(binary)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// The value after the line `name` in a `redis-cli` listing of a map.
fn field<'a>(listing: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = listing.lines();
    while let Some(line) = lines.next() {
        if line == name {
            return lines.next();
        }
    }
    None
}
