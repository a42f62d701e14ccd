//! Equal values, one key.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};

use crate::key::canon::{is_btree_map, is_unordered};
use crate::key::encode;
use crate::key::{KeyHash, order};

/// A hasher without per-instance randomness: iteration order then
/// depends only on capacity and insertion history, so tests can make
/// equal maps that iterate differently, deterministically.
type Fixed = BuildHasherDefault<DefaultHasher>;

fn hash<T: Serialize + ?Sized>(key: &T) -> KeyHash {
    KeyHash::of(key).expect("hash")
}

fn encoded<T: Serialize + ?Sized>(key: &T) -> Vec<u8> {
    encode::with_encoded(key, <[u8]>::to_vec).expect("encode")
}

/// A small deterministic generator (xorshift64*).
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A string of 0 to 11 characters, NULs and non-ASCII included.
    pub(super) fn text(&mut self) -> String {
        const ALPHABET: [char; 8] = ['a', 'b', 'z', '\0', 'é', '中', '~', 'A'];
        let len = self.below(12);
        (0..len).map(|_| ALPHABET[self.below(8) as usize]).collect()
    }

    /// An integer of any magnitude, small ones (and varint edges) often.
    pub(super) fn int(&mut self) -> i64 {
        match self.below(4) {
            0 => self.below(300) as i64 - 150,
            1 => [127, 128, 16_383, 16_384, -64, -65][self.below(6) as usize],
            2 => self.next() as i64,
            _ => (self.next() >> (self.below(63) + 1)) as i64,
        }
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

#[derive(Serialize, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Kind {
    Admin,
    User(u32),
    Guest { since: i16 },
}

#[derive(Serialize, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
struct Compound {
    kind: Kind,
    name: String,
    tag: Option<char>,
    path: Vec<u16>,
}

fn compound(rng: &mut Rng) -> Compound {
    Compound {
        kind: match rng.below(3) {
            0 => Kind::Admin,
            1 => Kind::User(rng.below(400) as u32),
            _ => Kind::Guest {
                since: rng.int() as i16,
            },
        },
        name: rng.text(),
        tag: (rng.below(2) == 0).then(|| ['x', 'é', '\0'][rng.below(3) as usize]),
        path: (0..rng.below(4)).map(|_| rng.below(300) as u16).collect(),
    }
}

/// The encoder writes postcard's bytes for every value whose encoding
/// was already canonical, `BTreeMap`s of every ordered key type
/// included: what the pinned hashes check for a few values, checked
/// here for thousands.
#[test]
fn already_canonical_values_encode_as_postcard_did() {
    fn same<T: Serialize>(value: &T) {
        assert_eq!(
            encoded(value),
            postcard::to_allocvec(value).expect("postcard"),
            "{}",
            std::any::type_name::<T>()
        );
    }
    let mut rng = Rng::new(28);
    for _ in 0..300 {
        let n = rng.below(12);
        let strings: BTreeMap<String, i64> = (0..n).map(|_| (rng.text(), rng.int())).collect();
        same(&strings);
        let ints: BTreeMap<i64, String> = (0..n).map(|_| (rng.int(), rng.text())).collect();
        same(&ints);
        let unsigned: BTreeMap<u64, u8> = (0..n).map(|_| (rng.next(), 1)).collect();
        same(&unsigned);
        let tuples: BTreeMap<(i32, String), bool> = (0..n)
            .map(|_| ((rng.int() as i32, rng.text()), true))
            .collect();
        same(&tuples);
        let compounds: BTreeMap<Compound, Option<u16>> =
            (0..n).map(|_| (compound(&mut rng), None)).collect();
        same(&compounds);
        let options: BTreeMap<Option<i16>, ()> = (0..n)
            .map(|_| ((rng.below(3) > 0).then(|| rng.int() as i16), ()))
            .collect();
        same(&options);
        let chars: BTreeMap<char, u8> = (0..n)
            .filter_map(|_| char::from_u32(rng.below(0x3_0000) as u32))
            .map(|c| (c, 0))
            .collect();
        same(&chars);
        let nested: BTreeMap<String, BTreeMap<i64, Vec<String>>> = (0..n)
            .map(|_| (rng.text(), [(rng.int(), vec![rng.text()])].into()))
            .collect();
        same(&nested);
        let set: BTreeSet<String> = (0..n).map(|_| rng.text()).collect();
        same(&set);
        // An order of the key type's own making: kept as the map gives it.
        let reversed: BTreeMap<std::cmp::Reverse<i64>, u8> =
            (0..n).map(|_| (std::cmp::Reverse(rng.int()), 0)).collect();
        same(&reversed);
        same(&(
            rng.int(),
            rng.text(),
            compound(&mut rng),
            vec![rng.next(); n as usize],
        ));
        same(&[f64::from_bits(rng.next()).abs().min(f64::MAX), 0.5]);
    }
}

