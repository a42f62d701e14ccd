//! The HTTP suite (`tests/api/`) again, with the board on DynamoDB
//! (dynalite) and S3 (s3rver) instead of SQLite and a directory. The
//! command-line tests (`api/cli.rs`) run the binary on SQLite only.

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
#[path = "api/pages.rs"]
mod pages;
#[path = "api/posting.rs"]
mod posting;
#[path = "api/security.rs"]
mod security;
#[path = "support/storage.rs"]
mod storage;

const STORAGE: storage::Storage = storage::Storage::Aws;
