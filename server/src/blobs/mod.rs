//! The blob store: object_store over a local directory or S3. Keys are derived from
//! digests and session ids only, never from user input.

mod local;
mod sink;

use std::ops::Range;
use std::sync::Arc;

use adapter_core::digest::Digest;
use anyhow::Context as _;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt as _};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::config::BlobStoreConfig;

pub use sink::Sink;

/// A blob-store stream read from a blocking thread ([`BlobStore::blocking_reader`]).
pub type BlockingReader =
    SyncIoBridge<StreamReader<BoxStream<'static, std::io::Result<Bytes>>, Bytes>>;

/// The blob store handle.
#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// The directory of a local store: objects are files below it.
    local_root: Option<std::path::PathBuf>,
}

/// `blobs/sha256/<first 2 hex>/<hex>`.
pub fn blob_key(digest: &Digest) -> Path {
    let hex = digest.hex();
    Path::from(format!("blobs/sha256/{}/{hex}", &hex[..2]))
}

/// Folder of one upload session's parts.
pub fn session_prefix(id: &uuid::Uuid) -> Path {
    Path::from(format!("uploads/{id}"))
}

/// `uploads/<id>/<offset:020>-<uuid>`.
pub fn part_key(id: &uuid::Uuid, offset: u64) -> Path {
    Path::from(format!(
        "uploads/{id}/{offset:020}-{}",
        uuid::Uuid::new_v4()
    ))
}

impl BlobStore {
    pub fn build(config: &BlobStoreConfig) -> anyhow::Result<Self> {
        let inner: Arc<dyn ObjectStore> = match config {
            BlobStoreConfig::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating blob directory {}", dir.display()))?;
                let store = Arc::new(
                    LocalFileSystem::new_with_prefix(dir).context("opening the blob directory")?,
                );
                let root = std::fs::canonicalize(dir)
                    .with_context(|| format!("resolving {}", dir.display()))?;
                return Ok(Self {
                    inner: store,
                    local_root: Some(root),
                });
            }
            BlobStoreConfig::S3(s3) => {
                // From the environment first (web identity / IRSA, EKS Pod Identity and ECS
                // container credentials, AWS_* settings), then what the registry was told.
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(false);
                if let Some(endpoint) = &s3.endpoint {
                    b = b
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if let Some(k) = &s3.access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = &s3.secret_access_key {
                    b = b.with_secret_access_key(k);
                }
                if let Some(t) = &s3.session_token {
                    b = b.with_token(t);
                }
                let store = b.build().context("configuring the S3 blob store")?;
                if s3.prefix.is_empty() {
                    Arc::new(store)
                } else {
                    Arc::new(PrefixStore::new(store, s3.prefix.as_str()))
                }
            }
        };
        Ok(Self {
            inner,
            local_root: None,
        })
    }

    /// Make the object at `key` survive a crash before the registry acknowledges it: on a
    /// local store, fsync the file and its directory (object_store writes and renames
    /// without syncing); an S3 store has made it durable when the write returned.
    pub async fn make_durable(&self, key: &Path) -> std::io::Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let file = root.join(key.as_ref());
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// A writer for `key` (nothing is visible there before [`Sink::finish`]).
    pub fn sink(&self, key: Path) -> Sink {
        Sink::new(self.inner.clone(), key)
    }

    /// Stream `range` of an object (the range must lie inside it).
    pub async fn stream_range(
        &self,
        key: &Path,
        range: Range<u64>,
    ) -> object_store::Result<BoxStream<'static, object_store::Result<Bytes>>> {
        if range.is_empty() {
            return Ok(futures::stream::empty().boxed());
        }
        if let Some(root) = &self.local_root {
            // object_store would read a local file in 8 KiB reads, each a blocking-pool
            // hand-off, into fresh buffers: `local` reads 2 MiB chunks into pooled ones.
            let chunks = local::stream(root.join(key.as_ref()), range)
                .await
                .map_err(|e| local_error(key, e))?;
            let key = key.clone();
            return Ok(chunks.map_err(move |e| local_error(&key, e)).boxed());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        Ok(self.inner.get_opts(key, opts).await?.into_stream())
    }

    /// Stream a whole object, however long it is now (`fsck` compares that length with the
    /// recorded one).
    pub async fn stream_all(
        &self,
        key: &Path,
    ) -> object_store::Result<BoxStream<'static, object_store::Result<Bytes>>> {
        if let Some(root) = &self.local_root {
            let len = tokio::fs::metadata(root.join(key.as_ref()))
                .await
                .map_err(|e| local_error(key, e))?
                .len();
            return self.stream_range(key, 0..len).await;
        }
        Ok(self.inner.get(key).await?.into_stream())
    }

    /// A `Read` over `range` of an object, for code on a blocking thread (`handle`: the
    /// runtime to drive the stream on; never call this from an async task).
    pub fn blocking_reader(
        &self,
        handle: &tokio::runtime::Handle,
        key: &Path,
        range: Range<u64>,
    ) -> object_store::Result<BlockingReader> {
        let stream = handle
            .block_on(self.stream_range(key, range))?
            .map_err(std::io::Error::other)
            .boxed();
        Ok(SyncIoBridge::new_with_handle(
            StreamReader::new(stream),
            handle.clone(),
        ))
    }

    /// Read a small range whole (headers, configs).
    pub async fn read_range(&self, key: &Path, range: Range<u64>) -> object_store::Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        self.inner.get_range(key, range).await
    }

    /// Move an object to another key: an atomic rename on a filesystem, a server-side copy
    /// and delete on S3 (which refuses copies over 5 GB: callers fall back to streaming).
    pub async fn rename(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.rename(from, to).await
    }

    /// The size of the object at `key`, or `None` when there is none.
    pub async fn size(&self, key: &Path) -> object_store::Result<Option<u64>> {
        match self.inner.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn delete(&self, key: &Path) -> object_store::Result<()> {
        match self.inner.delete(key).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Delete every object under `prefix`.
    pub async fn delete_prefix(&self, prefix: &Path) -> object_store::Result<()> {
        let keys: Vec<Path> = self
            .inner
            .list(Some(prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for key in keys {
            self.delete(&key).await?;
        }
        Ok(())
    }

    /// Does the store answer? (a missing probe object is an answer).
    pub async fn ping(&self) -> object_store::Result<()> {
        match self.inner.head(&Path::from("readyz-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// An I/O error of the local store as object_store reports it (a missing file is
/// `NotFound`, which callers answer with 404 or "missing").
fn local_error(key: &Path, e: std::io::Error) -> object_store::Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => object_store::Error::NotFound {
            path: key.to_string(),
            source: Box::new(e),
        },
        _ => object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        },
    }
}
