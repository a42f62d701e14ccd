//! Memcached, through `async-memcached` (text and meta protocol).
//!
//! - Several servers: each key lives on the server that rendezvous hashing
//!   picks for it, so adding a server moves only its share of the keys.
//! - Keys longer than 250 bytes, or with spaces or control characters, are
//!   replaced by a readable head plus their XXH3-128 hash.
//! - Timeouts over 30 days are sent as an absolute unix time, as Memcached
//!   requires; shorter ones are rounded up to whole seconds.
//! - Memcached cannot list keys, so `clear` works by generation: every key
//!   under the store's namespace (the cache's key prefix) carries the
//!   namespace's generation, and clearing bumps it. Other processes see a
//!   clear within [`GENERATION_REFRESH`].
//! - `fill` (a lease replaced by the loaded value) is a compare and swap
//!   of the meta protocol, so an invalidation during the load wins.
//! - `incr` uses Memcached's `incr` for non-negative steps on non-negative
//!   counters, and a compare-and-swap loop otherwise, so counters are
//!   signed 64-bit integers as on the other stores.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_memcached::{AsciiProtocol, Client, MetaProtocol, Status};
use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::{RemoteStore, bounded, store_error};
use crate::error::{Error, ErrorKind};

/// Bound on one operation, connection included.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// Connections kept per server.
const POOL: usize = 4;
/// Memcached's key length limit.
const MAX_KEY: usize = 250;
/// Relative timeouts longer than this are read by Memcached as unix times.
const MAX_RELATIVE_SECS: u64 = 30 * 24 * 3600;
/// How long the namespace generation is trusted before it is read again.
pub(crate) const GENERATION_REFRESH: Duration = Duration::from_secs(1);
/// Compare-and-swap attempts before `incr` gives up.
const CAS_ATTEMPTS: usize = 10_000;

/// Memcached servers as a [`RemoteStore`].
///
/// Usually built from a URL (`memcached://host:11211,host2:11211/`); built
/// by hand, it goes to [`Cache::with_store`](crate::Cache::with_store):
///
/// ```
/// use std::sync::Arc;
/// use memocache::{Cache, CacheConfig, store::MemcachedStore};
///
/// let store = MemcachedStore::open(&["127.0.0.1:11211".to_owned()], "app:")?;
/// let cache = Cache::with_store(CacheConfig::default(), Arc::new(store)); // connects lazily
/// # Ok::<(), memocache::Error>(())
/// ```
pub struct MemcachedStore {
    servers: Vec<Server>,
    namespace: String,
    generation: Mutex<Option<(u64, Instant)>>,
    timeout: Duration,
}

struct Server {
    address: String,
    seed: u64,
    pool: Vec<AsyncMutex<Option<Pooled>>>,
    next: AtomicUsize,
    /// Bumped when a connection breaks: connections made before are
    /// dropped on their next use (a restarted server broke them all).
    epoch: AtomicU64,
}

struct Pooled {
    client: Client,
    epoch: u64,
}

/// A locked pool slot of one server.
struct Slot<'a> {
    guard: MutexGuard<'a, Option<Pooled>>,
    server: &'a Server,
}

impl MemcachedStore {
    /// A store on `servers` (`host:port` each) whose `clear` empties
    /// `namespace` (the cache's key prefix; empty = every key this store
    /// writes). Does not connect yet.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] if `servers` is empty.
    ///
    /// ```
    /// use memocache::store::MemcachedStore;
    /// assert!(MemcachedStore::open(&[], "app:").unwrap_err().is_config());
    /// ```
    pub fn open(servers: &[String], namespace: &str) -> Result<Self, Error> {
        if servers.is_empty() {
            return Err(Error::config("a Memcached store needs at least one server"));
        }
        let servers = servers
            .iter()
            .map(|address| Server {
                address: address.clone(),
                seed: xxh3_64(address.as_bytes()),
                pool: (0..POOL).map(|_| AsyncMutex::new(None)).collect(),
                next: AtomicUsize::new(0),
                epoch: AtomicU64::new(0),
            })
            .collect();
        Ok(Self {
            servers,
            namespace: namespace.to_owned(),
            generation: Mutex::new(None),
            timeout: TIMEOUT,
        })
    }

