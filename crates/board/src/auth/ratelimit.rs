//! Login rate limits per account and per client address, counted in the
//! cache (`inc` with a window timeout), so a fleet sharing a cache shares
//! the counts.

use std::net::IpAddr;
use std::time::Duration;

use memocache::{Cache, Timeout};

/// Failed-login counters and their limits.
#[derive(Clone, Debug)]
pub struct LoginLimiter {
    cache: Cache,
    per_account: u32,
    per_address: u32,
    window: Duration,
}

impl LoginLimiter {
    /// Limits of `per_account` and `per_address` failures per `window`.
    pub fn new(cache: Cache, per_account: u32, per_address: u32, window: Duration) -> Self {
        Self {
            cache,
            per_account,
            per_address,
            window,
        }
    }

    /// The window, for messages to users.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn keys(username: &str, address: IpAddr) -> (String, String) {
        (
            format!("login-failures:account:{}", username.trim().to_lowercase()),
            format!("login-failures:address:{address}"),
        )
    }

    async fn count(&self, key: &str) -> i64 {
        match self.cache.get::<i64>(key).await {
            Ok(found) => found.map_or(0, |n| *n),
            Err(error) => {
                tracing::warn!(%error, "rate-limit counter unreadable");
                0
            }
        }
    }

    /// True if another attempt for `username` from `address` is allowed.
    pub async fn allows(&self, username: &str, address: IpAddr) -> bool {
        let (account, addr) = Self::keys(username, address);
        self.count(&account).await < i64::from(self.per_account)
            && self.count(&addr).await < i64::from(self.per_address)
    }

    /// Records a failed attempt.
    pub async fn failed(&self, username: &str, address: IpAddr) {
        let (account, addr) = Self::keys(username, address);
        for key in [account, addr] {
            // Start the window on the first failure; `inc` keeps its timeout.
            let started = self
                .cache
                .add(&key, 0_i64, Timeout::After(self.window))
                .await;
            let counted = self.cache.inc(&key, 1).await;
            if let Err(error) = started.and(counted) {
                tracing::warn!(%error, "rate-limit counter not updated");
            }
        }
    }

    /// Forgets the account's failures after a successful login.
    pub async fn succeeded(&self, username: &str, address: IpAddr) {
        let (account, _) = Self::keys(username, address);
        if let Err(error) = self.cache.delete(&account).await {
            tracing::warn!(%error, "rate-limit counter not cleared");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_after_the_limit_per_account_and_per_address() {
        let limiter = LoginLimiter::new(Cache::memory(), 2, 3, Duration::from_secs(60));
        let here: IpAddr = [127, 0, 0, 1].into();
        let there: IpAddr = [127, 0, 0, 2].into();
        assert!(limiter.allows("ada", here).await);
        limiter.failed("ada", here).await;
        limiter.failed("ADA", there).await;
        assert!(!limiter.allows("ada", here).await, "account limit");
        assert!(limiter.allows("bob", here).await);
        limiter.failed("bob", here).await;
        limiter.failed("cy", here).await;
        assert!(!limiter.allows("dee", here).await, "address limit");
        assert!(limiter.allows("dee", there).await);
    }
}
