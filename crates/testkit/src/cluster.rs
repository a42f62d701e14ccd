//! A Redis Cluster of N masters on loopback, created with
//! `redis-cli --cluster create`.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::ports;
use crate::process::{find_binary, run_to_completion};
use crate::proxy::FaultProxy;
use crate::redis::{self, INSTALL, RedisServer};

/// Settings every cluster node starts with.
const NODE_ARGS: [&str; 6] = [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "5000",
];
/// A node's cluster bus listens on its port + 10000.
const BUS_PORT_OFFSET: u16 = 10_000;
/// Bound on `redis-cli --cluster create` (it waits for the nodes to join).
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on every node reporting `cluster_state:ok` after creation.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A Redis Cluster of masters only (no replicas), each a [`RedisServer`]
/// with its own port, cluster bus port (`port + 10000`) and directory.
///
/// Dropping it kills every node.
///
/// ```no_run
/// let cluster = testkit::RedisCluster::start(3);
/// assert!(cluster.url().starts_with("redis+cluster://127.0.0.1:"));
/// ```
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// One per node when started with [`RedisCluster::start_behind_proxies`].
    proxies: Vec<FaultProxy>,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field("ports", &self.ports())
            .field("proxy_ports", &self.client_ports())
            .finish()
    }
}

impl RedisCluster {
    /// Starts `masters` nodes, joins them into one cluster covering all
    /// 16384 slots and waits until every node reports `cluster_state:ok`
    /// and knows every other node.
    ///
    /// # Panics
    ///
    /// If `masters < 3` (the minimum `redis-cli --cluster create` accepts),
    /// if `redis-server` or `redis-cli` is missing, or if the cluster does not
    /// form within 30 s; the message includes the logs.
    #[must_use]
    pub fn start(masters: usize) -> Self {
        Self::start_inner(masters, false)
    }

    /// Starts a cluster as [`RedisCluster::start`] does, each node behind a
    /// [`FaultProxy`] whose port the node announces to clients
    /// (`cluster-announce-port`; the cluster bus stays direct, so the
    /// nodes keep seeing each other). Clients learn the proxies' addresses
    /// from `CLUSTER SLOTS`, so [`FaultProxy::black_hole`] on
    /// [`RedisCluster::proxies`]`[i]` silently partitions node `i` from
    /// every client while the cluster itself stays healthy.
    ///
    /// ```no_run
    /// let cluster = testkit::RedisCluster::start_behind_proxies(3);
    /// cluster.proxies()[1].black_hole(); // node 1 answers no client
    /// cluster.proxies()[1].pass_through(); // healed
    /// ```
    ///
    /// # Panics
    /// As [`RedisCluster::start`].
    #[must_use]
    pub fn start_behind_proxies(masters: usize) -> Self {
        Self::start_inner(masters, true)
    }

    fn start_inner(masters: usize, proxied: bool) -> Self {
        assert!(
            masters >= 3,
            "a Redis Cluster needs at least 3 masters, got {masters}"
        );
        let redis_cli = find_binary("redis-cli", INSTALL);
        let nodes = (0..masters)
            .map(|_| RedisServer::start_with(&NODE_ARGS, cluster_port))
            .collect::<Vec<RedisServer>>();
        let mut proxies = Vec::new();
        if proxied {
            for node in &nodes {
                let proxy = FaultProxy::start(node.port());
                let bus_port = node.port() + BUS_PORT_OFFSET;
                for (name, value) in [
                    ("cluster-announce-port", proxy.port()),
                    ("cluster-announce-bus-port", bus_port),
                ] {
                    let reply =
                        redis::query(node.port(), &["CONFIG", "SET", name, &value.to_string()]);
                    assert!(
                        matches!(reply.as_deref(), Ok("+OK")),
                        "CONFIG SET {name} {value} on node {}: {reply:?}\n{}",
                        node.port(),
                        node.log()
                    );
                }
                proxies.push(proxy);
            }
        }
        let cluster = Self { nodes, proxies };

        let mut create = Command::new(redis_cli);
        create
            .args(["--cluster", "create"])
            .args(
                cluster
                    .ports()
                    .iter()
                    .map(|port| format!("127.0.0.1:{port}")),
            )
            .args(["--cluster-replicas", "0", "--cluster-yes"]);
        let log = cluster.nodes[0].dir().join("cluster-create.log");
        run_to_completion(&mut create, &log, CREATE_TIMEOUT);

        cluster.wait_until_ok();
        cluster
    }

