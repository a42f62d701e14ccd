//! The key rules, checked: pinned encodings for every shape that was
//! already canonical, equal unordered collections and floats meeting in one
//! key, and the same through a memo (hits and forgets).

use super::*;

mod canonical;
mod through_a_memo;

/// These values are part of the format: every process of a fleet, on any
/// platform and after any upgrade, must find the same keys. If this test
/// fails, the change breaks shared caches and needs a new key format.
#[test]
fn known_keys_are_pinned() {
    let cases: [(&str, KeyHash); 4] = [
        ("u64 42", KeyHash::of(&42_u64).expect("hash")),
        ("str alice", KeyHash::of("alice").expect("hash")),
        ("tuple", KeyHash::of(&(7_i64, "x")).expect("hash")),
        ("unit", KeyHash::of(&()).expect("hash")),
    ];
    let rendered: Vec<String> = cases
        .iter()
        .map(|(name, hash)| format!("{name}={hash}"))
        .collect();
    assert_eq!(
        rendered,
        [
            "u64 42=14c9ae9594c463c479d03016b7aeed0d",
            "str alice=9dd38b6a32f5271f4981140e536fd3f8",
            "tuple=25081e02f0a0a7f7990ab7c2fb971d9c",
            "unit=99aa06d3014798d86001c324468d497f",
        ]
    );
    assert_eq!(
        memo_key("board:", "load_user", 3, cases[0].1),
        format!("board:load_user:3:{}", cases[0].1)
    );
}