/// Equal hash maps, built with other insertion orders and capacities
/// (so that they iterate in other orders), give one key, and it is the
/// key of the `BTreeMap` with the same entries.
#[test]
fn equal_hash_maps_give_one_key() {
    let mut rng = Rng::new(7);
    let entries: Vec<(String, i64)> = (0..8).map(|i| (format!("field{i}"), rng.int())).collect();
    let expected = hash(&entries.iter().cloned().collect::<BTreeMap<_, _>>());
    let mut orders = HashSet::new();
    for round in 0..1_000 {
        let mut shuffled = entries.clone();
        rng.shuffle(&mut shuffled);
        let mut fixed = HashMap::with_capacity_and_hasher(round % 64, Fixed::default());
        fixed.extend(shuffled.iter().cloned());
        orders.insert(fixed.keys().cloned().collect::<Vec<_>>());
        assert_eq!(hash(&fixed), expected, "round {round}");
        let random: HashMap<String, i64> = shuffled.into_iter().collect();
        assert_eq!(hash(&random), expected, "round {round}");
    }
    assert!(orders.len() > 1, "the maps must iterate in several orders");
}

/// The same for sets, against the `BTreeSet`.
#[test]
fn equal_hash_sets_give_one_key() {
    let elements: Vec<String> = (0..8).map(|i| format!("tag{i}")).collect();
    let expected = hash(&elements.iter().cloned().collect::<BTreeSet<_>>());
    let mut rng = Rng::new(11);
    let mut orders = HashSet::new();
    for round in 0..1_000 {
        let mut shuffled = elements.clone();
        rng.shuffle(&mut shuffled);
        let mut fixed = HashSet::with_capacity_and_hasher(round % 64, Fixed::default());
        fixed.extend(shuffled.iter().cloned());
        orders.insert(fixed.iter().cloned().collect::<Vec<_>>());
        assert_eq!(hash(&fixed), expected, "round {round}");
        let random: HashSet<String> = shuffled.into_iter().collect();
        assert_eq!(hash(&random), expected, "round {round}");
    }
    assert!(orders.len() > 1, "the sets must iterate in several orders");
}

/// Unordered collections anywhere in a key: in structs, options,
/// sequences and each other.
#[test]
fn nested_unordered_collections_are_canonical_too() {
    #[derive(Serialize)]
    struct Query {
        page: u32,
        filters: HashMap<String, HashSet<u32>>,
        weights: Option<HashMap<u8, f64>>,
    }
    let build = |rng: &mut Rng, capacity: usize| {
        let mut order: Vec<u32> = (0..6).collect();
        rng.shuffle(&mut order);
        let mut filters = HashMap::with_capacity(capacity);
        for name in order.iter().map(|i| format!("f{i}")) {
            let mut values = HashSet::with_capacity(capacity);
            values.extend(order.iter().map(|i| i * 100));
            filters.insert(name, values);
        }
        let weights = order
            .iter()
            .map(|&i| (i as u8, f64::from(i) / 2.0))
            .collect();
        vec![Query {
            page: 2,
            filters,
            weights: Some(weights),
        }]
    };
    let mut rng = Rng::new(3);
    let first = hash(&build(&mut rng, 0));
    for capacity in 0..200 {
        assert_eq!(hash(&build(&mut rng, capacity)), first);
    }
}

