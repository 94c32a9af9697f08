//! Named tests for the layout, length, metadata and reading rules of safetensors, each with a hostile input.

use std::io::{self, Cursor, Read};

use adapter_core::safetensors::{
    Limits, SafetensorsError as E, TensorFile, read_header, read_header_file,
};

mod safetensors_support;
use safetensors_support::*;

// ---- layout ----

#[test]
fn rejects_first_offset_not_zero() {
    let err = parse(&file(&one("U8", "[1]", "[1,2]"), &[0, 0])).unwrap_err();
    assert!(
        matches!(err, E::FirstOffsetNotZero { begin: 1, .. }),
        "{err}"
    );
}

fn two(a: (u64, u64), b: (u64, u64)) -> String {
    format!(
        r#"{{"a":{{"dtype":"U8","shape":[{}],"data_offsets":[{},{}]}},"b":{{"dtype":"U8","shape":[{}],"data_offsets":[{},{}]}}}}"#,
        a.1 - a.0,
        a.0,
        a.1,
        b.1 - b.0,
        b.0,
        b.1
    )
}

#[test]
fn rejects_gap_between_tensors() {
    let err = parse(&file(&two((0, 4), (6, 8)), &[0; 8])).unwrap_err();
    assert!(
        matches!(&err, E::OffsetsGap { previous, previous_end: 4, tensor, begin: 6 } if previous == "a" && tensor == "b"),
        "{err}"
    );
    assert_eq!(err.code(), "offsets_gap");
}

#[test]
fn rejects_overlap() {
    let err = parse(&file(&two((0, 4), (2, 6)), &[0; 6])).unwrap_err();
    assert!(
        matches!(&err, E::OffsetsOverlap { previous, previous_end: 4, tensor, begin: 2 } if previous == "a" && tensor == "b"),
        "{err}"
    );
    assert_eq!(err.code(), "offsets_overlap");
    // The same range twice (a polyglot trick) is an overlap too.
    let err = parse(&file(&two((0, 4), (0, 4)), &[0; 4])).unwrap_err();
    assert!(matches!(err, E::OffsetsOverlap { .. }), "{err}");
}

#[test]
fn accepts_rank0_and_empty_tensors() {
    let header = r#"{"scalar":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"empty":{"dtype":"F32","shape":[3,0],"data_offsets":[4,4]},"also_empty":{"dtype":"I64","shape":[0],"data_offsets":[4,4]},"v":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}"#;
    let h = parse(&file(header, &[0; 6])).unwrap();
    let names: Vec<_> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    // Sorted by (begin, end); equal ranges keep file order.
    assert_eq!(names, ["scalar", "empty", "also_empty", "v"]);
    assert_eq!(h.tensor("scalar").unwrap().num_elements(), 1);
    assert_eq!(h.tensor("empty").unwrap().shape, [3, 0]);
    assert_eq!(h.data_len(), 6);
}

#[test]
fn accepts_empty_tensor_listed_after_a_tensor_at_the_same_offset() {
    // Sorted by (begin, end) like the reference: `e` [2,2] goes before `v` [2,4] even though
    // the header lists it last; sorting by begin alone would report a false overlap.
    let header = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"v":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},"e":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}}"#;
    let h = parse(&file(header, &[0; 4])).unwrap();
    let names: Vec<_> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "e", "v"]);
    assert!(safetensors::SafeTensors::deserialize(&file(header, &[0; 4])).is_ok());
}

#[test]
fn sorts_tensors_by_offset_not_header_order() {
    let header = r#"{"z":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},"y":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
    let h = parse(&file(header, &[0; 3])).unwrap();
    assert_eq!(h.tensors[0].name, "y");
    assert_eq!(h.tensors[1].data_offsets, (2, 3));
}