    /// The nodes' TCP ports, in creation order.
    #[must_use]
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The ports clients use: the proxies' when started behind proxies,
    /// else the nodes'.
    #[must_use]
    pub fn client_ports(&self) -> Vec<u16> {
        if self.proxies.is_empty() {
            self.ports()
        } else {
            self.proxies.iter().map(FaultProxy::port).collect()
        }
    }

    /// The proxy in front of each node, in node order (empty unless
    /// started with [`RedisCluster::start_behind_proxies`]).
    #[must_use]
    pub fn proxies(&self) -> &[FaultProxy] {
        &self.proxies
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...` (through the proxies
    /// when there are some).
    #[must_use]
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .client_ports()
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// One `redis://127.0.0.1:P/` URL per node.
    #[must_use]
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, in creation order.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, to stop or restart one (it rejoins from its `nodes.conf`).
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// The index of the node that serves `key` (its slot's master): the
    /// one that answers `EXISTS key` without a `MOVED` redirect.
    ///
    /// ```no_run
    /// let cluster = testkit::RedisCluster::start(3);
    /// assert!(cluster.node_of_key("user:1") < 3);
    /// ```
    ///
    /// # Panics
    /// If no node claims the key (a node is down, or the cluster is not ok).
    #[must_use]
    pub fn node_of_key(&self, key: &str) -> usize {
        let replies: Vec<_> = self
            .ports()
            .into_iter()
            .map(|port| redis::query(port, &["EXISTS", key]))
            .collect();
        replies
            .iter()
            .position(|reply| reply.as_ref().is_ok_and(|r| r.starts_with(':')))
            .unwrap_or_else(|| panic!("no node serves {key:?}: {replies:?}"))
    }

    /// Stops every node (their data is lost: nodes keep no snapshot).
    pub fn stop_all(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }

    /// Restarts every node on its port; they rejoin from their
    /// `nodes.conf`, empty. Returns once the cluster reports
    /// `cluster_state:ok` on every node again.
    ///
    /// ```no_run
    /// let mut cluster = testkit::RedisCluster::start(3);
    /// cluster.stop_all();
    /// cluster.restart_all();
    /// ```
    ///
    /// # Panics
    /// If a node does not start, or the cluster is not ok within 30 s.
    pub fn restart_all(&mut self) {
        for node in &mut self.nodes {
            node.restart();
        }
        self.wait_until_ok();
    }

    /// Polls `CLUSTER INFO` on every node until all report a healthy cluster
    /// that knows every node; panics with the last answers and logs.
    fn wait_until_ok(&self) {
        let expected_nodes = format!("cluster_known_nodes:{}", self.nodes.len());
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let infos: Vec<String> = self
                .ports()
                .into_iter()
                .map(|port| {
                    redis::query(port, &["CLUSTER", "INFO"]).unwrap_or_else(|e| format!("<{e}>"))
                })
                .collect();
            let healthy = |info: &String| {
                info.lines().any(|l| l.trim() == "cluster_state:ok")
                    && info.lines().any(|l| l.trim() == expected_nodes)
            };
            if infos.iter().all(healthy) {
                return;
            }
            if Instant::now() >= deadline {
                let mut report = String::new();
                for (node, info) in self.nodes.iter().zip(&infos) {
                    report.push_str(&format!(
                        "--- node {} CLUSTER INFO ---\n{info}\n--- node {} log ---\n{}\n",
                        node.port(),
                        node.port(),
                        node.log()
                    ));
                }
                panic!("Redis Cluster not ok after {CONVERGE_TIMEOUT:?}\n{report}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A free port whose cluster bus port (`port + 10000`) is free as well.
fn cluster_port() -> u16 {
    ports::free_port_where(|port| {
        port.checked_add(BUS_PORT_OFFSET)
            .is_some_and(ports::port_is_free)
    })
}
