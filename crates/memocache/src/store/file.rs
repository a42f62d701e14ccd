//! One file per key in a directory, as Flask-Caching's `FileSystemCache`.
//!
//! A file is named by the XXH3-128 hash of its key and holds:
//!
//! ```text
//! [b"MCF1"] [expires_at: u64 LE unix ms, 0 = never] [key length: u32 LE] [key] [value]
//! ```
//!
//! Writes go to a temporary file in the same directory that is renamed
//! over the entry, so readers (in any process) see the old value or the
//! new one, never part of one. Every write (`set`, `add`, `incr`, `fill`,
//! `delete`, `clear`) runs under an advisory lock on `.lock` in the
//! directory, so several processes can share it, and `fill` (a lease
//! replaced by the loaded value) compares and writes atomically: an
//! invalidation during the load wins. When more than `threshold` entries exist, expired entries are
//! removed, then the oldest (by modification time) until `threshold`
//! remain.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use xxhash_rust::xxh3::xxh3_128;

use super::{RemoteStore, store_error};
use crate::error::{Error, ErrorKind};

const MAGIC: &[u8; 4] = b"MCF1";
const HEADER: usize = 16;
const SUFFIX: &str = ".mc";
const LOCK: &str = ".lock";

/// A directory of cache files as a [`RemoteStore`].
///
/// ```
/// use std::sync::Arc;
/// use memocache::{Cache, CacheConfig, store::FileStore};
///
/// let dir = std::env::temp_dir().join(format!("memocache-doc-{}", std::process::id()));
/// let store = FileStore::open(&dir, 1_000)?;
/// # let runtime = tokio::runtime::Runtime::new().unwrap();
/// # runtime.block_on(async {
/// let cache = Cache::with_store(CacheConfig::default(), Arc::new(store));
/// cache.set("greeting", "hello".to_owned(), memocache::Timeout::Default).await?;
/// let got: Option<Arc<String>> = cache.get("greeting").await?;
/// assert_eq!(got.as_deref().map(String::as_str), Some("hello"));
/// # Ok::<(), memocache::Error>(()) })?;
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), memocache::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    threshold: usize,
    /// Entries this process believes the directory holds; `usize::MAX`
    /// until first counted. A prune recounts.
    estimate: AtomicUsize,
}

/// An entry as read from its file.
struct Entry {
    expires_at: u64,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now
    }
}

