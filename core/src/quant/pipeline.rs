//! The GGUF data pipeline: tensors cut in chunks of whole rows, read, decoded, permuted and
//! encoded on worker threads and written in order on the calling thread, so that reading,
//! encoding and writing overlap. A source that can read positionally (a model directory's
//! files: `TensorSource::file_at`) is read by the workers themselves, each its own chunk,
//! so that the copies out of the page cache run in parallel too; a streamed source is read
//! on the calling thread. Memory is a few chunks (1 MiB of f32 each), whatever the size of
//! the largest tensor; the bytes and the error sums do not depend on the number of threads
//! (chunks are cut by size only and their sums are added in order).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use super::gguf::GgufWriter;
use super::input::{ReadAt, at_end, fill, quantisable_width, source_error};
use super::llama::{head_rows, permuted_row};
use super::{GgmlType, QuantError, encode_chunk, ratio};
use crate::floats::{decode_slice, width};
use crate::merge::TensorSource;
use crate::safetensors::{Dtype, TensorInfo};

/// Values per chunk: 1 MiB of f32, rounded to whole rows (whole heads when permuted). A
/// worker reads a chunk and encodes it while it is still in its core's cache (8 MiB chunks
/// were encoded from memory: Q4_0 0.11 s instead of 0.14 s on the small bench model).
pub(crate) const CHUNK_VALUES: usize = 1 << 18;

/// One tensor to write: its source, the stored type and, for llama.cpp's q/k row
/// permutation, its number of heads.
#[derive(Debug)]
pub(crate) struct Tensor<'a> {
    pub info: &'a TensorInfo,
    pub ty: GgmlType,
    pub permute_heads: Option<u64>,
}

/// How a tensor is cut: `rows` of `cols` values (`cols` is the encoding's row length), in
/// chunks of `chunk_rows`; `group` rows per head when permuted.
struct Cut {
    rows: usize,
    cols: usize,
    chunk_rows: usize,
    group: Option<usize>,
}

impl Cut {
    fn of(t: &Tensor<'_>, chunk_values: usize) -> Result<Self, QuantError> {
        let dim = |i: usize| usize::try_from(t.info.shape[i]).unwrap_or(usize::MAX);
        let (rows, cols) = match t.info.shape.len() {
            // A vector of a float type is cut anywhere; a quantised one is one row.
            1 if t.ty.block_size() == 1 => (dim(0), 1),
            1 => (1, dim(0)),
            2 => (dim(0), dim(1)),
            n => {
                return Err(QuantError::Unsupported(format!(
                    "tensor `{}`: {n} dimensions",
                    t.info.name
                )));
            }
        };
        let group = match t.permute_heads {
            Some(h) => Some(
                head_rows(rows, usize::try_from(h).unwrap_or(usize::MAX))
                    .ok_or_else(|| uneven_heads(&t.info.name, rows, h))?,
            ),
            None => None,
        };
        let unit = group.unwrap_or(1);
        let chunk_rows = (chunk_values / cols.max(1) / unit).max(1) * unit;
        Ok(Self {
            rows,
            cols,
            chunk_rows,
            group,
        })
    }
}

/// The refusal of a q/k projection whose rows do not split into heads of even size.
pub(crate) fn uneven_heads(tensor: &str, rows: usize, heads: u64) -> QuantError {
    QuantError::Invalid(format!(
        "tensor `{tensor}`: {rows} rows do not split into {heads} heads of even size"
    ))
}

/// A chunk for a worker.
struct Work<'a> {
    seq: usize,
    tensor: usize,
    info: &'a TensorInfo,
    /// For a positional source, the file and the offset the worker reads `raw` from (so
    /// that the workers read in parallel); else the calling thread filled `raw`.
    at: Option<(Arc<File>, u64)>,
    /// Bytes of the tensor before this chunk.
    done: u64,
    raw: Vec<u8>,
    dtype: Dtype,
    ty: GgmlType,
    cols: usize,
    group: Option<usize>,
}

/// A worker's result: the encoded bytes and the error sums, or why its bytes could not be
/// read; `raw` goes back for reuse.
struct Done {
    seq: usize,
    tensor: usize,
    raw: Vec<u8>,
    bytes: Vec<u8>,
    err: f64,
    norm: f64,
    failed: Option<QuantError>,
}

