//! The binary: `--help` lists every setting; bad configuration exits with a
//! clear message and code 2; `demo` fills a fresh board.

use std::process::Command;

fn board() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_board"));
    // The tests' own environment must not leak settings in.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BOARD_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn serve_help_lists_every_setting_with_its_variable() {
    let output = board().args(["serve", "--help"]).output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, env) in [
        ("--address", "BOARD_ADDRESS"),
        ("--database-url", "BOARD_DATABASE_URL"),
        ("--media-url", "BOARD_MEDIA_URL"),
        ("--media-base-url", "BOARD_MEDIA_BASE_URL"),
        ("--cache-url", "BOARD_CACHE_URL"),
        ("--secret-key", "BOARD_SECRET_KEY"),
        ("--require-secret-key", "BOARD_REQUIRE_SECRET_KEY"),
        ("--upload-limit", "BOARD_UPLOAD_LIMIT"),
        ("--request-timeout", "BOARD_REQUEST_TIMEOUT"),
        ("--user-cache-timeout", "BOARD_USER_CACHE_TIMEOUT"),
        ("--messages-cache-timeout", "BOARD_MESSAGES_CACHE_TIMEOUT"),
        ("--page-size", "BOARD_PAGE_SIZE"),
        ("--demo", "BOARD_DEMO"),
        ("--media-sweep-interval", "BOARD_MEDIA_SWEEP_INTERVAL"),
        ("--media-sweep-grace", "BOARD_MEDIA_SWEEP_GRACE"),
        ("--account-quota", "BOARD_ACCOUNT_QUOTA"),
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
        assert!(help.contains(env), "{env} missing:\n{help}");
    }
    // `demo` takes the storage flags of `serve` (one `StorageArgs`).
    let output = board().args(["demo", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, env) in [
        ("--database-url", "BOARD_DATABASE_URL"),
        ("--media-url", "BOARD_MEDIA_URL"),
    ] {
        assert!(
            help.contains(flag) && help.contains(env),
            "demo: {flag}:\n{help}"
        );
    }
}

#[test]
fn bad_configuration_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}/b.sqlite", dir.path().display());
    let cases: &[(&[&str], &str)] = &[
        (&["serve", "--page-size", "0"], "--page-size"),
        (&["serve", "--upload-limit", "lots"], "--upload-limit"),
        (&["serve", "--address", "not-an-address"], "--address"),
        (
            &[
                "serve",
                "--database-url",
                "mysql://x",
                "--address",
                "127.0.0.1:0",
            ],
            "unsupported database URL",
        ),
        (
            &[
                "serve",
                "--database-url",
                &db,
                "--cache-url",
                "carrier-pigeon://x",
                "--address",
                "127.0.0.1:0",
            ],
            "--cache-url",
        ),
        (
            &[
                "serve",
                "--database-url",
                &db,
                "--secret-key",
                "short",
                "--address",
                "127.0.0.1:0",
            ],
            "at least 32 characters",
        ),
        (
            &[
                "serve",
                "--database-url",
                &db,
                "--require-secret-key",
                "--address",
                "127.0.0.1:0",
            ],
            "no --secret-key (BOARD_SECRET_KEY) given",
        ),
        (
            &[
                "serve",
                "--database-url",
                &db,
                "--media-base-url",
                "cdn",
                "--address",
                "127.0.0.1:0",
            ],
            "--media-base-url",
        ),
        (&["serve", "--media-sweep-grace", "10s"], "at least 1m"),
    ];
    for (args, expected) in cases {
        let output = board()
            .args(*args)
            .current_dir(dir.path())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let output = board()
        .args(["serve"])
        .env("BOARD_PAGE_SIZE", "many")
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn demo_fills_a_fresh_board_once() {
    let dir = tempfile::tempdir().expect("dir");
    let args = [
        "demo",
        "--database-url",
        &format!("sqlite://{}/b.sqlite", dir.path().display()),
        "--media-url",
        &format!("file://{}/media", dir.path().display()),
        "--users",
        "3",
        "--messages",
        "5",
    ];
    let output = board().args(args).output().expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("Added 3 users"));
    let files = std::fs::read_dir(dir.path().join("media"))
        .expect("media dir")
        .count();
    assert_eq!(files, 10, "5 pictures and 5 thumbnails");
    let again = board().args(args).output().expect("runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has 3 users"));
}
