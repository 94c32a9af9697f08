//! Uploading blobs: small ones in one streamed `PUT`, large ones through resumable sessions
//! (`POST /v1/uploads`, `PATCH` chunks with `Upload-Offset`, `PUT ?digest=`), resumed from
//! the server's offset after an interruption; large files not hashed yet are hashed while
//! they upload ([`hashing`]). Files are never read whole into memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use adapter_core::api::UploadStart;
use adapter_core::digest::Digest;
use anyhow::anyhow;
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::cache::{SessionRecord, UploadState};

mod hashing;

use crate::client::{Client, ClientError, wrong_offset};
use crate::exit::{Failure, SERVER, VERIFY};
use crate::progress::Bars;
pub use hashing::Pending;

/// Files up to this size go in one `PUT`; larger ones through a resumable session.
pub const MONOLITHIC_MAX: u64 = 64 << 20;
/// Most bytes per `PATCH`. The registry keeps what arrived when a chunk is interrupted, so
/// large chunks lose nothing on a failure, and a file sent in one chunk becomes its blob by a
/// rename (filesystem) or server-side copy (S3, up to 5 GB) instead of a second write. The
/// cap keeps one chunk within S3's 10,000 parts of the registry's 5 MiB multipart writes.
pub const CHUNK: u64 = 32 << 30;
/// Uploads in flight at once.
pub const CONCURRENCY: usize = 4;
/// How many times one session may fail to make progress (network errors, offset
/// corrections) before the push gives up; a re-run resumes.
const MAX_STALLS: u32 = 5;

/// Where a blob's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// Small in-memory blobs (safetensors headers of a headers-only model).
    Bytes(Arc<Vec<u8>>),
}

#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub label: String,
    pub source: Source,
}

/// Counters over all uploads of one push.
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes sent and accepted by the server.
    pub uploaded: AtomicU64,
    /// Bytes a resumed session already held on the server.
    pub resumed: AtomicU64,
}

/// One upload of a push.
#[derive(Debug, Clone)]
pub enum Job {
    /// A blob whose digest is known (the registry said it lacks it).
    Known(Blob),
    /// A large file not hashed yet: hashed while it uploads ([`hashing`]).
    Hashing(Pending),
}

/// Upload every job, [`CONCURRENCY`] at a time. Returns the counters and, in the order of
/// `jobs`, the digest of each [`Job::Hashing`] file.
pub async fn upload_all(
    client: &Client,
    state: &UploadState,
    jobs: Vec<Job>,
    bars: &Bars,
) -> Result<(Stats, Vec<Option<Digest>>), Failure> {
    let stats = Stats::default();
    let digests = futures::stream::iter(jobs)
        .map(|job| {
            let stats = &stats;
            async move {
                match job {
                    Job::Known(blob) => {
                        let bar = bars.bytes(&blob.label, blob.size);
                        let r = if blob.size <= MONOLITHIC_MAX
                            || matches!(blob.source, Source::Bytes(_))
                        {
                            upload_whole(client, &blob, &bar, stats).await
                        } else {
                            upload_resumable(client, state, &blob, &bar, stats).await
                        };
                        bar.finish_and_clear();
                        r.map(|()| None)
                            .map_err(|f| f.context(format!("uploading {}", blob.label)))
                    }
                    Job::Hashing(file) => {
                        let bar = bars.bytes(&file.label, file.miss.before.size);
                        let r = hashing::upload_hashing(client, state, &file, &bar, stats).await;
                        bar.finish_and_clear();
                        r.map(Some)
                            .map_err(|f| f.context(format!("uploading {}", file.label)))
                    }
                }
            }
        })
        .buffered(CONCURRENCY)
        .try_collect::<Vec<Option<Digest>>>()
        .await?;
    Ok((stats, digests))
}

/// The body for bytes `offset..offset + len` of the blob, streamed.
async fn body(
    source: &Source,
    offset: u64,
    len: u64,
    bar: &ProgressBar,
) -> Result<reqwest::Body, Failure> {
    match source {
        Source::Bytes(b) => {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
            let end = usize::try_from(offset.saturating_add(len))
                .unwrap_or(usize::MAX)
                .min(b.len());
            bar.inc(len);
            Ok(reqwest::Body::from(b[start..end].to_vec()))
        }
        Source::File(path) => {
            let mut f = tokio::fs::File::open(path)
                .await
                .map_err(|e| Failure::unreadable(anyhow!("{}: {e}", path.display())))?;
            f.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| Failure::unreadable(anyhow!("{}: {e}", path.display())))?;
            let bar = bar.clone();
            let stream = ReaderStream::with_capacity(f.take(len), 1 << 20)
                .inspect_ok(move |chunk| bar.inc(chunk.len() as u64));
            Ok(reqwest::Body::wrap_stream(stream))
        }
    }
}

