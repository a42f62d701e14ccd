//! The cache URL's grammar: [`CacheConfig::from_url`]'s parser, and the
//! same options read off a Redis URL given to a store or bus by hand.

use std::time::Duration;

use url::Url;

use super::{CacheConfig, DEFAULT_CAPACITY, RedisOptions, StoreConfig};
use crate::breaker::BreakerConfig;
use crate::error::{Error, Result};

/// A Redis URL given to a store or bus constructor by hand, split into the
/// connection URL and memocache's own options (the only other place that
/// reads a URL's query is [`CacheConfig::from_url`], through the same
/// [`Options`]).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct RedisUrl {
    /// The URL without `timeout_ms` and `heartbeat_ms`.
    pub(crate) url: String,
    pub(crate) options: RedisOptions,
    /// `heartbeat_ms`, for a bus.
    pub(crate) heartbeat: Option<Duration>,
}

impl RedisUrl {
    /// Splits `input`; a string that is not a URL is handed on as it is
    /// (the Redis client says what is wrong with it).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn parse(input: &str) -> Result<Self> {
        let Ok(mut url) = Url::parse(input) else {
            return Ok(Self {
                url: input.to_owned(),
                options: RedisOptions::default(),
                heartbeat: None,
            });
        };
        let mut options = Options::new(&url, input);
        let redis = parse_redis_options(&mut options)?;
        let heartbeat = parse_heartbeat(&mut options)?;
        url.set_query(options.client_query().as_deref());
        Ok(Self {
            url: url.to_string(),
            options: redis,
            heartbeat,
        })
    }
}

fn parse_redis_options(options: &mut Options) -> Result<RedisOptions> {
    let mut redis = RedisOptions::default();
    if let Some(ms) = options.take_parsed::<u64>("timeout_ms")? {
        redis = redis.timeout(Duration::from_millis(ms));
    }
    Ok(redis)
}

fn parse_heartbeat(options: &mut Options) -> Result<Option<Duration>> {
    Ok(options
        .take_parsed::<u64>("heartbeat_ms")?
        .map(Duration::from_millis))
}

/// [`CacheConfig::from_url`].
pub(super) fn parse_cache_url(input: &str) -> Result<CacheConfig> {
    parse_cache_url_with(input, &[])
}

/// [`CacheConfig::from_url`] of `input` with `overrides` in place of the
/// URL's own options of the same names (environment variables).
pub(super) fn parse_cache_url_with(
    input: &str,
    overrides: &[(String, String)],
) -> Result<CacheConfig> {
    // `url` cannot parse `host1:1,host2:2` authorities: take the host
    // list out before parsing and put a placeholder host in.
    let (parsable, hosts) = split_host_list(input);
    let url = Url::parse(&parsable)
        .map_err(|e| Error::config(format!("invalid cache URL `{input}`: {e}")))?;
    let mut options = Options::new(&url, input);
    for (name, value) in overrides {
        options.pairs.retain(|(k, _)| k != name);
        options.pairs.push((name.clone(), value.clone()));
    }
    let capacity_bytes = take_capacity_bytes(&url, &mut options)?;
    let count_given = options
        .pairs
        .iter()
        .any(|(k, _)| k == "capacity" || k == "l1_capacity");
    let mut store = parse_store(&url, hosts.as_deref(), &mut options)?;
    if capacity_bytes.is_some() && !count_given {
        // Only the bytes bound.
        match &mut store {
            StoreConfig::Memory { capacity } => *capacity = usize::MAX,
            StoreConfig::Tiered { l1_capacity, .. } => *l1_capacity = usize::MAX,
            _ => {}
        }
    }
    let mut config = CacheConfig::with_store(store);
    config.capacity_bytes = capacity_bytes;
    if let Some(prefix) = options.take("prefix") {
        config.key_prefix = prefix;
    }
    if let Some(seconds) = options.take_parsed::<u64>("timeout")? {
        config = config.default_timeout(Some(Duration::from_secs(seconds)));
    }
    if let Some(strict) = options.take_parsed::<bool>("strict")? {
        config.strict = strict;
    }
    if let Some(ms) = options.take_parsed::<u64>("stall_timeout_ms")? {
        config.stall_timeout = Duration::from_millis(ms);
    }
    if let Some(bytes) = options.take_parsed::<usize>("max_value_size")? {
        config.max_value_size = bytes;
    }
    if let Some(ms) = options.take_parsed::<u64>("lease_wait_ms")? {
        config.lease_wait = Duration::from_millis(ms);
    }
    config.breaker = parse_breaker(&mut options)?;
    config.bus_heartbeat = parse_heartbeat(&mut options)?;
    options.finish()?;
    Ok(config)
}