#[test]
fn rejects_offset_overflow() {
    // Each tensor is as large as a u64 bit count allows; eight of them end at u64::MAX - 7,
    // so 8 + N + data_len no longer fits in 64 bits.
    let size = u64::MAX / 8;
    let entries: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#""t{i}":{{"dtype":"U8","shape":[{size}],"data_offsets":[{},{}]}}"#,
                i * size,
                (i + 1) * size
            )
        })
        .collect();
    let header = format!("{{{}}}", entries.join(","));
    let err = parse_stream(&file(&header, b"")).unwrap_err();
    assert!(
        matches!(&err, E::OffsetOverflow { tensor, end } if tensor == "t7" && *end == 8 * size),
        "{err}"
    );
}

// ---- file length ----

#[test]
fn rejects_trailing_bytes_after_data() {
    let bytes = file(&one("U8", "[2]", "[0,2]"), &[1, 2, 3]);
    let err = parse(&bytes).unwrap_err();
    let len = bytes.len() as u64;
    assert!(
        matches!(err, E::TrailingBytes { expected, actual } if actual == len && expected == len - 1),
        "{err}"
    );
    assert_eq!(err.code(), "trailing_bytes");
    // Without a known length there is nothing to compare: the header alone is fine.
    parse_stream(&bytes).unwrap();
}

#[test]
fn rejects_truncated_data() {
    let bytes = file(&one("U8", "[4]", "[0,4]"), &[1, 2, 3]);
    let err = parse(&bytes).unwrap_err();
    let len = bytes.len() as u64;
    assert!(
        matches!(err, E::DataTruncated { expected, actual } if actual == len && expected == len + 1),
        "{err}"
    );
    assert_eq!(err.code(), "data_truncated");
}

// ---- metadata ----

