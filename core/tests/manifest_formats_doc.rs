//! docs/FORMATS.md's worked example is computed by the code, so the document cannot drift.

use adapter_core::digest::Digest;
use adapter_core::manifest::Manifest;
use adapter_core::reference::Reference;

const DOC: &str = include_str!("../../docs/FORMATS.md");

/// The body of the first fenced block after `<!-- example:{name} -->`.
fn fenced_after(marker: &str) -> &'static str {
    let tag = format!("<!-- example:{marker} -->");
    let start = DOC
        .find(&tag)
        .unwrap_or_else(|| panic!("FORMATS.md lacks {tag}"));
    let rest = &DOC[start + tag.len()..];
    let fence = rest.find("```").expect("a fenced block after the marker");
    let body_start = fence + rest[fence..].find('\n').expect("fence line ends") + 1;
    let body_len = rest[body_start..].find("\n```").expect("closing fence");
    &rest[body_start..body_start + body_len]
}

/// The first `sha256:…` in backticks after `<!-- example:{name} -->`.
fn digest_after(marker: &str) -> Digest {
    let tag = format!("<!-- example:{marker} -->");
    let start = DOC.find(&tag).expect("marker present") + tag.len();
    let rest = &DOC[start..];
    let open = rest.find("`sha256:").expect("a digest after the marker") + 1;
    let close = open + rest[open..].find('`').expect("closing backtick");
    rest[open..close].parse().expect("a valid digest")
}

#[test]
fn worked_example_matches_the_code() {
    let input = fenced_after("manifest-input");
    let canonical = fenced_after("manifest-canonical");
    let digest = digest_after("manifest-digest");

    let m = Manifest::from_json(input.as_bytes()).expect("the doc's input is a valid manifest");
    assert_eq!(
        String::from_utf8(m.canonical_bytes()).unwrap(),
        canonical,
        "FORMATS.md canonical bytes differ from the code's"
    );
    assert_eq!(
        m.digest(),
        digest,
        "FORMATS.md manifest digest differs from the code's"
    );
    assert_eq!(Digest::of_bytes(canonical.as_bytes()), digest);
}

#[test]
fn required_sections_exist() {
    for heading in [
        "## Digests",
        "## Canonical JSON",
        "## Names",
        "## References and selectors",
        "## Resolution",
        "## File paths",
        "## Manifests",
        "## Model identity: content digest and shape fingerprint",
        "## safetensors: what we accept",
    ] {
        assert!(
            DOC.lines().any(|l| l == heading),
            "FORMATS.md lacks the heading {heading:?}"
        );
    }
}

#[test]
fn documented_selector_examples_classify_as_documented() {
    // The classification table's examples, through the real parser.
    let cases = [
        ("1.4.2-rc.1", "Version"),
        ("1.4.2+build.5", "Version"),
        ("canary-eu", "Alias"),
        ("1.2", "Range"),
        ("=1.2.3", "Range"),
        ("1.*", "Range"),
        ("*", "Range"),
    ];
    for (sel, kind) in cases {
        assert!(
            DOC.contains(&format!("`{sel}`")),
            "{sel} is not in FORMATS.md"
        );
        let r: Reference = format!("acme/bot@{sel}").parse().unwrap();
        let debug = format!("{:?}", r.selector.unwrap());
        assert!(debug.starts_with(kind), "{sel}: {debug}");
    }
    for refused in ["v1.2.3", "Prod"] {
        assert!(format!("acme/bot@{refused}").parse::<Reference>().is_err());
    }
}
