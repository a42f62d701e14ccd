//! The Redis store's URL handling and cluster routing, without a server.

use super::*;

#[test]
fn scan_patterns_escape_globs() {
    assert_eq!(scan_pattern("app:"), "app:*");
    assert_eq!(scan_pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
    assert_eq!(scan_pattern(""), "*");
}

#[test]
fn timeout_option_is_taken_off_the_url() {
    let store = RedisStore::open("redis://h:1/0?timeout_ms=250").expect("parse");
    assert_eq!(store.timeout, Duration::from_millis(250));
    let Target::Single { client, .. } = &store.target else {
        panic!("one server");
    };
    assert_eq!(client.get_connection_info().addr().to_string(), "h:1");
    let store = RedisStore::open("redis://h:1/?protocol=resp3").expect("parse");
    assert_eq!(store.options(), RedisOptions::default());
    assert!(RedisStore::open("redis://h/?timeout_ms=x").is_err());
    let (nodes, options) = split_cluster_nodes(&[
        "redis://a:1".to_owned(),
        "redis://b:2/?timeout_ms=30".to_owned(),
    ])
    .expect("parse");
    assert_eq!(nodes, ["redis://a:1", "redis://b:2/"]);
    assert_eq!(options.timeout, Duration::from_millis(30));
}

/// `timeout_ms` in a cache URL reaches the store built from it, and the
/// Redis client gets a URL without it.
#[test]
fn url_options_reach_the_store() {
    for input in [
        "redis://127.0.0.1:1/0?timeout_ms=250&prefix=p:",
        "tiered+redis://127.0.0.1:1/0?timeout_ms=250&heartbeat_ms=300",
        "redis+cluster://127.0.0.1:1,127.0.0.1:2?timeout_ms=250",
    ] {
        let config = crate::CacheConfig::from_url(input).expect(input);
        let store = match &config.store {
            crate::StoreConfig::Tiered { l2, .. } => (**l2).clone(),
            other => other.clone(),
        };
        let store = match store {
            crate::StoreConfig::Redis { url, options } => {
                assert_eq!(url, "redis://127.0.0.1:1/0", "{input}");
                RedisStore::with_options(&url, options)
            }
            crate::StoreConfig::RedisCluster { nodes, options } => {
                assert!(nodes.iter().all(|n| !n.contains('?')), "{nodes:?}");
                RedisStore::cluster_with_options(&nodes, options)
            }
            other => panic!("{input}: {other:?}"),
        }
        .expect(input);
        assert_eq!(store.timeout, Duration::from_millis(250), "{input}");
    }
}

#[test]
fn key_slots_follow_redis_cluster() {
    // Values from `CLUSTER KEYSLOT`.
    assert_eq!(key_slot(b"foo"), 12_182);
    assert_eq!(key_slot(b"bar"), 5_061);
    assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
    assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
    assert_eq!(
        key_slot(b"{}x"),
        crc16::State::<crc16::XMODEM>::calculate(b"{}x") % 16_384
    );
}

#[test]
fn slot_maps_are_read_from_cluster_slots() {
    let range = |start: i64, end: i64, port: i64, host: &str| {
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
            ]),
        ])
    };
    let reply = Value::Array(vec![
        range(0, 8_000, 7000, "10.0.0.1"),
        range(8_001, 16_383, 7001, ""),
    ]);
    let map = SlotMap::parse(&reply, "127.0.0.1").expect("parses");
    assert_eq!(map.node_of(b"bar").as_deref(), Some("10.0.0.1:7000"));
    assert_eq!(map.node_of(b"foo").as_deref(), Some("127.0.0.1:7001"));
    assert!(SlotMap::parse(&Value::Int(1), "h").is_none());
    let gap = Value::Array(vec![range(0, 10, 7000, "h")]);
    let map = SlotMap::parse(&gap, "h").expect("parses");
    assert_eq!(map.node_of(b"foo"), None, "a slot nobody serves");
}

#[test]
fn masters_are_read_from_cluster_nodes() {
    let nodes = "a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                 b 127.0.0.1:7001@17001,host master - 0 0 2 connected 5461-10922\n\
                 c 127.0.0.1:7002@17002 slave a 0 0 3 connected\n\
                 d 127.0.0.1:7003@17003 master,fail - 0 0 4 disconnected\n";
    assert_eq!(
        parse_masters(nodes),
        [
            ("127.0.0.1".to_owned(), 7000),
            ("127.0.0.1".to_owned(), 7001)
        ]
    );
}
