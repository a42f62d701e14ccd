//! [`BreakerStore`]: a store behind its breakers (see [`crate::breaker`]
//! for the rule), one per node of a sharded store, with the background
//! prober that closes them again. Every store a cache reaches goes through
//! it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::RemoteStore;
use crate::breaker::{Admission, Breaker, BreakerSet, PROBER_TICK};
use crate::error::Error;

/// Where one call goes: a breaker, and the node it stands for (`None`: the
/// store-wide breaker).
struct Target<'a> {
    /// Borrowed for the store-wide breaker: no reference count bumped on
    /// the hot path of a store on one server.
    breaker: std::borrow::Cow<'a, Arc<Breaker>>,
    node: Option<Arc<str>>,
}

/// A [`RemoteStore`] behind a [`BreakerSet`]: every method of the store it
/// wraps, skipped at once while the breaker of the node it needs (or the
/// store-wide one) is open.
#[derive(Debug)]
pub(crate) struct BreakerStore {
    store: Arc<dyn RemoteStore>,
    breakers: Arc<BreakerSet>,
    /// See [`BreakerConfig::read_deadline`].
    read_deadline: Option<Duration>,
    /// Whether a read has been answered since the store was built.
    answered: AtomicBool,
}

impl BreakerStore {
    #[cfg(test)]
    pub(crate) fn new(store: Arc<dyn RemoteStore>, breaker: Arc<Breaker>) -> Self {
        Self::with_set(store, Arc::new(BreakerSet::new(breaker)))
    }

    pub(crate) fn with_set(store: Arc<dyn RemoteStore>, breakers: Arc<BreakerSet>) -> Self {
        Self {
            store,
            breakers,
            read_deadline: None,
            answered: AtomicBool::new(false),
        }
    }

