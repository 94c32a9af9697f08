//! One large file in parallel ranges: pieces of [`PIECE`] bytes are fetched [`RANGES`] at a
//! time with `Range: bytes=a-b` and written at their final offsets, while one thread hashes
//! the file in order, following the end of what has landed contiguously (re-reading it from
//! the page cache: a copy, cheaper than the hash it feeds). The digest is checked by the
//! caller when every byte has been hashed, after one `fsync`.
//!
//! How far the file is known complete (the hashed frontier) is kept in [`Frontiers`], so a
//! cut-off pull resumes from there, hashing that prefix again before anything is added.

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

use adapter_core::digest::{HASH_BUFFER, Hasher};
use adapter_core::manifest::FileEntry;
use anyhow::anyhow;
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use reqwest::StatusCode;
use reqwest::header::CONTENT_RANGE;
use serde::{Deserialize, Serialize};

use super::{Stats, io_fail};
use crate::client::{Client, ClientError};
use crate::exit::{Failure, NOT_FOUND, SERVER, VERIFY};
use crate::fsutil::content_range_is;

/// Bytes per ranged request.
pub const PIECE: u64 = 32 << 20;
/// Ranged requests in flight for one file.
pub const RANGES: usize = 4;
/// A file whose missing part is at least this large is fetched in ranges.
pub const RANGED_MIN: u64 = 2 * PIECE;
/// Bytes gathered before each positioned write.
const WRITE_BLOCK: usize = 4 << 20;
/// The frontier is recorded each time it advanced this far.
const RECORD_EVERY: u64 = 256 << 20;
/// Attempts per piece when the connection breaks (each continues where the last stopped).
const ATTEMPTS: u32 = 3;

/// `<partial dir>.progress`: for files being fetched in ranges, how many leading bytes are
/// complete (`{"version": 1, "files": {"<path>": frontier}}`). A file with no entry holds
/// a contiguous prefix (its length). Shared by the files of one pull.
#[derive(Debug)]
pub struct Frontiers {
    path: PathBuf,
    files: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FrontierFile {
    version: u32,
    files: BTreeMap<String, u64>,
}

impl Frontiers {
    /// The record beside `partial`; a missing or unreadable one is empty.
    pub fn load(partial: &Path) -> Self {
        let mut name = partial.as_os_str().to_owned();
        name.push(".progress");
        let path = PathBuf::from(name);
        let files = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<FrontierFile>(&b).ok())
            .map(|f| f.files)
            .unwrap_or_default();
        Self {
            path,
            files: Mutex::new(files),
        }
    }

    pub fn get(&self, file: &str) -> Option<u64> {
        self.lock().get(file).copied()
    }