async fn upload_whole(
    client: &Client,
    blob: &Blob,
    bar: &ProgressBar,
    stats: &Stats,
) -> Result<(), Failure> {
    let body = body(&blob.source, 0, blob.size, bar).await?;
    let info = client.put_blob(&blob.digest, blob.size, body).await?;
    check_info(blob, info.digest, info.size)?;
    stats.uploaded.fetch_add(blob.size, Ordering::Relaxed);
    Ok(())
}

fn check_info(blob: &Blob, digest: Digest, size: u64) -> Result<(), Failure> {
    if digest != blob.digest || size != blob.size {
        return Err(Failure::new(
            VERIFY,
            anyhow!(
                "the registry stored {digest} ({size} bytes), expected {} ({} bytes)",
                blob.digest,
                blob.size
            ),
        ));
    }
    Ok(())
}

async fn upload_resumable(
    client: &Client,
    state: &UploadState,
    blob: &Blob,
    bar: &ProgressBar,
    stats: &Stats,
) -> Result<(), Failure> {
    let registry = client.base().as_str().to_owned();
    let record = |id: &str| {
        state.set(
            &registry,
            &blob.digest,
            Some(SessionRecord {
                id: id.to_owned(),
                size: blob.size,
                file: None,
            }),
        )
    };
    // A recorded session for this digest: continue where the server says it is.
    let mut session = None;
    if let Some(rec) = state.get(&registry, &blob.digest) {
        match client.upload_status(&rec.id).await? {
            Some(status) if rec.size == blob.size && status.offset <= blob.size => {
                stats.resumed.fetch_add(status.offset, Ordering::Relaxed);
                session = Some((status.id, status.offset));
            }
            Some(_) => {
                // Recorded for another size or beyond it: unusable. Drop it on the server too.
                let _ = client.cancel_upload(&rec.id).await;
                state.set(&registry, &blob.digest, None)?;
            }
            None => state.set(&registry, &blob.digest, None)?,
        }
    }
    let mut restarted = false;
    'session: loop {
        let (id, mut offset) = match session.take() {
            Some(s) => s,
            None => {
                let status = client
                    .start_upload(&UploadStart {
                        digest: Some(blob.digest),
                        size: Some(blob.size),
                    })
                    .await?;
                record(&status.id)?;
                (status.id, status.offset)
            }
        };
        bar.set_position(offset);
        let mut stalls = 0;
        while offset < blob.size {
            let len = CHUNK.min(blob.size - offset);
            let body = body(&blob.source, offset, len, bar).await?;
            match client.patch_upload(&id, offset, len, body).await {
                Ok(status) if status.offset > offset && status.offset <= blob.size => {
                    stats
                        .uploaded
                        .fetch_add(status.offset - offset, Ordering::Relaxed);
                    offset = status.offset;
                    stalls = 0;
                }
                Ok(status) => {
                    return Err(Failure::new(
                        SERVER,
                        anyhow!(
                            "the registry reported offset {} after a chunk at {offset} of {} bytes",
                            status.offset,
                            blob.size
                        ),
                    ));
                }
                Err(e) => {
                    stalls += 1;
                    if stalls > MAX_STALLS {
                        return Err(e.into());
                    }
                    if let Some(server_offset) = wrong_offset(&e) {
                        if server_offset > blob.size {
                            return Err(e.into());
                        }
                        offset = server_offset;
                    } else if e.is_not_found() {
                        // The session expired or was removed: start a new one, once.
                        state.set(&registry, &blob.digest, None)?;
                        if restarted {
                            return Err(e.into());
                        }
                        restarted = true;
                        continue 'session;
                    } else if matches!(e, ClientError::Network { .. }) {
                        match client.upload_status(&id).await {
                            Ok(Some(s)) if s.offset <= blob.size => offset = s.offset,
                            _ => return Err(e.into()),
                        }
                    } else {
                        return Err(e.into());
                    }
                    bar.set_position(offset);
                }
            }
        }
        let finished = client.finish_upload(&id, &blob.digest).await;
        // Finished or refused: either way the session is gone on the server.
        if finished.is_ok() || matches!(&finished, Err(e) if e.code() == Some("digest_mismatch")) {
            state.set(&registry, &blob.digest, None)?;
        }
        let info = finished?;
        return check_info(blob, info.digest, info.size);
    }
}
