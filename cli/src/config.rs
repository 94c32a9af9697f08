//! Where the registry is and how to authenticate: flags, environment, config file, default.
//!
//! Precedence, highest first: `--url`/`--token`, `ADAPTERCTL_URL`/`ADAPTERCTL_TOKEN` (clap
//! reads both into the same field), the config file, the default URL. The config file is
//! `$XDG_CONFIG_HOME/adapterctl/config.toml`, else `~/.config/adapterctl/config.toml`:
//!
//! ```toml
//! url = "https://registry.example.com"
//! token = "…"
//! ```
//!
//! A missing file is fine; a file that is not TOML or has unknown keys is an error.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The contents of `config.toml`.
#[derive(Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub url: Option<String>,
    pub token: Option<String>,
}

impl fmt::Debug for FileConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The settings a command runs with.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    pub url: reqwest::Url,
    pub token: Option<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Environment variables that decide where config and cache live (passed in so that tests
/// do not depend on the process environment).
#[derive(Debug, Clone, Default)]
pub struct Dirs {
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_cache_home: Option<PathBuf>,
}

impl Dirs {
    pub fn from_env() -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            home: var("HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            xdg_cache_home: var("XDG_CACHE_HOME"),
        }
    }

    pub fn config_file(&self) -> Option<PathBuf> {
        let base = self
            .xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))?;
        Some(base.join("adapterctl").join("config.toml"))
    }

    /// `$XDG_CACHE_HOME/adapterctl`, else `~/.cache/adapterctl`.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        let base = self
            .xdg_cache_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".cache")))?;
        Some(base.join("adapterctl"))
    }
}

/// Read the config file; `Ok(default)` when it does not exist.
pub fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: malformed config: {}",
            path.display(),
            e.message().trim()
        )
    })
}

/// Write the config file atomically, readable by its owner only (it holds a token): the
/// directory is created with mode 0700, the file with 0600.
pub fn write_file(path: &Path, config: &FileConfig) -> anyhow::Result<()> {
    let text = toml::to_string(config).context("encoding the config")?;
    adapter_core::private_file::write_private(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Combine the layers. `flag_*` already include the environment (clap's `env`).
pub fn resolve(
    flag_url: Option<&str>,
    flag_token: Option<&str>,
    file: &FileConfig,
) -> anyhow::Result<Settings> {
    let url = flag_url
        .or(file.url.as_deref())
        .unwrap_or(DEFAULT_URL)
        .trim();
    let parsed: reqwest::Url = url
        .parse()
        .with_context(|| format!("invalid registry URL `{url}`"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("invalid registry URL `{url}`: the scheme must be http or https");
    }
    if parsed.cannot_be_a_base() || parsed.host_str().is_none() {
        bail!("invalid registry URL `{url}`: no host");
    }
    let token = flag_token
        .or(file.token.as_deref())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    Ok(Settings { url: parsed, token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(url: Option<&str>, token: Option<&str>) -> FileConfig {
        FileConfig {
            url: url.map(Into::into),
            token: token.map(Into::into),
        }
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let f = file(Some("http://file:1"), Some("filetoken"));
        let s = resolve(Some("http://flag:2"), Some("flagtoken"), &f).unwrap();
        assert_eq!(s.url.as_str(), "http://flag:2/");
        assert_eq!(s.token.as_deref(), Some("flagtoken"));

        let s = resolve(None, None, &f).unwrap();
        assert_eq!(s.url.as_str(), "http://file:1/");
        assert_eq!(s.token.as_deref(), Some("filetoken"));

        let s = resolve(None, None, &FileConfig::default()).unwrap();
        assert_eq!(s.url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(s.token, None);

        // Each key falls back on its own.
        let s = resolve(None, Some("flagtoken"), &file(Some("http://file:1"), None)).unwrap();
        assert_eq!(s.url.as_str(), "http://file:1/");
        assert_eq!(s.token.as_deref(), Some("flagtoken"));
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in ["ftp://x", "not a url", "mailto:a@b", "http://"] {
            assert!(
                resolve(Some(bad), None, &FileConfig::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn empty_token_means_none() {
        let s = resolve(None, Some("  "), &FileConfig::default()).unwrap();
        assert_eq!(s.token, None);
    }

    #[test]
    fn config_file_is_read_and_malformed_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        assert_eq!(read_file(&missing).unwrap(), FileConfig::default());

        let good = dir.path().join("good.toml");
        std::fs::write(&good, "url = \"http://reg:9\"\ntoken = \"t\"\n").unwrap();
        assert_eq!(
            read_file(&good).unwrap(),
            file(Some("http://reg:9"), Some("t"))
        );

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "url = \n").unwrap();
        let e = read_file(&bad).unwrap_err().to_string();
        assert!(e.contains("malformed config"), "{e}");

        let unknown = dir.path().join("unknown.toml");
        std::fs::write(&unknown, "uri = \"http://x\"\n").unwrap();
        let e = read_file(&unknown).unwrap_err().to_string();
        assert!(e.contains("malformed config") && e.contains("uri"), "{e}");
    }

    #[test]
    fn xdg_dirs_win_over_home() {
        let d = Dirs {
            home: Some("/h".into()),
            xdg_config_home: Some("/x".into()),
            xdg_cache_home: None,
        };
        assert_eq!(
            d.config_file().unwrap(),
            Path::new("/x/adapterctl/config.toml")
        );
        assert_eq!(d.cache_dir().unwrap(), Path::new("/h/.cache/adapterctl"));
        assert_eq!(Dirs::default().config_file(), None);
    }

    #[test]
    fn debug_redacts_the_token() {
        let s = resolve(None, Some("secret"), &FileConfig::default()).unwrap();
        assert!(!format!("{s:?}").contains("secret"));
        assert!(!format!("{:?}", file(None, Some("secret"))).contains("secret"));
    }
}
