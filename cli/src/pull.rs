//! `adapterctl pull REF -o DIR [--lock FILE] [--locked FILE] [--force] [--kind K]`: resolve,
//! download in parallel into `.DIR.partial-<digest12>` next to DIR (a re-run resumes; a large
//! file comes in parallel ranges, hashed in order as they land), verify every size and
//! digest, then rename into place. Nothing is placed unless every file verified.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use adapter_core::manifest::{Kind, Manifest};
use adapter_core::reference::{Reference, Selector};
use anyhow::anyhow;
use serde_json::json;

use crate::cache::{DigestCache, Lookup};
use crate::exit::{CONFLICT, Failure, VERIFY};
use crate::fsutil::list_files;
use crate::lock::{LockEntry, LockFile};
use crate::progress::Bars;
use crate::{Ctx, KindArg};

/// Downloads in flight at once.
pub const CONCURRENCY: usize = 4;
/// Bytes gathered before each write to disk.
const WRITE_BUFFER: usize = 4 << 20;

mod download;
mod ranged;

use download::download_all;

/// Arguments of `adapterctl pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `namespace/name[@selector]`: a version, a range (`^1.2`), an alias or `sha256:…`.
    reference: String,
    /// Destination directory.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    out: PathBuf,
    /// Record the pulled version in this lock file (TOML; created or updated).
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Pull exactly the manifest digest this lock file records for the repository.
    #[arg(long, value_name = "FILE")]
    locked: Option<PathBuf>,
    /// Replace a destination that holds other files.
    #[arg(long)]
    force: bool,
    /// Look only in adapters or models (default: adapters, then models).
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
}

#[derive(Debug, Default)]
struct Stats {
    downloaded: AtomicU64,
    reused: AtomicU64,
}

