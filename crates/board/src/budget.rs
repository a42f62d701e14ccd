//! Budgets counted in the cache: "at most N per window" for any key, kept
//! once for a fleet that shares its cache.
//!
//! The login limits ([`crate::auth::ratelimit`]) and the post and upload
//! budgets ([`crate::data`]) are both made of these.
//!
//! # The rule
//!
//! A budget is a counter under its key in the cache, started by the first
//! take of a window (`add` with the window as its timeout) and counted
//! with `inc`, which is atomic in process and on Redis: of N parallel
//! takes at most the allowance are granted, in one process or in a fleet
//! sharing the cache. The window is fixed from its first take and ends
//! with the counter's timeout; the take that starts it also records the
//! start, so a refusal can say when the window ends (`Retry-After`).
//!
//! Where the shared store cannot be reached (`inc` fails open with
//! nothing counted), the budget is kept in this process alone, in a small
//! in-process cache: each of N processes then grants up to the allowance,
//! N times the fleet's budget, but never an unlimited one. With
//! `null://` (nothing cached, documented on `--cache-url`) nothing is
//! counted and nothing is limited.
//!
//! An allowance is given as `AMOUNT/WINDOW` (`30/10m`, `100MiB/1d`); a
//! budget with a burst is two of them, a short window and a long one
//! (`30/10m,200/1d`), each counted on its own key.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use memocache::{Cache, CacheConfig, StoreConfig, Timeout};

/// `amount` per `window`: an allowance of a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// How much one window allows (a count, or bytes).
    pub amount: u64,
    /// The window, from its first take.
    pub window: Duration,
}

impl Allowance {
    /// `amount` per `window`.
    pub const fn new(amount: u64, window: Duration) -> Self {
        Self { amount, window }
    }

    /// Parses `AMOUNT/WINDOW` where the amount is a plain count (`30/10m`).
    ///
    /// # Errors
    /// A message naming the accepted form.
    ///
    /// ```
    /// use board::budget::Allowance;
    /// use std::time::Duration;
    /// let a = Allowance::parse_count("30/10m").unwrap();
    /// assert_eq!(a, Allowance::new(30, Duration::from_secs(600)));
    /// assert!(Allowance::parse_count("30").is_err());
    /// ```
    pub fn parse_count(input: &str) -> Result<Self, String> {
        Self::parse_with(input, |amount| {
            amount
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("`{amount}` is not a count"))
        })
    }

    /// Parses `SIZE/WINDOW` where the amount is a size (`100MiB/1d`).
    ///
    /// # Errors
    /// A message naming the accepted form.
    ///
    /// ```
    /// use board::budget::Allowance;
    /// use std::time::Duration;
    /// let a = Allowance::parse_bytes("100MiB/1d").unwrap();
    /// assert_eq!(a, Allowance::new(100 << 20, Duration::from_secs(86_400)));
    /// ```
    pub fn parse_bytes(input: &str) -> Result<Self, String> {
        Self::parse_with(input, crate::units::parse_size)
    }

    fn parse_with(
        input: &str,
        amount: impl Fn(&str) -> Result<u64, String>,
    ) -> Result<Self, String> {
        let (left, right) = input
            .split_once('/')
            .ok_or_else(|| format!("`{input}` is not AMOUNT/WINDOW, such as 30/10m"))?;
        let allowance = Self {
            amount: amount(left)?,
            window: crate::units::parse_duration(right)?,
        };
        if allowance.amount == 0 || allowance.window.is_zero() {
            return Err(format!(
                "`{input}`: the amount and the window must be more than 0"
            ));
        }
        Ok(allowance)
    }

    /// A short name of the window for keys: its length in seconds.
    fn key_part(self) -> String {
        format!("{}s", self.window.as_secs().max(1))
    }
}

impl fmt::Display for Allowance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.amount, self.window.as_secs())
    }
}

impl FromStr for Allowance {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, String> {
        Self::parse_count(input)
    }
}

/// A take refused: the window's allowance is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Over {
    /// Until the window ends (at least a second).
    pub retry_after: Duration,
}

/// Where budgets are counted: the cache, and a per-process fallback for
/// when its shared store cannot be reached.
#[derive(Clone, Debug)]
pub struct Budgets {
    cache: Cache,
    /// Counts kept in this process while the shared store is unreachable.
    local: Cache,
    /// `null://`: nothing counted, nothing limited.
    off: bool,
}

/// Keys kept in the per-process fallback at most (they expire with their
/// windows; an LRU bound all the same).
const LOCAL_CAPACITY: usize = 100_000;