impl Work<'_> {
    /// Read `raw` when it is this worker's to read; decode (and permute) into `x`, encode
    /// into `out`. Unpermuted little-endian f32 rows are encoded where they lie, without the
    /// copy.
    fn run(mut self, x: &mut Vec<f32>, mut out: Vec<u8>) -> Done {
        out.clear();
        if let Some((file, offset)) = &self.at
            && let Err(e) = fill(
                &mut ReadAt::new(file, *offset),
                &mut self.raw,
                self.info,
                self.done,
            )
        {
            return Done {
                seq: self.seq,
                tensor: self.tensor,
                raw: self.raw,
                bytes: out,
                err: 0.0,
                norm: 0.0,
                failed: Some(e),
            };
        }
        let in_place = match (self.dtype, self.group) {
            (Dtype::F32, None) => le_f32s(&self.raw),
            _ => None,
        };
        let (err, norm) = match in_place {
            Some(values) => encode_chunk(self.ty, values, self.cols, &mut out),
            None => {
                self.decode(x);
                encode_chunk(self.ty, x, self.cols, &mut out)
            }
        };
        Done {
            seq: self.seq,
            tensor: self.tensor,
            raw: self.raw,
            bytes: out,
            err,
            norm,
            failed: None,
        }
    }

    fn decode(&self, x: &mut Vec<f32>) {
        let width = width(self.dtype).unwrap_or(4);
        x.resize(self.raw.len() / width, 0.0);
        match self.group {
            None => decode_slice(self.dtype, &self.raw, x),
            Some(dim) => {
                let cols = self.cols;
                for (src, row) in self.raw.chunks_exact(cols * width).enumerate() {
                    let dst = permuted_row(src, dim);
                    decode_slice(self.dtype, row, &mut x[dst * cols..(dst + 1) * cols]);
                }
            }
        }
    }
}

/// Little-endian f32 bytes as the values they are, when this machine is little-endian and
/// the buffer is aligned for f32 (an allocation of this size always is).
fn le_f32s(raw: &[u8]) -> Option<&[f32]> {
    if cfg!(target_endian = "little") {
        pulp::bytemuck::try_cast_slice(raw).ok()
    } else {
        None
    }
}

fn worker(work: &Mutex<Receiver<Work<'_>>>, done: &Sender<Done>, spare: &Mutex<Vec<Vec<u8>>>) {
    let mut x = Vec::new();
    loop {
        let next = work.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(w) = next else { return };
        let out = spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        if done.send(w.run(&mut x, out)).is_err() {
            return;
        }
    }
}

fn stopped() -> QuantError {
    QuantError::Invalid("the encoder threads stopped".into())
}

/// The calling thread's side: results put back in order and written.
struct Sink<'a, W: Write> {
    w: &'a mut GgufWriter<W>,
    next: usize,
    pending: BTreeMap<usize, Done>,
    sums: Vec<(f64, f64)>,
    /// Chunks read and not yet written (bounds the memory in use).
    in_flight: usize,
    raw: Vec<Vec<u8>>,
    spare: &'a Mutex<Vec<Vec<u8>>>,
}

impl<W: Write> Sink<'_, W> {
    fn take(&mut self, done: &Receiver<Done>) -> Result<(), QuantError> {
        let mut d = done.recv().map_err(|_| stopped())?;
        if let Some(e) = d.failed.take() {
            return Err(e);
        }
        self.pending.insert(d.seq, d);
        while let Some(d) = self.pending.remove(&self.next) {
            self.w.write_part(&d.bytes)?;
            let s = &mut self.sums[d.tensor];
            s.0 += d.err;
            s.1 += d.norm;
            self.raw.push(d.raw);
            self.spare
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(d.bytes);
            self.next += 1;
            self.in_flight -= 1;
        }
        Ok(())
    }
}

