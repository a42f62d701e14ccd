//! `tests/test_memoize.py` (and the memoize half of `test_view.py`):
//! `#[memoize]` and `Memo`.

use std::collections::{BTreeMap, HashMap};

use futures::executor::block_on;
use memocache::{Cache, Timeout, memoize};
use serde::Serialize;

use super::{Runs, manual, secs};

/// A result and the run that computed it: two calls agree only if the
/// second was a hit.
type Stamped = (i64, u32);

#[memoize(cache = cache, timeout = 3, skip(runs))]
fn big_foo(cache: &Cache, runs: &Runs, a: i64, b: i64) -> Stamped {
    (a + b, runs.run())
}

/// `test_memoize`, `test_memoize_hashes` (one hash, see PARITY.md).
#[test]
fn a_result_is_kept_per_argument_until_its_timeout() {
    let (cache, clock) = manual(None);
    let runs = Runs::default();
    let result = big_foo(&cache, &runs, 5, 2);
    clock.advance(secs(1));
    assert_eq!(big_foo(&cache, &runs, 5, 2), result);
    let result2 = big_foo(&cache, &runs, 5, 3);
    assert_ne!(result2, result);
    clock.advance(secs(3));
    assert_ne!(big_foo(&cache, &runs, 5, 2), result);
    clock.advance(secs(1));
    assert_ne!(big_foo(&cache, &runs, 5, 3), result2);
}

#[memoize(cache = cache, skip(runs))]
fn falsy(cache: &Cache, runs: &Runs, a: i64, b: Option<i64>) -> String {
    runs.run();
    format!("{a}:{b:?}")
}

/// `test_memoize_falsy_default_argument`: a falsy value and "none" are
/// distinct keys (Rust has no default arguments: `Option` says "none").
#[test]
fn none_and_a_falsy_value_are_distinct_keys() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    assert_eq!(falsy(&cache, &runs, 1, None), "1:None");
    assert_eq!(falsy(&cache, &runs, 1, Some(0)), "1:Some(0)");
    assert_eq!(falsy(&cache, &runs, 1, Some(0)), "1:Some(0)");
    assert_eq!(runs.count(), 2);
}

#[memoize(cache = cache, skip(runs))]
fn uses_default(cache: &Cache, runs: &Runs, a: i64, b: i64) -> Stamped {
    (a + b, runs.run())
}

/// `test_memoize_timeout`: without a timeout of its own, a memo takes the
/// cache's default (`CACHE_DEFAULT_TIMEOUT`).
#[test]
fn without_a_timeout_the_caches_default_applies() {
    let (cache, clock) = manual(Some(secs(1)));
    let runs = Runs::default();
    let result = uses_default(&cache, &runs, 5, 2);
    assert_eq!(uses_default(&cache, &runs, 5, 2), result);
    clock.advance(secs(2));
    assert_ne!(uses_default(&cache, &runs, 5, 2), result);
}

#[memoize(cache = cache, timeout = 60, skip(runs))]
fn upper(cache: &Cache, runs: &Runs, param: &str) -> String {
    runs.run();
    param.to_uppercase()
}

/// `test_memoize_entry_written_late_keeps_its_own_timeout`,
/// `test_memoize_version_key_outlives_newest_entry`: the memo's version
/// never expires, so it cannot orphan an entry written late.
#[test]
fn each_entry_keeps_its_own_timeout() {
    let (cache, clock) = manual(None);
    let runs = Runs::default();
    assert_eq!(upper(&cache, &runs, "icecream"), "ICECREAM");
    clock.advance(secs(59));
    assert_eq!(upper(&cache, &runs, "waffles"), "WAFFLES");
    clock.advance(secs(2));
    assert_eq!(upper(&cache, &runs, "waffles"), "WAFFLES");
    assert_eq!(runs.count(), 2, "t=61: both entries were reachable");
    clock.advance(secs(59));
    assert_eq!(upper(&cache, &runs, "waffles"), "WAFFLES");
    assert_eq!(runs.count(), 3, "t=120: past this entry's own timeout");
}