impl Budgets {
    /// Budgets counted in `cache` (on its clock).
    pub fn new(cache: Cache) -> Self {
        let local = Cache::with_clock(
            CacheConfig::from_url(&format!("memory://?capacity={LOCAL_CAPACITY}"))
                .unwrap_or_default(),
            cache.clock().clone(),
        )
        .unwrap_or_else(|_| Cache::memory());
        let off = matches!(cache.config().store, StoreConfig::Null);
        Self { cache, local, off }
    }

    /// The cache the budgets are counted in.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Takes `amount` from the budget under `key` (`allowance` per window):
    /// `Ok` if it was within it; [`Over`] if not (the amount still counts:
    /// give it back with [`Budgets::give_back`] when it should not).
    ///
    /// # Errors
    /// [`Over`] when the window's allowance is spent.
    pub async fn take(&self, key: &str, amount: u64, allowance: Allowance) -> Result<(), Over> {
        if self.off {
            return Ok(());
        }
        let key = Self::key(key, allowance);
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        let limit = i64::try_from(allowance.amount).unwrap_or(i64::MAX);
        let counted = match self.take_in(&self.cache, &key, amount, allowance).await {
            Some(count) => Some((count, &self.cache)),
            // The shared store is unreachable (fail open): this process
            // keeps the budget alone.
            None => self
                .take_in(&self.local, &key, amount, allowance)
                .await
                .map(|count| (count, &self.local)),
        };
        match counted {
            Some((count, cache)) if count > limit => Err(Over {
                retry_after: Self::window_left(cache, &key, allowance).await,
            }),
            _ => Ok(()),
        }
    }

    /// Gives `amount` back to the budget under `key` (a take that was
    /// refused elsewhere, or whose work failed).
    pub async fn give_back(&self, key: &str, amount: u64, allowance: Allowance) {
        if self.off {
            return;
        }
        let key = Self::key(key, allowance);
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        match self.cache.dec(&key, amount).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let _ = self.local.dec(&key, amount).await;
            }
            Err(error) => tracing::warn!(%error, "budget not given back"),
        }
    }

    /// Ends the window of the budget under `key`: the next take starts a
    /// new one (a successful login clears its own bucket).
    pub async fn clear(&self, key: &str, allowance: Allowance) {
        if self.off {
            return;
        }
        let key = Self::key(key, allowance);
        for cache in [&self.cache, &self.local] {
            if let Err(error) = cache.delete_many(&[&key, &start_key(&key)]).await {
                tracing::warn!(%error, "budget not cleared");
            }
        }
    }

    /// What is spent of the budget under `key` in its current window,
    /// without taking (a cheap look before costly work; the take is what
    /// decides). `None` when nothing is counted.
    pub async fn spent(&self, key: &str, allowance: Allowance) -> Option<u64> {
        if self.off {
            return None;
        }
        let key = Self::key(key, allowance);
        let read = |cache: &Cache| {
            let key = key.clone();
            let cache = cache.clone();
            async move { cache.get::<i64>(&key).await.ok().flatten() }
        };
        let count = match read(&self.cache).await {
            Some(count) => Some(count),
            None => read(&self.local).await,
        };
        count.map(|c| u64::try_from(*c).unwrap_or(0))
    }

    /// Like [`Budgets::spent`], as a refusal when nothing is left.
    ///
    /// # Errors
    /// [`Over`] when the window's allowance is spent already.
    pub async fn check(&self, key: &str, allowance: Allowance) -> Result<(), Over> {
        match self.spent(key, allowance).await {
            Some(spent) if spent >= allowance.amount => {
                let full = Self::key(key, allowance);
                let cache = if self.cache.get::<i64>(&full).await.ok().flatten().is_some() {
                    &self.cache
                } else {
                    &self.local
                };
                Err(Over {
                    retry_after: Self::window_left(cache, &full, allowance).await,
                })
            }
            _ => Ok(()),
        }
    }

    fn key(key: &str, allowance: Allowance) -> String {
        format!("budget:{key}:{}", allowance.key_part())
    }

    /// `inc` within the window, starting the window first if none is open;
    /// `None` when `cache` counted nothing (unreachable).
    async fn take_in(
        &self,
        cache: &Cache,
        key: &str,
        amount: i64,
        allowance: Allowance,
    ) -> Option<i64> {
        let window = Timeout::After(allowance.window);
        match cache.add(key, 0_i64, window).await {
            Ok(true) => {
                // This take opened the window: note when, for Retry-After.
                let now = cache.clock().now_ms();
                if let Err(error) = cache.set(&start_key(key), now, window).await {
                    tracing::debug!(%error, "budget window start not noted");
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "budget window not started"),
        }
        match cache.inc(key, amount).await {
            Ok(count) => count,
            Err(error) => {
                tracing::warn!(%error, "budget not counted");
                None
            }
        }
    }

    /// Time left in the window of `key`, at least a second; the whole
    /// window when its start is unknown.
    async fn window_left(cache: &Cache, key: &str, allowance: Allowance) -> Duration {
        let window = u64::try_from(allowance.window.as_millis()).unwrap_or(u64::MAX);
        let now = cache.clock().now_ms();
        let left = match cache.get::<u64>(&start_key(key)).await {
            Ok(Some(start)) => start.saturating_add(window).saturating_sub(now),
            _ => window,
        };
        Duration::from_millis(left.clamp(1_000, window.max(1_000)))
    }
}

