//! Resolution: which version of a repository a selector means.
//!
//! Rules (docs/FORMATS.md, "Resolution"):
//! * no selector → the highest version that is neither yanked nor a pre-release;
//! * exact version → that version, even if yanked or a pre-release;
//! * range → the highest matching version that is not yanked; pre-releases match only when
//!   the requirement itself names a pre-release of the same `major.minor.patch` (semver
//!   crate semantics: `1.4.2-rc.1` does not match `>=1.2, <2.0.0-0`);
//! * alias → the version it points to, then as an exact version;
//! * digest → the version whose manifest has that digest, even if yanked.
//!
//! A [`Resolution`] always says whether the chosen version is yanked, so callers can warn.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use super::Selector;
use crate::digest::Digest;
use crate::name::AliasName;

/// One published version of a repository, as resolution needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: Version,
    pub manifest_digest: Digest,
    pub yanked: bool,
}

/// The version a selector resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub version: Version,
    pub manifest_digest: Digest,
    /// The version is yanked: only an exact version, an alias or a digest can select it.
    pub yanked: bool,
}

impl From<&VersionRecord> for Resolution {
    fn from(r: &VersionRecord) -> Self {
        Self {
            version: r.version.clone(),
            manifest_digest: r.manifest_digest,
            yanked: r.yanked,
        }
    }
}

/// Where alias targets come from: a map, a closure, or a store.
pub trait Aliases {
    fn target(&self, alias: &AliasName) -> Option<Version>;
}

impl<F: Fn(&AliasName) -> Option<Version>> Aliases for F {
    fn target(&self, alias: &AliasName) -> Option<Version> {
        self(alias)
    }
}

impl Aliases for HashMap<AliasName, Version> {
    fn target(&self, alias: &AliasName) -> Option<Version> {
        self.get(alias).cloned()
    }
}

impl Aliases for BTreeMap<AliasName, Version> {
    fn target(&self, alias: &AliasName) -> Option<Version> {
        self.get(alias).cloned()
    }
}

/// A repository without aliases.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAliases;

impl Aliases for NoAliases {
    fn target(&self, _: &AliasName) -> Option<Version> {
        None
    }
}

/// Why a selector selected nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("version {version} does not exist ({total} versions exist)")]
    VersionNotFound { version: Version, total: usize },
    #[error("{}", no_match_message(.requirement.as_ref(), *.total, *.yanked, *.prerelease))]
    NoMatch {
        /// `None`: no selector was given (the latest stable version was asked for).
        requirement: Option<VersionReq>,
        /// Versions in the repository.
        total: usize,
        /// Versions that satisfy the requirement but are yanked.
        yanked: usize,
        /// Pre-release versions left out: with no selector, every pre-release that is not
        /// yanked; with a range, those whose release number (without the pre-release part)
        /// satisfies the requirement.
        prerelease: usize,
    },
    #[error("unknown alias `{alias}`")]
    UnknownAlias { alias: AliasName },
    #[error("alias `{alias}` points to version {version}, which does not exist")]
    AliasTargetMissing { alias: AliasName, version: Version },
    #[error("no version has the manifest digest {digest}")]
    UnknownDigest { digest: Digest },
}

fn no_match_message(req: Option<&VersionReq>, total: usize, yanked: usize, pre: usize) -> String {
    let what = match req {
        Some(r) => format!("no version matches `{r}`"),
        None => "no stable, unyanked version exists".to_owned(),
    };
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    format!(
        "{what}: {total} version{} exist, {yanked} excluded as yanked, {pre} excluded as pre-release",
        plural(total)
    )
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.version, self.manifest_digest)?;
        if self.yanked {
            f.write_str(" [yanked]")?;
        }
        Ok(())
    }
}

/// Resolve `selector` against the versions of one repository (in any order).
pub fn resolve<A: Aliases + ?Sized>(
    selector: Option<&Selector>,
    versions: &[VersionRecord],
    aliases: &A,
) -> Result<Resolution, ResolveError> {
    match selector {
        None => latest(versions),
        Some(Selector::Version(v)) => exact(versions, v),
        Some(Selector::Range(req)) => range(versions, req),
        Some(Selector::Alias(alias)) => {
            let version = aliases
                .target(alias)
                .ok_or_else(|| ResolveError::UnknownAlias {
                    alias: alias.clone(),
                })?;
            find(versions, &version).ok_or(ResolveError::AliasTargetMissing {
                alias: alias.clone(),
                version,
            })
        }
        Some(Selector::Digest(d)) => versions
            .iter()
            .find(|r| r.manifest_digest == *d)
            .map(Resolution::from)
            .ok_or(ResolveError::UnknownDigest { digest: *d }),
    }
}

fn find(versions: &[VersionRecord], v: &Version) -> Option<Resolution> {
    versions
        .iter()
        .find(|r| r.version == *v)
        .map(Resolution::from)
}

fn exact(versions: &[VersionRecord], v: &Version) -> Result<Resolution, ResolveError> {
    find(versions, v).ok_or_else(|| ResolveError::VersionNotFound {
        version: v.clone(),
        total: versions.len(),
    })
}

fn highest<'a>(candidates: impl Iterator<Item = &'a VersionRecord>) -> Option<&'a VersionRecord> {
    candidates.max_by(|a, b| a.version.cmp(&b.version))
}

fn latest(versions: &[VersionRecord]) -> Result<Resolution, ResolveError> {
    highest(
        versions
            .iter()
            .filter(|r| !r.yanked && r.version.pre.is_empty()),
    )
    .map(Resolution::from)
    .ok_or_else(|| ResolveError::NoMatch {
        requirement: None,
        total: versions.len(),
        yanked: versions.iter().filter(|r| r.yanked).count(),
        prerelease: versions
            .iter()
            .filter(|r| !r.yanked && !r.version.pre.is_empty())
            .count(),
    })
}

fn range(versions: &[VersionRecord], req: &VersionReq) -> Result<Resolution, ResolveError> {
    highest(
        versions
            .iter()
            .filter(|r| !r.yanked && req.matches(&r.version)),
    )
    .map(Resolution::from)
    .ok_or_else(|| ResolveError::NoMatch {
        requirement: Some(req.clone()),
        total: versions.len(),
        yanked: versions
            .iter()
            .filter(|r| r.yanked && req.matches(&r.version))
            .count(),
        prerelease: versions
            .iter()
            .filter(|r| !r.version.pre.is_empty() && !req.matches(&r.version))
            .filter(|r| {
                let mut release = r.version.clone();
                release.pre = semver::Prerelease::EMPTY;
                req.matches(&release)
            })
            .count(),
    })
}
