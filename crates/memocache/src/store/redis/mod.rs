//! Redis and Redis Cluster.
//!
//! One multiplexed connection per store ([`ConnectionManager`] for a single
//! node, [`ClusterConnection`] for a cluster), created on first use and
//! re-created on its own after a failure. Every command is bounded by the
//! response timeout (`?timeout_ms=`, default 1000), so a dead server costs
//! at most that long per call.
//!
//! On a cluster the store keeps its own copy of the slot table
//! (`CLUSTER SLOTS`, read when the connection is made and again at most
//! every [`SLOT_REFRESH`], in the background), only to name the node that
//! serves a key ([`RemoteStore::node_of`]) so that each node has a breaker
//! of its own; the cluster client still routes every command itself, and
//! follows `MOVED` on its own. Until the next refresh after a resharding,
//! a key of a moved slot is charged to its old node's breaker.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, RedisError, Value};
use tokio::sync::OnceCell;

use super::{RemoteStore, bounded, store_error};
use crate::redis_conn::{self, Conn};

mod sentinel;
mod slots;

use crate::config::{RedisOptions, RedisUrl};
use crate::error::{Error, ErrorKind};
use crate::redis_sentinel::Sentinels;
use sentinel::Names;
#[cfg(test)]
use slots::key_slot;
use slots::{SLOT_REFRESH, SlotMap, SlotTable, parse_masters};

/// Replaces a lease with the loaded value, atomically, only if the lease is
/// still there (one key: runs on a cluster too).
const FILL: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
    if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) \
    else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return 1";

/// Keys per `SCAN` step and per `UNLINK` batch in [`RedisStore::clear`].
const SCAN_BATCH: usize = 1000;
/// A Redis server or cluster as a [`RemoteStore`].
///
/// Values are kept with `SET ... PX` (server-side expiry), `add` is
/// `SET NX`, `incr` is `INCRBY`, `get_many`/`set_many` are one round trip
/// (`MGET` / a pipeline), and `clear` walks the prefix with `SCAN` and
/// `UNLINK`s what it finds (every master of a cluster), never `FLUSHDB`.
///
/// ```
/// use std::sync::Arc;
/// use memocache::{Cache, CacheConfig, store::RedisStore};
/// let store = RedisStore::open("redis://127.0.0.1:6379/0?timeout_ms=250")?;
/// let cache = Cache::with_store(CacheConfig::default().key_prefix("app:"), Arc::new(store));
/// # Ok::<(), memocache::Error>(())
/// ```
pub struct RedisStore {
    target: Target,
    timeout: Duration,
}

enum Target {
    Single {
        client: redis::Client,
        manager: OnceCell<ConnectionManager>,
    },
    Cluster {
        client: ClusterClient,
        nodes: Vec<String>,
        connection: OnceCell<ClusterConnection>,
        slots: Arc<SlotTable>,
    },
    /// The master Sentinel names (see [`RedisStore::open_sentinel`]).
    Sentinel {
        sentinels: Arc<Sentinels>,
        /// The cache's key prefix: the history tag goes after it.
        prefix: String,
    },
}

impl RedisStore {
    /// A store on one Redis server: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://...` for TLS (the server's certificate is checked against
    /// the system's trusted roots; a `#insecure` fragment skips that check,
    /// for self-signed test servers only), `redis+unix:///path/to/socket`
    /// (or `unix://`), with an optional `?timeout_ms=` bounding every
    /// command, TLS handshake included. Does not connect yet.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a URL the Redis client rejects.
    ///
    /// ```
    /// use memocache::store::RedisStore;
    /// let store = RedisStore::open("redis+unix:///run/redis.sock")?;
    /// assert!(RedisStore::open("redis://127.0.0.1/?timeout_ms=soon").is_err());
    /// # drop(store);
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn open(url: &str) -> Result<Self, Error> {
        let RedisUrl { url, options, .. } = RedisUrl::parse(url)?;
        Self::with_options(&url, options)
    }

