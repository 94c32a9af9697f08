//! Alias gates: the conditions a move must pass (docs/API.md, "Gates"). Evaluation is pure:
//! the database layer loads the target's and the current version's facts inside the move's
//! transaction and asks [`evaluate`] which conditions fail.

use std::collections::{BTreeSet, HashMap};

use adapter_core::api::{Condition, GateCondition, GateFailure};

/// Two scores closer than this count as equal (so `0.60 → 0.59` is a drop of `0.01`, not
/// `0.010000000000000009`).
pub const EPSILON: f64 = 1e-9;

/// The latest score of one `benchmark:metric`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub value: f64,
    pub higher_is_better: bool,
}

/// Latest scores of a version by `(benchmark, metric)`.
pub type Scores = HashMap<(String, String), Score>;

/// A version as the gate sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub version: String,
    pub yanked: bool,
    pub scores: Scores,
    /// The `validated_against` references (as written in the gate) this version passes: a
    /// validation against the model version the reference resolves to, with a verdict
    /// other than `incompatible` (loaded by `db::validations::validated_bases`).
    pub validated_against: BTreeSet<String>,
}

/// What a move is evaluated on: the version it would point to, and the one it points to now
/// (`None` for a new alias).
#[derive(Debug, Clone)]
pub struct Move<'a> {
    pub target: &'a Candidate,
    pub current: Option<&'a Candidate>,
}

/// Every failing condition, in the gate's order (empty: the move may proceed).
pub fn evaluate(conditions: &[GateCondition], m: &Move<'_>) -> Vec<GateFailure> {
    conditions
        .iter()
        .filter_map(|c| {
            let message = match c.check() {
                Ok(typed) => failure(&typed, m)?,
                // Stored gates were checked when set; a condition that no longer parses fails.
                Err(e) => format!("malformed condition: {e}"),
            };
            Some(GateFailure {
                condition: c.clone(),
                message,
            })
        })
        .collect()
}

fn score<'a>(c: &'a Candidate, benchmark: &str, metric: &str) -> Option<&'a Score> {
    c.scores.get(&(benchmark.to_owned(), metric.to_owned()))
}

