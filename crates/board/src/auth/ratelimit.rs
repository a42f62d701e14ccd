//! Rate limits on password checks and registrations: budgets
//! ([`crate::budget`]) counted in the cache, so a fleet sharing a cache
//! shares the counts (and a process that cannot reach the shared store
//! keeps them alone rather than none).
//!
//! The rule: an attempt is *reserved* before the slow argon2 check.
//! `Cache::inc` is atomic in process and on Redis, so of N parallel
//! guesses at most the limit get a check; the rest are refused without
//! one. A reservation counts in three buckets per window:
//!
//! - account + address (`per_account_address`, 5 by default): one client
//!   guessing one account. A stranger elsewhere fills only their own
//!   bucket, so cannot lock the owner out of the owner's address.
//! - account (`per_account`, 50): a slower bound on guesses at one account
//!   spread over many addresses.
//! - address (`per_address`, 20): one client guessing many accounts.
//!
//! The address bucket is taken first, then the pair, then the account
//! (see [`LoginLimiter::reserve`]).
//!
//! A check that succeeds gives its reservation back to the account and the
//! address and clears its own account + address bucket; nobody else's.
//! With `null://` nothing is counted and nothing is limited (documented on
//! `--cache-url`); a shared store that cannot be reached fails open to a
//! per-process count.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use memocache::Cache;

use crate::budget::{Allowance, Budgets};

/// The registration window: `--registrations-per-address` is per hour.
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(3600);

/// How many attempts each bucket allows per window.
#[derive(Clone, Copy, Debug)]
pub struct LoginLimits {
    /// Per account and client address.
    pub per_account_address: u32,
    /// Per account, over all addresses.
    pub per_account: u32,
    /// Per client address, over all accounts.
    pub per_address: u32,
    /// The login window.
    pub window: Duration,
    /// Registrations per client address per [`REGISTRATION_WINDOW`].
    pub registrations_per_address: u32,
}

/// Login and registration counters and their limits.
#[derive(Clone, Debug)]
pub struct LoginLimiter {
    budgets: Budgets,
    limits: LoginLimits,
    counts: Arc<Counts>,
}

/// What the limiter did, for `/metrics` (and tests that count checks).
#[derive(Debug, Default)]
struct Counts {
    checked: AtomicU64,
    refused: AtomicU64,
    registrations_refused: AtomicU64,
}

/// A reserved attempt: the holder checks one password, then calls
/// [`LoginLimiter::succeeded`] if it matched. Dropping it leaves the
/// attempt counted as a failure.
#[derive(Debug)]
#[must_use = "a reservation is one password check"]
pub struct Attempt {
    keys: Keys,
}

/// A reserved provider sign-in; dropping it leaves it counted as a
/// failure.
#[derive(Debug)]
#[must_use = "a reservation is one code exchange"]
pub struct SignInAttempt {
    key: String,
}

#[derive(Debug)]
struct Keys {
    pair: String,
    account: String,
    address: String,
}

impl Keys {
    fn new(username: &str, address: IpAddr) -> Self {
        let account = username.trim().to_lowercase();
        Self {
            pair: format!("login-attempts:pair:{account}@{address}"),
            account: format!("login-attempts:account:{account}"),
            address: format!("login-attempts:address:{address}"),
        }
    }
}

impl LoginLimiter {
    /// Counters in `cache` with `limits`.
    pub fn new(cache: Cache, limits: LoginLimits) -> Self {
        Self {
            budgets: Budgets::new(cache),
            limits,
            counts: Arc::default(),
        }
    }

    /// The login window, for messages to users.
    pub fn window(&self) -> Duration {
        self.limits.window
    }

    /// Reservations granted: password checks done (or under way).
    pub fn checked(&self) -> u64 {
        self.counts.checked.load(Ordering::Relaxed)
    }

    /// Attempts refused without a check.
    pub fn refused(&self) -> u64 {
        self.counts.refused.load(Ordering::Relaxed)
    }

    /// Registrations refused.
    pub fn registrations_refused(&self) -> u64 {
        self.counts.registrations_refused.load(Ordering::Relaxed)
    }

