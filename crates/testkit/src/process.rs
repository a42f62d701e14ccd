//! Shared child-process plumbing: finding binaries, spawning a
//! server with its output in a log file, probing readiness, retrying a start
//! whose port was lost to a race, and killing everything on stop.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::ports::{POLL_INTERVAL, free_port, owns_listener};

/// How long a freshly spawned server gets to answer its readiness probe.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports a start tries before giving up.
const START_ATTEMPTS: usize = 5;
/// How long a restart keeps retrying its old port (e.g. still in TIME_WAIT).
const SAME_PORT_RETRY_FOR: Duration = Duration::from_secs(5);
/// How much of a log's end goes into a panic message.
const LOG_TAIL_BYTES: usize = 16 * 1024;

/// Advice printed when a server from npm (`tools/node`) is missing.
pub(crate) const NPM_INSTALL: &str = "run scripts/install-test-deps (npm ci --prefix tools/node)";
/// Advice printed when Node.js, which runs the npm servers, is missing.
const NODE_INSTALL: &str = "apt-get install -y nodejs npm";

/// The absolute path of `name`, searched on `PATH` and then in the usual
/// system directories; panics with `install` as advice when it is missing.
pub(crate) fn find_binary(name: &str, install: &str) -> PathBuf {
    search_path(name).unwrap_or_else(|| {
        panic!(
            "{name} not found on PATH: install it with `{install}` \
             (scripts/install-test-deps does this; scripts/test runs it)"
        )
    })
}

/// `name` on `PATH` or in the usual system directories, if it is there.
fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let system = ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(system)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The workspace's own npm tools: `tools/node/node_modules/.bin`, installed
/// from the committed `tools/node/package-lock.json`.
pub(crate) fn node_tools_bin_dir() -> PathBuf {
    // testkit lives in `<workspace>/crates/testkit`.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/node/node_modules/.bin")
}

/// The absolute path of the npm-installed server `name`, looked up in order
/// as the path in the environment variable `env_var`, in
/// [`node_tools_bin_dir`], then on `PATH`; panics with install advice when
/// it is missing (or `env_var` names no file). If it is a Node script, also
/// panics unless `node` itself is installed.
pub(crate) fn find_node_binary(name: &str, env_var: &str) -> PathBuf {
    let binary = locate_node_binary(
        name,
        env_var,
        std::env::var_os(env_var),
        &node_tools_bin_dir(),
    );
    // `#!/usr/bin/env node` would fail only at spawn, five times over.
    if is_node_script(&binary) {
        let _ = find_binary("node", NODE_INSTALL);
    }
    binary
}

/// [`find_node_binary`]'s lookup, given the value of `env_var` and the
/// workspace's npm `bin_dir`.
pub(crate) fn locate_node_binary(
    name: &str,
    env_var: &str,
    env_value: Option<OsString>,
    bin_dir: &Path,
) -> PathBuf {
    if let Some(path) = env_value.filter(|v| !v.is_empty()).map(PathBuf::from) {
        assert!(
            path.is_file(),
            "{env_var}={} is not a file: unset it, or {NPM_INSTALL}",
            path.display()
        );
        return path;
    }
    let local = bin_dir.join(name);
    if local.is_file() {
        return local;
    }
    search_path(name).unwrap_or_else(|| {
        panic!(
            "{name} not found (not in ${env_var}, {}, or on PATH): {NPM_INSTALL}",
            local.display()
        )
    })
}

/// Whether `path` starts with a `#!` line that runs `node`.
fn is_node_script(path: &Path) -> bool {
    let mut head = [0; 128];
    let n = fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let first_line = head[..n].split(|&b| b == b'\n').next().unwrap_or_default();
    first_line.starts_with(b"#!") && String::from_utf8_lossy(first_line).contains("node")
}

/// Why a start attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server exited during startup, typically "address already in use".
    Exited(ExitStatus),
    /// The port answered, but the listener belongs to some other process.
    PortTaken,
    /// No answer within the readiness timeout.
    Timeout(Duration),
}

/// A failed start attempt, with the server's log at the time.
#[derive(Debug)]
pub(crate) struct StartError {
    pub(crate) failure: Failure,
    pub(crate) log: String,
}

impl StartError {
    /// Whether another port (or another try on the same port) may succeed.
    fn is_retryable(&self) -> bool {
        !matches!(self.failure, Failure::Timeout(_))
    }

    fn reason(&self) -> String {
        match &self.failure {
            Failure::Exited(status) => format!("exited during startup ({status})"),
            Failure::PortTaken => "port is held by another process".to_owned(),
            Failure::Timeout(t) => format!("not ready after {t:?}"),
        }
    }
}

