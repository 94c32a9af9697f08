//! Repository names (`acme`, `llama-3.1-8b`) and alias names (`prod`, `canary-eu`).
//!
//! A [`Name`] is one or more runs of `[a-z0-9]` joined by single separators `.`, `_` or
//! `-`: no leading, trailing or doubled separator, 1 to [`MAX_NAME_LEN`] characters. Only
//! ASCII is accepted, so a name can never contain a path separator, a `..` segment, a NUL
//! or a Unicode look-alike, and it is safe as a path segment, a URL segment and a DB key.
//!
//! An [`AliasName`] has the same grammar but must also start with a letter, so that it can
//! never be mistaken for a version or a version range, and may not be `v` followed by a
//! digit (`v1.2.3` is refused: someone typing it means a version, not an alias).
//!
//! Both validate on construction and on serde deserialisation; both serialise as strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted name or alias, in characters (= bytes: names are ASCII).
pub const MAX_NAME_LEN: usize = 128;

/// Why a string is not a valid name. Positions are 0-based character indexes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is {len} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong { len: usize },
    #[error("uppercase `{ch}` at position {position}: names are lowercase")]
    Uppercase { ch: char, position: usize },
    #[error(
        "character {ch:?} at position {position} is not allowed: names use a-z, 0-9 and the separators `.`, `_`, `-`"
    )]
    BadChar { ch: char, position: usize },
    #[error("name starts with the separator `{ch}`")]
    LeadingSeparator { ch: char },
    #[error("name ends with the separator `{ch}`")]
    TrailingSeparator { ch: char },
    #[error("consecutive separators at position {position}")]
    ConsecutiveSeparators { position: usize },
    #[error("an alias must start with a letter, not {ch:?}")]
    AliasMustStartWithLetter { ch: char },
    #[error("alias `{0}` looks like a version (`v` followed by a digit)")]
    AliasLooksLikeVersion(String),
}

fn is_separator(c: char) -> bool {
    matches!(c, '.' | '_' | '-')
}

/// Check the shared grammar of names and aliases.
fn validate(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    let mut prev_sep = false;
    let mut count = 0usize;
    for (position, ch) in s.chars().enumerate() {
        count = position + 1;
        if ch.is_ascii_uppercase() {
            return Err(NameError::Uppercase { ch, position });
        }
        if is_separator(ch) {
            if position == 0 {
                return Err(NameError::LeadingSeparator { ch });
            }
            if prev_sep {
                return Err(NameError::ConsecutiveSeparators { position });
            }
            prev_sep = true;
        } else if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            prev_sep = false;
        } else {
            return Err(NameError::BadChar { ch, position });
        }
    }
    if prev_sep {
        let ch = s.chars().next_back().unwrap_or('-');
        return Err(NameError::TrailingSeparator { ch });
    }
    if count > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: count });
    }
    Ok(())
}

/// A validated namespace or repository name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// The grammar as a regular expression (ECMA-262 and Rust `regex` alike; ASCII classes
    /// only), for the OpenAPI spec; at most [`MAX_NAME_LEN`] characters besides.
    pub const PATTERN: &'static str = "^[a-z0-9]+([._-][a-z0-9]+)*$";

    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        validate(&s)?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated alias name: a [`Name`] that starts with a letter and is not `v<digit>…`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AliasName(String);