    /// The server that holds `key` (rendezvous hashing).
    fn server(&self, key: &str) -> &Server {
        let hash = xxh3_64(key.as_bytes());
        let mut best = &self.servers[0];
        let mut best_score = 0;
        for server in &self.servers {
            let score = mix(hash ^ server.seed);
            if score >= best_score {
                best = server;
                best_score = score;
            }
        }
        best
    }

    /// A connected client of `server`; the slot is locked while in use.
    async fn slot<'a>(&self, server: &'a Server) -> Result<Slot<'a>, Error> {
        let start = server.next.fetch_add(1, Ordering::Relaxed);
        let mut slot = None;
        for i in 0..server.pool.len() {
            if let Ok(guard) = server.pool[(start + i) % server.pool.len()].try_lock() {
                slot = Some(guard);
                break;
            }
        }
        let mut guard = match slot {
            Some(slot) => slot,
            None => server.pool[start % server.pool.len()].lock().await,
        };
        let epoch = server.epoch.load(Ordering::Acquire);
        if guard
            .as_ref()
            .is_none_or(|p| p.epoch != epoch || p.client.is_closed())
        {
            *guard = None;
            let client = Client::new(format!("tcp://{}", server.address))
                .await
                .map_err(|e| {
                    store_error(
                        format!("cannot connect to Memcached at {}", server.address),
                        e,
                    )
                })?;
            *guard = Some(Pooled { client, epoch });
        }
        Ok(Slot { guard, server })
    }

    /// The current generation of the namespace.
    async fn generation(&self) -> Result<u64, Error> {
        if let Some((generation, read_at)) = *self.generation.lock() {
            if read_at.elapsed() < GENERATION_REFRESH {
                return Ok(generation);
            }
        }
        self.read_or_bump_generation(false).await
    }

    /// Reads (or, `bump`, increments) the namespace's generation. One
    /// Memcached does not have is started from the clock, so that a
    /// generation evicted by Memcached never comes back as an old one;
    /// when another process starts it at the same moment, read again.
    async fn read_or_bump_generation(&self, bump: bool) -> Result<u64, Error> {
        let key = self.generation_key();
        let server = self.server(&key);
        let generation = loop {
            let mut slot = self.slot(server).await?;
            let client = connected(&mut slot)?;
            let found = if bump {
                match client.increment(&key, 1).await {
                    Ok(n) => Some(n),
                    Err(e) if is_status(&e, &Status::NotFound) => None,
                    Err(e) => return Err(fail(&mut slot, "incr", e)),
                }
            } else {
                match client.get(&key).await {
                    Ok(Some(value)) => Some(parse_u64(value.data.as_deref()).unwrap_or(0)),
                    Ok(None) => None,
                    Err(e) => return Err(fail(&mut slot, "get", e)),
                }
            };
            if let Some(generation) = found {
                break generation;
            }
            let first = now_ms();
            match client
                .add(&key, first.to_string().as_str(), None, None)
                .await
            {
                Ok(()) => break first,
                Err(e) if is_status(&e, &Status::NotStored) => continue,
                Err(e) => return Err(fail(&mut slot, "add", e)),
            }
        };
        *self.generation.lock() = Some((generation, Instant::now()));
        Ok(generation)
    }

    fn generation_key(&self) -> String {
        format!("{}__memocache_gen", self.namespace)
    }

    /// The key Memcached sees for `key`.
    async fn key(&self, key: &str) -> Result<String, Error> {
        let full = match key.strip_prefix(self.namespace.as_str()) {
            Some(rest) => format!("{}~{}~{rest}", self.namespace, self.generation().await?),
            None => key.to_owned(),
        };
        Ok(safe_key(full))
    }

    async fn key_all(&self, keys: &[String]) -> Result<Vec<String>, Error> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.key(key).await?);
        }
        Ok(out)
    }

    async fn get_inner(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let key = self.key(key).await?;
        let mut slot = self.slot(self.server(&key)).await?;
        match connected(&mut slot)?.get(&key).await {
            Ok(value) => Ok(value.and_then(|v| v.data)),
            Err(e) => Err(fail(&mut slot, "get", e)),
        }
    }

    async fn get_many_inner(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let keys = self.key_all(keys).await?;
        let mut values = vec![None; keys.len()];
        for server in &self.servers {
            let mine: Vec<usize> = (0..keys.len())
                .filter(|&i| std::ptr::eq(self.server(&keys[i]), server))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let wanted: Vec<&str> = mine.iter().map(|&i| keys[i].as_str()).collect();
            let mut slot = self.slot(server).await?;
            let found = match connected(&mut slot)?.get_multi(wanted).await {
                Ok(found) => found,
                Err(e) if is_status(&e, &Status::NotFound) => Vec::new(),
                Err(e) => return Err(fail(&mut slot, "get_multi", e)),
            };
            for value in found {
                if let Some(&i) = mine.iter().find(|&&i| keys[i].as_bytes() == value.key) {
                    values[i] = value.data;
                }
            }
        }
        Ok(values)
    }

    async fn store_inner(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        only_if_absent: bool,
    ) -> Result<bool, Error> {
        let key = self.key(key).await?;
        let exptime = exptime(ttl);
        let mut slot = self.slot(self.server(&key)).await?;
        let client = connected(&mut slot)?;
        let result = if only_if_absent {
            client.add(&key, value, Some(exptime), None).await
        } else {
            client.set(&key, value, Some(exptime), None).await
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if only_if_absent && is_status(&e, &Status::NotStored) => Ok(false),
            Err(e) => Err(fail(
                &mut slot,
                if only_if_absent { "add" } else { "set" },
                e,
            )),
        }
    }

    /// The lease `token` under `key` replaced by `value`, by compare and
    /// swap (meta protocol: `mg <key> v c`, then `ms <key> C<cas>`): an
    /// invalidation that deletes or replaces the lease between the two
    /// changes the CAS value, and the set is refused.
    async fn fill_inner(
        &self,
        key: &str,
        token: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        let key = self.key(key).await?;
        let mut slot = self.slot(self.server(&key)).await?;
        let client = connected(&mut slot)?;
        let current = match client.meta_get(&key, false, None, Some(&["v", "c"])).await {
            Ok(current) => current,
            Err(e) => return Err(fail(&mut slot, "mg", e)),
        };
        let Some(current) = current else {
            return Ok(false);
        };
        if current.data.as_deref() != Some(token) {
            return Ok(false);
        }
        let Some(cas) = current.cas else {
            return Err(Error::new(
                ErrorKind::Store,
                "Memcached returned no CAS value",
            ));
        };
        let cas_flag = format!("C{cas}");
        let ttl_flag = format!("T{}", exptime(ttl));
        let mut flags = vec![cas_flag.as_str()];
        if ttl.is_some() {
            flags.push(ttl_flag.as_str());
        }
        let client = connected(&mut slot)?;
        match client
            .meta_set(&key, value, false, None, Some(&flags))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, &Status::Exists) || is_status(&e, &Status::NotFound) => {
                Ok(false)
            }
            Err(e) => Err(fail(&mut slot, "ms", e)),
        }
    }

    async fn delete_inner(&self, key: &str) -> Result<bool, Error> {
        let key = self.key(key).await?;
        let mut slot = self.slot(self.server(&key)).await?;
        match connected(&mut slot)?.delete(&key).await {
            Ok(()) => Ok(true),
            Err(e) if is_status(&e, &Status::NotFound) => Ok(false),
            Err(e) => Err(fail(&mut slot, "delete", e)),
        }
    }

    async fn incr_inner(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let key = self.key(key).await?;
        let mut slot = self.slot(self.server(&key)).await?;
        for _ in 0..CAS_ATTEMPTS {
            let client = connected(&mut slot)?;
            if let Ok(step) = u64::try_from(delta) {
                match client.increment(&key, step).await {
                    Ok(n) => {
                        return i64::try_from(n).map_err(|_| not_a_number(&key));
                    }
                    Err(e) if is_status(&e, &Status::NotFound) => {
                        match client
                            .add(&key, delta.to_string().as_str(), None, None)
                            .await
                        {
                            Ok(()) => return Ok(delta),
                            Err(e) if is_status(&e, &Status::NotStored) => continue,
                            Err(e) => return Err(fail(&mut slot, "add", e)),
                        }
                    }
                    // Not an unsigned decimal: a negative counter or no
                    // number at all; the CAS path below tells them apart.
                    Err(e) if is_client_error(&e) => {}
                    Err(e) => return Err(fail(&mut slot, "incr", e)),
                }
            }
            let client = connected(&mut slot)?;
            let current = match client
                .meta_get(&key, false, None, Some(&["v", "c", "t"]))
                .await
            {
                Ok(current) => current,
                Err(e) => return Err(fail(&mut slot, "mg", e)),
            };
            let Some(current) = current else {
                match client
                    .add(&key, delta.to_string().as_str(), None, None)
                    .await
                {
                    Ok(()) => return Ok(delta),
                    Err(e) if is_status(&e, &Status::NotStored) => continue,
                    Err(e) => return Err(fail(&mut slot, "add", e)),
                }
            };
            let number = std::str::from_utf8(current.data.as_deref().unwrap_or_default())
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
                .ok_or_else(|| not_a_number(&key))?;
            let Some(cas) = current.cas else {
                return Err(Error::new(
                    ErrorKind::Store,
                    "Memcached returned no CAS value",
                ));
            };
            let next = number.wrapping_add(delta);
            let cas_flag = format!("C{cas}");
            let ttl_flag = current
                .ttl_remaining
                .filter(|&t| t > 0)
                .map(|t| format!("T{t}"));
            let mut flags = vec![cas_flag.as_str()];
            flags.extend(ttl_flag.as_deref());
            match client
                .meta_set(&key, next.to_string().as_str(), false, None, Some(&flags))
                .await
            {
                Ok(_) => return Ok(next),
                Err(e) if is_status(&e, &Status::Exists) || is_status(&e, &Status::NotFound) => {}
                Err(e) => return Err(fail(&mut slot, "ms", e)),
            }
        }
        Err(Error::new(
            ErrorKind::Store,
            format!("Memcached incr of `{key}`: too much contention"),
        ))
    }

    async fn clear_inner(&self, prefix: &str) -> Result<(), Error> {
        if prefix != self.namespace {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "Memcached cannot list keys: this store clears its namespace `{}` only, \
                     not `{prefix}`",
                    self.namespace
                ),
            ));
        }
        self.read_or_bump_generation(true).await.map(|_| ())
    }
}

