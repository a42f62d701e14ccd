//! Finding and following the Redis master that Sentinel names, for the
//! store and the bus alike.
//!
//! # Discovery
//!
//! The sentinels are asked in their order (`SENTINEL
//! GET-MASTER-ADDR-BY-NAME`); the first address one of them gives that
//! answers `ROLE` as a master is taken. Each step is bounded by the
//! store's timeout, so a dead or stopped sentinel costs one timeout and the
//! next one is asked; a sentinel that still names a demoted or dead master
//! (it has not heard of the failover yet) is passed over the same way. The
//! master is kept until a command on it fails in a way that says it may no
//! longer be the master (a dropped or refused connection, a timeout,
//! `READONLY`, `MASTERDOWN`, `LOADING`), or until a sentinel names another
//! one: while a master is in use, a sentinel is asked at most every second,
//! in the background, whether it still is the master (after a planned
//! failover, `SENTINEL FAILOVER`, the old master keeps answering, writes
//! included, until the sentinel demotes it, which can take its 10 s `INFO`
//! period). The next caller then discovers again.
//!
//! The redis crate's own `sentinel` module (`SentinelClient`) was not used:
//! it has no timeout on its sentinel and `ROLE` connections (a stopped
//! master or sentinel would hang discovery), it gives up on the first
//! candidate whose `ROLE` check fails instead of asking the next sentinel,
//! it hands out a `Client` per call rather than a connection to keep, and
//! it does not read the master's replication id, which is what makes a
//! failover safe here (next section).
//!
//! # History
//!
//! Replication is asynchronous: a promoted replica holds a prefix of the
//! old master's writes, and may lack the last version increments (forgets)
//! and deletes. Each master therefore has a *history*: the first 12 hex
//! digits of its replication id (`INFO replication`'s `master_replid`).
//! Redis gives a replica a new replication id when it is promoted (and a
//! master a new one when it restarts without its data), and every client of
//! one master reads the same one. The store files every key under its
//! master's history and the bus clears its process's L1 when the history
//! changes, so nothing written before a failover is read after it: the
//! values, versions and leases of the old master are out of reach on the
//! new one (they expire with their timeouts), and the first read of each
//! key after a failover loads it from the source.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value};
use url::Url;

use crate::error::{Error, ErrorKind, store_error};

/// Hex digits of the replication id kept as the history tag.
const HISTORY_DIGITS: usize = 12;
/// How often a master in use is checked against the sentinels.
const RECHECK: Duration = Duration::from_secs(1);

/// The sentinels of one master, and the master they last named.
pub(crate) struct Sentinels {
    sentinels: Vec<redis::Client>,
    master: String,
    master_url: Url,
    timeout: Duration,
    current: parking_lot::RwLock<Option<Master>>,
    discovering: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    /// When the current master was last checked against the sentinels.
    checked_at: parking_lot::Mutex<Instant>,
    checking: AtomicBool,
}

/// A master found through the sentinels.
#[derive(Clone)]
pub(crate) struct Master {
    /// A client for it, to open more connections (the bus's reader).
    pub(crate) client: redis::Client,
    /// A multiplexed connection to it, bounded by the store's timeout.
    pub(crate) conn: MultiplexedConnection,
    /// Its replication history (see the module docs).
    pub(crate) history: Arc<str>,
    /// `host:port`, for messages.
    pub(crate) address: Arc<str>,
    generation: u64,
}

