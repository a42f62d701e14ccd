//! The invalidation bus over Redis Streams, on one server or on one slot
//! of a Redis Cluster (every key of the bus carries the hash tag
//! `{memocache}`, so one node holds and orders them all).
//!
//! - Every invalidation is an entry of the stream `{prefix}memocache:bus`
//!   (`XADD ... MAXLEN ~ 100000`); its id is the sequence number.
//! - Each process reads the stream from its last id with `XREAD BLOCK` on a
//!   connection of its own, applies other processes' entries to its L1,
//!   then acknowledges by setting `{prefix}memocache:member:{id}` to the
//!   last id it applied, with an expiry of one heartbeat: the key is both
//!   its acknowledgement and its liveness.
//! - Each read that completes renews the process's trust in its L1 until
//!   the time the read was *sent* plus one heartbeat.
//! - After a lost connection the process reads on from its last id
//!   (replay); if the stream lost entries it had not read (trimmed, or Redis
//!   restarted empty), it clears its L1 instead.
//! - `publish` adds the entry, then waits until every live member's
//!   acknowledgement reaches its id, or one heartbeat after the entry was
//!   added, whichever comes first.
//! - Under Redis Sentinel the bus follows the master the sentinels name:
//!   a failed command drops it, and each reconnect of the reader asks them
//!   again. A reader that reconnects to a master of another replication
//!   history (a failover: the promoted replica may lack the last entries
//!   and acknowledgements) clears its L1 and reads on from the new
//!   master's newest entry.
//! - A breaker (see [`crate::breaker`]) opens when a bus command times out:
//!   until the reader completes a read again, `publish` queues its entry
//!   at once instead of waiting out a timeout per call, and the reader
//!   sends the queue first thing after that read. The reader's reconnects
//!   (backing off up to half a heartbeat) are the breaker's probes. Dropped
//!   or refused connections do not open it: they fail fast on their own,
//!   and a bus that is reachable must not be skipped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::cluster::ClusterClient;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Value};
use tokio::sync::OnceCell;

use super::{Bus, BusSink, Invalidation};
use crate::breaker::{Breaker, BreakerConfig, BreakerStats};
use crate::clock::Clock;
use crate::config::RedisUrl;
use crate::error::{Error, ErrorKind};
use crate::redis_conn::{Conn, manager};
use crate::redis_sentinel::Sentinels;
use crate::store::store_error;

/// Trust horizon and acknowledgement wait bound.
const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(2000);
/// Entries kept in the stream for replay.
const STREAM_LENGTH: usize = 100_000;
/// First pause before reconnecting; doubles up to half a heartbeat.
const RETRY_AFTER: Duration = Duration::from_millis(10);
/// Bound on one command other than the blocking read.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1000);

/// A [`Bus`] over one Redis server's streams.
///
/// Usually made by `Cache::from_url("tiered+redis://…")`; by hand:
///
/// ```
/// use std::time::Duration;
/// use memocache::bus::RedisBus;
/// let bus = RedisBus::new("redis://127.0.0.1:6379/", "app:")?.with_heartbeat(Duration::from_millis(500));
/// assert_eq!(bus.heartbeat(), Duration::from_millis(500));
/// # Ok::<(), memocache::Error>(())
/// ```
pub struct RedisBus {
    client: Target,
    stream: String,
    members: String,
    member_prefix: String,
    id: String,
    heartbeat: Duration,
    publisher: OnceCell<Conn>,
    /// Invalidations that could not be sent; the reader sends them first
    /// thing once it is connected again.
    outbox: Arc<parking_lot::Mutex<Vec<Vec<u8>>>>,
    generation: Arc<AtomicU64>,
    breaker: Option<Arc<Breaker>>,
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBus")
            .field("stream", &self.stream)
            .field("member", &self.id)
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// A bus on the Redis server at `url` (`heartbeat_ms` in the URL's
    /// query sets the heartbeat), for the caches whose keys start with
    /// `prefix`. Nothing is contacted until [`Bus::start`].
    ///
    /// # Errors
    /// A configuration error for an invalid URL.
    ///
    /// ```
    /// use memocache::bus::RedisBus;
    /// let bus = RedisBus::new("redis://127.0.0.1:6379/?heartbeat_ms=1000", "app:")?;
    /// assert_eq!(bus.heartbeat().as_millis(), 1000);
    /// assert!(RedisBus::new("not a url", "app:").is_err());
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn new(url: &str, prefix: &str) -> Result<Self, Error> {
        let RedisUrl { url, heartbeat, .. } = RedisUrl::parse(url)?;
        let bus = Self::single(&url, prefix)?;
        Ok(match heartbeat {
            Some(heartbeat) => bus.with_heartbeat(heartbeat),
            None => bus,
        })
    }