    /// Bounds reads by `deadline` (see [`BreakerConfig::read_deadline`]).
    pub(crate) fn read_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.read_deadline = deadline;
        self
    }

    /// A read through `target`'s breaker, given up at the read deadline as
    /// a timeout (which opens the breaker). Outside a Tokio runtime there
    /// is no timer: the store's own timeout bounds it.
    async fn read<T>(
        &self,
        target: &Target<'_>,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        // Not before the store first answered: the first call connects
        // (a TLS handshake, a cluster's slot table), which takes longer
        // than a read on an open connection.
        let Some(deadline) = self.read_deadline.filter(|_| {
            self.answered.load(Ordering::Acquire) && tokio::runtime::Handle::try_current().is_ok()
        }) else {
            let result = self.call(target, operation).await;
            if result.is_ok() {
                self.answered.store(true, Ordering::Release);
            }
            return result;
        };
        let bounded = async {
            match tokio::time::timeout(deadline, operation).await {
                Ok(result) => result,
                Err(_) => Err(Error::new(
                    crate::error::ErrorKind::Store,
                    format!(
                        "the cache store: no answer to a read within {} ms (read deadline)",
                        deadline.as_millis()
                    ),
                )
                .timed_out()),
            }
        };
        self.call(target, bounded).await
    }

    /// The breaker of the node that serves `key`.
    fn target(&self, key: &str) -> Target<'_> {
        match self.store.node_of(key) {
            Some(node) => Target {
                breaker: std::borrow::Cow::Owned(self.breakers.node(&node)),
                node: Some(node),
            },
            None => self.whole(),
        }
    }

    fn whole(&self) -> Target<'_> {
        Target {
            breaker: std::borrow::Cow::Borrowed(&self.breakers.whole),
            node: None,
        }
    }

    /// `keys` grouped by the node that serves them, each with the key's
    /// position; one group for an unsharded store.
    fn by_node<'k>(&self, keys: impl Iterator<Item = &'k str>) -> Vec<(Target<'_>, Vec<usize>)> {
        let mut groups: Vec<(Target<'_>, Vec<usize>)> = Vec::new();
        for (at, key) in keys.enumerate() {
            let target = self.target(key);
            match groups
                .iter_mut()
                .find(|(t, _)| Arc::ptr_eq(&t.breaker, &target.breaker))
            {
                Some((_, positions)) => positions.push(at),
                None => groups.push((target, vec![at])),
            }
        }
        groups
    }

    async fn call<T>(
        &self,
        target: &Target<'_>,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let breaker = &target.breaker;
        let trial = match breaker.admit() {
            Admission::Pass => false,
            // A runtime is here after all: probe in the background instead.
            Admission::Trial if self.spawn_prober(target) => {
                breaker.release_probe();
                breaker.skip();
                return Err(Error::breaker_open("the cache store"));
            }
            Admission::Trial => true,
            Admission::Skip => return Err(Error::breaker_open("the cache store")),
        };
        let result = operation.await;
        if trial {
            let answered = !matches!(&result, Err(e) if e.is_store());
            breaker.finish_probe(answered);
        } else if breaker.record(&result) {
            let _ = self.spawn_prober(target);
        }
        result
    }

    /// Runs an invalidation (a delete, a version bump, a clear) whether the
    /// breaker is open or not. Skipping one would be a stale read for every
    /// other process that still reaches the store: a breaker is this
    /// process's view, and the partition may be one-sided or already
    /// healed while the probe waits. So a write that changes what others
    /// read pays the store timeout during a partition; reads and fills,
    /// whose skipping only costs this process a load, do not.
    async fn invalidate<T>(
        &self,
        target: Option<&Target<'_>>,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let result = operation.await;
        // While open, the prober decides when to close; a success here is
        // not counted against it.
        if let Some(target) = target {
            if !target.breaker.is_open() && target.breaker.record(&result) {
                let _ = self.spawn_prober(target);
            }
        }
        result
    }

    /// Probes in the background until the breaker closes, if a Tokio
    /// runtime is at hand (else calls are let through as probes). True if
    /// a background prober runs.
    fn spawn_prober(&self, target: &Target<'_>) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if target.breaker.prober.swap(true, Ordering::AcqRel) {
            return true;
        }
        let prober = Prober {
            breaker: Arc::downgrade(&target.breaker),
            store: Arc::downgrade(&self.store),
            node: target.node.clone(),
        };
        runtime.spawn(prober.run());
        true
    }

    /// The values of `keys`, read node by node (concurrently) when they
    /// span nodes, so a timeout is charged to the node that did not answer.
    async fn get_split(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let groups = self.by_node(keys.iter().map(String::as_str));
        if let [(target, _)] = groups.as_slice() {
            return self.read(target, self.store.get_many(keys)).await;
        }
        let reads = groups.iter().map(|(target, positions)| async move {
            let group: Vec<String> = positions.iter().map(|&at| keys[at].clone()).collect();
            self.read(target, self.store.get_many(&group)).await
        });
        let found = futures_util::future::try_join_all(reads).await?;
        let mut values = vec![None; keys.len()];
        for ((_, positions), group) in groups.iter().zip(found) {
            for (&at, value) in positions.iter().zip(group) {
                values[at] = value;
            }
        }
        Ok(values)
    }
}

/// The background task of an open breaker. Holds both weakly: a dropped
/// cache ends it.
struct Prober {
    breaker: Weak<Breaker>,
    store: Weak<dyn RemoteStore>,
    /// The node it probes (`None`: the whole store).
    node: Option<Arc<str>>,
}

