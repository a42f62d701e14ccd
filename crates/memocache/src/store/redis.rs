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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, RedisError, Value};
use tokio::sync::OnceCell;

use super::{RemoteStore, bounded, store_error};
use crate::config::{RedisOptions, RedisUrl};
use crate::error::{Error, ErrorKind};

/// Replaces a lease with the loaded value, atomically, only if the lease is
/// still there (one key: runs on a cluster too).
const FILL: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
    if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) \
    else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return 1";

/// Keys per `SCAN` step and per `UNLINK` batch in [`RedisStore::clear`].
const SCAN_BATCH: usize = 1000;
/// How old a cluster's slot table may get before it is read again.
const SLOT_REFRESH: Duration = Duration::from_secs(10);
/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16_384;

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
}

/// Which master serves each slot, as this store last read it.
#[derive(Default)]
struct SlotTable {
    map: parking_lot::RwLock<Option<SlotMap>>,
    refreshing: AtomicBool,
}

struct SlotMap {
    read_at: Instant,
    /// `host:port` of each master.
    nodes: Vec<Arc<str>>,
    /// Index into `nodes` per slot; `u16::MAX` for a slot nobody serves.
    owner: Box<[u16]>,
}

impl SlotMap {
    /// From a `CLUSTER SLOTS` reply: `[[start, end, [host, port, ...], replicas...], ...]`.
    fn parse(reply: &Value, asked: &str) -> Option<Self> {
        let Value::Array(ranges) = reply else {
            return None;
        };
        let mut nodes: Vec<Arc<str>> = Vec::new();
        let mut owner = vec![u16::MAX; SLOTS].into_boxed_slice();
        for range in ranges {
            let Value::Array(fields) = range else {
                return None;
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return None;
            };
            let host = match master.first() {
                Some(Value::BulkString(host)) if !host.is_empty() => {
                    String::from_utf8_lossy(host).into_owned()
                }
                // An empty or missing host: the node we asked.
                _ => asked.to_owned(),
            };
            let Some(Value::Int(port)) = master.get(1) else {
                return None;
            };
            let name = format!("{host}:{port}");
            let index = match nodes.iter().position(|n| **n == *name) {
                Some(index) => index,
                None => {
                    nodes.push(Arc::from(name));
                    nodes.len() - 1
                }
            };
            let index = u16::try_from(index).ok()?;
            let start = usize::try_from(*start).ok()?;
            let end = usize::try_from(*end).ok()?;
            for slot in owner.get_mut(start..=end)? {
                *slot = index;
            }
        }
        Some(Self {
            read_at: Instant::now(),
            nodes,
            owner,
        })
    }

    fn node_of(&self, key: &[u8]) -> Option<Arc<str>> {
        let index = *self.owner.get(usize::from(key_slot(key)))?;
        self.nodes.get(usize::from(index)).cloned()
    }
}

/// The hash slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag
/// (the part between the first `{` and the next `}`, if not empty), modulo
/// 16384, as Redis Cluster computes it.
fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % 16_384
}