/// `test_memoize_delete_resets_version_key`.
#[test]
fn entries_after_a_forget_all_keep_their_timeout() {
    let (cache, clock) = manual(None);
    let runs = Runs::default();
    upper(&cache, &runs, "a");
    let _ = upper_forget_all(&cache);
    assert_eq!(upper(&cache, &runs, "a"), "A");
    assert_eq!(runs.count(), 2);
    clock.advance(secs(3600));
    upper(&cache, &runs, "b");
    clock.advance(secs(30));
    assert_eq!(upper(&cache, &runs, "b"), "B");
    assert_eq!(runs.count(), 3);
}

#[memoize(cache = cache, skip(runs))]
fn joined(cache: &Cache, runs: &Runs, a: &str, b: &str) -> String {
    runs.run();
    format!("{a}-{b}")
}

/// `test_memoize_utf8_arguments`, `test_memoize_unicode_arguments`.
#[test]
fn unicode_arguments_are_keys() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    assert_eq!(joined(&cache, &runs, "æøå", "chars"), "æøå-chars");
    assert_eq!(joined(&cache, &runs, "æøå", "chars"), "æøå-chars");
    assert_eq!(joined(&cache, &runs, "aoa", "chars"), "aoa-chars");
    assert_eq!(runs.count(), 2);
    let _ = joined_forget(&cache, "æøå", "chars");
    joined(&cache, &runs, "æøå", "chars");
    assert_eq!(runs.count(), 3);
}

/// `test_memoize_delete`, `test_memoize_delete_via_attribute`,
/// `test_memoize_verhash_delete`: the generated `<name>_forget_all` is
/// `delete_memoized(f)` and `f.delete_memoized()`.
#[test]
fn forget_all_forgets_every_argument() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let result = big_foo(&cache, &runs, 5, 2);
    let result2 = big_foo(&cache, &runs, 5, 3);
    assert_eq!(big_foo(&cache, &runs, 5, 2), result);
    assert_eq!(big_foo(&cache, &runs, 5, 3), result2);
    let version = big_foo_memo(&cache).version();
    let _ = big_foo_forget_all(&cache);
    assert!(big_foo_memo(&cache).version() > version);
    assert_ne!(big_foo(&cache, &runs, 5, 2), result);
    assert_ne!(big_foo(&cache, &runs, 5, 3), result2);
}

#[memoize(cache = cache, timeout = 0, skip(runs))]
fn forever(cache: &Cache, runs: &Runs, a: i64, b: i64) -> Stamped {
    (a + b, runs.run())
}

/// `test_memoize_no_timeout_delete`: `delete_memoized(f, 5, 2)`.
#[test]
fn forget_forgets_one_argument_only() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let result_a = forever(&cache, &runs, 5, 1);
    let result_b = forever(&cache, &runs, 5, 2);
    let _ = forever_forget(&cache, 5, 2);
    assert_eq!(forever(&cache, &runs, 5, 1), result_a);
    assert_ne!(forever(&cache, &runs, 5, 2), result_b);
}

#[memoize(cache = cache, skip(runs))]
fn sums(cache: &Cache, runs: &Runs, a: &[i64], b: &[i64]) -> Stamped {
    (a.iter().chain(b).sum(), runs.run())
}

/// `test_memoize_args`: list arguments, forgotten by equal lists.
#[test]
fn sequence_arguments_hit_and_forget_by_value() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let result_a = sums(&cache, &runs, &[5, 3, 2], &[1]);
    let result_b = sums(&cache, &runs, &[3, 3], &[3, 1]);
    assert_eq!(sums(&cache, &runs, &[5, 3, 2], &[1]), result_a);
    assert_eq!(sums(&cache, &runs, &[3, 3], &[3, 1]), result_b);
    let _ = sums_forget(&cache, &[5, 3, 2], &[1]);
    assert_ne!(sums(&cache, &runs, &[5, 3, 2], &[1]), result_a);
    assert_eq!(sums(&cache, &runs, &[3, 3], &[3, 1]), result_b);
    assert_ne!(
        sums(&cache, &runs, &[2, 3, 5], &[1]),
        result_a,
        "order is part of a list"
    );
}