#[test]
fn rejects_non_string_metadata() {
    for value in ["1", "true", "null", "[\"a\"]", "{\"x\":\"y\"}"] {
        let err = parse(&file(
            &format!(r#"{{"__metadata__":{{"format":"pt","n":{value}}}}}"#),
            b"",
        ))
        .unwrap_err();
        assert!(
            matches!(&err, E::MetadataValueNotString { key, .. } if key == "n"),
            "{value}: {err}"
        );
    }
}

#[test]
fn rejects_metadata_not_object() {
    for value in ["\"pt\"", "[]", "null", "1"] {
        let err = parse(&file(&format!(r#"{{"__metadata__":{value}}}"#), b"")).unwrap_err();
        assert!(matches!(err, E::MetadataNotObject { .. }), "{value}: {err}");
    }
}

#[test]
fn keeps_metadata_in_file_order() {
    let header =
        r#"{"__metadata__":{"z":"1","a":"2"},"t":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}"#;
    let h = parse(&file(header, &[9])).unwrap();
    let meta = h.metadata.unwrap();
    assert_eq!(
        meta,
        [
            ("z".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned())
        ]
    );
    assert_eq!(h.tensors.len(), 1, "__metadata__ is not a tensor");
}

// ---- reading ----

/// Yields `limit` bytes of `inner`, then fails: proves nothing past the header is read.
struct FailPast<'a> {
    inner: &'a [u8],
    limit: usize,
}

impl Read for FailPast<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.limit == 0 && !buf.is_empty() {
            return Err(io::Error::other("read past the header"));
        }
        let n = buf.len().min(self.limit).min(self.inner.len());
        buf[..n].copy_from_slice(&self.inner[..n]);
        self.inner = &self.inner[n..];
        self.limit -= n;
        Ok(n)
    }
}

#[test]
fn read_header_consumes_exactly_prefix_and_header() {
    let header = format!("{}   ", one("F32", "[4]", "[0,16]"));
    let bytes = file(&header, &[0; 16]);
    let limit = 8 + header.len();
    let mut reader = FailPast {
        inner: &bytes,
        limit,
    };
    let h = read_header(&mut reader, &Limits::SERVER, Some(bytes.len() as u64)).unwrap();
    assert_eq!(h.data_start(), limit as u64);
    assert_eq!(reader.limit, 0, "all of 8 + N was consumed");
    // And the next byte on the stream is the first data byte.
    let mut counting = Counting {
        inner: &bytes[..],
        read: 0,
    };
    read_header(&mut counting, &Limits::SERVER, None).unwrap();
    assert_eq!(counting.read, limit as u64);
}

#[test]
fn tensor_file_reads_each_tensor_by_name() {
    let header = two((0, 3), (3, 5));
    let bytes = file(&header, &[1, 2, 3, 4, 5]);
    let mut tf = TensorFile::new(Cursor::new(bytes), &Limits::SERVER).unwrap();
    assert_eq!(tf.tensor_bytes("b").unwrap(), [4, 5]);
    assert_eq!(tf.tensor_bytes("a").unwrap(), [1, 2, 3]);
    let mut s = Vec::new();
    tf.tensor_reader("b").unwrap().read_to_end(&mut s).unwrap();
    assert_eq!(s, [4, 5], "the reader stops at the tensor's end");
}

#[test]
fn rejects_unknown_tensor_name() {
    let bytes = file(&one("U8", "[1]", "[0,1]"), &[1]);
    let mut tf = TensorFile::new(Cursor::new(bytes), &Limits::SERVER).unwrap();
    assert!(matches!(tf.tensor_bytes("u"), Err(E::TensorNotFound { name }) if name == "u"));
    assert!(matches!(
        tf.tensor_reader("").map(|_| ()),
        Err(E::TensorNotFound { .. })
    ));
    let err = tf.tensor_bytes("u").unwrap_err();
    assert_eq!(err.code(), "tensor_not_found");
}

#[test]
fn tensor_file_checks_length_of_the_reader() {
    let bytes = file(&one("U8", "[1]", "[0,1]"), &[1, 2]);
    let err = TensorFile::new(Cursor::new(bytes), &Limits::SERVER).unwrap_err();
    assert!(matches!(err, E::TrailingBytes { .. }), "{err}");
}

#[test]
fn read_header_file_uses_the_file_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    std::fs::write(&path, file(&one("U8", "[2]", "[0,2]"), &[1])).unwrap();
    let err = read_header_file(&path, &Limits::REFERENCE).unwrap_err();
    assert!(matches!(err, E::DataTruncated { .. }), "{err}");
    std::fs::write(&path, file(&one("U8", "[2]", "[0,2]"), &[1, 2])).unwrap();
    let h = read_header_file(&path, &Limits::REFERENCE).unwrap();
    assert_eq!(h.file_len(), std::fs::metadata(&path).unwrap().len());
    let mut tf = TensorFile::open(&path, &Limits::REFERENCE).unwrap();
    assert_eq!(tf.tensor_bytes("t").unwrap(), [1, 2]);
    let missing = read_header_file(&dir.path().join("nope"), &Limits::REFERENCE).unwrap_err();
    assert!(matches!(missing, E::Io(_)), "{missing}");
}

#[test]
fn error_codes_are_distinct_snake_case() {
    let cases: Vec<E> = vec![
        parse(b"").unwrap_err(),
        parse(&file(" {}", b"")).unwrap_err(),
        parse(&file("{}\n", b"")).unwrap_err(),
        parse(&raw(b"{\"\xff\":1}", b"")).unwrap_err(),
        parse(&file("{", b"")).unwrap_err(),
        parse(&file(r#"{"a":1,"a":1}"#, b"")).unwrap_err(),
        parse(&file(&two((0, 4), (6, 8)), &[0; 8])).unwrap_err(),
        parse(&file(&two((0, 4), (2, 6)), &[0; 6])).unwrap_err(),
    ];
    let codes: Vec<&str> = cases.iter().map(E::code).collect();
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), codes.len(), "{codes:?}");
    for (code, err) in codes.iter().zip(&cases) {
        assert!(
            code.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{code}"
        );
        assert!(!err.to_string().is_empty());
    }
}