impl FileStore {
    /// A store in `dir` (created when missing) keeping about `threshold`
    /// entries (0 = no limit).
    ///
    /// # Errors
    /// None today: a directory that cannot be created is reported by the
    /// first operation, so an application starts anyway.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("memocache-doc-open");
    /// let store = memocache::store::FileStore::open(&dir, 0)?; // 0: no limit
    /// # drop(store); std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), memocache::Error>(())
    /// ```
    pub fn open(dir: &Path, threshold: usize) -> Result<Self, Error> {
        let _ = fs::create_dir_all(dir);
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                threshold,
                estimate: AtomicUsize::new(usize::MAX),
            }),
        })
    }

    /// Runs `work` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce(&Inner) -> io::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let inner = Arc::clone(&self.inner);
        let result = tokio::task::spawn_blocking(move || work(&inner)).await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(store_error(format!("filesystem store: {what} failed"), e)),
            Err(e) => Err(store_error(format!("filesystem store: {what} panicked"), e)),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn deadline(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| {
        now_ms()
            .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .max(1)
    })
}

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl Inner {
    fn path(&self, key: &str) -> PathBuf {
        self.dir
            .join(format!("{:032x}{SUFFIX}", xxh3_128(key.as_bytes())))
    }

    /// The entry in `path`, if the file exists and is one of ours.
    fn read(path: &Path, header_only: bool) -> io::Result<Option<Entry>> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut header = [0u8; HEADER];
        if file.read_exact(&mut header).is_err() || &header[..4] != MAGIC {
            return Ok(None);
        }
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&header[4..12]);
        let mut key_len = [0u8; 4];
        key_len.copy_from_slice(&header[12..16]);
        let key_len = usize::try_from(u32::from_le_bytes(key_len)).unwrap_or(usize::MAX);
        let mut key = Vec::new();
        if (&mut file).take(key_len as u64).read_to_end(&mut key)? != key_len {
            return Ok(None);
        }
        let mut value = Vec::new();
        if !header_only {
            file.read_to_end(&mut value)?;
        }
        Ok(Some(Entry {
            expires_at: u64::from_le_bytes(expires),
            key,
            value,
        }))
    }

    /// The live value of `key`; an expired entry is removed.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let path = self.path(key);
        match Self::read(&path, false)? {
            Some(entry) if entry.key != key.as_bytes() => Ok(None),
            Some(entry) if entry.live(now_ms()) => Ok(Some(entry.value)),
            Some(_) => {
                self.remove(&path)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Writes the entry atomically (temporary file + rename); with
    /// `only_new`, fails with `AlreadyExists` instead of replacing.
    fn write(&self, key: &str, value: &[u8], expires_at: u64) -> io::Result<()> {
        let path = self.path(key);
        let existed = path.exists();
        let mut temp = match tempfile::NamedTempFile::new_in(&self.dir) {
            Ok(temp) => temp,
            Err(e) if is_not_found(&e) => {
                fs::create_dir_all(&self.dir)?;
                tempfile::NamedTempFile::new_in(&self.dir)?
            }
            Err(e) => return Err(e),
        };
        let key_len = u32::try_from(key.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "key over 4 GiB"))?;
        let mut bytes = Vec::with_capacity(HEADER + key.len() + value.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&expires_at.to_le_bytes());
        bytes.extend_from_slice(&key_len.to_le_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(value);
        temp.write_all(&bytes)?;
        temp.persist(&path).map_err(|e| e.error)?;
        if !existed {
            self.grew()?;
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<bool> {
        match fs::remove_file(path) {
            Ok(()) => {
                let _ = self
                    .estimate
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n != usize::MAX).then(|| n.saturating_sub(1))
                    });
                Ok(true)
            }
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Counts a new entry and prunes when over the threshold.
    fn grew(&self) -> io::Result<()> {
        if self.threshold == 0 {
            return Ok(());
        }
        let previous = self
            .estimate
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(if n == usize::MAX { n } else { n + 1 })
            })
            .unwrap_or(usize::MAX);
        if previous == usize::MAX || previous >= self.threshold {
            self.prune()?;
        }
        Ok(())
    }

    /// Our entry files, with their modification times.
    fn entries(&self) -> io::Result<Vec<(PathBuf, SystemTime)>> {
        let mut entries = Vec::new();
        for item in fs::read_dir(&self.dir)? {
            let item = item?;
            let name = item.file_name();
            if !name.to_string_lossy().ends_with(SUFFIX) {
                continue;
            }
            let modified = match item.metadata() {
                Ok(meta) => meta.modified().unwrap_or(UNIX_EPOCH),
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            entries.push((item.path(), modified));
        }
        Ok(entries)
    }

    /// Flask-Caching's `_prune`: over the threshold, drop expired entries,
    /// then the oldest, until `threshold` remain.
    fn prune(&self) -> io::Result<()> {
        let mut entries = self.entries()?;
        if entries.len() > self.threshold {
            let now = now_ms();
            let mut kept = Vec::with_capacity(entries.len());
            for (path, modified) in entries {
                match Self::read(&path, true)? {
                    Some(entry) if !entry.live(now) => {
                        let _ = fs::remove_file(&path);
                    }
                    _ => kept.push((path, modified)),
                }
            }
            entries = kept;
        }
        if entries.len() > self.threshold {
            entries.sort_by_key(|(_, modified)| *modified);
            let excess = entries.len() - self.threshold;
            for (path, _) in entries.drain(..excess) {
                let _ = fs::remove_file(&path);
            }
        }
        self.estimate.store(entries.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Runs `work` holding the directory's advisory lock (shared by every
    /// process using the directory).
    fn locked<T>(&self, work: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let path = self.dir.join(LOCK);
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if is_not_found(&e) => {
                fs::create_dir_all(&self.dir)?;
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)?
            }
            Err(e) => return Err(e),
        };
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
        let result = work();
        let _ = rustix::fs::flock(&file, rustix::fs::FlockOperation::Unlock);
        result
    }
}

/// Why an `incr` could not apply.
#[derive(Debug)]
struct NotANumber;

impl std::fmt::Display for NotANumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a number")
    }
}

