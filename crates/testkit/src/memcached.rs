//! A `memcached` on a free loopback port.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;

use crate::ports;
use crate::process::{Server, ServerProcess, StartError, find_binary, server_handle};

/// A real `memcached` bound to 127.0.0.1 on a free port (TCP only, 64 MB),
/// with its own temporary directory holding its log.
///
/// Dropping it kills the server and waits for it to exit.
///
/// ```no_run
/// let memcached = testkit::MemcachedServer::start();
/// assert!(memcached.url().starts_with("memcached://127.0.0.1:"));
/// ```
pub struct MemcachedServer {
    server: Server,
}

impl MemcachedServer {
    /// Starts `memcached -l 127.0.0.1 -p PORT -U 0 -m 64` on a free port,
    /// retrying with another port if the chosen one is taken first.
    ///
    /// # Panics
    ///
    /// If `memcached` is not installed, or it does not answer `version`
    /// within 10 s; the message includes its log.
    #[must_use]
    pub fn start() -> Self {
        let binary = find_binary("memcached", "apt-get install -y memcached");
        Self {
            server: Server::start_binary("memcached", binary, launch),
        }
    }

    /// `memcached://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("memcached://127.0.0.1:{}", self.port())
    }
}

server_handle!(MemcachedServer {
    pid: "The server's process id, or `None` while stopped.",
    stop: "Kills the server and waits for it, keeping the port number. \
           Does nothing if already stopped.",
    restart: "Starts the server again (empty) on the same port, stopping it \
              first if it is running, retrying briefly while the port is not \
              yet free.",
    debug: [],
});

fn launch(binary: &Path, port: u16, dir: &Path) -> Result<ServerProcess, StartError> {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "64",
        ])
        // memcached refuses to run as root without `-u`; it ignores `-u`
        // otherwise, so only pass it when needed.
        .args(if rustix::process::geteuid().is_root() {
            &["-u", "root"][..]
        } else {
            &[]
        });
    ServerProcess::launch(&mut command, &dir.join("memcached.log"), port, version)
}

/// Readiness probe: `version` answered with `VERSION x.y.z`.
fn version(port: u16) -> bool {
    let Ok(mut stream) = ports::connect(port) else {
        return false;
    };
    if stream.write_all(b"version\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("VERSION ")
}
