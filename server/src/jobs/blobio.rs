//! The blob store seen from blocking kernel code. The merge and quantise kernels in `core`
//! are synchronous and stream one tensor at a time; a job runs them on a blocking thread
//! with:
//! * [`BlobTensors`]: a `TensorSource` over stored safetensors files, each tensor read as a
//!   ranged stream of its bytes (never a whole file);
//! * [`BlobWriter`]: a `Write` that hashes what it is given and streams it, through a
//!   bounded channel, into a staging object under `jobs/<job id>/`; [`commit`] then makes it
//!   the content-addressed blob (or drops it when that blob exists already).
//!
//! Nothing a job stages is visible as a blob before [`commit`], and an attempt starts by
//! deleting what an earlier, interrupted attempt staged ([`clear_staging`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use adapter_core::digest::{Digest, Hasher};
use adapter_core::merge::{MergeError, TensorSource};
use adapter_core::safetensors::{Limits, TensorInfo};
use anyhow::Context as _;
use bytes::Bytes;
use object_store::path::Path;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::blobs::{BlobStore, blob_key};
use crate::publish::read::safetensors_header;

/// Bytes handed to the uploading task at a time.
const CHUNK: usize = 8 << 20;
/// Chunks in flight between the kernel and the upload (bounds the writer's memory).
const IN_FLIGHT: usize = 2;

/// Folder of a job's staged objects.
pub fn staging_prefix(job: &str) -> Path {
    Path::from(format!("jobs/{job}"))
}

/// Delete everything a job staged (an earlier attempt's leftovers, or this one's).
pub async fn clear_staging(app: &AppState, job: &str) -> anyhow::Result<()> {
    app.blobs
        .delete_prefix(&staging_prefix(job))
        .await
        .with_context(|| format!("clearing the staging objects of {job}"))
}

/// Delete the staging objects of jobs that ended (or no longer exist): what an attempt left
/// when its worker died and no later attempt ran (a cancel, the last attempt). Jobs queued
/// or running keep theirs (the next attempt clears them itself). Returns the jobs swept.
pub async fn sweep_staging(app: &AppState) -> anyhow::Result<usize> {
    let listed = app
        .blobs
        .object_store()
        .list_with_delimiter(Some(&Path::from("jobs")))
        .await?;
    let mut swept = 0;
    for prefix in listed.common_prefixes {
        let Some(id) = prefix.filename() else {
            continue;
        };
        let ended = match app.db.job(id).await? {
            None => true,
            Some(job) => job.state.is_terminal(),
        };
        if ended {
            clear_staging(app, id).await?;
            swept += 1;
        }
    }
    Ok(swept)
}

/// One stored safetensors file: its path in the version, blob and size.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
}

/// Stored safetensors files read one tensor at a time. Built on the async side
/// ([`BlobTensors::open`]), used on a blocking thread.
#[derive(Debug)]
pub struct BlobTensors {
    handle: Handle,
    blobs: BlobStore,
    /// Tensor name → its blob, the offset of its bytes in it, and its header entry.
    at: HashMap<String, (Path, u64, TensorInfo)>,
}

impl BlobTensors {
    /// Read the headers of `files`; returns the source and every tensor's header entry.
    /// `code` names the error when a header does not parse (`invalid_model`, …).
    pub async fn open(
        app: &AppState,
        files: &[StoredFile],
        code: &'static str,
    ) -> anyhow::Result<(Self, BTreeMap<String, TensorInfo>)> {
        let mut at = HashMap::new();
        let mut infos = BTreeMap::new();
        for f in files {
            let header = safetensors_header(app, &f.digest, f.size, f.size, Limits::SERVER)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.into_api(code, &f.path)))?;
            let start = header.data_start();
            for t in header.tensors {
                if infos.insert(t.name.clone(), t.clone()).is_some() {
                    anyhow::bail!("tensor `{}` is in more than one weights file", t.name);
                }
                at.insert(t.name.clone(), (blob_key(&f.digest), start, t));
            }
        }
        let source = Self {
            handle: Handle::current(),
            blobs: app.blobs.clone(),
            at,
        };
        Ok((source, infos))
    }
}

impl TensorSource for BlobTensors {
    fn tensor(&mut self, info: &TensorInfo) -> Result<Box<dyn Read + '_>, MergeError> {
        let (key, start, have) = self
            .at
            .get(&info.name)
            .ok_or_else(|| MergeError::Input(format!("no stored tensor {}", info.name)))?;
        if have != info {
            return Err(MergeError::Input(format!(
                "{}: the stored header differs from the plan",
                info.name
            )));
        }
        let range = start + have.data_offsets.0..start + have.data_offsets.1;
        let reader = self
            .blobs
            .blocking_reader(&self.handle, key, range)
            .map_err(io::Error::other)?;
        Ok(Box::new(reader))
    }
}