    /// A bus on the Redis server at `url`, a URL without memocache's own
    /// options, with the default heartbeat.
    pub(crate) fn single(url: &str, prefix: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::new(ErrorKind::Config, format!("bus URL `{url}`")).with_source(e)
        })?;
        Ok(Self::assemble(
            Target::Single(client),
            prefix,
            "",
            DEFAULT_HEARTBEAT,
        ))
    }

    /// A bus on the master that the sentinels at `sentinels` (URLs) name
    /// `master`, its URL being `master_url` with the host and port left to
    /// discovery: what a `tiered+redis+sentinel://` cache builds.
    pub(crate) fn sentinel(
        sentinels: &[String],
        master: &str,
        master_url: &str,
        prefix: &str,
    ) -> Result<Self, Error> {
        let sentinels = Sentinels::new(sentinels, master, master_url, COMMAND_TIMEOUT)?;
        Ok(Self::assemble(
            Target::Sentinel(Arc::new(sentinels)),
            prefix,
            "",
            DEFAULT_HEARTBEAT,
        ))
    }

    /// A bus on a Redis Cluster, given some of its nodes as
    /// `redis://host:port` URLs. Every key of the bus carries the hash tag
    /// `{memocache}` (after `prefix`), so the stream, the member set and
    /// the acknowledgements live on one slot: one node orders every
    /// invalidation, as a single server does. Nothing is contacted until
    /// [`Bus::start`].
    ///
    /// # Errors
    /// A configuration error for bad node URLs.
    ///
    /// ```
    /// use memocache::bus::RedisBus;
    /// let nodes = ["redis://127.0.0.1:7000".to_owned(), "redis://127.0.0.1:7001".to_owned()];
    /// let bus = RedisBus::new_cluster(&nodes, "app:")?;
    /// # drop(bus);
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn new_cluster(nodes: &[String], prefix: &str) -> Result<Self, Error> {
        // The store's command bound does not apply to the bus.
        let (nodes, _) = crate::store::split_cluster_nodes(nodes)?;
        Self::cluster(&nodes, prefix)
    }

    /// A bus on a Redis Cluster, given node URLs without memocache's own
    /// options.
    pub(crate) fn cluster(nodes: &[String], prefix: &str) -> Result<Self, Error> {
        let client = |response: Option<Duration>| {
            let builder = ClusterClient::builder(nodes.iter().map(String::as_str))
                .connection_timeout(COMMAND_TIMEOUT)
                .retries(1);
            let builder = match response {
                Some(timeout) => builder.response_timeout(timeout),
                None => builder,
            };
            builder.build().map_err(|e| {
                Error::new(ErrorKind::Config, format!("bus cluster nodes {nodes:?}")).with_source(e)
            })
        };
        let target = Target::Cluster {
            publisher: Box::new(client(Some(COMMAND_TIMEOUT))?),
            // The blocking read is bounded by the reader's own timeout.
            reader: Box::new(client(Some(Duration::from_secs(3600)))?),
        };
        Ok(Self::assemble(
            target,
            prefix,
            "{memocache}",
            DEFAULT_HEARTBEAT,
        ))
    }

    fn assemble(client: Target, prefix: &str, tag: &str, heartbeat: Duration) -> Self {
        let base = if tag.is_empty() {
            format!("{prefix}memocache")
        } else {
            format!("{prefix}{tag}")
        };
        Self {
            client,
            stream: format!("{base}:bus"),
            members: format!("{base}:members"),
            member_prefix: format!("{base}:member:"),
            id: member_id(),
            heartbeat,
            publisher: OnceCell::new(),
            outbox: Arc::new(parking_lot::Mutex::new(Vec::new())),
            generation: Arc::new(AtomicU64::new(0)),
            breaker: Some(Arc::new(Breaker::new(
                "bus",
                BreakerConfig::default(),
                Clock::coarse(),
            ))),
        }
    }

    /// Sets the heartbeat (at least 10 ms).
    ///
    /// ```
    /// use std::time::Duration;
    /// let bus = memocache::bus::RedisBus::new("redis://127.0.0.1/", "")?.with_heartbeat(Duration::ZERO);
    /// assert_eq!(bus.heartbeat(), Duration::from_millis(10));
    /// # Ok::<(), memocache::Error>(())
    /// ```
    #[must_use]
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat.max(Duration::from_millis(10));
        self
    }

    /// Sets the bus's breaker up as `config` says (`enabled: false`: no
    /// breaker, every publish tries the transport).
    ///
    /// ```
    /// use memocache::{CacheConfig, bus::RedisBus};
    /// let breaker = CacheConfig::from_url("redis://127.0.0.1/?breaker=off")?.breaker;
    /// let bus = RedisBus::new("redis://127.0.0.1/", "")?.with_breaker(breaker);
    /// # drop(bus);
    /// # Ok::<(), memocache::Error>(())
    /// ```
    #[must_use]
    pub fn with_breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = config
            .enabled
            .then(|| Arc::new(Breaker::new("bus", config, Clock::coarse())));
        self
    }

    /// Feeds a publishing command's outcome to the breaker: a timeout
    /// opens it.
    fn record<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if let (Some(breaker), Err(error)) = (&self.breaker, &result) {
            if error.is_timeout() {
                breaker.trip();
            }
        }
        if let (Target::Sentinel(sentinels), Err(error)) = (&self.client, &result) {
            if error.is_store() {
                sentinels.forget_current();
            }
        }
        result
    }

    /// This process's member id.
    ///
    /// ```
    /// let a = memocache::bus::RedisBus::new("redis://127.0.0.1/", "")?;
    /// let b = memocache::bus::RedisBus::new("redis://127.0.0.1/", "")?;
    /// assert_ne!(a.member_id(), b.member_id());
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn member_id(&self) -> &str {
        &self.id
    }

    /// The heartbeat: L1 trust horizon and the longest `publish` waits.
    ///
    /// ```
    /// let bus = memocache::bus::RedisBus::new("redis://127.0.0.1/", "")?;
    /// assert_eq!(bus.heartbeat().as_millis(), 2000); // the default
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// The publishing connection: a manager that reconnects on its own.
    async fn publisher(&self) -> Result<Conn, Error> {
        if let Target::Sentinel(sentinels) = &self.client {
            return sentinels.master().await.map(|m| Conn::Multiplexed(m.conn));
        }
        self.publisher
            .get_or_try_init(|| async {
                match &self.client {
                    Target::Single(client) => manager(client, COMMAND_TIMEOUT, 1)
                        .map(Conn::Manager)
                        .map_err(|e| store_error("cannot set up the bus connection", e)),
                    Target::Cluster { publisher, .. } => {
                        bounded_connect(publisher.get_async_connection())
                            .await
                            .map(Conn::Cluster)
                    }
                    Target::Sentinel(_) => unreachable!("answered above"),
                }
            })
            .await
            .cloned()
    }

    /// Adds one entry; retried once on a dropped connection (not after a
    /// timeout: that would wait it out twice).
    async fn append(&self, conn: &mut Conn, payload: &[u8]) -> Result<String, Error> {
        match bounded(xadd(conn, &self.stream, &self.id, payload)).await {
            Err(error) if error.is_store() && !error.is_timeout() => {
                bounded(xadd(conn, &self.stream, &self.id, payload)).await
            }
            other => other,
        }
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        // Ends the reader task at its next turn.
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn start(&self, sink: Weak<dyn BusSink>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "memocache: tiered cache built outside a Tokio runtime; its L1 stays \
                 unused (every read goes to the shared store)"
            );
            return;
        };
        let reader = Reader {
            outbox: Arc::clone(&self.outbox),
            client: self.client.clone(),
            stream: self.stream.clone(),
            members: self.members.clone(),
            member_key: format!("{}{}", self.member_prefix, self.id),
            id: self.id.clone(),
            heartbeat: self.heartbeat,
            generation: Arc::clone(&self.generation),
            started_at: self.generation.load(Ordering::Acquire),
            sink,
            breaker: self.breaker.clone(),
        };
        runtime.spawn(reader.run());
    }

    async fn publish(&self, invalidation: &Invalidation) -> Result<(), Error> {
        let payload = postcard::to_allocvec(invalidation).map_err(|e| {
            Error::new(ErrorKind::Codec, "cannot encode invalidation").with_source(e)
        })?;
        if let Some(breaker) = self.breaker.as_ref().filter(|b| b.is_open()) {
            // The reader sends it once it reads the bus again.
            breaker.skip();
            self.outbox.lock().push(payload);
            return Err(Error::breaker_open("the invalidation bus"));
        }
        let mut conn = match self.record(self.publisher().await) {
            Ok(conn) => conn,
            Err(error) => {
                // Queued as for a failed XADD: dropping it would leave the
                // other processes' L1 copies in place for good.
                self.outbox.lock().push(payload);
                return Err(error);
            }
        };
        let appended = self.append(&mut conn, &payload).await;
        let id = match self.record(appended) {
            Ok(id) => id,
            Err(error) => {
                // Sent later by the reader; until then the other processes'
                // L1 may hold the old value: the one gap fail-open leaves.
                self.outbox.lock().push(payload);
                return Err(error);
            }
        };
        let sequence = StreamId::parse(&id).ok_or_else(|| bad_reply("XADD id", &id))?;
        // Measured from the reply: by then Redis has ordered the entry after
        // every read a lagging member completed.
        let deadline = tokio::time::Instant::now() + self.heartbeat + Duration::from_millis(2);
        let members: Vec<String> = self.record(bounded(conn.smembers(&self.members)).await)?;
        let others: Vec<String> = members.into_iter().filter(|m| *m != self.id).collect();
        if others.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = others
            .iter()
            .map(|m| format!("{}{m}", self.member_prefix))
            .collect();
        loop {
            let acks: Vec<Option<String>> = self.record(bounded(conn.mget(&keys)).await)?;
            let pending = acks
                .iter()
                .flatten()
                .filter(|ack| StreamId::parse(ack).is_none_or(|ack| ack < sequence))
                .count();
            if pending == 0 {
                // Forget members whose liveness key expired.
                let dead: Vec<&String> = others
                    .iter()
                    .zip(&acks)
                    .filter_map(|(member, ack)| ack.is_none().then_some(member))
                    .collect();
                if !dead.is_empty() {
                    let _: Result<i64, _> = bounded(conn.srem(&self.members, dead)).await;
                }
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::debug!(
                    pending,
                    "bus: members did not acknowledge within a heartbeat; their L1 trust has expired"
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn breaker_stats(&self) -> Option<BreakerStats> {
        self.breaker.as_ref().map(|b| b.stats())
    }
}

/// The task that reads the stream for one process.
struct Reader {
    outbox: Arc<parking_lot::Mutex<Vec<Vec<u8>>>>,
    client: Target,
    stream: String,
    members: String,
    member_key: String,
    id: String,
    heartbeat: Duration,
    generation: Arc<AtomicU64>,
    started_at: u64,
    sink: Weak<dyn BusSink>,
    breaker: Option<Arc<Breaker>>,
}

impl Reader {
    fn stopped(&self) -> bool {
        self.generation.load(Ordering::Acquire) != self.started_at || self.sink.strong_count() == 0
    }

    async fn run(self) {
        let mut last: Option<StreamId> = None;
        let mut history: Option<Arc<str>> = None;
        let mut backoff = RETRY_AFTER;
        while !self.stopped() {
            if let Some(breaker) = self.breaker.as_ref().filter(|b| b.is_open()) {
                breaker.count_probe();
            }
            match self.session(&mut last, &mut history, &mut backoff).await {
                Ok(()) => return,
                Err(error) => {
                    if let Target::Sentinel(sentinels) = &self.client {
                        sentinels.forget_current();
                    }
                    if let Some(sink) = self.sink.upgrade() {
                        sink.distrust(false);
                    }
                    if let Some(breaker) = self.breaker.as_ref().filter(|_| error.is_timeout()) {
                        breaker.trip();
                    }
                    tracing::warn!(%error, "bus: connection lost; L1 bypassed until back in sync");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.heartbeat / 2);
                }
            }
        }
    }

    /// One connection's worth of reading; returns `Ok` only when stopped.
    async fn session(
        &self,
        last: &mut Option<StreamId>,
        history: &mut Option<Arc<str>>,
        backoff: &mut Duration,
    ) -> Result<(), Error> {
        // The blocking read is bounded by our own timeout below, not by the
        // client's default response timeout (500 ms), which it would hit.
        let mut found_history = None;
        let mut session_master = None;
        let mut conn = match &self.client {
            Target::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(None);
                let connect = client.get_multiplexed_async_connection_with_config(&config);
                Conn::Multiplexed(bounded(connect).await?)
            }
            // A connection of its own, so the blocking read holds up no
            // other command.
            Target::Cluster { reader, .. } => {
                Conn::Cluster(bounded_connect(reader.get_async_connection()).await?)
            }
            Target::Sentinel(sentinels) => {
                let master = sentinels.master().await?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(None);
                let connect = master
                    .client
                    .get_multiplexed_async_connection_with_config(&config);
                let conn = Conn::Multiplexed(bounded(connect).await?);
                if history.as_ref().is_some_and(|h| *h != master.history) {
                    tracing::warn!(
                        master = %master.address,
                        "bus: the master changed history (a failover); clearing the L1"
                    );
                    if let Some(sink) = self.sink.upgrade() {
                        sink.distrust(true);
                    }
                    // Read on from the new master's newest entry.
                    *last = None;
                }
                found_history = Some(Arc::clone(&master.history));
                session_master = Some(master);
                conn
            }
        };
        let position = self.resume(&mut conn, *last).await?;
        *last = Some(position);
        // Only now: had the resume failed, the next session would clear
        // the L1 again.
        if found_history.is_some() {
            *history = found_history;
        }
        let _: i64 = bounded(conn.sadd(&self.members, &self.id)).await?;
        self.flush_outbox(&mut conn).await?;
        let block_ms = usize::try_from((self.heartbeat / 4).as_millis()).unwrap_or(500);
        // The first read does not block, so a (re)connected process is in
        // sync as soon as it has caught up.
        let mut block = false;
        loop {
            if self.stopped() {
                return Ok(());
            }
            // A planned failover leaves the old master answering until it
            // is demoted: stop reading (and trusting) it as soon as this
            // process knows the sentinels name another.
            if let (Target::Sentinel(sentinels), Some(master)) = (&self.client, &session_master) {
                if !sentinels.still_current(master).await {
                    return Err(Error::new(
                        ErrorKind::Store,
                        format!("bus: {} is no longer the master", master.address),
                    ));
                }
            }
            let Some(sink) = self.sink.upgrade() else {
                return Ok(());
            };
            let sent_at = sink.now_ms();
            drop(sink);
            let options = StreamReadOptions::default().count(1_000);
            let options = if block {
                options.block(block_ms)
            } else {
                options
            };
            let from = last.map_or_else(|| "0-0".to_owned(), |id| id.to_string());
            let (streams, positions) = ([&self.stream], [&from]);
            let read =
                conn.xread_options::<_, _, Option<StreamReadReply>>(&streams, &positions, &options);
            let reply = match tokio::time::timeout(self.heartbeat + COMMAND_TIMEOUT, read).await {
                Ok(reply) => reply.map_err(|e| store_error("bus read failed", e))?,
                Err(_) => return Err(store_error("bus read timed out", Timeout).timed_out()),
            };
            let Some(sink) = self.sink.upgrade() else {
                return Ok(());
            };
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                for entry in key.ids {
                    if let Some(invalidation) = self.decode(&entry.map) {
                        sink.apply(&invalidation);
                    }
                    if let Some(id) = StreamId::parse(&entry.id) {
                        *last = Some(id);
                    }
                }
            }
            let ack = last.map_or_else(|| "0-0".to_owned(), |id| id.to_string());
            let ttl = u64::try_from(self.heartbeat.as_millis()).unwrap_or(2_000);
            let _: () = bounded(conn.pset_ex(&self.member_key, ack, ttl)).await?;
            sink.trust_until(sent_at.saturating_add(ttl));
            // What `publish` queued while the bus was out (or its breaker
            // open) goes out now, then publishing goes direct again.
            if !self.outbox.lock().is_empty() {
                self.flush_outbox(&mut conn).await?;
            }
            if let Some(breaker) = &self.breaker {
                breaker.close();
            }
            block = true;
            *backoff = RETRY_AFTER;
        }
    }

    /// Sends the invalidations `publish` could not.
    async fn flush_outbox(&self, conn: &mut Conn) -> Result<(), Error> {
        let pending = std::mem::take(&mut *self.outbox.lock());
        for (sent, payload) in pending.iter().enumerate() {
            if let Err(error) = bounded(xadd(conn, &self.stream, &self.id, payload)).await {
                self.outbox.lock().extend(pending[sent..].iter().cloned());
                return Err(error);
            }
        }
        if !pending.is_empty() {
            tracing::info!(
                sent = pending.len(),
                "bus: sent invalidations held while disconnected"
            );
        }
        Ok(())
    }

    /// Where to read from after (re)connecting, clearing the L1 if entries
    /// after `last` can no longer be read.
    async fn resume(&self, conn: &mut Conn, last: Option<StreamId>) -> Result<StreamId, Error> {
        let newest: StreamRangeReply =
            bounded(conn.xrevrange_count(&self.stream, "+", "-", 1)).await?;
        let newest = newest
            .ids
            .first()
            .and_then(|entry| StreamId::parse(&entry.id))
            .unwrap_or_default();
        let Some(last) = last else {
            // First start: nothing to replay, and the L1 is empty.
            return Ok(newest);
        };
        let deleted = self.max_deleted(conn).await?;
        let lost = match deleted {
            // No such stream: Redis lost it (restarted empty).
            None => true,
            Some(deleted) => deleted > last,
        };
        if lost {
            tracing::warn!("bus: invalidations were lost while disconnected; clearing the L1");
            if let Some(sink) = self.sink.upgrade() {
                sink.distrust(true);
            }
            return Ok(newest);
        }
        Ok(last)
    }

    /// The stream's `max-deleted-entry-id`, or `None` if it does not exist.
    async fn max_deleted(&self, conn: &mut Conn) -> Result<Option<StreamId>, Error> {
        let mut info = redis::cmd("XINFO");
        info.arg("STREAM").arg(&self.stream);
        match bounded_raw(info.query_async::<Value>(conn)).await? {
            Ok(value) => Ok(Some(
                field(&value, "max-deleted-entry-id").unwrap_or_default(),
            )),
            // `ERR no such key`.
            Err(_) => Ok(None),
        }
    }

    fn decode(&self, map: &std::collections::HashMap<String, Value>) -> Option<Invalidation> {
        let origin = bytes_of(map.get("o")?)?;
        if origin == self.id.as_bytes() {
            return None;
        }
        postcard::from_bytes(&bytes_of(map.get("p")?)?).ok()
    }
}

