//! One named test per rule of the safetensors header, each with a hostile input.

use std::io::{self, Cursor, Read};

use adapter_core::safetensors::{Dtype, Limits, SafetensorsError as E, read_header};

mod safetensors_support;
use safetensors_support::*;

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
