//! One large file in parallel ranges: pieces of [`PIECE`] bytes are fetched [`RANGES`] at a
//! time with `Range: bytes=a-b`; one thread puts what lands back in order, writes each chunk
//! and hashes it right after (while the write has left it in that core's cache: hashing
//! bytes that another core received costs this VM about half as much again), so there is
//! no read-back from the file and no write lock shared by the connections. At most
//! [`WINDOW`] pieces are in flight or not yet written, which bounds the memory. The digest
//! is checked by the caller when every byte has been hashed, after one `fsync`.
//!
//! How far the file is known complete (written and hashed) is kept in [`Frontiers`], so a
//! cut-off pull resumes from there, cutting what lies past it and hashing the prefix again
//! before anything is added.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use adapter_core::digest::Hasher;
use adapter_core::manifest::FileEntry;
use anyhow::anyhow;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use reqwest::StatusCode;
use reqwest::header::CONTENT_RANGE;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{Stats, io_fail};
use crate::client::{Client, ClientError};
use crate::exit::{Failure, NOT_FOUND, SERVER, VERIFY};
use crate::fsutil::content_range_is;

/// Bytes per ranged request.
pub const PIECE: u64 = 8 << 20;
/// Ranged requests in flight for one file.
pub const RANGES: usize = 4;
/// Pieces being fetched or waiting to be written and hashed, at most: the memory a pull
/// holds is at most this many pieces.
pub const WINDOW: usize = 6;
/// A file whose missing part is at least this large is fetched in ranges.
pub const RANGED_MIN: u64 = 64 << 20;
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

/// What the downloads send the writing thread: bytes of the file at an offset.
type Landed = (u64, Bytes);

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
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(target)
        .map_err(io_fail(target))?;
    // Whatever lies past the verified prefix is unknown: recorded first, then cut.
    frontiers.set(rel, Some(from))?;
    file.set_len(from).map_err(io_fail(target))?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(from)).map_err(io_fail(target))?;
    let pieces: Vec<Range<u64>> = (from..entry.size)
        .step_by(usize::try_from(PIECE).unwrap_or(usize::MAX))
        .map(|a| a..(a + PIECE).min(entry.size))
        .collect();
    let window = Arc::new(Semaphore::new(WINDOW));
    let (tx, rx) = mpsc::channel::<Landed>();
    let end = end_of(&pieces, from);
    let writer = {
        let (pieces, window) = (pieces.clone(), window.clone());
        let (frontiers, rel) = (frontiers.clone(), rel.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut sink = InOrder {
                file,
                pos: from,
                pending: BTreeMap::new(),
            };
            let mut hashed = HashedPieces::new(hasher, from, &pieces);
            sink.run(&rx, end, &mut |bytes| {
                hashed.update(bytes, &|| window.add_permits(1), &|pos| {
                    // A frontier recorded too low only costs a longer resume.
                    let _ = frontiers.set(&rel, Some(pos));
                });
            })?;
            Ok((sink.file, hashed.hasher))
        })
    };
    let downloaded = futures::stream::iter(pieces.iter().cloned())
        .map(|range| {
            let (tx, window) = (tx.clone(), &window);
            async move {
                // The piece waits for room in the window: its place is given back by the
                // hashing thread once the hash has passed it, not when the fetch ends (the
                // semaphore is never closed).
                if let Ok(place) = window.acquire().await {
                    place.forget();
                }
                fetch_piece(client, entry, &tx, range, bar, stats).await
            }
        })
        .buffer_unordered(RANGES)
        .try_collect::<Vec<()>>()
        .await;
    // The writer ends when it has everything, or when every sender is gone before that.
    drop(tx);
    let written: std::io::Result<(std::fs::File, Hasher)> = writer
        .await
        .map_err(|e| Failure::unreadable(anyhow!("writing thread failed: {e}")))?;
    // A write that failed (a full disk) stops the downloads ("the writing thread
    // stopped"): its own error says why. Otherwise a failed download is the reason.
    let (file, hasher) = match written {
        Err(e) if !ended_early(&e) => return Err(io_fail(target)(e)),
        written => {
            downloaded?;
            written.map_err(io_fail(target))?
        }
    };
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(|e| Failure::unreadable(anyhow!("sync thread failed: {e}")))?
        .map_err(io_fail(target))?;
    Ok(hasher)
}

