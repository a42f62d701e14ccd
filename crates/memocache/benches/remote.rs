//! Remote store benchmarks (placeholder).
fn main() {}
