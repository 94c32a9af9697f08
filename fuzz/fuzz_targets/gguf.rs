//! The GGUF reader (`adapter_core::quant::gguf::read_gguf`) on arbitrary bytes. An accepted
//! header has aligned, ordered, non-overlapping tensors and a data section that starts on the
//! alignment after the header; writing it back with `GgufWriter` gives a header that reads
//! back to the same metadata and tensors, and writes the same bytes again.
#![no_main]

use std::io::Cursor;

use adapter_core::quant::gguf::{GgufFile, GgufWriter, read_gguf};
use libfuzzer_sys::fuzz_target;

/// The rewrite pads its header to the alignment with zeros: linear work, but a header with
/// `general.alignment = 2^29` asks for 512 MiB of them (the long run's one timeout, in this
/// harness, not in the reader). Round trips are checked below this bound.
const MAX_REWRITE_ALIGNMENT: u64 = 1 << 20;

fn rewrite(file: &GgufFile) -> Option<Vec<u8>> {
    if file.alignment > MAX_REWRITE_ALIGNMENT {
        return None;
    }
    let tensors: Vec<_> = file
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.dims.clone(), t.ty))
        .collect();
    // The writer refuses some headers the reader takes (empty arrays): not a round trip.
    // Only the header is wanted: the writer is dropped before any tensor data.
    let mut out = Vec::new();
    GgufWriter::start(&mut out, &file.metadata, &tensors).ok()?;
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = read_gguf(Cursor::new(data)) else {
        return;
    };
    assert!(file.alignment.is_power_of_two());
    assert_eq!(file.data_start % file.alignment, 0);
    assert!(file.data_start <= data.len() as u64 + file.alignment);
    let mut end = 0u64;
    for t in &file.tensors {
        assert_eq!(t.offset % file.alignment, 0, "`{}` unaligned", t.name);
        assert!(t.offset >= end, "`{}` overlaps", t.name);
        end = t
            .offset
            .checked_add(t.byte_len())
            .expect("accepted end overflows");
    }
    let Some(written) = rewrite(&file) else {
        return;
    };
    let back = read_gguf(Cursor::new(&written)).expect("written header reads back");
    assert_eq!(back.tensors.len(), file.tensors.len());
    for (a, b) in back.tensors.iter().zip(&file.tensors) {
        assert_eq!((&a.name, &a.dims, a.ty), (&b.name, &b.dims, b.ty));
    }
    assert_eq!(
        rewrite(&back).as_ref(),
        Some(&written),
        "rewrite is not stable"
    );
});
