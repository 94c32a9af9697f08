//! Strict JSON in, canonical JSON out.
//!
//! [`parse_strict`] refuses duplicate object keys at any depth (serde_json, like most
//! parsers, silently keeps the last one: a hostile file could then mean two things to two
//! readers). Object key order is preserved, because PEFT's `rank_pattern` and
//! `alpha_pattern` are first-match in file order.
//!
//! [`canonical`] writes the one byte form this project hashes (see docs/FORMATS.md):
//! object keys sorted by their UTF-8 bytes, no insignificant whitespace, strings escaped as
//! serde_json escapes them, numbers as serde_json prints them, non-finite floats impossible.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Maximum nesting depth accepted by [`parse_strict`] (serde_json's own recursion limit is 128).
pub const MAX_DEPTH: usize = 64;

/// Why a JSON document was refused.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StrictJsonError {
    pub kind: StrictJsonErrorKind,
    pub message: String,
}

/// The class of a [`StrictJsonError`], for callers that map it to their own error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictJsonErrorKind {
    InvalidUtf8,
    /// Not JSON, or trailing characters after the value.
    Syntax,
    DuplicateKey,
    TooDeep,
}

/// Parse `bytes` as one JSON value, refusing duplicate keys, invalid UTF-8, U+0000 in
/// strings, trailing characters and nesting deeper than [`MAX_DEPTH`].
pub fn parse_strict(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    strictly(bytes, |de, refusal| {
        StrictValue { depth: 0, refusal }.deserialize(de)
    })
}

/// Run `parse` over `bytes` (UTF-8 first), then require the end of input; a refusal is
/// classed by what the strict visitors recorded in the cell.
fn strictly<T>(
    bytes: &[u8],
    parse: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::StrRead<'_>>,
        &Cell<Option<StrictJsonErrorKind>>,
    ) -> Result<T, serde_json::Error>,
) -> Result<T, StrictJsonError> {
    let text = std::str::from_utf8(bytes).map_err(|e| StrictJsonError {
        kind: StrictJsonErrorKind::InvalidUtf8,
        message: format!("invalid UTF-8: {e}"),
    })?;
    let refusal = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let fail = |e: serde_json::Error| StrictJsonError {
        kind: refusal.get().unwrap_or(StrictJsonErrorKind::Syntax),
        message: e.to_string(),
    };
    let value = parse(&mut de, &refusal).map_err(fail)?;
    de.end().map_err(fail)?;
    Ok(value)
}

/// [`parse_strict`] for a document that must be one object, without ever holding it whole:
/// each top-level entry is handed to `entry` as soon as it is parsed (its value as a strict
/// `Value`), then dropped, so memory is what `entry` keeps (a safetensors header of 100,000
/// tensors, not a tree of it). Every deeper level is checked as [`parse_strict`] checks it;
/// duplicate keys at the top level are the caller's to find (it sees every key).
pub fn for_each_entry(
    bytes: &[u8],
    mut entry: impl FnMut(String, Value),
) -> Result<(), StrictJsonError> {
    strictly(bytes, |de, refusal| {
        de.deserialize_map(TopLevel {
            refusal,
            entry: &mut entry,
        })
    })
}

/// The visitor of [`for_each_entry`]'s top-level object.
struct TopLevel<'a, 'f> {
    refusal: &'a Cell<Option<StrictJsonErrorKind>>,
    entry: &'f mut dyn FnMut(String, Value),
}

impl<'de> Visitor<'de> for TopLevel<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = StrictValue {
            depth: 0,
            refusal: self.refusal,
        }
        .nested()?;
        while let Some(key) = map.next_key::<String>()? {
            no_nul(&key)?;
            let value = map.next_value_seed(inner)?;
            (self.entry)(key, value);
        }
        Ok(())
    }
}

/// U+0000 in a string or key is refused: PostgreSQL cannot store it in text, and C tools
/// end the string there (a name would read as another).
fn no_nul<E: de::Error>(s: &str) -> Result<(), E> {
    if s.contains('\0') {
        return Err(E::custom("strings may not contain U+0000 (NUL)"));
    }
    Ok(())
}

/// A seed that builds a `Value`, recording in `refusal` why it refused (serde errors
/// carry only text).
#[derive(Clone, Copy)]
struct StrictValue<'a> {
    depth: usize,
    refusal: &'a Cell<Option<StrictJsonErrorKind>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        no_nul(v)?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        no_nul(&v)?;
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            no_nul(&key)?;
            if out.contains_key(&key) {
                self.refusal.set(Some(StrictJsonErrorKind::DuplicateKey));
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{}`",
                    key.escape_debug()
                )));
            }
            let value = map.next_value_seed(inner)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

impl StrictValue<'_> {
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            self.refusal.set(Some(StrictJsonErrorKind::TooDeep));
            return Err(E::custom(format_args!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

/// The canonical byte form of `value` (see the module docs).
pub fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar Value into a Vec cannot fail.
    serde_json::to_writer(&mut *out, value).expect("serialising a JSON scalar into memory");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_in_strings_and_keys_is_refused() {
        for bad in [r#"{"a": "x\u0000y"}"#, r#"{"a\u0000": 1}"#, r#"["\u0000"]"#] {
            let e = parse_strict(bad.as_bytes()).unwrap_err();
            assert!(e.to_string().contains("U+0000"), "{bad}: {e}");
        }
        assert!(parse_strict(br#"{"a": "x\u0001y"}"#).is_ok());
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(
            parse_strict(br#"{"a":1,"a":2}"#)
                .unwrap_err()
                .to_string()
                .contains("duplicate key `a`")
        );
        assert!(parse_strict(br#"{"x":[{"b":1,"b":1}]}"#).is_err());
        assert!(parse_strict(br#"{"a":1,"b":{"a":2}}"#).is_ok());
    }

    #[test]
    fn key_order_is_preserved() {
        let v = parse_strict(br#"{"z":1,"a":2,"m":3}"#).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn trailing_garbage_invalid_utf8_and_deep_nesting_are_refused() {
        assert!(parse_strict(br#"{"a":1} x"#).is_err());
        assert!(
            parse_strict(b"{\"a\":\"\xff\"}")
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert_eq!(
            parse_strict(deep.as_bytes()).unwrap_err().kind,
            StrictJsonErrorKind::TooDeep
        );
        assert_eq!(
            parse_strict(b"{").unwrap_err().kind,
            StrictJsonErrorKind::Syntax
        );
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse_strict(ok.as_bytes()).is_ok());
    }

    #[test]
    fn canonical_sorts_keys_and_drops_whitespace() {
        let v =
            parse_strict(br#"{ "b": [1, 2.5, "x\n"], "a": {"d": null, "c": true}, "\u00e9": -3 }"#)
                .unwrap();
        assert_eq!(
            String::from_utf8(canonical(&v)).unwrap(),
            r#"{"a":{"c":true,"d":null},"b":[1,2.5,"x\n"],"é":-3}"#
        );
    }
}
