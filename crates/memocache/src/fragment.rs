//! [`Fragments`]: cached pieces of a page, Jinja's `{% cache %}` block.
//!
//! A fragment is rendered once, kept in process under its name and
//! arguments, and served until something it read is invalidated: the
//! memos and keys its renderer read (and the tags it set with
//! [`Cache::tag`]) are its dependencies, as for cached responses (see the
//! `deps` module docs in the source). A fragment rendered inside a cached
//! response passes its dependencies on to the response, on a hit as on a
//! miss.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::cache::Cache;
use crate::deps::{Deps, Recorder};
use crate::key::KeyHash;
use crate::local::LocalTable;
use crate::reach::Reach;

/// The reserved scope of fragment keys (for [`Fragments::forget`]).
const FRAGMENT_SCOPE: &str = "\0fragment";

/// Fragments kept by default.
const DEFAULT_CAPACITY: usize = 1000;

struct Rendered {
    text: Arc<str>,
    deps: Deps,
}

/// A table of rendered fragments on a [`Cache`].
///
/// ```
/// # futures::executor::block_on(async {
/// use memocache::{Cache, Fragments, Memo};
///
/// let cache = Cache::memory();
/// let names = Memo::<(), Vec<String>>::builder("names").build(&cache)?;
/// let fragments = Fragments::new(&cache);
///
/// let sidebar = || async {
///     let names = names.get_or_load(&(), || async { vec!["ada".to_string()] }).await;
///     format!("<ul><li>{}</li></ul>", names.join("</li><li>"))
/// };
/// let html = fragments.get_or_render("sidebar", &"en", sidebar).await;
/// assert_eq!(&*html, "<ul><li>ada</li></ul>");
///
/// // The sidebar read `names`: forgetting it re-renders the sidebar.
/// names.forget_all().await;
/// let sidebar = || async {
///     let names = names.get_or_load(&(), || async { vec!["bob".to_string()] }).await;
///     format!("<ul><li>{}</li></ul>", names.join("</li><li>"))
/// };
/// let html = fragments.get_or_render("sidebar", &"en", sidebar).await;
/// assert_eq!(&*html, "<ul><li>bob</li></ul>");
/// # Ok::<(), memocache::Error>(())
/// # }).unwrap();
/// ```
///
/// Fragments live in the process that rendered them (they are cheap to
/// render again); their invalidation reaches every process of a tiered
/// cache before `forget` returns, like a memo's. On a shared store without
/// a bus (`redis://`, `memcached://`, `file://`) no fragment is kept: no
/// invalidation made by another process, of the fragment or of what it
/// read, would reach this one, so each call renders (the memos it reads
/// still hit the shared store). Concurrent misses of one fragment each
/// render it. Tested on Redis, Memcached and tiered Redis with two
/// processes (`suite::fragments`).
pub struct Fragments {
    cache: Cache,
    table: LocalTable<Arc<Rendered>>,
    lifetime: Option<Duration>,
}

impl Fragments {
    /// A table of up to 1000 fragments on `cache`, kept for its default
    /// timeout.
    ///
    /// ```
    /// let cache = memocache::Cache::memory();
    /// let fragments = memocache::Fragments::new(&cache);
    /// # drop(fragments);
    /// ```
    pub fn new(cache: &Cache) -> Self {
        Self::with_capacity(cache, DEFAULT_CAPACITY)
    }

    /// A table of up to `capacity` fragments.
    ///
    /// ```
    /// let cache = memocache::Cache::memory();
    /// let fragments = memocache::Fragments::with_capacity(&cache, 50)
    ///     .timeout(std::time::Duration::from_secs(60));
    /// # drop(fragments);
    /// ```
    pub fn with_capacity(cache: &Cache, capacity: usize) -> Self {
        Self {
            cache: cache.clone(),
            table: LocalTable::new(capacity.max(1)),
            lifetime: cache.config().default_timeout,
        }
    }

