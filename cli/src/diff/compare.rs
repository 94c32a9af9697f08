//! The comparisons of `adapterctl diff`, on data already fetched: JSON objects (config) and
//! tensor tables; eval results with the catastrophic-forgetting rule come from
//! `adapter_core::forgetting` (the version pages flag it with the same rule).

use std::collections::{BTreeMap, BTreeSet};

pub use adapter_core::forgetting::{DEFAULT_GENERAL, EvalDelta, Forgetting, Movement, evals};
use serde::Serialize;
use serde_json::{Map, Value};

/// Differences between two JSON objects, key by key (top level).
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ObjectDiff {
    pub added: Vec<KeyValue>,
    pub removed: Vec<KeyValue>,
    pub changed: Vec<Change<Value>>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct KeyValue {
    pub key: String,
    pub value: Value,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Change<T> {
    pub key: String,
    pub a: T,
    pub b: T,
}

impl ObjectDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Top-level differences of two objects, in key order.
pub fn objects(a: &Map<String, Value>, b: &Map<String, Value>) -> ObjectDiff {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = ObjectDiff::default();
    for key in keys {
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if x != y => out.changed.push(Change {
                key: key.clone(),
                a: x.clone(),
                b: y.clone(),
            }),
            (Some(x), None) => out.removed.push(KeyValue {
                key: key.clone(),
                value: x.clone(),
            }),
            (None, Some(y)) => out.added.push(KeyValue {
                key: key.clone(),
                value: y.clone(),
            }),
            _ => {}
        }
    }
    out
}

/// A tensor as the header declares it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TensorShape {
    pub dtype: String,
    pub shape: Vec<u64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    #[serde(flatten)]
    pub tensor: TensorShape,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct TensorDiff {
    pub added: Vec<NamedTensor>,
    pub removed: Vec<NamedTensor>,
    /// Shape or dtype changed.
    pub changed: Vec<Change<TensorShape>>,
    pub unchanged: usize,
}

pub fn tensors(a: &BTreeMap<String, TensorShape>, b: &BTreeMap<String, TensorShape>) -> TensorDiff {
    let mut out = TensorDiff::default();
    for (name, ta) in a {
        match b.get(name) {
            None => out.removed.push(NamedTensor {
                name: name.clone(),
                tensor: ta.clone(),
            }),
            Some(tb) if tb != ta => out.changed.push(Change {
                key: name.clone(),
                a: ta.clone(),
                b: tb.clone(),
            }),
            Some(_) => out.unchanged += 1,
        }
    }
    for (name, tb) in b {
        if !a.contains_key(name) {
            out.added.push(NamedTensor {
                name: name.clone(),
                tensor: tb.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_and_tensors() {
        let a = json!({"r": 8, "lora_alpha": 16, "bias": "none", "x": null});
        let b = json!({"r": 4, "lora_alpha": 16, "use_dora": true, "x": null});
        let d = objects(a.as_object().unwrap(), b.as_object().unwrap());
        assert_eq!(d.changed.len(), 1);
        assert_eq!(
            (d.changed[0].key.as_str(), &d.changed[0].a, &d.changed[0].b),
            ("r", &json!(8), &json!(4))
        );
        assert_eq!(d.removed[0].key, "bias");
        assert_eq!(d.added[0].key, "use_dora");
        assert!(objects(a.as_object().unwrap(), a.as_object().unwrap()).is_empty());

        let t = |dtype: &str, shape: &[u64]| TensorShape {
            dtype: dtype.into(),
            shape: shape.to_vec(),
        };
        let a: BTreeMap<String, TensorShape> = [
            ("same".to_owned(), t("F32", &[8, 64])),
            ("reshaped".to_owned(), t("F32", &[16, 64])),
            ("recast".to_owned(), t("F32", &[8])),
            ("gone".to_owned(), t("F32", &[1])),
        ]
        .into();
        let b: BTreeMap<String, TensorShape> = [
            ("same".to_owned(), t("F32", &[8, 64])),
            ("reshaped".to_owned(), t("F32", &[8, 64])),
            ("recast".to_owned(), t("BF16", &[8])),
            ("new".to_owned(), t("F32", &[2])),
        ]
        .into();
        let d = tensors(&a, &b);
        assert_eq!(d.unchanged, 1);
        assert_eq!(d.removed[0].name, "gone");
        assert_eq!(d.added[0].name, "new");
        let changed: Vec<&str> = d.changed.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(changed, ["recast", "reshaped"]);
    }
}
