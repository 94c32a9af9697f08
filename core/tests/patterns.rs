//! The regular expressions that the OpenAPI spec gives for names, aliases, digests, versions
//! and ranges (`Name::PATTERN`, …) against the parsers they describe: every string generated
//! from a pattern is accepted (what API fuzzing relies on: a schema-valid request must not be
//! refused), and strings a parser refuses do not match.

use adapter_core::digest::Digest;
use adapter_core::name::{AliasName, MAX_NAME_LEN, Name};
use adapter_core::reference::{MAX_SELECTOR_LEN, RANGE_PATTERN, Selector, VERSION_PATTERN};
use proptest::prelude::*;
use proptest::string::string_regex;
use regex::Regex;

/// Strings that match `pattern` (proptest generates from the pattern without its anchors).
fn generated(pattern: &str) -> impl Strategy<Value = String> {
    let inner = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$'));
    string_regex(inner.expect("anchored")).unwrap()
}

fn matches(pattern: &str, s: &str) -> bool {
    Regex::new(pattern).unwrap().is_match(s)
}

proptest! {
    #[test]
    fn every_name_the_pattern_generates_is_a_name(s in generated(Name::PATTERN)) {
        // Longer strings are refused for their length only (the spec's `maxLength`).
        let parsed = Name::new(s.clone());
        prop_assert!(parsed.is_ok() || s.len() > MAX_NAME_LEN, "{s}: {parsed:?}");
    }

    #[test]
    fn every_alias_the_pattern_generates_is_an_alias(s in generated(AliasName::PATTERN)) {
        let parsed = AliasName::new(s.clone());
        prop_assert!(parsed.is_ok() || s.len() > MAX_NAME_LEN, "{s}: {parsed:?}");
    }

    #[test]
    fn every_digest_the_pattern_generates_parses(s in generated(Digest::PATTERN)) {
        prop_assert!(s.parse::<Digest>().is_ok(), "{s}");
    }

    #[test]
    fn every_version_the_pattern_generates_parses(s in generated(VERSION_PATTERN)) {
        prop_assert!(semver::Version::parse(&s).is_ok(), "{s}");
        if s.len() <= MAX_SELECTOR_LEN {
            prop_assert!(matches!(Selector::parse(&s), Ok(Selector::Version(_))), "{s}");
        }
    }

    #[test]
    fn every_range_the_pattern_generates_is_a_selector(s in generated(RANGE_PATTERN)) {
        prop_assert!(s.len() <= MAX_SELECTOR_LEN);
        let parsed = Selector::parse(&s);
        prop_assert!(
            matches!(parsed, Ok(Selector::Range(_) | Selector::Version(_))),
            "{s}: {parsed:?}"
        );
    }

    #[test]
    fn names_and_aliases_match_exactly_when_they_parse(s in "[a-z0-9._v-]{0,12}") {
        prop_assert_eq!(matches(Name::PATTERN, &s), Name::new(s.clone()).is_ok(), "{}", s);
        prop_assert_eq!(matches(AliasName::PATTERN, &s), AliasName::new(s.clone()).is_ok(), "{}", s);
    }

    #[test]
    fn versions_match_exactly_when_they_parse(s in "[0-9.+a-c-]{0,14}") {
        prop_assert_eq!(matches(VERSION_PATTERN, &s), semver::Version::parse(&s).is_ok(), "{}", s);
    }
}

#[test]
fn refused_strings_do_not_match() {
    for s in ["", "A", "-a", "a-", "a--b", "a/b", "..", "a b", "é", "a\n"] {
        assert!(!matches(Name::PATTERN, s), "{s:?}");
    }
    for s in ["0a", "v1", "v1.2.3", "v0-x", "-a", "Prod"] {
        assert!(!matches(AliasName::PATTERN, s), "{s:?}");
        assert!(AliasName::new(s).is_err(), "{s:?}");
    }
    for s in ["v", "v-1", "va1", "prod", "canary-eu"] {
        assert!(matches(AliasName::PATTERN, s), "{s:?}");
    }
    let hex = "ab".repeat(32);
    for s in [
        hex.clone(),
        format!("sha256:{}", hex.to_uppercase()),
        format!("sha512:{hex}"),
    ] {
        assert!(!matches(Digest::PATTERN, &s), "{s}");
    }
    for s in [
        "1.2", "01.2.3", "1.2.3-01", "1.2.3+", "v1.2.3", " 1.2.3", "1.2.3\n",
    ] {
        assert!(!matches(VERSION_PATTERN, s), "{s:?}");
        assert!(semver::Version::parse(s).is_err(), "{s:?}");
    }
    for s in [
        "1.2", "^1.4", "~1.2.3", ">=1, <2", "*", "1.*", "1.2.*", "=1.2.3",
    ] {
        assert!(matches(RANGE_PATTERN, s), "{s:?}");
    }
}