/// The client in `slot` ([`MemcachedStore::slot`] always fills it).
fn connected<'s>(slot: &'s mut Slot<'_>) -> Result<&'s mut Client, Error> {
    slot.guard
        .as_mut()
        .map(|p| &mut p.client)
        .ok_or_else(|| Error::new(ErrorKind::Store, "Memcached connection lost"))
}

/// A store error for `e`; drops the connection unless the server answered.
fn fail(slot: &mut Slot<'_>, what: &str, e: async_memcached::Error) -> Error {
    if !matches!(e, async_memcached::Error::Protocol(_)) {
        *slot.guard = None;
        slot.server.epoch.fetch_add(1, Ordering::AcqRel);
    }
    store_error(format!("Memcached {what} failed"), e)
}

/// Runs `operation`, and once more if it failed on a connection that
/// turned out to be broken (the server restarted): the second attempt
/// connects afresh, so the first call after a restart already succeeds.
async fn twice<T, F, Fut>(operation: F) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    match operation().await {
        Err(e) if broke_connection(&e) => operation().await,
        other => other,
    }
}

/// True for I/O faults on an established connection (not for a refused
/// connection: the server is down, trying again now is pointless).
fn broke_connection(error: &Error) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<async_memcached::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                async_memcached::Error::Io(_) | async_memcached::Error::ConnectionClosed
            )
        })
}

