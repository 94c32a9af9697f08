//! The catastrophic-forgetting rule: eval results of two versions compared per
//! `benchmark:metric`, and a drop by more than a threshold on a *general* benchmark (MMLU,
//! HellaSwag, …) flagged. One rule for `adapterctl diff --fail-on-forgetting` and the
//! version pages of the registry.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::api::EvalResult;

/// Benchmarks that measure general ability (a drop there is forgetting), by default.
pub const DEFAULT_GENERAL: &str =
    "mmlu,hellaswag,arc,arc_challenge,arc_easy,truthfulqa,winogrande,gsm8k,bbh";

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
}
