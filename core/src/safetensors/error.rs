//! One variant per violated rule.
//!
//! Every variant names what it found (tensor, key, numbers) so that a person can fix the file,
//! and has a stable machine code ([`SafetensorsError::code`]) for API errors.

/// Why a safetensors file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    // ---- the 8-byte prefix and the header bytes ----
    #[error(
        "file too short: a safetensors file starts with an 8-byte header length, but only {got} byte(s) were present"
    )]
    PrefixTruncated { got: u64 },
    #[error("header length {len} exceeds the limit of {max} bytes")]
    HeaderTooLarge { len: u64, max: u64 },
    #[error("header length is 0: the header must be a JSON object of at least 2 bytes (`{{}}`)")]
    HeaderEmpty,
    #[error(
        "header truncated: the prefix declares {declared} header bytes but only {available} are present"
    )]
    HeaderTruncated { declared: u64, available: u64 },
    #[error("header must begin with `{{` (0x7B), found byte 0x{found:02X}")]
    HeaderBadStart { found: u8 },
    #[error(
        "header may only be padded with spaces (0x20) after its closing `}}`, found byte 0x{found:02X} at header offset {offset}"
    )]
    HeaderBadPadding { found: u8, offset: u64 },
    #[error("header is not valid UTF-8: {detail}")]
    HeaderNotUtf8 { detail: String },
    #[error("header is not valid JSON: {detail}")]
    HeaderInvalidJson { detail: String },
    #[error("header has a duplicate JSON key: {detail}")]
    DuplicateKey { detail: String },
    #[error("header must be a JSON object, found {found}")]
    HeaderNotObject { found: &'static str },

    // ---- the entries ----
    #[error("header lists {count} tensors, more than the limit of {max}")]
    TooManyTensors { count: usize, max: usize },
    #[error("a tensor has an empty name")]
    EmptyTensorName,
    #[error("tensor `{tensor}`: entry must be a JSON object, found {found}")]
    TensorNotObject { tensor: String, found: &'static str },
    #[error("tensor `{tensor}`: missing field `{field}`")]
    MissingField { tensor: String, field: &'static str },
    #[error(
        "tensor `{tensor}`: unknown field `{field}` (only `dtype`, `shape`, `data_offsets` are allowed)"
    )]
    UnknownField { tensor: String, field: String },
    #[error("tensor `{tensor}`: unknown dtype {dtype}")]
    UnknownDtype { tensor: String, dtype: String },
    #[error("tensor `{tensor}`: invalid shape: {reason}")]
    InvalidShape { tensor: String, reason: String },
    #[error(
        "tensor `{tensor}`: shape {shape:?} of {dtype} overflows a 64-bit size when multiplied out"
    )]
    ShapeOverflow {
        tensor: String,
        dtype: super::Dtype,
        shape: Vec<u64>,
    },
    #[error(
        "tensor `{tensor}`: {elements} element(s) of {dtype} ({bits} bits each) is not a whole number of bytes"
    )]
    PartialByte {
        tensor: String,
        dtype: super::Dtype,
        elements: u64,
        bits: u64,
    },
    #[error("tensor `{tensor}`: invalid data_offsets: {reason}")]
    InvalidDataOffsets { tensor: String, reason: String },
    #[error("tensor `{tensor}`: data_offsets [{begin}, {end}] end before they begin")]
    OffsetsReversed {
        tensor: String,
        begin: u64,
        end: u64,
    },
    #[error(
        "tensor `{tensor}`: data_offsets span {actual} bytes but {dtype} with shape {shape:?} needs {expected}"
    )]
    SizeMismatch {
        tensor: String,
        dtype: super::Dtype,
        shape: Vec<u64>,
        expected: u64,
        actual: u64,
    },
    #[error(
        "tensor `{tensor}`: the data section must start at offset 0, but the first tensor begins at {begin}"
    )]
    FirstOffsetNotZero { tensor: String, begin: u64 },
    #[error(
        "gap in the data section: `{previous}` ends at {previous_end} but the next tensor `{tensor}` begins at {begin} ({} unindexed bytes)",
        .begin.saturating_sub(*.previous_end)
    )]
    OffsetsGap {
        previous: String,
        previous_end: u64,
        tensor: String,
        begin: u64,
    },
    #[error(
        "tensors overlap: `{previous}` ends at {previous_end} but `{tensor}` begins at {begin}"
    )]
    OffsetsOverlap {
        previous: String,
        previous_end: u64,
        tensor: String,
        begin: u64,
    },
    #[error("tensor `{tensor}`: data end {end} makes the file length overflow 64 bits")]
    OffsetOverflow { tensor: String, end: u64 },

    // ---- the whole file ----
    #[error(
        "file has {} trailing byte(s) after the data section: header implies {expected} bytes, file has {actual}",
        .actual.saturating_sub(*.expected)
    )]
    TrailingBytes { expected: u64, actual: u64 },
    #[error("tensor data truncated: header implies a file of {expected} bytes, file has {actual}")]
    DataTruncated { expected: u64, actual: u64 },

    // ---- __metadata__ ----
    #[error("`__metadata__` must be an object of string values, found {found}")]
    MetadataNotObject { found: &'static str },
    #[error("`__metadata__[{key:?}]` must be a string, found {found}")]
    MetadataValueNotString { key: String, found: &'static str },

    // ---- reading ----
    #[error("no tensor named `{name}` in this file")]
    TensorNotFound { name: String },
}

impl SafetensorsError {
    /// A stable snake_case code per variant, for API errors and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io(_) => "io",
            Self::PrefixTruncated { .. } => "prefix_truncated",
            Self::HeaderTooLarge { .. } => "header_too_large",
            Self::HeaderEmpty => "header_empty",
            Self::HeaderTruncated { .. } => "header_truncated",
            Self::HeaderBadStart { .. } => "header_bad_start",
            Self::HeaderBadPadding { .. } => "header_bad_padding",
            Self::HeaderNotUtf8 { .. } => "header_not_utf8",
            Self::HeaderInvalidJson { .. } => "header_invalid_json",
            Self::DuplicateKey { .. } => "duplicate_key",
            Self::HeaderNotObject { .. } => "header_not_object",
            Self::TooManyTensors { .. } => "too_many_tensors",
            Self::EmptyTensorName => "empty_tensor_name",
            Self::TensorNotObject { .. } => "tensor_not_object",
            Self::MissingField { .. } => "missing_field",
            Self::UnknownField { .. } => "unknown_field",
            Self::UnknownDtype { .. } => "unknown_dtype",
            Self::InvalidShape { .. } => "invalid_shape",
            Self::ShapeOverflow { .. } => "shape_overflow",
            Self::PartialByte { .. } => "partial_byte",
            Self::InvalidDataOffsets { .. } => "invalid_data_offsets",
            Self::OffsetsReversed { .. } => "offsets_reversed",
            Self::SizeMismatch { .. } => "size_mismatch",
            Self::FirstOffsetNotZero { .. } => "first_offset_not_zero",
            Self::OffsetsGap { .. } => "offsets_gap",
            Self::OffsetsOverlap { .. } => "offsets_overlap",
            Self::OffsetOverflow { .. } => "offset_overflow",
            Self::TrailingBytes { .. } => "trailing_bytes",
            Self::DataTruncated { .. } => "data_truncated",
            Self::MetadataNotObject { .. } => "metadata_not_object",
            Self::MetadataValueNotString { .. } => "metadata_value_not_string",
            Self::TensorNotFound { .. } => "tensor_not_found",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Dtype;
    use super::SafetensorsError as E;

    #[test]
    fn every_variant_has_its_own_snake_case_code() {
        let s = String::new;
        let all = [
            E::Io(std::io::Error::other("x")),
            E::PrefixTruncated { got: 3 },
            E::HeaderTooLarge { len: 9, max: 8 },
            E::HeaderEmpty,
            E::HeaderTruncated {
                declared: 9,
                available: 1,
            },
            E::HeaderBadStart { found: b' ' },
            E::HeaderBadPadding {
                found: b'\n',
                offset: 2,
            },
            E::HeaderNotUtf8 { detail: s() },
            E::HeaderInvalidJson { detail: s() },
            E::DuplicateKey { detail: s() },
            E::HeaderNotObject { found: "an array" },
            E::TooManyTensors { count: 2, max: 1 },
            E::EmptyTensorName,
            E::TensorNotObject {
                tensor: s(),
                found: "null",
            },
            E::MissingField {
                tensor: s(),
                field: "dtype",
            },
            E::UnknownField {
                tensor: s(),
                field: s(),
            },
            E::UnknownDtype {
                tensor: s(),
                dtype: s(),
            },
            E::InvalidShape {
                tensor: s(),
                reason: s(),
            },
            E::ShapeOverflow {
                tensor: s(),
                dtype: Dtype::U8,
                shape: vec![],
            },
            E::PartialByte {
                tensor: s(),
                dtype: Dtype::F4,
                elements: 1,
                bits: 4,
            },
            E::InvalidDataOffsets {
                tensor: s(),
                reason: s(),
            },
            E::OffsetsReversed {
                tensor: s(),
                begin: 2,
                end: 1,
            },
            E::SizeMismatch {
                tensor: s(),
                dtype: Dtype::U8,
                shape: vec![1],
                expected: 1,
                actual: 2,
            },
            E::FirstOffsetNotZero {
                tensor: s(),
                begin: 1,
            },
            E::OffsetsGap {
                previous: s(),
                previous_end: 1,
                tensor: s(),
                begin: 3,
            },
            E::OffsetsOverlap {
                previous: s(),
                previous_end: 3,
                tensor: s(),
                begin: 1,
            },
            E::OffsetOverflow {
                tensor: s(),
                end: u64::MAX,
            },
            E::TrailingBytes {
                expected: 1,
                actual: 3,
            },
            E::DataTruncated {
                expected: 3,
                actual: 1,
            },
            E::MetadataNotObject { found: "null" },
            E::MetadataValueNotString {
                key: s(),
                found: "a number",
            },
            E::TensorNotFound { name: s() },
        ];
        let mut codes: Vec<&str> = all.iter().map(E::code).collect();
        for (code, err) in codes.iter().zip(&all) {
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{code}"
            );
            assert!(!err.to_string().is_empty());
        }
        codes.sort_unstable();
        let n = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), n, "codes must be distinct");
        assert_eq!(
            E::OffsetsGap {
                previous: "a".into(),
                previous_end: 4,
                tensor: "b".into(),
                begin: 6
            }
            .to_string(),
            "gap in the data section: `a` ends at 4 but the next tensor `b` begins at 6 (2 unindexed bytes)"
        );
    }
}