    /// Record (`Some`) or forget (`None`) the frontier of `file`.
    pub fn set(&self, file: &str, frontier: Option<u64>) -> Result<(), Failure> {
        let mut files = self.lock();
        match frontier {
            Some(f) => files.insert(file.to_owned(), f),
            None => files.remove(file),
        };
        let result = if files.is_empty() {
            match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            }
        } else {
            let body = FrontierFile {
                version: 1,
                files: files.clone(),
            };
            serde_json::to_vec(&body)
                .map_err(anyhow::Error::from)
                .and_then(|b| crate::cache::write_atomic(&self.path, &b))
        };
        result.map_err(|e| Failure::unreadable(anyhow!("{}: {e:#}", self.path.display())))
    }

    /// Forget everything (the partial directory is gone).
    pub fn clear(&self) {
        self.lock().clear();
        let _ = std::fs::remove_file(&self.path);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the downloaders tell the hashing thread.
#[derive(Debug)]
struct Landed {
    /// Bytes written so far at the start of each piece.
    written: Vec<u64>,
    /// The piece the hashing thread waits on: only its progress (or a failure) wakes it.
    waiting_on: usize,
    failed: bool,
}

#[derive(Debug)]
struct Shared {
    landed: Mutex<Landed>,
    wake: Condvar,
    /// Held across each block's write. Writes to one file serialise on its inode lock in the
    /// kernel anyway, where the waiting writers spin (on tmpfs, 2.7 s of system time for
    /// 1 GiB with four pieces in flight); here they sleep instead.
    writing: Mutex<()>,
}

impl Shared {
    fn new(pieces: usize) -> Self {
        Shared {
            landed: Mutex::new(Landed {
                written: vec![0; pieces],
                waiting_on: 0,
                failed: false,
            }),
            wake: Condvar::new(),
            writing: Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Landed> {
        self.landed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `done` bytes of piece `index` are written.
    fn written(&self, index: usize, done: u64) {
        let mut landed = self.lock();
        landed.written[index] = done;
        let wake = index <= landed.waiting_on;
        drop(landed);
        if wake {
            self.wake.notify_all();
        }
    }

    fn fail(&self) {
        self.lock().failed = true;
        self.wake.notify_all();
    }
}

/// Fetch bytes `from..` of `entry` into `target` (whose first `from` bytes `hasher` has
/// hashed) in parallel ranges; returns the hasher over the whole file, which is synced to
/// disk. The file's frontier is kept in `frontiers` under its manifest path.
#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    client: &Client,
    entry: &FileEntry,
    target: &Path,
    from: u64,
    hasher: Hasher,
    bar: &ProgressBar,
    stats: &Stats,
    frontiers: &Arc<Frontiers>,
) -> Result<Hasher, Failure> {
    let rel = entry.path.as_str();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(target)
        .map_err(io_fail(target))?;
    // Whatever lies past the verified prefix is unknown: recorded first, then cut.
    frontiers.set(rel, Some(from))?;
    file.set_len(from).map_err(io_fail(target))?;
    let file = Arc::new(file);
    let pieces: Vec<Range<u64>> = (from..entry.size)
        .step_by(usize::try_from(PIECE).unwrap_or(usize::MAX))
        .map(|a| a..(a + PIECE).min(entry.size))
        .collect();
    let shared = Arc::new(Shared::new(pieces.len()));
    let follower = {
        let (target, pieces, shared) = (target.to_path_buf(), pieces.clone(), shared.clone());
        let (frontiers, rel) = (frontiers.clone(), rel.to_owned());
        tokio::task::spawn_blocking(move || {
            follow(&target, from, hasher, &pieces, &shared, &|pos| {
                // A frontier recorded too low only costs a longer resume.
                let _ = frontiers.set(&rel, Some(pos));
            })
        })
    };
    let downloaded = futures::stream::iter(pieces.iter().cloned().enumerate())
        .map(|(i, range)| {
            let (file, shared) = (file.clone(), shared.clone());
            async move { fetch_piece(client, entry, &file, i, range, &shared, bar, stats).await }
        })
        .buffer_unordered(RANGES)
        .try_collect::<Vec<()>>()
        .await;
    if downloaded.is_err() {
        shared.fail();
    }
    let hashed = follower
        .await
        .map_err(|e| Failure::unreadable(anyhow!("hashing thread failed: {e}")))?;
    downloaded?;
    let hasher = hashed.map_err(io_fail(target))?;
    let file = Arc::into_inner(file).ok_or_else(|| {
        Failure::unreadable(anyhow!(
            "{}: still in use after the download",
            target.display()
        ))
    })?;
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(|e| Failure::unreadable(anyhow!("sync thread failed: {e}")))?
        .map_err(io_fail(target))?;
    Ok(hasher)
}

/// One piece, written at its offset in blocks; each block written is reported to the
/// hashing thread. A broken connection continues from where the piece stopped.
#[allow(clippy::too_many_arguments)]
async fn fetch_piece(
    client: &Client,
    entry: &FileEntry,
    file: &Arc<std::fs::File>,
    index: usize,
    range: Range<u64>,
    shared: &Arc<Shared>,
    bar: &ProgressBar,
    stats: &Stats,
) -> Result<(), Failure> {
    let mut done = 0u64;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let start = range.start + done;
        let resp = client
            .get_blob_range(&entry.digest, start..range.end)
            .await
            .map_err(blob_failure)?;
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            return Err(Failure::new(
                SERVER,
                anyhow!(
                    "asked for bytes {start}-{} and got status {} instead of 206",
                    range.end - 1,
                    resp.status()
                ),
            ));
        }
        let header = resp
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        content_range_is(header, start..range.end, entry.size)
            .map_err(|e| Failure::new(VERIFY, e))?;
        let url = resp.url().to_string();
        let mut stream = resp.bytes_stream();
        let mut block: Vec<u8> = Vec::with_capacity(WRITE_BLOCK);
        let mut broken = None;
        loop {
            let chunk = match stream.next().await {
                Some(Ok(c)) => Some(c),
                Some(Err(source)) => {
                    broken = Some(ClientError::Network {
                        url: url.clone(),
                        source,
                    });
                    None
                }
                None => None,
            };
            if let Some(c) = &chunk {
                if range.start + done + (block.len() + c.len()) as u64 > range.end {
                    return Err(Failure::new(
                        VERIFY,
                        anyhow!(
                            "verification failed: the registry sent more than bytes {start}-{}",
                            range.end - 1
                        ),
                    ));
                }
                block.extend_from_slice(c);
                stats
                    .downloaded
                    .fetch_add(c.len() as u64, Ordering::Relaxed);
                bar.inc(c.len() as u64);
            }
            if !block.is_empty() && (chunk.is_none() || block.len() >= WRITE_BLOCK) {
                let at = range.start + done;
                let len = block.len() as u64;
                block = write_at(file, shared, block, at).await?;
                block.clear();
                done += len;
                shared.written(index, done);
            }
            if chunk.is_none() {
                break;
            }
        }
        if range.start + done == range.end {
            return Ok(());
        }
        // A broken connection is asked again for the rest of the piece (the digest check at
        // the end covers every byte whatever happened).
        match broken {
            Some(e) if attempt >= ATTEMPTS => return Err(e.into()),
            None if attempt >= ATTEMPTS => {
                return Err(Failure::new(
                    SERVER,
                    anyhow!(
                        "the registry sent {done} of the {} bytes asked for",
                        range.end - range.start
                    ),
                ));
            }
            _ => {}
        }
    }
}

/// A failed blob request; a missing blob exits with [`NOT_FOUND`].
pub fn blob_failure(e: ClientError) -> Failure {
    let not_found = e.is_not_found();
    let mut f = Failure::from(e);
    if not_found {
        f.code = NOT_FOUND;
    }
    f
}

async fn write_at(
    file: &Arc<std::fs::File>,
    shared: &Arc<Shared>,
    block: Vec<u8>,
    at: u64,
) -> Result<Vec<u8>, Failure> {
    let (file, shared) = (file.clone(), shared.clone());
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let _writing = shared.writing.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all_at(&block, at).map(|()| block)
    })
    .await
    .map_err(|e| Failure::unreadable(anyhow!("writing thread failed: {e}")))?
    .map_err(|e| Failure::unreadable(anyhow!("writing at {at}: {e}")))
}

