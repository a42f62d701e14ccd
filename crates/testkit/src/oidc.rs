//! A real OpenID Connect provider: the certified npm package
//! `oidc-provider`, run by `tools/node/oidc-provider.mjs` on a free
//! loopback port with one confidential client.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::http;
use crate::process::{
    NPM_INSTALL, Server, ServerProcess, StartError, find_binary, node_tools_bin_dir, server_handle,
};

/// The registered client's id.
const CLIENT_ID: &str = "board-test";
/// The registered client's secret (`client_secret_basic`).
const CLIENT_SECRET: &str = "board-test-secret-that-is-long-enough";
/// The path of the client's redirect URI, on any loopback port.
const REDIRECT_PATH: &str = "/auth/oidc/test/callback";
/// What discovery and JWKS say in `Cache-Control: max-age`, seconds.
const MAX_AGE_SECS: u32 = 300;

/// A real OpenID provider (npm `oidc-provider`) at
/// `http://127.0.0.1:PORT`, with one client ([`client_id`](Self::client_id),
/// [`client_secret`](Self::client_secret)) whose redirect URI is
/// `http://127.0.0.1:ANY-PORT/auth/oidc/test/callback` (a native client:
/// loopback redirects match on any port, RFC 8252).
///
/// Signing in goes through oidc-provider's development login page (any
/// login and password are accepted; the login is the account's `sub`)
/// and then its consent page. Discovery and JWKS are served with
/// `Cache-Control: public, max-age=300`.
///
/// Every start makes a new RSA signing key, so
/// [`restart`](Self::restart) is a key rotation on the same issuer (and
/// forgets the provider's sessions and codes). Dropping it kills the
/// server and waits for it.
///
/// ```no_run
/// let provider = testkit::OidcProvider::start();
/// assert!(provider.issuer().starts_with("http://127.0.0.1:"));
/// assert_eq!(provider.redirect_path(), "/auth/oidc/test/callback");
/// ```
pub struct OidcProvider {
    server: Server,
}

impl OidcProvider {
    /// Starts `node tools/node/oidc-provider.mjs` on a free port and waits
    /// until its discovery document answers, retrying with another port if
    /// the chosen one is taken first.
    ///
    /// # Panics
    ///
    /// If Node.js or the npm package is not installed (run
    /// `scripts/install-test-deps`), or it is not ready within 10 s; the
    /// message includes its log.
    #[must_use]
    pub fn start() -> Self {
        let node = find_binary("node", "apt-get install -y nodejs npm");
        let package = node_tools_bin_dir().join("../oidc-provider/package.json");
        assert!(
            package.is_file(),
            "oidc-provider not installed ({} missing): {NPM_INSTALL}",
            package.display()
        );
        Self {
            server: Server::start_binary("oidc-provider", node, launch),
        }
    }

    /// The issuer URL, `http://127.0.0.1:PORT` (no trailing slash).
    #[must_use]
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The registered client's id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        CLIENT_ID
    }

    /// The registered client's secret.
    #[must_use]
    pub fn client_secret(&self) -> &str {
        CLIENT_SECRET
    }

    /// The path every redirect URI of the client has:
    /// `/auth/oidc/test/callback`.
    #[must_use]
    pub fn redirect_path(&self) -> &str {
        REDIRECT_PATH
    }

    /// The `max-age` of discovery and JWKS responses, seconds.
    #[must_use]
    pub fn max_age_secs(&self) -> u32 {
        MAX_AGE_SECS
    }
}

server_handle!(OidcProvider {
    pid: "The provider's process id (the `node` running it), or `None` while \
          stopped.",
    stop: "Kills the provider and waits for it, keeping the port number. \
           Does nothing if already stopped.",
    restart: "Starts the provider again on the same port (same issuer), \
              stopping it first if it is running. It comes back with a **new \
              signing key** (a key rotation) and without its sessions and \
              codes.",
    debug: [],
});

/// `tools/node/oidc-provider.mjs` in this workspace.
fn script() -> PathBuf {
    node_tools_bin_dir().join("../../oidc-provider.mjs")
}

fn launch(node: &Path, port: u16, dir: &Path) -> Result<ServerProcess, StartError> {
    let mut command = Command::new(node);
    command
        .current_dir(dir)
        .arg(script())
        .args(["--port", &port.to_string()])
        .args(["--client-id", CLIENT_ID])
        .args(["--client-secret", CLIENT_SECRET])
        .args(["--redirect-path", REDIRECT_PATH])
        .args(["--max-age", &MAX_AGE_SECS.to_string()]);
    ServerProcess::launch(
        &mut command,
        &dir.join("oidc-provider.log"),
        port,
        discovery,
    )
}

/// Readiness probe: the discovery document answers 200 and names its issuer.
fn discovery(port: u16) -> bool {
    http::request(port, "GET", "/.well-known/openid-configuration", &[], "")
        .is_ok_and(|(status, body)| status == 200 && body.contains("\"issuer\""))
}
