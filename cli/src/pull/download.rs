//! Downloading a manifest's files into the partial directory: in parallel, resuming partial
//! files with `Range` (re-hashing what they hold), verifying every size and digest.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use adapter_core::digest::{Digest, Hasher, hash_into};
use adapter_core::manifest::{FileEntry, Manifest};
use anyhow::anyhow;
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use reqwest::StatusCode;
use reqwest::header::CONTENT_RANGE;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::ranged::{self, Frontiers};
use super::{CONCURRENCY, Stats, WRITE_BUFFER, io_fail};
use crate::client::{Client, ClientError};
use crate::exit::{Failure, SERVER, VERIFY};
use crate::fsutil::{ResumePlan, content_range_start, list_files, resume_plan, safe_join};
use crate::progress::Bars;

pub(super) async fn download_all(
    client: &Client,
    manifest: &Manifest,
    partial: &Path,
    bars: &Bars,
    stats: &Stats,
) -> Result<(), Failure> {
    let frontiers = Arc::new(Frontiers::load(partial));
    if !partial.exists() {
        frontiers.clear();
    }
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
        .map(|(entry, target)| {
            let frontiers = &frontiers;
            async move {
                let bar = bars.bytes(entry.path.as_str(), entry.size);
                let r = fetch(client, &entry, &target, &bar, stats, frontiers).await;
                bar.finish_and_clear();
                r.map_err(|f| f.context(format!("downloading {}", entry.path)))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Hash the first `len` bytes of `path`.
async fn hash_prefix(path: &Path, len: u64) -> Result<Hasher, Failure> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<Hasher> {
        use std::io::Read;
        let mut h = Hasher::new();
        hash_into(&mut h, std::fs::File::open(&p)?.take(len))?;
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
    frontiers: &Arc<Frontiers>,
) -> Result<(), Failure> {
    match fetch_once(client, entry, target, bar, stats, frontiers).await {
        Err(Retry::FromScratch(reused)) => {
            stats.reused.fetch_sub(reused, Ordering::Relaxed);
            bar.set_position(0);
            match fetch_once(client, entry, target, bar, stats, frontiers).await {
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
    frontiers: &Arc<Frontiers>,
) -> Result<(), Retry> {
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io_fail(parent))?;
    }
    let rel = entry.path.as_str();
    let have = match tokio::fs::symlink_metadata(target).await {
        // A file fetched in ranges is complete only up to its recorded frontier.
        Ok(m) if m.is_file() => Some(frontiers.get(rel).map_or(m.len(), |f| f.min(m.len()))),
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
                frontiers.set(rel, None)?;
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
    if entry.size - from >= ranged::RANGED_MIN {
        let hasher =
            ranged::fetch(client, entry, target, from, hasher, bar, stats, frontiers).await?;
        stats.reused.fetch_add(from, Ordering::Relaxed);
        return verified(entry, target, hasher, from, frontiers).await;
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
        r => r.map_err(ranged::blob_failure)?,
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
    verified(entry, target, hasher, resumed_from, frontiers).await
}

/// The end of a download: the file (synced) verifies, or it is deleted, and fetched once
/// more from scratch when a kept prefix of `resumed_from` bytes may be what was wrong.
async fn verified(
    entry: &FileEntry,
    target: &Path,
    hasher: Hasher,
    resumed_from: u64,
    frontiers: &Frontiers,
) -> Result<(), Retry> {
    let len = hasher.len();
    let got = hasher.finish();
    let ok = len == entry.size && got == entry.digest;
    if !ok {
        let _ = tokio::fs::remove_file(target).await;
    }
    frontiers.set(entry.path.as_str(), None)?;
    if ok {
        Ok(())
    } else if resumed_from > 0 {
        Err(Retry::FromScratch(resumed_from))
    } else {
        Err(Retry::Fail(mismatch(entry, got, len)))
    }
}