    /// Reserves one password check for `username` from `address`; `None`
    /// when a bucket is full.
    pub async fn reserve(&self, username: &str, address: IpAddr) -> Option<Attempt> {
        let keys = Keys::new(username, address);
        let limits = &self.limits;
        let window = limits.window;
        // The address first: a client past its budget makes no new keys
        // (random user names cannot flood the cache). Then the pair, so a
        // client refused there never touches the account's budget.
        for (key, limit) in [
            (&keys.address, limits.per_address),
            (&keys.pair, limits.per_account_address),
            (&keys.account, limits.per_account),
        ] {
            if !self.take(key, limit, window).await {
                self.counts.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        self.counts.checked.fetch_add(1, Ordering::Relaxed);
        Some(Attempt { keys })
    }

    /// The password matched: give the reservation back to the account and
    /// the address, and clear this account + address bucket.
    pub async fn succeeded(&self, attempt: Attempt) {
        let Keys {
            pair,
            account,
            address,
        } = attempt.keys;
        let limits = &self.limits;
        self.budgets
            .clear(&pair, self.allowance(limits.per_account_address))
            .await;
        self.budgets
            .give_back(&account, 1, self.allowance(limits.per_account))
            .await;
        self.budgets
            .give_back(&address, 1, self.allowance(limits.per_address))
            .await;
    }

    fn allowance(&self, limit: u32) -> Allowance {
        Allowance::new(u64::from(limit), self.limits.window)
    }

    /// Reserves one provider sign-in (an OpenID callback: a code exchange
    /// with the provider) for `address`, from the same per-address budget
    /// as password checks; `None` when it is spent. A client replaying
    /// callbacks with made-up codes drives no more than that many
    /// exchanges per window. Give it back with
    /// [`LoginLimiter::signed_in`] when the sign-in succeeded.
    pub async fn reserve_sign_in(&self, address: IpAddr) -> Option<SignInAttempt> {
        let key = format!("login-attempts:address:{address}");
        if !self
            .take(&key, self.limits.per_address, self.limits.window)
            .await
        {
            self.counts.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.counts.checked.fetch_add(1, Ordering::Relaxed);
        Some(SignInAttempt { key })
    }

    /// The provider sign-in succeeded: its reservation goes back.
    pub async fn signed_in(&self, attempt: SignInAttempt) {
        self.budgets
            .give_back(&attempt.key, 1, self.allowance(self.limits.per_address))
            .await;
    }

    /// Counts one registration from `address`; false past the limit.
    pub async fn register(&self, address: IpAddr) -> bool {
        let key = format!("registrations:address:{address}");
        let allowed = self
            .take(
                &key,
                self.limits.registrations_per_address,
                REGISTRATION_WINDOW,
            )
            .await;
        if !allowed {
            self.counts
                .registrations_refused
                .fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Takes one from `key`'s budget of `limit` per `window`: true if it
    /// was still within it (see [`Budgets::take`]).
    async fn take(&self, key: &str, limit: u32, window: Duration) -> bool {
        self.budgets
            .take(key, 1, Allowance::new(u64::from(limit), window))
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_pair: u32, per_account: u32, per_address: u32) -> LoginLimiter {
        LoginLimiter::new(
            Cache::memory(),
            LoginLimits {
                per_account_address: per_pair,
                per_account,
                per_address,
                window: Duration::from_secs(60),
                registrations_per_address: 2,
            },
        )
    }

    fn ip(last: u8) -> IpAddr {
        [127, 0, 0, last].into()
    }

    #[tokio::test]
    async fn a_full_pair_bucket_blocks_that_pair_only() {
        let limiter = limiter(2, 50, 50);
        for _ in 0..2 {
            drop(
                limiter
                    .reserve("ada", ip(1))
                    .await
                    .expect("within the limit"),
            );
        }
        assert!(limiter.reserve("ADA ", ip(1)).await.is_none(), "same pair");
        assert!(
            limiter.reserve("ada", ip(2)).await.is_some(),
            "owner elsewhere"
        );
        assert!(
            limiter.reserve("bob", ip(1)).await.is_some(),
            "other account"
        );
        assert_eq!((limiter.checked(), limiter.refused()), (4, 1));
    }

    #[tokio::test]
    async fn the_account_limit_holds_across_addresses() {
        let limiter = limiter(2, 5, 50);
        for last in 1..=5 {
            let _ = limiter.reserve("ada", ip(last)).await;
        }
        assert!(limiter.reserve("ada", ip(9)).await.is_none());
        assert!(limiter.reserve("bob", ip(9)).await.is_some());
    }

    #[tokio::test]
    async fn the_address_limit_holds_across_accounts() {
        let limiter = limiter(5, 50, 3);
        for name in ["a", "b", "c"] {
            let _ = limiter.reserve(name, ip(1)).await;
        }
        assert!(limiter.reserve("d", ip(1)).await.is_none());
        assert!(limiter.reserve("d", ip(2)).await.is_some());
    }

    #[tokio::test]
    async fn parallel_attempts_get_at_most_the_limit() {
        let limiter = limiter(5, 50, 50);
        let tries = (0..100).map(|_| limiter.reserve("ada", ip(1)));
        let granted = futures_util::future::join_all(tries)
            .await
            .into_iter()
            .flatten()
            .count();
        assert_eq!(granted, 5);
        assert_eq!(limiter.checked(), 5);
    }

    #[tokio::test]
    async fn success_clears_its_own_bucket_and_returns_the_reservation() {
        let limiter = limiter(2, 3, 50);
        let _ = limiter.reserve("ada", ip(2)).await; // a stranger fails once
        let _ = limiter.reserve("ada", ip(1)).await; // the owner mistypes
        let right = limiter.reserve("ada", ip(1)).await.expect("allowed");
        limiter.succeeded(right).await;
        // Own bucket empty again; the account holds the two failures.
        assert!(limiter.reserve("ada", ip(1)).await.is_some());
        assert!(
            limiter.reserve("ada", ip(3)).await.is_none(),
            "account: 3 of 3"
        );
    }

    #[tokio::test]
    async fn a_client_past_its_address_budget_makes_no_new_keys() {
        let limiter = limiter(5, 50, 3);
        for n in 0..100 {
            let _ = limiter.reserve(&format!("user{n}"), ip(1)).await;
        }
        let probe = Keys::new("user50", ip(1));
        let allowance = limiter.allowance(5);
        assert_eq!(limiter.budgets.spent(&probe.pair, allowance).await, None);
        let allowance = limiter.allowance(50);
        assert_eq!(limiter.budgets.spent(&probe.account, allowance).await, None);
    }

    #[tokio::test]
    async fn registrations_are_limited_per_address() {
        let limiter = limiter(5, 50, 50);
        assert!(limiter.register(ip(1)).await);
        assert!(limiter.register(ip(1)).await);
        assert!(!limiter.register(ip(1)).await);
        assert!(limiter.register(ip(2)).await);
        assert_eq!(limiter.registrations_refused(), 1);
    }

    #[tokio::test]
    async fn nothing_is_limited_without_a_cache() {
        let limiter = LoginLimiter::new(Cache::null(), limiter(1, 1, 1).limits);
        for _ in 0..5 {
            assert!(limiter.reserve("ada", ip(1)).await.is_some());
        }
    }
}
