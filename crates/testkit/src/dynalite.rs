//! `dynalite`, a DynamoDB emulator on Node.js (npm package `dynalite`), on a
//! free loopback port.

use std::path::Path;
use std::process::Command;

use crate::http;
use crate::ports;
use crate::process::{
    Launcher, Server, ServerProcess, StartError, find_node_binary, server_handle,
};

/// The environment variable that overrides where `dynalite` is found.
const ENV_VAR: &str = "DYNALITE_BIN";

/// A real `dynalite` (DynamoDB API, in memory) bound to 127.0.0.1 on a free
/// port, with its own temporary directory holding its log.
///
/// Tables become `ACTIVE` (and are deleted or updated) immediately rather
/// than after dynalite's default 500 ms. Any region and any well-formed
/// credentials are accepted; signatures are not checked.
///
/// Dropping it kills the server (the `node` process) and waits for it to exit.
///
/// ```no_run
/// let dynamo = testkit::Dynalite::start();
/// assert!(dynamo.endpoint().starts_with("http://127.0.0.1:"));
/// ```
pub struct Dynalite {
    server: Server,
}

impl Dynalite {
    /// Starts `dynalite --host 127.0.0.1 --port PORT` (in memory, with
    /// `--createTableMs 0 --deleteTableMs 0 --updateTableMs 0`) on a free
    /// port and waits until it answers a DynamoDB `ListTables` call,
    /// retrying with another port if the chosen one is taken first.
    ///
    /// The binary is `$DYNALITE_BIN` if set, else
    /// `tools/node/node_modules/.bin/dynalite` in this workspace, else
    /// `dynalite` on `PATH`.
    ///
    /// # Panics
    ///
    /// If `dynalite` (or Node.js) is not installed, or it does not answer
    /// within 10 s; the message includes its log.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// As [`Dynalite::start`], but keeping the tables in a LevelDB
    /// directory of the server's own (`--path`), so that they survive
    /// [`Dynalite::stop`] and [`Dynalite::restart`]: for outage tests that
    /// check nothing stored is lost. Somewhat slower than in memory.
    ///
    /// # Panics
    ///
    /// As [`Dynalite::start`].
    #[must_use]
    pub fn start_on_disk() -> Self {
        Self::start_with(true)
    }

    fn start_with(on_disk: bool) -> Self {
        let binary = find_node_binary("dynalite", ENV_VAR);
        let launch: Launcher = Box::new(move |port, dir| launch(&binary, port, dir, on_disk));
        Self {
            server: Server::start("dynalite", ports::free_port, launch),
        }
    }

    /// `http://127.0.0.1:PORT`, the DynamoDB endpoint URL (no trailing slash).
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }
}

server_handle!(Dynalite {
    pid: "The server's process id (the `node` running dynalite), or `None` \
          while stopped.",
    stop: "Kills the server and waits for it, keeping the port number. \
           Does nothing if already stopped.",
    restart: "Starts the server again on the same port, stopping it first if \
              it is running, retrying briefly while the port is not yet free. \
              Started with [`Dynalite::start`] (in memory) it comes back **without tables**; with [`Dynalite::start_on_disk`] it keeps them.",
    debug: [],
});

fn launch(
    binary: &Path,
    port: u16,
    dir: &Path,
    on_disk: bool,
) -> Result<ServerProcess, StartError> {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--createTableMs", "0"])
        .args(["--deleteTableMs", "0"])
        .args(["--updateTableMs", "0"]);
    if on_disk {
        command.arg("--path").arg(dir.join("data"));
    }
    ServerProcess::launch(&mut command, &dir.join("dynalite.log"), port, list_tables)
}

/// Readiness probe: a DynamoDB `ListTables` call answered with
/// `{"TableNames":[...]}`.
pub(crate) fn list_tables(port: u16) -> bool {
    let headers = [
        ("X-Amz-Target", "DynamoDB_20120810.ListTables"),
        ("Content-Type", "application/x-amz-json-1.0"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host, Signature=x",
        ),
        ("X-Amz-Date", "20260101T000000Z"),
    ];
    http::request(port, "POST", "/", &headers, "{}")
        .is_ok_and(|(status, body)| status == 200 && body.starts_with("{\"TableNames\":"))
}