impl Prober {
    async fn run(self) {
        loop {
            let pause = match self.breaker.upgrade() {
                Some(breaker) if breaker.is_open() => breaker.until_probe(),
                _ => return,
            };
            tokio::time::sleep(pause.clamp(Duration::from_millis(1), PROBER_TICK)).await;
            let (Some(breaker), Some(store)) = (self.breaker.upgrade(), self.store.upgrade())
            else {
                return;
            };
            if breaker.start_probe() {
                let pong = match &self.node {
                    Some(node) => store.ping_node(node).await,
                    None => store.ping().await,
                };
                let answered = !matches!(pong, Err(e) if e.is_store());
                breaker.finish_probe(answered);
            }
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        // Also when the runtime shuts down under it: the next opening, or
        // the next call, takes over.
        if let Some(breaker) = self.breaker.upgrade() {
            breaker.prober.store(false, Ordering::Release);
        }
    }
}

#[async_trait]
impl RemoteStore for BreakerStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.read(&self.target(key), self.store.get(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.get_split(keys).await
    }

    async fn get_versioned(
        &self,
        version_key: &str,
        value_prefix: &str,
        value_suffix: &str,
        guess: u64,
    ) -> Result<(u64, Option<Vec<u8>>), Error> {
        let version_target = self.target(version_key);
        // An unsharded store (the common case) needs no second key.
        let same_node = version_target.node.is_none() || {
            let value_target = self.target(&format!("{value_prefix}{guess}{value_suffix}"));
            Arc::ptr_eq(&version_target.breaker, &value_target.breaker)
        };
        if same_node {
            let read = self
                .store
                .get_versioned(version_key, value_prefix, value_suffix, guess);
            return self.read(&version_target, read).await;
        }
        // Two nodes: read them apart, each through its own breaker.
        crate::store::versioned_by_parts(self, version_key, value_prefix, value_suffix, guess).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        self.call(&self.target(key), self.store.set(key, value, ttl))
            .await
    }

    async fn set_many(
        &self,
        pairs: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let groups = self.by_node(pairs.iter().map(|(key, _)| key.as_str()));
        if let [(target, _)] = groups.as_slice() {
            return self.call(target, self.store.set_many(pairs, ttl)).await;
        }
        let writes = groups.iter().map(|(target, positions)| async move {
            let group: Vec<(String, Vec<u8>)> =
                positions.iter().map(|&at| pairs[at].clone()).collect();
            self.call(target, self.store.set_many(&group, ttl)).await
        });
        futures_util::future::try_join_all(writes).await.map(drop)
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, Error> {
        self.call(&self.target(key), self.store.add(key, value, ttl))
            .await
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, Option<Duration>)>, Error> {
        self.read(&self.target(key), self.store.get_with_ttl(key))
            .await
    }

    async fn lease(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.call(&self.target(key), self.store.lease(key, token, ttl))
            .await
    }

    async fn fill(
        &self,
        key: &str,
        token: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        self.call(&self.target(key), self.store.fill(key, token, value, ttl))
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool, Error> {
        self.invalidate(Some(&self.target(key)), self.store.delete(key))
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<usize, Error> {
        let groups = self.by_node(keys.iter().map(String::as_str));
        if let [(target, _)] = groups.as_slice() {
            return self
                .invalidate(Some(target), self.store.delete_many(keys))
                .await;
        }
        // Every group runs, even after one failed: each delete is an
        // invalidation others may depend on.
        let deletes = groups.iter().map(|(target, positions)| async move {
            let group: Vec<String> = positions.iter().map(|&at| keys[at].clone()).collect();
            self.invalidate(Some(target), self.store.delete_many(&group))
                .await
        });
        let mut removed = 0;
        let mut failed = None;
        for result in futures_util::future::join_all(deletes).await {
            match result {
                Ok(n) => removed += n,
                Err(error) => failed = Some(error),
            }
        }
        failed.map_or(Ok(removed), Err)
    }

    async fn has(&self, key: &str) -> Result<bool, Error> {
        self.read(&self.target(key), self.store.has(key)).await
    }

    async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.invalidate(Some(&self.target(key)), self.store.incr(key, delta))
            .await
    }

    async fn clear(&self, prefix: &str) -> Result<(), Error> {
        // Every node: a timeout says nothing about which one, so a sharded
        // store charges it to no breaker (its keys' calls find out).
        let sharded = !self.breakers.nodes.read().is_empty();
        let whole = self.whole();
        self.invalidate((!sharded).then_some(&whole), self.store.clear(prefix))
            .await
    }

    async fn ping(&self) -> Result<(), Error> {
        self.call(&self.whole(), self.store.ping()).await
    }

    fn node_of(&self, key: &str) -> Option<Arc<str>> {
        self.store.node_of(key)
    }

    async fn ping_node(&self, node: &str) -> Result<(), Error> {
        let node: Arc<str> = Arc::from(node);
        let target = Target {
            breaker: std::borrow::Cow::Owned(self.breakers.node(&node)),
            node: Some(Arc::clone(&node)),
        };
        self.call(&target, self.store.ping_node(&node)).await
    }
}
