//! memocache's integration tests, in one binary so they link once.

mod bytes;
mod cluster_partition;
mod conformance;
mod fleet;
mod fragments;
mod groups;
mod low_level;
mod outbox;
mod parity;
mod partition;
mod refresh;
mod remote_faults;
#[cfg(feature = "axum")]
mod response;
mod sentinel;
mod tiered;
mod tls;
