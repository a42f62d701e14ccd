//! HTTP-level tests: the board in-process on a free port, one binary.
//!
//! This binary runs them on the embedded storage (SQLite + a directory);
//! `api_on_aws` runs the same files on DynamoDB + S3.

mod abuse;
mod account;
mod bombs;
mod cli;
mod connections;
mod db_calls;
mod delete;
mod helpers;
mod media;
mod oidc;
mod oidc_attacks;
mod pages;
mod posting;
mod security;
#[path = "../support/storage.rs"]
mod storage;
mod uploads;

const STORAGE: storage::Storage = storage::Storage::Embedded;