/// Parse a reference typed by the user: a usage error (exit 2) when it is not valid, before
/// any request is made.
pub fn parse_reference(s: &str) -> Result<Reference, Failure> {
    s.parse().map_err(|e| {
        Failure::usage(anyhow!(
            "`{}` is not a valid reference: {e}",
            s.escape_debug()
        ))
    })
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), Failure> {
    let r = parse_reference(&args.reference)?;
    let kind = args.kind.map(Kind::from);
    let Some(dir_name) = args.out.file_name().and_then(|n| n.to_str()) else {
        return Err(Failure::usage(anyhow!(
            "-o `{}` must end in a directory name",
            args.out.display()
        )));
    };
    let locked = match &args.locked {
        Some(path) => {
            if r.selector.is_some() {
                return Err(Failure::usage(anyhow!(
                    "with --locked, name the repository only (`{}`): the lock file decides the version",
                    r.repository()
                )));
            }
            let lock = LockFile::read(path, false).map_err(Failure::unreadable)?;
            let entry = lock.entries.get(&r.repository()).cloned().ok_or_else(|| {
                Failure::usage(anyhow!(
                    "{} has no entry for {}",
                    path.display(),
                    r.repository()
                ))
            })?;
            if kind.is_some_and(|k| k != entry.kind) {
                return Err(Failure::usage(anyhow!(
                    "--kind contradicts the lock file, which records {} as a {}",
                    r.repository(),
                    entry.kind
                )));
            }
            Some(entry)
        }
        None => None,
    };
    let selector = match &locked {
        Some(e) => Some(Selector::Digest(e.manifest_digest)),
        None => r.selector.clone(),
    };
    let kinds: Vec<Kind> = match (&locked, kind) {
        (Some(e), _) => vec![e.kind],
        (None, Some(k)) => vec![k],
        (None, None) => vec![Kind::Adapter, Kind::Model],
    };
    let bars = Bars::new();
    let client = ctx.client()?;
    let (ns, name) = (r.namespace.as_str(), r.name.as_str());
    let (kind, resolved) = client
        .resolve_in(&kinds, ns, name, selector.as_ref())
        .await
        .map_err(|e| Failure::from(e).context(format!("resolving {r}")))?;
    let mut warnings = Vec::new();
    if resolved.yanked {
        let w = match &resolved.yank_reason {
            Some(why) => format!("{}@{} is yanked: {why}", r.repository(), resolved.version),
            None => format!("{}@{} is yanked", r.repository(), resolved.version),
        };
        bars.warn(&format!("warning: {w}"));
        warnings.push(w);
    }
    if let Some(e) = &locked
        && (resolved.version != e.version || resolved.manifest_digest != e.manifest_digest)
    {
        return Err(Failure::new(
            VERIFY,
            anyhow!(
                "the lock file pins {}@{} to {}, but the registry resolves it to {}@{} ({})",
                r.repository(),
                e.version,
                e.manifest_digest,
                r.repository(),
                resolved.version,
                resolved.manifest_digest
            ),
        ));
    }
    let info = client
        .version(kind, ns, name, &resolved.version)
        .await
        .map_err(|e| {
            Failure::from(e).context(format!("reading {}@{}", r.repository(), resolved.version))
        })?;
    let recomputed = info.manifest.digest();
    if info.manifest_digest != resolved.manifest_digest || recomputed != resolved.manifest_digest {
        return Err(Failure::new(
            VERIFY,
            anyhow!(
                "{}@{}: the registry resolved manifest {} but served one with digest {recomputed}",
                r.repository(),
                resolved.version,
                resolved.manifest_digest
            ),
        ));
    }
    if info.manifest.kind() != kind {
        return Err(Failure::new(
            VERIFY,
            anyhow!(
                "{}@{}: the manifest's kind is {}, not {kind}",
                r.repository(),
                resolved.version,
                info.manifest.kind()
            ),
        ));
    }
    let manifest = info.manifest;
    let pinned = format!("{}@{}", r.repository(), resolved.version);

    let mut cache = DigestCache::load(ctx.cache_dir.as_deref());
    let dest = destination(&args.out, &manifest, &mut cache)?;
    let _ = cache.save();
    let stats = Stats::default();
    let placed = match dest {
        Dest::Same => false,
        Dest::Other if !args.force => {
            return Err(Failure::new(
                CONFLICT,
                anyhow!(
                    "{} exists and holds other files; pass --force to replace it",
                    args.out.display()
                ),
            ));
        }
        dest => {
            let parent = match args.out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            std::fs::create_dir_all(&parent)
                .map_err(|e| Failure::unreadable(anyhow!("creating {}: {e}", parent.display())))?;
            let hex12 = &resolved.manifest_digest.hex()[..12];
            let partial = parent.join(format!(".{dir_name}.partial-{hex12}"));
            download_all(&client, &manifest, &partial, &bars, &stats).await?;
            place(
                &partial, &args.out, &parent, dir_name, hex12, &dest, &manifest,
            )?;
            remember_placed(&mut cache, &args.out, &manifest);
            let _ = cache.save();
            true
        }
    };

    if let Some(path) = &args.lock {
        let mut lock = LockFile::read(path, true).map_err(Failure::unreadable)?;
        lock.entries.insert(
            r.repository(),
            LockEntry {
                kind,
                version: resolved.version.clone(),
                manifest_digest: resolved.manifest_digest,
            },
        );
        lock.write(path).map_err(Failure::unreadable)?;
    }
    let downloaded = stats.downloaded.load(Ordering::Relaxed);
    let reused = stats.reused.load(Ordering::Relaxed);
    if manifest.metadata().get("headers_only") == Some(&serde_json::Value::Bool(true)) {
        let w = "this model was registered headers-only: its weight files are not in the registry"
            .to_owned();
        bars.warn(&format!("warning: {w}"));
        warnings.push(w);
    }
    if ctx.json {
        println!(
            "{}",
            json!({
                "reference": pinned,
                "pinned": format!("{}@{}", r.repository(), resolved.manifest_digest),
                "kind": kind,
                "version": resolved.version,
                "manifest_digest": resolved.manifest_digest,
                "yanked": resolved.yanked,
                "dir": args.out,
                "files": manifest.files().len(),
                "size": manifest.total_size(),
                "downloaded_bytes": downloaded,
                "resumed_bytes": reused,
                "up_to_date": !placed,
                "warnings": warnings,
            })
        );
    } else {
        if placed {
            eprintln!(
                "pulled {} file(s), {downloaded} bytes downloaded{} into {}",
                manifest.files().len(),
                if reused > 0 {
                    format!(", {reused} reused from an earlier attempt")
                } else {
                    String::new()
                },
                args.out.display()
            );
        } else {
            eprintln!("{} already holds exactly these files", args.out.display());
        }
        println!("{pinned} {}", resolved.manifest_digest);
    }
    Ok(())
}