impl Sentinels {
    /// The sentinels at `sentinels` (URLs), watching `master`, whose own URL
    /// is `master_url` with the host and port to be filled in.
    pub(crate) fn new(
        sentinels: &[String],
        master: &str,
        master_url: &str,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let clients = sentinels
            .iter()
            .map(|url| {
                redis::Client::open(url.as_str())
                    .map_err(|e| Error::config(format!("invalid sentinel URL `{url}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if clients.is_empty() {
            return Err(Error::config(format!(
                "no sentinel given for master `{master}`"
            )));
        }
        let master_url = Url::parse(master_url)
            .map_err(|e| Error::config(format!("invalid master URL `{master_url}`: {e}")))?;
        // Fails now rather than at the first discovery.
        redis::Client::open(master_url.as_str())
            .map_err(|e| Error::config(format!("invalid master URL `{master_url}`: {e}")))?;
        Ok(Self {
            sentinels: clients,
            master: master.to_owned(),
            master_url,
            timeout,
            current: parking_lot::RwLock::new(None),
            discovering: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            checked_at: parking_lot::Mutex::new(Instant::now()),
            checking: AtomicBool::new(false),
        })
    }

    /// The name the sentinels monitor the master under.
    pub(crate) fn master_name(&self) -> &str {
        &self.master
    }

    /// The current master, discovered if there is none (one discovery at a
    /// time; the others wait for it).
    pub(crate) async fn master(self: &Arc<Self>) -> Result<Master, Error> {
        let current = self.current.read().clone();
        if let Some(master) = current {
            self.recheck(&master);
            return Ok(master);
        }
        let _one = self.discovering.lock().await;
        let current = self.current.read().clone();
        if let Some(master) = current {
            return Ok(master);
        }
        let mut master = self.discover().await?;
        master.generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *self.current.write() = Some(master.clone());
        *self.checked_at.lock() = Instant::now();
        Ok(master)
    }

    /// Asks a sentinel in the background, at most every [`RECHECK`],
    /// whether `master` still is the master; drops it if not.
    fn recheck(self: &Arc<Self>, master: &Master) {
        {
            let mut checked_at = self.checked_at.lock();
            if checked_at.elapsed() < RECHECK || self.checking.swap(true, Ordering::AcqRel) {
                return;
            }
            *checked_at = Instant::now();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.checking.store(false, Ordering::Release);
            return;
        };
        let (this, master) = (Arc::clone(self), master.clone());
        runtime.spawn(async move {
            for sentinel in &this.sentinels {
                // A sentinel that knows no such master, or does not
                // answer: ask the next.
                if let Ok(Some((host, port))) = this.named(sentinel).await {
                    if format!("{host}:{port}") != *master.address {
                        this.forget(&master);
                    }
                    break;
                }
            }
            this.checking.store(false, Ordering::Release);
        });
    }

    /// The address `sentinel` gives for the master.
    async fn named(&self, sentinel: &redis::Client) -> Result<Option<(String, u16)>, Error> {
        let config = self.connection_config();
        bounded(self.timeout, async {
            let mut conn = sentinel
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&self.master)
                .query_async(&mut conn)
                .await
        })
        .await
    }

    /// Whether `master` is still the one the sentinels name, as far as
    /// this process knows (asking them at most every [`RECHECK`]; a
    /// dropped master is discovered again here).
    pub(crate) async fn still_current(self: &Arc<Self>, master: &Master) -> bool {
        self.master()
            .await
            .is_ok_and(|current| current.generation == master.generation)
    }

    /// Drops `master` if it is still the current one: the next call
    /// discovers again.
    pub(crate) fn forget(&self, master: &Master) {
        let mut current = self.current.write();
        if current
            .as_ref()
            .is_some_and(|c| c.generation == master.generation)
        {
            tracing::info!(
                master = %master.address,
                name = %self.master,
                "sentinel: master lost; asking the sentinels again"
            );
            *current = None;
        }
    }

    /// Drops whatever master is current: for callers that do not keep the
    /// [`Master`] they used (the bus). At worst a newer master is asked
    /// for once more.
    pub(crate) fn forget_current(&self) {
        // Not inside the `if let`: its read guard would live through the
        // body, and `forget` takes the write lock.
        let current = self.current.read().clone();
        if let Some(master) = current {
            self.forget(&master);
        }
    }

    fn connection_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
    }

    /// Asks each sentinel in turn; the first master that confirms wins.
    async fn discover(&self) -> Result<Master, Error> {
        let mut failures = Vec::new();
        for sentinel in &self.sentinels {
            let addr = sentinel.get_connection_info().addr().to_string();
            match self.ask(sentinel).await {
                Ok(master) => return Ok(master),
                Err(error) => failures.push(format!("{addr}: {error}")),
            }
        }
        Err(Error::new(
            ErrorKind::Store,
            format!(
                "no sentinel named a reachable master `{}` ({})",
                self.master,
                failures.join("; ")
            ),
        ))
    }

    async fn ask(&self, sentinel: &redis::Client) -> Result<Master, Error> {
        let config = self.connection_config();
        let (host, port) = self.named(sentinel).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Store,
                format!("the sentinel does not know a master `{}`", self.master),
            )
        })?;
        let mut url = self.master_url.clone();
        url.set_host(Some(&host))
            .map_err(|e| Error::new(ErrorKind::Store, format!("master host `{host}`: {e}")))?;
        url.set_port(Some(port))
            .map_err(|()| Error::new(ErrorKind::Store, format!("master port {port}")))?;
        let client = redis::Client::open(url.as_str())
            .map_err(|e| store_error(format!("master URL for {host}:{port}"), e))?;
        let address: Arc<str> = format!("{host}:{port}").into();
        let (conn, role, info) = bounded(self.timeout, async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let role: Value = redis::cmd("ROLE").query_async(&mut conn).await?;
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await?;
            Ok((conn, role, info))
        })
        .await?;
        if !is_master_role(&role) {
            return Err(Error::new(
                ErrorKind::Store,
                format!("{address} is not a master (yet or any more)"),
            ));
        }
        let history = replication_id(&info).ok_or_else(|| {
            Error::new(
                ErrorKind::Store,
                format!("{address}: INFO replication has no master_replid"),
            )
        })?;
        tracing::debug!(master = %address, %history, "sentinel: master found");
        Ok(Master {
            client,
            conn,
            history: history.into(),
            address,
            generation: 0,
        })
    }
}