#[memoize(cache = cache, skip(runs))]
fn with_options(cache: &Cache, runs: &Runs, a: i64, b: &HashMap<String, i64>) -> Stamped {
    (a + b.values().sum::<i64>(), runs.run())
}

/// A map built anew, its entries inserted in the order given.
fn options(entries: &[(&str, i64)]) -> HashMap<String, i64> {
    let mut map = HashMap::with_capacity(entries.len() * 7);
    map.extend(entries.iter().map(|(k, v)| ((*k).to_owned(), *v)));
    map
}

/// `test_memoize_kwargs` (a dict argument, forgotten with an equal dict)
/// and the order-free half of `test_memoize_arg_kwarg_var_keyword`
/// (`f(d=5, e=8) == f(e=8, d=5)`): a map argument is its entries.
#[test]
fn map_arguments_hit_and_forget_by_an_equal_map() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let result_a = with_options(&cache, &runs, 1, &options(&[("one", 1), ("two", 2)]));
    let result_b = with_options(&cache, &runs, 5, &options(&[("three", 3), ("four", 4)]));
    for _ in 0..100 {
        let swapped = options(&[("two", 2), ("one", 1)]);
        assert_eq!(with_options(&cache, &runs, 1, &swapped), result_a);
        let swapped = options(&[("four", 4), ("three", 3)]);
        assert_eq!(with_options(&cache, &runs, 5, &swapped), result_b);
    }
    let _ = with_options_forget(&cache, 1, &options(&[("two", 2), ("one", 1)]));
    assert_ne!(
        with_options(&cache, &runs, 1, &options(&[("one", 1), ("two", 2)])),
        result_a
    );
    assert_eq!(
        with_options(&cache, &runs, 5, &options(&[("three", 3), ("four", 4)])),
        result_b
    );
}

#[memoize(cache = cache, skip(runs))]
fn variadic(
    cache: &Cache,
    runs: &Runs,
    a: i64,
    args: &[i64],
    kwargs: &BTreeMap<String, i64>,
) -> Stamped {
    (
        a + args.iter().sum::<i64>() + kwargs.values().sum::<i64>(),
        runs.run(),
    )
}

/// `test_memoize_when_using_args_unpacking`,
/// `test_memoize_when_using_variable_mix_args_unpacking`: `*args` is a
/// slice, `**kwargs` a map.
#[test]
fn variadic_arguments_are_a_slice_and_a_map() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let kwargs = |x: i64, y: i64| BTreeMap::from([("x".to_owned(), x), ("y".to_owned(), y)]);
    let result_a = variadic(&cache, &runs, 1, &[2, 3, 4], &kwargs(2, 5));
    let result_b = variadic(&cache, &runs, 4, &[7, 7, 2], &kwargs(1, 4));
    assert_eq!(
        variadic(&cache, &runs, 1, &[2, 3, 4], &kwargs(2, 5)),
        result_a
    );
    assert_eq!(
        variadic(&cache, &runs, 4, &[7, 7, 2], &kwargs(1, 4)),
        result_b
    );
    let _ = variadic_forget_all(&cache);
    assert_ne!(
        variadic(&cache, &runs, 1, &[2, 3, 4], &kwargs(2, 5)),
        result_a
    );
    assert_ne!(
        variadic(&cache, &runs, 4, &[7, 7, 2], &kwargs(1, 4)),
        result_b
    );
}

/// A class whose instances memoize a method, keyed by their value.
#[derive(Serialize)]
struct Adder {
    initial: i64,
    /// Not part of the key: the receiver's `Serialize` is its
    /// `__caching_id__`.
    #[serde(skip)]
    label: &'static str,
}

