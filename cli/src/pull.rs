//! `adapterctl pull REF -o DIR [--lock FILE] [--locked FILE] [--force] [--kind K]`: resolve,
//! download in parallel into `.DIR.partial-<digest12>` next to DIR (a re-run resumes), verify
//! every size and digest, then rename into place. Nothing is placed unless every file verified.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use adapter_core::digest::{Digest, HASH_BUFFER, Hasher};
use adapter_core::manifest::{FileEntry, Kind, Manifest};
use adapter_core::reference::{Reference, Selector};
use anyhow::anyhow;
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use reqwest::StatusCode;
use reqwest::header::CONTENT_RANGE;
use serde_json::json;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::Ctx;
use crate::cache::DigestCache;
use crate::client::{Client, ClientError};
use crate::exit::{CONFLICT, Failure, NOT_FOUND, SERVER, VERIFY};
use crate::fsutil::{ResumePlan, content_range_start, list_files, resume_plan, safe_join};
use crate::lock::{LockEntry, LockFile};
use crate::progress::Bars;

/// Downloads in flight at once.
pub const CONCURRENCY: usize = 4;
/// Bytes gathered before each write to disk.
const WRITE_BUFFER: usize = 4 << 20;

#[derive(Debug)]
pub struct Args<'a> {
    pub reference: &'a str,
    pub out: &'a Path,
    pub lock: Option<&'a Path>,
    pub locked: Option<&'a Path>,
    pub force: bool,
    pub kind: Option<Kind>,
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

