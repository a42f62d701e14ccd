//! Remote store latency: a `Memo` hit on Redis against a raw `redis` GET of
//! the same bytes, `get_many` of 100 keys against 100 sequential gets, and
//! Memcached and filesystem hits for reference.
//!
//! Starts its own `redis-server` and `memcached` on loopback (testkit):
//! `cargo bench -p memocache --bench remote`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use memocache::__private::{KeyHash, memo_key};
use memocache::{Cache, Memo, Timeout};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn value() -> String {
    "a user record of typical size: ".repeat(4)
}

fn redis(c: &mut Criterion) {
    let rt = runtime();
    let server = testkit::RedisServer::start();
    let url = format!("{}?prefix=bench:", server.url());
    let cache = Cache::from_url(&url).expect("cache");
    let memo = Memo::<u64, String>::builder("user")
        .no_timeout()
        .build(&cache)
        .expect("memo");
    rt.block_on(memo.set(&1, value()));
    let key = memo_key("bench:", "user", 0, KeyHash::of(&1_u64).expect("hash"));
    let client = redis::Client::open(server.url()).expect("client");
    let raw = rt
        .block_on(client.get_multiplexed_async_connection())
        .expect("connection");

    let mut group = c.benchmark_group("redis_hit");
    group.bench_function("memo_get_or_load", |b| {
        b.to_async(&rt).iter(|| async {
            memo.get_or_load(&1, || async { unreachable!("primed") })
                .await
        });
    });
    group.bench_function("cache_get", |b| {
        b.to_async(&rt)
            .iter(|| async { cache.get::<String>("missing").await.expect("get") });
    });
    group.bench_function("raw_redis_get", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = raw.clone();
            let key = key.clone();
            async move {
                let bytes: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .expect("GET");
                bytes.expect("primed")
            }
        });
    });
    group.bench_function("raw_redis_get_x2", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = raw.clone();
            let key = key.clone();
            async move {
                let _version: Option<Vec<u8>> = redis::cmd("GET")
                    .arg("bench:user:ver")
                    .query_async(&mut conn)
                    .await
                    .expect("GET");
                let bytes: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .expect("GET");
                bytes.expect("primed")
            }
        });
    });
    group.finish();

    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    rt.block_on(cache.set_many(keys.iter().map(|k| (k.as_str(), value())), Timeout::Never))
        .expect("set_many");
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut group = c.benchmark_group("redis_100_keys");
    group.bench_function("get_many", |b| {
        b.to_async(&rt)
            .iter(|| async { cache.get_many::<String>(&refs).await.expect("get_many") });
    });
    group.bench_function("sequential_gets", |b| {
        b.to_async(&rt).iter(|| async {
            for key in &refs {
                cache.get::<String>(key).await.expect("get");
            }
        });
    });
    group.finish();
    drop(raw);
    drop(server);
}

fn memcached_and_files(c: &mut Criterion) {
    let rt = runtime();
    let server = testkit::MemcachedServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let stores = [
        ("memcached", Cache::from_url(&server.url()).expect("cache")),
        (
            "filesystem",
            Cache::from_url(&format!("file://{}", dir.path().display())).expect("cache"),
        ),
    ];
    let mut group = c.benchmark_group("reference_hit");
    for (name, cache) in &stores {
        let memo = Memo::<u64, String>::builder("user")
            .no_timeout()
            .build(cache)
            .expect("memo");
        rt.block_on(memo.set(&1, value()));
        rt.block_on(cache.set("k", value(), Timeout::Never))
            .expect("set");
        group.bench_function(format!("{name}_memo_get_or_load"), |b| {
            b.to_async(&rt).iter(|| async {
                memo.get_or_load(&1, || async { unreachable!("primed") })
                    .await
            });
        });
        group.bench_function(format!("{name}_cache_get"), |b| {
            b.to_async(&rt)
                .iter(|| async { cache.get::<String>("k").await.expect("get") });
        });
    }
    group.finish();
    drop(server);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = redis, memcached_and_files
}
criterion_main!(benches);