/// What is at the destination now.
#[derive(Debug, PartialEq, Eq)]
enum Dest {
    Missing,
    EmptyDir,
    /// Exactly the manifest's files, sizes and digests.
    Same,
    /// Anything else (other files, or a file where the directory should be).
    Other,
}

fn destination(out: &Path, manifest: &Manifest, cache: &mut DigestCache) -> Result<Dest, Failure> {
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Dest::Missing),
        Err(e) => return Err(Failure::unreadable(anyhow!("{}: {e}", out.display()))),
    };
    if !meta.is_dir() {
        return Ok(Dest::Other);
    }
    let present =
        list_files(out).map_err(|e| Failure::unreadable(anyhow!("{}: {e}", out.display())))?;
    if present.is_empty() {
        return Ok(Dest::EmptyDir);
    }
    if present.len() != manifest.files().len() {
        return Ok(Dest::Other);
    }
    for ((rel, abs), entry) in present.iter().zip(manifest.files()) {
        // Both sorted by path bytes.
        if rel != entry.path.as_str() {
            return Ok(Dest::Other);
        }
        let Ok(meta) = std::fs::symlink_metadata(abs) else {
            return Ok(Dest::Other);
        };
        if !meta.is_file() || meta.len() != entry.size {
            return Ok(Dest::Other);
        }
        match cache.digest(abs, |_| {}) {
            Ok((d, _)) if d == entry.digest => {}
            _ => return Ok(Dest::Other),
        }
    }
    Ok(Dest::Same)
}

fn io_fail(path: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::unreadable(anyhow!("{}: {e}", path.display()))
}

/// The files just placed were verified against their digests: kept in the digest cache, so
/// a later push or `quantise --local` of them hashes nothing.
fn remember_placed(cache: &mut DigestCache, dir: &Path, manifest: &Manifest) {
    for f in manifest.files() {
        if let Ok(Lookup::Miss(miss)) = cache.lookup(&dir.join(f.path.as_str())) {
            let _ = cache.remember(&miss, f.digest, f.size);
        }
    }
}

/// Move the verified partial directory into place.
fn place(
    partial: &Path,
    out: &Path,
    parent: &Path,
    dir_name: &str,
    hex12: &str,
    dest: &Dest,
    manifest: &Manifest,
) -> Result<(), Failure> {
    // Final check: the partial directory holds exactly the manifest's files.
    let present = list_files(partial).map_err(io_fail(partial))?;
    let names: Vec<&str> = present.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<&str> = manifest.files().iter().map(|f| f.path.as_str()).collect();
    if names != expected {
        return Err(Failure::new(
            VERIFY,
            anyhow!(
                "{} does not hold exactly the manifest's files",
                partial.display()
            ),
        ));
    }
    match dest {
        Dest::Missing => {}
        Dest::EmptyDir => std::fs::remove_dir(out).map_err(io_fail(out))?,
        Dest::Other | Dest::Same => {
            let old = parent.join(format!(".{dir_name}.old-{hex12}-{}", std::process::id()));
            std::fs::rename(out, &old).map_err(io_fail(out))?;
            if let Err(e) = std::fs::rename(partial, out) {
                let _ = std::fs::rename(&old, out);
                return Err(io_fail(out)(e));
            }
            let removed = if old.is_dir() {
                std::fs::remove_dir_all(&old)
            } else {
                std::fs::remove_file(&old)
            };
            if let Err(e) = removed {
                eprintln!(
                    "warning: could not remove the replaced {}: {e}",
                    old.display()
                );
            }
            return Ok(());
        }
    }
    std::fs::rename(partial, out).map_err(io_fail(out))?;
    Ok(())
}
