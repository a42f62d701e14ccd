//! Misuse of `#[memoize]` is a compile error at the offending token. The
//! expected messages are in `tests/ui/*.stderr`; regenerate them with
//! `TRYBUILD=overwrite cargo test -p memocache-macros --test ui` after a
//! compiler upgrade, and review the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
