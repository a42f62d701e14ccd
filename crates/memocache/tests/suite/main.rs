//! memocache's integration tests, in one binary so they link once.

mod cluster_partition;
mod conformance;
mod fleet;
mod low_level;
mod partition;
mod remote_faults;
mod tiered;
mod tls;
