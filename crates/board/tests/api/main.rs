//! HTTP-level tests: the board in-process on a free port, one binary.

mod account;
mod cli;
mod db_calls;
mod delete;
mod helpers;
mod media;
mod pages;
mod posting;
mod security;
