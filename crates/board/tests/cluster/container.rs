//! The image on its own (`podman run`): non-root on a read-only root,
//! SIGTERM, and settings that stop it at once.

use std::process::Output;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::{ok, podman, run};

const IMAGE: &str = "localhost/board:local";

/// One `podman run` of the image; removed (by id) on drop.
struct Container {
    id: String,
}

impl Container {
    fn start(args: &[&str]) -> Self {
        let id = ok(podman().args(["run", "--detach", "--read-only"]).args(args));
        Self {
            id: id.trim().to_owned(),
        }
    }

    fn exec(&self, command: &[&str]) -> Output {
        run(podman().args(["exec", &self.id]).args(command))
    }

    fn logs(&self) -> String {
        let output = run(podman().args(["logs", &self.id]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--volumes", "--time", "0", &self.id])
            .output();
    }
}

const KEY: &str = "a container test key of more than thirty-two characters";

#[tokio::test]
#[ignore = "runs the image under podman; scripts/test runs it as its own step"]
async fn the_image_runs_as_non_root_on_a_read_only_root_and_stops_cleanly() {
    let key = format!("BOARD_SECRET_KEY={KEY}");
    let board = Container::start(&[
        "--publish",
        "127.0.0.1::8000",
        // An anonymous volume, made from the image's /data (owned by
        // 10001) and removed with the container.
        "--volume",
        "/data",
        // As readOnlyRootFilesystem: no tmpfs on /tmp and /run either.
        "--read-only-tmpfs=false",
        "--env",
        &key,
        IMAGE,
    ]);
    let port = ok(podman().args(["port", &board.id, "8000/tcp"]));
    let base = format!("http://{}", port.trim());
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK);
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "no /healthz: {}", board.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The board is process 1 of the container.
    let status = board.exec(&["cat", "/proc/1/status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default();
    assert_eq!(
        uid.split_whitespace().collect::<Vec<_>>(),
        ["Uid:", "10001", "10001", "10001", "10001"],
        "{status}"
    );
    assert!(status.contains("Name:\tboard"), "{status}");
    // /tmp is world-writable in the image: only the read-only root keeps
    // the board from writing there.
    for path in ["/x", "/tmp/x", "/var/tmp/x"] {
        let touch = board.exec(&["touch", path]);
        assert!(!touch.status.success(), "{path} is writable");
        assert!(
            String::from_utf8_lossy(&touch.stderr).contains("Read-only file system"),
            "{path}: {}",
            String::from_utf8_lossy(&touch.stderr)
        );
    }
    // Its one writable place: /data (a volume).
    let page = http.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(page.status(), StatusCode::OK);
    let data = board.exec(&["ls", "/data"]);
    assert!(
        String::from_utf8_lossy(&data.stdout).contains("board.sqlite"),
        "the SQLite file in /data"
    );

    // SIGTERM: stops within the grace period, exit code 0.
    let started = Instant::now();
    ok(podman().args(["stop", "--time", "10", &board.id]));
    let took = started.elapsed();
    let code = ok(podman().args(["inspect", "--format", "{{.State.ExitCode}}", &board.id]));
    println!("SIGTERM -> exit {} in {took:?}", code.trim());
    assert_eq!(
        code.trim(),
        "0",
        "exit code after SIGTERM: {}",
        board.logs()
    );
    assert!(
        took < Duration::from_secs(10),
        "stopped only after {took:?}"
    );
    assert!(board.logs().contains("shutting down"), "{}", board.logs());
}

#[test]
#[ignore = "runs the image under podman; scripts/test runs it as its own step"]
fn a_bad_setting_stops_the_container_at_once_with_a_clear_line() {
    let key = format!("BOARD_SECRET_KEY={KEY}");
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec![
                "--env",
                &key,
                "--env",
                "BOARD_CACHE_URL=carrier-pigeon://redis:6379",
            ],
            "--cache-url",
        ),
        (vec![], "no --secret-key (BOARD_SECRET_KEY) given"),
        (
            vec!["--env", "BOARD_SECRET_KEY=CHANGE-ME"],
            "--secret-key must be at least 32 characters",
        ),
    ];
    for (env, expected) in cases {
        let started = Instant::now();
        let mut args = vec!["--volume", "/data"];
        args.extend(&env);
        args.push(IMAGE);
        let container = Container::start(&args);
        let code = ok(podman().args(["wait", &container.id]));
        let took = started.elapsed();
        let logs = container.logs();
        println!(
            "{expected}: exit {} after {took:?}: {}",
            code.trim(),
            logs.trim()
        );
        assert_eq!(code.trim(), "2", "{env:?}: {logs}");
        assert!(logs.contains(expected), "{env:?}: {logs}");
        assert!(logs.contains("invalid configuration"), "{env:?}: {logs}");
        assert!(!logs.contains("panicked"), "{env:?}: {logs}");
        assert!(took < Duration::from_secs(10), "{env:?} took {took:?}");
    }
}
