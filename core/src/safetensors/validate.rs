//! From the parsed JSON header to validated [`TensorInfo`]s: field rules, sizes, layout.

use serde_json::{Map, Value};

use super::{Dtype, Limits, SafetensorsError, TensorInfo};
use crate::json;

/// The key that holds free-form string metadata instead of a tensor.
pub(crate) const METADATA_KEY: &str = "__metadata__";

/// Validated contents of the header object.
pub(crate) struct Entries {
    pub metadata: Option<Vec<(String, String)>>,
    /// Sorted by begin offset, contiguous from 0.
    pub tensors: Vec<TensorInfo>,
}

/// Apply every rule of the format to the header's JSON object (`content`: the header bytes
/// without their 0x20 padding), parsing it entry by entry: what is kept is one compact
/// [`TensorInfo`] per tensor, never a JSON tree of the whole header (hostile headers of
/// 100,000+ tensors stay within a few tens of MB).
///
/// The refusals come in the order a whole-document parse would give them: the JSON itself
/// (syntax, depth, duplicate keys below the top level, NUL), the padding, the tensor count,
/// duplicate tensor names, then the first entry that breaks a rule, then the layout.
pub(crate) fn entries(content: &[u8], limits: &Limits) -> Result<Entries, SafetensorsError> {
    // JSON, but not an object (`read_header` already requires `{` first; other callers).
    if content.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{')
        && let Ok(value) = json::parse_strict(content)
    {
        return Err(SafetensorsError::HeaderNotObject {
            found: kind(&value),
        });
    }
    let mut metadata = None;
    let mut tensors = Vec::new();
    let mut count = 0usize;
    let mut refused: Option<SafetensorsError> = None;
    // Keys seen after the tensors stopped being kept (a refusal, or too many): still
    // needed to find duplicates.
    let mut other_keys: Vec<String> = Vec::new();
    let mut metadata_seen = 0usize;
    json::for_each_entry(content, |name, entry| {
        if name == METADATA_KEY {
            metadata_seen += 1;
            if refused.is_none() && metadata_seen == 1 {
                match parse_metadata(entry) {
                    Ok(m) => metadata = Some(m),
                    Err(e) => refused = Some(e),
                }
            }
            return;
        }
        count += 1;
        if refused.is_some() || count > limits.max_tensors {
            if count <= limits.max_tensors {
                other_keys.push(name);
            }
            return;
        }
        match parse_tensor(name.clone(), entry) {
            Ok(t) => tensors.push(t),
            Err(e) => {
                refused = Some(e);
                other_keys.push(name);
            }
        }
    })
    .map_err(|e| match e.kind {
        json::StrictJsonErrorKind::DuplicateKey => {
            SafetensorsError::DuplicateKey { detail: e.message }
        }
        _ => SafetensorsError::HeaderInvalidJson { detail: e.message },
    })?;
    check_padding(content)?;
    if count > limits.max_tensors {
        return Err(SafetensorsError::TooManyTensors {
            count,
            max: limits.max_tensors,
        });
    }
    if metadata_seen > 1 {
        return Err(duplicate_key(METADATA_KEY));
    }
    let mut names: Vec<&str> = tensors
        .iter()
        .map(|t| t.name.as_str())
        .chain(other_keys.iter().map(String::as_str))
        .collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(duplicate_key(pair[0]));
    }
    if let Some(e) = refused {
        return Err(e);
    }
    check_layout(&mut tensors)?;
    Ok(Entries { metadata, tensors })
}

/// The padding rule, once the content parsed as JSON: it began with `{`, so it is one
/// object followed only by JSON whitespace; anything between its closing `}` and the 0x20
/// padding is a bad pad byte.
fn check_padding(content: &[u8]) -> Result<(), SafetensorsError> {
    let close = content.iter().rposition(|&b| b == b'}').unwrap_or(0);
    if let Some(i) = content[close..]
        .iter()
        .position(|&b| b != b' ' && b != b'}')
    {
        return Err(SafetensorsError::HeaderBadPadding {
            found: content[close + i],
            offset: (close + i) as u64,
        });
    }
    Ok(())
}

/// A duplicate top-level key, worded as the strict JSON parser words one.
fn duplicate_key(key: &str) -> SafetensorsError {
    SafetensorsError::DuplicateKey {
        detail: format!("duplicate key `{}`", key.escape_debug()),
    }
}

/// The JSON kind of a value, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_metadata(value: Value) -> Result<Vec<(String, String)>, SafetensorsError> {
    let Value::Object(map) = value else {
        return Err(SafetensorsError::MetadataNotObject {
            found: kind(&value),
        });
    };
    map.into_iter()
        .map(|(key, v)| match v {
            Value::String(s) => Ok((key, s)),
            other => Err(SafetensorsError::MetadataValueNotString {
                found: kind(&other),
                key,
            }),
        })
        .collect()
}

const FIELDS: [&str; 3] = ["dtype", "shape", "data_offsets"];