/// The in-process byte budget: `capacity_bytes` on `memory://`,
/// `l1_capacity_bytes` on a tiered URL; an error on a store without an
/// in-process tier.
fn take_capacity_bytes(url: &Url, options: &mut Options) -> Result<Option<u64>> {
    let tiered = url.scheme().starts_with("tiered+");
    let (name, other) = if tiered {
        ("l1_capacity_bytes", "capacity_bytes")
    } else {
        ("capacity_bytes", "l1_capacity_bytes")
    };
    if options.pairs.iter().any(|(k, _)| k == other) {
        return Err(Error::config(format!(
            "cache URL `{}`: option `{other}`: {}",
            options.source,
            if tiered {
                "a tiered cache's in-process budget is `l1_capacity_bytes`"
            } else {
                "only a tiered cache has `l1_capacity_bytes`; use `capacity_bytes`"
            }
        )));
    }
    let Some(raw) = options.take(name) else {
        return Ok(None);
    };
    if !tiered && !matches!(url.scheme(), "memory" | "simple") {
        return Err(Error::config(format!(
            "cache URL `{}`: option `{name}`: only `memory://` and tiered caches keep \
             values in process",
            options.source
        )));
    }
    parse_size(&raw).map(Some).map_err(|e| {
        Error::config(format!(
            "cache URL `{}`: option `{name}={raw}`: {e}",
            options.source
        ))
    })
}

/// Parses a size as the URL's `capacity_bytes=` takes it: `64MiB`,
/// `512KiB`, `2MB`, `1G` or a plain number of bytes (more than 0). Public
/// so that applications read their own size settings the same way.
///
/// # Errors
/// A message naming the accepted forms.
///
/// ```
/// assert_eq!(memocache::parse_size("64MiB"), Ok(64 << 20));
/// assert_eq!(memocache::parse_size("2MB"), Ok(2_000_000));
/// assert!(memocache::parse_size("0").is_err());
/// assert!(memocache::parse_size("5 parsecs").is_err());
/// ```
pub fn parse_size(input: &str) -> std::result::Result<u64, String> {
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{input}` is not a size such as 64MiB, 500KB or 1048576"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    match number.checked_mul(factor) {
        Some(0) => Err("the size must be more than 0".to_owned()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("`{input}` is too large")),
    }
}

fn parse_breaker(options: &mut Options) -> Result<BreakerConfig> {
    let mut breaker = BreakerConfig::default();
    if let Some(raw) = options.take("breaker") {
        breaker.enabled = match raw.as_str() {
            "on" | "true" | "1" => true,
            "off" | "false" | "0" => false,
            _ => {
                return Err(Error::config(format!(
                    "cache URL `{}`: option `breaker={raw}`: expected `on` or `off`",
                    options.source
                )));
            }
        };
    }
    if let Some(ms) = options.take_parsed::<u64>("probe_ms")? {
        breaker.probe_interval = Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = options.take_parsed::<u64>("probe_max_ms")? {
        breaker.probe_max = Duration::from_millis(ms.max(1));
    }
    if let Some(errors) = options.take_parsed::<u32>("breaker_errors")? {
        breaker.error_burst = errors.max(1);
    }
    if let Some(ms) = options.take_parsed::<u64>("read_deadline_ms")? {
        breaker.read_deadline = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if breaker.probe_max < breaker.probe_interval {
        return Err(Error::config(format!(
            "cache URL `{}`: `probe_max_ms` ({} ms) is shorter than `probe_ms` ({} ms)",
            options.source,
            breaker.probe_max.as_millis(),
            breaker.probe_interval.as_millis()
        )));
    }
    Ok(breaker)
}

/// Schemes whose authority is a comma-separated list of servers.
const HOST_LIST_SCHEMES: [&str; 5] = [
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
    "memcached",
];

fn split_host_list(input: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = input.split_once("://") else {
        return (input.to_owned(), None);
    };
    let base_scheme = scheme.strip_prefix("tiered+").unwrap_or(scheme);
    if !HOST_LIST_SCHEMES.contains(&base_scheme) {
        return (input.to_owned(), None);
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    (
        format!("{scheme}://hosts{tail}"),
        Some(authority.to_owned()),
    )
}

fn parse_store(url: &Url, hosts: Option<&str>, options: &mut Options) -> Result<StoreConfig> {
    let scheme = url.scheme();
    if let Some(l2_scheme) = scheme.strip_prefix("tiered+") {
        let l1_capacity = options
            .take_parsed::<usize>("l1_capacity")?
            .unwrap_or(DEFAULT_CAPACITY);
        let l2_url = replace_scheme(url, l2_scheme)?;
        let l2 = parse_store(&l2_url, hosts, options)?;
        if matches!(l2, StoreConfig::Memory { .. } | StoreConfig::Null) {
            return Err(Error::config(format!(
                "`{scheme}`: a tiered cache needs a shared store behind it, not `{l2_scheme}`"
            )));
        }
        return Ok(StoreConfig::Tiered {
            l1_capacity,
            l2: Box::new(l2),
        });
    }
    match scheme {
        "memory" | "simple" => Ok(StoreConfig::Memory {
            capacity: options
                .take_parsed::<usize>("capacity")?
                .unwrap_or(DEFAULT_CAPACITY),
        }),
        "null" => Ok(StoreConfig::Null),
        "redis" | "rediss" | "redis+unix" | "unix" => {
            let redis = parse_redis_options(options)?;
            // The Redis client's own options (`protocol`, ...) stay on its URL.
            let mut plain = url.clone();
            plain.set_query(options.client_query().as_deref());
            Ok(StoreConfig::Redis {
                url: plain.to_string(),
                options: redis,
            })
        }
        "redis+cluster" | "rediss+cluster" => {
            let secure = scheme.starts_with("rediss");
            let redis = parse_redis_options(options)?;
            let query = options
                .client_query()
                .map(|q| format!("/?{q}"))
                .unwrap_or_default();
            let nodes = host_list(url, hosts)?
                .into_iter()
                .map(|node| {
                    format!(
                        "{}://{node}{query}",
                        if secure { "rediss" } else { "redis" }
                    )
                })
                .collect();
            Ok(StoreConfig::RedisCluster {
                nodes,
                options: redis,
            })
        }
        "redis+sentinel" | "rediss+sentinel" => parse_sentinel(url, hosts, options),
        "memcached" => Ok(StoreConfig::Memcached {
            servers: host_list(url, hosts)?,
        }),
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| Error::config(format!("`{url}` does not name a local directory")))?;
            Ok(StoreConfig::FileSystem {
                path,
                threshold: options.take_parsed::<usize>("threshold")?.unwrap_or(500),
            })
        }
        other => Err(Error::config(format!(
            "unknown cache scheme `{other}://` (expected memory, null, redis, rediss, \
             redis+cluster, redis+sentinel, memcached, file, or tiered+<store>)"
        ))),
    }
}