/// Whether an error on a master's connection means it may no longer be the
/// master, or no longer reachable: then the sentinels are asked again.
pub(crate) fn lost_master(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || matches!(error.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

/// `ROLE`'s first element is `master`.
fn is_master_role(role: &Value) -> bool {
    let Value::Array(items) = role else {
        return false;
    };
    matches!(
        items.first(),
        Some(Value::BulkString(b)) if b.as_slice() == b"master"
    ) || matches!(items.first(), Some(Value::SimpleString(s)) if s == "master")
}

/// The first [`HISTORY_DIGITS`] of `master_replid` in an `INFO
/// replication` reply.
fn replication_id(info: &str) -> Option<String> {
    let id = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("master_replid:"))?;
    let id: String = id.chars().take(HISTORY_DIGITS).collect();
    (id.len() == HISTORY_DIGITS && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

async fn bounded<T>(
    limit: Duration,
    work: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(store_error("sentinel discovery failed", error)),
        Err(elapsed) => Err(store_error(
            format!(
                "sentinel discovery: no answer within {} ms",
                limit.as_millis()
            ),
            elapsed,
        )
        .timed_out()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_the_replication_id_prefix() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
                    master_replid:8d9f2c64e1a0b3c5d7e9f1a2b3c4d5e6f7a8b9c0\r\n\
                    master_replid2:0000000000000000000000000000000000000000\r\n";
        assert_eq!(replication_id(info).as_deref(), Some("8d9f2c64e1a0"));
        assert_eq!(replication_id("role:master\r\n"), None);
        assert_eq!(replication_id("master_replid:xyz\r\n"), None);
    }

    #[test]
    fn role_reply_names_a_master() {
        let master = Value::Array(vec![Value::BulkString(b"master".to_vec()), Value::Int(0)]);
        let replica = Value::Array(vec![Value::BulkString(b"slave".to_vec())]);
        assert!(is_master_role(&master));
        assert!(!is_master_role(&replica));
        assert!(!is_master_role(&Value::Nil));
    }
}
