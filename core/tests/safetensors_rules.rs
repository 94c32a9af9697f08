//! One named test per rule of the safetensors header, each with a hostile input.

use std::io::{self, Cursor, Read};

use adapter_core::safetensors::{
    Dtype, Header, Limits, SafetensorsError as E, TensorFile, read_header, read_header_file,
};

/// 8-byte prefix + header bytes + data.
fn raw(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

fn file(header: &str, data: &[u8]) -> Vec<u8> {
    raw(header.as_bytes(), data)
}

/// Parse with the file length known.
fn parse(bytes: &[u8]) -> Result<Header, E> {
    read_header(bytes, &Limits::REFERENCE, Some(bytes.len() as u64))
}

/// Parse as a stream of unknown length.
fn parse_stream(bytes: &[u8]) -> Result<Header, E> {
    read_header(bytes, &Limits::REFERENCE, None)
}

fn one(dtype: &str, shape: &str, offsets: &str) -> String {
    format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}}}"#)
}

// ---- prefix and header bytes ----

#[test]
fn rejects_file_shorter_than_prefix() {
    for len in 0..8 {
        let bytes = vec![2u8; len];
        let err = parse(&bytes).unwrap_err();
        assert!(
            matches!(err, E::PrefixTruncated { got } if got == len as u64),
            "{err}"
        );
        let err = parse_stream(&bytes).unwrap_err();
        assert!(
            matches!(err, E::PrefixTruncated { got } if got == len as u64),
            "{err}"
        );
        assert_eq!(err.code(), "prefix_truncated");
    }
}

/// Counts what was read, so a test can prove how much of the input was consumed.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

#[test]
fn rejects_header_len_over_limit_without_allocating() {
    let limits = Limits {
        max_header_len: 1024,
        max_tensors: 10,
    };
    for n in [1025u64, 1 << 40, u64::MAX] {
        // Followed by an endless stream: reading (or allocating) N bytes would hang or abort.
        let mut reader = Counting {
            inner: Cursor::new(n.to_le_bytes()).chain(io::repeat(b' ')),
            read: 0,
        };
        let err = read_header(&mut reader, &limits, None).unwrap_err();
        assert!(
            matches!(err, E::HeaderTooLarge { len, max: 1024 } if len == n),
            "{err}"
        );
        assert_eq!(reader.read, 8, "only the prefix may be read");
    }
    // Even with no limit at all, 8 + N must fit in 64 bits.
    let unlimited = Limits {
        max_header_len: u64::MAX,
        max_tensors: 10,
    };
    let err = read_header(&u64::MAX.to_le_bytes()[..], &unlimited, None).unwrap_err();
    assert!(matches!(err, E::HeaderTooLarge { .. }), "{err}");
    // The reference cap itself: 100,000,000 is allowed, one more is not.
    let err = parse(&100_000_001u64.to_le_bytes()).unwrap_err();
    assert!(matches!(
        err,
        E::HeaderTooLarge {
            len: 100_000_001,
            max: 100_000_000
        }
    ));
    let err = parse(&100_000_000u64.to_le_bytes()).unwrap_err();
    assert!(matches!(
        err,
        E::HeaderTruncated {
            declared: 100_000_000,
            available: 0
        }
    ));
}

#[test]
fn rejects_zero_header_len() {
    let err = parse(&raw(b"", b"")).unwrap_err();
    assert!(matches!(err, E::HeaderEmpty), "{err}");
    assert_eq!(err.code(), "header_empty");
}