/// One piece, each chunk sent to the writing thread as it arrives. A broken connection
/// continues from where the piece stopped.
async fn fetch_piece(
    client: &Client,
    entry: &FileEntry,
    tx: &mpsc::Sender<Landed>,
    range: Range<u64>,
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
        let mut broken = None;
        while let Some(chunk) = stream.next().await {
            let c = match chunk {
                Ok(c) => c,
                Err(source) => {
                    broken = Some(ClientError::Network {
                        url: url.clone(),
                        source,
                    });
                    break;
                }
            };
            let at = range.start + done;
            if at + c.len() as u64 > range.end {
                return Err(Failure::new(
                    VERIFY,
                    anyhow!(
                        "verification failed: the registry sent more than bytes {start}-{}",
                        range.end - 1
                    ),
                ));
            }
            let len = c.len() as u64;
            if tx.send((at, c)).is_err() {
                return Err(Failure::unreadable(anyhow!("the writing thread stopped")));
            }
            done += len;
            stats.downloaded.fetch_add(len, Ordering::Relaxed);
            bar.inc(len);
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

/// What the writing and hashing threads stop with when the downloads ended before the end
/// of the last piece (every sender gone).
fn download_ended() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the download ended early",
    )
}

/// Whether `e` is [`download_ended`]'s (the downloads' own error is the one to report).
fn ended_early(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::UnexpectedEof
}

/// Where the last piece ends (`from` when there is none).
fn end_of(pieces: &[Range<u64>], from: u64) -> u64 {
    pieces.last().map_or(from, |p| p.end)
}

/// The writing thread's state: the file (its cursor at `pos`) and what landed past `pos`,
/// by offset.
struct InOrder<W> {
    file: W,
    pos: u64,
    pending: BTreeMap<u64, Bytes>,
}

impl<W: Write> InOrder<W> {
    /// Take what lands, write it in order up to `end`, and hand each chunk written to
    /// `written` (the hash). Fails when every sender is gone first (a failed download).
    fn run(
        &mut self,
        rx: &mpsc::Receiver<Landed>,
        end: u64,
        written: &mut dyn FnMut(&[u8]),
    ) -> std::io::Result<()> {
        while self.pos < end {
            let Ok((at, bytes)) = rx.recv() else {
                return Err(download_ended());
            };
            if at < self.pos || self.pending.insert(at, bytes).is_some() {
                return Err(std::io::Error::other(format!(
                    "bytes at {at} landed twice (at {} now)",
                    self.pos
                )));
            }
            while let Some(bytes) = self.pending.remove(&self.pos) {
                self.file.write_all(&bytes)?;
                self.pos += bytes.len() as u64;
                written(&bytes);
            }
        }
        self.file.flush()
    }
}

/// The hash over the file's bytes from `from` on, in order, and which of the `pieces` it
/// has passed.
struct HashedPieces<'a> {
    hasher: Hasher,
    pos: u64,
    reported: u64,
    next_piece: usize,
    pieces: &'a [Range<u64>],
}

impl<'a> HashedPieces<'a> {
    /// `hasher` has hashed the first `from` bytes.
    fn new(hasher: Hasher, from: u64, pieces: &'a [Range<u64>]) -> Self {
        Self {
            hasher,
            pos: from,
            reported: from,
            next_piece: 0,
            pieces,
        }
    }

