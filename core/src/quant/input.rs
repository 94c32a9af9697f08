//! Reading a model's tensors through a [`TensorSource`], one tensor at a time, with every
//! short, long or failing read reported against the tensor's name.

use std::fs::File;
use std::io::{ErrorKind, Read};

use super::QuantError;
use crate::floats::{decode, width};
use crate::merge::{MergeError, TensorSource};
use crate::safetensors::TensorInfo;

/// Bytes read per step (a multiple of every float width).
const CHUNK: usize = 4 << 20;

/// The error for a failure of the source while reading `tensor`.
pub(crate) fn source_error(tensor: &str, source: MergeError) -> QuantError {
    QuantError::Source {
        tensor: tensor.to_owned(),
        source: Box::new(source),
    }
}

fn short(info: &TensorInfo, got: u64) -> QuantError {
    source_error(
        &info.name,
        MergeError::Input(format!(
            "the source yielded {got} of {} bytes",
            info.byte_len()
        )),
    )
}

/// Bytes per value of a tensor we can quantise (F32 / F16 / BF16); other dtypes are refused.
pub(crate) fn quantisable_width(info: &TensorInfo) -> Result<usize, QuantError> {
    width(info.dtype).ok_or_else(|| {
        QuantError::Unsupported(format!(
            "tensor `{}`: dtype {} cannot be quantised (F32, F16 or BF16 expected)",
            info.name, info.dtype
        ))
    })
}

/// Check that the header's byte length is the shape times the dtype's width (the reader
/// must yield exactly that many bytes).
pub(crate) fn check_len(info: &TensorInfo) -> Result<(), QuantError> {
    let bits = info
        .shape
        .iter()
        .try_fold(info.dtype.bits(), |a, &d| a.checked_mul(d));
    if bits.is_none_or(|b| b.div_ceil(8) != info.byte_len()) {
        return Err(QuantError::Invalid(format!(
            "tensor `{}`: {} bytes for shape {:?} of {}",
            info.name,
            info.byte_len(),
            info.shape,
            info.dtype
        )));
    }
    Ok(())
}

/// A file read from an offset on with positional reads: no shared cursor, so that threads
/// may each read their own part of one file at once.
pub(crate) struct ReadAt<'a> {
    file: &'a File,
    offset: u64,
}

impl<'a> ReadAt<'a> {
    pub(crate) fn new(file: &'a File, offset: u64) -> Self {
        Self { file, offset }
    }
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.offset)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Read exactly `buf.len()` bytes (`done` bytes of the tensor came before).
pub(crate) fn fill(
    r: &mut dyn Read,
    buf: &mut [u8],
    info: &TensorInfo,
    done: u64,
) -> Result<(), QuantError> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => return Err(short(info, done + at as u64)),
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(source_error(&info.name, MergeError::Io(e))),
        }
    }
    Ok(())
}

/// After the declared bytes the reader must be at its end.
pub(crate) fn at_end(r: &mut dyn Read, info: &TensorInfo) -> Result<(), QuantError> {
    let mut one = [0u8; 1];
    loop {
        return match r.read(&mut one) {
            Ok(0) => Ok(()),
            Ok(_) => Err(source_error(
                &info.name,
                MergeError::Input(format!(
                    "the source yielded more than the {} bytes declared",
                    info.byte_len()
                )),
            )),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => Err(source_error(&info.name, MergeError::Io(e))),
        };
    }
}

fn total(info: &TensorInfo) -> Result<usize, QuantError> {
    usize::try_from(info.byte_len()).map_err(|_| {
        QuantError::Unsupported(format!(
            "tensor `{}`: too large for this machine",
            info.name
        ))
    })
}

/// Pass a tensor's bytes unchanged to `sink`, [`CHUNK`] bytes at a time (once, empty, for a
/// tensor of no bytes): never the whole tensor in memory.
pub(crate) fn copy_raw(
    src: &mut dyn TensorSource,
    info: &TensorInfo,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), QuantError>,
) -> Result<(), QuantError> {
    check_len(info)?;
    let total = total(info)?;
    let mut r = src.tensor(info).map_err(|e| source_error(&info.name, e))?;
    let mut buf = vec![0u8; CHUNK.min(total)];
    let mut done = 0;
    loop {
        let step = buf.len().min(total - done);
        fill(&mut r, &mut buf[..step], info, done as u64)?;
        sink(&buf[..step])?;
        done += step;
        if done >= total {
            break;
        }
    }
    at_end(&mut r, info)
}

/// Read an F32 / F16 / BF16 tensor as f32, decoding chunk by chunk (the raw bytes are never
/// held whole).
pub(crate) fn read_f32(
    src: &mut dyn TensorSource,
    info: &TensorInfo,
) -> Result<Vec<f32>, QuantError> {
    let width = quantisable_width(info)?;
    check_len(info)?;
    let total = total(info)?;
    let mut out = Vec::with_capacity(total / width);
    let mut r = src.tensor(info).map_err(|e| source_error(&info.name, e))?;
    let mut buf = vec![0u8; CHUNK.min(total)];
    let mut done = 0;
    while done < total {
        let step = buf.len().min(total - done);
        fill(&mut r, &mut buf[..step], info, done as u64)?;
        decode(info.dtype, &buf[..step], &mut out);
        done += step;
    }
    at_end(&mut r, info)?;
    Ok(out)
}

/// A writer that counts the bytes it passes on.
pub(crate) struct Counted<W> {
    pub inner: W,
    pub bytes: u64,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
