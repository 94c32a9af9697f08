//! Version manifests (`adapter_core::manifest::Manifest::from_json`, strict JSON underneath)
//! on arbitrary bytes: an accepted manifest's canonical bytes parse back to an equal manifest
//! with the same digest, and the serde path (`Deserialize`, used inside API bodies) never
//! accepts what the strict path refuses.
#![no_main]

use adapter_core::json::{canonical, parse_strict};
use adapter_core::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The strict JSON layer on its own: canonical form is a fixed point.
    if let Ok(value) = parse_strict(data) {
        let bytes = canonical(&value);
        let again = parse_strict(&bytes).expect("canonical JSON parses");
        assert_eq!(canonical(&again), bytes, "canonical form is not stable");
    }
    let strict = Manifest::from_json(data);
    let lax = serde_json::from_slice::<Manifest>(data);
    if let Ok(m) = &lax {
        // serde_json keeps the last of duplicate keys where the strict parser refuses them.
        if strict.is_err() {
            let dup = parse_strict(data).is_err();
            assert!(
                dup,
                "serde path accepts a manifest the strict path refuses: {m:?}"
            );
        }
    }
    let Ok(manifest) = strict else {
        return;
    };
    if let Ok(m) = lax {
        assert_eq!(m, manifest, "serde and strict paths disagree");
    }
    let bytes = manifest.canonical_bytes();
    let again = Manifest::from_json(&bytes).expect("canonical bytes parse");
    assert_eq!(again, manifest);
    assert_eq!(again.canonical_bytes(), bytes);
    assert_eq!(again.digest(), manifest.digest());
    let files = manifest.files();
    assert!(!files.is_empty());
    for pair in files.windows(2) {
        assert!(pair[0].path.as_str().as_bytes() < pair[1].path.as_str().as_bytes());
    }
    for f in files {
        assert_eq!(manifest.file(f.path.as_str()), Some(f));
    }
});
