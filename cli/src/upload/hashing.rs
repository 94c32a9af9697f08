//! Upload while hashing: a large file whose digest is not cached is read once, and each
//! block is hashed and sent in the same pass, into a resumable session opened without a
//! digest. The session is finished with the digest computed on the way; the registry
//! verifies it again while storing, and drops the upload at finish when it holds that blob
//! already (the cost of not asking first: only files the cache does not know come here).
//!
//! A cut-off upload is resumed from the registry's offset: the file's first bytes are
//! hashed, not sent again. Within one run, a failed `PATCH` lets the read go on hashing to
//! the end, then the ordinary resumable path ([`super::upload_resumable`]) continues the
//! same session under the now known digest.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use adapter_core::api::UploadStart;
use adapter_core::buffers::BufferPool;
use adapter_core::digest::{Digest, Hasher};
use anyhow::anyhow;
use bytes::Bytes;
use indicatif::ProgressBar;
use tokio::sync::mpsc;

use super::{Blob, CHUNK, Source, Stats, check_info, upload_resumable};
use crate::cache::{FileStamp, Miss, SessionRecord, UploadState};
use crate::client::{Client, ClientError};
use crate::exit::{Failure, SERVER};

/// Bytes read, hashed and handed to the connection at a time.
const BLOCK: usize = 1 << 20;
/// Blocks queued between the reading thread and the connection (bounds the memory).
const QUEUE: usize = 8;
/// The blocks, used again once sent (fresh ones cost a page fault per 4 KiB).
static BLOCKS: BufferPool = BufferPool::new(BLOCK, QUEUE + 2);

/// A file to upload whose digest is not known yet.
#[derive(Debug, Clone)]
pub struct Pending {
    pub label: String,
    pub miss: Miss,
}

impl Pending {
    fn size(&self) -> u64 {
        self.miss.before.size
    }
}

/// Why the `PATCH`es stopped before the end.
enum Cut {
    /// A refusal no retry changes.
    Fatal(Failure),
    /// Cut off: resume under the digest once it is known.
    Resume,
}

/// The body of one `PATCH`: the next `len` bytes the reader queued (it splits blocks at
/// chunk boundaries, so a chunk ends on a block).
fn chunk_body(
    rx: Arc<Mutex<mpsc::Receiver<Bytes>>>,
    len: u64,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let mut left = len;
    futures::stream::poll_fn(move |cx| {
        if left == 0 {
            return std::task::Poll::Ready(None);
        }
        let mut rx = rx.lock().unwrap_or_else(|p| p.into_inner());
        rx.poll_recv(cx).map(|block| {
            block.map(|b| {
                left = left.saturating_sub(b.len() as u64);
                Ok(b)
            })
        })
    })
}

/// The session a hashing upload goes into.
struct Session {
    id: String,
    /// Bytes the registry holds already (hashed locally, not sent).
    offset: u64,
    /// Where the session is recorded in `uploads.json`.
    key: String,
    /// A session recorded for a digest: only that digest may finish it.
    digest: Option<Digest>,
}

