//! References `ns/name[@selector]` and selectors (versions, ranges, aliases, digests) on
//! arbitrary strings: a parsed value displays in a normalised form that parses back to an
//! equal value and displays the same; resolving it over a fixed version list never panics
//! and only ever picks a listed version that the selector allows.
#![no_main]

use std::collections::BTreeMap;

use adapter_core::digest::Digest;
use adapter_core::name::AliasName;
use adapter_core::reference::{Reference, Selector, VersionRecord, resolve};
use libfuzzer_sys::fuzz_target;

fn versions() -> Vec<VersionRecord> {
    [
        "0.1.0",
        "1.0.0",
        "1.4.2",
        "1.4.3-rc.1",
        "1.5.0",
        "2.0.0-alpha+build.7",
        "2.0.0",
    ]
    .iter()
    .enumerate()
    .map(|(i, v)| VersionRecord {
        version: v.parse().unwrap(),
        manifest_digest: Digest::of_bytes(v.as_bytes()),
        yanked: i == 4,
    })
    .collect()
}

fn check_selector(selector: &Selector) {
    let shown = selector.to_string();
    let again = Selector::parse(&shown).unwrap_or_else(|e| panic!("`{shown}` refused: {e}"));
    assert_eq!(&again, selector, "`{shown}` parsed to another selector");
    assert_eq!(again.to_string(), shown);

    let versions = versions();
    let mut aliases = BTreeMap::new();
    aliases.insert(AliasName::new("prod").unwrap(), versions[2].version.clone());
    aliases.insert(AliasName::new("gone").unwrap(), "9.9.9".parse().unwrap());
    if let Ok(found) = resolve(Some(selector), &versions, &aliases) {
        let record = versions
            .iter()
            .find(|r| r.version == found.version)
            .expect("resolved to a version that is not listed");
        assert_eq!(record.manifest_digest, found.manifest_digest);
        match selector {
            Selector::Version(v) => assert_eq!(&found.version, v),
            Selector::Range(req) => {
                assert!(req.matches(&found.version) && !record.yanked);
            }
            Selector::Digest(d) => assert_eq!(&found.manifest_digest, d),
            Selector::Alias(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(selector) = Selector::parse(s) {
        check_selector(&selector);
    }
    if let Ok(reference) = s.parse::<Reference>() {
        let shown = reference.to_string();
        let again: Reference = shown
            .parse()
            .unwrap_or_else(|e| panic!("`{shown}` refused: {e}"));
        assert_eq!(again, reference, "`{shown}` parsed to another reference");
        assert_eq!(again.to_string(), shown);
        if let Some(selector) = &reference.selector {
            check_selector(selector);
        }
    }
});