/// Why `condition` fails for this move, or `None` when it passes.
fn failure(condition: &Condition, m: &Move<'_>) -> Option<String> {
    let t = m.target;
    match condition {
        Condition::Threshold {
            benchmark,
            metric,
            min,
            max,
        } => {
            let Some(s) = score(t, benchmark, metric) else {
                return Some(format!(
                    "version {} has no {benchmark}:{metric} score",
                    t.version
                ));
            };
            if let Some(min) = min
                && s.value < min - EPSILON
            {
                return Some(format!(
                    "{benchmark}:{metric} of {} is {}, below the minimum {min}",
                    t.version, s.value
                ));
            }
            if let Some(max) = max
                && s.value > max + EPSILON
            {
                return Some(format!(
                    "{benchmark}:{metric} of {} is {}, above the maximum {max}",
                    t.version, s.value
                ));
            }
            None
        }
        Condition::NoRegression {
            benchmark,
            metric,
            max_drop,
        } => {
            let current = m.current?;
            let Some(new) = score(t, benchmark, metric) else {
                return Some(format!(
                    "version {} has no {benchmark}:{metric} score to compare with {}",
                    t.version, current.version
                ));
            };
            let Some(old) = score(current, benchmark, metric) else {
                return Some(format!(
                    "the current version {} has no {benchmark}:{metric} score to compare with",
                    current.version
                ));
            };
            let drop = if new.higher_is_better {
                old.value - new.value
            } else {
                new.value - old.value
            };
            (drop > max_drop + EPSILON).then(|| {
                format!(
                    "{benchmark}:{metric} regresses from {} ({}) to {} ({}): a drop of {drop:.6}, more than the allowed {max_drop}",
                    old.value, current.version, new.value, t.version
                )
            })
        }
        Condition::NotYanked => t.yanked.then(|| format!("version {} is yanked", t.version)),
        Condition::ValidatedAgainst { base } => (!t.validated_against.contains(base)).then(|| {
            format!(
                "no validation of {} against {base} with a verdict other than incompatible \
                 (run `adapterctl validate … --base {base}`)",
                t.version
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cand(version: &str, yanked: bool, scores: &[(&str, f64, bool)]) -> Candidate {
        Candidate {
            version: version.into(),
            yanked,
            scores: scores
                .iter()
                .map(|(k, v, hib)| {
                    let (b, m) = k.split_once(':').unwrap();
                    (
                        (b.to_owned(), m.to_owned()),
                        Score {
                            value: *v,
                            higher_is_better: *hib,
                        },
                    )
                })
                .collect(),
            validated_against: BTreeSet::new(),
        }
    }

    fn conds(v: serde_json::Value) -> Vec<GateCondition> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_failure_is_listed_in_order() {
        let gate = conds(json!([
            {"eval": "mmlu:acc", "min": 0.6},
            {"no_regression": "tone:match", "max_drop": 0.01},
            {"not_yanked": true},
            {"eval": "ppl:value", "max": 8.0},
            {"validated_against": "acme/llama@1.0.0"},
        ]));
        let current = cand(
            "1.0.0",
            false,
            &[("mmlu:acc", 0.7, true), ("tone:match", 0.9, true)],
        );
        let target = cand(
            "1.1.0",
            true,
            &[
                ("mmlu:acc", 0.5, true),
                ("tone:match", 0.85, true),
                ("ppl:value", 7.0, false),
            ],
        );
        let f = evaluate(
            &gate,
            &Move {
                target: &target,
                current: Some(&current),
            },
        );
        let which: Vec<_> = f.iter().map(|f| f.condition.clone()).collect();
        assert_eq!(
            which,
            vec![
                gate[0].clone(),
                gate[1].clone(),
                gate[2].clone(),
                gate[4].clone()
            ],
            "{f:?}"
        );
        assert!(f[3].message.contains("no validation of 1.1.0"), "{f:?}");
    }

    #[test]
    fn validated_against_passes_for_the_validated_bases_only() {
        let gate = conds(json!([{"validated_against": "acme/llama@^1"}]));
        let mut target = cand("1.1.0", false, &[]);
        fn mv(t: &Candidate) -> Move<'_> {
            Move {
                target: t,
                current: None,
            }
        }
        assert_eq!(evaluate(&gate, &mv(&target)).len(), 1);
        target.validated_against.insert("acme/llama@1.0.0".into());
        assert_eq!(evaluate(&gate, &mv(&target)).len(), 1, "another reference");
        target.validated_against.insert("acme/llama@^1".into());
        assert!(evaluate(&gate, &mv(&target)).is_empty());
    }

    #[test]
    fn regression_uses_the_metric_direction_and_tolerance() {
        let gate = conds(json!([{"no_regression": "mmlu:acc", "max_drop": 0.01}]));
        let current = cand("1.0.0", false, &[("mmlu:acc", 0.60, true)]);
        let ok = cand("1.1.0", false, &[("mmlu:acc", 0.59, true)]);
        let bad = cand("1.2.0", false, &[("mmlu:acc", 0.58, true)]);
        let mv = |t| Move {
            target: t,
            current: Some(&current),
        };
        assert!(evaluate(&gate, &mv(&ok)).is_empty());
        assert_eq!(evaluate(&gate, &mv(&bad)).len(), 1);
        // New alias: nothing to regress from.
        let new = Move {
            target: &bad,
            current: None,
        };
        assert!(evaluate(&gate, &new).is_empty());
        // Lower is better: a rise is the regression.
        let gate = conds(json!([{"no_regression": "ppl:value", "max_drop": 0.5}]));
        let current = cand("1.0.0", false, &[("ppl:value", 7.0, false)]);
        let better = cand("1.1.0", false, &[("ppl:value", 6.0, false)]);
        let worse = cand("1.2.0", false, &[("ppl:value", 7.6, false)]);
        let mv = |t| Move {
            target: t,
            current: Some(&current),
        };
        assert!(evaluate(&gate, &mv(&better)).is_empty());
        assert_eq!(evaluate(&gate, &mv(&worse)).len(), 1);
    }

    #[test]
    fn missing_scores_fail_closed() {
        let gate = conds(json!([
            {"eval": "mmlu:acc", "min": 0.1},
            {"no_regression": "mmlu:acc"},
        ]));
        let current = cand("1.0.0", false, &[]);
        let target = cand("1.1.0", false, &[("mmlu:acc", 0.9, true)]);
        let f = evaluate(
            &gate,
            &Move {
                target: &target,
                current: Some(&current),
            },
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].message.contains("current version 1.0.0"), "{f:?}");
        let f = evaluate(
            &gate,
            &Move {
                target: &current,
                current: None,
            },
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].message.contains("no mmlu:acc score"), "{f:?}");
    }
}