/// A `Vec`'s order is part of its value, and stays part of its key;
/// as does a `BTreeSet`'s content.
#[test]
fn ordered_sequences_are_not_sorted() {
    assert_ne!(hash(&vec![1_u32, 2]), hash(&vec![2_u32, 1]));
    assert_ne!(hash(&[("a", 1), ("b", 2)]), hash(&[("b", 2), ("a", 1)]));
    let set: BTreeSet<u32> = [1, 2].into();
    assert_eq!(
        hash(&set),
        hash(&vec![1_u32, 2]),
        "a set is its sorted elements"
    );
    let map: BTreeMap<u32, u32> = [(1, 1)].into();
    assert_ne!(hash(&map), hash(&BTreeMap::from([(1_u32, 2_u32)])));
}

/// `0.0 == -0.0`, so they are one key; a NaN is never equal to itself,
/// but as a key every NaN is the same one (else a call with NaN could
/// never hit and never be forgotten).
#[test]
fn equal_floats_give_one_key() {
    assert_eq!(hash(&0.0_f64), hash(&-0.0_f64));
    assert_eq!(hash(&0.0_f32), hash(&-0.0_f32));
    let nans = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0001),
        f64::INFINITY - f64::INFINITY,
    ];
    for nan in nans {
        assert_eq!(hash(&nan), hash(&f64::NAN));
        assert_eq!(hash(&(1_u8, Some(nan))), hash(&(1_u8, Some(f64::NAN))));
    }
    assert_eq!(hash(&f32::from_bits(0xffc0_0001)), hash(&f32::NAN));
    assert_eq!(hash(&vec![-0.0_f64, 1.0]), hash(&vec![0.0_f64, 1.0]));
    let weights = |zero: f64| HashMap::from([("a", zero), ("b", 1.0)]);
    assert_eq!(hash(&weights(-0.0)), hash(&weights(0.0)));
    assert_ne!(hash(&1.0_f64), hash(&2.0_f64));
    assert_ne!(hash(&f64::INFINITY), hash(&f64::NAN));
}

/// Sets are recognised by the type serde hands to `collect_seq`; these
/// names come from the toolchain (`type_name` is best effort), so a
/// toolchain that changed them fails here rather than quietly.
#[test]
fn hash_collections_are_recognised_as_sets() {
    assert!(is_unordered::<&HashSet<u32>>());
    assert!(is_unordered::<&HashSet<String, Fixed>>());
    assert!(is_unordered::<std::collections::hash_set::Iter<'_, u32>>());
    assert!(is_unordered::<std::collections::hash_map::Keys<'_, u32, u8>>());
    assert!(is_unordered::<
        std::collections::hash_map::Values<'_, u32, u8>,
    >());
    assert!(!is_unordered::<&Vec<HashSet<u32>>>());
    assert!(!is_unordered::<&BTreeSet<u32>>());
    assert!(!is_unordered::<&[u32]>());
    assert!(!is_unordered::<&std::collections::VecDeque<u32>>());
    assert!(is_btree_map::<&BTreeMap<String, u8>>());
    assert!(!is_btree_map::<&HashMap<String, u8>>());
}

/// A `Serialize` of its own that hands a map's keys to `collect_seq`
/// is canonical as well.
#[test]
fn a_maps_keys_handed_to_collect_seq_are_a_set() {
    struct Names(HashMap<String, u8>);
    impl Serialize for Names {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.keys())
        }
    }
    let names: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    let first = hash(&Names(names.iter().map(|n| (n.clone(), 0)).collect()));
    for capacity in 0..100 {
        let mut map = HashMap::with_capacity(capacity);
        map.extend(names.iter().rev().map(|n| (n.clone(), 0)));
        assert_eq!(hash(&Names(map)), first);
    }
}