    /// How long a fragment is kept at most (`Duration::ZERO`: until
    /// invalidated or evicted).
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = memocache::Cache::memory();
    /// let fragments = memocache::Fragments::new(&cache).timeout(Duration::from_secs(30));
    /// # drop(fragments);
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.lifetime = (!timeout.is_zero()).then_some(timeout);
        self
    }

    fn key<A: Serialize + ?Sized>(name: &str, args: &A) -> Option<u128> {
        let args = KeyHash::of(args).ok()?;
        Some(xxh3_128(name.as_bytes()) ^ args.0.rotate_left(1))
    }

    /// The fragment `name` for `args`: the kept rendering if nothing it
    /// read changed since, else `render`'s (kept for next time).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// let fragments = memocache::Fragments::new(&cache);
    /// let footer = fragments.get_or_render("footer", &2026, || async { "(c) 2026".to_owned() }).await;
    /// let again = fragments.get_or_render("footer", &2026, || async { unreachable!("kept") }).await;
    /// assert_eq!(footer, again);
    /// # });
    /// ```
    pub async fn get_or_render<A, F, Fut>(&self, name: &str, args: &A, render: F) -> Arc<str>
    where
        A: Serialize + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = String>,
    {
        let render = || async { Ok::<String, std::convert::Infallible>(render().await) };
        match self.try_get_or_render(name, args, render).await {
            Ok(text) => text,
            Err(never) => match never {},
        }
    }

    /// As [`Fragments::get_or_render`] for a renderer that can fail (a
    /// database read inside it); an error is returned and nothing kept.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// let fragments = memocache::Fragments::new(&cache);
    /// let failed = fragments
    ///     .try_get_or_render("list", &1, || async { Err::<String, _>("db down") })
    ///     .await;
    /// assert_eq!(failed, Err("db down"));
    /// let list = fragments
    ///     .try_get_or_render("list", &1, || async { Ok::<_, &str>("<ul></ul>".into()) })
    ///     .await;
    /// assert_eq!(list.as_deref(), Ok("<ul></ul>"));
    /// # });
    /// ```
    ///
    /// # Errors
    /// The renderer's.
    pub async fn try_get_or_render<A, F, Fut, E>(
        &self,
        name: &str,
        args: &A,
        render: F,
    ) -> Result<Arc<str>, E>
    where
        A: Serialize + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, E>>,
    {
        let Some(key) = Self::key(name, args) else {
            crate::deps::record_untracked();
            return render().await.map(Arc::from);
        };
        let stamps = self.cache.stamps();
        let now = self.cache.clock().now_ms();
        if let Some(hit) = self.table.get(&KeyHash(key), now) {
            if self.cache.l1_trusted() && stamps.fresh(&hit.deps) {
                crate::deps::record_deps(stamps, &hit.deps);
                return Ok(Arc::clone(&hit.text));
            }
        }
        let recorder = Recorder::start(stamps);
        let text: Arc<str> = recorder
            .run(async {
                // The fragment's own key: a `forget` of it from another
                // process reaches this one only through a bus.
                crate::deps::record_key(
                    stamps,
                    crate::deps::scope_hash(FRAGMENT_SCOPE),
                    key,
                    || self.cache.deps_tracked(),
                );
                render().await.map(Arc::from)
            })
            .await?;
        if let Some(deps) = recorder.finish() {
            if stamps.fresh(&deps) {
                let expires_at = self.cache.clock().deadline(self.lifetime);
                let rendered = Arc::new(Rendered {
                    text: Arc::clone(&text),
                    deps,
                });
                // Count-bounded: the weight is never asked.
                let _ = self
                    .table
                    .insert(KeyHash(key), rendered, expires_at, |r| r.text.len() as u64);
            }
        }
        Ok(text)
    }

    /// Forgets the fragment `name` for `args`, in every process; says
    /// whether every process was reached (see [`Reach`]).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let cache = memocache::Cache::memory();
    /// let fragments = memocache::Fragments::new(&cache);
    /// fragments.get_or_render("motd", &(), || async { "hello".to_owned() }).await;
    /// assert!(fragments.forget("motd", &()).await.is_fleet());
    /// let motd = fragments.get_or_render("motd", &(), || async { "bye".to_owned() }).await;
    /// assert_eq!(&*motd, "bye");
    /// # });
    /// ```
    pub async fn forget<A: Serialize + ?Sized>(&self, name: &str, args: &A) -> Reach {
        match Self::key(name, args) {
            Some(key) => {
                self.table.remove(&KeyHash(key));
                self.cache.invalidate_dep_key(FRAGMENT_SCOPE, key).await
            }
            // Never stored under any key.
            None => Reach::FLEET,
        }
    }
}

impl fmt::Debug for Fragments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fragments")
            .field("cache", &self.cache)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}
