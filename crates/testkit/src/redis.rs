//! A standalone `redis-server` on a free loopback port and a Unix socket,
//! optionally speaking TLS with a self-signed certificate.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ports;
use crate::process::{self, Launcher, Server, ServerProcess, find_binary, server_handle};

/// Advice printed when `redis-server` or `redis-cli` is missing.
pub(crate) const INSTALL: &str = "apt-get install -y redis-server";
/// Advice printed when the `openssl` CLI (for TLS certificates) is missing.
const OPENSSL_INSTALL: &str = "apt-get install -y openssl";
const SOCKET: &str = "redis.sock";
/// The self-signed certificate and key of a TLS server, in its directory.
const TLS_CERT: &str = "redis-tls.crt";
const TLS_KEY: &str = "redis-tls.key";

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

    /// Like [`start`](Self::start), but the TCP port speaks **only TLS**
    /// (`--port 0 --tls-port PORT`), with a self-signed certificate for
    /// `127.0.0.1` made by the `openssl` CLI in the server's directory and
    /// no client certificates required. Connect with
    /// [`tls_url`](Self::tls_url); the Unix socket stays plain.
    ///
    /// # Panics
    ///
    /// If `redis-server`, `redis-cli` (the readiness probe is
    /// `redis-cli --tls --insecure PING`) or `openssl` is not installed,
    /// if the certificate cannot be made, or if the server does not answer
    /// within 10 s; the message includes the log.
    #[must_use]
    pub fn start_tls() -> Self {
        let binary = find_binary("redis-server", INSTALL);
        let openssl = find_binary("openssl", OPENSSL_INSTALL);
        let _ = find_binary("redis-cli", INSTALL);
        let launch: Launcher = Box::new(move |port, dir| launch_tls(&binary, &openssl, port, dir));
        Self {
            server: Server::start("redis-server-tls", ports::free_port, launch),
        }
    }

    /// `redis://127.0.0.1:PORT/`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port())
    }

    /// `rediss://127.0.0.1:PORT/#insecure`, for a server from
    /// [`start_tls`](Self::start_tls): `#insecure` tells the Redis client
    /// not to verify the self-signed certificate.
    #[must_use]
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/#insecure", self.port())
    }

    /// The self-signed certificate (PEM) of a server from
    /// [`start_tls`](Self::start_tls); it is also the CA certificate.
    #[must_use]
    pub fn tls_cert_path(&self) -> PathBuf {
        self.server.dir().join(TLS_CERT)
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

    /// The server's own temporary directory (its working directory).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.server.dir()
    }
}

server_handle!(RedisServer {
    pid: "The server's process id, or `None` while stopped.",
    stop: "Kills the server and waits for it, keeping the port number and the \
           directory so that [`restart`](Self::restart) can bring it back. \
           Does nothing if already stopped.",
    restart: "Starts the server again on the same port (stopping it first if \
              it is running), retrying for a few seconds while the port is not \
              yet free.",
    debug: [dir],
});

fn launch(
    binary: &Path,
    args: &[String],
    port: u16,
    dir: &Path,
) -> Result<ServerProcess, process::StartError> {
    let mut command = base_command(binary, dir);
    command.args(["--port", &port.to_string()]).args(args);
    ServerProcess::launch(&mut command, &dir.join("redis.log"), port, ping)
}

/// Launches a TLS-only server on `port`, making its certificate first
/// (kept in `dir`, so a restart reuses it).
fn launch_tls(
    binary: &Path,
    openssl: &Path,
    port: u16,
    dir: &Path,
) -> Result<ServerProcess, process::StartError> {
    let (cert, key) = (dir.join(TLS_CERT), dir.join(TLS_KEY));
    if !cert.exists() || !key.exists() {
        let mut command = Command::new(openssl);
        command
            .current_dir(dir)
            .args(["req", "-x509", "-nodes", "-days", "2"])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert);
        process::run_to_completion(
            &mut command,
            &dir.join("openssl.log"),
            Duration::from_secs(30),
        );
    }
    let mut command = base_command(binary, dir);
    command
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&cert)
        .args(["--tls-auth-clients", "no"]);
    ServerProcess::launch(&mut command, &dir.join("redis.log"), port, tls_ping)
}

/// `redis-server` bound to 127.0.0.1 in `dir`, without persistence, also on
/// a Unix socket there; the caller adds the ports.
fn base_command(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--unixsocket")
        .arg(dir.join(SOCKET))
        .args(["--unixsocketperm", "700"]);
    command
}

/// Readiness probe: `PING` answered with `+PONG`.
fn ping(port: u16) -> bool {
    query(port, &["PING"]).is_ok_and(|reply| reply == "+PONG")
}

/// Readiness probe over TLS: `redis-cli --tls --insecure PING` prints `PONG`.
fn tls_ping(port: u16) -> bool {
    let cli = find_binary("redis-cli", INSTALL);
    Command::new(cli)
        .args([
            "--tls",
            "--insecure",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .arg("PING")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"PONG")
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
