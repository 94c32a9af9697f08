//! Paths of files inside a version: relative, `/`-separated, safe to join onto any
//! destination directory on any operating system.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted file path, in bytes of UTF-8.
pub const MAX_PATH_LEN: usize = 1024;

/// Why a string is not a valid file path. Positions are byte offsets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilePathError {
    #[error("file path is empty")]
    Empty,
    #[error("file path is {len} bytes long; the limit is {MAX_PATH_LEN}")]
    TooLong { len: usize },
    #[error("file path is not UTF-8")]
    NotUtf8,
    #[error("file path must be relative, not start with `/`")]
    Absolute,
    #[error("file path starts with a drive letter (`{0}:`)")]
    DrivePrefix(char),
    #[error("backslash at byte {position}: file paths use `/` as the only separator")]
    Backslash { position: usize },
    #[error("control character {ch:?} at byte {position}")]
    ControlChar { ch: char, position: usize },
    #[error("empty segment at byte {position} (`//` or a trailing `/`)")]
    EmptySegment { position: usize },
    #[error("`.` segment at byte {position}")]
    DotSegment { position: usize },
    #[error("`..` segment at byte {position}")]
    DotDotSegment { position: usize },
}

/// A validated relative file path: `/`-separated segments, none empty, `.` or `..`; no
/// backslash, NUL or other control character; no leading `/` or drive letter; at most
/// [`MAX_PATH_LEN`] bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FilePath(String);

impl FilePath {
    pub fn new(s: impl Into<String>) -> Result<Self, FilePathError> {
        let s = s.into();
        validate(&s)?;
        Ok(Self(s))
    }

    /// Validate raw bytes (a name read from an archive or a file system).
    pub fn from_utf8(bytes: &[u8]) -> Result<Self, FilePathError> {
        let s = std::str::from_utf8(bytes).map_err(|_| FilePathError::NotUtf8)?;
        Self::new(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Collision key on case-insensitive file systems (ASCII case folded).
    pub fn case_key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

fn validate(s: &str) -> Result<(), FilePathError> {
    if s.is_empty() {
        return Err(FilePathError::Empty);
    }
    if s.len() > MAX_PATH_LEN {
        return Err(FilePathError::TooLong { len: s.len() });
    }
    if s.starts_with('/') {
        return Err(FilePathError::Absolute);
    }
    let b = s.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(FilePathError::DrivePrefix(char::from(b[0])));
    }
    for (position, ch) in s.char_indices() {
        if ch == '\\' {
            return Err(FilePathError::Backslash { position });
        }
        if ch.is_control() {
            return Err(FilePathError::ControlChar { ch, position });
        }
    }
    let mut position = 0;
    for segment in s.split('/') {
        match segment {
            "" => return Err(FilePathError::EmptySegment { position }),
            "." => return Err(FilePathError::DotSegment { position }),
            ".." => return Err(FilePathError::DotDotSegment { position }),
            _ => {}
        }
        position += segment.len() + 1;
    }
    Ok(())
}

impl FromStr for FilePath {
    type Err = FilePathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for FilePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Serialize for FilePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FilePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> FilePathError {
        FilePath::new(s).unwrap_err()
    }

    #[test]
    fn good_paths() {
        for s in [
            "adapter_model.safetensors",
            "a/b/c.json",
            ".gitattributes",
            "a/..b/c..",
            "dir.with.dots/...",
            "unicode/é名.txt",
            "x/a:b",
        ] {
            assert_eq!(FilePath::new(s).unwrap().as_str(), s);
        }
        assert!(FilePath::new("x".repeat(MAX_PATH_LEN)).is_ok());
    }

    #[test]
    fn hostile_paths_get_the_specific_error() {
        use FilePathError::*;
        assert_eq!(err(""), Empty);
        assert_eq!(err("../etc/passwd"), DotDotSegment { position: 0 });
        assert_eq!(err("a/../../b"), DotDotSegment { position: 2 });
        assert_eq!(err("a/.."), DotDotSegment { position: 2 });
        assert_eq!(err("a//b"), EmptySegment { position: 2 });
        assert_eq!(err("a/"), EmptySegment { position: 2 });
        assert_eq!(err("./a"), DotSegment { position: 0 });
        assert_eq!(err("a/./b"), DotSegment { position: 2 });
        assert_eq!(err("C:\\x"), DrivePrefix('C'));
        assert_eq!(err("c:x"), DrivePrefix('c'));
        assert_eq!(err("a\\b"), Backslash { position: 1 });
        assert_eq!(err("..\\..\\x"), Backslash { position: 2 });
        assert_eq!(err("/abs"), Absolute);
        assert_eq!(
            err("a\0b"),
            ControlChar {
                ch: '\0',
                position: 1
            }
        );
        assert_eq!(
            err("a\nb"),
            ControlChar {
                ch: '\n',
                position: 1
            }
        );
        assert_eq!(
            err("é\u{7f}"),
            ControlChar {
                ch: '\u{7f}',
                position: 2
            }
        );
        assert_eq!(
            err("a\u{85}"),
            ControlChar {
                ch: '\u{85}',
                position: 1
            }
        );
        assert_eq!(err(&"x".repeat(MAX_PATH_LEN + 1)), TooLong { len: 1025 });
        assert_eq!(FilePath::from_utf8(b"a\xffb").unwrap_err(), NotUtf8);
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<FilePath>(r#""../x""#).is_err());
        let p: FilePath = serde_json::from_str(r#""a/b""#).unwrap();
        assert_eq!(p.segments().collect::<Vec<_>>(), ["a", "b"]);
    }
}