/// A connection of either kind, cheap to clone.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
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
                    .get_or_try_init(|| async {
                        let config = ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(self.timeout))
                            .set_response_timeout(Some(self.timeout))
                            .set_number_of_retries(0);
                        ConnectionManager::new_lazy_with_config(client.clone(), config)
                    })
                    .await
                    .map_err(|e| redis_error("cannot set up the Redis connection", e))?;
                Ok(Conn::Single(manager.clone()))
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
            Target::Single { .. } => self.timeout,
            Target::Cluster { .. } => self.timeout.saturating_mul(3),
        };
        bounded("connect", bound, self.conn()).await
    }

    /// Runs `cmd`, bounded by the timeout. A command that failed on a
    /// broken connection is sent once more: the connection is re-made by
    /// then, so the first call after a server restart already succeeds.
    async fn query<T: redis::FromRedisValue>(&self, what: &str, cmd: &Cmd) -> Result<T, Error> {
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

    /// Runs `pipe` as [`RedisStore::query`] runs a command.
    async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T, Error> {
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

/// Lines of `CLUSTER NODES` flagged `master` and not failed:
/// `<id> <ip:port@cport[,hostname]> <flags> ...`.
fn parse_masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _id = fields.next()?;
            let address = fields.next()?;
            let flags = fields.next()?;
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") || flags.contains(&"fail") {
                return None;
            }
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
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
        self.query("GET", redis::cmd("GET").arg(key)).await
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, Option<Duration>)>, Error> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (bytes, ttl_ms): (Option<Vec<u8>>, i64) = self.query_pipe("GET+PTTL", &pipe).await?;
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
        let mut eval = redis::cmd("EVAL");
        eval.arg(FILL)
            .arg(1)
            .arg(key)
            .arg(token)
            .arg(value)
            .arg(ttl_ms);
        let filled: i64 = self.query("EVAL", &eval).await?;
        Ok(filled == 1)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One MGET; a cluster client splits it by slot and reassembles.
        self.query("MGET", redis::cmd("MGET").arg(keys)).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        with_ttl(&mut cmd, ttl);
        self.query("SET", &cmd).await
    }

    async fn set_many(
        &self,
        pairs: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        if pairs.is_empty() {
            return Ok(());
        }
        let commands = pairs.iter().map(|(key, value)| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value);
            with_ttl(&mut cmd, ttl);
            cmd
        });
        match self.target {
            Target::Single { .. } => {
                let mut pipe = redis::pipe();
                for cmd in commands {
                    pipe.add_command(cmd).ignore();
                }
                self.query_pipe("SET (pipelined)", &pipe).await
            }
            // Cluster pipelines must stay in one slot: send the SETs
            // concurrently on the multiplexed connection instead.
            Target::Cluster { .. } => {
                let mut sets = tokio::task::JoinSet::new();
                for cmd in commands {
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
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX");
        with_ttl(&mut cmd, ttl);
        let reply: Option<String> = self.query("SET NX", &cmd).await?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> Result<bool, Error> {
        let removed: u64 = self.query("DEL", redis::cmd("DEL").arg(key)).await?;
        Ok(removed > 0)
    }

    async fn delete_many(&self, keys: &[String]) -> Result<usize, Error> {
        if keys.is_empty() {
            return Ok(0);
        }
        let removed: u64 = self.query("DEL", redis::cmd("DEL").arg(keys)).await?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    async fn has(&self, key: &str) -> Result<bool, Error> {
        let found: u64 = self.query("EXISTS", redis::cmd("EXISTS").arg(key)).await?;
        Ok(found > 0)
    }

    async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.query("INCRBY", redis::cmd("INCRBY").arg(key).arg(delta))
            .await
    }

    async fn ping(&self) -> Result<(), Error> {
        let mut conn = self.connection().await?;
        let Conn::Cluster(cluster) = &mut conn else {
            return self
                .query::<Value>("PING", &redis::cmd("PING"))
                .await
                .map(drop);
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
        let pattern = scan_pattern(prefix);
        let mut conn = self.connection().await?;
        match &mut conn {
            Conn::Single(_) => self.clear_node(&mut conn.clone(), None, &pattern).await,
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
        };
        s.field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_patterns_escape_globs() {
        assert_eq!(scan_pattern("app:"), "app:*");
        assert_eq!(scan_pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
        assert_eq!(scan_pattern(""), "*");
    }

    #[test]
    fn timeout_option_is_taken_off_the_url() {
        let store = RedisStore::open("redis://h:1/0?timeout_ms=250").expect("parse");
        assert_eq!(store.timeout, Duration::from_millis(250));
        let Target::Single { client, .. } = &store.target else {
            panic!("one server");
        };
        assert_eq!(client.get_connection_info().addr().to_string(), "h:1");
        let store = RedisStore::open("redis://h:1/?protocol=resp3").expect("parse");
        assert_eq!(store.options(), RedisOptions::default());
        assert!(RedisStore::open("redis://h/?timeout_ms=x").is_err());
        let (nodes, options) = split_cluster_nodes(&[
            "redis://a:1".to_owned(),
            "redis://b:2/?timeout_ms=30".to_owned(),
        ])
        .expect("parse");
        assert_eq!(nodes, ["redis://a:1", "redis://b:2/"]);
        assert_eq!(options.timeout, Duration::from_millis(30));
    }

    /// `timeout_ms` in a cache URL reaches the store built from it, and the
    /// Redis client gets a URL without it.
    #[test]
    fn url_options_reach_the_store() {
        for input in [
            "redis://127.0.0.1:1/0?timeout_ms=250&prefix=p:",
            "tiered+redis://127.0.0.1:1/0?timeout_ms=250&heartbeat_ms=300",
            "redis+cluster://127.0.0.1:1,127.0.0.1:2?timeout_ms=250",
        ] {
            let config = crate::CacheConfig::from_url(input).expect(input);
            let store = match &config.store {
                crate::StoreConfig::Tiered { l2, .. } => (**l2).clone(),
                other => other.clone(),
            };
            let store = match store {
                crate::StoreConfig::Redis { url, options } => {
                    assert_eq!(url, "redis://127.0.0.1:1/0", "{input}");
                    RedisStore::with_options(&url, options)
                }
                crate::StoreConfig::RedisCluster { nodes, options } => {
                    assert!(nodes.iter().all(|n| !n.contains('?')), "{nodes:?}");
                    RedisStore::cluster_with_options(&nodes, options)
                }
                other => panic!("{input}: {other:?}"),
            }
            .expect(input);
            assert_eq!(store.timeout, Duration::from_millis(250), "{input}");
        }
    }

    #[test]
    fn key_slots_follow_redis_cluster() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(key_slot(b"bar"), 5_061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(
            key_slot(b"{}x"),
            crc16::State::<crc16::XMODEM>::calculate(b"{}x") % 16_384
        );
    }

    #[test]
    fn slot_maps_are_read_from_cluster_slots() {
        let range = |start: i64, end: i64, port: i64, host: &str| {
            Value::Array(vec![
                Value::Int(start),
                Value::Int(end),
                Value::Array(vec![
                    Value::BulkString(host.as_bytes().to_vec()),
                    Value::Int(port),
                ]),
            ])
        };
        let reply = Value::Array(vec![
            range(0, 8_000, 7000, "10.0.0.1"),
            range(8_001, 16_383, 7001, ""),
        ]);
        let map = SlotMap::parse(&reply, "127.0.0.1").expect("parses");
        assert_eq!(map.node_of(b"bar").as_deref(), Some("10.0.0.1:7000"));
        assert_eq!(map.node_of(b"foo").as_deref(), Some("127.0.0.1:7001"));
        assert!(SlotMap::parse(&Value::Int(1), "h").is_none());
        let gap = Value::Array(vec![range(0, 10, 7000, "h")]);
        let map = SlotMap::parse(&gap, "h").expect("parses");
        assert_eq!(map.node_of(b"foo"), None, "a slot nobody serves");
    }

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let nodes = "a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                     b 127.0.0.1:7001@17001,host master - 0 0 2 connected 5461-10922\n\
                     c 127.0.0.1:7002@17002 slave a 0 0 3 connected\n\
                     d 127.0.0.1:7003@17003 master,fail - 0 0 4 disconnected\n";
        assert_eq!(
            parse_masters(nodes),
            [
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001)
            ]
        );
    }
}
