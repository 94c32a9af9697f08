//! Transfer buffers used again. A large buffer allocated per block of a stream comes from
//! fresh pages each time (the allocator hands big blocks back to the kernel), so every
//! 4 KiB of it costs a page fault and a cleared page before the bytes are even read. A pool
//! keeps a few blocks of one size: [`BufferPool::take`] one, fill it, and
//! [`BufferPool::freeze`] it into `Bytes`, which give it back when the last of them is
//! dropped (after the connection has sent them, say).

use std::sync::Mutex;

use bytes::Bytes;

/// See the module docs. Meant to live in a `static`.
#[derive(Debug)]
pub struct BufferPool {
    size: usize,
    kept: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// Buffers of `size` bytes; at most `kept` of them wait in the pool (more in use at once
    /// are allocated, and freed when they come back).
    pub const fn new(size: usize, kept: usize) -> Self {
        Self {
            size,
            kept,
            free: Mutex::new(Vec::new()),
        }
    }

    /// An empty buffer with room for the pool's size.
    pub fn take(&'static self) -> Vec<u8> {
        self.free
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// `buf` as `Bytes` (slices included) that put it back into the pool when the last of
    /// them is dropped.
    pub fn freeze(&'static self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled { buf, pool: self })
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        if buf.capacity() != self.size {
            return;
        }
        buf.clear();
        if let Ok(mut free) = self.free.lock()
            && free.len() < self.kept
        {
            free.push(buf);
        }
    }
}

/// A buffer on its way back to its pool.
struct Pooled {
    buf: Vec<u8>,
    pool: &'static BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static POOL: BufferPool = BufferPool::new(64, 2);

    /// A buffer comes back once every slice over it is gone, emptied and with its
    /// capacity; no more than `kept` wait; a buffer of another size is not kept.
    #[test]
    fn buffers_come_back_when_the_last_slice_is_dropped() {
        let mut a = POOL.take();
        assert!(a.is_empty() && a.capacity() >= 64);
        a.extend_from_slice(b"hello world");
        let ptr = a.as_ptr();
        let mut bytes = POOL.freeze(a);
        let head = bytes.split_to(5);
        assert_eq!((&head[..], &bytes[..]), (&b"hello"[..], &b" world"[..]));
        drop(head);
        assert!(
            POOL.free.lock().unwrap().is_empty(),
            "a slice still holds it"
        );
        drop(bytes);
        let again = POOL.take();
        assert_eq!(again.as_ptr(), ptr, "the same buffer comes back");
        assert!(again.is_empty());
        let many: Vec<Bytes> = (0..4).map(|_| POOL.freeze(POOL.take())).collect();
        drop(many);
        assert_eq!(POOL.free.lock().unwrap().len(), 2);
        drop(POOL.freeze(Vec::with_capacity(4096)));
        assert_eq!(POOL.free.lock().unwrap().len(), 2);
        drop(again);
    }
}
