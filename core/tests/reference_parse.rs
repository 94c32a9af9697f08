//! Parsing table for references and selectors: every classification rule and every error.

use adapter_core::digest::{Digest, DigestError};
use adapter_core::name::NameError;
use adapter_core::reference::{
    MAX_SELECTOR_LEN, Reference, ReferenceError, Selector, SelectorError,
};

const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What a good input must parse to: the selector kind and the normalised display form.
#[derive(Debug)]
enum Want {
    Bare,
    Version(&'static str),
    Range(&'static str),
    Alias(&'static str),
    Digest,
}

fn check_good(input: &str, want: Want, display: &str) {
    let r: Reference = input
        .parse()
        .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
    let kind_ok = match (&r.selector, &want) {
        (None, Want::Bare) => true,
        (Some(Selector::Version(v)), Want::Version(s)) => v.to_string() == *s,
        (Some(Selector::Range(q)), Want::Range(s)) => q.to_string() == *s,
        (Some(Selector::Alias(a)), Want::Alias(s)) => a.as_str() == *s,
        (Some(Selector::Digest(d)), Want::Digest) => d.hex() == HEX,
        _ => false,
    };
    assert!(kind_ok, "{input:?} parsed as {r:?}, wanted {want:?}");
    assert_eq!(r.to_string(), display, "display of {input:?}");
    let again: Reference = r.to_string().parse().unwrap();
    assert_eq!(
        again, r,
        "display of {input:?} must parse back to the same reference"
    );
}

#[test]
fn good_references() {
    let digest_ref = format!("acme/bot@sha256:{HEX}");
    let table: Vec<(&str, Want, &str)> = vec![
        ("acme/bot", Want::Bare, "acme/bot"),
        (
            "acme/llama-3.1-8b_lora",
            Want::Bare,
            "acme/llama-3.1-8b_lora",
        ),
        ("acme/bot@1.4.2", Want::Version("1.4.2"), "acme/bot@1.4.2"),
        ("acme/bot@0.0.0", Want::Version("0.0.0"), "acme/bot@0.0.0"),
        (
            "acme/bot@1.4.2-rc.1",
            Want::Version("1.4.2-rc.1"),
            "acme/bot@1.4.2-rc.1",
        ),
        (
            "acme/bot@1.4.2+build.7",
            Want::Version("1.4.2+build.7"),
            "acme/bot@1.4.2+build.7",
        ),
        ("acme/bot@^1.2", Want::Range("^1.2"), "acme/bot@^1.2"),
        ("acme/bot@~1.2.3", Want::Range("~1.2.3"), "acme/bot@~1.2.3"),
        (
            "acme/bot@>=1, <2",
            Want::Range(">=1, <2"),
            "acme/bot@>=1, <2",
        ),
        (
            "acme/bot@>=1,<2",
            Want::Range(">=1, <2"),
            "acme/bot@>=1, <2",
        ),
        ("acme/bot@1.2", Want::Range("^1.2"), "acme/bot@^1.2"),
        ("acme/bot@1", Want::Range("^1"), "acme/bot@^1"),
        ("acme/bot@=1.2.3", Want::Range("=1.2.3"), "acme/bot@=1.2.3"),
        ("acme/bot@1.*", Want::Range("1.*"), "acme/bot@1.*"),
        ("acme/bot@*", Want::Range("*"), "acme/bot@*"),
        (
            "acme/bot@>=1.2.0-rc.1",
            Want::Range(">=1.2.0-rc.1"),
            "acme/bot@>=1.2.0-rc.1",
        ),
        ("acme/bot@prod", Want::Alias("prod"), "acme/bot@prod"),
        (
            "acme/bot@canary-eu",
            Want::Alias("canary-eu"),
            "acme/bot@canary-eu",
        ),
        ("acme/bot@x", Want::Alias("x"), "acme/bot@x"),
        (&digest_ref, Want::Digest, &digest_ref),
    ];
    for (input, want, display) in table {
        check_good(input, want, display);
    }
}

#[test]
fn bad_references() {
    use ReferenceError as R;
    use SelectorError as S;
    let range_err = |input: &str| match input.parse::<Reference>() {
        Err(R::Selector(S::Range { input: got, .. })) => got,
        other => panic!("{input:?}: expected a range error, got {other:?}"),
    };
    let table: Vec<(String, ReferenceError)> = vec![
        ("bot".into(), R::MissingSlash),
        ("bot@1.2.3".into(), R::MissingSlash),
        ("".into(), R::MissingSlash),
        ("a/b/c".into(), R::TooManySlashes),
        ("acme/../x".into(), R::TooManySlashes),
        ("/bot".into(), R::Namespace(NameError::Empty)),
        ("acme/".into(), R::Name(NameError::Empty)),
        (
            "Acme/bot".into(),
            R::Namespace(NameError::Uppercase {
                ch: 'A',
                position: 0,
            }),
        ),
        (
            "acme/\u{430}bot".into(),
            R::Name(NameError::BadChar {
                ch: '\u{430}',
                position: 0,
            }),
        ),
        (
            "acme/bot\0".into(),
            R::Name(NameError::BadChar {
                ch: '\0',
                position: 3,
            }),
        ),
        (
            "../bot".into(),
            R::Namespace(NameError::LeadingSeparator { ch: '.' }),
        ),
        ("acme/bot@".into(), R::Selector(S::Empty)),
        // The repository part is checked before the selector.
        (
            "Acme/bot@".into(),
            R::Namespace(NameError::Uppercase {
                ch: 'A',
                position: 0,
            }),
        ),
        (
            "acme/bot@@1".into(),
            R::Selector(S::Range {
                input: "@1".into(),
                message: String::new(),
            }),
        ),
        (
            "acme/bot@sha256:abc".into(),
            R::Selector(S::Digest(DigestError::Hex)),
        ),
        (
            format!("acme/bot@sha256:{}", HEX.to_uppercase()),
            R::Selector(S::Digest(DigestError::Hex)),
        ),
        (
            "acme/bot@Prod".into(),
            R::Selector(S::Alias(NameError::Uppercase {
                ch: 'P',
                position: 0,
            })),
        ),
        (
            "acme/bot@v1.2.3".into(),
            R::Selector(S::Alias(NameError::AliasLooksLikeVersion("v1.2.3".into()))),
        ),
        (
            "acme/bot@prod/x".into(),
            R::Selector(S::Alias(NameError::BadChar {
                ch: '/',
                position: 4,
            })),
        ),
        (
            "acme/bot@sha512:00".into(),
            R::Selector(S::Alias(NameError::BadChar {
                ch: ':',
                position: 6,
            })),
        ),
        (
            format!("acme/bot@{}", "1".repeat(257)),
            R::Selector(S::TooLong { len: 257 }),
        ),
    ];
    for (input, want) in table {
        let got = input.parse::<Reference>();
        match (&got, &want) {
            // Range errors carry semver's message; compare the input only.
            (
                Err(R::Selector(S::Range { input: a, .. })),
                R::Selector(S::Range { input: b, .. }),
            ) => {
                assert_eq!(a, b, "{input:?}")
            }
            _ => assert_eq!(got, Err(want), "{input:?}"),
        }
    }
    for bad_range in ["1.2.3.4", ">=", "^", "1.2.3-", "~>1", ">=1 <2 <3 ||", "-1"] {
        assert_eq!(range_err(&format!("acme/bot@{bad_range}")), bad_range);
    }
}

#[test]
fn selector_serde_is_its_string_form() {
    let s: Selector = serde_json::from_str(r#""^1.4""#).unwrap();
    assert!(matches!(s, Selector::Range(_)));
    assert_eq!(serde_json::to_string(&s).unwrap(), r#""^1.4""#);
    let r: Reference = serde_json::from_str(r#""acme/bot@prod""#).unwrap();
    assert_eq!(r.repository(), "acme/bot");
    assert!(serde_json::from_str::<Reference>(r#""acme/bot@V1""#).is_err());
    let d: Digest = format!("sha256:{HEX}").parse().unwrap();
    let pinned = r.with_selector(Some(Selector::Digest(d)));
    assert_eq!(pinned.to_string(), format!("acme/bot@sha256:{HEX}"));
}

#[test]
fn error_messages_name_the_problem() {
    let e = "acme/bot@>=".parse::<Reference>().unwrap_err().to_string();
    assert!(e.contains(">="), "{e}");
    let e = "acme/a..b".parse::<Reference>().unwrap_err().to_string();
    assert!(e.contains("name") && e.contains("consecutive"), "{e}");
}

/// Found by the `reference` fuzz target (fuzz/): a range under the length limit whose
/// normalised form is over it (`1.2,1.3` displays as `^1.2, ^1.3`) was accepted, and then
/// displayed as a reference that does not parse back. Refused now, with its own error.
#[test]
fn a_range_that_normalises_past_the_limit_is_refused() {
    let crash = "<=1.4.2-rc1l2-r-rcl,1.4.2-r-rc1l51.4.2-rc1.2-rc1l2-r-rcl,1.4.2-r-rc1l51.4.2-rc1.4.2.4.2-rcl,1.4.2-r-rc1ll.4.2-r-rc-1l51.4.2-rc1.4.2.r-rc1r4.2.4.2-rcl,1.4.2-r-r14.2.4.2-rcl,1.4.2-r-rc1ll.4.2-r-rc-1l51.4.2-rc1.4.2.r-rc1r4.2.4.2-rcl,1.4.2-r-r1.4.2-r-rc1r-rc1";
    let many = vec!["1.2.30"; 30].join(","); // semver takes at most 32 comparators
    for input in [crash, many.as_str()] {
        assert!(input.len() <= MAX_SELECTOR_LEN);
        match Selector::parse(input) {
            Err(SelectorError::NormalisedTooLong { input: got, len }) => {
                assert_eq!(got, input);
                assert!(len > MAX_SELECTOR_LEN);
            }
            other => panic!("{input}: {other:?}"),
        }
        let reference = format!("acme/bot@{input}").parse::<Reference>();
        assert!(reference.is_err(), "{reference:?}");
    }
    // A range that still fits once normalised is accepted and round-trips.
    let fits = vec!["1.2"; 30].join(",");
    let selector = Selector::parse(&fits).unwrap();
    let shown = selector.to_string();
    assert!(shown.len() > fits.len() && shown.len() <= MAX_SELECTOR_LEN);
    assert_eq!(Selector::parse(&shown).unwrap(), selector);
}