    /// Hash the next bytes; `piece_done` runs as the hash passes the end of each piece,
    /// `record` every [`RECORD_EVERY`] bytes (the file holds them: chunks are hashed once
    /// written).
    fn update(&mut self, bytes: &[u8], piece_done: &dyn Fn(), record: &dyn Fn(u64)) {
        self.hasher.update(bytes);
        self.pos += bytes.len() as u64;
        while self
            .pieces
            .get(self.next_piece)
            .is_some_and(|p| p.end <= self.pos)
        {
            self.next_piece += 1;
            piece_done();
        }
        if self.pos - self.reported >= RECORD_EVERY {
            record(self.pos);
            self.reported = self.pos;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapter_core::digest::Digest;

    /// Chunks that land out of order (the last piece first, each piece in halves) are
    /// written in order after the first `from` bytes and hashed in order; each piece is
    /// reported done once the hash passes it.
    #[test]
    fn what_lands_out_of_order_is_written_and_hashed_in_order() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let from = 1_000u64;
        let mut prefix = Hasher::new();
        prefix.update(&data[..from as usize]);
        let pieces: Vec<Range<u64>> = (from..data.len() as u64)
            .step_by(30_000)
            .map(|a| a..(a + 30_000).min(data.len() as u64))
            .collect();
        let (tx, rx) = mpsc::channel();
        for r in pieces.iter().rev() {
            let mid = r.start + (r.end - r.start) / 2;
            for (a, b) in [(r.start, mid), (mid, r.end)] {
                let chunk = Bytes::copy_from_slice(&data[a as usize..b as usize]);
                tx.send((a, chunk)).unwrap();
            }
        }
        let mut sink = InOrder {
            file: data[..from as usize].to_vec(),
            pos: from,
            pending: BTreeMap::new(),
        };
        let done = std::cell::Cell::new(0);
        let mut hashed = HashedPieces::new(prefix, from, &pieces);
        sink.run(&rx, end_of(&pieces, from), &mut |b| {
            hashed.update(b, &|| done.set(done.get() + 1), &|_| {});
            // A piece is reported done exactly when the hash has passed its end.
            let passed = pieces.iter().filter(|p| p.end <= hashed.pos).count();
            assert_eq!(done.get(), passed);
        })
        .unwrap();
        assert!(sink.file == data, "the file is the bytes in order");
        assert!(sink.pending.is_empty());
        assert_eq!(done.get(), pieces.len());
        let h = hashed.hasher;
        assert_eq!(h.len(), data.len() as u64);
        assert_eq!(h.finish(), Digest::of_bytes(&data));
    }

    /// A download that fails (every sender gone) before the end stops the writer with an
    /// error; bytes landing twice are refused.
    #[test]
    fn a_failed_download_or_a_repeated_offset_stops_the_writer() {
        let sink = || InOrder {
            file: Vec::new(),
            pos: 0,
            pending: BTreeMap::new(),
        };
        let (tx, rx) = mpsc::channel::<Landed>();
        tx.send((0, Bytes::from_static(b"abc"))).unwrap();
        drop(tx);
        let mut s = sink();
        assert!(ended_early(&s.run(&rx, 10, &mut |_| {}).unwrap_err()));
        assert_eq!(s.file, b"abc");
        let (tx, rx) = mpsc::channel::<Landed>();
        tx.send((5, Bytes::from_static(b"x"))).unwrap();
        tx.send((5, Bytes::from_static(b"y"))).unwrap();
        assert!(!ended_early(&sink().run(&rx, 10, &mut |_| {}).unwrap_err()));
    }

    /// A write that fails (a full disk) stops the writer with that error, not as a
    /// download that ended early, so that it is the one reported.
    #[test]
    fn a_failed_write_is_reported_as_itself() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (tx, rx) = mpsc::channel::<Landed>();
        tx.send((0, Bytes::from_static(b"abc"))).unwrap();
        let mut s = InOrder {
            file: Full,
            pos: 0,
            pending: BTreeMap::new(),
        };
        let e = s.run(&rx, 10, &mut |_| {}).unwrap_err();
        assert!(!ended_early(&e));
        assert_eq!(e.raw_os_error(), Some(28));
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