fn start_key(key: &str) -> String {
    format!("{key}:start")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets() -> (Budgets, memocache::Clock) {
        let clock = memocache::Clock::manual();
        let cache = Cache::with_clock(CacheConfig::default(), clock.clone()).expect("cache");
        (Budgets::new(cache), clock)
    }

    const TEN_MINUTES: Duration = Duration::from_secs(600);

    #[tokio::test]
    async fn parallel_takes_get_at_most_the_allowance() {
        let (budgets, _) = budgets();
        let allowance = Allowance::new(5, TEN_MINUTES);
        let takes = (0..100).map(|_| budgets.take("posts:ada", 1, allowance));
        let granted = futures_util::future::join_all(takes)
            .await
            .into_iter()
            .filter(Result::is_ok)
            .count();
        assert_eq!(granted, 5);
    }

    #[tokio::test]
    async fn a_refusal_says_when_the_window_ends_and_the_next_window_allows_again() {
        let (budgets, clock) = budgets();
        let allowance = Allowance::new(2, TEN_MINUTES);
        for _ in 0..2 {
            budgets.take("k", 1, allowance).await.expect("within");
        }
        clock.advance(Duration::from_secs(240));
        let over = budgets.take("k", 1, allowance).await.expect_err("over");
        assert_eq!(over.retry_after, Duration::from_secs(360));
        assert_eq!(budgets.check("k", allowance).await, Err(over));
        clock.advance(Duration::from_secs(361));
        budgets.take("k", 1, allowance).await.expect("a new window");
    }

    #[tokio::test]
    async fn amounts_count_as_bytes_and_can_be_given_back() {
        let (budgets, _) = budgets();
        let allowance = Allowance::new(1000, TEN_MINUTES);
        budgets
            .take("b", 600, allowance)
            .await
            .expect("600 of 1000");
        assert!(budgets.take("b", 600, allowance).await.is_err());
        budgets.give_back("b", 600, allowance).await;
        assert_eq!(budgets.spent("b", allowance).await, Some(600));
        budgets
            .take("b", 400, allowance)
            .await
            .expect("exactly 1000");
    }

    #[tokio::test]
    async fn with_the_shared_store_unreachable_this_process_keeps_the_budget() {
        // Nothing listens on port 1: every command fails open.
        let cache = Cache::from_url("redis://127.0.0.1:1/").expect("cache");
        let budgets = Budgets::new(cache);
        let allowance = Allowance::new(3, TEN_MINUTES);
        for _ in 0..3 {
            budgets.take("k", 1, allowance).await.expect("within");
        }
        let over = budgets.take("k", 1, allowance).await.expect_err("over");
        assert!(over.retry_after <= TEN_MINUTES);
    }

    #[tokio::test]
    async fn nothing_is_limited_without_a_cache() {
        let budgets = Budgets::new(Cache::null());
        for _ in 0..10 {
            budgets
                .take("k", 1, Allowance::new(1, TEN_MINUTES))
                .await
                .expect("off");
        }
    }

    #[test]
    fn allowances_parse_as_amount_per_window() {
        assert_eq!(
            "30/10m".parse::<Allowance>(),
            Ok(Allowance::new(30, TEN_MINUTES))
        );
        assert_eq!(
            Allowance::parse_bytes("1GiB/1d"),
            Ok(Allowance::new(1 << 30, Duration::from_secs(86_400)))
        );
        for bad in ["30", "0/10m", "30/0", "x/10m", "30/soon"] {
            assert!(Allowance::parse_count(bad).is_err(), "{bad}");
        }
    }
}
