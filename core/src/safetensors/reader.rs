//! Reading tensor bytes by name without loading the rest.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

use super::floats::{Class, Layout};
use super::{Header, Limits, SafetensorsError, TensorInfo, read_header};

/// Bytes read per step by [`TensorFile::float_stats`]: a multiple of every element size.
const CHUNK: usize = 1 << 20;

/// Counts over a float tensor's values, read in bounded chunks.
///
/// For C64 each complex element counts as two values (real and imaginary part), so
/// `elements` is twice the element count and each part is classified on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloatStats {
    pub elements: u64,
    pub nan: u64,
    pub inf: u64,
    /// Values that are exactly zero (+0 or -0).
    pub zeros: u64,
}

impl FloatStats {
    fn add(&mut self, class: Class) {
        self.elements += 1;
        match class {
            Class::Nan => self.nan += 1,
            Class::Inf => self.inf += 1,
            Class::Zero => self.zeros += 1,
            Class::Finite => {}
        }
    }
}

/// A safetensors file opened for reading: the validated header plus the underlying reader.
#[derive(Debug)]
pub struct TensorFile<R> {
    header: Header,
    /// Tensor name → index into `header.tensors` (names are unique: duplicates are refused).
    index: HashMap<String, usize>,
    inner: R,
}

impl TensorFile<File> {
    /// Open a file, validating its header against its length.
    pub fn open(path: &Path, limits: &Limits) -> Result<Self, SafetensorsError> {
        Self::new(File::open(path)?, limits)
    }

    /// A handle of the file and where tensor `name`'s bytes start in it, for positional
    /// reads (the header was validated against the file's length when it was opened).
    pub fn tensor_at(&self, name: &str) -> Result<(File, u64), SafetensorsError> {
        let begin = self.info(name)?.data_offsets.0;
        Ok((self.inner.try_clone()?, self.header.data_start() + begin))
    }
}

impl<R: Read + Seek> TensorFile<R> {
    /// Validate the header of `inner` (whose length is found by seeking to the end).
    pub fn new(mut inner: R, limits: &Limits) -> Result<Self, SafetensorsError> {
        let len = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(0))?;
        let header = read_header(&mut inner, limits, Some(len))?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            header,
            index,
            inner,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The underlying reader (its position is unspecified).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Look a tensor up by name (constant time).
    pub fn info(&self, name: &str) -> Result<&TensorInfo, SafetensorsError> {
        self.index
            .get(name)
            .and_then(|&i| self.header.tensors.get(i))
            .ok_or_else(|| SafetensorsError::TensorNotFound {
                name: name.to_owned(),
            })
    }

    /// A reader over exactly one tensor's bytes.
    pub fn tensor_reader(&mut self, name: &str) -> Result<impl Read + '_, SafetensorsError> {
        let (begin, len) = {
            let info = self.info(name)?;
            (info.data_offsets.0, info.byte_len())
        };
        self.inner
            .seek(SeekFrom::Start(self.header.data_start() + begin))?;
        Ok(self.inner.by_ref().take(len))
    }

    /// One tensor's bytes in memory (use for small tensors only).
    pub fn tensor_bytes(&mut self, name: &str) -> Result<Vec<u8>, SafetensorsError> {
        let (begin, end) = self.info(name)?.data_offsets;
        let data_start = self.header.data_start();
        let len = end - begin;
        // The header was checked against the file length, so `len` bytes exist.
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        self.tensor_reader(name)?.read_to_end(&mut out)?;
        if (out.len() as u64) < len {
            return Err(SafetensorsError::DataTruncated {
                expected: data_start + end,
                actual: data_start + begin + out.len() as u64,
            });
        }
        Ok(out)
    }

    /// NaN / Inf / zero counts over a float tensor, streaming in bounded chunks.
    /// `None` for dtypes that have no NaN/Inf or that are not decoded (integers, F4, F6).
    /// `info` must be one of this file's tensors ([`SafetensorsError::TensorNotFound`]
    /// otherwise), so that no byte outside its range is ever read.
    pub fn float_stats(
        &mut self,
        info: &TensorInfo,
    ) -> Result<Option<FloatStats>, SafetensorsError> {
        if self.info(&info.name)? != info {
            return Err(SafetensorsError::TensorNotFound {
                name: info.name.clone(),
            });
        }
        let Some(layout) = Layout::of(info.dtype) else {
            return Ok(None);
        };
        let (begin, end) = info.data_offsets;
        let data_start = self.header.data_start();
        let mut stats = FloatStats::default();
        let mut buf = vec![0u8; CHUNK.min(usize::try_from(end - begin).unwrap_or(CHUNK))];
        let mut reader = self.tensor_reader(&info.name)?;
        let mut done = 0u64;
        while done < end - begin {
            let step = buf
                .len()
                .min(usize::try_from(end - begin - done).unwrap_or(CHUNK));
            let chunk = &mut buf[..step];
            reader.read_exact(chunk).map_err(|e| match e.kind() {
                ErrorKind::UnexpectedEof => SafetensorsError::DataTruncated {
                    expected: data_start + end,
                    actual: data_start + begin + done,
                },
                _ => SafetensorsError::Io(e),
            })?;
            // `step` is a multiple of the element size: CHUNK is, and so is the tensor length.
            layout.classify_all(chunk, &mut |class| stats.add(class));
            done += step as u64;
        }
        Ok(Some(stats))
    }
}
