//! Counters in the Prometheus text exposition format.

use std::fmt::Write as _;

use crate::breaker::{BreakerState, BreakerStats};
use crate::cache::Cache;
use crate::stats::MemoStats;

type Metric = (&'static str, &'static str, fn(&MemoStats) -> f64);

const METRICS: [Metric; 9] = [
    (
        "memocache_misses_total",
        "Lookups that found no usable value.",
        |s| s.misses as f64,
    ),
    (
        "memocache_loads_total",
        "Loader calls that returned a value.",
        |s| s.loads as f64,
    ),
    (
        "memocache_load_errors_total",
        "Loader calls that failed (never cached).",
        |s| s.load_errors as f64,
    ),
    (
        "memocache_load_seconds_total",
        "Time spent in loaders.",
        |s| s.load_time.as_secs_f64(),
    ),
    (
        "memocache_invalidations_total",
        "forget and forget_all calls.",
        |s| s.invalidations as f64,
    ),
    (
        "memocache_store_errors_total",
        "Store faults survived or returned.",
        |s| s.store_errors as f64,
    ),
    (
        "memocache_waited_for_load_total",
        "Misses that waited for another caller's load.",
        |s| s.waited_for_load as f64,
    ),
    (
        "memocache_invalidations_received_total",
        "Invalidations other processes sent over the bus and this one applied.",
        |s| s.invalidations_received as f64,
    ),
    (
        "memocache_group_invalidations_total",
        "forget_group calls (also in memocache_invalidations_total).",
        |s| s.group_invalidations as f64,
    ),
];

impl Cache {
    /// Every memo's counters (every field of [`MemoStats`]), the cache's
    /// store faults, whether its in-process tier is trusted and its store
    /// available, and every breaker's state and transitions (one line per
    /// node of a Redis Cluster), in the Prometheus text format: append it
    /// to an app's `/metrics` page.
    ///
    /// ```
    /// let cache = memocache::Cache::memory();
    /// let _m = memocache::Memo::<u8, u8>::builder("load_user").build(&cache).unwrap();
    /// let text = cache.prometheus_text();
    /// assert!(text.contains(r#"memocache_hits_total{memo="load_user",tier="local"} 0"#));
    /// ```
    pub fn prometheus_text(&self) -> String {
        let memos = self.memo_stats();
        let mut out = String::new();
        out.push_str("# HELP memocache_hits_total Lookups answered by the cache, by tier.\n");
        out.push_str("# TYPE memocache_hits_total counter\n");
        for (name, stats) in &memos {
            let name = escape(name);
            let _ = writeln!(
                out,
                "memocache_hits_total{{memo=\"{name}\",tier=\"local\"}} {}",
                stats.hits_local
            );
            let _ = writeln!(
                out,
                "memocache_hits_total{{memo=\"{name}\",tier=\"remote\"}} {}",
                stats.hits_remote
            );
        }
        for (metric, help, read) in METRICS {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for (name, stats) in &memos {
                let _ = writeln!(out, "{metric}{{memo=\"{}\"}} {}", escape(name), read(stats));
            }
        }
        out.push_str(
            "# HELP memocache_cache_store_errors_total Store faults of the whole cache.\n",
        );
        out.push_str("# TYPE memocache_cache_store_errors_total counter\n");
        let _ = writeln!(
            out,
            "memocache_cache_store_errors_total {}",
            self.store_errors()
        );
        out.push_str(
            "# HELP memocache_l1_in_sync 1 while the in-process tier is trusted (always without a \
             shared store; in a tiered cache, while the bus keeps it in sync).\n\
             # TYPE memocache_l1_in_sync gauge\n",
        );
        let _ = writeln!(out, "memocache_l1_in_sync {}", u8::from(self.l1_in_sync()));
        out.push_str(
            "# HELP memocache_store_available 0 while a breaker skips the shared store or the \
             bus (degraded: served from the source).\n\
             # TYPE memocache_store_available gauge\n",
        );
        let _ = writeln!(
            out,
            "memocache_store_available {}",
            u8::from(self.store_available())
        );
        write_breakers(&mut out, self);
        out
    }
}

type BreakerMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&BreakerStats) -> u64,
);

const BREAKER_METRICS: [BreakerMetric; 5] = [
    (
        "memocache_breaker_open",
        "gauge",
        "1 while the breaker skips the store or bus (degraded: served from the source).",
        |s| u64::from(s.state == BreakerState::Open),
    ),
    (
        "memocache_breaker_opened_total",
        "counter",
        "Times the breaker opened (a timeout or a burst of errors).",
        |s| s.opened,
    ),
    (
        "memocache_breaker_closed_total",
        "counter",
        "Times a probe closed the breaker.",
        |s| s.closed,
    ),
    (
        "memocache_breaker_skipped_total",
        "counter",
        "Calls skipped while the breaker was open.",
        |s| s.skipped,
    ),
    (
        "memocache_breaker_probes_total",
        "counter",
        "Probes of the store or bus while the breaker was open.",
        |s| s.probes,
    ),
];

/// The store's and the bus's breakers, those the cache has, then each
/// node's of a sharded store (`breaker="store",node="host:port"`).
fn write_breakers(out: &mut String, cache: &Cache) {
    let mut breakers: Vec<(String, BreakerStats)> = [
        ("store", cache.store_breaker()),
        ("bus", cache.bus_breaker()),
    ]
    .into_iter()
    .filter_map(|(name, stats)| Some((format!("breaker=\"{name}\""), stats?)))
    .collect();
    breakers.extend(cache.node_breakers().into_iter().map(|(node, stats)| {
        (
            format!("breaker=\"store\",node=\"{}\"", escape(&node)),
            stats,
        )
    }));
    if breakers.is_empty() {
        return;
    }
    for (metric, kind, help, read) in BREAKER_METRICS {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
        for (labels, stats) in &breakers {
            let _ = writeln!(out, "{metric}{{{labels}}} {}", read(stats));
        }
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_counter_is_listed_per_memo() {
        let cache = Cache::memory();
        let memo = crate::Memo::<u8, u8>::builder("m")
            .build(&cache)
            .expect("memo");
        let _ = futures_executor::block_on(memo.get_or_load(&1, || async { 1 }));
        let text = cache.prometheus_text();
        for line in [
            "memocache_misses_total{memo=\"m\"} 1",
            "memocache_loads_total{memo=\"m\"} 1",
            "memocache_hits_total{memo=\"m\",tier=\"local\"} 0",
            "memocache_hits_total{memo=\"m\",tier=\"remote\"} 0",
            "memocache_load_errors_total{memo=\"m\"} 0",
            "memocache_load_seconds_total{memo=\"m\"} ",
            "memocache_invalidations_total{memo=\"m\"} 0",
            "memocache_store_errors_total{memo=\"m\"} 0",
            "memocache_waited_for_load_total{memo=\"m\"} 0",
            "memocache_invalidations_received_total{memo=\"m\"} 0",
            "memocache_group_invalidations_total{memo=\"m\"} 0",
            "memocache_cache_store_errors_total 0",
            "memocache_l1_in_sync 1",
            "memocache_store_available 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains("memocache_breaker_"),
            "no store, no breaker:\n{text}"
        );
    }

    #[test]
    fn breakers_are_listed_with_their_state() {
        let cache = Cache::from_url("redis://127.0.0.1:1/").expect("builds without connecting");
        let text = cache.prometheus_text();
        for line in [
            "# TYPE memocache_breaker_open gauge",
            "memocache_breaker_open{breaker=\"store\"} 0",
            "memocache_breaker_opened_total{breaker=\"store\"} 0",
            "memocache_breaker_probes_total{breaker=\"store\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        let off = Cache::from_url("redis://127.0.0.1:1/?breaker=off").expect("cache");
        assert!(!off.prometheus_text().contains("memocache_breaker_"));
    }
}