/// Runs `attempt` with fresh ports from `pick_port` until one start succeeds;
/// panics with every failure and the last log after [`START_ATTEMPTS`].
pub(crate) fn start_on_fresh_port<T>(
    what: &str,
    pick_port: impl Fn() -> u16,
    mut attempt: impl FnMut(u16) -> Result<T, StartError>,
) -> T {
    let mut failures = Vec::new();
    for n in 1..=START_ATTEMPTS {
        let port = pick_port();
        match attempt(port) {
            Ok(started) => return started,
            Err(err) => {
                failures.push(format!("attempt {n} on port {port}: {}", err.reason()));
                if !err.is_retryable() || n == START_ATTEMPTS {
                    panic!(
                        "{what} failed to start:\n  {}\n--- {what} log ---\n{}",
                        failures.join("\n  "),
                        err.log
                    );
                }
            }
        }
    }
    unreachable!("the last attempt either returns or panics")
}

/// Runs `attempt` on the same port until it succeeds, retrying briefly while
/// the port is not yet free again; panics with the log otherwise.
pub(crate) fn start_on_same_port<T>(
    what: &str,
    port: u16,
    mut attempt: impl FnMut() -> Result<T, StartError>,
) -> T {
    let deadline = Instant::now() + SAME_PORT_RETRY_FOR;
    loop {
        match attempt() {
            Ok(started) => return started,
            Err(err) if err.is_retryable() && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(100));
            }
            Err(err) => panic!(
                "{what} failed to restart on port {port}: {}\n--- {what} log ---\n{}",
                err.reason(),
                err.log
            ),
        }
    }
}

/// A spawned server process whose stdout and stderr go to a log file.
///
/// Dropping it kills the process (and anything it spawned) and reaps it.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Option<Child>,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with its output appended to `log_path`, then polls
    /// `probe` until it answers from a listener this process owns on `port`.
    pub(crate) fn launch(
        command: &mut Command,
        log_path: &Path,
        port: u16,
        probe: fn(u16) -> bool,
    ) -> Result<Self, StartError> {
        let mut process = Self::spawn(command, log_path);
        match process.wait_ready(port, probe) {
            Ok(()) => Ok(process),
            Err(failure) => {
                process.stop();
                Err(StartError {
                    failure,
                    log: process.log(),
                })
            }
        }
    }

    /// Spawns `command` with its output appended to `log_path` (kept across
    /// restarts), without waiting for anything.
    pub(crate) fn spawn(command: &mut Command, log_path: &Path) -> Self {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap_or_else(|e| panic!("cannot open log file {}: {e}", log_path.display()));
        let stderr = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate log file handle: {e}"));
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to run {command:?}: {e}"));
        Self {
            child: Some(child),
            log_path: log_path.to_owned(),
        }
    }

    /// The process id, while running.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The end of the log file (everything, if it is short).
    pub(crate) fn log(&self) -> String {
        read_log_tail(&self.log_path)
    }

    fn wait_ready(&mut self, port: u16, probe: fn(u16) -> bool) -> Result<(), Failure> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(Failure::Exited(status));
            }
            if probe(port) {
                return match self.pid().map(|pid| owns_listener(pid, port)) {
                    Some(false) => Err(Failure::PortTaken),
                    _ => Ok(()),
                };
            }
            if Instant::now() >= deadline {
                return Err(Failure::Timeout(READY_TIMEOUT));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                self.child = None;
                return Some(status);
            }
            if self.child.is_none() || Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills the process and everything it spawned (by PID), then reaps it.
    /// Does nothing if it is not running.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let descendants = descendants_of(child.id());
        let _ = child.kill();
        for pid in descendants {
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a one-shot helper command (e.g. `redis-cli --cluster create`) with
/// its output in `log_path`, killing it after `timeout`; panics on failure.
pub(crate) fn run_to_completion(command: &mut Command, log_path: &Path, timeout: Duration) {
    let mut process = ServerProcess::spawn(command, log_path);
    match process.wait_exit(timeout) {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "{command:?} failed ({status})\n--- log ---\n{}",
            process.log()
        ),
        None => {
            process.stop();
            panic!(
                "{command:?} did not finish within {timeout:?}\n--- log ---\n{}",
                process.log()
            )
        }
    }
}

fn read_log_tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
            let tail = String::from_utf8_lossy(&bytes[start..]);
            if start > 0 {
                format!("[... {start} earlier bytes omitted ...]\n{tail}")
            } else {
                tail.into_owned()
            }
        }
        Err(e) => format!("<cannot read log {}: {e}>", path.display()),
    }
}

