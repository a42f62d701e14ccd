//! Helpers of the cluster tests: podman as the scripts run it, and the
//! board's forms (as in `tests/fleet`).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use image::{DynamicImage, ImageFormat, RgbImage};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::multipart;

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `podman` as the project's scripts run it (deploy/podman/containers.conf).
pub(crate) fn podman() -> Command {
    let mut command = Command::new("podman");
    command.env(
        "CONTAINERS_CONF",
        workspace().join("deploy/podman/containers.conf"),
    );
    command
}

pub(crate) fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} did not run: {e}"))
}

/// Runs `command`; panics with its output unless it succeeds; its stdout.
pub(crate) fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Resident memory of a container's main process (host view): (now, peak).
pub(crate) fn rss_kib(container: &str) -> (u64, u64) {
    let pid = ok(podman().args(["inspect", "--format", "{{.State.Pid}}", container]));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
        })
        .filter(|v| !v.is_empty())
}

pub(crate) fn csrf_in(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("page has a csrf field");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

/// Ids of the delete forms on a page.
pub(crate) fn message_ids(html: &str) -> Vec<String> {
    html.match_indices("name=\"id\" value=\"")
        .map(|(at, pat)| {
            let rest = &html[at + pat.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
        })
        .collect()
}

/// The `src` of the first thumbnail on a page.
pub(crate) fn first_thumbnail(html: &str) -> Option<String> {
    let at = html.find("<img src=\"")? + "<img src=\"".len();
    Some(html[at..at + html[at..].find('"')?].to_owned())
}

pub(crate) fn picture() -> Vec<u8> {
    let img = RgbImage::from_fn(32, 24, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 9 % 256) as u8, 80])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut out, ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}

pub(crate) fn post_form(csrf: &str, text: &str) -> multipart::Form {
    multipart::Form::new()
        .text("csrf", csrf.to_owned())
        .text("author", "Cluster")
        .text("location", "Pods")
        .text("description", text.to_owned())
        .part(
            "image",
            multipart::Part::bytes(picture()).file_name("pic.png"),
        )
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
