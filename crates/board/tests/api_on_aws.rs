//! The HTTP suite (`tests/api/`) again, with the board on DynamoDB
//! (dynalite) and S3 (s3rver) instead of SQLite and a directory. The
//! command-line and bomb tests (`api/cli.rs`, `api/bombs.rs`) run the
//! binary on SQLite only, and so do the limiter and connection attacks
//! (`api/abuse.rs`, `api/connections.rs`), which do not depend on storage; the outage test (`api/outage.rs`) runs here only,
//! where the database is a server that can be stopped.

#[path = "api/account.rs"]
mod account;
#[path = "api/db_calls.rs"]
mod db_calls;
#[path = "api/delete.rs"]
mod delete;
#[path = "api/helpers.rs"]
mod helpers;
#[path = "api/media.rs"]
mod media;
#[path = "api/oidc.rs"]
mod oidc;
#[path = "api/outage.rs"]
mod outage;
#[path = "api/pages.rs"]
mod pages;
#[path = "api/posting.rs"]
mod posting;
#[path = "api/security.rs"]
mod security;
#[path = "support/storage.rs"]
mod storage;
#[path = "api/uploads.rs"]
mod uploads;

const STORAGE: storage::Storage = storage::Storage::Aws;