/// Upload `file` while hashing it; returns its digest.
pub async fn upload_hashing(
    client: &Client,
    state: &UploadState,
    file: &Pending,
    bar: &ProgressBar,
    stats: &Stats,
) -> Result<Digest, Failure> {
    let registry = client.base().as_str().to_owned();
    let size = file.size();
    let session = open(client, state, &registry, file).await?;
    stats.resumed.fetch_add(session.offset, Ordering::Relaxed);

    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    let cancel = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, cancel, bar) = (file.miss.path.clone(), cancel.clone(), bar.clone());
        let offset = session.offset;
        tokio::task::spawn_blocking(move || {
            read_hashing(&path, size, offset, CHUNK, tx, &cancel, &bar)
        })
    };
    // The blocks go up in `PATCH`es of at most [`CHUNK`] bytes (the reader splits blocks at
    // those boundaries).
    let mut offset = session.offset;
    let mut failed = None;
    while offset < size {
        let len = CHUNK.min(size - offset);
        let body = reqwest::Body::wrap_stream(chunk_body(rx.clone(), len));
        match client.patch_upload(&session.id, offset, len, body).await {
            Ok(s) if s.offset == offset + len => {
                stats.uploaded.fetch_add(len, Ordering::Relaxed);
                offset = s.offset;
            }
            Ok(s) => {
                cancel.store(true, Ordering::Relaxed);
                failed = Some(Cut::Fatal(Failure::new(
                    SERVER,
                    anyhow!(
                        "the registry reported offset {} after a chunk at {offset} of {size} bytes",
                        s.offset
                    ),
                )));
                break;
            }
            Err(e) => {
                // A refusal that no retry changes stops the reading now; otherwise the file
                // is hashed to its end, to resume under its digest.
                failed = Some(if fatal(&e) {
                    cancel.store(true, Ordering::Relaxed);
                    Cut::Fatal(e.into())
                } else {
                    Cut::Resume
                });
                break;
            }
        }
    }
    // Whatever is still queued is not sent: a reader waiting for room goes on hashing.
    rx.lock().unwrap_or_else(|p| p.into_inner()).close();
    let hashed = reader
        .await
        .map_err(|e| Failure::unreadable(anyhow!("reading thread failed: {e}")))?;
    let (hasher, cut_off) = match (hashed, failed) {
        (_, Some(Cut::Fatal(f))) => return Err(f),
        (Err(e), _) => {
            return Err(Failure::unreadable(anyhow!(
                "{}: {e}",
                file.miss.path.display()
            )));
        }
        (Ok(h), failed) => (h, failed.is_some()),
    };
    let digest = hasher.finish();
    if session.digest.is_some_and(|d| d != digest) {
        // The recorded session holds the prefix of another blob of the same size.
        let _ = client.cancel_upload(&session.id).await;
        state.set_key(&registry, &session.key, None)?;
        return upload_known(client, state, file, digest, bar, stats).await;
    }
    if cut_off {
        // Cut off: carry on with the same session under the digest, from the registry's
        // offset.
        let record = SessionRecord {
            id: session.id.clone(),
            size,
            file: None,
        };
        state.set(&registry, &digest, Some(record))?;
        if session.key != digest.to_string() {
            state.set_key(&registry, &session.key, None)?;
        }
        return upload_known(client, state, file, digest, bar, stats).await;
    }
    let finished = client.finish_upload(&session.id, &digest).await;
    if finished.is_ok() || matches!(&finished, Err(e) if e.code() == Some("digest_mismatch")) {
        state.set_key(&registry, &session.key, None)?;
    }
    let info = finished?;
    check_info(&blob_of(file, digest), info.digest, info.size)?;
    Ok(digest)
}

fn blob_of(file: &Pending, digest: Digest) -> Blob {
    Blob {
        digest,
        size: file.size(),
        label: file.label.clone(),
        source: Source::File(file.miss.path.clone()),
    }
}

/// The digest is known now: the ordinary resumable upload (it resumes a session recorded
/// under the digest).
async fn upload_known(
    client: &Client,
    state: &UploadState,
    file: &Pending,
    digest: Digest,
    bar: &ProgressBar,
    stats: &Stats,
) -> Result<Digest, Failure> {
    upload_resumable(client, state, &blob_of(file, digest), bar, stats).await?;
    Ok(digest)
}

/// An error no retry of the same request changes (4xx other than a moved offset or a
/// session that went away).
fn fatal(e: &ClientError) -> bool {
    match e {
        ClientError::Api { status, .. } => {
            status.is_client_error()
                && *status != reqwest::StatusCode::NOT_FOUND
                && *status != reqwest::StatusCode::RANGE_NOT_SATISFIABLE
        }
        _ => false,
    }
}

/// A recorded session this file may continue (recorded for this very file, or for a digest
/// of the same size, which the finished hash confirms), else a new one.
async fn open(
    client: &Client,
    state: &UploadState,
    registry: &str,
    file: &Pending,
) -> Result<Session, Failure> {
    let size = file.size();
    let file_key = UploadState::file_key(&file.miss.path);
    let candidate = match state.get_key(registry, &file_key) {
        Some(rec) => Some((file_key.clone(), None, rec)),
        None => state
            .find_by_size(registry, size)
            .map(|(d, rec)| (d.to_string(), Some(d), rec)),
    };
    if let Some((key, digest, rec)) = candidate {
        let same_file = digest.is_some() || rec.file == Some(file.miss.before);
        match client.upload_status(&rec.id).await? {
            Some(status) if same_file && rec.size == size && status.offset <= size => {
                return Ok(Session {
                    id: status.id,
                    offset: status.offset,
                    key,
                    digest,
                });
            }
            Some(_) => {
                let _ = client.cancel_upload(&rec.id).await;
                state.set_key(registry, &key, None)?;
            }
            None => state.set_key(registry, &key, None)?,
        }
    }
    let status = client
        .start_upload(&UploadStart {
            digest: None,
            size: Some(size),
        })
        .await?;
    let record = SessionRecord {
        id: status.id.clone(),
        size,
        file: Some(file.miss.before),
    };
    state.set_key(registry, &file_key, Some(record))?;
    Ok(Session {
        id: status.id,
        offset: status.offset,
        key: file_key,
        digest: None,
    })
}