/// Port of a sentinel whose address names none.
const SENTINEL_PORT: u16 = 26379;

/// `redis+sentinel://[user:password@]host1[:port],host2[:port]/<master>[/<db>]?...`:
/// the credentials, database, TLS and client options are the master's;
/// `sentinel_username` / `sentinel_password` the sentinels'.
fn parse_sentinel(url: &Url, hosts: Option<&str>, options: &mut Options) -> Result<StoreConfig> {
    let source = options.source.clone();
    let bad = |what: String| Error::config(format!("sentinel URL `{source}`: {what}"));
    let scheme = if url.scheme().starts_with("rediss") {
        "rediss"
    } else {
        "redis"
    };
    let authority = hosts.unwrap_or_default();
    let (userinfo, list) = match authority.rsplit_once('@') {
        Some((userinfo, list)) => (Some(userinfo), list),
        None => (None, authority),
    };
    let mut addresses = Vec::new();
    for address in list.split(',').filter(|a| !a.is_empty()) {
        addresses.push(sentinel_address(address).map_err(&bad)?);
    }
    if addresses.is_empty() {
        return Err(bad(
            "names no sentinel (expected `redis+sentinel://host1:26379,host2:26379/<master>`)"
                .to_owned(),
        ));
    }
    let mut segments = url
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty());
    let master = segments.next().map(str::to_owned).ok_or_else(|| {
        bad("names no master: add the name the sentinels monitor it under as the path,              e.g. `redis+sentinel://host:26379/mymaster`"
            .to_owned())
    })?;
    let path_db = segments.next();
    if let Some(extra) = segments.next() {
        return Err(bad(format!(
            "unexpected path segment `{extra}` (expected `/<master>[/<db>]`)"
        )));
    }
    let db = match (options.take("db"), path_db) {
        (Some(db), _) => db,
        (None, Some(db)) => db.to_owned(),
        (None, None) => "0".to_owned(),
    };
    if db.parse::<u32>().is_err() {
        return Err(bad(format!("database `{db}` is not a number")));
    }
    let sentinel_username = options.take("sentinel_username");
    let sentinel_password = options.take("sentinel_password");
    let redis = parse_redis_options(options)?;
    let query = options
        .client_query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let fragment = url.fragment().map(|f| format!("#{f}")).unwrap_or_default();
    let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let master_url = format!("{scheme}://{userinfo}master:6379/{db}{query}{fragment}");
    let mut sentinels = Vec::with_capacity(addresses.len());
    for (host, port) in addresses {
        let mut sentinel = Url::parse(&format!("{scheme}://{host}:{port}"))
            .map_err(|e| bad(format!("sentinel address `{host}:{port}`: {e}")))?;
        if let Some(username) = &sentinel_username {
            sentinel
                .set_username(username)
                .map_err(|()| bad("bad `sentinel_username`".to_owned()))?;
        }
        if let Some(password) = &sentinel_password {
            sentinel
                .set_password(Some(password))
                .map_err(|()| bad("bad `sentinel_password`".to_owned()))?;
        }
        let mut sentinel = sentinel.to_string();
        if !query.is_empty() {
            sentinel.push('/');
            sentinel.push_str(&query);
        }
        sentinel.push_str(&fragment);
        sentinels.push(sentinel);
    }
    Ok(StoreConfig::RedisSentinel {
        sentinels,
        master,
        master_url,
        options: redis,
    })
}