/// Sequences and maps that do not say their length up front (postcard
/// refused them) are counted, and encode as if they had said it.
#[test]
fn unknown_lengths_are_counted() {
    struct Lazy(Vec<u32>);
    impl Serialize for Lazy {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(None)?;
            for n in &self.0 {
                seq.serialize_element(n)?;
            }
            seq.end()
        }
    }
    struct LazyMap(Vec<(u32, u32)>);
    impl Serialize for LazyMap {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(None)?;
            for (k, v) in &self.0 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }
    let long: Vec<u32> = (0..300).collect();
    assert_eq!(hash(&Lazy(long.clone())), hash(&long));
    assert_eq!(
        hash(&(1_u8, Lazy(vec![]))),
        hash(&(1_u8, Vec::<u32>::new()))
    );
    let entries = vec![(300, 1), (2, 2), (1, 3)];
    let map: BTreeMap<u32, u32> = entries.iter().copied().collect();
    assert_eq!(hash(&LazyMap(entries)), hash(&map));
}

/// A key whose `Serialize` fails is a codec error, not a panic.
#[test]
fn a_failing_serialize_is_a_codec_error() {
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no key for me"))
        }
    }
    let error = KeyHash::of(&(1_u64, Refuses)).expect_err("refused");
    assert_eq!(error.kind(), crate::ErrorKind::Codec);
    assert!(KeyHash::of(&HashMap::from([(1_u8, Refuses)])).is_err());
}

/// Order keys compare as the values' own `Ord` does, for the standard
/// library's types and derived orders: what keeps a `BTreeMap`'s
/// entries where they are.
#[test]
fn order_keys_compare_as_the_values_do() {
    fn check<T: Serialize + Ord + std::fmt::Debug>(a: &T, b: &T) {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        order::write(a, &mut x).expect("order key");
        order::write(b, &mut y).expect("order key");
        assert_eq!(x.cmp(&y), a.cmp(b), "{a:?} vs {b:?}");
    }
    let mut rng = Rng::new(5);
    for _ in 0..2_000 {
        check(&rng.int(), &rng.int());
        check(&(rng.int() as i8), &(rng.int() as i8));
        check(&rng.next(), &rng.next());
        check(&(rng.next() as u128 * 3), &(rng.int() as u128));
        check(&rng.text(), &rng.text());
        check(
            &(rng.int() as i32, rng.text()),
            &(rng.int() as i32, rng.text()),
        );
        check(&compound(&mut rng), &compound(&mut rng));
        let list = |rng: &mut Rng| (0..rng.below(4)).map(|_| rng.text()).collect::<Vec<_>>();
        check(&list(&mut rng), &list(&mut rng));
        let set = |rng: &mut Rng| {
            (0..rng.below(4))
                .map(|_| rng.int() as i16)
                .collect::<BTreeSet<_>>()
        };
        check(&set(&mut rng), &set(&mut rng));
        let map = |rng: &mut Rng| {
            (0..rng.below(3))
                .map(|_| (rng.below(4) as u8, rng.text()))
                .collect::<BTreeMap<_, _>>()
        };
        check(&map(&mut rng), &map(&mut rng));
        check(&(rng.below(2) == 0), &(rng.below(2) == 0));
        check(
            &char::from_u32(rng.below(0xd000) as u32),
            &char::from_u32(rng.below(0xd000) as u32),
        );
    }
    let floats = [
        f64::NEG_INFINITY,
        -1e300,
        -1.0,
        -1e-300,
        0.0,
        1e-300,
        1.0,
        f64::INFINITY,
        f64::NAN,
    ];
    for pair in floats.windows(2) {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        order::write(&pair[0], &mut x).expect("order key");
        order::write(&pair[1], &mut y).expect("order key");
        assert!(x < y, "{} < {}", pair[0], pair[1]);
    }
}
