use super::*;

fn parse(url: &str) -> CacheConfig {
    CacheConfig::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[test]
fn memory_with_options() {
    let c = parse("memory://?capacity=123&prefix=board:&timeout=5&strict=true");
    assert_eq!(c.store, StoreConfig::Memory { capacity: 123 });
    assert_eq!(c.key_prefix, "board:");
    assert_eq!(c.default_timeout, Some(Duration::from_secs(5)));
    assert!(c.strict);
}

#[test]
fn defaults_follow_flask_caching() {
    let c = parse("memory://");
    assert_eq!(c.default_timeout, Some(DEFAULT_TIMEOUT));
    assert_eq!(c.key_prefix, "");
    assert!(!c.strict);
    assert_eq!(parse("null://").store, StoreConfig::Null);
    assert_eq!(parse("memory://?timeout=0").default_timeout, None);
}

#[test]
fn remote_schemes() {
    assert_eq!(
        parse("redis://127.0.0.1:6379/2?prefix=p").store,
        StoreConfig::Redis {
            url: "redis://127.0.0.1:6379/2".into(),
            options: RedisOptions::default(),
        }
    );
    assert_eq!(
        parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").store,
        StoreConfig::RedisCluster {
            nodes: vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into()
            ],
            options: RedisOptions::default(),
        }
    );
    assert_eq!(
        parse("memcached://a:11211,b:11212").store,
        StoreConfig::Memcached {
            servers: vec!["a:11211".into(), "b:11212".into()]
        }
    );
    assert_eq!(
        parse("file:///var/cache/board?threshold=10").store,
        StoreConfig::FileSystem {
            path: "/var/cache/board".into(),
            threshold: 10
        }
    );
    assert_eq!(
        parse("tiered+redis://h:1/0?l1_capacity=7&prefix=x").store,
        StoreConfig::Tiered {
            l1_capacity: 7,
            l2: Box::new(StoreConfig::Redis {
                url: "redis://h:1/0".into(),
                options: RedisOptions::default(),
            })
        }
    );
}

#[test]
fn bad_urls_say_what_is_wrong() {
    for (url, needle) in [
        ("nope", "invalid cache URL"),
        ("ftp://x", "unknown cache scheme `ftp://`"),
        ("memory://?capacity=lots", "capacity=lots"),
        ("memory://?colour=blue", "unknown option `colour`"),
        ("tiered+memory://", "needs a shared store"),
        ("memcached://", "names no server"),
    ] {
        let error = CacheConfig::from_url(url).expect_err(url);
        assert!(error.is_config(), "{url}: {error:?}");
        assert!(error.to_string().contains(needle), "{url}: {error}");
    }
}

#[test]
fn breaker_options() {
    let c = parse("redis://127.0.0.1:6379/0");
    assert_eq!(c.breaker, BreakerConfig::default());
    assert!(c.breaker.enabled);
    let c = parse(
        "tiered+redis://127.0.0.1:6379/0?breaker=on&probe_ms=50&probe_max_ms=800&breaker_errors=5&heartbeat_ms=300",
    );
    assert_eq!(c.breaker.probe_interval, Duration::from_millis(50));
    assert_eq!(c.breaker.probe_max, Duration::from_millis(800));
    assert_eq!(c.breaker.error_burst, 5);
    let StoreConfig::Tiered { l2, .. } = &c.store else {
        panic!("tiered: {c:?}");
    };
    assert_eq!(
        **l2,
        StoreConfig::Redis {
            url: "redis://127.0.0.1:6379/0".into(),
            options: RedisOptions::default(),
        },
        "breaker and bus options stay out of the Redis URL"
    );
    assert_eq!(c.bus_heartbeat, Some(Duration::from_millis(300)));
    let cluster = parse("tiered+redis+cluster://127.0.0.1:7000,127.0.0.1:7001?heartbeat_ms=250");
    assert_eq!(cluster.bus_heartbeat, Some(Duration::from_millis(250)));
    assert!(
        !parse("memcached://127.0.0.1:11211?breaker=off")
            .breaker
            .enabled
    );
    for bad in [
        "redis://h/?breaker=maybe",
        "redis://h/?probe_ms=x",
        "redis://h/?probe_ms=500&probe_max_ms=100",
    ] {
        let error = CacheConfig::from_url(bad).expect_err(bad);
        assert!(error.is_config(), "{bad}: {error}");
    }
}

