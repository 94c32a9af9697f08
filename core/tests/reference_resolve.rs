//! Resolution table: which version each selector picks from one repository.

use std::collections::HashMap;

use adapter_core::digest::Digest;
use adapter_core::name::AliasName;
use adapter_core::reference::{NoAliases, ResolveError, Selector, VersionRecord, resolve};
use semver::{Version, VersionReq};

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn digest_of(version: &str) -> Digest {
    Digest::of_bytes(version.as_bytes())
}

/// The repository every case resolves against (deliberately not in version order).
fn repo() -> Vec<VersionRecord> {
    [
        ("1.2.0", false),
        ("0.9.0", false),
        ("1.4.2-rc.1", false),
        ("1.0.0", false),
        ("1.4.1", false),
        ("1.5.0", true),
        ("2.0.0-beta.1", false),
        ("3.0.0", true),
    ]
    .into_iter()
    .map(|(s, yanked)| VersionRecord {
        version: v(s),
        manifest_digest: digest_of(s),
        yanked,
    })
    .collect()
}

fn aliases() -> HashMap<AliasName, Version> {
    [
        ("prod", "1.2.0"),
        ("staging", "1.5.0"),
        ("canary", "2.0.0-beta.1"),
        ("ghost", "9.9.9"),
    ]
    .into_iter()
    .map(|(a, t)| (a.parse().unwrap(), v(t)))
    .collect()
}