impl AliasName {
    /// [`Name::PATTERN`] starting with a letter, and not `v` followed by a digit (no
    /// look-ahead, so that every regex engine reads it alike).
    pub const PATTERN: &'static str = "^(v|[a-uw-z][a-z0-9]*|v[a-z][a-z0-9]*)([._-][a-z0-9]+)*$";

    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        validate(&s)?;
        let mut chars = s.chars();
        let first = chars.next().unwrap_or('?');
        if !first.is_ascii_lowercase() {
            return Err(NameError::AliasMustStartWithLetter { ch: first });
        }
        if first == 'v' && chars.next().is_some_and(|c| c.is_ascii_digit()) {
            return Err(NameError::AliasLooksLikeVersion(s));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype {
    ($t:ident) => {
        impl FromStr for $t {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = NameError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$t> for String {
            fn from(n: $t) -> String {
                n.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(Name);
string_newtype!(AliasName);

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> NameError {
        Name::new(s).unwrap_err()
    }

    #[test]
    fn good_names() {
        for s in [
            "a",
            "acme",
            "llama-3.1-8b",
            "a_b.c-d",
            "0",
            "9lives",
            "x".repeat(128).as_str(),
        ] {
            assert_eq!(Name::new(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn hostile_names_get_the_specific_error() {
        use NameError::*;
        assert_eq!(err(""), Empty);
        assert_eq!(err("../x"), LeadingSeparator { ch: '.' });
        assert_eq!(
            err("a/b"),
            BadChar {
                ch: '/',
                position: 1
            }
        );
        assert_eq!(
            err("A"),
            Uppercase {
                ch: 'A',
                position: 0
            }
        );
        assert_eq!(
            err("acMe"),
            Uppercase {
                ch: 'M',
                position: 2
            }
        );
        // Cyrillic small a (U+0430) looks exactly like `a`.
        assert_eq!(
            err("\u{430}dapter"),
            BadChar {
                ch: '\u{430}',
                position: 0
            }
        );
        // Fullwidth `ａ` (U+FF41); position counts characters, not bytes.
        assert_eq!(
            err("x\u{ff41}"),
            BadChar {
                ch: '\u{ff41}',
                position: 1
            }
        );
        assert_eq!(
            err("é"),
            BadChar {
                ch: 'é',
                position: 0
            }
        );
        assert_eq!(
            err("a\0b"),
            BadChar {
                ch: '\0',
                position: 1
            }
        );
        assert_eq!(
            err("a b"),
            BadChar {
                ch: ' ',
                position: 1
            }
        );
        assert_eq!(
            err("a@b"),
            BadChar {
                ch: '@',
                position: 1
            }
        );
        assert_eq!(err(&"a".repeat(129)), TooLong { len: 129 });
        assert_eq!(err("a..b"), ConsecutiveSeparators { position: 2 });
        assert_eq!(err("a__b"), ConsecutiveSeparators { position: 2 });
        assert_eq!(err("a-.b"), ConsecutiveSeparators { position: 2 });
        assert_eq!(err("-a"), LeadingSeparator { ch: '-' });
        assert_eq!(err("a-"), TrailingSeparator { ch: '-' });
        assert_eq!(err("a."), TrailingSeparator { ch: '.' });
        assert_eq!(err("."), LeadingSeparator { ch: '.' });
    }

    #[test]
    fn aliases() {
        for s in ["prod", "staging", "canary-eu", "v", "vnext", "latest", "a1"] {
            assert_eq!(AliasName::new(s).unwrap().as_str(), s);
        }
        assert_eq!(
            AliasName::new("1prod").unwrap_err(),
            NameError::AliasMustStartWithLetter { ch: '1' }
        );
        assert_eq!(
            AliasName::new("v1.2.3").unwrap_err(),
            NameError::AliasLooksLikeVersion("v1.2.3".into())
        );
        assert_eq!(
            AliasName::new("Prod").unwrap_err(),
            NameError::Uppercase {
                ch: 'P',
                position: 0
            }
        );
        assert_eq!(
            AliasName::new("prod-").unwrap_err(),
            NameError::TrailingSeparator { ch: '-' }
        );
    }

    #[test]
    fn serde_validates() {
        let n: Name = serde_json::from_str(r#""acme""#).unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), r#""acme""#);
        assert!(serde_json::from_str::<Name>(r#""../etc""#).is_err());
        assert!(serde_json::from_str::<Name>(r#""ACME""#).is_err());
        assert!(serde_json::from_str::<AliasName>(r#""1x""#).is_err());
        let a: AliasName = serde_json::from_str(r#""prod""#).unwrap();
        assert_eq!(a.to_string(), "prod");
    }
}
