//! GGUF version 3: a streaming writer and a strict reader.
//!
//! Layout (ggml/docs/gguf.md): magic `GGUF`, version (u32 = 3), tensor count (u64), metadata
//! count (u64), the metadata key/values, the tensor infos (name, dimension count, dimensions
//! in ggml order — the reverse of the PyTorch shape —, ggml type, offset relative to the data
//! section), padding to `general.alignment`, then the tensor data, each tensor starting at a
//! multiple of the alignment. All integers little-endian; strings are u64 length + UTF-8.
//!
//! The writer takes the complete list of tensors (name, dims, type) up front so that it can
//! write every offset before the data, then takes each tensor's bytes in that order: a
//! converter holds one tensor at a time.

use std::io::{self, Read, Write};

use super::{GgmlType, QuantError};

pub const MAGIC: [u8; 4] = *b"GGUF";
pub const VERSION: u32 = 3;
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// A typed metadata value: every GGUF value type; arrays (flat, non-empty, of one item type)
/// are written and read, e.g. the tokenizer's string, f32 and i32 arrays.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    fn type_id(&self) -> u32 {
        match self {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::Str(_) => 8,
            MetaValue::Array(_) => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        match self {
            MetaValue::U32(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            MetaValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(items) => Some(items),
            _ => None,
        }
    }

    /// A string array's items.
    pub fn as_strings(&self) -> Option<Vec<&str>> {
        self.as_array()?.iter().map(MetaValue::as_str).collect()
    }

    /// An i32 array's items.
    pub fn as_i32s(&self) -> Option<Vec<i32>> {
        self.as_array()?
            .iter()
            .map(|v| match v {
                MetaValue::I32(x) => Some(*x),
                _ => None,
            })
            .collect()
    }

    /// An f32 array's items.
    pub fn as_f32s(&self) -> Option<Vec<f32>> {
        self.as_array()?
            .iter()
            .map(|v| match v {
                MetaValue::F32(x) => Some(*x),
                _ => None,
            })
            .collect()
    }

    /// Arrays must be non-empty, flat and of one item type (GGUF stores the type once).
    fn check(&self, key: &str) -> Result<(), QuantError> {
        let MetaValue::Array(items) = self else {
            return Ok(());
        };
        let first = items.first().map(MetaValue::type_id);
        match first {
            None => Err(QuantError::Invalid(format!(
                "metadata `{key}`: empty array"
            ))),
            Some(9) => Err(QuantError::Invalid(format!(
                "metadata `{key}`: nested array"
            ))),
            Some(t) if items.iter().any(|i| i.type_id() != t) => Err(QuantError::Invalid(format!(
                "metadata `{key}`: array items of different types"
            ))),
            Some(_) => Ok(()),
        }
    }
}

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensor {
    pub name: String,
    /// ggml order: `dims[0]` is the row length (the last PyTorch dimension).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Relative to the start of the data section.
    pub offset: u64,
}

impl GgufTensor {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of data (rows × row size).
    pub fn byte_len(&self) -> u64 {
        let row = self.dims.first().copied().unwrap_or(1);
        self.ty.row_bytes(row) * (self.elements() / row.max(1))
    }

    /// [`GgufTensor::byte_len`], or `None` when the element count or the byte length does
    /// not fit 64 bits (what the reader checks before trusting a header's dimensions).
    fn checked_byte_len(&self) -> Option<u64> {
        let row = self.dims.first().copied().unwrap_or(1);
        let elements = self.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        (row / self.ty.block_size())
            .checked_mul(self.ty.block_bytes())?
            .checked_mul(elements / row.max(1))
    }
}

fn pad(pos: u64, alignment: u64) -> u64 {
    (alignment - pos % alignment) % alignment
}

struct Counting<W> {
    inner: W,
    pos: u64,
}

