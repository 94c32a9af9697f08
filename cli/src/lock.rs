//! Lock files: the exact versions a deploy pulled, pinned by manifest digest.
//!
//! TOML, one table per repository (`adapterctl pull --lock FILE` adds or replaces the entry;
//! `--locked FILE` pulls exactly what it records):
//!
//! ```toml
//! ["acme/bot"]
//! kind = "adapter"
//! version = "1.4.2"
//! manifest_digest = "sha256:…"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use adapter_core::digest::Digest;
use adapter_core::manifest::Kind;
use adapter_core::reference::Reference;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::cache::write_atomic;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    pub kind: Kind,
    pub version: String,
    pub manifest_digest: Digest,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockFile {
    /// By `ns/name`.
    pub entries: BTreeMap<String, LockEntry>,
}

const HEADER: &str = "# adapterctl lock file: exact versions by manifest digest. \
Written by `adapterctl pull --lock`, read by `adapterctl pull --locked`.\n\n";

impl LockFile {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let entries: BTreeMap<String, LockEntry> =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message().trim()))?;
        for key in entries.keys() {
            let r: Reference = key
                .parse()
                .with_context(|| format!("lock entry `{}`", key.escape_debug()))?;
            if r.selector.is_some() {
                bail!("lock entry `{key}`: keys are `namespace/name` without `@`");
            }
        }
        Ok(Self { entries })
    }

    /// Read `path`; a missing file is an empty lock when `missing_ok`.
    pub fn read(path: &Path, missing_ok: bool) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text)
                .with_context(|| format!("{}: malformed lock file", path.display())),
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading lock file {}", path.display())),
        }
    }

    pub fn to_text(&self) -> String {
        let body = toml::to_string(&self.entries).expect("lock entries serialise");
        format!("{HEADER}{body}")
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        write_atomic(path, self.to_text().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str, d: &[u8]) -> LockEntry {
        LockEntry {
            kind: Kind::Adapter,
            version: v.into(),
            manifest_digest: Digest::of_bytes(d),
        }
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adapters.lock");
        let mut lock = LockFile::read(&path, true).unwrap();
        assert!(lock.entries.is_empty());
        lock.entries.insert("acme/bot".into(), entry("1.4.2", b"a"));
        lock.entries.insert(
            "acme/base".into(),
            LockEntry {
                kind: Kind::Model,
                ..entry("2.0.0-rc.1+b5", b"b")
            },
        );
        lock.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[\"acme/bot\"]"), "{text}");
        assert!(text.contains("kind = \"model\""), "{text}");
        assert_eq!(LockFile::read(&path, false).unwrap(), lock);
    }

    #[test]
    fn refuses_malformed_locks() {
        assert!(LockFile::read(Path::new("/nonexistent/lock"), false).is_err());
        for bad in [
            "[\"acme/bot\"]\nkind = \"adapter\"\nversion = \"1.0.0\"\n",
            "[\"acme/bot\"]\nkind = \"gguf\"\nversion = \"1.0.0\"\nmanifest_digest = \"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
            "[\"../x\"]\nkind = \"adapter\"\nversion = \"1.0.0\"\nmanifest_digest = \"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
            "[\"acme/bot@1.0.0\"]\nkind = \"adapter\"\nversion = \"1.0.0\"\nmanifest_digest = \"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n",
            "[\"acme/bot\"]\nkind = \"adapter\"\nversion = \"1.0.0\"\nmanifest_digest = \"sha256:00\"\n",
            "not toml at all [",
        ] {
            assert!(LockFile::parse(bad).is_err(), "{bad}");
        }
    }
}