/// Where the bus lives.
#[derive(Clone)]
enum Target {
    Single(redis::Client),
    /// Two clients: the reader's has no response timeout of its own.
    Cluster {
        publisher: Box<ClusterClient>,
        reader: Box<ClusterClient>,
    },
    /// The master the sentinels name.
    Sentinel(Arc<Sentinels>),
}

/// `XADD stream MAXLEN ~ N * o <member> p <payload>`.
async fn xadd<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    member: &str,
    payload: &[u8],
) -> redis::RedisResult<String> {
    redis::cmd("XADD")
        .arg(stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_LENGTH)
        .arg("*")
        .arg("o")
        .arg(member)
        .arg("p")
        .arg(payload)
        .query_async(conn)
        .await
}

/// A stream entry id, `ms-seq`, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct StreamId(u64, u64);

impl StreamId {
    fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

fn field(value: &Value, name: &str) -> Option<StreamId> {
    let pairs: Vec<(&Value, &Value)> = match value {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| Some((c.first()?, c.get(1)?)))
            .collect(),
        _ => return None,
    };
    pairs.into_iter().find_map(|(k, v)| {
        (bytes_of(k)? == name.as_bytes())
            .then(|| StreamId::parse(&String::from_utf8_lossy(&bytes_of(v)?)))?
    })
}

