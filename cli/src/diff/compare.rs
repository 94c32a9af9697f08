//! The comparisons of `adapterctl diff`, on data already fetched: JSON objects (config),
//! tensor tables, and eval results with the catastrophic-forgetting rule.

use std::collections::{BTreeMap, BTreeSet};

use adapter_core::api::EvalResult;
use serde::Serialize;
use serde_json::{Map, Value};

/// Benchmarks that measure general ability (a drop there is forgetting), by default.
pub const DEFAULT_GENERAL: &str =
    "mmlu,hellaswag,arc,arc_challenge,arc_easy,truthfulqa,winogrande,gsm8k,bbh";

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

/// How one `benchmark:metric` moved from A to B.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    Improved,
    Regressed,
    Unchanged,
    /// Only B has it.
    Added,
    /// Only A has it.
    Removed,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct EvalDelta {
    pub key: String,
    pub benchmark: String,
    pub metric: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// `b - a` when both exist.
    pub delta: Option<f64>,
    pub higher_is_better: bool,
    pub movement: Movement,
    /// The benchmark is in the general list.
    pub general: bool,
    /// A general benchmark got worse by more than the threshold.
    pub forgetting: bool,
}

/// The forgetting rule.
#[derive(Debug, Clone)]
pub struct Forgetting {
    pub general: BTreeSet<String>,
    /// Largest tolerated drop (absolute, in the metric's unit).
    pub threshold: f64,
}

impl Forgetting {
    pub fn new(general: &[String], threshold: f64) -> Self {
        Self {
            general: general
                .iter()
                .map(|g| g.trim().to_owned())
                .filter(|g| !g.is_empty())
                .collect(),
            threshold,
        }
    }

    /// A drop by more than the threshold (with a tolerance for decimal rounding, so that
    /// 0.612 → 0.602 is a drop of exactly 0.01, not 0.0100000001).
    fn exceeds(&self, drop: f64) -> bool {
        drop - self.threshold > 1e-9 * self.threshold.abs().max(1.0)
    }
}

/// Per `benchmark:metric` (sorted), from the latest results of each side.
pub fn evals(a: &[EvalResult], b: &[EvalResult], rule: &Forgetting) -> Vec<EvalDelta> {
    let index = |list: &[EvalResult]| -> BTreeMap<(String, String), EvalResult> {
        list.iter()
            .map(|e| ((e.benchmark.clone(), e.metric.clone()), e.clone()))
            .collect()
    };
    let (ia, ib) = (index(a), index(b));
    let keys: BTreeSet<&(String, String)> = ia.keys().chain(ib.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (ea, eb) = (ia.get(key), ib.get(key));
        let higher_is_better = eb.or(ea).is_none_or(|e| e.higher_is_better);
        let general = rule.general.contains(&key.0);
        let (movement, delta, forgetting) = match (ea, eb) {
            (Some(x), Some(y)) => {
                let delta = y.value - x.value;
                let gain = if higher_is_better { delta } else { -delta };
                let movement = if gain > 0.0 {
                    Movement::Improved
                } else if gain < 0.0 {
                    Movement::Regressed
                } else {
                    Movement::Unchanged
                };
                (movement, Some(delta), general && rule.exceeds(-gain))
            }
            (Some(_), None) => (Movement::Removed, None, false),
            _ => (Movement::Added, None, false),
        };
        out.push(EvalDelta {
            key: format!("{}:{}", key.0, key.1),
            benchmark: key.0.clone(),
            metric: key.1.clone(),
            a: ea.map(|e| e.value),
            b: eb.map(|e| e.value),
            delta,
            higher_is_better,
            movement,
            general,
            forgetting,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(benchmark: &str, metric: &str, value: f64, higher_is_better: bool) -> EvalResult {
        EvalResult {
            id: 0,
            benchmark: benchmark.into(),
            metric: metric.into(),
            value,
            higher_is_better,
            dataset: None,
            source: None,
            author: None,
            created_at: 0,
        }
    }

    fn rule() -> Forgetting {
        let general: Vec<String> = DEFAULT_GENERAL.split(',').map(str::to_owned).collect();
        Forgetting::new(&general, 0.01)
    }

    fn by_key<'a>(d: &'a [EvalDelta], key: &str) -> &'a EvalDelta {
        d.iter().find(|e| e.key == key).unwrap()
    }

    #[test]
    fn a_general_drop_is_forgetting_even_when_the_task_metric_rose() {
        let a = [
            r("mmlu", "acc", 0.612, true),
            r("support-tone", "match", 0.81, true),
        ];
        let b = [
            r("mmlu", "acc", 0.571, true),
            r("support-tone", "match", 0.89, true),
        ];
        let d = evals(&a, &b, &rule());
        let mmlu = by_key(&d, "mmlu:acc");
        assert!(mmlu.forgetting && mmlu.general);
        assert_eq!(mmlu.movement, Movement::Regressed);
        assert!((mmlu.delta.unwrap() + 0.041).abs() < 1e-12);
        let task = by_key(&d, "support-tone:match");
        assert_eq!(task.movement, Movement::Improved);
        assert!(!task.forgetting && !task.general);
    }

    #[test]
    fn the_threshold_is_exclusive_and_direction_is_respected() {
        // Exactly the threshold: tolerated.
        let d = evals(
            &[r("mmlu", "acc", 0.612, true)],
            &[r("mmlu", "acc", 0.602, true)],
            &rule(),
        );
        assert!(!d[0].forgetting, "{d:?}");
        assert_eq!(d[0].movement, Movement::Regressed);
        // Lower is better: a rise is the drop.
        let d = evals(
            &[r("gsm8k", "err", 0.30, false)],
            &[r("gsm8k", "err", 0.35, false)],
            &rule(),
        );
        assert!(
            d[0].forgetting && d[0].movement == Movement::Regressed,
            "{d:?}"
        );
        let d = evals(
            &[r("gsm8k", "err", 0.30, false)],
            &[r("gsm8k", "err", 0.20, false)],
            &rule(),
        );
        assert!(
            !d[0].forgetting && d[0].movement == Movement::Improved,
            "{d:?}"
        );
        // A drop on a task benchmark is not forgetting.
        let d = evals(
            &[r("tone", "acc", 0.9, true)],
            &[r("tone", "acc", 0.5, true)],
            &rule(),
        );
        assert!(!d[0].forgetting);
        // A custom list and threshold.
        let custom = Forgetting::new(&["tone".into(), " ".into()], 0.5);
        let d = evals(
            &[r("tone", "acc", 0.9, true)],
            &[r("tone", "acc", 0.3, true)],
            &custom,
        );
        assert!(d[0].forgetting);
        let d = evals(
            &[r("mmlu", "acc", 0.9, true)],
            &[r("mmlu", "acc", 0.3, true)],
            &custom,
        );
        assert!(!d[0].forgetting, "mmlu is not general in the custom list");
    }

    #[test]
    fn one_sided_results_are_added_or_removed() {
        let d = evals(
            &[r("mmlu", "acc", 0.6, true)],
            &[r("arc", "acc", 0.4, true)],
            &rule(),
        );
        assert_eq!(by_key(&d, "mmlu:acc").movement, Movement::Removed);
        assert_eq!(by_key(&d, "arc:acc").movement, Movement::Added);
        assert!(d.iter().all(|e| !e.forgetting && e.delta.is_none()));
        assert_eq!(d[0].key, "arc:acc", "sorted by key");
    }

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
