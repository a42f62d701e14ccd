//! End-to-end in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, started by `testkit`): a visitor registers, posts a
//! picture, finds it with its thumbnail on the home page and on "My
//! messages", opens its page, deletes it, logs out, and the session cookie
//! they copied no longer works. Screenshots of the home and post pages go
//! to `target/test-artifacts/`.
//!
//! A missing Chromium fails the test with the install command; it is never
//! skipped.

//!
//! This binary runs it on the embedded storage; `browser_on_aws` runs the
//! same file on DynamoDB + S3.

#[path = "../support/storage.rs"]
mod storage;

mod journey;
mod oidc;

const STORAGE: storage::Storage = storage::Storage::Embedded;