/// Every process descended from `root`, read from `/proc/*/stat`.
fn descendants_of(root: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid ..." where comm may contain spaces or ')'.
            let after_comm = &stat[stat.rfind(')')? + 1..];
            let ppid = after_comm.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Creates a temporary directory named `testkit-{what}-XXXXXX`.
pub(crate) fn temp_dir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("testkit-{what}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
}

/// Starts one server process: builds and launches its command for a port
/// and a directory, returning the running process once it is ready.
pub(crate) type Launcher =
    Box<dyn Fn(u16, &Path) -> Result<ServerProcess, StartError> + Send + Sync>;

/// The common shape of every server here: a process on a loopback port with
/// its own temporary directory, which can be stopped and restarted in place.
pub(crate) struct Server {
    // Field order matters: the process dies before its directory is removed.
    process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
    what: &'static str,
    launch: Launcher,
}

impl Server {
    /// Starts `what` on a fresh port from `pick_port`, in a new temporary
    /// directory per attempt, retrying when the port is lost to a race.
    pub(crate) fn start(what: &'static str, pick_port: impl Fn() -> u16, launch: Launcher) -> Self {
        let (process, port, dir) = start_on_fresh_port(what, pick_port, |port| {
            let dir = temp_dir(what);
            let process = launch(port, dir.path())?;
            Ok((process, port, dir))
        });
        Self {
            process,
            port,
            dir,
            what,
            launch,
        }
    }

    /// Starts `what` as [`Server::start`] does on a free port, launching
    /// `binary` with `launch(binary, port, dir)`.
    pub(crate) fn start_binary(
        what: &'static str,
        binary: PathBuf,
        launch: fn(&Path, u16, &Path) -> Result<ServerProcess, StartError>,
    ) -> Self {
        Self::start(
            what,
            free_port,
            Box::new(move |port, dir| launch(&binary, port, dir)),
        )
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub(crate) fn log(&self) -> String {
        self.process.log()
    }

    pub(crate) fn process_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }

    pub(crate) fn stop(&mut self) {
        self.process.stop();
    }

    /// Stops the server if running, then starts it again on the same port
    /// and in the same directory.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let (port, dir) = (self.port, self.dir.path());
        self.process = start_on_same_port(self.what, port, || (self.launch)(port, dir));
    }
}

/// Writes the public methods that only forward to a handle's `server:
/// Server` field, with the docs users see, and a `Debug` showing the port,
/// the pid and the `debug` fields (read by methods of the same name).
///
/// - `Name { port: "..", pid: "..", log: "..", debug: [..] }`: `port`, `pid`,
///   `log` and `Debug`, for a server that stops in its own way (it writes
///   its own `stop` and `Drop`).
/// - `Name { pid: "..", stop: "..", restart: "..", debug: [..] }`: also
///   `stop`, `restart` (whose docs get the `# Panics` section appended) and a
///   `Drop` that stops the server; `port` and `log` get the usual docs.
macro_rules! server_handle {
    (
        $name:ident {
            port: $port:literal,
            pid: $pid:literal,
            log: $log:literal,
            debug: [$($field:ident),*] $(,)?
        }
    ) => {
        $crate::process::server_handle!(@with $name, $port, $pid, $log, [$($field),*], {});
    };
    (
        $name:ident {
            pid: $pid:literal,
            stop: $stop:literal,
            restart: $restart:literal,
            debug: [$($field:ident),*] $(,)?
        }
    ) => {
        $crate::process::server_handle!(
            @with $name,
            "The TCP port on 127.0.0.1; it stays the same across restarts.",
            $pid,
            "The end of the server's log (its stdout and stderr).",
            [$($field),*],
            {
                #[doc = $stop]
                pub fn stop(&mut self) {
                    self.server.stop();
                }

                #[doc = concat!(
                    $restart,
                    "\n\n# Panics\n\nIf it cannot get its port back or does not become ready.",
                )]
                pub fn restart(&mut self) {
                    self.server.restart();
                }
            }
        );

        impl Drop for $name {
            fn drop(&mut self) {
                self.server.stop();
            }
        }
    };
    (@with $name:ident, $port:literal, $pid:literal, $log:literal, [$($field:ident),*], {
        $($more:item)*
    }) => {
        impl $name {
            #[doc = $port]
            #[must_use]
            pub fn port(&self) -> u16 {
                self.server.port()
            }

            #[doc = $pid]
            #[must_use]
            pub fn pid(&self) -> Option<u32> {
                self.server.pid()
            }

            #[doc = $log]
            #[must_use]
            pub fn log(&self) -> String {
                self.server.log()
            }

            $($more)*
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("port", &self.port())
                    .field("pid", &self.pid())
                    $(.field(stringify!($field), &self.$field()))*
                    .finish()
            }
        }
    };
}

pub(crate) use server_handle;
