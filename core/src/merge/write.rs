//! Streaming one planned shard: header first (known up front), then each tensor's bytes,
//! read from its source one tensor at a time. Untouched tensors are copied as bytes in
//! bounded chunks; converted ones are converted chunk by chunk; only merged tensors are
//! held in memory, as f32.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};

use super::Device;
use super::MergeError;
use super::kernel::{Matrix, add_bias, apply_dora};
use super::plan::{ShardPlan, Source, TensorPlan};
use crate::floats::{decode, encode, width};
use crate::safetensors::TensorInfo;

/// Bytes moved per step (a multiple of every element width).
const CHUNK: usize = 8 << 20;

/// Something that yields one tensor's bytes by name: a local model directory, a file, or a
/// blob store with ranged reads. The reader must yield exactly `info.byte_len()` bytes.
pub trait TensorSource {
    fn tensor(&mut self, info: &TensorInfo) -> Result<Box<dyn Read + '_>, MergeError>;

    /// The tensor's bytes as a file and the offset of the first, when this source can
    /// read them positionally (several threads at once, each its own part); `None`, the
    /// default, when they only stream through [`tensor`](Self::tensor).
    fn file_at(&mut self, info: &TensorInfo) -> Result<Option<(File, u64)>, MergeError> {
        let _ = info;
        Ok(None)
    }
}

/// What [`write_shard`] reports after each tensor.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub tensor: &'a TensorPlan,
    /// Tensors done in this shard, this one included.
    pub done: usize,
    pub total: usize,
}

fn short(info: &TensorInfo, got: u64) -> MergeError {
    MergeError::Input(format!(
        "{}: the source yielded {got} of {} bytes",
        info.name,
        info.byte_len()
    ))
}

/// Read exactly `buf.len()` bytes or say which tensor came up short.
fn fill(r: &mut dyn Read, buf: &mut [u8], info: &TensorInfo, done: u64) -> Result<(), MergeError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        ErrorKind::UnexpectedEof => short(info, done),
        _ => MergeError::Io(e),
    })
}

/// The whole of a (small or merged) float tensor as f32.
fn read_f32(src: &mut dyn TensorSource, info: &TensorInfo) -> Result<Vec<f32>, MergeError> {
    let total = usize::try_from(info.byte_len())
        .map_err(|_| MergeError::Input(format!("{}: too large for this machine", info.name)))?;
    let mut out = Vec::with_capacity(width(info.dtype).map_or(0, |w| total / w));
    let mut reader = src.tensor(info)?;
    let mut buf = vec![0u8; CHUNK.min(total)];
    let mut done = 0usize;
    while done < total {
        let step = buf.len().min(total - done);
        fill(&mut reader, &mut buf[..step], info, done as u64)?;
        decode(info.dtype, &buf[..step], &mut out);
        done += step;
    }
    Ok(out)
}

fn matrix<'a>(info: &TensorInfo, data: &'a [f32]) -> Result<Matrix<'a>, MergeError> {
    match info.shape.as_slice() {
        [r, c] => Ok(Matrix {
            rows: usize::try_from(*r).unwrap_or(usize::MAX),
            cols: usize::try_from(*c).unwrap_or(usize::MAX),
            data,
        }),
        other => Err(MergeError::Input(format!(
            "{}: expected a matrix, found shape {other:?}",
            info.name
        ))),
    }
}

/// Write `shard` (header and data) to `out`, reading base tensors from `base` and adapter
/// tensors from `adapter`, computing the LoRA products on `device`.
pub fn write_shard(
    shard: &ShardPlan,
    device: &Device,
    base: &mut dyn TensorSource,
    adapter: &mut dyn TensorSource,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(), MergeError> {
    out.write_all(&shard.header)?;
    for (i, t) in shard.tensors.iter().enumerate() {
        let (src, info): (&mut dyn TensorSource, &TensorInfo) = match &t.source {
            Source::Base(info) => (&mut *base, info),
            Source::Adapter(info) => (&mut *adapter, info),
        };
        if t.is_copy() {
            copy(src, info, out)?;
        } else if t.delta.is_none() && t.bias_add.is_none() {
            convert(src, info, t, out)?;
        } else {
            let mut w = read_f32(src, info)?;
            if let Some(d) = &t.delta {
                let a = read_f32(adapter, &d.a)?;
                let b = read_f32(adapter, &d.b)?;
                #[allow(clippy::cast_possible_truncation)] // PEFT multiplies an f32 tensor by it
                let scale = d.scale as f32;
                device
                    .add_delta(
                        &mut w,
                        matrix(&d.a, &a)?,
                        matrix(&d.b, &b)?,
                        scale,
                        d.transposed,
                    )
                    .map_err(|e| e.about(&t.name))?;
                if let Some(m) = &d.magnitude {
                    let m = read_f32(adapter, m)?;
                    apply_dora(&mut w, &m, d.transposed).map_err(|e| e.about(&t.name))?;
                }
            }
            if let Some(bias) = &t.bias_add {
                let lb = read_f32(adapter, &bias.bias)?;
                #[allow(clippy::cast_possible_truncation)]
                let scale = bias.scale as f32;
                add_bias(&mut w, &lb, scale).map_err(|e| e.about(&t.name))?;
            }
            let mut bytes = Vec::with_capacity(CHUNK);
            for part in w.chunks(CHUNK / 4) {
                bytes.clear();
                encode(t.dtype, part, &mut bytes);
                out.write_all(&bytes)?;
            }
        }
        progress(Progress {
            tensor: t,
            done: i + 1,
            total: shard.tensors.len(),
        });
    }
    out.flush()?;
    Ok(())
}

fn copy(
    src: &mut dyn TensorSource,
    info: &TensorInfo,
    out: &mut dyn Write,
) -> Result<(), MergeError> {
    // Our own buffer: `io::copy` through `dyn` reader and writer moves 8 KiB per syscall.
    let total = info.byte_len();
    let mut reader = src.tensor(info)?;
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(total).unwrap_or(CHUNK))];
    let mut done = 0u64;
    while done < total {
        let step = buf
            .len()
            .min(usize::try_from(total - done).unwrap_or(CHUNK));
        fill(&mut reader, &mut buf[..step], info, done)?;
        out.write_all(&buf[..step])?;
        done += step as u64;
    }
    Ok(())
}

fn convert(
    src: &mut dyn TensorSource,
    info: &TensorInfo,
    t: &TensorPlan,
    out: &mut dyn Write,
) -> Result<(), MergeError> {
    let total = info.byte_len();
    let mut reader = src.tensor(info)?;
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(total).unwrap_or(CHUNK))];
    let (mut values, mut bytes) = (Vec::new(), Vec::new());
    let mut done = 0u64;
    while done < total {
        let step = buf
            .len()
            .min(usize::try_from(total - done).unwrap_or(CHUNK));
        fill(&mut reader, &mut buf[..step], info, done)?;
        values.clear();
        bytes.clear();
        decode(info.dtype, &buf[..step], &mut values);
        encode(t.dtype, &values, &mut bytes);
        out.write_all(&bytes)?;
        done += step as u64;
    }
    Ok(())
}