fn parse_tensor(name: String, value: Value) -> Result<TensorInfo, SafetensorsError> {
    if name.is_empty() {
        return Err(SafetensorsError::EmptyTensorName);
    }
    let Value::Object(mut fields) = value else {
        return Err(SafetensorsError::TensorNotObject {
            found: kind(&value),
            tensor: name,
        });
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(SafetensorsError::UnknownField {
            field: unknown.clone(),
            tensor: name,
        });
    }
    let take = |field: &'static str, fields: &mut Map<String, Value>| {
        fields
            .remove(field)
            .ok_or_else(|| SafetensorsError::MissingField {
                tensor: name.clone(),
                field,
            })
    };
    let dtype = take("dtype", &mut fields)?;
    let shape = take("shape", &mut fields)?;
    let offsets = take("data_offsets", &mut fields)?;

    let dtype = match &dtype {
        Value::String(s) => s.parse::<Dtype>().ok(),
        _ => None,
    }
    .ok_or_else(|| SafetensorsError::UnknownDtype {
        tensor: name.clone(),
        dtype: dtype.to_string(),
    })?;
    let shape = parse_shape(&name, &shape)?;
    let (begin, end) = parse_offsets(&name, &offsets)?;
    if end < begin {
        return Err(SafetensorsError::OffsetsReversed {
            tensor: name,
            begin,
            end,
        });
    }
    let expected = expected_byte_len(&name, dtype, &shape)?;
    let actual = end - begin;
    if actual != expected {
        return Err(SafetensorsError::SizeMismatch {
            tensor: name,
            dtype,
            shape,
            expected,
            actual,
        });
    }
    Ok(TensorInfo {
        name,
        dtype,
        shape,
        data_offsets: (begin, end),
    })
}

fn parse_shape(tensor: &str, value: &Value) -> Result<Vec<u64>, SafetensorsError> {
    let invalid = |reason: String| SafetensorsError::InvalidShape {
        tensor: tensor.to_owned(),
        reason,
    };
    let Value::Array(dims) = value else {
        return Err(invalid(format!(
            "expected an array of non-negative integers, found {}",
            kind(value)
        )));
    };
    dims.iter()
        .enumerate()
        .map(|(i, d)| {
            d.as_u64().ok_or_else(|| {
                invalid(format!(
                    "dimension {i} is {d}, not a non-negative integer that fits 64 bits"
                ))
            })
        })
        .collect()
}

fn parse_offsets(tensor: &str, value: &Value) -> Result<(u64, u64), SafetensorsError> {
    let invalid = |reason: String| SafetensorsError::InvalidDataOffsets {
        tensor: tensor.to_owned(),
        reason,
    };
    let Value::Array(items) = value else {
        return Err(invalid(format!(
            "expected an array [begin, end], found {}",
            kind(value)
        )));
    };
    let [begin, end] = items.as_slice() else {
        return Err(invalid(format!(
            "expected exactly 2 offsets [begin, end], found {}",
            items.len()
        )));
    };
    let offset = |v: &Value, what: &str| {
        v.as_u64().ok_or_else(|| {
            invalid(format!(
                "{what} is {v}, not a non-negative integer that fits 64 bits"
            ))
        })
    };
    Ok((offset(begin, "begin")?, offset(end, "end")?))
}

/// `prod(shape) * bits / 8`, refusing overflow and sizes that are not whole bytes.
pub(crate) fn expected_byte_len(
    tensor: &str,
    dtype: Dtype,
    shape: &[u64],
) -> Result<u64, SafetensorsError> {
    let overflow = || SafetensorsError::ShapeOverflow {
        tensor: tensor.to_owned(),
        dtype,
        shape: shape.to_vec(),
    };
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let bits = elements.checked_mul(dtype.bits()).ok_or_else(overflow)?;
    if bits % 8 != 0 {
        return Err(SafetensorsError::PartialByte {
            tensor: tensor.to_owned(),
            dtype,
            elements,
            bits: dtype.bits(),
        });
    }
    Ok(bits / 8)
}

/// Sort by `(begin, end)` like the reference does (stable, so equal ranges keep file order;
/// a zero-length tensor sorts before a tensor starting at the same offset) and require the
/// tensors to tile `[0, data_len)` exactly: no gap, no overlap.
fn check_layout(tensors: &mut [TensorInfo]) -> Result<(), SafetensorsError> {
    tensors.sort_by_key(|t| t.data_offsets);
    let mut previous: Option<&TensorInfo> = None;
    for t in tensors.iter() {
        let begin = t.data_offsets.0;
        match previous {
            None if begin != 0 => {
                return Err(SafetensorsError::FirstOffsetNotZero {
                    tensor: t.name.clone(),
                    begin,
                });
            }
            Some(p) if begin != p.data_offsets.1 => {
                let (previous, previous_end) = (p.name.clone(), p.data_offsets.1);
                let (tensor, begin) = (t.name.clone(), begin);
                return Err(if begin > previous_end {
                    SafetensorsError::OffsetsGap {
                        previous,
                        previous_end,
                        tensor,
                        begin,
                    }
                } else {
                    SafetensorsError::OffsetsOverlap {
                        previous,
                        previous_end,
                        tensor,
                        begin,
                    }
                });
            }
            _ => {}
        }
        previous = Some(t);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // `read_header` requires the first byte to be `{`, so a non-object never reaches here
    // through it; the rule still holds for any caller of `entries`.
    #[test]
    fn rejects_non_object_top_level() {
        for value in ["null", "[]", "\"x\""] {
            let err = entries(value.as_bytes(), &Limits::REFERENCE)
                .err()
                .map(|e| e.code());
            assert_eq!(err, Some("header_not_object"));
        }
    }

    #[test]
    fn metadata_key_does_not_count_as_tensor() {
        let limits = Limits {
            max_header_len: 1 << 20,
            max_tensors: 0,
        };
        let value = br#"{ "__metadata__": { "a": "b" } }"#;
        let parsed = entries(value, &limits).unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.tensors.is_empty());
        assert_eq!(parsed.metadata, Some(vec![("a".into(), "b".into())]));
    }
}
