//! `s3rver`, an S3-compatible server on Node.js (npm package `s3rver`), on a
//! free loopback port with one bucket.

use std::path::Path;
use std::process::Command;

use crate::http;
use crate::process::{Server, ServerProcess, StartError, find_node_binary, server_handle};

/// The environment variable that overrides where `s3rver` is found.
const ENV_VAR: &str = "S3RVER_BIN";
/// The bucket that exists from the start.
const BUCKET: &str = "board";
/// s3rver's built-in credentials (with `--allow-mismatched-signatures`, any
/// well-formed signature is accepted anyway).
const ACCESS_KEY_ID: &str = "S3RVER";
const SECRET_ACCESS_KEY: &str = "S3RVER";

/// A real `s3rver` (S3 API, path-style only) bound to 127.0.0.1 on a free
/// port, storing objects on disk in its own temporary directory, with the
/// bucket [`bucket`](Self::bucket) (`board`) created at start.
///
/// Requests must be path-style (`http://127.0.0.1:PORT/board/key`): virtual
/// host buckets are off. Signatures are checked for form only.
///
/// Dropping it kills the server (the `node` process), waits for it to exit
/// and deletes its data.
///
/// ```no_run
/// let s3 = testkit::S3Server::start();
/// assert_eq!(s3.bucket(), "board");
/// assert!(s3.endpoint().starts_with("http://127.0.0.1:"));
/// ```
pub struct S3Server {
    server: Server,
}

impl S3Server {
    /// Starts `s3rver -d DIR/data -a 127.0.0.1 -p PORT --silent
    /// --allow-mismatched-signatures --no-vhost-buckets --configure-bucket
    /// board` on a free port and waits until `GET /board` lists the bucket,
    /// retrying with another port if the chosen one is taken first.
    ///
    /// The binary is `$S3RVER_BIN` if set, else
    /// `tools/node/node_modules/.bin/s3rver` in this workspace, else
    /// `s3rver` on `PATH`.
    ///
    /// # Panics
    ///
    /// If `s3rver` (or Node.js) is not installed, or it does not answer
    /// within 10 s; the message includes its log.
    #[must_use]
    pub fn start() -> Self {
        let binary = find_node_binary("s3rver", ENV_VAR);
        Self {
            server: Server::start_binary("s3rver", binary, launch),
        }
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint URL (no trailing slash);
    /// use it with path-style addressing.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The bucket created at start: `board`.
    #[must_use]
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// s3rver's access key id, `S3RVER`.
    #[must_use]
    pub fn access_key_id(&self) -> &str {
        ACCESS_KEY_ID
    }

    /// s3rver's secret access key, `S3RVER`.
    #[must_use]
    pub fn secret_access_key(&self) -> &str {
        SECRET_ACCESS_KEY
    }
}

server_handle!(S3Server {
    pid: "The server's process id (the `node` running s3rver), or `None` while \
          stopped.",
    stop: "Kills the server and waits for it, keeping the port number and the \
           stored objects. Does nothing if already stopped.",
    restart: "Starts the server again on the same port, stopping it first if \
              it is running, retrying briefly while the port is not yet free. \
              Objects are on disk, so it comes back **with** the bucket's \
              contents.",
    debug: [bucket],
});

fn launch(binary: &Path, port: u16, dir: &Path) -> Result<ServerProcess, StartError> {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .arg("-d")
        .arg(dir.join("data"))
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "--silent",
            "--allow-mismatched-signatures",
            "--no-vhost-buckets",
        ])
        .args(["--configure-bucket", BUCKET]);
    ServerProcess::launch(&mut command, &dir.join("s3rver.log"), port, list_bucket)
}

/// Readiness probe: `GET /board` answered 200 with a `ListBucketResult`.
pub(crate) fn list_bucket(port: u16) -> bool {
    http::request(port, "GET", &format!("/{BUCKET}"), &[], "")
        .is_ok_and(|(status, body)| status == 200 && body.contains("<ListBucketResult"))
}
