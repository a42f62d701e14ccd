//! The browser suite (`tests/browser/`) again, with the board on DynamoDB
//! (dynalite) and S3 (s3rver) instead of SQLite and a directory.

#[path = "support/storage.rs"]
mod storage;

#[path = "browser/journey.rs"]
mod journey;

const STORAGE: storage::Storage = storage::Storage::Aws;
