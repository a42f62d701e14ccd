//! The message board: the Flask board of the seed rebuilt on axum, with its
//! two memoized functions (`load_user`, `all_messages`) on [`memocache`].
//!
//! `cargo run --release -p board` serves it on <http://127.0.0.1:8000> with
//! SQLite, a local image directory and the in-process cache. See
//! `board serve --help` for every setting.
//!
//! Layout, from the top: [`startup`] (build, bind), [`http`] (routes, the
//! extractors and the pool-bound password hashing), [`state`] (what
//! handlers share), [`data`] (every memo, and every write with the forgets
//! it causes and the budgets it takes), [`store`] and [`media`] (the tables
//! and images behind traits), [`views`] (templates), [`server`] (the accept
//! loop, its connection bounds and shedding), [`config`] (flags and
//! `BOARD_*` variables), [`admin`] (`board accounts`). Building blocks that import none of the layers
//! above: [`auth`] (session tokens, CSRF, argon2, login limits), [`oidc`]
//! (the OpenID Connect flow, reading provider documents through
//! [`oidc::Documents`]), [`budget`] ("N per window" counted in the cache),
//! [`net`] (client addresses behind trusted proxies), [`domain`] (parsed
//! values).

pub mod admin;
pub mod auth;
pub mod budget;
pub mod config;
pub mod data;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod images;
pub mod listing;
pub mod media;
pub mod net;
pub mod oidc;
pub mod server;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod units;
pub mod views;
pub mod workers;

pub use config::Settings;
pub use startup::{Application, StartupError};
pub use state::AppState;