/// Read `size` bytes of `path` once, hashing every block and sending the blocks from
/// `offset` on, split where each `chunk`-byte `PATCH` from `offset` ends. A closed channel
/// (the request failed) does not stop the hashing: the digest is still needed to resume.
/// `cancel` does.
fn read_hashing(
    path: &std::path::Path,
    size: u64,
    offset: u64,
    chunk: u64,
    tx: mpsc::Sender<Bytes>,
    cancel: &AtomicBool,
    bar: &ProgressBar,
) -> std::io::Result<Hasher> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Hasher::new();
    let mut tx = Some(tx);
    let mut pos = 0u64;
    while pos < size {
        if cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("cancelled"));
        }
        let want = usize::try_from((size - pos).min(BLOCK as u64)).unwrap_or(BLOCK);
        // Read into spare capacity: no zeroing of a buffer that is overwritten anyway.
        let mut buf = BLOCKS.take();
        (&mut f).take(want as u64).read_to_end(&mut buf)?;
        if buf.len() < want {
            return Err(std::io::Error::other("the file shrank while it was read"));
        }
        hasher.update(&buf);
        bar.inc(want as u64);
        let end = pos + want as u64;
        if end > offset
            && let Some(sender) = &tx
        {
            let mut block = BLOCKS.freeze(buf);
            let mut at = pos;
            if at < offset {
                block = block.slice(usize::try_from(offset - at).unwrap_or(0)..);
                at = offset;
            }
            // Split where a `PATCH` ends (every CHUNK bytes from `offset`).
            while !block.is_empty() {
                let to_boundary = chunk - (at - offset) % chunk;
                let n = usize::try_from(to_boundary).map_or(block.len(), |b| b.min(block.len()));
                if sender.blocking_send(block.split_to(n)).is_err() {
                    tx = None;
                    break;
                }
                at += n as u64;
            }
        }
        pos = end;
    }
    drop(tx);
    let now = FileStamp::of(&f.metadata()?);
    if now.size != size {
        return Err(std::io::Error::other("the file changed while it was read"));
    }
    Ok(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_hashes_everything_and_sends_from_the_offset_split_at_chunk_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(3 * BLOCK + 12_345)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let size = data.len() as u64;
        let whole = Digest::of_bytes(&data);
        for (offset, chunk) in [(0, CHUNK), (5, 1_000_003), (BLOCK as u64 + 7, 777_777)] {
            let (tx, mut rx) = mpsc::channel(1024);
            let bar = ProgressBar::hidden();
            let h = read_hashing(
                &path,
                size,
                offset,
                chunk,
                tx,
                &AtomicBool::new(false),
                &bar,
            )
            .unwrap();
            assert_eq!(h.finish(), whole, "offset {offset}");
            let mut sent = Vec::new();
            let mut at = offset;
            while let Ok(b) = rx.try_recv() {
                // No block crosses the end of a chunk.
                let end_of_chunk = offset + ((at - offset) / chunk + 1) * chunk;
                assert!(at + b.len() as u64 <= end_of_chunk, "offset {offset}");
                at += b.len() as u64;
                sent.extend_from_slice(&b);
            }
            assert_eq!(sent, data[offset as usize..], "offset {offset}");
        }
    }

    #[test]
    fn a_closed_connection_does_not_stop_the_hash_and_cancel_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = vec![7u8; 2 * BLOCK + 1];
        std::fs::write(&path, &data).unwrap();
        let size = data.len() as u64;
        let bar = ProgressBar::hidden();
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let h = read_hashing(&path, size, 0, CHUNK, tx, &AtomicBool::new(false), &bar).unwrap();
        assert_eq!(h.finish(), Digest::of_bytes(&data));
        let (tx, _rx) = mpsc::channel(8);
        let cancelled = read_hashing(&path, size, 0, CHUNK, tx, &AtomicBool::new(true), &bar);
        assert!(cancelled.is_err());
        // A file shorter than announced is an error, not a short digest.
        let (tx, _rx) = mpsc::channel(8);
        let short = read_hashing(&path, size + 1, 0, CHUNK, tx, &AtomicBool::new(false), &bar);
        assert!(short.is_err());
    }
}
