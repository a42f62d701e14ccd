//! The Redis store under Sentinel: every key is filed under the master's
//! replication history, and a command that finds the master gone asks the
//! sentinels again (see `crate::redis_sentinel` for both rules and why).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, RedisResult};

use super::{RedisStore, Target, bounded, redis_error, scan_pattern};
use crate::config::{CacheConfig, RedisOptions, StoreConfig};
use crate::error::Error;
use crate::redis_sentinel::{Sentinels, lost_master};

/// How the keys a cache asks for are named on the server: as they are, or
/// (under Sentinel) with the master's history after the cache's prefix,
/// `{prefix}@{history}:{rest}`.
pub(super) struct Names<'a> {
    tag: Option<(&'a str, &'a str)>,
}

impl Names<'_> {
    /// Keys as they are.
    pub(super) const PLAIN: Names<'static> = Names { tag: None };

    /// `key` as the server holds it.
    pub(super) fn key<'k>(&self, key: &'k str) -> Cow<'k, str> {
        match self.tag {
            None => Cow::Borrowed(key),
            Some((prefix, history)) => match key.strip_prefix(prefix) {
                Some(rest) => Cow::Owned(format!("{prefix}@{history}:{rest}")),
                None => Cow::Owned(format!("@{history}:{key}")),
            },
        }
    }

    /// `name key...`.
    pub(super) fn command<K: AsRef<str>>(&self, name: &str, keys: &[K]) -> Cmd {
        let mut cmd = redis::cmd(name);
        for key in keys {
            cmd.arg(self.key(key.as_ref()).as_ref());
        }
        cmd
    }
}

impl RedisStore {
    /// A store on the Redis master that Redis Sentinel names, from a
    /// `redis+sentinel://` or `rediss+sentinel://` URL (the form and its
    /// options are on [`CacheConfig::from_url`]; memocache's cache-wide
    /// options are not taken here). Does not connect yet.
    ///
    /// # Following a failover
    ///
    /// The sentinels are asked for the master on first use, in the URL's
    /// order (a sentinel that does not answer within `timeout_ms`, or names
    /// a server that is not a master, is passed over). A command that fails
    /// on a dropped, refused or timed-out connection, or with `READONLY`,
    /// `MASTERDOWN` or `LOADING`, drops the master: it is sent once more to
    /// the master the sentinels name now (not after a timeout, which would
    /// be waited out twice), and the next call asks them again. One call
    /// waits at most twice `timeout_ms`. A master in use is also checked
    /// against a sentinel every second, in the background: after a planned
    /// failover (`SENTINEL FAILOVER`) the old master keeps answering until
    /// the sentinel demotes it, and the store moves over within about a
    /// second instead.
    ///
    /// # What a failover forgets
    ///
    /// Replication is asynchronous, so the promoted replica may lack the
    /// old master's last writes: a version increment (a `forget`) or a
    /// delete it acknowledged may be missing, and the old value would be
    /// back. So keys are filed under the master's replication history
    /// (`{prefix}@{history}:{key}`, the history being the first 12 digits
    /// of its `master_replid`, which a promotion changes): after a
    /// failover no value, version or lease written before it is read, every
    /// key is loaded from the source once, and **no value forgotten before
    /// the failover is served after it**. A tiered cache's bus also clears
    /// each process's L1 when it finds a new history. The old keys expire
    /// with their timeouts (versions, which have none, stay behind: a few
    /// bytes per memo and failover).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a URL that is not
    /// a valid Sentinel URL.
    ///
    /// ```
    /// use memocache::store::RedisStore;
    /// let store = RedisStore::open_sentinel("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster?timeout_ms=250")?;
    /// assert_eq!(store.options().timeout.as_millis(), 250);
    /// assert!(RedisStore::open_sentinel("redis://10.0.0.1:6379/").is_err());
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn open_sentinel(url: &str) -> Result<Self, Error> {
        let config = CacheConfig::from_url(url)?;
        match &config.store {
            StoreConfig::RedisSentinel {
                sentinels,
                master,
                master_url,
                options,
            } => Self::sentinel(sentinels, master, master_url, *options, ""),
            other => Err(Error::config(format!(
                "`{url}` is not a Sentinel URL (`redis+sentinel://...`) but {other:?}"
            ))),
        }
    }

    /// What [`CacheConfig::from_url`] builds from a
    /// [`StoreConfig::RedisSentinel`], for a cache with key prefix
    /// `prefix`.
    pub(crate) fn sentinel(
        sentinels: &[String],
        master: &str,
        master_url: &str,
        options: RedisOptions,
        prefix: &str,
    ) -> Result<Self, Error> {
        Ok(Self {
            target: Target::Sentinel {
                sentinels: Arc::new(Sentinels::new(
                    sentinels,
                    master,
                    master_url,
                    options.timeout,
                )?),
                prefix: prefix.to_owned(),
            },
            timeout: options.timeout,
        })
    }

    /// Runs what `run` sends on the current master, with the keys named
    /// under its history; a lost master is dropped, and the command sent
    /// once more to the one the sentinels name now.
    pub(super) async fn sentinel_query<T, F, Fut>(
        &self,
        what: &str,
        sentinels: &Arc<Sentinels>,
        prefix: &str,
        run: F,
    ) -> Result<T, Error>
    where
        F: Fn(&Names<'_>, MultiplexedConnection) -> Fut + Send + Sync,
        Fut: Future<Output = RedisResult<T>> + Send,
    {
        bounded(what, self.timeout.saturating_mul(2), async {
            let master = sentinels.master().await?;
            let names = Names {
                tag: Some((prefix, &*master.history)),
            };
            let error = match run(&names, master.conn.clone()).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if !lost_master(&error) {
                return Err(redis_error(what, error));
            }
            sentinels.forget(&master);
            if error.is_timeout() {
                return Err(redis_error(what, error));
            }
            let master = sentinels.master().await?;
            let names = Names {
                tag: Some((prefix, &*master.history)),
            };
            match run(&names, master.conn.clone()).await {
                Ok(value) => Ok(value),
                Err(error) => {
                    if lost_master(&error) {
                        sentinels.forget(&master);
                    }
                    Err(redis_error(what, error))
                }
            }
        })
        .await
    }

    /// `clear` under Sentinel: the keys of `prefix` in the current
    /// master's history (older histories expire on their own).
    pub(super) async fn sentinel_clear(
        &self,
        sentinels: &Arc<Sentinels>,
        own: &str,
        prefix: &str,
    ) -> Result<(), Error> {
        let master = sentinels.master().await?;
        let names = Names {
            tag: Some((own, &*master.history)),
        };
        let pattern = scan_pattern(&names.key(prefix));
        let mut conn = crate::redis_conn::Conn::Multiplexed(master.conn.clone());
        let result = self.clear_node(&mut conn, None, &pattern).await;
        if result.is_err() {
            sentinels.forget(&master);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::Names;

    #[test]
    fn keys_go_under_the_history_after_the_prefix() {
        let names = Names {
            tag: Some(("board:", "0123456789ab")),
        };
        assert_eq!(names.key("board:users:1"), "board:@0123456789ab:users:1");
        assert_eq!(names.key("other"), "@0123456789ab:other");
        assert_eq!(Names::PLAIN.key("board:users:1"), "board:users:1");
    }
}
