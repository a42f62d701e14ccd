//! Debian's `chromedriver` (package `chromium-driver`) on a free loopback
//! port, plus the flags headless Chromium needs on these machines.

use std::io;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, Server, ServerProcess, StartError, find_binary, server_handle};

const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL: &str = "apt-get install -y --no-install-recommends chromium chromium-driver";

/// A real `chromedriver` serving WebDriver on 127.0.0.1 on a free port.
///
/// Sessions should launch [`chromium_binary`](Self::chromium_binary) with
/// [`chrome_args`](Self::chrome_args) and a `--user-data-dir` from
/// [`fresh_user_data_dir`](Self::fresh_user_data_dir).
///
/// Dropping it asks chromedriver to `/shutdown` (which quits the browsers of
/// any open sessions), then kills chromedriver and anything it spawned.
///
/// ```no_run
/// let driver = testkit::Chromedriver::start();
/// let profile = testkit::Chromedriver::fresh_user_data_dir();
/// let mut args: Vec<String> = testkit::Chromedriver::chrome_args()
///     .into_iter()
///     .map(String::from)
///     .collect();
/// args.push(format!("--user-data-dir={}", profile.path().display()));
/// // POST {driver.url()}/session with goog:chromeOptions {binary, args}.
/// ```
pub struct Chromedriver {
    server: Server,
}

impl Chromedriver {
    /// Starts `chromedriver --port=PORT` on a free port and waits until
    /// `GET /status` reports it ready, retrying with another port if the
    /// chosen one is taken first.
    ///
    /// # Panics
    ///
    /// If `chromedriver` or `/usr/bin/chromium` is not installed, or it is not
    /// ready within 10 s; the message includes its log.
    #[must_use]
    pub fn start() -> Self {
        let binary = find_binary("chromedriver", INSTALL);
        assert!(
            Path::new(CHROMIUM).is_file(),
            "{CHROMIUM} not found: install it with `{INSTALL}` \
             (scripts/install-test-deps does this; scripts/test runs it)"
        );
        Self {
            server: Server::start_binary("chromedriver", binary, launch),
        }
    }

    /// `http://127.0.0.1:PORT`, the WebDriver endpoint (no trailing slash).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The Chromium executable to name as `goog:chromeOptions.binary`.
    #[must_use]
    pub fn chromium_binary() -> &'static str {
        CHROMIUM
    }

    /// The flags Chromium needs here: headless, no sandbox (tests run as
    /// root), no GPU, no QUIC, and no first-run, sync, update or background
    /// network traffic. Add `--user-data-dir=` with a fresh directory.
    #[must_use]
    pub fn chrome_args() -> Vec<&'static str> {
        vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
    }

    /// A new empty directory for Chromium's `--user-data-dir`; keep it alive
    /// until the session ends (dropping it deletes the profile).
    #[must_use]
    pub fn fresh_user_data_dir() -> TempDir {
        process::temp_dir("chromium-profile")
    }

    /// Shuts chromedriver down (closing its sessions' browsers), waits for it
    /// to exit, then kills whatever is left. Does nothing if already stopped.
    pub fn stop(&mut self) {
        if self.pid().is_some() {
            // Best effort: a graceful shutdown quits the browsers, which a
            // kill of chromedriver alone would orphan.
            let _ = http(self.port(), "GET", "/shutdown", "");
            let _ = self.server.process_mut().wait_exit(Duration::from_secs(5));
        }
        self.server.stop();
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        self.stop();
    }
}

server_handle!(Chromedriver {
    port: "The TCP port on 127.0.0.1.",
    pid: "chromedriver's process id, or `None` once stopped.",
    log: "The end of chromedriver's log (its stdout and stderr).",
    debug: [],
});

fn launch(binary: &Path, port: u16, dir: &Path) -> Result<ServerProcess, StartError> {
    let mut command = Command::new(binary);
    command.current_dir(dir).arg(format!("--port={port}"));
    ServerProcess::launch(&mut command, &dir.join("chromedriver.log"), port, ready)
}

/// Readiness probe: `GET /status` answers 200 with `"ready":true`.
fn ready(port: u16) -> bool {
    http(port, "GET", "/status", "").is_ok_and(|(status, body)| {
        status == 200 && body.replace(' ', "").contains("\"ready\":true")
    })
}

/// One HTTP/1.1 request with a JSON body to chromedriver on `port`.
fn http(port: u16, method: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
    let json = [("Content-Type", "application/json")];
    crate::http::request(port, method, path, &json, body)
}