pub async fn run(ctx: &Ctx, args: Args<'_>) -> Result<(), Failure> {
    let r = parse_reference(args.reference)?;
    let Some(dir_name) = args.out.file_name().and_then(|n| n.to_str()) else {
        return Err(Failure::usage(anyhow!(
            "-o `{}` must end in a directory name",
            args.out.display()
        )));
    };
    let locked = match args.locked {
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
            if args.kind.is_some_and(|k| k != entry.kind) {
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
    let kinds: Vec<Kind> = match (&locked, args.kind) {
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
    let dest = destination(args.out, &manifest, &mut cache)?;
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
                &partial, args.out, &parent, dir_name, hex12, &dest, &manifest,
            )?;
            true
        }
    };

    if let Some(path) = args.lock {
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

async fn download_all(
    client: &Client,
    manifest: &Manifest,
    partial: &Path,
    bars: &Bars,
    stats: &Stats,
) -> Result<(), Failure> {
    std::fs::create_dir_all(partial)
        .map_err(|e| Failure::unreadable(anyhow!("creating {}: {e}", partial.display())))?;
    // Anything in the partial directory that the manifest does not list goes.
    if let Ok(present) = list_files(partial) {
        for (rel, abs) in present {
            if manifest.file(&rel).is_none() {
                let _ = std::fs::remove_file(abs);
            }
        }
    }
    let jobs = manifest
        .files()
        .iter()
        .map(|entry| -> Result<_, Failure> {
            let target = safe_join(partial, &entry.path).map_err(|e| Failure::new(VERIFY, e))?;
            Ok((entry.clone(), target))
        })
        .collect::<Result<Vec<_>, _>>()?;
    futures::stream::iter(jobs)
        .map(|(entry, target)| async move {
            let bar = bars.bytes(entry.path.as_str(), entry.size);
            let r = fetch(client, &entry, &target, &bar, stats).await;
            bar.finish_and_clear();
            r.map_err(|f| f.context(format!("downloading {}", entry.path)))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn io_fail(path: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::unreadable(anyhow!("{}: {e}", path.display()))
}

/// Hash the first `len` bytes of `path`.
async fn hash_prefix(path: &Path, len: u64) -> Result<Hasher, Failure> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<Hasher> {
        use std::io::Read;
        let mut f = std::fs::File::open(&p)?.take(len);
        let mut h = Hasher::new();
        let mut buf = vec![0u8; HASH_BUFFER];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h)
    })
    .await
    .map_err(|e| Failure::unreadable(anyhow!("hashing thread failed: {e}")))?
    .map_err(io_fail(path))
}

fn mismatch(entry: &FileEntry, got: Digest, len: u64) -> Failure {
    Failure::new(
        VERIFY,
        anyhow!(
            "verification failed: expected {} ({} bytes), got {got} ({len} bytes)",
            entry.digest,
            entry.size
        ),
    )
}

/// Download one file. When a resumed file fails verification, the kept prefix may be what
/// was wrong: it is deleted and the file fetched once more from the start.
async fn fetch(
    client: &Client,
    entry: &FileEntry,
    target: &Path,
    bar: &ProgressBar,
    stats: &Stats,
) -> Result<(), Failure> {
    match fetch_once(client, entry, target, bar, stats).await {
        Err(Retry::FromScratch(reused)) => {
            stats.reused.fetch_sub(reused, Ordering::Relaxed);
            bar.set_position(0);
            match fetch_once(client, entry, target, bar, stats).await {
                Ok(()) => Ok(()),
                Err(Retry::Fail(f)) => Err(f),
                Err(Retry::FromScratch(_)) => {
                    Err(Failure::new(VERIFY, anyhow!("verification failed twice")))
                }
            }
        }
        Err(Retry::Fail(f)) => Err(f),
        Ok(()) => Ok(()),
    }
}

enum Retry {
    /// The resumed prefix (this many bytes) did not verify; it was deleted.
    FromScratch(u64),
    Fail(Failure),
}

impl<E: Into<Failure>> From<E> for Retry {
    fn from(e: E) -> Self {
        Retry::Fail(e.into())
    }
}

async fn fetch_once(
    client: &Client,
    entry: &FileEntry,
    target: &Path,
    bar: &ProgressBar,
    stats: &Stats,
) -> Result<(), Retry> {
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io_fail(parent))?;
    }
    let have = match tokio::fs::symlink_metadata(target).await {
        Ok(m) if m.is_file() => Some(m.len()),
        Ok(_) => {
            // Not a regular file (a directory, a symlink): not ours to trust.
            let _ = tokio::fs::remove_dir_all(target).await;
            let _ = tokio::fs::remove_file(target).await;
            None
        }
        Err(_) => None,
    };
    let mut from = 0;
    let mut resumed_from = 0;
    let mut hasher = Hasher::new();
    match resume_plan(have, entry.size) {
        ResumePlan::Fresh | ResumePlan::Restart => {}
        ResumePlan::Verify => {
            let h = hash_prefix(target, entry.size).await?;
            let len = h.len();
            if len == entry.size && h.finish() == entry.digest {
                stats.reused.fetch_add(entry.size, Ordering::Relaxed);
                bar.inc(entry.size);
                return Ok(());
            }
        }
        ResumePlan::Resume { from: n } => {
            hasher = hash_prefix(target, n).await?;
            from = hasher.len();
        }
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(target)
        .await
        .map_err(io_fail(target))?;
    let resp = client.get_blob(&entry.digest, from).await;
    let resp = match resp {
        Err(ClientError::Api { status, .. })
            if from > 0 && status == StatusCode::RANGE_NOT_SATISFIABLE =>
        {
            // The blob is shorter than what we hold: start over.
            from = 0;
            hasher = Hasher::new();
            client.get_blob(&entry.digest, 0).await?
        }
        Err(e) if e.is_not_found() => {
            let mut f = Failure::from(e);
            f.code = NOT_FOUND;
            return Err(f.into());
        }
        r => r?,
    };
    match resp.status() {
        StatusCode::PARTIAL_CONTENT if from > 0 => {
            let header = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            content_range_start(header, from, entry.size).map_err(|e| Failure::new(VERIFY, e))?;
            stats.reused.fetch_add(from, Ordering::Relaxed);
            resumed_from = from;
        }
        StatusCode::OK => {
            from = 0;
            hasher = Hasher::new();
        }
        other => {
            return Err(Failure::new(
                SERVER,
                anyhow!("unexpected status {other} for a blob download"),
            )
            .into());
        }
    }
    file.set_len(from).await.map_err(io_fail(target))?;
    file.seek(std::io::SeekFrom::Start(from))
        .await
        .map_err(io_fail(target))?;
    // Small network frames go to disk in large writes (each tokio file write is a
    // blocking-pool hand-off).
    let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    bar.set_position(from);
    let url = resp.url().to_string();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| ClientError::Network {
            url: url.clone(),
            source,
        })?;
        if hasher.len() + chunk.len() as u64 > entry.size {
            drop(file);
            let _ = tokio::fs::remove_file(target).await;
            if resumed_from > 0 {
                return Err(Retry::FromScratch(resumed_from));
            }
            return Err(Failure::new(
                VERIFY,
                anyhow!(
                    "verification failed: the registry sent more than the {} bytes recorded",
                    entry.size
                ),
            )
            .into());
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io_fail(target))?;
        stats
            .downloaded
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        bar.inc(chunk.len() as u64);
    }
    file.flush().await.map_err(io_fail(target))?;
    let file = file.into_inner();
    file.sync_all().await.map_err(io_fail(target))?;
    drop(file);
    let len = hasher.len();
    let got = hasher.finish();
    if len != entry.size || got != entry.digest {
        let _ = tokio::fs::remove_file(target).await;
        if resumed_from > 0 {
            return Err(Retry::FromScratch(resumed_from));
        }
        return Err(Retry::Fail(mismatch(entry, got, len)));
    }
    Ok(())
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
