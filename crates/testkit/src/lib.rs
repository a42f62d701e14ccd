//! Test-only helpers that start **real** servers on free loopback ports for
//! integration tests, modelled on redis-rs's `redis-test` server module.
//!
//! Every server:
//!
//! - owns its own temporary directory, where its stdout and stderr are logged;
//! - is probed for readiness over its own protocol (never a fixed sleep),
//!   with a bounded wait that panics with the log;
//! - picks a free port by binding `127.0.0.1:0`, and starts over on a new port
//!   (up to 5 times) if another process takes the port first, so parallel
//!   tests never fail by racing for a port;
//! - is killed and reaped on drop (by PID, together with anything it spawned);
//! - panics with install advice if its binary is missing: tests never skip
//!   silently. `scripts/install-test-deps` installs them all.
//!
//! | server | package | start |
//! | --- | --- | --- |
//! | [`RedisServer`] | `redis-server` | [`RedisServer::start`] |
//! | [`RedisServer`] over TLS | `redis-server`, `openssl` | [`RedisServer::start_tls`] |
//! | [`RedisCluster`] | `redis-server` (`redis-cli`) | [`RedisCluster::start`] |
//! | [`RedisSentinel`] (master, replica, sentinels) | `redis-server` (`redis-cli`) | [`RedisSentinel::start`] |
//! | [`MemcachedServer`] | `memcached` | [`MemcachedServer::start`] |
//! | [`Chromedriver`] | `chromium-driver`, `chromium` | [`Chromedriver::start`] |
//! | [`Dynalite`] (DynamoDB) | npm `dynalite` on `nodejs` | [`Dynalite::start`] |
//! | [`S3Server`] (S3) | npm `s3rver` on `nodejs` | [`S3Server::start`] |
//! | [`OidcProvider`] (OpenID Connect) | npm `oidc-provider` on `nodejs` | [`OidcProvider::start`] |
//! | [`FaultProxy`] (network faults) | none | [`FaultProxy::start`] in front of any of them |
//!
//! The npm servers are pinned in `tools/node/package-lock.json` and installed
//! into `tools/node/node_modules` (by `npm ci --prefix tools/node`, which
//! `scripts/install-test-deps` runs); `DYNALITE_BIN` / `S3RVER_BIN` override
//! where they are found, and `PATH` is the last resort.
//!
//! More servers fit the same shape: a `Server` from the private `process`
//! module plus a launch function and a readiness probe.
//!
//! Prefer one server per test: the native ones start in tens of
//! milliseconds, the Node ones in a few hundred (about 0.15–0.3 s for
//! dynalite, 0.2–0.5 s for s3rver, mostly Node loading its modules). A
//! server kept in a `static` is never dropped, so its process would outlive
//! the test binary.
//!
//! # Fleet tests
//!
//! For tests that run many clients against a fleet of servers while faults
//! come and go: [`History`] records every write and read with its times and
//! checks that no read was stale beyond a bound (and none saw a state that
//! was never written); [`FaultSchedule`] draws a reproducible, seeded list
//! of partitions, kills, Redis restarts and pauses that always leaves one
//! member up and ends with everything healed.
//!
//! Linux-only in practice: ownership of a port and the process tree are read
//! from `/proc`.

mod chromedriver;
mod cluster;
mod dynalite;
mod history;
mod http;
mod memcached;
mod oidc;
mod ports;
mod process;
mod proxy;
mod redis;
mod s3;
mod schedule;
mod sentinel;

pub use chromedriver::Chromedriver;
pub use cluster::RedisCluster;
pub use dynalite::Dynalite;
pub use history::{
    Counts, History, ReadOp, Report, Staleness, Violation, ViolationKind, WriteOp, WriteOutcome,
};
pub use memcached::MemcachedServer;
pub use oidc::OidcProvider;
pub use ports::{free_port, wait_for_port};
pub use proxy::{Fault, FaultProxy};
pub use redis::RedisServer;
pub use s3::S3Server;
pub use schedule::{FaultSchedule, SEED_ENV, Step};
pub use sentinel::{MASTER_NAME, RedisSentinel, SentinelServer};

#[cfg(test)]
mod tests;