/// Write the data of `tensors`, in order, through `w` (whose header declared them so), with
/// `threads` encoder threads and chunks of about `chunk_values` values; returns each
/// tensor's relative RMSE.
pub(crate) fn write_tensors<W: Write>(
    source: &mut dyn TensorSource,
    tensors: &[Tensor<'_>],
    w: &mut GgufWriter<W>,
    threads: usize,
    chunk_values: usize,
) -> Result<Vec<f64>, QuantError> {
    let cuts = tensors
        .iter()
        .map(|t| Cut::of(t, chunk_values))
        .collect::<Result<Vec<_>, _>>()?;
    let threads = threads.max(1);
    let spare = Mutex::new(Vec::new());
    let (work_tx, work_rx) = mpsc::channel::<Work<'_>>();
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let work_rx = Mutex::new(work_rx);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (work, done, spare) = (&work_rx, done_tx.clone(), &spare);
            s.spawn(move || worker(work, &done, spare));
        }
        drop(done_tx);
        let mut sink = Sink {
            w,
            next: 0,
            pending: BTreeMap::new(),
            sums: vec![(0.0, 0.0); tensors.len()],
            in_flight: 0,
            raw: Vec::new(),
            spare: &spare,
        };
        let result = (|| {
            let mut seq = 0;
            for (i, (t, cut)) in tensors.iter().zip(&cuts).enumerate() {
                let width = quantisable_width(t.info)?;
                let at = source
                    .file_at(t.info)
                    .map_err(|e| source_error(&t.info.name, e))?
                    .map(|(file, offset)| (Arc::new(file), offset));
                let mut r = match at {
                    Some(_) => None,
                    None => Some(
                        source
                            .tensor(t.info)
                            .map_err(|e| source_error(&t.info.name, e))?,
                    ),
                };
                let mut row = 0;
                // At least one chunk, so that a tensor of no values is written too.
                loop {
                    let n = cut.chunk_rows.min(cut.rows - row);
                    while sink.in_flight > threads + 1 {
                        sink.take(&done_rx)?;
                    }
                    let mut raw = sink.raw.pop().unwrap_or_default();
                    raw.resize(n * cut.cols * width, 0);
                    let done = (row * cut.cols * width) as u64;
                    if let Some(r) = &mut r {
                        fill(r, &mut raw, t.info, done)?;
                    }
                    let work = Work {
                        seq,
                        tensor: i,
                        info: t.info,
                        at: at
                            .as_ref()
                            .map(|(f, offset)| (Arc::clone(f), offset + done)),
                        done,
                        raw,
                        dtype: t.info.dtype,
                        ty: t.ty,
                        cols: cut.cols,
                        group: cut.group,
                    };
                    work_tx.send(work).map_err(|_| stopped())?;
                    sink.in_flight += 1;
                    seq += 1;
                    row += n;
                    if row >= cut.rows {
                        break;
                    }
                }
                if let Some(r) = &mut r {
                    at_end(r, t.info)?;
                }
            }
            while sink.in_flight > 0 {
                sink.take(&done_rx)?;
            }
            Ok(sink.sums.iter().map(|&(e, n)| ratio(e, n)).collect())
        })();
        // The workers end when the queue closes, whether or not the writing succeeded.
        drop(work_tx);
        result
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{Read, Write};

    use super::*;
    use crate::floats::{self, f32_to_f16};
    use crate::merge::MergeError;
    use crate::quant::llama::permute_rows;
    use crate::quant::{decode, encode, relative_rmse};

    struct Mem(HashMap<String, Vec<u8>>);

    impl TensorSource for Mem {
        fn tensor(&mut self, info: &TensorInfo) -> Result<Box<dyn Read + '_>, MergeError> {
            Ok(Box::new(self.0[&info.name].as_slice()))
        }
    }

    /// The same tensors in one file, read positionally by the workers (as a model
    /// directory's shards are).
    struct Positional {
        file: tempfile::NamedTempFile,
        at: HashMap<String, u64>,
    }

    impl Positional {
        fn of(data: &HashMap<String, Vec<u8>>) -> Self {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            let mut at = HashMap::new();
            let mut offset = 3; // not at the start of the file
            file.write_all(b"pad").unwrap();
            for (name, bytes) in data {
                file.write_all(bytes).unwrap();
                at.insert(name.clone(), offset);
                offset += bytes.len() as u64;
            }
            Self { file, at }
        }
    }

    impl TensorSource for Positional {
        fn tensor(&mut self, _: &TensorInfo) -> Result<Box<dyn Read + '_>, MergeError> {
            unreachable!("a positional source is read by offset")
        }
        fn file_at(&mut self, info: &TensorInfo) -> Result<Option<(File, u64)>, MergeError> {
            Ok(Some((self.file.reopen()?, self.at[&info.name])))
        }
    }

    fn bytes_of(dtype: Dtype, n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .flat_map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.3;
                match dtype {
                    Dtype::F32 => v.to_le_bytes().to_vec(),
                    Dtype::F16 => f32_to_f16(v).to_le_bytes().to_vec(),
                    _ => ((v.to_bits() >> 16) as u16).to_le_bytes().to_vec(),
                }
            })
            .collect()
    }

    /// Chunked, permuted in chunks and encoded on several threads, the data are those of
    /// whole tensors encoded at once, and the errors those of the whole tensors.
    #[test]
    fn chunks_give_the_bytes_and_errors_of_whole_tensors() {
        // name, dtype, shape, stored type, heads to permute
        type Spec = (&'static str, Dtype, Vec<u64>, GgmlType, Option<u64>);
        let specs: [Spec; 6] = [
            ("a", Dtype::F32, vec![64, 96], GgmlType::Q8_0, None),
            ("q", Dtype::BF16, vec![32, 64], GgmlType::Q4_0, Some(4)),
            ("k", Dtype::F16, vec![16, 256], GgmlType::Q4K, Some(2)),
            ("n", Dtype::F32, vec![300], GgmlType::F32, None),
            ("e", Dtype::F32, vec![0, 64], GgmlType::Q8_0, None),
            ("v", Dtype::BF16, vec![24, 256], GgmlType::Q6K, None),
        ];
        let mut data = HashMap::new();
        let mut infos = Vec::new();
        for (i, (name, dtype, shape, ..)) in specs.iter().enumerate() {
            let n = shape.iter().product::<u64>() as usize;
            let raw = bytes_of(*dtype, n, i as u64 + 1);
            infos.push(TensorInfo {
                name: (*name).into(),
                dtype: *dtype,
                shape: shape.clone(),
                data_offsets: (0, raw.len() as u64),
            });
            data.insert((*name).to_owned(), raw);
        }
        let decl: Vec<(String, Vec<u64>, GgmlType)> = specs
            .iter()
            .map(|(name, _, shape, ty, _)| {
                ((*name).into(), shape.iter().rev().copied().collect(), *ty)
            })
            .collect();
        // The reference: each tensor whole.
        let mut want = GgufWriter::start(Vec::new(), &[], &decl).unwrap();
        let mut want_err = Vec::new();
        for (info, (_, _, shape, ty, heads)) in infos.iter().zip(&specs) {
            let mut x = Vec::new();
            floats::decode(info.dtype, &data[&info.name], &mut x);
            if let Some(h) = heads {
                x = permute_rows(&x, shape[0] as usize, shape[1] as usize, *h as usize).unwrap();
            }
            let row = *shape.last().unwrap() as usize;
            let bytes = encode(*ty, &x, row, 1);
            want_err.push(relative_rmse(&x, &decode(*ty, &bytes)));
            want.write_tensor(&bytes).unwrap();
        }
        let want = want.finish().unwrap().0;
        let tensors: Vec<Tensor<'_>> = infos
            .iter()
            .zip(&specs)
            .map(|(info, s)| Tensor {
                info,
                ty: s.3,
                permute_heads: s.4,
            })
            .collect();
        for (threads, chunk) in [(1, 200), (3, 200), (2, 1), (4, CHUNK_VALUES)] {
            let mut w = GgufWriter::start(Vec::new(), &[], &decl).unwrap();
            let errs =
                write_tensors(&mut Mem(data.clone()), &tensors, &mut w, threads, chunk).unwrap();
            assert!(
                w.finish().unwrap().0 == want,
                "{threads} threads, chunks of {chunk}"
            );
            // Read by the workers at offsets: the same bytes and errors.
            let mut w = GgufWriter::start(Vec::new(), &[], &decl).unwrap();
            let at = write_tensors(&mut Positional::of(&data), &tensors, &mut w, threads, chunk);
            assert!(
                w.finish().unwrap().0 == want,
                "positional, {threads} threads, chunks of {chunk}"
            );
            assert_eq!(at.unwrap(), errs);
            for ((e, w), s) in errs.iter().zip(&want_err).zip(&specs) {
                assert!((e - w).abs() <= w * 1e-9, "{}: {e} vs {w}", s.0);
            }
            assert!(errs[0] > 0.0 && errs[3] == 0.0 && errs[4] == 0.0);
        }
    }

    /// A short source is reported against its tensor; the workers wind down.
    #[test]
    fn a_short_tensor_fails_by_name() {
        let info = TensorInfo {
            name: "w".into(),
            dtype: Dtype::F32,
            shape: vec![8, 32],
            data_offsets: (0, 1024),
        };
        let mut data = HashMap::new();
        data.insert("w".to_owned(), bytes_of(Dtype::F32, 200, 1));
        let t = [Tensor {
            info: &info,
            ty: GgmlType::Q8_0,
            permute_heads: None,
        }];
        let mut w = GgufWriter::start(
            Vec::new(),
            &[],
            &[("w".into(), vec![32, 8], GgmlType::Q8_0)],
        )
        .unwrap();
        let err = write_tensors(&mut Mem(data.clone()), &t, &mut w, 2, 64).unwrap_err();
        assert!(err.to_string().contains("`w`"), "{err}");
        // A file that ends inside the tensor, read by the workers at offsets.
        let err = write_tensors(&mut Positional::of(&data), &t, &mut w, 2, 64).unwrap_err();
        assert!(err.to_string().contains("`w`"), "{err}");
    }
}