#[test]
fn store_options_are_typed() {
    assert_eq!(
        parse("redis://h:1/0?timeout_ms=250&protocol=resp3&heartbeat_ms=40").store,
        StoreConfig::Redis {
            url: "redis://h:1/0?protocol=resp3".into(),
            options: RedisOptions::default().timeout(Duration::from_millis(250)),
        },
        "memocache's options leave the URL, the Redis client's stay"
    );
    assert_eq!(
        parse("tiered+redis+cluster://a:1,b:2?timeout_ms=0").store,
        StoreConfig::Tiered {
            l1_capacity: DEFAULT_CAPACITY,
            l2: Box::new(StoreConfig::RedisCluster {
                nodes: vec!["redis://a:1".into(), "redis://b:2".into()],
                options: RedisOptions::default().timeout(Duration::from_millis(1)),
            }),
        }
    );
    let error = CacheConfig::from_url("redis://h/?timeout_ms=soon").expect_err("bad");
    assert!(error.to_string().contains("timeout_ms=soon"), "{error}");
    for unknown in [
        "memory://?timeout_ms=5",
        "file:///tmp/x?heartbeat_ms=5&colour=blue",
    ] {
        let error = CacheConfig::from_url(unknown).expect_err(unknown);
        assert!(
            error.to_string().contains("unknown option"),
            "{unknown}: {error}"
        );
    }
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_environment_maps_one_to_one_onto_the_url() {
    let config = CacheConfig::from_vars(vars(&[
        (
            "MEMOCACHE_URL",
            "redis://127.0.0.1:6379/0?prefix=url:&timeout=10",
        ),
        ("MEMOCACHE_PREFIX", "env:"),
        ("MEMOCACHE_LEASE_WAIT_MS", "250"),
        ("PATH", "/usr/bin"),
    ]))
    .expect("config");
    assert_eq!(config.key_prefix, "env:", "the variable wins over the URL");
    assert_eq!(
        config.default_timeout,
        Some(Duration::from_secs(10)),
        "the URL's own"
    );
    assert_eq!(config.lease_wait, Duration::from_millis(250));
    assert_eq!(
        config,
        CacheConfig::from_url("redis://127.0.0.1:6379/0?prefix=env:&timeout=10&lease_wait_ms=250")
            .expect("url")
    );
    // Nothing set: an in-process cache with the defaults.
    assert_eq!(
        CacheConfig::from_vars(Vec::new()).expect("default"),
        CacheConfig::from_url("memory://").expect("memory")
    );
}

#[test]
fn a_bad_variable_is_named_with_its_value() {
    let error = |pairs: &[(&str, &str)]| {
        CacheConfig::from_vars(vars(pairs))
            .expect_err("refused")
            .to_string()
    };
    let typo = error(&[("MEMOCACHE_URL", "memory://"), ("MEMOCACHE_TIMEOT", "60")]);
    assert!(
        typo.contains("MEMOCACHE_TIMEOT=60") && typo.contains("unknown option"),
        "{typo}"
    );
    let bad = error(&[("MEMOCACHE_CAPACITY", "lots")]);
    assert!(bad.contains("MEMOCACHE_CAPACITY=lots"), "{bad}");
    let url = error(&[("MEMOCACHE_URL", "nosuch://x")]);
    assert!(url.contains("MEMOCACHE_URL"), "{url}");
    // An option the store does not take.
    let store = error(&[
        ("MEMOCACHE_URL", "memory://"),
        ("MEMOCACHE_L1_CAPACITY", "5"),
    ]);
    assert!(store.contains("MEMOCACHE_L1_CAPACITY=5"), "{store}");
}

#[test]
fn sentinel_urls() {
    let c = parse(
        "redis+sentinel://user:p%40ss@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster?db=3\
         &timeout_ms=200&protocol=resp3&sentinel_password=sp&prefix=b:&breaker=off",
    );
    assert_eq!(
        c.store,
        StoreConfig::RedisSentinel {
            sentinels: vec![
                "redis://:sp@10.0.0.1:26379/?protocol=resp3".into(),
                "redis://:sp@10.0.0.2:26379/?protocol=resp3".into(),
                "redis://:sp@[::1]:26380/?protocol=resp3".into(),
            ],
            master: "mymaster".into(),
            master_url: "redis://user:p%40ss@master:6379/3?protocol=resp3".into(),
            options: RedisOptions::default().timeout(Duration::from_millis(200)),
        }
    );
    assert_eq!(c.key_prefix, "b:");
    assert!(!c.breaker.enabled);

    // The database as a second path segment; TLS; tiered.
    let c = parse("tiered+rediss+sentinel://s1/cache/2#insecure");
    let StoreConfig::Tiered { l2, .. } = c.store else {
        panic!("{:?}", c.store)
    };
    assert_eq!(
        *l2,
        StoreConfig::RedisSentinel {
            sentinels: vec!["rediss://s1:26379#insecure".into()],
            master: "cache".into(),
            master_url: "rediss://master:6379/2#insecure".into(),
            options: RedisOptions::default(),
        }
    );
}

#[test]
fn bad_sentinel_urls_name_the_problem() {
    for (url, problem) in [
        ("redis+sentinel://s1:26379", "names no master"),
        ("redis+sentinel://s1:26379/", "names no master"),
        ("redis+sentinel:///mymaster", "names no sentinel"),
        (
            "redis+sentinel://s1:port/mymaster",
            "`port` is not a port number",
        ),
        (
            "redis+sentinel://s1/mymaster?db=zero",
            "database `zero` is not a number",
        ),
        (
            "redis+sentinel://s1/mymaster/0/extra",
            "unexpected path segment `extra`",
        ),
        (
            "redis+sentinel://s1/mymaster?timeout_ms=soon",
            "timeout_ms=soon",
        ),
    ] {
        let error = CacheConfig::from_url(url).expect_err(url);
        assert!(
            error.to_string().contains(problem),
            "{url}: `{error}` should say `{problem}`"
        );
    }
}

#[test]
fn sentinel_options_from_the_environment() {
    let vars = [
        ("MEMOCACHE_URL", "tiered+redis+sentinel://s1,s2/mymaster"),
        ("MEMOCACHE_SENTINEL_PASSWORD", "sp"),
        ("MEMOCACHE_DB", "4"),
        ("MEMOCACHE_TIMEOUT_MS", "250"),
    ];
    let c = CacheConfig::from_vars(vars.map(|(k, v)| (k.to_owned(), v.to_owned())))
        .expect("sentinel from the environment");
    let StoreConfig::Tiered { l2, .. } = c.store else {
        panic!("{:?}", c.store)
    };
    let StoreConfig::RedisSentinel {
        sentinels,
        master_url,
        options,
        ..
    } = *l2
    else {
        panic!("{l2:?}")
    };
    assert_eq!(sentinels[1], "redis://:sp@s2:26379");
    assert_eq!(master_url, "redis://master:6379/4");
    assert_eq!(options.timeout, Duration::from_millis(250));

    let bad = [
        ("MEMOCACHE_URL", "redis+sentinel://s1/mymaster"),
        ("MEMOCACHE_DB", "x"),
    ];
    let error = CacheConfig::from_vars(bad.map(|(k, v)| (k.to_owned(), v.to_owned())))
        .expect_err("a bad database");
    assert!(error.to_string().contains("MEMOCACHE_DB=x"), "{error}");
}

#[test]
fn byte_budgets_from_urls_and_the_environment() {
    let c = parse("memory://?capacity_bytes=64MiB");
    assert_eq!(c.capacity_bytes, Some(64 << 20));
    // Bytes alone: the count does not bound too.
    assert_eq!(
        c.store,
        StoreConfig::Memory {
            capacity: usize::MAX
        }
    );
    let both = parse("memory://?capacity=500&capacity_bytes=1000");
    assert_eq!(both.store, StoreConfig::Memory { capacity: 500 });
    assert_eq!(both.capacity_bytes, Some(1000));
    let tiered = parse("tiered+redis://h:1/0?l1_capacity_bytes=2GB");
    assert_eq!(tiered.capacity_bytes, Some(2_000_000_000));
    assert!(matches!(
        tiered.store,
        StoreConfig::Tiered {
            l1_capacity: usize::MAX,
            ..
        }
    ));
    assert_eq!(parse("memory://").capacity_bytes, None);
    for (url, needle) in [
        ("memory://?capacity_bytes=lots", "capacity_bytes=lots"),
        ("memory://?capacity_bytes=0", "more than 0"),
        ("memory://?capacity_bytes=5XB", "unknown size unit"),
        ("redis://h:1/?capacity_bytes=1MiB", "keep values in process"),
        (
            "tiered+redis://h:1/?capacity_bytes=1MiB",
            "`l1_capacity_bytes`",
        ),
        ("memory://?l1_capacity_bytes=1MiB", "use `capacity_bytes`"),
    ] {
        let error = CacheConfig::from_url(url).expect_err(url);
        assert!(error.to_string().contains(needle), "{url}: {error}");
    }
    let vars = |pairs: &[(&str, &str)]| {
        CacheConfig::from_vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    };
    let from_env = vars(&[("MEMOCACHE_CAPACITY_BYTES", "512KiB")]).expect("env");
    assert_eq!(from_env.capacity_bytes, Some(512 << 10));
    let error = vars(&[
        ("MEMOCACHE_URL", "redis://h:1/"),
        ("MEMOCACHE_CAPACITY_BYTES", "1MiB"),
    ])
    .expect_err("no in-process tier");
    assert!(
        error.to_string().contains("MEMOCACHE_CAPACITY_BYTES=1MiB"),
        "{error}"
    );
    assert_eq!(
        CacheConfig::memory(10).capacity_bytes(0).capacity_bytes,
        Some(1)
    );
}