impl<W: Write> Counting<W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.inner.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }
    fn string(&mut self, s: &str) -> io::Result<()> {
        self.put(&(s.len() as u64).to_le_bytes())?;
        self.put(s.as_bytes())
    }
    fn value(&mut self, v: &MetaValue) -> io::Result<()> {
        match v {
            MetaValue::U8(x) => self.put(&[*x]),
            MetaValue::I8(x) => self.put(&x.to_le_bytes()),
            MetaValue::U16(x) => self.put(&x.to_le_bytes()),
            MetaValue::I16(x) => self.put(&x.to_le_bytes()),
            MetaValue::U32(x) => self.put(&x.to_le_bytes()),
            MetaValue::I32(x) => self.put(&x.to_le_bytes()),
            MetaValue::F32(x) => self.put(&x.to_le_bytes()),
            MetaValue::Bool(x) => self.put(&[u8::from(*x)]),
            MetaValue::Str(s) => self.string(s),
            MetaValue::Array(items) => {
                let ty = items.first().map_or(4, MetaValue::type_id);
                self.put(&ty.to_le_bytes())?;
                self.put(&(items.len() as u64).to_le_bytes())?;
                items.iter().try_for_each(|i| self.value(i))
            }
            MetaValue::U64(x) => self.put(&x.to_le_bytes()),
            MetaValue::I64(x) => self.put(&x.to_le_bytes()),
            MetaValue::F64(x) => self.put(&x.to_le_bytes()),
        }
    }
    fn zeros(&mut self, n: u64) -> io::Result<()> {
        let z = [0u8; 64];
        let mut left = n;
        while left > 0 {
            let step = left.min(64) as usize;
            self.put(&z[..step])?;
            left -= step as u64;
        }
        Ok(())
    }
}

/// Streaming GGUF writer: header at [`GgufWriter::start`], then each tensor's data in the
/// order given ([`GgufWriter::write_tensor`] whole or [`GgufWriter::write_part`] in pieces),
/// then [`GgufWriter::finish`].
pub struct GgufWriter<W: Write> {
    out: Counting<W>,
    tensors: Vec<GgufTensor>,
    next: usize,
    /// Bytes of the current tensor written so far.
    part: u64,
    data_start: u64,
    alignment: u64,
}