/// Every shape of key whose encoding was already a function of its value
/// (integers of every width, strings short and long, tuples, structs,
/// enums, options, sequences, ordered maps and sets, ordinary floats):
/// these hashes were computed before keys became canonical and must
/// never move, or entries that older versions stored in a shared store
/// become unreachable.
#[test]
fn canonical_shapes_are_pinned() {
    use std::collections::{BTreeMap, BTreeSet};

    #[derive(Serialize)]
    struct User {
        id: i64,
        name: String,
        admin: bool,
    }
    #[derive(Serialize)]
    struct Unit;
    #[derive(Serialize)]
    struct Id(u64);
    #[derive(Serialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Rect(u32, u32),
        Named { label: String, sides: u8 },
    }
    #[derive(Serialize)]
    struct Point {
        x: f64,
        y: f32,
    }

    let hash = |key: &dyn erased::Key| key.hash().to_string();
    let strings: BTreeMap<String, i64> = [("b", 1), ("aa", 2), ("ccc", -3), ("", 4)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let numbers: BTreeMap<u64, &str> = [
        (1, "one"),
        (200, "two hundred"),
        (300, "x"),
        (u64::MAX, "max"),
    ]
    .into_iter()
    .collect();
    let signed: BTreeMap<i64, u8> = [(-300, 1), (-1, 2), (0, 3), (1, 4), (127, 5), (128, 6)]
        .into_iter()
        .collect();
    let nested: BTreeMap<String, BTreeMap<u32, Vec<String>>> = [
        (
            "zz".to_owned(),
            [(500, vec!["a".to_owned()])].into_iter().collect(),
        ),
        (
            "a".to_owned(),
            [(1, vec![]), (129, vec!["bb".to_owned(), "c".to_owned()])]
                .into_iter()
                .collect(),
        ),
    ]
    .into_iter()
    .collect();
    let set: BTreeSet<String> = ["pear", "fig", "banana", "kiwi"].map(str::to_owned).into();
    let int_set: BTreeSet<i32> = [-500, -1, 3, 200, 70_000].into();
    let tuple_map: BTreeMap<(u8, String), Option<bool>> = [
        ((1, "x".to_owned()), Some(true)),
        ((0, "yy".to_owned()), None),
    ]
    .into_iter()
    .collect();
    let long = "long key ".repeat(20);
    let cases: Vec<(&str, String)> = vec![
        ("u8", hash(&200_u8)),
        ("i8", hash(&-5_i8)),
        ("u16", hash(&65_535_u16)),
        ("i32", hash(&-70_000_i32)),
        ("u64 max", hash(&u64::MAX)),
        ("i64 min", hash(&i64::MIN)),
        ("u128", hash(&(u128::MAX - 7))),
        ("i128", hash(&-(1_i128 << 100))),
        ("bool", hash(&true)),
        ("char", hash(&'é')),
        ("str 7", hash(&"abcdefg")),
        ("str 8", hash(&"abcdefgh")),
        ("str 30", hash(&"a string of thirty bytes......")),
        ("str long", hash(&long)),
        ("unit", hash(&())),
        ("none", hash(&None::<u32>)),
        ("some", hash(&Some("x"))),
        ("tuple", hash(&(7_i64, "x"))),
        ("tuple refs", hash(&(&7_i64, &"x", &Some(3_u8)))),
        ("nested tuple", hash(&((1_u8, 2_u16), ("a", ("b", 3_i32))))),
        (
            "struct",
            hash(&User {
                id: 42,
                name: "ada".to_owned(),
                admin: false,
            }),
        ),
        ("unit struct", hash(&Unit)),
        ("newtype", hash(&Id(9))),
        ("enum unit", hash(&Shape::Empty)),
        ("enum newtype", hash(&Shape::Circle(1.5))),
        ("enum tuple", hash(&Shape::Rect(3, 4))),
        (
            "enum struct",
            hash(&Shape::Named {
                label: "tri".to_owned(),
                sides: 3,
            }),
        ),
        ("vec u64", hash(&vec![3_u64, 1, 2, 300])),
        ("vec str", hash(&vec!["b", "a", "c"])),
        ("vec u8", hash(&vec![0_u8, 255, 7])),
        ("empty vec", hash(&Vec::<u32>::new())),
        ("array", hash(&[9_u16, 8, 7])),
        ("long vec", hash(&(0_u32..100).collect::<Vec<_>>())),
        ("btreemap str", hash(&strings)),
        ("btreemap u64", hash(&numbers)),
        ("btreemap i64", hash(&signed)),
        ("btreemap nested", hash(&nested)),
        ("btreemap tuple keys", hash(&tuple_map)),
        ("empty btreemap", hash(&BTreeMap::<String, u8>::new())),
        ("btreeset str", hash(&set)),
        ("btreeset i32", hash(&int_set)),
        ("vec of maps", hash(&vec![strings.clone(), BTreeMap::new()])),
        ("f64", hash(&1.5_f64)),
        ("f64 negative", hash(&-2.25_f64)),
        ("f64 zero", hash(&0.0_f64)),
        ("f64 max", hash(&f64::MAX)),
        ("f64 inf", hash(&f64::INFINITY)),
        ("f64 -inf", hash(&f64::NEG_INFINITY)),
        ("f32", hash(&0.1_f32)),
        ("floats in struct", hash(&Point { x: 3.25, y: -1.0 })),
        ("option f64", hash(&Some(6.02e23_f64))),
        ("id and floats", hash(&(1_u64, vec![0.5_f64, 1e-300]))),
    ];
    let rendered: Vec<String> = cases
        .iter()
        .map(|(name, hash)| format!("{name}={hash}"))
        .collect();
    let expected: &[&str] = &[
        "u8=e4c0939b1917e4daf0f28117d57ca107",
        "i8=4b120ec907565137f487e4acab9c606c",
        "u16=16c0551ca6d142f57d275201fdf814c0",
        "i32=db7b742df7eb99776730c87d35883ea9",
        "u64 max=8f11af94455c7855be88e14ca93fab0e",
        "i64 min=8f11af94455c7855be88e14ca93fab0e",
        "u128=0135ea46dbaf560d6f2dd41be62a0c02",
        "i128=75693008bead9ba835d6a0797b79f327",
        "bool=51025a4491835505e12ef9d2eb86ceeb",
        "char=0922676fb724c18686968fd863764238",
        "str 7=6d36973c5bf8d531f2434356f4b579ff",
        "str 8=9f047390f2d6afd3ce59a6de36728d72",
        "str 30=9587000a8742ef54ffcb8ae5eae69ef3",
        "str long=1403bcc1710113079f1897af0da856c4",
        "unit=99aa06d3014798d86001c324468d497f",
        "none=a6cd5e9392000f6ac44bdff4074eecdb",
        "some=8e7d4bb3d65af580671d9f05019c4bbc",
        "tuple=25081e02f0a0a7f7990ab7c2fb971d9c",
        "tuple refs=5c3d63726b95d8be2e553df7f808e295",
        "nested tuple=639dbacd4b0f557d15d55b71f286c44d",
        "struct=12e837291aac7c0bebbd892d721665b4",
        "unit struct=99aa06d3014798d86001c324468d497f",
        "newtype=463a746d201db965de315c887190e2fa",
        "enum unit=a6cd5e9392000f6ac44bdff4074eecdb",
        "enum newtype=29e4828d0270e51aa6e14b5d3d7b2de0",
        "enum tuple=a38e70fdadc96867acd15c4080ec4d45",
        "enum struct=5768d8650a5639f241a7f930425b09d7",
        "vec u64=7fb72c7af77778faa7b0182a919f204d",
        "vec str=c89453485616447228e273fffdb7c3cc",
        "vec u8=62e06ff9c2f2d6905c2661b174d55e6d",
        "empty vec=a6cd5e9392000f6ac44bdff4074eecdb",
        "array=e4e00185de6241513a9250dd84402244",
        "long vec=257204347b57b47fc9f75f66d7716842",
        "btreemap str=4bd82e4931122ce3c3f2165f1430f4e2",
        "btreemap u64=4976c8b64b4e381b666cdd545115dcbe",
        "btreemap i64=535bf29ba4c85030341b2ac55641df31",
        "btreemap nested=1bd091d62522be6a0c28ffccda5020e2",
        "btreemap tuple keys=5d725a03ee03592f3dcef2e7b3507eb5",
        "empty btreemap=a6cd5e9392000f6ac44bdff4074eecdb",
        "btreeset str=81199cd2a26c5b8f0a992ca86787d348",
        "btreeset i32=1a9c35c333a04381c22dcaf409d3fddc",
        "vec of maps=cfca45e109bbbe114276c704a8518b31",
        "f64=8e19d0c57481c05d6d22fe9c07fa4107",
        "f64 negative=06853c5267ffd2e792634ca0c460907e",
        "f64 zero=2c0a8a99dc147d5445c3b49d035665b2",
        "f64 max=7d4788472a123fd5fae8ca688e7b4f95",
        "f64 inf=1d45544bffe0c29278dc7955838204b9",
        "f64 -inf=9230c8dca94144c35b42d6eebc610d92",
        "f32=6748ce2761213fd6a8a8949bfaec51b0",
        "floats in struct=46961e99a4b3a0cede805d0419bfd3f6",
        "option f64=03950310c5d64a7fe1641c2cbafe6b98",
        "id and floats=74f0c2ff4cff0a66409815e54a4edf45",
    ];
    assert_eq!(rendered, expected);
}