fn is_status(e: &async_memcached::Error, status: &Status) -> bool {
    matches!(e, async_memcached::Error::Protocol(s) if s == status)
}

fn is_client_error(e: &async_memcached::Error) -> bool {
    matches!(
        e,
        async_memcached::Error::Protocol(Status::Error(async_memcached::ErrorKind::Client(_)))
    )
}

fn not_a_number(key: &str) -> Error {
    Error::new(
        ErrorKind::NotANumber,
        format!("Memcached key `{key}` holds a value that is not an i64"),
    )
}

fn parse_u64(bytes: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(bytes?).ok()?.trim().parse().ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Memcached's exptime for `ttl`: 0 = never, whole seconds (rounded up)
/// up to 30 days, an absolute unix time beyond.
fn exptime(ttl: Option<Duration>) -> i64 {
    let Some(ttl) = ttl else { return 0 };
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let secs = secs.max(1);
    let secs = if secs > MAX_RELATIVE_SECS {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now.saturating_add(secs)
    } else {
        secs
    };
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// `key` if Memcached accepts it, else a readable head and its hash.
fn safe_key(key: String) -> String {
    let acceptable = |b: u8| (0x21..=0x7e).contains(&b);
    if key.len() <= MAX_KEY && key.bytes().all(acceptable) {
        return key;
    }
    let head: String = key
        .bytes()
        .take(200)
        .map(|b| if acceptable(b) { char::from(b) } else { '_' })
        .collect();
    format!("{head}#{:032x}", xxh3_128(key.as_bytes()))
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[async_trait]
impl RemoteStore for MemcachedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        bounded("Memcached get", self.timeout, twice(|| self.get_inner(key))).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        bounded(
            "Memcached get",
            self.timeout,
            twice(|| self.get_many_inner(keys)),
        )
        .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        bounded(
            "Memcached set",
            self.timeout,
            twice(|| self.store_inner(key, value, ttl, false)),
        )
        .await
        .map(|_| ())
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, Error> {
        bounded(
            "Memcached add",
            self.timeout,
            twice(|| self.store_inner(key, value, ttl, true)),
        )
        .await
    }

    async fn fill(
        &self,
        key: &str,
        token: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        bounded(
            "Memcached fill",
            self.timeout,
            twice(|| self.fill_inner(key, token, value, ttl)),
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, Error> {
        bounded(
            "Memcached delete",
            self.timeout,
            twice(|| self.delete_inner(key)),
        )
        .await
    }

    async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        bounded(
            "Memcached incr",
            self.timeout,
            twice(|| self.incr_inner(key, delta)),
        )
        .await
    }

    async fn clear(&self, prefix: &str) -> Result<(), Error> {
        bounded(
            "Memcached clear",
            self.timeout,
            twice(|| self.clear_inner(prefix)),
        )
        .await
    }
}

impl fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers: Vec<&str> = self.servers.iter().map(|s| s.address.as_str()).collect();
        f.debug_struct("MemcachedStore")
            .field("servers", &servers)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_and_long_keys_are_hashed_deterministically() {
        assert_eq!(safe_key("app:k".into()), "app:k");
        let spaced = safe_key("a b\n".into());
        assert!(spaced.starts_with("a_b_#"), "{spaced}");
        assert_eq!(spaced, safe_key("a b\n".into()));
        assert_ne!(spaced, safe_key("a_b_".into()));
        let long = safe_key("k".repeat(300));
        assert!(long.len() <= MAX_KEY, "{}", long.len());
        assert_ne!(long, safe_key("k".repeat(301)));
        let unicode = safe_key("ключ".into());
        assert!(unicode.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }

    #[test]
    fn timeouts_over_thirty_days_are_absolute() {
        assert_eq!(exptime(None), 0);
        assert_eq!(exptime(Some(Duration::from_millis(1))), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1500))), 2);
        assert_eq!(
            exptime(Some(Duration::from_secs(MAX_RELATIVE_SECS))),
            2_592_000
        );
        let far = exptime(Some(Duration::from_secs(MAX_RELATIVE_SECS + 1)));
        assert!(far > 1_700_000_000, "{far}");
    }

    #[test]
    fn keys_spread_over_servers_and_stay_put() {
        let servers: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", 11211 + i)).collect();
        let store = MemcachedStore::open(&servers, "").expect("store");
        let mut counts = [0; 3];
        for i in 0..300 {
            let key = format!("k{i}");
            let chosen = store.server(&key).address.clone();
            assert_eq!(chosen, store.server(&key).address);
            let index = servers.iter().position(|s| *s == chosen).expect("known");
            counts[index] += 1;
        }
        assert!(counts.iter().all(|&n| n > 50), "{counts:?}");
    }
}