enum Want {
    /// Resolved version and whether it is flagged yanked.
    Ok(&'static str, bool),
    NotFound,
    /// Counts: yanked, pre-release.
    NoMatch(usize, usize),
    UnknownAlias,
    AliasTargetMissing(&'static str),
    UnknownDigest,
}

fn check(selector: Option<&str>, want: Want) {
    let sel: Option<Selector> = selector.map(|s| s.parse().unwrap());
    let versions = repo();
    let got = resolve(sel.as_ref(), &versions, &aliases());
    let label = selector.unwrap_or("(none)");
    match (want, got) {
        (Want::Ok(version, yanked), Ok(res)) => {
            assert_eq!(res.version, v(version), "{label}");
            assert_eq!(res.yanked, yanked, "{label}: yanked flag");
            assert_eq!(res.manifest_digest, digest_of(version), "{label}: digest");
        }
        (Want::NotFound, Err(ResolveError::VersionNotFound { total, .. })) => {
            assert_eq!(total, 8, "{label}")
        }
        (
            Want::NoMatch(want_yanked, want_pre),
            Err(ResolveError::NoMatch {
                requirement,
                total,
                yanked,
                prerelease,
            }),
        ) => {
            assert_eq!(total, 8, "{label}");
            assert_eq!((yanked, prerelease), (want_yanked, want_pre), "{label}");
            match &sel {
                Some(Selector::Range(r)) => assert_eq!(requirement.as_ref(), Some(r)),
                _ => assert_eq!(requirement, None::<VersionReq>),
            }
        }
        (Want::UnknownAlias, Err(ResolveError::UnknownAlias { alias })) => {
            assert_eq!(alias.as_str(), label)
        }
        (Want::AliasTargetMissing(t), Err(ResolveError::AliasTargetMissing { version, .. })) => {
            assert_eq!(version, v(t), "{label}")
        }
        (Want::UnknownDigest, Err(ResolveError::UnknownDigest { .. })) => {}
        (_, got) => panic!("{label}: unexpected {got:?}"),
    }
}

#[test]
fn resolution_table() {
    let yanked_digest = digest_of("1.5.0").to_string();
    let rc_digest = digest_of("1.4.2-rc.1").to_string();
    let unknown_digest = digest_of("nope").to_string();
    let table: Vec<(Option<&str>, Want)> = vec![
        // No selector: highest stable and unyanked (not 1.5.0 yanked, not 2.0.0-beta.1, not 3.0.0).
        (None, Want::Ok("1.4.1", false)),
        // Exact versions: found even when yanked or a pre-release.
        (Some("1.2.0"), Want::Ok("1.2.0", false)),
        (Some("1.5.0"), Want::Ok("1.5.0", true)),
        (Some("3.0.0"), Want::Ok("3.0.0", true)),
        (Some("1.4.2-rc.1"), Want::Ok("1.4.2-rc.1", false)),
        (Some("2.0.0-beta.1"), Want::Ok("2.0.0-beta.1", false)),
        (Some("1.9.9"), Want::NotFound),
        (Some("1.2.0+other"), Want::NotFound),
        // Ranges: highest match, yanked and (unnamed) pre-releases excluded.
        (Some("^1"), Want::Ok("1.4.1", false)),
        (Some("^1.2"), Want::Ok("1.4.1", false)),
        (Some("1.4"), Want::Ok("1.4.1", false)),
        (Some("~1.2"), Want::Ok("1.2.0", false)),
        (Some("*"), Want::Ok("1.4.1", false)),
        (Some("<1"), Want::Ok("0.9.0", false)),
        (Some(">=1.2, <2.0.0-0"), Want::Ok("1.4.1", false)),
        (Some(">=1, <2"), Want::Ok("1.4.1", false)),
        (Some("=1.0.0"), Want::Ok("1.0.0", false)),
        // A requirement naming a pre-release admits pre-releases of that release only.
        (Some(">=1.4.2-rc.0"), Want::Ok("1.4.2-rc.1", false)),
        (Some("~1.4.2-rc.0"), Want::Ok("1.4.2-rc.1", false)),
        (Some(">=2.0.0-alpha"), Want::Ok("2.0.0-beta.1", false)),
        // No match, with the counts of what was excluded.
        (Some("^1.5"), Want::NoMatch(1, 0)),
        (Some("=1.5.0"), Want::NoMatch(1, 0)),
        (Some("^3"), Want::NoMatch(1, 0)),
        (Some("^2"), Want::NoMatch(0, 1)),
        (Some(">=4"), Want::NoMatch(0, 0)),
        // Aliases: target, then as exact.
        (Some("prod"), Want::Ok("1.2.0", false)),
        (Some("staging"), Want::Ok("1.5.0", true)),
        (Some("canary"), Want::Ok("2.0.0-beta.1", false)),
        (Some("ghost"), Want::AliasTargetMissing("9.9.9")),
        (Some("nope"), Want::UnknownAlias),
        // Digests: even when yanked.
        (Some(yanked_digest.as_str()), Want::Ok("1.5.0", true)),
        (Some(rc_digest.as_str()), Want::Ok("1.4.2-rc.1", false)),
        (Some(unknown_digest.as_str()), Want::UnknownDigest),
    ];
    for (selector, want) in table {
        check(selector, want);
    }
}

#[test]
fn latest_with_nothing_stable_reports_why() {
    let none = resolve(None, &[], &NoAliases).unwrap_err();
    assert_eq!(
        none,
        ResolveError::NoMatch {
            requirement: None,
            total: 0,
            yanked: 0,
            prerelease: 0
        }
    );
    let versions: Vec<VersionRecord> = repo()
        .into_iter()
        .filter(|r| r.yanked || !r.version.pre.is_empty())
        .collect();
    let err = resolve(None, &versions, &NoAliases).unwrap_err();
    assert_eq!(
        err,
        ResolveError::NoMatch {
            requirement: None,
            total: 4,
            yanked: 2,
            prerelease: 2
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("4 versions exist")
            && msg.contains("2 excluded as yanked")
            && msg.contains("2 excluded as pre-release"),
        "{msg}"
    );
}

#[test]
fn order_of_records_does_not_matter() {
    let mut versions = repo();
    let forward = resolve(None, &versions, &NoAliases).unwrap();
    versions.reverse();
    assert_eq!(resolve(None, &versions, &NoAliases).unwrap(), forward);
    let req: Selector = "^1".parse().unwrap();
    let a = resolve(Some(&req), &versions, &NoAliases).unwrap();
    versions.sort_by_key(|r| r.manifest_digest);
    assert_eq!(resolve(Some(&req), &versions, &NoAliases).unwrap(), a);
}

#[test]
fn aliases_can_come_from_a_closure_or_a_trait_object() {
    let lookup = |a: &AliasName| (a.as_str() == "prod").then(|| v("1.0.0"));
    let sel: Selector = "prod".parse().unwrap();
    assert_eq!(
        resolve(Some(&sel), &repo(), &lookup).unwrap().version,
        v("1.0.0")
    );
    let dynamic: &dyn adapter_core::reference::Aliases = &lookup;
    assert_eq!(
        resolve(Some(&sel), &repo(), dynamic).unwrap().version,
        v("1.0.0")
    );
    let other: Selector = "staging".parse().unwrap();
    assert!(matches!(
        resolve(Some(&other), &repo(), &lookup),
        Err(ResolveError::UnknownAlias { .. })
    ));
}

#[test]
fn no_match_message_names_requirement_and_counts() {
    let sel: Selector = "^1.5".parse().unwrap();
    let msg = resolve(Some(&sel), &repo(), &NoAliases)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("^1.5") && msg.contains("8 versions exist"),
        "{msg}"
    );
    assert!(msg.contains("1 excluded as yanked"), "{msg}");
}
