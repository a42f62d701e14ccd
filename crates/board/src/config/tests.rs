//! Tests of the settings: units, defaults, the flags every command shares.

use super::*;

#[test]
fn oidc_flags_line_up_by_position() {
    let parse = |args: &[&str]| {
        Cli::try_parse_from(["board", "serve"].iter().chain(args))
            .map(|cli| match cli.command {
                Some(Command::Serve(settings)) => settings.oidc_providers(),
                _ => Err("not serve".into()),
            })
            .expect("parses")
    };
    assert!(parse(&[]).expect("none").is_empty());
    let google = parse(&[
        "--oidc-issuer=https://accounts.google.com",
        "--oidc-client-id=id",
        "--oidc-client-secret=s",
    ])
    .expect("google");
    assert_eq!(google[0].slug, "google");
    assert_eq!(google[0].redirect_url, None);
    let two = parse(&[
        "--oidc-issuer=https://a.example",
        "--oidc-issuer=https://b.example/realm",
        "--oidc-client-id=a,b",
        "--oidc-client-secret=x,y",
        "--oidc-name=A,Bee",
    ])
    .expect("two");
    assert_eq!(two[1].slug, "bee");
    assert_eq!(two[1].client_id, "b");
    let missing = parse(&["--oidc-issuer=https://a.example", "--oidc-client-id=a"]);
    assert!(missing.is_err_and(|e| e.contains("--oidc-client-secret")));
}

#[test]
fn sizes_parse_with_units() {
    assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
    assert_eq!(parse_size("500 KiB"), Ok(500 * 1024));
    assert_eq!(parse_size("2MB"), Ok(2_000_000));
    assert_eq!(parse_size("1234"), Ok(1234));
    assert!(parse_size("0").is_err());
    assert!(parse_size("ten").is_err());
    assert!(parse_size("5 parsecs").is_err());
    assert!(parse_size("99999999999999GiB").is_err());
}

#[test]
fn durations_parse_with_units() {
    assert_eq!(parse_duration("600"), Ok(Duration::from_secs(600)));
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
    assert!(parse_duration("soon").is_err());
    assert!(parse_duration("3 weeks").is_err());
}

#[test]
fn defaults_match_the_documented_ones() {
    let parsed = Settings::from_env().expect("defaults parse");
    let defaults = Settings::defaults();
    assert_eq!(parsed.page_size, defaults.page_size);
    assert_eq!(parsed.upload_limit, defaults.upload_limit);
    assert_eq!(parsed.user_cache_timeout, defaults.user_cache_timeout);
    assert_eq!(parsed.max_image_side, defaults.max_image_side);
    assert_eq!(parsed.busy_wait, defaults.busy_wait);
    assert_eq!(parsed.decode_memory, defaults.decode_memory);
    assert_eq!(parsed.max_stored_side, defaults.max_stored_side);
    assert_eq!(parsed.hash_concurrency, None);
    // A max-side RGBA image fits one decode's budget.
    let side = u64::from(defaults.max_image_side);
    assert!(side * side * 4 <= defaults.decode_memory);
    assert_eq!(
        parsed.login_failures_per_account,
        defaults.login_failures_per_account
    );
    assert_eq!(parsed.header_read_timeout, defaults.header_read_timeout);
    assert_eq!(parsed.idle_timeout, defaults.idle_timeout);
    assert_eq!(parsed.max_connections, defaults.max_connections);
    assert_eq!(
        parsed.max_connections_per_address,
        defaults.max_connections_per_address
    );
    assert_eq!(
        parsed.registrations_per_address,
        defaults.registrations_per_address
    );
    assert_eq!(parsed.media_sweep_interval, defaults.media_sweep_interval);
    assert_eq!(parsed.media_sweep_grace, defaults.media_sweep_grace);
    assert_eq!(parsed.post_limits(), defaults.post_limits());
    assert_eq!(defaults.post_limits(), crate::data::PostLimits::default());
    // A burst of at most 50 posts per account.
    assert!(
        defaults
            .post_limits()
            .posts_per_account
            .iter()
            .any(|a| a.amount <= 50)
    );
}

#[test]
fn serve_and_demo_take_the_same_storage_flags() {
    let flags = [
        "--database-url",
        "sqlite://x.sqlite",
        "--media-url",
        "file://m",
    ];
    let expected = StorageArgs {
        database_url: "sqlite://x.sqlite".into(),
        media_url: "file://m".into(),
    };
    for command in ["serve", "demo"] {
        let cli = Cli::try_parse_from(["board", command].into_iter().chain(flags))
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        let storage = match cli.command {
            Some(Command::Serve(settings)) => settings.storage,
            Some(Command::Demo(args)) => args.storage,
            other => panic!("{command} parsed as {other:?}"),
        };
        assert_eq!(storage, expected, "{command}");
    }
    if std::env::var_os("BOARD_DATABASE_URL").is_none()
        && std::env::var_os("BOARD_MEDIA_URL").is_none()
    {
        let parsed = Settings::from_env().expect("defaults parse");
        assert_eq!(parsed.storage, StorageArgs::default());
    }
}

#[test]
fn a_sweep_grace_under_a_minute_is_refused() {
    assert_eq!(parse_sweep_grace("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_sweep_grace("60s"), Ok(MIN_SWEEP_GRACE));
    for short in ["0", "59s", "500ms"] {
        let error = parse_sweep_grace(short).expect_err(short);
        assert!(error.contains("at least 1m"), "{error}");
    }
}
