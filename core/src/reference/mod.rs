//! References: `namespace/name[@selector]`, e.g. `acme/bot`, `acme/bot@1.4.2`,
//! `acme/bot@^1.4`, `acme/bot@prod`, `acme/bot@sha256:<64 hex>`.
//!
//! A selector string is classified by the first rule that applies (docs/FORMATS.md):
//! 1. it starts with `sha256:` → [`Selector::Digest`] (must then be a valid digest);
//! 2. it parses as an exact semver version (`1.4.2`, `1.4.2-rc.1+build.5`) →
//!    [`Selector::Version`];
//! 3. it starts with an ASCII letter → [`Selector::Alias`] (must then be a valid alias name);
//! 4. otherwise → [`Selector::Range`] (`^1.2`, `~1.2.3`, `>=1, <2`, `1.2`, `1.*`, `*`), an
//!    error if it does not parse as a semver requirement.
//!
//! So `1.2` is a range (`^1.2`), `=1.2.3` is a range that matches one version (and, being a
//! range, skips it when yanked), and `v1.2.3` is an alias name that [`AliasName`] refuses.
//!
//! [`Display`](fmt::Display) writes the normalised form, which parses back to an equal value
//! (`acme/bot@1.2` displays as `acme/bot@^1.2`). Resolution lives in [`resolve`].

mod resolve;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{Digest, DigestError};
use crate::name::{AliasName, Name, NameError};

pub use resolve::{Aliases, NoAliases, Resolution, ResolveError, VersionRecord, resolve};

/// Longest accepted selector, in bytes (a semver version with long pre-release and build
/// parts still fits easily; it bounds the work a hostile string can cause).
pub const MAX_SELECTOR_LEN: usize = 256;

/// An exact semver version (semver.org's grammar, numbers bounded to 19 digits so that they
/// fit `u64`), as a regular expression (ECMA-262 and Rust `regex` alike) for the OpenAPI
/// spec.
pub const VERSION_PATTERN: &str = concat!(
    "^(0|[1-9][0-9]{0,18})\\.(0|[1-9][0-9]{0,18})\\.(0|[1-9][0-9]{0,18})",
    "(-(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?",
    "(\\+[0-9a-zA-Z-]+(\\.[0-9a-zA-Z-]+)*)?$"
);

/// Version ranges as the OpenAPI spec describes them: a subset of what [`Selector::parse`]
/// accepts (no pre-releases, at most 4 comparators, so that the normalised form always fits
/// [`MAX_SELECTOR_LEN`]): `*`, `1.*`, `1.2.*`, or comparators `[op]MAJOR[.MINOR[.PATCH]]`
/// joined by `, `.
pub const RANGE_PATTERN: &str = concat!(
    "^(\\*|(0|[1-9][0-9]{0,18})\\.((0|[1-9][0-9]{0,18})\\.)?\\*|",
    "(=|>=|<=|>|<|~|\\^)?(0|[1-9][0-9]{0,18})(\\.(0|[1-9][0-9]{0,18})){0,2}",
    "(, ?(=|>=|<=|>|<|~|\\^)?(0|[1-9][0-9]{0,18})(\\.(0|[1-9][0-9]{0,18})){0,2}){0,3})$"
);

/// What a reference asks for after the `@`.
#[derive(Clone, PartialEq, Eq)]
pub enum Selector {
    /// One exact version, including pre-release and build metadata.
    Version(semver::Version),
    /// The highest version satisfying a requirement.
    Range(semver::VersionReq),
    /// The version an alias currently points to.
    Alias(AliasName),
    /// The version whose manifest has this digest.
    Digest(Digest),
}

/// Why a selector string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("selector is empty")]
    Empty,
    #[error("selector is {len} bytes long; the limit is {MAX_SELECTOR_LEN}")]
    TooLong { len: usize },
    /// A range whose normalised form (`1.2,1.3` → `^1.2, ^1.3`) is over the limit: accepted,
    /// it would display as a reference that does not parse back.
    #[error("range `{input}` is {len} bytes long once normalised; the limit is {MAX_SELECTOR_LEN}")]
    NormalisedTooLong { input: String, len: usize },
    #[error("invalid digest selector: {0}")]
    Digest(#[from] DigestError),
    #[error("invalid alias selector: {0}")]
    Alias(#[source] NameError),
    #[error("`{input}` is neither a version, an alias, a digest nor a version range: {message}")]
    Range { input: String, message: String },
}

/// Why a reference string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("a reference is `namespace/name[@selector]`; `/` is missing")]
    MissingSlash,
    #[error("a reference has exactly one `/` between namespace and name")]
    TooManySlashes,
    #[error("invalid namespace: {0}")]
    Namespace(#[source] NameError),
    #[error("invalid name: {0}")]
    Name(#[source] NameError),
    #[error("invalid selector after `@`: {0}")]
    Selector(#[from] SelectorError),
}

/// `namespace/name[@selector]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Reference {
    pub namespace: Name,
    pub name: Name,
    pub selector: Option<Selector>,
}

impl Selector {
    /// Classify and parse a selector (the part after `@`) by the rules in the module docs.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        if s.is_empty() {
            return Err(SelectorError::Empty);
        }
        if s.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError::TooLong { len: s.len() });
        }
        if s.starts_with(Digest::PREFIX) {
            return Ok(Self::Digest(s.parse()?));
        }
        if let Ok(v) = semver::Version::parse(s) {
            return Ok(Self::Version(v));
        }
        if s.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return AliasName::new(s)
                .map(Self::Alias)
                .map_err(SelectorError::Alias);
        }
        let req = semver::VersionReq::parse(s).map_err(|e| SelectorError::Range {
            input: s.to_owned(),
            message: e.to_string(),
        })?;
        let len = req.to_string().len();
        if len > MAX_SELECTOR_LEN {
            return Err(SelectorError::NormalisedTooLong {
                input: s.to_owned(),
                len,
            });
        }
        Ok(Self::Range(req))
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => fmt::Display::fmt(v, f),
            Self::Range(r) => fmt::Display::fmt(r, f),
            Self::Alias(a) => fmt::Display::fmt(a, f),
            Self::Digest(d) => fmt::Display::fmt(d, f),
        }
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::Version(_) => "Version",
            Self::Range(_) => "Range",
            Self::Alias(_) => "Alias",
            Self::Digest(_) => "Digest",
        };
        write!(f, "{kind}({self})")
    }
}

impl Reference {
    pub fn new(namespace: Name, name: Name, selector: Option<Selector>) -> Self {
        Self {
            namespace,
            name,
            selector,
        }
    }

    /// The same repository with another selector (or none).
    pub fn with_selector(&self, selector: Option<Selector>) -> Self {
        Self::new(self.namespace.clone(), self.name.clone(), selector)
    }

    /// `namespace/name`, without the selector.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Names cannot contain `@`, so the first `@` ends the repository part.
        let (repo, selector) = match s.split_once('@') {
            Some((repo, sel)) => (repo, Some(sel)),
            None => (s, None),
        };
        let (namespace, name) = repo.split_once('/').ok_or(ReferenceError::MissingSlash)?;
        if name.contains('/') {
            return Err(ReferenceError::TooManySlashes);
        }
        Ok(Self {
            namespace: Name::new(namespace).map_err(ReferenceError::Namespace)?,
            name: Name::new(name).map_err(ReferenceError::Name)?,
            selector: selector.map(Selector::parse).transpose()?,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if let Some(sel) = &self.selector {
            write!(f, "@{sel}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

macro_rules! serde_via_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_via_string!(Selector);
serde_via_string!(Reference);
