//! A small streaming safetensors writer: the header (all tensors declared up front, data
//! offsets in declaration order, padded with spaces to a multiple of 8), then each tensor's
//! bytes in that order.

use std::io::Write;

use serde_json::{Map, Value, json};

use super::QuantError;
use crate::safetensors::Dtype;

/// Streaming writer; see the module docs.
#[derive(Debug)]
pub struct SafetensorsWriter<W: Write> {
    out: W,
    sizes: Vec<(String, u64)>,
    next: usize,
    /// Bytes of the current tensor written so far.
    part: u64,
}

impl<W: Write> SafetensorsWriter<W> {
    /// Declare every tensor (name, dtype, shape) and write the header.
    pub fn start(
        mut out: W,
        tensors: &[(String, Dtype, Vec<u64>)],
        metadata: &[(String, String)],
    ) -> Result<Self, QuantError> {
        let mut header = Map::new();
        if !metadata.is_empty() {
            let m: Map<String, Value> = metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            header.insert("__metadata__".into(), Value::Object(m));
        }
        let mut offset = 0u64;
        let mut sizes = Vec::with_capacity(tensors.len());
        for (name, dtype, shape) in tensors {
            let bits = shape.iter().product::<u64>() * dtype.bits();
            if bits % 8 != 0 {
                return Err(QuantError::Invalid(format!(
                    "tensor `{name}`: not whole bytes"
                )));
            }
            let len = bits / 8;
            if header
                .insert(
                    name.clone(),
                    json!({"dtype": dtype.as_str(), "shape": shape, "data_offsets": [offset, offset + len]}),
                )
                .is_some()
            {
                return Err(QuantError::Invalid(format!("duplicate tensor `{name}`")));
            }
            offset += len;
            sizes.push((name.clone(), len));
        }
        let mut text = serde_json::to_vec(&Value::Object(header)).expect("header serialises");
        while !text.len().is_multiple_of(8) {
            text.push(b' ');
        }
        out.write_all(&(text.len() as u64).to_le_bytes())?;
        out.write_all(&text)?;
        Ok(Self {
            out,
            sizes,
            next: 0,
            part: 0,
        })
    }

    /// Write the next declared tensor's bytes.
    pub fn write_tensor(&mut self, bytes: &[u8]) -> Result<(), QuantError> {
        let (name, len) = self.current()?;
        if self.part != 0 || bytes.len() as u64 != *len {
            return Err(QuantError::Invalid(format!(
                "tensor `{name}`: {} bytes given, {len} declared",
                bytes.len()
            )));
        }
        self.write_part(bytes)
    }

    /// Write the next bytes of the current tensor (pieces in order; the piece that completes
    /// it moves on to the next; a tensor of no bytes is completed by an empty piece).
    pub fn write_part(&mut self, bytes: &[u8]) -> Result<(), QuantError> {
        let (name, len) = self.current()?;
        let end = self.part + bytes.len() as u64;
        if end > *len {
            return Err(QuantError::Invalid(format!(
                "tensor `{name}`: {end} bytes given, {len} declared"
            )));
        }
        let len = *len;
        self.out.write_all(bytes)?;
        self.part = end;
        if end == len {
            self.next += 1;
            self.part = 0;
        }
        Ok(())
    }

    fn current(&self) -> Result<&(String, u64), QuantError> {
        self.sizes
            .get(self.next)
            .ok_or_else(|| QuantError::Invalid("more tensors written than declared".into()))
    }

    /// Check every tensor was written and return the sink.
    pub fn finish(self) -> Result<W, QuantError> {
        if self.next != self.sizes.len() {
            return Err(QuantError::Invalid(format!(
                "{} of {} tensors written",
                self.next,
                self.sizes.len()
            )));
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl() -> Vec<(String, Dtype, Vec<u64>)> {
        vec![
            ("a".into(), Dtype::U8, vec![5]),
            ("empty".into(), Dtype::F32, vec![0]),
            ("b".into(), Dtype::U8, vec![3]),
        ]
    }

    /// Pieces give the bytes of whole tensors; a piece past the declared length, or a whole
    /// tensor after a piece of it, is refused.
    #[test]
    fn pieces_write_what_whole_tensors_write() {
        let mut whole = SafetensorsWriter::start(Vec::new(), &decl(), &[]).unwrap();
        whole.write_tensor(b"hello").unwrap();
        whole.write_tensor(b"").unwrap();
        whole.write_tensor(b"abc").unwrap();
        let whole = whole.finish().unwrap();
        let mut parts = SafetensorsWriter::start(Vec::new(), &decl(), &[]).unwrap();
        for p in [&b"he"[..], b"llo", b"", b"a", b"bc"] {
            parts.write_part(p).unwrap();
        }
        assert_eq!(parts.finish().unwrap(), whole);

        let mut w = SafetensorsWriter::start(Vec::new(), &decl(), &[]).unwrap();
        w.write_part(b"hel").unwrap();
        assert!(w.write_part(b"lo!").is_err());
        assert!(w.write_tensor(b"hello").is_err());
        w.write_part(b"lo").unwrap();
        w.write_part(b"").unwrap();
        w.write_part(b"abc").unwrap();
        assert!(w.write_part(b"x").is_err(), "more than declared");
    }
}