impl Adder {
    #[memoize(cache = cache, timeout = 5, name = "Adder::add", skip(runs))]
    fn add(&self, cache: &Cache, runs: &Runs, b: i64) -> Stamped {
        (self.initial + b, runs.run())
    }
}

fn adder(initial: i64) -> Adder {
    Adder {
        initial,
        label: "adder",
    }
}

/// `test_memoize_classfunc`, `test_memoize_classfunc_repr`: a method is
/// keyed on its receiver's value, as its `Serialize` writes it.
#[test]
fn methods_are_keyed_on_their_receiver() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let (adder1, adder2) = (adder(1), adder(2));
    let x = adder1.add(&cache, &runs, 3);
    assert_eq!(adder1.add(&cache, &runs, 3), x);
    assert_ne!(adder1.add(&cache, &runs, 4), x);
    assert_ne!(adder1.add(&cache, &runs, 3), adder2.add(&cache, &runs, 3));
    let relabelled = Adder {
        initial: 1,
        label: "another label, skipped",
    };
    assert_eq!(relabelled.add(&cache, &runs, 3), x, "{}", relabelled.label);
}

/// `test_memoize_classfunc_delete_with_args`,
/// `test_memoize_classfunc_delete_with_explicit_instance`: forget one call
/// of one instance.
#[test]
fn forget_one_call_of_one_instance() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let (adder1, adder2) = (adder(1), adder(2));
    let a1 = adder1.add(&cache, &runs, 3);
    let a2 = adder1.add(&cache, &runs, 4);
    let a3 = adder2.add(&cache, &runs, 3);
    let _ = adder1.add_forget(&cache, 3);
    assert_ne!(adder1.add(&cache, &runs, 3), a1);
    assert_eq!(adder1.add(&cache, &runs, 4), a2);
    assert_eq!(adder2.add(&cache, &runs, 3), a3);
}

/// `test_memoize_classfunc_delete_via_attribute`, the `Adder.add` half of
/// `test_memoize_classfunc_delete`, `test_memoize_classmethod_delete`:
/// forgetting the method forgets it for every instance.
#[test]
fn a_methods_forget_all_forgets_every_instance() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let (adder1, adder2) = (adder(1), adder(2));
    let a1 = adder1.add(&cache, &runs, 3);
    let a2 = adder2.add(&cache, &runs, 3);
    assert_eq!(adder1.add(&cache, &runs, 3), a1);
    let _ = Adder::add_forget_all(&cache);
    assert_ne!(adder1.add(&cache, &runs, 3), a1);
    assert_ne!(adder2.add(&cache, &runs, 3), a2);
}

impl Adder {
    /// `add`, grouped by instance: what `delete_memoized(obj.method)`
    /// needs.
    #[memoize(cache = cache, timeout = 5, name = "Adder::add_grouped", skip(runs), group)]
    fn add_grouped(&self, cache: &Cache, runs: &Runs, b: i64) -> Stamped {
        (self.initial + b, runs.run())
    }
}

/// `test_memoize_classfunc_delete`: `delete_memoized(adder1.add)` forgets
/// adder1's entries and leaves adder2's; with `#[memoize(group)]`, by
/// `adder1.add_grouped_forget_group(&cache)`, in O(1).
#[test]
fn forget_one_instances_entries() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let (adder1, adder2) = (adder(1), adder(2));
    let a1 = adder1.add_grouped(&cache, &runs, 3);
    let a1b = adder1.add_grouped(&cache, &runs, 4);
    let a2 = adder2.add_grouped(&cache, &runs, 3);
    assert_eq!(adder1.add_grouped(&cache, &runs, 3), a1);
    assert!(adder1.add_grouped_forget_group(&cache).is_fleet());
    assert_ne!(adder1.add_grouped(&cache, &runs, 3), a1);
    assert_ne!(adder1.add_grouped(&cache, &runs, 4), a1b);
    assert_eq!(
        adder2.add_grouped(&cache, &runs, 3),
        a2,
        "adder2's entry stays"
    );
}

