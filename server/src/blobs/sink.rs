//! A bounded-memory writer to one key: small objects are buffered and written with one
//! `put`; past [`SMALL`] bytes it switches to a multipart upload. Nothing is visible at the
//! key until [`Sink::finish`]; [`Sink::abort`] leaves nothing behind.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, WriteMultipart};

/// Objects up to this size are written with one `put`.
pub const SMALL: usize = 8 * 1024 * 1024;
/// Multipart parts in flight at once (each up to 5 MiB buffered).
const CONCURRENCY: usize = 4;

enum State {
    Buffer(Vec<Bytes>, usize),
    Multipart(WriteMultipart),
}

/// See the module docs.
pub struct Sink {
    store: Arc<dyn ObjectStore>,
    key: Path,
    state: State,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Sink {
    pub fn new(store: Arc<dyn ObjectStore>, key: Path) -> Self {
        Self {
            store,
            key,
            state: State::Buffer(Vec::new(), 0),
        }
    }

    pub async fn write(&mut self, bytes: Bytes) -> object_store::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match &mut self.state {
            State::Buffer(parts, len) if *len + bytes.len() <= SMALL => {
                *len += bytes.len();
                parts.push(bytes);
            }
            State::Buffer(parts, _) => {
                let upload = self.store.put_multipart(&self.key).await?;
                let mut writer = WriteMultipart::new(upload);
                for p in parts.drain(..) {
                    writer.put(p);
                }
                writer.put(bytes);
                self.state = State::Multipart(writer);
                self.wait().await?;
            }
            State::Multipart(writer) => {
                writer.put(bytes);
                self.wait().await?;
            }
        }
        Ok(())
    }

    async fn wait(&mut self) -> object_store::Result<()> {
        if let State::Multipart(w) = &mut self.state {
            w.wait_for_capacity(CONCURRENCY).await?;
        }
        Ok(())
    }

    /// Make the object visible at its key.
    pub async fn finish(self) -> object_store::Result<()> {
        match self.state {
            State::Buffer(parts, _) => {
                let payload: PutPayload = parts.into_iter().collect();
                self.store.put(&self.key, payload).await.map(|_| ())
            }
            State::Multipart(w) => w.finish().await.map(|_| ()),
        }
    }

    /// Drop what was written; nothing becomes visible.
    pub async fn abort(self) {
        if let State::Multipart(w) = self.state
            && let Err(e) = w.abort().await
        {
            tracing::warn!(error = %e, key = %self.key, "aborting a multipart upload failed");
        }
    }
}
