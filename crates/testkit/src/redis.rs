//! A standalone `redis-server` on a free loopback port and a Unix socket.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ports;
use crate::process::{self, Launcher, Server, ServerProcess, find_binary};

/// Advice printed when `redis-server` or `redis-cli` is missing.
pub(crate) const INSTALL: &str = "apt-get install -y redis-server";
const SOCKET: &str = "redis.sock";

/// A real `redis-server` bound to 127.0.0.1 on a free port, also listening on
/// a Unix socket, with no persistence and its own temporary directory.
///
/// Dropping it kills the server and waits for it to exit.
///
/// ```no_run
/// let redis = testkit::RedisServer::start();
/// assert!(redis.url().starts_with("redis://127.0.0.1:"));
/// ```
pub struct RedisServer {
    server: Server,
}

impl RedisServer {
    /// Starts `redis-server` with `--save ''` and `--appendonly no` on a free
    /// port, retrying with another port if the chosen one is taken first.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not installed, or it does not answer `PING`
    /// within 10 s; the message includes the server's log.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Like [`start`](Self::start), passing `args` (e.g. `["--maxmemory",
    /// "1mb"]`) to `redis-server` after the defaults; they are kept for
    /// [`restart`](Self::restart).
    #[must_use]
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::start_with(args, ports::free_port)
    }

    /// Starts a server with `args`, on a port chosen by `pick_port`.
    pub(crate) fn start_with(args: &[&str], pick_port: impl Fn() -> u16) -> Self {
        let binary = find_binary("redis-server", INSTALL);
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        let launch: Launcher = Box::new(move |port, dir| launch(&binary, &args, port, dir));
        Self {
            server: Server::start("redis-server", pick_port, launch),
        }
    }

    /// The TCP port on 127.0.0.1; it stays the same across restarts.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `redis://127.0.0.1:PORT/`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port())
    }

    /// The Unix socket the server also listens on (mode 700).
    #[must_use]
    pub fn unix_socket_path(&self) -> PathBuf {
        self.server.dir().join(SOCKET)
    }

    /// `redis+unix:///path/to/redis.sock`.
    #[must_use]
    pub fn unix_url(&self) -> String {
        format!("redis+unix://{}", self.unix_socket_path().display())
    }

    /// The server's process id, or `None` while stopped.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// The server's own temporary directory (its working directory).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.server.dir()
    }

    /// The end of the server's log (its stdout and stderr).
    #[must_use]
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Kills the server and waits for it, keeping the port number and the
    /// directory so that [`restart`](Self::restart) can bring it back.
    /// Does nothing if already stopped.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts the server again on the same port (stopping it first if it is
    /// running), retrying for a few seconds while the port is not yet free.
    ///
    /// # Panics
    ///
    /// If it cannot get its port back or does not become ready.
    pub fn restart(&mut self) {
        self.server.restart();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.server.stop();
    }
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port())
            .field("pid", &self.pid())
            .field("dir", &self.dir())
            .finish()
    }
}

fn launch(
    binary: &Path,
    args: &[String],
    port: u16,
    dir: &Path,
) -> Result<ServerProcess, process::StartError> {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--unixsocket")
        .arg(dir.join(SOCKET))
        .args(["--unixsocketperm", "700"])
        .args(args);
    ServerProcess::launch(&mut command, &dir.join("redis.log"), port, ping)
}

/// Readiness probe: `PING` answered with `+PONG`.
fn ping(port: u16) -> bool {
    query(port, &["PING"]).is_ok_and(|reply| reply == "+PONG")
}

/// Sends one command to 127.0.0.1:`port` and reads one reply: the line of a
/// simple string, error or integer (`+OK`, `-ERR ...`, `:1`), or the payload
/// of a bulk string. Arrays are not supported.
pub(crate) fn query(port: u16, args: &[&str]) -> io::Result<String> {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    let mut stream = ports::connect(port)?;
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let Some(len) = line.strip_prefix('$') else {
        return if line.is_empty() {
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no reply"))
        } else {
            Ok(line.to_owned())
        };
    };
    let len: i64 = len.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad bulk length {len:?}"),
        )
    })?;
    let Ok(len) = usize::try_from(len) else {
        return Ok(String::new()); // $-1: nil
    };
    let mut payload = vec![0; len + 2];
    reader.read_exact(&mut payload)?;
    payload.truncate(len);
    Ok(String::from_utf8_lossy(&payload).into_owned())
}