/// No state worth a key: `self` is skipped.
struct Stateless;

impl Stateless {
    #[memoize(cache = cache, timeout = 5, name = "Stateless::add", skip(self, runs))]
    fn add(&self, cache: &Cache, runs: &Runs, b: i64) -> Stamped {
        (b, runs.run())
    }
}

/// `test_memoize_classfunc_delete_with_args_to_ignore_self`,
/// `test_memoize_method_ignore_self_arg`: `args_to_ignore=["self"]` is
/// `skip(self)`, and instances share entries.
#[test]
fn skipping_self_shares_entries_across_instances() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let a1 = Stateless.add(&cache, &runs, 3);
    let a2 = Stateless.add(&cache, &runs, 4);
    assert_eq!(Stateless.add(&cache, &runs, 3), a1);
    let _ = Stateless::add_forget(&cache, 3);
    assert_ne!(Stateless.add(&cache, &runs, 3), a1);
    assert_eq!(Stateless.add(&cache, &runs, 4), a2);
}

/// A value passed to a memoized function.
#[derive(Serialize)]
struct Value {
    value: i64,
}

#[memoize(cache = cache, skip(runs))]
fn bar(cache: &Cache, runs: &Runs, a: &Value) -> Stamped {
    (a.value, runs.run())
}

/// `test_memoize_classarg`, by design the other way round: Flask-Caching
/// keys an object on its identity, so a changed object still hits its old
/// entry; here an argument is its value, so equal values share an entry
/// and a changed value is a new key.
#[test]
fn arguments_are_keyed_by_value_not_identity() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let mut adder = Value { value: 15 };
    let y = bar(&cache, &runs, &adder);
    assert_eq!(
        bar(&cache, &runs, &Value { value: 15 }),
        y,
        "an equal value hits"
    );
    adder.value = 14;
    assert_ne!(
        bar(&cache, &runs, &adder),
        y,
        "a changed value is another key"
    );
}

#[memoize(cache = cache, cache_none = true, skip(runs))]
fn kept_none(cache: &Cache, runs: &Runs, param: i64) -> Option<i64> {
    runs.run();
    (param < 0).then_some(param)
}

#[memoize(cache = cache, skip(runs))]
fn dropped_none(cache: &Cache, runs: &Runs, param: i64) -> Option<i64> {
    runs.run();
    (param < 0).then_some(param)
}

/// `test_memoize_none`, `test_cached_none`: with `cache_none = true` a
/// `None` is kept (until the cache is cleared).
#[test]
fn cache_none_keeps_a_none() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    assert_eq!(kept_none(&cache, &runs, 1), None);
    assert_eq!(kept_none(&cache, &runs, 1), None);
    assert_eq!(runs.count(), 1);
    block_on(cache.clear()).expect("clear");
    kept_none(&cache, &runs, 1);
    assert_eq!(runs.count(), 2);
}

/// `test_memoize_never_accept_none`, `test_cached_doesnt_cache_none`: by
/// default a `None` is returned but not kept.
#[test]
fn a_none_is_not_kept_by_default() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    assert_eq!(dropped_none(&cache, &runs, 1), None);
    assert_eq!(dropped_none(&cache, &runs, 1), None);
    assert_eq!(runs.count(), 2);
    block_on(cache.clear()).expect("clear");
    dropped_none(&cache, &runs, 1);
    assert_eq!(runs.count(), 3);
}

#[memoize(cache = cache, timeout = 50, skip(runs, b))]
fn ignores_b(cache: &Cache, runs: &Runs, a: i64, b: i64) -> i64 {
    runs.run();
    a + b
}

/// `test_memoize_ignore_args`, `test_memoize_function_ignore_kwarg`:
/// `args_to_ignore=["b"]` is `skip(b)`.
#[test]
fn skipped_arguments_are_not_part_of_the_key() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    assert_eq!(ignores_b(&cache, &runs, 5, 2), 7);
    assert_eq!(ignores_b(&cache, &runs, 5, 3), 7);
    assert_eq!(runs.count(), 1);
}

