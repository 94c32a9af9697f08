//! The safetensors header reader (`adapter_core::safetensors::read_header`) on arbitrary
//! bytes, as a whole file (length known) and as a stream (length unknown).
//!
//! Beyond "no panic": a header we accept has its tensors sorted, contiguous from offset 0,
//! each exactly `prod(shape) * bits / 8` bytes, inside the file; the stream reading agrees
//! with the file reading; and the reference reader (the `safetensors` crate) accepts every
//! file we accept (we are stricter, never laxer).
#![no_main]

use std::io::Cursor;

use adapter_core::safetensors::{Limits, read_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::SERVER;
    let len = data.len() as u64;
    let as_file = read_header(Cursor::new(data), &limits, Some(len));
    // A stream reads exactly 8 + N bytes and never needs the length.
    let as_stream = read_header(Cursor::new(data), &limits, None);
    let Ok(header) = as_file else {
        return;
    };
    assert_eq!(
        as_stream.as_ref().ok(),
        Some(&header),
        "stream and file disagree"
    );
    assert_eq!(
        header.file_len(),
        len,
        "accepted header does not cover the file"
    );
    let mut next = 0u64;
    for t in &header.tensors {
        let (begin, end) = t.data_offsets;
        assert_eq!(begin, next, "gap or overlap before `{}`", t.name);
        assert!(begin <= end);
        let bits = t
            .num_elements()
            .checked_mul(t.dtype.bits())
            .expect("accepted size overflows");
        assert_eq!(bits % 8, 0);
        assert_eq!(t.byte_len(), bits / 8, "size of `{}`", t.name);
        assert!(
            header.data_start() + end <= len,
            "`{}` past the end",
            t.name
        );
        next = end;
    }
    assert_eq!(next, header.data_len());
    let reference = safetensors::SafeTensors::deserialize(data);
    assert!(
        reference.is_ok(),
        "we accept what the reference reader refuses: {:?}",
        reference.err()
    );
    let reference = reference.unwrap();
    assert_eq!(reference.len(), header.tensors.len());
    for t in &header.tensors {
        let view = reference
            .tensor(&t.name)
            .expect("tensor missing in the reference");
        let shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
        assert_eq!(shape, t.shape, "shape of `{}`", t.name);
        assert_eq!(
            view.data().len() as u64,
            t.byte_len(),
            "bytes of `{}`",
            t.name
        );
    }
});