fn bytes_of(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(text) => Some(text.clone().into_bytes()),
        _ => None,
    }
}

fn member_id() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()))
}

#[derive(Debug)]
struct Timeout;

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for Timeout {}

fn bad_reply(what: &str, got: &str) -> Error {
    Error::new(
        ErrorKind::Store,
        format!("unexpected {what} from Redis: {got}"),
    )
}

/// A command bounded by [`COMMAND_TIMEOUT`], its failure a store error.
async fn bounded<T>(
    command: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Error> {
    match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(store_error("bus command failed", error)),
        Err(_) => Err(store_error("bus command timed out", Timeout).timed_out()),
    }
}

/// Bounds a cluster connection: every node is met (each within
/// `COMMAND_TIMEOUT`, in parallel) and the slot table read, so a node that
/// is cut off, holding no key of the bus, costs one connection timeout and
/// is left out rather than failing the connection.
async fn bounded_connect<T>(
    connect: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Error> {
    match tokio::time::timeout(COMMAND_TIMEOUT.saturating_mul(3), connect).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(store_error("bus connection failed", error)),
        Err(_) => Err(store_error("bus connection timed out", Timeout).timed_out()),
    }
}

/// As [`bounded`], but a server error reply is handed back, not raised.
async fn bounded_raw<T>(
    command: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<redis::RedisResult<T>, Error> {
    match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
        Ok(Err(error)) if error.is_io_error() || error.is_connection_dropped() => {
            Err(store_error("bus command failed", error))
        }
        Ok(result) => Ok(result),
        Err(_) => Err(store_error("bus command timed out", Timeout).timed_out()),
    }
}