    /// A store on one Redis server at `url` (as [`RedisStore::open`] takes
    /// it, without memocache's own query options), with `options`: what
    /// [`Cache::from_url`](crate::Cache::from_url) builds from a
    /// [`StoreConfig::Redis`](crate::StoreConfig::Redis). Does not connect
    /// yet.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a URL the Redis client rejects.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memocache::{RedisOptions, store::RedisStore};
    /// let options = RedisOptions::default().timeout(Duration::from_millis(250));
    /// let store = RedisStore::with_options("redis://127.0.0.1:6379/0", options)?;
    /// assert_eq!(store.options(), options);
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn with_options(url: &str, options: RedisOptions) -> Result<Self, Error> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::config(format!("invalid Redis URL `{url}`: {e}")))?;
        Ok(Self {
            target: Target::Single {
                client,
                manager: OnceCell::new(),
            },
            timeout: options.timeout,
        })
    }

    /// A store on a Redis Cluster, given some of its nodes as
    /// `redis://host:port` URLs, or `rediss://host:port` for TLS (the first
    /// node's scheme and `#insecure` fragment set it for every node the
    /// cluster reports). A `?timeout_ms=` on a node (the first that has
    /// one) bounds every command. Does not connect yet.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for bad node URLs.
    ///
    /// ```
    /// let nodes = ["redis://127.0.0.1:7000".to_owned(), "redis://127.0.0.1:7001".to_owned()];
    /// let store = memocache::store::RedisStore::open_cluster(&nodes)?;
    /// # drop(store);
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn open_cluster(nodes: &[String]) -> Result<Self, Error> {
        let (nodes, options) = split_cluster_nodes(nodes)?;
        Self::cluster_with_options(&nodes, options)
    }

    /// A store on a Redis Cluster, given some of its nodes as URLs without
    /// memocache's own query options, with `options`: what
    /// [`Cache::from_url`](crate::Cache::from_url) builds from a
    /// [`StoreConfig::RedisCluster`](crate::StoreConfig::RedisCluster).
    /// Does not connect yet.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for bad node URLs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memocache::{RedisOptions, store::RedisStore};
    /// let nodes = ["redis://127.0.0.1:7000".to_owned(), "redis://127.0.0.1:7001".to_owned()];
    /// let options = RedisOptions::default().timeout(Duration::from_millis(250));
    /// let store = RedisStore::cluster_with_options(&nodes, options)?;
    /// assert_eq!(store.options().timeout, Duration::from_millis(250));
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn cluster_with_options(nodes: &[String], options: RedisOptions) -> Result<Self, Error> {
        let timeout = options.timeout;
        let client = ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1)
            .build()
            .map_err(|e| Error::config(format!("invalid Redis Cluster nodes {nodes:?}: {e}")))?;
        Ok(Self {
            target: Target::Cluster {
                client,
                nodes: nodes.to_vec(),
                connection: OnceCell::new(),
                slots: Arc::default(),
            },
            timeout,
        })
    }

    /// The options the store was built with.
    ///
    /// ```
    /// use std::time::Duration;
    /// let store = memocache::store::RedisStore::open("redis://127.0.0.1/?timeout_ms=40")?;
    /// assert_eq!(store.options().timeout, Duration::from_millis(40));
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn options(&self) -> RedisOptions {
        RedisOptions::default().timeout(self.timeout)
    }

    /// The connection, made on first use; a failed attempt is retried on
    /// the next call.
    async fn conn(&self) -> Result<Conn, Error> {
        match &self.target {
            Target::Single { client, manager } => {
                let manager = manager
                    .get_or_try_init(|| async { redis_conn::manager(client, self.timeout, 0) })
                    .await
                    .map_err(|e| redis_error("cannot set up the Redis connection", e))?;
                Ok(Conn::Manager(manager.clone()))
            }
            Target::Cluster {
                client,
                connection,
                slots,
                ..
            } => {
                let connection = connection
                    .get_or_try_init(|| async {
                        let connection = client.get_async_connection().await?;
                        self.refresh_slots(&connection, slots);
                        Ok::<_, RedisError>(connection)
                    })
                    .await
                    .map_err(|e| redis_error("cannot connect to the Redis Cluster", e))?;
                Ok(Conn::Cluster(connection.clone()))
            }
            Target::Sentinel { sentinels, .. } => {
                sentinels.master().await.map(|m| Conn::Multiplexed(m.conn))
            }
        }
    }

    /// Reads `CLUSTER SLOTS` again in the background, unless a read is
    /// under way or there is no Tokio runtime.
    fn refresh_slots(&self, connection: &ClusterConnection, slots: &Arc<SlotTable>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if slots.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (mut connection, slots, timeout) =
            (connection.clone(), Arc::clone(slots), self.timeout);
        runtime.spawn(async move {
            let read = tokio::time::timeout(
                timeout,
                connection.route_command(
                    redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                ),
            )
            .await;
            match read {
                Ok(Ok(reply)) => match SlotMap::parse(&reply, "127.0.0.1") {
                    Some(map) => *slots.map.write() = Some(map),
                    None => tracing::warn!(?reply, "unreadable CLUSTER SLOTS reply"),
                },
                // The next call after the refresh interval tries again.
                _ => {
                    if let Some(map) = slots.map.write().as_mut() {
                        map.read_at = Instant::now();
                    }
                }
            }
            slots.refreshing.store(false, Ordering::Release);
        });
    }

    /// The connection, bounded: by the command timeout on one server (the
    /// connection manager connects lazily), by three on a cluster, whose
    /// first connection meets every node and the slot table (a black-holed
    /// node costs one connection timeout there, and the connection is made
    /// without it).
    async fn connection(&self) -> Result<Conn, Error> {
        let bound = match self.target {
            Target::Single { .. } | Target::Sentinel { .. } => self.timeout,
            Target::Cluster { .. } => self.timeout.saturating_mul(3),
        };
        bounded("connect", bound, self.conn()).await
    }

    /// Runs the command `build` makes, bounded by the timeout. A command
    /// that failed on a broken connection is sent once more: the
    /// connection is re-made by then, so the first call after a server
    /// restart already succeeds. Under Sentinel, see
    /// [`RedisStore::sentinel_query`].
    async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        build: impl Fn(&Names<'_>) -> Cmd + Send + Sync,
    ) -> Result<T, Error> {
        if let Target::Sentinel { sentinels, prefix } = &self.target {
            return self
                .sentinel_query(what, sentinels, prefix, |names, conn| {
                    let cmd = build(names);
                    let mut conn = conn;
                    async move { cmd.query_async(&mut conn).await }
                })
                .await;
        }
        let cmd = build(&Names::PLAIN);
        let mut conn = self.connection().await?;
        bounded(what, self.timeout, async {
            let result = match cmd.query_async(&mut conn).await {
                Err(e) if is_connection_fault(&e) => cmd.query_async(&mut conn).await,
                other => other,
            };
            result.map_err(|e| redis_error(what, e))
        })
        .await
    }

    /// Runs the pipeline `build` makes as [`RedisStore::query`] runs a
    /// command.
    async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        what: &str,
        build: impl Fn(&Names<'_>) -> redis::Pipeline + Send + Sync,
    ) -> Result<T, Error> {
        if let Target::Sentinel { sentinels, prefix } = &self.target {
            return self
                .sentinel_query(what, sentinels, prefix, |names, conn| {
                    let pipe = build(names);
                    let mut conn = conn;
                    async move { pipe.query_async(&mut conn).await }
                })
                .await;
        }
        let pipe = build(&Names::PLAIN);
        let mut conn = self.connection().await?;
        bounded(what, self.timeout, async {
            let result = match pipe.query_async(&mut conn).await {
                Err(e) if is_connection_fault(&e) => pipe.query_async(&mut conn).await,
                other => other,
            };
            result.map_err(|e| redis_error(what, e))
        })
        .await
    }

    /// `host:port` of every master of the cluster.
    async fn masters(&self, conn: &mut ClusterConnection) -> Result<Vec<(String, u16)>, Error> {
        let nodes: String = bounded("CLUSTER NODES", self.timeout, async {
            conn.route_command(
                redis::cmd("CLUSTER").arg("NODES").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .and_then(|v| redis::from_redis_value(v).map_err(RedisError::from))
            .map_err(|e| redis_error("CLUSTER NODES", e))
        })
        .await?;
        let masters = parse_masters(&nodes);
        if masters.is_empty() {
            return Err(Error::new(
                ErrorKind::Store,
                format!("CLUSTER NODES lists no reachable master: {nodes:?}"),
            ));
        }
        Ok(masters)
    }

    /// `SCAN`s one node (or the single server) for `pattern` and unlinks
    /// what it finds, batch by batch.
    async fn clear_node(
        &self,
        conn: &mut Conn,
        node: Option<&(String, u16)>,
        pattern: &str,
    ) -> Result<(), Error> {
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, keys): (u64, Vec<Vec<u8>>) = bounded("SCAN", self.timeout, async {
                let reply = match (&mut *conn, node) {
                    (Conn::Cluster(c), Some((host, port))) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        c.route_command(scan, routing).await
                    }
                    (conn, _) => scan.query_async::<Value>(conn).await,
                };
                reply
                    .and_then(|v| redis::from_redis_value(v).map_err(RedisError::from))
                    .map_err(|e| redis_error("SCAN", e))
            })
            .await?;
            if !keys.is_empty() {
                // One UNLINK; a cluster client splits it by slot.
                let _: u64 = bounded("UNLINK", self.timeout, async {
                    redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async(&mut *conn)
                        .await
                        .map_err(|e| redis_error("UNLINK", e))
                })
                .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// Takes memocache's options off every node URL of a cluster (the first
/// node that has `timeout_ms` sets the bound).
pub(crate) fn split_cluster_nodes(nodes: &[String]) -> Result<(Vec<String>, RedisOptions), Error> {
    let mut options = None;
    let mut plain = Vec::with_capacity(nodes.len());
    for node in nodes {
        let parsed = RedisUrl::parse(node)?;
        if node.contains("timeout_ms=") {
            options.get_or_insert(parsed.options);
        }
        plain.push(parsed.url);
    }
    Ok((plain, options.unwrap_or_default()))
}

/// Escapes the glob characters of `prefix` for `SCAN MATCH`.
fn scan_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

fn is_connection_fault(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
}

fn redis_error(what: &str, error: RedisError) -> Error {
    if error.code() == Some("ERR")
        && error
            .detail()
            .is_some_and(|d| d.contains("not an integer") || d.contains("overflow"))
    {
        return Error::new(
            ErrorKind::NotANumber,
            format!("{what}: the key holds a value that is not an integer"),
        )
        .with_source(error);
    }
    let timed_out = error.is_timeout();
    let error = store_error(format!("Redis {what} failed"), error);
    if timed_out { error.timed_out() } else { error }
}

/// `SET`'s expiry arguments for `ttl`.
fn with_ttl(cmd: &mut Cmd, ttl: Option<Duration>) {
    if let Some(ttl) = ttl {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        cmd.arg("PX").arg(ms);
    }
}

#[async_trait]
impl RemoteStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.query("GET", |n| {
            let mut cmd = redis::cmd("GET");
            cmd.arg(n.key(key));
            cmd
        })
        .await
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, Option<Duration>)>, Error> {
        let (bytes, ttl_ms): (Option<Vec<u8>>, i64) = self
            .query_pipe("GET+PTTL", |n| {
                let key = n.key(key);
                let mut pipe = redis::pipe();
                pipe.cmd("GET").arg(&*key).cmd("PTTL").arg(&*key);
                pipe
            })
            .await?;
        // PTTL: -1 no expiry, -2 no key (gone between the two: still ours).
        let ttl = u64::try_from(ttl_ms).ok().map(Duration::from_millis);
        Ok(bytes.map(|bytes| (bytes, ttl)))
    }

    async fn fill(
        &self,
        key: &str,
        token: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        let ttl_ms = ttl.map_or(0, |t| {
            u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let filled: i64 = self
            .query("EVAL", |n| {
                let mut eval = redis::cmd("EVAL");
                eval.arg(FILL)
                    .arg(1)
                    .arg(n.key(key))
                    .arg(token)
                    .arg(value)
                    .arg(ttl_ms);
                eval
            })
            .await?;
        Ok(filled == 1)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One MGET; a cluster client splits it by slot and reassembles.
        self.query("MGET", |n| {
            let mut cmd = redis::cmd("MGET");
            for key in keys {
                cmd.arg(n.key(key));
            }
            cmd
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        self.query("SET", |n| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(n.key(key)).arg(value);
            with_ttl(&mut cmd, ttl);
            cmd
        })
        .await
    }

    async fn set_many(
        &self,
        pairs: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        if pairs.is_empty() {
            return Ok(());
        }
        let commands = |n: &Names<'_>| {
            pairs
                .iter()
                .map(|(key, value)| {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(n.key(key)).arg(value);
                    with_ttl(&mut cmd, ttl);
                    cmd
                })
                .collect::<Vec<_>>()
        };
        match self.target {
            Target::Single { .. } | Target::Sentinel { .. } => {
                self.query_pipe("SET (pipelined)", |n| {
                    let mut pipe = redis::pipe();
                    for cmd in commands(n) {
                        pipe.add_command(cmd).ignore();
                    }
                    pipe
                })
                .await
            }
            // Cluster pipelines must stay in one slot: send the SETs
            // concurrently on the multiplexed connection instead.
            Target::Cluster { .. } => {
                let mut sets = tokio::task::JoinSet::new();
                for cmd in commands(&Names::PLAIN) {
                    let mut conn = self.connection().await?;
                    sets.spawn(async move { cmd.query_async::<()>(&mut conn).await });
                }
                bounded("SET (concurrent)", self.timeout, async {
                    while let Some(done) = sets.join_next().await {
                        done.map_err(|e| store_error("Redis SET task failed", e))?
                            .map_err(|e| redis_error("SET", e))?;
                    }
                    Ok(())
                })
                .await
            }
        }
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, Error> {
        let reply: Option<String> = self
            .query("SET NX", |n| {
                let mut cmd = redis::cmd("SET");
                cmd.arg(n.key(key)).arg(value).arg("NX");
                with_ttl(&mut cmd, ttl);
                cmd
            })
            .await?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> Result<bool, Error> {
        let removed: u64 = self.query("DEL", |n| n.command("DEL", &[key])).await?;
        Ok(removed > 0)
    }

    async fn delete_many(&self, keys: &[String]) -> Result<usize, Error> {
        if keys.is_empty() {
            return Ok(0);
        }
        let removed: u64 = self.query("DEL", |n| n.command("DEL", keys)).await?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    async fn has(&self, key: &str) -> Result<bool, Error> {
        let found: u64 = self
            .query("EXISTS", |n| n.command("EXISTS", &[key]))
            .await?;
        Ok(found > 0)
    }

    async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.query("INCRBY", |n| {
            let mut cmd = n.command("INCRBY", &[key]);
            cmd.arg(delta);
            cmd
        })
        .await
    }

    async fn ping(&self) -> Result<(), Error> {
        if !matches!(self.target, Target::Cluster { .. }) {
            return self
                .query::<Value>("PING", |_| redis::cmd("PING"))
                .await
                .map(drop);
        }
        let mut conn = self.connection().await?;
        let Conn::Cluster(cluster) = &mut conn else {
            return Ok(());
        };
        // One node, any: a PING to every node would fail while one is cut
        // off, which its own breaker covers.
        bounded("PING", self.timeout, async {
            cluster
                .route_command(
                    redis::cmd("PING"),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await
                .map(drop)
                .map_err(|e| redis_error("PING", e))
        })
        .await
    }

    fn node_of(&self, key: &str) -> Option<Arc<str>> {
        let Target::Cluster {
            slots, connection, ..
        } = &self.target
        else {
            return None;
        };
        let (node, stale) = {
            let map = slots.map.read();
            let map = map.as_ref()?;
            (
                map.node_of(key.as_bytes()),
                map.read_at.elapsed() >= SLOT_REFRESH,
            )
        };
        if stale {
            if let Some(connection) = connection.get() {
                self.refresh_slots(connection, slots);
            }
        }
        node
    }

    async fn ping_node(&self, node: &str) -> Result<(), Error> {
        let Some((host, port)) = node
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
        else {
            return self.ping().await;
        };
        let mut conn = self.connection().await?;
        let Conn::Cluster(cluster) = &mut conn else {
            return self.ping().await;
        };
        bounded("PING", self.timeout, async {
            cluster
                .route_command(
                    redis::cmd("PING"),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
                )
                .await
                .map(drop)
                .map_err(|e| redis_error("PING", e))
        })
        .await
    }

    async fn clear(&self, prefix: &str) -> Result<(), Error> {
        if let Target::Sentinel {
            sentinels,
            prefix: own,
        } = &self.target
        {
            return self.sentinel_clear(sentinels, own, prefix).await;
        }
        let pattern = scan_pattern(prefix);
        let mut conn = self.connection().await?;
        match &mut conn {
            Conn::Manager(_) | Conn::Multiplexed(_) => {
                self.clear_node(&mut conn.clone(), None, &pattern).await
            }
            Conn::Cluster(cluster) => {
                let masters = self.masters(cluster).await?;
                for master in &masters {
                    self.clear_node(&mut conn.clone(), Some(master), &pattern)
                        .await?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("RedisStore");
        match &self.target {
            Target::Single { client, .. } => s.field("server", &client.get_connection_info()),
            Target::Cluster { nodes, .. } => s.field("cluster", nodes),
            Target::Sentinel { sentinels, .. } => {
                s.field("sentinel_master", &sentinels.master_name())
            }
        };
        s.field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
