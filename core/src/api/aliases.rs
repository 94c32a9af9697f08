//! Aliases (compare-and-swap moves with history), their gates, and yank: the bodies of
//! `…/aliases/…` and `…/versions/{version}/yank` (docs/API.md, "Aliases, gates, yank").

use serde::{Deserialize, Serialize};

/// Longest accepted `reason` (alias moves, yank), in characters.
pub const MAX_REASON_LEN: usize = 1024;
/// Most conditions one gate may hold.
pub const MAX_GATE_CONDITIONS: usize = 32;
/// Longest accepted `benchmark:metric` or base reference in a gate condition, in bytes.
pub const MAX_GATE_TEXT_LEN: usize = 256;

/// `PUT …/aliases/{alias}`: move (or create) an alias, compare-and-swap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AliasMove {
    /// The version the alias should point to (must exist).
    pub version: String,
    /// The version the caller believes the alias points to now; `null` or absent: the alias
    /// must not exist yet. An `If-Match` header may carry it instead.
    #[serde(default)]
    pub expect: Option<String>,
    /// Why (kept in the history; at most 1024 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An alias and where it points.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AliasInfo {
    pub alias: String,
    pub version: String,
    /// Unix time (seconds) of the last move.
    pub updated_at: i64,
    /// Who moved it last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// `GET …/aliases`, sorted by alias name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AliasList {
    pub aliases: Vec<AliasInfo>,
}

/// One move of an alias: created (`from` null), moved, or deleted (`to` null).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AliasHistoryEntry {
    /// Increasing in the order the moves were committed.
    pub id: i64,
    pub alias: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    /// Unix time (seconds).
    pub at: i64,
}

/// `GET …/aliases/{alias}/history`, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AliasHistory {
    pub entries: Vec<AliasHistoryEntry>,
}

/// One condition of a gate, written as exactly one of these shapes:
///
/// * `{"eval": "mmlu:acc", "min": 0.6}` / `{"eval": "ppl:value", "max": 7.5}`: the target
///   version's latest score for `benchmark:metric` is at least `min` / at most `max`;
/// * `{"no_regression": "mmlu:acc", "max_drop": 0.01}`: the target is no worse than the
///   version the alias points to now by more than `max_drop` (in the metric's own
///   direction); passes when the alias does not exist yet;
/// * `{"not_yanked": true}`: the target is not yanked;
/// * `{"validated_against": "acme/llama@1.0.0"}`: the latest compatibility validation (a
///   `validate` job) of the target against the model version the reference resolves to has
///   a verdict other than `incompatible`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GateCondition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_regression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drop: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_yanked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated_against: Option<String>,
}

/// A gate condition once checked: what it asks for, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Score of `benchmark:metric` within `[min, max]` (either bound may be absent).
    Threshold {
        benchmark: String,
        metric: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    NoRegression {
        benchmark: String,
        metric: String,
        max_drop: f64,
    },
    NotYanked,
    ValidatedAgainst {
        base: String,
    },
}

impl GateCondition {
    /// The typed condition, or why this one is not well formed.
    pub fn check(&self) -> Result<Condition, String> {
        let shapes = [
            self.eval.is_some(),
            self.no_regression.is_some(),
            self.not_yanked.is_some(),
            self.validated_against.is_some(),
        ];
        if shapes.iter().filter(|s| **s).count() != 1 {
            return Err(
                "a condition has exactly one of `eval`, `no_regression`, `not_yanked`, \
                 `validated_against`"
                    .into(),
            );
        }
        let only = |allowed: &[&str]| -> Result<(), String> {
            let present = [
                ("min", self.min.is_some()),
                ("max", self.max.is_some()),
                ("max_drop", self.max_drop.is_some()),
            ];
            match present.iter().find(|(k, p)| *p && !allowed.contains(k)) {
                Some((k, _)) => Err(format!("`{k}` does not belong to this condition")),
                None => Ok(()),
            }
        };
        let finite = |what: &str, v: Option<f64>| match v {
            Some(x) if !x.is_finite() => Err(format!("`{what}` must be a finite number")),
            _ => Ok(()),
        };
        if let Some(m) = &self.eval {
            only(&["min", "max"])?;
            finite("min", self.min)?;
            finite("max", self.max)?;
            if self.min.is_none() && self.max.is_none() {
                return Err(format!("`eval` `{m}` needs `min` or `max`"));
            }
            if let (Some(lo), Some(hi)) = (self.min, self.max)
                && lo > hi
            {
                return Err(format!("`min` {lo} is above `max` {hi}"));
            }
            let (benchmark, metric) = parse_metric(m)?;
            return Ok(Condition::Threshold {
                benchmark,
                metric,
                min: self.min,
                max: self.max,
            });
        }
        if let Some(m) = &self.no_regression {
            only(&["max_drop"])?;
            let max_drop = self.max_drop.unwrap_or(0.0);
            finite("max_drop", Some(max_drop))?;
            if max_drop < 0.0 {
                return Err("`max_drop` must not be negative".into());
            }
            let (benchmark, metric) = parse_metric(m)?;
            return Ok(Condition::NoRegression {
                benchmark,
                metric,
                max_drop,
            });
        }
        only(&[])?;
        if let Some(flag) = self.not_yanked {
            if !flag {
                return Err("`not_yanked` can only be `true` (leave it out otherwise)".into());
            }
            return Ok(Condition::NotYanked);
        }
        let base = self.validated_against.clone().unwrap_or_default();
        check_text("validated_against", &base)?;
        base.parse::<crate::reference::Reference>().map_err(|e| {
            format!(
                "`validated_against` `{}` is not a model reference `ns/name[@selector]`: {e}",
                base.escape_debug()
            )
        })?;
        Ok(Condition::ValidatedAgainst { base })
    }
}

