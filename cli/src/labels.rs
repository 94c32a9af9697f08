//! `push --label KEY=VALUE`: labels recorded in the manifest's `metadata.labels` (an object
//! string → string). The registry validates and indexes them; here only the form is checked.

use std::collections::BTreeMap;

use anyhow::anyhow;
use serde_json::{Map, Value};

use crate::exit::Failure;

/// clap value parser for `KEY=VALUE` (the key non-empty; the value may be empty).
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{}`: expected KEY=VALUE", s.escape_debug())),
    }
}

/// The `labels` object, refusing a key given twice.
pub fn to_metadata(labels: &[(String, String)]) -> Result<Option<Value>, Failure> {
    if labels.is_empty() {
        return Ok(None);
    }
    let mut seen = BTreeMap::new();
    for (k, v) in labels {
        if seen.insert(k.as_str(), v.as_str()).is_some() {
            return Err(Failure::usage(anyhow!(
                "--label `{}` is given twice",
                k.escape_debug()
            )));
        }
    }
    let map: Map<String, Value> = seen
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    Ok(Some(Value::Object(map)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_duplicates_are_refused() {
        assert_eq!(
            parse_label("team=nlp").unwrap(),
            ("team".into(), "nlp".into())
        );
        assert_eq!(parse_label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(
            parse_label("note=").unwrap(),
            ("note".into(), String::new())
        );
        assert!(parse_label("=x").is_err());
        assert!(parse_label("team").is_err());
        let v = to_metadata(&[("b".into(), "2".into()), ("a".into(), "1".into())])
            .unwrap()
            .unwrap();
        assert_eq!(v, serde_json::json!({"a": "1", "b": "2"}));
        assert!(to_metadata(&[("a".into(), "1".into()), ("a".into(), "2".into())]).is_err());
        assert!(to_metadata(&[]).unwrap().is_none());
    }
}