/// `test_memoize_forced_update`, `test_cache_forced_update`: a forced
/// update stores a freshly computed value over the cached one; later calls
/// get it. Here the caller computes it and `set`s it on the memo.
#[test]
fn a_forced_update_is_a_set() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let result = big_foo(&cache, &runs, 5, 2);
    assert_eq!(big_foo(&cache, &runs, 5, 2), result);
    let fresh = (7, runs.run());
    block_on(big_foo_memo(&cache).set(&(5, 2), fresh));
    assert_eq!(big_foo(&cache, &runs, 5, 2), fresh);
    assert_ne!(fresh, result);
}

#[memoize(cache = cache, timeout = 2, skip(runs))]
fn cached_view1(cache: &Cache, runs: &Runs) -> u32 {
    runs.run()
}

#[memoize(cache = cache, timeout = 4, skip(runs))]
fn cached_view2(cache: &Cache, runs: &Runs, first: &str, second: &str) -> String {
    format!("{first}{second}{}", runs.run())
}

/// `test_cache_timeout_property` (in `test_view.py`, on memoized views):
/// `f.cache_timeout` is read and written at run time, and the next value
/// stored takes it.
#[test]
fn a_memos_timeout_changes_at_run_time() {
    let (cache, clock) = manual(None);
    let runs = Runs::default();
    assert_eq!(cached_view1_memo(&cache).timeout(), Some(secs(2)));
    assert_eq!(cached_view2_memo(&cache).timeout(), Some(secs(4)));
    cached_view1_memo(&cache).set_timeout(Timeout::secs(5));
    cached_view2_memo(&cache).set_timeout(Timeout::secs(7));
    assert_eq!(cached_view1_memo(&cache).timeout(), Some(secs(5)));
    assert_eq!(cached_view2_memo(&cache).timeout(), Some(secs(7)));

    let body1 = cached_view1(&cache, &runs);
    clock.advance(secs(1));
    let body2 = cached_view2(&cache, &runs, "a", "b");
    assert_eq!(cached_view1(&cache, &runs), body1, "t=1: still cached");
    clock.advance(secs(5));
    assert_ne!(cached_view1(&cache, &runs), body1, "t=6: past 5 s");
    assert_eq!(
        cached_view2(&cache, &runs, "a", "b"),
        body2,
        "t=6: within 7 s"
    );
    clock.advance(secs(3));
    assert_ne!(
        cached_view2(&cache, &runs, "a", "b"),
        body2,
        "t=9: past 7 s"
    );
}

/// `test_make_cache_key_function_property`: the entry of a call is read
/// by its arguments (no key string to build: `Memo::get` takes them).
#[test]
fn a_memos_entry_is_read_by_its_arguments() {
    let (cache, _) = manual(None);
    let runs = Runs::default();
    let body = cached_view2(&cache, &runs, "a", "b");
    let memo = cached_view2_memo(&cache);
    let key = ("a".to_owned(), "b".to_owned());
    assert_eq!(block_on(memo.get(&key)).as_deref(), Some(&body));
    let other = ("b".to_owned(), "a".to_owned());
    assert!(block_on(memo.get(&other)).is_none());
}

#[memoize(cache = cache, timeout = 1, name = "MyBits", skip(runs))]
fn get_random_bits(cache: &Cache, runs: &Runs) -> u32 {
    runs.run()
}

/// `test_cache_cached_function`: `@cache.cached(key_prefix=...)` on a
/// plain function is a memo without arguments, named by the prefix.
#[test]
fn a_cached_function_is_a_memo_without_arguments() {
    let (cache, clock) = manual(None);
    let runs = Runs::default();
    let my_list = get_random_bits(&cache, &runs);
    assert_eq!(get_random_bits(&cache, &runs), my_list);
    assert_eq!(get_random_bits_memo(&cache).name(), "MyBits");
    clock.advance(secs(2));
    assert_ne!(get_random_bits(&cache, &runs), my_list);
}