/// `host[:port]` or `[v6]:port` of one sentinel.
fn sentinel_address(address: &str) -> std::result::Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("sentinel address `{address}`: unclosed `[`"))?;
        (format!("[{host}]"), after.strip_prefix(':'))
    } else {
        match address.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (address.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("sentinel address `{address}` has no host"));
    }
    let port = match port {
        None => SENTINEL_PORT,
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| format!("sentinel address `{address}`: `{port}` is not a port number"))?,
    };
    Ok((host, port))
}

/// The servers of a host-list URL, as split off by [`split_host_list`].
fn host_list(url: &Url, hosts: Option<&str>) -> Result<Vec<String>> {
    let hosts: Vec<String> = hosts
        .unwrap_or_default()
        .split(',')
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    if hosts.is_empty() {
        return Err(Error::config(format!("`{url}` names no server")));
    }
    Ok(hosts)
}

fn replace_scheme(url: &Url, scheme: &str) -> Result<Url> {
    let raw = url.as_str();
    let rest = raw
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    Url::parse(&format!("{scheme}://{rest}"))
        .map_err(|e| Error::config(format!("invalid cache URL `{raw}`: {e}")))
}

/// memocache's options that a Redis URL may carry besides the store's own
/// (`timeout_ms`, taken before [`Options::client_query`]).
const COMMON_OPTIONS: [&str; 11] = [
    "heartbeat_ms",
    "prefix",
    "timeout",
    "strict",
    "stall_timeout_ms",
    "max_value_size",
    "lease_wait_ms",
    "breaker",
    "probe_ms",
    "probe_max_ms",
    "breaker_errors",
];

/// Query options, consumed one by one so that unknown options are reported.
struct Options {
    pairs: Vec<(String, String)>,
    source: String,
}

impl Options {
    fn new(url: &Url, source: &str) -> Self {
        Self {
            pairs: url.query_pairs().into_owned().collect(),
            source: source.to_owned(),
        }
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let index = self.pairs.iter().position(|(k, _)| k == name)?;
        Some(self.pairs.remove(index).1)
    }

    fn take_parsed<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.take(name)
            .map(|raw| {
                raw.parse::<T>().map_err(|e| {
                    Error::config(format!(
                        "cache URL `{}`: option `{name}={raw}`: {e}",
                        self.source
                    ))
                })
            })
            .transpose()
    }

    /// Options that are not memocache's, handed on to the Redis client's
    /// own URL parser (`protocol`, ...).
    fn client_query(&mut self) -> Option<String> {
        let (common, own): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(k, _)| COMMON_OPTIONS.contains(&k.as_str()));
        self.pairs = common;
        if own.is_empty() {
            return None;
        }
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &own {
            out.append_pair(k, v);
        }
        Some(out.finish())
    }

    fn finish(self) -> Result<()> {
        match self.pairs.first() {
            None => Ok(()),
            Some((name, _)) => Err(Error::config(format!(
                "cache URL `{}`: unknown option `{name}`",
                self.source
            ))),
        }
    }
}