#[test]
fn rejects_truncated_header() {
    let mut bytes = file(r#"{"__metadata__":{"a":"b"}}"#, b"");
    bytes.truncate(bytes.len() - 3);
    let err = parse(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            E::HeaderTruncated {
                declared: 26,
                available: 23
            }
        ),
        "{err}"
    );
    let err = parse_stream(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            E::HeaderTruncated {
                declared: 26,
                available: 23
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_leading_whitespace() {
    for header in [" {}", "\n{}", "\t{}", "\r{}", "\u{feff}{}"] {
        let err = parse(&file(header, b"")).unwrap_err();
        assert!(matches!(err, E::HeaderBadStart { .. }), "{header:?}: {err}");
    }
    let err = parse(&file("[]", b"")).unwrap_err();
    assert!(matches!(err, E::HeaderBadStart { found: b'[' }), "{err}");
}

#[test]
fn accepts_trailing_space_padding() {
    for pad in 0..16 {
        let header = format!("{}{}", one("U8", "[2]", "[0,2]"), " ".repeat(pad));
        let h = parse(&file(&header, &[1, 2])).unwrap();
        assert_eq!(h.header_len, header.len() as u64);
        assert_eq!(h.data_start(), 8 + header.len() as u64);
        assert_eq!(h.file_len(), 8 + header.len() as u64 + 2);
    }
}

#[test]
fn rejects_padding_other_than_spaces() {
    for (pad, byte) in [("\n", b'\n'), ("\t", b'\t'), ("\r", b'\r'), (" \n ", b'\n')] {
        let err = parse(&file(&format!("{{}}{pad}"), b"")).unwrap_err();
        assert!(
            matches!(err, E::HeaderBadPadding { found, offset } if found == byte && offset >= 2),
            "{pad:?}: {err}"
        );
        assert_eq!(err.code(), "header_bad_padding");
    }
    // NUL padding (a common bug in hand-written writers) is not JSON at all.
    let err = parse(&raw(b"{}\0\0", b"")).unwrap_err();
    assert!(matches!(err, E::HeaderInvalidJson { .. }), "{err}");
}

#[test]
fn accepts_whitespace_between_json_tokens() {
    let header =
        "{ \"t\" :\n\t{\"dtype\": \"U8\", \"shape\": [ 1 ], \"data_offsets\": [0, 1]}\r\n}";
    let h = parse(&file(header, &[7])).unwrap();
    assert_eq!(h.tensors[0].name, "t");
}

#[test]
fn rejects_invalid_utf8() {
    let err = parse(&raw(b"{\"\xff\":1}", b"")).unwrap_err();
    assert!(matches!(err, E::HeaderNotUtf8 { .. }), "{err}");
    // Overlong encoding of '/' and a lone surrogate.
    let err = parse(&raw(b"{\"\xc0\xaf\":1}", b"")).unwrap_err();
    assert!(matches!(err, E::HeaderNotUtf8 { .. }), "{err}");
    let err = parse(&raw(b"{\"\xed\xa0\x80\":1}", b"")).unwrap_err();
    assert!(matches!(err, E::HeaderNotUtf8 { .. }), "{err}");
}

#[test]
fn rejects_invalid_json() {
    for header in [
        r#"{"t":"#,
        "{'t':1}",
        "{} {}",
        r#"{"t":{"dtype":"U8",}}"#,
        "{}x",
    ] {
        let err = parse(&file(header, b"")).unwrap_err();
        assert!(
            matches!(err, E::HeaderInvalidJson { .. }),
            "{header}: {err}"
        );
        assert_eq!(err.code(), "header_invalid_json");
    }
}

// ---- duplicate keys ----

#[test]
fn rejects_duplicate_tensor_name() {
    let header = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
    let err = parse(&file(header, &[1, 2])).unwrap_err();
    assert!(
        matches!(&err, E::DuplicateKey { detail } if detail.contains("`a`")),
        "{err}"
    );
    assert_eq!(err.code(), "duplicate_key");
}

#[test]
fn rejects_duplicate_key_in_tensor_entry() {
    let header = r#"{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}"#;
    let err = parse(&file(header, &[1])).unwrap_err();
    assert!(
        matches!(&err, E::DuplicateKey { detail } if detail.contains("`dtype`")),
        "{err}"
    );
}

#[test]
fn rejects_duplicate_metadata_key() {
    let header = r#"{"__metadata__":{"k":"1","k":"2"}}"#;
    let err = parse(&file(header, b"")).unwrap_err();
    assert!(
        matches!(&err, E::DuplicateKey { detail } if detail.contains("`k`")),
        "{err}"
    );
    let header = r#"{"__metadata__":{},"__metadata__":{}}"#;
    let err = parse(&file(header, b"")).unwrap_err();
    assert!(matches!(err, E::DuplicateKey { .. }), "{err}");
}

// ---- entries ----

#[test]
fn accepts_empty_header() {
    let h = parse(&file("{}", b"")).unwrap();
    assert!(h.tensors.is_empty());
    assert_eq!(h.metadata, None);
    assert_eq!((h.data_len(), h.file_len()), (0, 10));
}

#[test]
fn rejects_too_many_tensors() {
    let limits = Limits {
        max_header_len: 1 << 20,
        max_tensors: 2,
    };
    let entry = |n: &str, b: u64| {
        format!(
            r#""{n}":{{"dtype":"U8","shape":[1],"data_offsets":[{b},{}]}}"#,
            b + 1
        )
    };
    let two = format!(
        r#"{{"__metadata__":{{}},{},{}}}"#,
        entry("a", 0),
        entry("b", 1)
    );
    let bytes = file(&two, &[0, 0]);
    read_header(&bytes[..], &limits, Some(bytes.len() as u64)).unwrap();
    let three = format!("{{{},{},{}}}", entry("a", 0), entry("b", 1), entry("c", 2));
    let bytes = file(&three, &[0, 0, 0]);
    let err = read_header(&bytes[..], &limits, Some(bytes.len() as u64)).unwrap_err();
    assert!(
        matches!(err, E::TooManyTensors { count: 3, max: 2 }),
        "{err}"
    );
}

#[test]
fn rejects_empty_tensor_name() {
    let header = r#"{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
    let err = parse(&file(header, &[1])).unwrap_err();
    assert!(matches!(err, E::EmptyTensorName), "{err}");
}

#[test]
fn rejects_tensor_entry_not_object() {
    for entry in ["1", "\"U8\"", "[]", "null"] {
        let err = parse(&file(&format!(r#"{{"w":{entry}}}"#), b"")).unwrap_err();
        assert!(
            matches!(&err, E::TensorNotObject { tensor, .. } if tensor == "w"),
            "{err}"
        );
    }
}

#[test]
fn rejects_missing_field() {
    for (header, missing) in [
        (r#"{"w":{"shape":[1],"data_offsets":[0,1]}}"#, "dtype"),
        (r#"{"w":{"dtype":"U8","data_offsets":[0,1]}}"#, "shape"),
        (r#"{"w":{"dtype":"U8","shape":[1]}}"#, "data_offsets"),
    ] {
        let err = parse(&file(header, &[1])).unwrap_err();
        assert!(
            matches!(&err, E::MissingField { tensor, field } if tensor == "w" && *field == missing),
            "{err}"
        );
    }
}

#[test]
fn rejects_unknown_field() {
    let header = r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"offset":0}}"#;
    let err = parse(&file(header, &[1])).unwrap_err();
    assert!(
        matches!(&err, E::UnknownField { tensor, field } if tensor == "w" && field == "offset"),
        "{err}"
    );
}

#[test]
fn rejects_unknown_dtype() {
    for dtype in [
        r#""f32""#,
        r#""F8_E4M3FN""#,
        r#""Q4_0""#,
        "32",
        "null",
        r#""""#,
    ] {
        let header = format!(r#"{{"w":{{"dtype":{dtype},"shape":[1],"data_offsets":[0,4]}}}}"#);
        let err = parse(&file(&header, &[0; 4])).unwrap_err();
        assert!(
            matches!(&err, E::UnknownDtype { tensor, dtype: d } if tensor == "w" && d == dtype),
            "{err}"
        );
    }
}

#[test]
fn accepts_every_dtype() {
    for dtype in Dtype::ALL {
        // 8 elements is a whole number of bytes for every bit width.
        let size = 8 * dtype.bits() / 8;
        let header = one(dtype.as_str(), "[2,4]", &format!("[0,{size}]"));
        let h = parse(&file(&header, &vec![0; size as usize])).unwrap();
        assert_eq!(h.tensors[0].dtype, dtype);
        assert_eq!(h.tensors[0].num_elements(), 8);
        assert_eq!(h.tensors[0].byte_len(), size);
    }
}

#[test]
fn rejects_invalid_shape() {
    for shape in [
        "[-1]",
        "[1.5]",
        "[\"2\"]",
        "2",
        "null",
        "[18446744073709551616]",
        "[[1]]",
    ] {
        let err = parse(&file(&one("U8", shape, "[0,1]"), &[1])).unwrap_err();
        assert!(
            matches!(&err, E::InvalidShape { tensor, .. } if tensor == "t"),
            "{shape}: {err}"
        );
    }
}

#[test]
fn rejects_shape_overflow() {
    // 2^32 * 2^32 elements overflow u64; 2^62 elements × 32 bits overflow the bit count.
    for (dtype, shape) in [
        ("U8", "[4294967296,4294967296]"),
        ("F32", "[4611686018427387904]"),
    ] {
        let err = parse(&file(&one(dtype, shape, "[0,0]"), b"")).unwrap_err();
        assert!(
            matches!(&err, E::ShapeOverflow { tensor, .. } if tensor == "t"),
            "{err}"
        );
        assert_eq!(err.code(), "shape_overflow");
    }
    // A zero dimension makes the product 0 even with huge others: that is valid.
    let h = parse(&file(&one("F64", "[0,18446744073709551615]", "[0,0]"), b"")).unwrap();
    assert_eq!(h.tensors[0].byte_len(), 0);
}

#[test]
fn rejects_partial_byte_f4() {
    let err = parse(&file(&one("F4", "[3]", "[0,1]"), &[0])).unwrap_err();
    assert!(
        matches!(
            err,
            E::PartialByte {
                dtype: Dtype::F4,
                elements: 3,
                bits: 4,
                ..
            }
        ),
        "{err}"
    );
    let err = parse(&file(&one("F6_E2M3", "[2]", "[0,1]"), &[0])).unwrap_err();
    assert!(
        matches!(
            err,
            E::PartialByte {
                dtype: Dtype::F6E2M3,
                elements: 2,
                ..
            }
        ),
        "{err}"
    );
    // Rank 0 is one element: 4 bits.
    let err = parse(&file(&one("F4", "[]", "[0,0]"), b"")).unwrap_err();
    assert!(matches!(err, E::PartialByte { elements: 1, .. }), "{err}");
}

#[test]
fn accepts_f4_whole_bytes() {
    let h = parse(&file(&one("F4", "[2,3]", "[0,3]"), &[0; 3])).unwrap();
    assert_eq!(h.tensors[0].byte_len(), 3);
    let h = parse(&file(&one("F6_E3M2", "[4]", "[0,3]"), &[0; 3])).unwrap();
    assert_eq!(h.tensors[0].byte_len(), 3);
}

#[test]
fn rejects_invalid_data_offsets() {
    for offsets in [
        "[0]",
        "[0,1,2]",
        "[-1,0]",
        "[0,\"1\"]",
        "{}",
        "1",
        "[0,1.0]",
        "[0,18446744073709551616]",
    ] {
        let err = parse(&file(&one("U8", "[1]", offsets), &[1])).unwrap_err();
        assert!(
            matches!(&err, E::InvalidDataOffsets { tensor, .. } if tensor == "t"),
            "{offsets}: {err}"
        );
    }
}

#[test]
fn rejects_reversed_offsets() {
    let err = parse(&file(&one("U8", "[0]", "[4,2]"), &[0; 4])).unwrap_err();
    assert!(
        matches!(
            err,
            E::OffsetsReversed {
                begin: 4,
                end: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_size_mismatch() {
    let err = parse(&file(&one("F32", "[2]", "[0,4]"), &[0; 4])).unwrap_err();
    assert!(
        matches!(
            err,
            E::SizeMismatch {
                expected: 8,
                actual: 4,
                dtype: Dtype::F32,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.code(), "size_mismatch");
}

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