/// The scalar fast path must give exactly postcard's bytes.
#[test]
fn scalar_keys_hash_as_postcard_encodes_them() {
    fn via_postcard<K: Serialize + ?Sized>(key: &K) -> KeyHash {
        KeyHash(xxh3_128(&postcard::to_allocvec(key).expect("encode")))
    }
    for n in [0_u64, 1, 127, 128, 300, 16_383, 16_384, u64::MAX] {
        assert_eq!(KeyHash::of(&n).expect("hash"), via_postcard(&n), "{n}");
    }
    for n in [0_i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
        assert_eq!(KeyHash::of(&n).expect("hash"), via_postcard(&n), "{n}");
        let small = n as i32;
        assert_eq!(KeyHash::of(&small).expect("hash"), via_postcard(&small));
        let short = n as i16;
        assert_eq!(KeyHash::of(&short).expect("hash"), via_postcard(&short));
    }
    for n in [0_u32, 200, u32::MAX] {
        assert_eq!(KeyHash::of(&n).expect("hash"), via_postcard(&n));
        let short = n as u16;
        assert_eq!(KeyHash::of(&short).expect("hash"), via_postcard(&short));
    }
    for text in [
        "",
        "a",
        "ab",
        "abc",
        "abcd",
        "alice",
        "abcdef",
        "abcdefg",
        "abcdefgh",
        "ünïcödé",
        &"x".repeat(39),
        &"y".repeat(200),
    ] {
        assert_eq!(
            KeyHash::of(text).expect("hash"),
            via_postcard(text),
            "{text}"
        );
    }
    assert_eq!(KeyHash::of(&()).expect("hash"), via_postcard(&()));
}

#[test]
fn integer_width_and_platform_do_not_matter_for_usize() {
    assert_eq!(
        KeyHash::of(&5_usize).expect("hash"),
        KeyHash::of(&5_u64).expect("hash")
    );
}

#[test]
fn long_keys_fall_back_to_the_heap() {
    let long = "k".repeat(10_000);
    let a = KeyHash::of(long.as_str()).expect("hash");
    let b = KeyHash::of(&long).expect("hash");
    assert_eq!(a, b);
    assert_ne!(a, KeyHash::of("k").expect("hash"));
}

#[test]
fn versions_move_keys_and_zero_is_identity() {
    let h = KeyHash::of(&1_u32).expect("hash");
    assert_eq!(h.versioned(0), h);
    assert_ne!(h.versioned(1), h);
    assert_ne!(h.versioned(1), h.versioned(2));
}

/// Lets a test list keys of many types in one table.
mod erased {
    use super::KeyHash;

    pub(super) trait Key {
        fn hash(&self) -> KeyHash;
    }

    impl<T: serde::Serialize> Key for T {
        fn hash(&self) -> KeyHash {
            KeyHash::of(self).expect("hash")
        }
    }
}