/// The hashing thread: waits until bytes past `pos` have landed contiguously, hashes them
/// (read back in order), records the frontier every [`RECORD_EVERY`] bytes, until the end
/// of the last piece or a failed download.
fn follow(
    target: &Path,
    from: u64,
    mut hasher: Hasher,
    pieces: &[Range<u64>],
    shared: &Shared,
    record: &dyn Fn(u64),
) -> std::io::Result<Hasher> {
    let end = pieces.last().map_or(from, |p| p.end);
    let mut f = std::fs::File::open(target)?;
    f.seek(std::io::SeekFrom::Start(from))?;
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut pos = from;
    let mut reported = from;
    let mut first = 0;
    while pos < end {
        let frontier = {
            let mut landed = shared.lock();
            loop {
                if landed.failed {
                    return Err(std::io::Error::other("the download failed"));
                }
                while first < pieces.len()
                    && landed.written[first] == pieces[first].end - pieces[first].start
                {
                    first += 1;
                }
                let frontier = pieces
                    .get(first)
                    .map_or(end, |p| p.start + landed.written[first]);
                if frontier > pos {
                    break frontier;
                }
                landed.waiting_on = first;
                landed = shared.wake.wait(landed).unwrap_or_else(|p| p.into_inner());
            }
        };
        while pos < frontier {
            let n = usize::try_from((frontier - pos).min(buf.len() as u64)).unwrap_or(buf.len());
            f.read_exact(&mut buf[..n])?;
            hasher.update(&buf[..n]);
            pos += n as u64;
        }
        if pos - reported >= RECORD_EVERY {
            record(pos);
            reported = pos;
        }
    }
    Ok(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapter_core::digest::Digest;
    use std::os::unix::fs::FileExt;

    #[test]
    fn the_hash_follows_pieces_that_land_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let from = 1_000u64;
        std::fs::write(&path, &data[..from as usize]).unwrap();
        let mut prefix = Hasher::new();
        prefix.update(&data[..from as usize]);
        let pieces: Vec<Range<u64>> = (from..data.len() as u64)
            .step_by(30_000)
            .map(|a| a..(a + 30_000).min(data.len() as u64))
            .collect();
        let shared = Arc::new(Shared::new(pieces.len()));
        let recorded = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            let follower = s.spawn(|| {
                follow(&path, from, prefix, &pieces, &shared, &|p| {
                    recorded.lock().unwrap().push(p)
                })
            });
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            // Last piece first, then the others in halves.
            for i in (0..pieces.len()).rev() {
                let r = pieces[i].clone();
                let mid = r.start + (r.end - r.start) / 2;
                for (a, b) in [(r.start, mid), (mid, r.end)] {
                    file.write_all_at(&data[a as usize..b as usize], a).unwrap();
                    shared.written(i, b - r.start);
                }
            }
            let h = follower.join().unwrap().unwrap();
            assert_eq!(h.len(), data.len() as u64);
            assert_eq!(h.finish(), Digest::of_bytes(&data));
        });
    }

    #[test]
    fn a_failed_download_stops_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let pieces: Vec<Range<u64>> = std::iter::once(0..10).collect();
        let shared = Shared::new(1);
        std::thread::scope(|s| {
            let follower = s.spawn(|| follow(&path, 0, Hasher::new(), &pieces, &shared, &|_| {}));
            shared.fail();
            assert!(follower.join().unwrap().is_err());
        });
    }

    #[test]
    fn frontiers_are_kept_beside_the_partial_dir_and_removed_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join(".out.partial-abc");
        let f = Frontiers::load(&partial);
        assert_eq!(f.get("a"), None);
        f.set("a", Some(5)).unwrap();
        f.set("b/c", Some(7)).unwrap();
        let again = Frontiers::load(&partial);
        assert_eq!((again.get("a"), again.get("b/c")), (Some(5), Some(7)));
        let file = dir.path().join(".out.partial-abc.progress");
        assert!(file.is_file());
        again.set("a", None).unwrap();
        again.set("b/c", None).unwrap();
        assert!(!file.exists());
        // A corrupt record is an empty one.
        std::fs::write(&file, b"{not json").unwrap();
        assert_eq!(Frontiers::load(&partial).get("a"), None);
    }
}
