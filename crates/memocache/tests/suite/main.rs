//! memocache's integration tests, in one binary so they link once.

mod low_level;