impl std::error::Error for NotANumber {}

#[async_trait]
impl RemoteStore for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let key = key.to_owned();
        self.blocking("read", move |inner| inner.get(&key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let keys = keys.to_vec();
        self.blocking("read", move |inner| {
            keys.iter().map(|key| inner.get(key)).collect()
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.blocking("write", move |inner| {
            inner.locked(|| inner.write(&key, &value, deadline(ttl)))
        })
        .await
    }

    async fn set_many(
        &self,
        pairs: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let pairs = pairs.to_vec();
        self.blocking("write", move |inner| {
            let expires_at = deadline(ttl);
            inner.locked(|| {
                pairs
                    .iter()
                    .try_for_each(|(key, value)| inner.write(key, value, expires_at))
            })
        })
        .await
    }

    async fn add(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, Error> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.blocking("add", move |inner| {
            inner.locked(|| {
                if inner.get(&key)?.is_some() {
                    return Ok(false);
                }
                inner.write(&key, &value, deadline(ttl))?;
                Ok(true)
            })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, Error> {
        let key = key.to_owned();
        self.blocking("delete", move |inner| {
            inner.locked(|| {
                let live = inner.get(&key)?.is_some();
                let removed = inner.remove(&inner.path(&key))?;
                Ok(live && removed)
            })
        })
        .await
    }

    async fn fill(
        &self,
        key: &str,
        token: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        let (key, token, value) = (key.to_owned(), token.to_vec(), value.to_vec());
        self.blocking("fill", move |inner| {
            inner.locked(|| {
                if inner.get(&key)?.as_deref() != Some(token.as_slice()) {
                    return Ok(false);
                }
                inner.write(&key, &value, deadline(ttl))?;
                Ok(true)
            })
        })
        .await
    }

    async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let key = key.to_owned();
        let result = self
            .blocking("incr", move |inner| {
                inner.locked(|| {
                    let path = inner.path(&key);
                    let (current, expires_at) = match Inner::read(&path, false)? {
                        Some(entry) if entry.key == key.as_bytes() && entry.live(now_ms()) => {
                            let number = std::str::from_utf8(&entry.value)
                                .ok()
                                .and_then(|text| text.trim().parse::<i64>().ok())
                                .ok_or_else(|| io::Error::other(NotANumber))?;
                            (number, entry.expires_at)
                        }
                        _ => (0, 0),
                    };
                    let next = current.wrapping_add(delta);
                    inner.write(&key, next.to_string().as_bytes(), expires_at)?;
                    Ok(next)
                })
            })
            .await;
        result.map_err(|error| {
            let not_a_number = std::error::Error::source(&error)
                .and_then(|e| e.downcast_ref::<io::Error>())
                .and_then(io::Error::get_ref)
                .is_some_and(|e| e.is::<NotANumber>());
            if not_a_number {
                Error::new(
                    ErrorKind::NotANumber,
                    "the key holds a value that is not an i64",
                )
            } else {
                error
            }
        })
    }

    async fn clear(&self, prefix: &str) -> Result<(), Error> {
        let prefix = prefix.as_bytes().to_vec();
        self.blocking("clear", move |inner| {
            inner.locked(|| {
                let entries = match inner.entries() {
                    Ok(entries) => entries,
                    Err(e) if is_not_found(&e) => return Ok(()),
                    Err(e) => return Err(e),
                };
                for (path, _) in entries {
                    if let Some(entry) = Inner::read(&path, true)? {
                        if entry.key.starts_with(&prefix) {
                            inner.remove(&path)?;
                        }
                    }
                }
                Ok(())
            })
        })
        .await
    }
}
