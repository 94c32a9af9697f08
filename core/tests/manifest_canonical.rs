//! Canonical form and manifest digest: byte-stable, independent of input key order and
//! whitespace, sensitive to every file fact.

use adapter_core::digest::Digest;
use adapter_core::manifest::{FileEntry, Kind, Manifest, SCHEMA};
use serde_json::{Map, Value, json};

const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// Input as a client might send it: files out of order, keys in any order, whitespace.
const INPUT: &str = r#"{
  "schema": "adapter-registry.manifest.v1",
  "kind": "adapter",
  "files": [
    {"path": "adapter_model.safetensors", "size": 3,
     "digest": "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"path": "adapter_config.json", "size": 0,
     "digest": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
  ],
  "metadata": {"peft": {"r": 16, "lora_alpha": 32}, "base_model": "acme/llama@1.0.0"}
}"#;

const GOLDEN: &str = concat!(
    r#"{"files":[{"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","path":"adapter_config.json","size":0},"#,
    r#"{"digest":"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","path":"adapter_model.safetensors","size":3}],"#,
    r#""kind":"adapter","metadata":{"base_model":"acme/llama@1.0.0","peft":{"lora_alpha":32,"r":16}},"#,
    r#""schema":"adapter-registry.manifest.v1"}"#
);

const GOLDEN_DIGEST: &str =
    "sha256:a986474cb85c212fe191f5947b1301355b4fdb1b73e1a2fbbfed2c587d03b2d0";

fn example() -> Manifest {
    Manifest::from_json(INPUT.as_bytes()).unwrap()
}

#[test]
fn canonical_form_is_byte_stable() {
    let m = example();
    assert_eq!(String::from_utf8(m.canonical_bytes()).unwrap(), GOLDEN);
    assert_eq!(m.digest().to_string(), GOLDEN_DIGEST);
    assert_eq!(m.digest(), Digest::of_bytes(GOLDEN.as_bytes()));
    // The canonical form is itself a valid manifest with the same canonical form.
    let again = Manifest::from_json(GOLDEN.as_bytes()).unwrap();
    assert_eq!(again, m);
    assert_eq!(again.canonical_bytes(), GOLDEN.as_bytes());
}

#[test]
fn files_are_sorted_by_path_bytes() {
    let m = example();
    let paths: Vec<&str> = m.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["adapter_config.json", "adapter_model.safetensors"]);
    // Byte order, not case-insensitive or locale order: `B` (0x42) sorts before `a` (0x61).
    let files = ["a.txt", "B.txt", "_x", "Z/y"]
        .map(|p| FileEntry {
            path: p.parse().unwrap(),
            size: 1,
            digest: EMPTY.parse().unwrap(),
        })
        .to_vec();
    let m = Manifest::new(Kind::Model, files, Map::new()).unwrap();
    let paths: Vec<&str> = m.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["B.txt", "Z/y", "_x", "a.txt"]);
    assert_eq!(m.file("Z/y").unwrap().size, 1);
    assert!(m.file("z/y").is_none());
}

#[test]
fn key_order_and_whitespace_do_not_change_the_digest() {
    let reordered = format!(
        r#"{{"metadata":{{"base_model":"acme/llama@1.0.0","peft":{{"lora_alpha":32,"r":16}}}},
           "files":[{{"size":0,"digest":"{EMPTY}","path":"adapter_config.json"}},
                    {{"digest":"{ABC}","size":3,"path":"adapter_model.safetensors"}}],
           "kind":"adapter",   "schema":"{SCHEMA}"}}"#
    );
    let compact: String = INPUT.split_whitespace().collect::<Vec<_>>().join("");
    let tabs = INPUT.replace("  ", "\t\r\n ");
    for text in [reordered.as_str(), compact.as_str(), tabs.as_str(), GOLDEN] {
        let m = Manifest::from_json(text.as_bytes()).unwrap();
        assert_eq!(m.digest().to_string(), GOLDEN_DIGEST, "{text}");
    }
}

/// A change to a manifest's JSON form.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn every_change_changes_the_digest() {
    let base = example().to_value();
    let edits: Vec<(&str, Edit)> = vec![
        (
            "file digest",
            Box::new(|v| v["files"][0]["digest"] = json!(ABC)),
        ),
        ("file size", Box::new(|v| v["files"][0]["size"] = json!(1))),
        (
            "file path",
            Box::new(|v| v["files"][0]["path"] = json!("adapter_config.jsoN")),
        ),
        (
            "path case",
            Box::new(|v| v["files"][1]["path"] = json!("Adapter_model.safetensors")),
        ),
        ("kind", Box::new(|v| v["kind"] = json!("model"))),
        (
            "metadata value",
            Box::new(|v| v["metadata"]["peft"]["r"] = json!(8)),
        ),
        (
            "metadata int vs float",
            Box::new(|v| v["metadata"]["peft"]["r"] = json!(16.0)),
        ),
        (
            "metadata key",
            Box::new(|v| v["metadata"]["extra"] = json!(null)),
        ),
        (
            "a file more",
            Box::new(|v| {
                v["files"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"path": "README.md", "size": 0, "digest": EMPTY}))
            }),
        ),
    ];
    let original = example().digest();
    for (what, edit) in edits {
        let mut v = base.clone();
        edit(&mut v);
        let changed = Manifest::from_value(v).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_ne!(changed.digest(), original, "{what} must change the digest");
    }
    // Sanity: without an edit the digest is the same.
    assert_eq!(Manifest::from_value(base).unwrap().digest(), original);
}

#[test]
fn missing_metadata_is_an_empty_object() {
    let text = format!(
        r#"{{"schema":"{SCHEMA}","kind":"model","files":[{{"path":"w","size":0,"digest":"{EMPTY}"}}]}}"#
    );
    let m = Manifest::from_json(text.as_bytes()).unwrap();
    assert!(m.metadata().is_empty());
    assert!(
        String::from_utf8(m.canonical_bytes())
            .unwrap()
            .contains(r#""metadata":{}"#)
    );
    assert_eq!(m.total_size(), 0);
}

#[test]
fn serde_round_trip_uses_the_same_form() {
    let m = example();
    let text = serde_json::to_string(&m).unwrap();
    let back: Manifest = serde_json::from_str(&text).unwrap();
    assert_eq!(back, m);
    assert_eq!(serde_json::to_value(&m).unwrap()["schema"], json!(SCHEMA));
}
