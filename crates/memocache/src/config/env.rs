//! Configuration from the environment: [`CacheConfig::from_env`], the
//! twelve-factor way to point a deployed program at its cache.

use super::{CacheConfig, parse};
use crate::error::{Error, Result};

/// The variable that holds the cache URL.
pub const ENV_URL_VARIABLE: &str = "MEMOCACHE_URL";
/// What every other variable of the cache starts with.
const PREFIX: &str = "MEMOCACHE_";

impl CacheConfig {
    /// The configuration the environment gives: [`ENV_URL_VARIABLE`]
    /// (`MEMOCACHE_URL`, default `memory://`) is the cache URL, and every
    /// other `MEMOCACHE_<OPTION>` variable sets the URL option `<option>`
    /// (lower case), in place of the URL's own. So the names map one to one
    /// onto [`CacheConfig::from_url`]'s options, and so do Flask-Caching's:
    ///
    /// | Flask-Caching | memocache |
    /// |---|---|
    /// | `CACHE_TYPE` + `CACHE_REDIS_URL` (or `CACHE_MEMCACHED_SERVERS`, `CACHE_DIR`) | `MEMOCACHE_URL=redis://host:6379/0` (`memcached://h1,h2`, `file:///dir`, `memory://`, `tiered+redis://…`, `null://`) |
    /// | `CACHE_DEFAULT_TIMEOUT` | `MEMOCACHE_TIMEOUT` (seconds) |
    /// | `CACHE_KEY_PREFIX` | `MEMOCACHE_PREFIX` |
    /// | `CACHE_THRESHOLD` | `MEMOCACHE_CAPACITY` (in-process entries per memo) |
    /// | (none: Flask-Caching counts entries only) | `MEMOCACHE_CAPACITY_BYTES` (in-process bytes per memo, `256MiB`; `MEMOCACHE_L1_CAPACITY_BYTES` on a tiered URL) |
    /// | `CACHE_IGNORE_ERRORS` | the default; `MEMOCACHE_STRICT=true` is its opposite |
    /// | `CACHE_OPTIONS={"socket_timeout": …}` | `MEMOCACHE_TIMEOUT_MS` |
    /// | `CACHE_TYPE=RedisSentinelCache` + `CACHE_REDIS_SENTINELS` + `CACHE_REDIS_SENTINEL_MASTER` | `MEMOCACHE_URL=redis+sentinel://h1:26379,h2:26379/mymaster` (or `tiered+redis+sentinel://…`) |
    /// | `CACHE_REDIS_PASSWORD` | in the URL: `redis+sentinel://:password@h1,h2/mymaster` |
    /// | `CACHE_REDIS_SENTINEL_PASSWORD` | `MEMOCACHE_SENTINEL_PASSWORD` (and `MEMOCACHE_SENTINEL_USERNAME`) |
    /// | `CACHE_REDIS_DB` | `MEMOCACHE_DB` on a Sentinel URL; the path of a `redis://` URL |
    ///
    /// # Errors
    /// A [`Config`](crate::ErrorKind::Config) error that names the variable
    /// and its value: a bad URL, an option the store does not take (a
    /// misspelt variable is one), or a value that does not parse.
    ///
    /// ```
    /// // SAFETY: a single-threaded doctest; programs read, not write, it.
    /// unsafe {
    ///     std::env::set_var("MEMOCACHE_URL", "memory://?capacity=500");
    ///     std::env::set_var("MEMOCACHE_PREFIX", "board:");
    /// }
    /// let config = memocache::CacheConfig::from_env()?;
    /// assert_eq!(config.key_prefix, "board:");
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Self::from_vars(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// [`CacheConfig::from_env`] on the given variables (other names are
    /// ignored): for tests, or a configuration kept elsewhere.
    ///
    /// # Errors
    /// As [`CacheConfig::from_env`].
    ///
    /// ```
    /// use memocache::CacheConfig;
    /// let vars = [("MEMOCACHE_URL", "memory://"), ("MEMOCACHE_TIMEOUT", "60"), ("HOME", "/root")];
    /// let config = CacheConfig::from_vars(vars.map(|(k, v)| (k.to_owned(), v.to_owned())))?;
    /// assert_eq!(config.default_timeout, Some(std::time::Duration::from_secs(60)));
    ///
    /// let typo = [("MEMOCACHE_TIMEOUT", "soon")];
    /// let error = CacheConfig::from_vars(typo.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap_err();
    /// assert!(error.to_string().contains("MEMOCACHE_TIMEOUT=soon"));
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut url = None;
        let mut options: Vec<(String, String, String)> = Vec::new();
        for (name, value) in vars {
            if name == ENV_URL_VARIABLE {
                url = Some(value);
            } else if let Some(option) = name.strip_prefix(PREFIX) {
                options.push((name.clone(), option.to_ascii_lowercase(), value));
            }
        }
        // The order of the environment is not the program's: sorted, so a
        // fault is reported the same way every time.
        options.sort();
        let url = url.unwrap_or_else(|| "memory://".to_owned());
        parse::parse_cache_url(&url)
            .map_err(|e| Error::config(format!("environment variable {ENV_URL_VARIABLE}: {e}")))?;
        for (name, option, value) in &options {
            let one = [(option.clone(), value.clone())];
            parse::parse_cache_url_with(&url, &one)
                .map_err(|e| Error::config(format!("environment variable {name}={value}: {e}")))?;
        }
        let all: Vec<(String, String)> = options
            .into_iter()
            .map(|(_, option, value)| (option, value))
            .collect();
        parse::parse_cache_url_with(&url, &all)
    }
}
