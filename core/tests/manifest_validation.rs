//! Every rule of manifest parsing, each with a hostile input.

use adapter_core::manifest::{FileEntry, Kind, Manifest, ManifestError, SCHEMA};
use serde_json::Map;

const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn file(path: &str) -> String {
    format!(r#"{{"path":"{path}","size":0,"digest":"{EMPTY}"}}"#)
}

fn manifest_with(files: &[&str]) -> String {
    let files: Vec<String> = files.iter().map(|p| file(p)).collect();
    format!(
        r#"{{"schema":"{SCHEMA}","kind":"adapter","files":[{}],"metadata":{{}}}}"#,
        files.join(",")
    )
}

fn err(text: &str) -> ManifestError {
    Manifest::from_json(text.as_bytes()).expect_err(text)
}

/// The error's variant and a fragment its message must contain.
fn assert_invalid(text: &str, fragment: &str) {
    match err(text) {
        ManifestError::Invalid(msg) | ManifestError::Json(msg) => {
            assert!(msg.contains(fragment), "{text}: {msg:?} lacks {fragment:?}")
        }
        other => panic!("{text}: expected Invalid/Json, got {other:?}"),
    }
}

#[test]
fn a_good_manifest_parses() {
    let m = Manifest::from_json(manifest_with(&["b", "a/x", "A.txt"]).as_bytes()).unwrap();
    assert_eq!(m.kind(), Kind::Adapter);
    assert_eq!(m.files().len(), 3);
}

#[test]
fn json_level_refusals() {
    assert!(matches!(err("not json"), ManifestError::Json(_)));
    assert!(matches!(err(""), ManifestError::Json(_)));
    // Duplicate keys, at the top level and deep inside free-form metadata.
    let dup_top = manifest_with(&["a"]).replacen(
        r#""kind":"adapter""#,
        r#""kind":"adapter","kind":"model""#,
        1,
    );
    assert_invalid(&dup_top, "duplicate key `kind`");
    let dup_meta =
        manifest_with(&["a"]).replace(r#""metadata":{}"#, r#""metadata":{"x":{"r":1,"r":2}}"#);
    assert_invalid(&dup_meta, "duplicate key `r`");
    assert!(matches!(err("[]"), ManifestError::Invalid(_)));
    assert!(matches!(err(r#""adapter""#), ManifestError::Invalid(_)));
}

#[test]
fn schema_is_required_and_checked() {
    let good = manifest_with(&["a"]);
    let missing = good.replace(&format!(r#""schema":"{SCHEMA}","#), "");
    assert_eq!(err(&missing), ManifestError::MissingSchema);
    let v2 = good.replace(SCHEMA, "adapter-registry.manifest.v2");
    assert_eq!(
        err(&v2),
        ManifestError::UnsupportedSchema(r#""adapter-registry.manifest.v2""#.into())
    );
    let number = good.replace(&format!(r#""{SCHEMA}""#), "1");
    assert_eq!(err(&number), ManifestError::UnsupportedSchema("1".into()));
}

#[test]
fn unknown_fields_are_refused() {
    let top = manifest_with(&["a"]).replace(r#""kind""#, r#""signature":"x","kind""#);
    assert_invalid(
        &top,
        "unknown field `signature`; expected schema, kind, files, metadata",
    );
    let entry = manifest_with(&["a"]).replace(r#""size":0"#, r#""size":0,"mode":"755""#);
    assert_invalid(&entry, "files[0]: unknown field `mode`");
}

#[test]
fn field_values_are_checked() {
    let good = manifest_with(&["a"]);
    assert_invalid(
        &good.replace(r#""adapter""#, r#""dataset""#),
        "unknown variant `dataset`",
    );
    assert_invalid(
        &good.replace(r#""adapter""#, r#""Adapter""#),
        "unknown variant `Adapter`",
    );
    assert_invalid(
        &good.replace(r#""size":0"#, r#""size":-1"#),
        "files[0]: invalid value: integer `-1`",
    );
    assert_invalid(
        &good.replace(r#""size":0"#, r#""size":1.5"#),
        "files[0]: invalid type: floating point `1.5`",
    );
    assert_invalid(
        &good.replace(r#""size":0,"#, ""),
        "files[0]: missing field `size`",
    );
    assert_invalid(
        &good.replace(EMPTY, "sha256:00"),
        "files[0]: a sha256 digest has exactly 64 lowercase hex",
    );
    assert_invalid(
        &good.replace(r#""metadata":{}"#, r#""metadata":[]"#),
        "metadata: must be a JSON object, not []",
    );
    assert_invalid(
        &good
            .replace(r#""files":["#, r#""files":{"x":["#)
            .replace("],", "]},"),
        "files: must be an array",
    );
    assert_invalid(
        &good.replace(r#","kind":"adapter""#, ""),
        "missing field `kind`",
    );
}

#[test]
fn hostile_file_paths_are_refused() {
    for (path, fragment) in [
        ("../etc/passwd", "`..` segment"),
        ("a//b", "empty segment"),
        ("./a", "`.` segment"),
        ("a/", "empty segment"),
        ("/abs", "relative"),
        ("C:\\\\x", "drive letter"),
        ("a\\\\b", "backslash"),
        // NUL is refused by the strict JSON reader already (no string may hold it).
        ("a\\u0000b", "U+0000"),
        ("a\\u0001b", "control character"),
        ("", "empty"),
    ] {
        assert_invalid(&manifest_with(&[path]), fragment);
    }
}

#[test]
fn file_list_rules() {
    assert_eq!(err(&manifest_with(&[])), ManifestError::NoFiles);
    assert_eq!(
        err(&manifest_with(&["a", "b", "a"])),
        ManifestError::DuplicatePath("a".parse().unwrap())
    );
    assert_eq!(
        err(&manifest_with(&["README.md", "readme.md"])),
        ManifestError::CaseCollision {
            first: "README.md".parse().unwrap(),
            second: "readme.md".parse().unwrap(),
        }
    );
    assert_eq!(
        err(&manifest_with(&["a/b/c", "a/b"])),
        ManifestError::FileDirConflict {
            file: "a/b".parse().unwrap(),
            nested: "a/b/c".parse().unwrap(),
        }
    );
    // A file that collides with a directory only on a case-insensitive file system.
    assert!(matches!(
        err(&manifest_with(&["Weights", "weights/x"])),
        ManifestError::FileDirConflict { .. }
    ));
    // Sharing a directory is fine, and so is a name that merely starts like a file.
    assert!(Manifest::from_json(manifest_with(&["a/b", "a/c", "a.b/c", "ab"]).as_bytes()).is_ok());
}

#[test]
fn constructor_applies_the_same_rules() {
    let entry = |p: &str| FileEntry {
        path: p.parse().unwrap(),
        size: 1,
        digest: EMPTY.parse().unwrap(),
    };
    assert_eq!(
        Manifest::new(Kind::Model, vec![], Map::new()),
        Err(ManifestError::NoFiles)
    );
    assert!(matches!(
        Manifest::new(Kind::Model, vec![entry("X"), entry("x")], Map::new()),
        Err(ManifestError::CaseCollision { .. })
    ));
    let m = Manifest::new(Kind::Model, vec![entry("b"), entry("a")], Map::new()).unwrap();
    assert_eq!(m.files()[0].path.as_str(), "a");
    assert_eq!(m.total_size(), 2);
}

#[test]
fn serde_deserialize_validates_too() {
    let dup = manifest_with(&["a", "a"]);
    assert!(serde_json::from_str::<Manifest>(&dup).is_err());
    let v2 = manifest_with(&["a"]).replace(SCHEMA, "other");
    assert!(serde_json::from_str::<Manifest>(&v2).is_err());
}