/// `benchmark:metric` → its two parts, each an eval name as results are recorded under
/// (`[a-z0-9][a-z0-9._-]*`, at most 64 bytes: `super::evals::check_eval_name`).
pub fn parse_metric(s: &str) -> Result<(String, String), String> {
    check_text("metric", s)?;
    let not_a_metric = || {
        format!(
            "`{}` is not `benchmark:metric` (e.g. `mmlu:acc`)",
            s.escape_debug()
        )
    };
    let (b, m) = s.split_once(':').ok_or_else(not_a_metric)?;
    for (field, part) in [("benchmark", b), ("metric", m)] {
        super::evals::check_eval_name(field, part)
            .map_err(|e| format!("{}: {e}", not_a_metric()))?;
    }
    Ok((b.to_owned(), m.to_owned()))
}

fn check_text(what: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("`{what}` must not be empty"));
    }
    if s.len() > MAX_GATE_TEXT_LEN {
        return Err(format!("`{what}` is longer than {MAX_GATE_TEXT_LEN} bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("`{what}` contains control characters"));
    }
    Ok(())
}

/// `PUT …/aliases/{alias}/gate`: the conditions a move of this alias must pass.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// One to 32 conditions; every one must pass.
    pub conditions: Vec<GateCondition>,
}

/// A stored gate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateInfo {
    pub alias: String,
    pub conditions: Vec<GateCondition>,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// One failing condition of a refused move (details of `gate_failed`: `{"failures": [...]}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateFailure {
    pub condition: GateCondition,
    pub message: String,
}

/// `POST …/versions/{version}/yank`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct YankRequest {
    /// Why (required, 1 to 1024 characters, not blank, no control characters but newline
    /// and tab).
    /// The pattern is [`check_reason`]'s rule: no control character but newline and tab, and
    /// at least one that is not white space.
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$",
            max_length = 1024
        )
    )]
    pub reason: String,
}

/// A version's yank state (the answer of yank and un-yank).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct YankState {
    pub version: String,
    pub yanked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yank_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked_by: Option<String>,
}

/// Check a `reason`: `None` allowed when `required` is false; else 1..=1024 characters, not blank,
/// no control characters other than newlines and tabs.
pub fn check_reason(reason: Option<&str>, required: bool) -> Result<(), String> {
    match reason {
        None if required => Err("a reason is required".into()),
        None => Ok(()),
        Some(r) if r.trim().is_empty() => Err("the reason must not be empty".into()),
        Some(r) if r.chars().count() > MAX_REASON_LEN => Err(format!(
            "the reason is longer than {MAX_REASON_LEN} characters"
        )),
        Some(r) if r.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            Err("the reason contains control characters".into())
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(v: serde_json::Value) -> Result<Condition, String> {
        serde_json::from_value::<GateCondition>(v)
            .map_err(|e| e.to_string())?
            .check()
    }

    #[test]
    fn condition_shapes() {
        use serde_json::json;
        assert_eq!(
            cond(json!({"eval": "mmlu:acc", "min": 0.6})).unwrap(),
            Condition::Threshold {
                benchmark: "mmlu".into(),
                metric: "acc".into(),
                min: Some(0.6),
                max: None
            }
        );
        assert_eq!(
            cond(json!({"no_regression": "mmlu:acc", "max_drop": 0.01})).unwrap(),
            Condition::NoRegression {
                benchmark: "mmlu".into(),
                metric: "acc".into(),
                max_drop: 0.01
            }
        );
        assert_eq!(
            cond(json!({"not_yanked": true})).unwrap(),
            Condition::NotYanked
        );
        assert!(cond(json!({"validated_against": "acme/llama@1.0.0"})).is_ok());
    }

    #[test]
    fn malformed_conditions_are_refused() {
        use serde_json::json;
        for bad in [
            json!({}),
            json!({"eval": "mmlu:acc"}),
            json!({"eval": "mmlu", "min": 0.5}),
            json!({"eval": ":acc", "min": 0.5}),
            json!({"eval": "mmlu:acc", "min": 0.7, "max": 0.5}),
            json!({"eval": "mmlu:acc", "min": 0.5, "max_drop": 0.1}),
            json!({"eval": "mmlu:acc", "min": 0.5, "not_yanked": true}),
            json!({"no_regression": "mmlu:acc", "max_drop": -0.1}),
            json!({"no_regression": "mmlu:acc", "min": 0.1}),
            json!({"not_yanked": false}),
            json!({"validated_against": " "}),
            json!({"eval": "mmlu:acc", "min": "high"}),
            json!({"eval": "mmlu:acc", "min": 0.5, "extra": 1}),
        ] {
            assert!(cond(bad.clone()).is_err(), "{bad}");
        }
        let long = "m".repeat(300) + ":acc";
        assert!(cond(json!({"eval": long, "min": 0.1})).is_err());
    }

    #[test]
    fn reasons() {
        assert!(check_reason(None, false).is_ok());
        assert!(check_reason(None, true).is_err());
        assert!(check_reason(Some("  "), false).is_err());
        assert!(check_reason(Some("bad\u{0}"), true).is_err());
        assert!(check_reason(Some(&"x".repeat(MAX_REASON_LEN + 1)), true).is_err());
        assert!(check_reason(Some("regressed on\nsupport tone"), true).is_ok());
    }
}
