//! Helpers shared by the safetensors rule tests.

#![allow(dead_code)]

use std::io::{self, Read};

use adapter_core::safetensors::{Header, Limits, SafetensorsError as E, read_header};

/// 8-byte prefix + header bytes + data.
pub fn raw(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

pub fn file(header: &str, data: &[u8]) -> Vec<u8> {
    raw(header.as_bytes(), data)
}

/// Parse with the file length known.
pub fn parse(bytes: &[u8]) -> Result<Header, E> {
    read_header(bytes, &Limits::REFERENCE, Some(bytes.len() as u64))
}

/// Parse as a stream of unknown length.
pub fn parse_stream(bytes: &[u8]) -> Result<Header, E> {
    read_header(bytes, &Limits::REFERENCE, None)
}

pub fn one(dtype: &str, shape: &str, offsets: &str) -> String {
    format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}}}"#)
}

/// Counts what was read, so a test can prove how much of the input was consumed.
pub struct Counting<R> {
    pub inner: R,
    pub read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}
