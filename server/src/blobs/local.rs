//! Reading a range of a blob in the local store: 2 MiB chunks read on a blocking thread
//! into buffers that go back to a small pool once the response has sent them. A fresh
//! 4 MiB buffer per chunk (object_store's way) cost a page fault and a cleared page per
//! 4 KiB sent: the pool took a fifth off the server's CPU in a pull (docs/BENCHMARKS.md,
//! issue 15).

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;

use adapter_core::buffers::BufferPool;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;

/// Bytes per chunk read (and per frame handed to the connection).
const CHUNK: usize = 2 << 20;
/// Buffers the pool keeps between responses (more in use at once are allocated and freed):
/// at most 16 MiB held while idle.
const KEPT: usize = 8;

static POOL: BufferPool = BufferPool::new(CHUNK, KEPT);

/// Bytes `range` of the file at `path`, in chunks of at most [`CHUNK`]. The file is opened
/// first (a missing one fails here); one that ends before `range.end` fails with
/// `UnexpectedEof` when the stream gets there.
pub async fn stream(
    path: PathBuf,
    range: Range<u64>,
) -> std::io::Result<BoxStream<'static, std::io::Result<Bytes>>> {
    let file = tokio::task::spawn_blocking(move || {
        let mut file = File::open(&path)?;
        file.seek(SeekFrom::Start(range.start))?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(std::io::Error::other)??;
    let chunks =
        futures::stream::try_unfold((file, range.end - range.start), |(file, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let (file, chunk) = tokio::task::spawn_blocking(move || read_chunk(file, left))
                .await
                .map_err(std::io::Error::other)??;
            let n = chunk.len() as u64;
            Ok(Some((chunk, (file, left - n))))
        });
    Ok(chunks.boxed())
}

/// The next chunk of at most `left` bytes (and at most [`CHUNK`]) from `file`'s cursor.
fn read_chunk(mut file: File, left: u64) -> std::io::Result<(File, Bytes)> {
    let want = left.min(CHUNK as u64);
    let mut buf = POOL.take();
    // Into the buffer's spare capacity: nothing is zeroed first.
    (&mut file).take(want).read_to_end(&mut buf)?;
    if (buf.len() as u64) < want {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the blob file is shorter than its recorded size",
        ));
    }
    Ok((file, POOL.freeze(buf)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt as _;

    async fn read(path: &std::path::Path, range: Range<u64>) -> std::io::Result<Vec<Vec<u8>>> {
        stream(path.to_owned(), range)
            .await?
            .map_ok(|b| b.to_vec())
            .try_collect()
            .await
    }

    /// Any range comes back whole, in chunks of at most CHUNK, through buffers used again;
    /// a file shorter than the range and a missing file fail.
    #[tokio::test]
    async fn ranges_come_back_in_chunks_and_short_files_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..(2 * CHUNK + 12_345) as u32)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        for range in [
            0..data.len() as u64,
            1..2,
            CHUNK as u64 - 3..CHUNK as u64 + 7,
            5..data.len() as u64 - 5,
        ] {
            for _ in 0..2 {
                let chunks = read(&path, range.clone()).await.unwrap();
                assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= CHUNK));
                assert_eq!(
                    chunks.concat(),
                    data[range.start as usize..range.end as usize]
                );
            }
        }
        let e = read(&path, 10..data.len() as u64 + 1).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let e = read(&dir.path().join("missing"), 0..1).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(read(&path, 0..0).await.unwrap().is_empty());
    }
}
