//! The local side of `push`: what the directory holds (its kind, its top-level files, its
//! model's headers) and the files' digests, through the digest cache.

use std::path::{Path, PathBuf};

use adapter_core::digest::Digest;
use adapter_core::manifest::{FilePath, Kind};
use adapter_core::model::{self, Hashing, ModelDir, ModelError};
use adapter_core::peft;
use anyhow::anyhow;

use crate::cache::{DigestCache, Lookup};
use crate::exit::{Failure, PROBLEMS};
use crate::progress::Bars;
use crate::upload::{self, Pending};

/// One local file to push.
#[derive(Debug, Clone)]
pub(super) struct LocalFile {
    pub path: FilePath,
    pub abs: PathBuf,
    pub size: u64,
    pub digest: Digest,
}

pub(super) fn detect_kind(dir: &Path) -> Result<Kind, Failure> {
    model::kind_of(|f| dir.join(f).is_file()).ok_or_else(|| {
        Failure::unreadable(anyhow!(
            "{}: neither an adapter ({}) nor a model ({}, {} or {})",
            dir.display(),
            peft::CONFIG_FILE,
            model::CONFIG_FILE,
            model::SINGLE_FILE,
            model::INDEX_FILE
        ))
    })
}

pub(super) fn open_model(dir: &Path, what: &str) -> Result<ModelDir, Failure> {
    ModelDir::open(dir, Hashing::HeadersOnly).map_err(|e| {
        let code = match e {
            ModelError::Io { .. } | ModelError::NoWeights(..) => crate::exit::UNREADABLE,
            _ => PROBLEMS,
        };
        Failure::new(
            code,
            anyhow::Error::new(e).context(format!("reading {what} {}", dir.display())),
        )
    })
}

#[derive(Debug, Default)]
pub(super) struct Listing {
    pub files: Vec<(FilePath, PathBuf)>,
    pub skipped_dirs: Vec<String>,
}

/// Regular top-level files (symlinks to regular files included), without dotfiles. Pickle
/// checkpoints are refused.
pub(super) fn list_top_level(dir: &Path) -> Result<Listing, Failure> {
    let read = |e: std::io::Error| Failure::unreadable(anyhow!("{}: {e}", dir.display()));
    let mut out = Listing::default();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(Failure::unreadable(anyhow!(
                "{}: file name {:?} is not UTF-8",
                dir.display(),
                entry.file_name()
            )));
        };
        if name.starts_with('.') {
            continue;
        }
        let meta = std::fs::metadata(entry.path()).map_err(read)?;
        if meta.is_dir() {
            out.skipped_dirs.push(name.to_owned());
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        if model::is_pickle(name) {
            return Err(Failure::new(
                PROBLEMS,
                anyhow!(
                    "{}: `{name}` is a pickle checkpoint, which is never pushed (loading one can \
                     run arbitrary code); convert it to safetensors or move it out of the directory",
                    dir.display()
                ),
            ));
        }
        let path = FilePath::new(name).map_err(|e| {
            Failure::unreadable(anyhow!("{}: `{}`: {e}", dir.display(), name.escape_debug()))
        })?;
        out.files.push((path, entry.path()));
    }
    out.files.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    out.skipped_dirs.sort();
    Ok(out)
}

async fn hash_all(
    cache: &mut DigestCache,
    files: &[(FilePath, PathBuf)],
    bars: &Bars,
) -> Result<Vec<LocalFile>, Failure> {
    let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
    let hashed = hash_paths(cache, &paths, bars).await?;
    Ok(files
        .iter()
        .zip(hashed)
        .map(|((path, abs), (digest, size))| LocalFile {
            path: path.clone(),
            abs: abs.clone(),
            size,
            digest,
        })
        .collect())
}

/// A file to push: its digest known (cached, or hashed now because it is small enough for
/// one `PUT`), or pending (hashed while it uploads).
pub(super) enum Planned {
    Known(LocalFile),
    Pending(Pending),
}

pub(super) async fn plan(
    cache: &mut DigestCache,
    files: &[(FilePath, PathBuf)],
    bars: &Bars,
) -> Result<Vec<Planned>, Failure> {
    let mut small: Vec<(FilePath, PathBuf)> = Vec::new();
    let mut out: Vec<Option<Planned>> = Vec::with_capacity(files.len());
    for (path, abs) in files {
        let looked = cache
            .lookup(abs)
            .map_err(|e| Failure::unreadable(anyhow!("{}: {e}", abs.display())))?;
        out.push(match looked {
            Lookup::Hit(digest, size) => Some(Planned::Known(LocalFile {
                path: path.clone(),
                abs: abs.clone(),
                size,
                digest,
            })),
            Lookup::Miss(miss) if miss.before.size > upload::MONOLITHIC_MAX => {
                Some(Planned::Pending(Pending {
                    label: path.to_string(),
                    miss,
                }))
            }
            Lookup::Miss(_) => {
                small.push((path.clone(), abs.clone()));
                None
            }
        });
    }
    let mut hashed = hash_all(cache, &small, bars).await?.into_iter();
    Ok(out
        .into_iter()
        .map(|p| p.unwrap_or_else(|| Planned::Known(hashed.next().expect("hashed in order"))))
        .collect())
}

/// Digest and size of each path, through the cache, on a blocking thread.
pub(super) async fn hash_paths(
    cache: &mut DigestCache,
    paths: &[PathBuf],
    bars: &Bars,
) -> Result<Vec<(Digest, u64)>, Failure> {
    let total: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = bars.bytes("hashing", total);
    let mut owned = std::mem::take(cache);
    let paths = paths.to_vec();
    let b = bar.clone();
    let (owned, result) = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(paths.len());
        for p in &paths {
            match owned.digest(p, |n| b.inc(n)) {
                Ok(d) => out.push(d),
                Err(e) => return (owned, Err(anyhow!("hashing {}: {e}", p.display()))),
            }
        }
        (owned, Ok(out))
    })
    .await
    .map_err(|e| Failure::unreadable(anyhow!("hashing thread failed: {e}")))?;
    *cache = owned;
    bar.finish_and_clear();
    result.map_err(Failure::unreadable)
}

/// The first `len` bytes of a file (a safetensors header: bounded by the header limit).
pub(super) fn read_prefix(path: &Path, len: u64) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| Failure::unreadable(anyhow!("{}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(len)
        .read_to_end(&mut buf)
        .map_err(|e| Failure::unreadable(anyhow!("{}: {e}", path.display())))?;
    if buf.len() as u64 != len {
        return Err(Failure::unreadable(anyhow!(
            "{}: shorter than its header",
            path.display()
        )));
    }
    Ok(buf)
}