/// A staged object, hashed: [`commit`] it to make it a blob.
#[derive(Debug, Clone)]
pub struct Staged {
    pub key: Path,
    pub digest: Digest,
    pub size: u64,
}

/// See the module docs. Writes fail once the job was cancelled (or lost its lease), which
/// stops the kernel at its next write.
pub struct BlobWriter {
    key: Path,
    tx: Option<mpsc::Sender<Option<Bytes>>>,
    task: JoinHandle<object_store::Result<()>>,
    buf: Vec<u8>,
    hasher: Hasher,
    cancelled: Arc<AtomicBool>,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    /// A writer to a new staging object of `job`. Call on the async side (it spawns the
    /// uploading task); write from a blocking thread.
    pub fn new(app: &AppState, job: &str, cancelled: Arc<AtomicBool>) -> Self {
        let key = Path::from(format!("jobs/{job}/{}", uuid::Uuid::new_v4().simple()));
        // `Some(bytes)`, then `None` from finish; a writer dropped without finishing (an
        // error, a cancel) closes the channel and the upload is aborted.
        let (tx, mut rx) = mpsc::channel::<Option<Bytes>>(IN_FLIGHT);
        let mut sink = app.blobs.sink(key.clone());
        let task = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Some(Some(chunk)) => {
                        if let Err(e) = sink.write(chunk).await {
                            sink.abort().await;
                            return Err(e);
                        }
                    }
                    Some(None) => return sink.finish().await,
                    None => {
                        sink.abort().await;
                        return Err(object_store::Error::Generic {
                            store: "staging",
                            source: "the writer stopped before finishing".into(),
                        });
                    }
                }
            }
        });
        Self {
            key,
            tx: Some(tx),
            task,
            buf: Vec::with_capacity(CHUNK),
            hasher: Hasher::new(),
            cancelled,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("the writer is finished"))?;
        tx.blocking_send(Some(chunk))
            .map_err(|_| io::Error::other("the upload to the blob store stopped"))
    }

    /// Send what is left and wait for the staging object to be complete (blocking thread).
    pub fn finish(mut self) -> anyhow::Result<Staged> {
        self.send()?;
        if let Some(tx) = self.tx.take() {
            tx.blocking_send(None)
                .map_err(|_| io::Error::other("the upload to the blob store stopped"))?;
        }
        let handle = Handle::current();
        handle
            .block_on(self.task)
            .context("the upload task stopped")?
            .with_context(|| format!("writing {}", self.key))?;
        Ok(Staged {
            key: self.key,
            size: self.hasher.len(),
            digest: self.hasher.finish(),
        })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(io::Error::other("the job was cancelled"));
        }
        self.hasher.update(data);
        let mut rest = data;
        while !rest.is_empty() {
            let n = (CHUNK - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.buf.len() == CHUNK {
                self.send()?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Make a staged object the blob of its digest (or drop it when that blob exists), and
/// record the blob.
pub async fn commit(app: &AppState, staged: &Staged) -> anyhow::Result<()> {
    if app.db.blob_size(&staged.digest).await?.is_none() {
        crate::uploads::place_blob(app, &[(staged.key.clone(), staged.size)], &staged.digest)
            .await
            .map_err(|e| anyhow::anyhow!("storing {}: {e}", staged.digest))?;
        crate::uploads::record_blob(app, &staged.digest, staged.size)
            .await
            .map_err(|e| anyhow::anyhow!("recording {}: {e}", staged.digest))?;
    }
    app.blobs.delete(&staged.key).await?;
    Ok(())
}

/// Store small bytes (an index file) as a blob; returns its digest and size.
pub async fn put_small(app: &AppState, bytes: Vec<u8>) -> anyhow::Result<(Digest, u64)> {
    let digest = Digest::of_bytes(&bytes);
    let size = bytes.len() as u64;
    if app.db.blob_size(&digest).await?.is_none() {
        let mut sink = app.blobs.sink(blob_key(&digest));
        sink.write(Bytes::from(bytes)).await?;
        sink.finish().await?;
        crate::uploads::record_blob(app, &digest, size)
            .await
            .map_err(|e| anyhow::anyhow!("recording {digest}: {e}"))?;
    }
    Ok((digest, size))
}
