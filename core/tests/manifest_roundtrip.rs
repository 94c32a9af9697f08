//! Property: a manifest survives its canonical form, and the canonical form is a fixed point.

use adapter_core::digest::Digest;
use adapter_core::manifest::{FileEntry, FilePath, Kind, Manifest};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

fn segment() -> impl Strategy<Value = String> {
    // Mixed case, dots, spaces and non-ASCII: everything a real file name may hold.
    "[a-zA-Z0-9_ .é名-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn file_path() -> impl Strategy<Value = FilePath> {
    prop::collection::vec(segment(), 1..4)
        .prop_filter_map("valid path", |segs| FilePath::new(segs.join("/")).ok())
}

fn file_entry() -> impl Strategy<Value = FileEntry> {
    (file_path(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(path, size, bytes)| FileEntry {
        path,
        size,
        digest: Digest::from_bytes(bytes),
    })
}

/// Any finite double: canonical bytes must be a fixed point for every one of them (serde_json
/// is built with `float_roundtrip`, so parsing is correctly rounded).
fn any_finite_float() -> impl Strategy<Value = Number> {
    any::<f64>().prop_filter_map("finite", Number::from_f64)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any_finite_float().prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        prop_oneof![Just(Kind::Adapter), Just(Kind::Model)],
        prop::collection::vec(file_entry(), 1..8),
        prop::collection::btree_map("[a-z_]{1,12}", json_value(), 0..5),
    )
        .prop_filter_map("paths must not collide", |(kind, files, meta)| {
            let metadata: Map<String, Value> = meta.into_iter().collect();
            Manifest::new(kind, files, metadata).ok()
        })
}

proptest! {
    #[test]
    fn parse_of_canonical_is_identity(m in manifest()) {
        let bytes = m.canonical_bytes();
        let back = Manifest::from_json(&bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.canonical_bytes(), bytes);
        prop_assert_eq!(back.digest(), m.digest());
    }

    #[test]
    fn pretty_printing_does_not_change_the_digest(m in manifest()) {
        let pretty = serde_json::to_vec_pretty(&m).unwrap();
        let back = Manifest::from_json(&pretty).unwrap();
        prop_assert_eq!(back.digest(), m.digest());
    }

    #[test]
    fn file_order_does_not_matter(m in manifest(), seed in any::<u64>()) {
        let (kind, mut files, metadata) = m.clone().into_parts();
        // A deterministic shuffle driven by the seed.
        let n = files.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            files.swap(i, j);
        }
        let again = Manifest::new(kind, files, metadata).unwrap();
        prop_assert_eq!(again.digest(), m.digest());
    }
}