impl<W: Write> std::fmt::Debug for GgufWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter")
            .field("next", &self.next)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl<W: Write> GgufWriter<W> {
    /// Write the header. `general.alignment` is taken from `metadata` when present (a u32
    /// power of two), else 32. Array values must be non-empty and of one type.
    pub fn start(
        inner: W,
        metadata: &[(String, MetaValue)],
        tensors: &[(String, Vec<u64>, GgmlType)],
    ) -> Result<Self, QuantError> {
        let alignment = metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .map_or(Some(DEFAULT_ALIGNMENT as u32), |(_, v)| v.as_u32())
            .filter(|a| a.is_power_of_two())
            .ok_or_else(|| {
                QuantError::Invalid("general.alignment must be a u32 power of two".into())
            })?;
        let alignment = u64::from(alignment);
        for (k, v) in metadata {
            v.check(k)?;
        }
        let mut infos = Vec::with_capacity(tensors.len());
        let mut offset = 0u64;
        for (name, dims, ty) in tensors {
            let t = GgufTensor {
                name: name.clone(),
                dims: dims.clone(),
                ty: *ty,
                offset,
            };
            if dims.is_empty() || dims[0] % ty.block_size() != 0 {
                return Err(QuantError::Invalid(format!(
                    "tensor `{name}`: row length {} is not a multiple of {}'s block of {}",
                    dims.first().copied().unwrap_or(0),
                    ty.name(),
                    ty.block_size()
                )));
            }
            // Checked: a header's dimensions may describe more than 2^64 bytes in all.
            offset = t
                .checked_byte_len()
                .and_then(|n| offset.checked_add(n))
                .and_then(|end| end.checked_add(pad(end, alignment)))
                .ok_or_else(|| {
                    QuantError::Invalid(format!(
                        "tensor `{name}`: the data would end past 2^64 bytes"
                    ))
                })?;
            infos.push(t);
        }
        let mut out = Counting { inner, pos: 0 };
        out.put(&MAGIC)?;
        out.put(&VERSION.to_le_bytes())?;
        out.put(&(infos.len() as u64).to_le_bytes())?;
        out.put(&(metadata.len() as u64).to_le_bytes())?;
        for (k, v) in metadata {
            out.string(k)?;
            out.put(&v.type_id().to_le_bytes())?;
            out.value(v)?;
        }
        for t in &infos {
            out.string(&t.name)?;
            out.put(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                out.put(&d.to_le_bytes())?;
            }
            out.put(&t.ty.id().to_le_bytes())?;
            out.put(&t.offset.to_le_bytes())?;
        }
        out.zeros(pad(out.pos, alignment))?;
        let data_start = out.pos;
        Ok(Self {
            out,
            tensors: infos,
            next: 0,
            part: 0,
            data_start,
            alignment,
        })
    }

    /// Write the next tensor's data (exactly its byte length) and pad to the alignment.
    pub fn write_tensor(&mut self, bytes: &[u8]) -> Result<(), QuantError> {
        let t = self.current()?;
        if self.part != 0 || bytes.len() as u64 != t.byte_len() {
            return Err(QuantError::Invalid(format!(
                "tensor `{}`: {} bytes given, {} declared",
                t.name,
                bytes.len(),
                t.byte_len()
            )));
        }
        self.write_part(bytes)
    }

    /// Write the next bytes of the current tensor's data (pieces in order; any split). The
    /// piece that completes the tensor pads to the alignment and moves on to the next one;
    /// a tensor of no bytes is completed by an empty piece.
    pub fn write_part(&mut self, bytes: &[u8]) -> Result<(), QuantError> {
        let t = self.current()?;
        let (len, name) = (t.byte_len(), &t.name);
        let end = self.part + bytes.len() as u64;
        if end > len {
            return Err(QuantError::Invalid(format!(
                "tensor `{name}`: {end} bytes given, {len} declared"
            )));
        }
        debug_assert_eq!(self.out.pos, self.data_start + t.offset + self.part);
        self.out.put(bytes)?;
        self.part = end;
        if end == len {
            self.out
                .zeros(pad(self.out.pos - self.data_start, self.alignment))?;
            self.next += 1;
            self.part = 0;
        }
        Ok(())
    }

    fn current(&self) -> Result<&GgufTensor, QuantError> {
        self.tensors
            .get(self.next)
            .ok_or_else(|| QuantError::Invalid("more tensors written than declared".into()))
    }

    /// Check that every tensor was written; returns the sink and the file length.
    pub fn finish(self) -> Result<(W, u64), QuantError> {
        if self.next != self.tensors.len() {
            return Err(QuantError::Invalid(format!(
                "{} of {} tensors written",
                self.next,
                self.tensors.len()
            )));
        }
        Ok((self.out.inner, self.out.pos))
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: Vec<(String, MetaValue)>,
    pub tensors: Vec<GgufTensor>,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_start: u64,
}

impl GgufFile {
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn tensor(&self, name: &str) -> Option<&GgufTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Bounds that keep a hostile header from allocating without limit.
const MAX_STRING: u64 = 1 << 20;
const MAX_COUNT: u64 = 1 << 24;
const MAX_DIMS: u32 = 4;

struct Reader<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], QuantError> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, QuantError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64, QuantError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> Result<String, QuantError> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(QuantError::Invalid(format!("string of {len} bytes")));
        }
        let mut b = vec![0u8; len as usize];
        self.inner.read_exact(&mut b)?;
        self.pos += len;
        String::from_utf8(b).map_err(|_| QuantError::Invalid("string is not UTF-8".into()))
    }
    fn value(&mut self, ty: u32, depth: u32) -> Result<MetaValue, QuantError> {
        Ok(match ty {
            0 => MetaValue::U8(self.bytes::<1>()?[0]),
            1 => MetaValue::I8(i8::from_le_bytes(self.bytes()?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.bytes()?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.bytes()?)),
            4 => MetaValue::U32(self.u32()?),
            5 => MetaValue::I32(i32::from_le_bytes(self.bytes()?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.bytes()?)),
            7 => match self.bytes::<1>()?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(QuantError::Invalid(format!("bool value {b}"))),
            },
            8 => MetaValue::Str(self.string()?),
            9 if depth == 0 => {
                let item = self.u32()?;
                let n = self.u64()?;
                if n > MAX_COUNT {
                    return Err(QuantError::Invalid(format!("array of {n} items")));
                }
                let mut items = Vec::with_capacity(n.min(1024) as usize);
                for _ in 0..n {
                    items.push(self.value(item, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64()?),
            11 => MetaValue::I64(i64::from_le_bytes(self.bytes()?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.bytes()?)),
            t => return Err(QuantError::Invalid(format!("metadata value type {t}"))),
        })
    }
}

/// Parse a GGUF v3 header (metadata and tensor infos), checking the magic, version,
/// alignment and that tensor offsets are aligned, in order and do not overlap.
pub fn read_gguf<R: Read>(inner: R) -> Result<GgufFile, QuantError> {
    let mut r = Reader { inner, pos: 0 };
    if r.bytes::<4>()? != MAGIC {
        return Err(QuantError::Invalid("not a GGUF file (bad magic)".into()));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(QuantError::Invalid(format!(
            "GGUF version {version}, expected 3"
        )));
    }
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    if n_tensors > MAX_COUNT || n_kv > MAX_COUNT {
        return Err(QuantError::Invalid(
            "too many tensors or metadata keys".into(),
        ));
    }
    let mut metadata = Vec::new();
    for _ in 0..n_kv {
        let key = r.string()?;
        let ty = r.u32()?;
        let value = r.value(ty, 0)?;
        if metadata.iter().any(|(k, _)| k == &key) {
            return Err(QuantError::Invalid(format!(
                "duplicate metadata key `{key}`"
            )));
        }
        metadata.push((key, value));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, MetaValue::U32(a))) if a.is_power_of_two() => u64::from(*a),
        Some(_) => return Err(QuantError::Invalid("bad general.alignment".into())),
    };
    let mut tensors: Vec<GgufTensor> = Vec::new();
    let mut end = 0u64;
    for _ in 0..n_tensors {
        let name = r.string()?;
        let n_dims = r.u32()?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(QuantError::Invalid(format!(
                "tensor `{name}`: {n_dims} dimensions"
            )));
        }
        let dims = (0..n_dims)
            .map(|_| r.u64())
            .collect::<Result<Vec<_>, _>>()?;
        let id = r.u32()?;
        let ty = GgmlType::from_id(id)
            .ok_or_else(|| QuantError::Invalid(format!("tensor `{name}`: ggml type {id}")))?;
        let offset = r.u64()?;
        let t = GgufTensor {
            name,
            dims,
            ty,
            offset,
        };
        let len = t.checked_byte_len();
        if t.dims.contains(&0) || len.is_none() || !t.dims[0].is_multiple_of(ty.block_size()) {
            return Err(QuantError::Invalid(format!(
                "tensor `{}`: bad dimensions",
                t.name
            )));
        }
        if offset % alignment != 0 || offset < end {
            return Err(QuantError::Invalid(format!(
                "tensor `{}`: offset {offset} unaligned or overlapping",
                t.name
            )));
        }
        if tensors.iter().any(|o| o.name == t.name) {
            return Err(QuantError::Invalid(format!(
                "duplicate tensor `{}`",
                t.name
            )));
        }
        end = len.and_then(|len| offset.checked_add(len)).ok_or_else(|| {
            QuantError::Invalid(format!(
                "tensor `{}`: offset {offset} + its size overflows",
                t.name
            ))
        })?;
        tensors.push(t);
    }
    let data_start = r.pos + pad(r.pos, alignment);
    Ok(GgufFile {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}
