//! Eval results: append-only scores of a version (`POST|GET …/versions/{version}/evals`),
//! the rules every result must pass (shared by the server and `adapterctl`, so a bad result
//! is refused locally with the same words), and the `benchmark:metric=value` argument form.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest benchmark or metric name, in bytes.
pub const MAX_EVAL_NAME_LEN: usize = 64;
/// Longest `dataset` or `source`, in bytes.
pub const MAX_EVAL_TEXT_LEN: usize = 256;
/// Most results in one `POST …/evals` batch.
pub const MAX_EVAL_BATCH: usize = 1000;

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One result to record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EvalInput {
    /// `[a-z0-9][a-z0-9._-]*`, at most 64 bytes (`mmlu`, `support-tone`, `arc_challenge`).
    #[cfg_attr(
        feature = "openapi",
        schema(example = "mmlu", pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")
    )]
    pub benchmark: String,
    /// Same rules as `benchmark` (`acc`, `acc_norm`, `match`, `f1`).
    #[cfg_attr(
        feature = "openapi",
        schema(example = "acc", pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")
    )]
    pub metric: String,
    /// A finite number.
    #[cfg_attr(feature = "openapi", schema(example = 0.612))]
    pub value: f64,
    /// Whether a larger value is better (default `true`; `false` for loss, perplexity, WER).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    #[cfg_attr(feature = "openapi", schema(default = true))]
    pub higher_is_better: bool,
    /// Dataset or split the value was measured on (1..=256 bytes, no control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Where the value comes from, e.g. a training run id (1..=256 bytes, no control
    /// characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `POST …/versions/{version}/evals` body: results written in one transaction (all or
/// nothing).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EvalBatch {
    /// 1..=1000 results; each `benchmark:metric` at most once per batch.
    pub results: Vec<EvalInput>,
}

/// A stored result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalResult {
    /// Increasing in the order results were recorded.
    pub id: i64,
    pub benchmark: String,
    pub metric: String,
    pub value: f64,
    pub higher_is_better: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Who recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Unix time (seconds) it was recorded.
    pub created_at: i64,
}

impl EvalResult {
    /// `benchmark:metric`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.benchmark, self.metric)
    }

    /// Whether `input` records the same thing as this result (same key, value, direction,
    /// dataset and source): what an idempotent re-push skips.
    pub fn same_as(&self, input: &EvalInput) -> bool {
        self.benchmark == input.benchmark
            && self.metric == input.metric
            && self.value.to_bits() == input.value.to_bits()
            && self.higher_is_better == input.higher_is_better
            && self.dataset == input.dataset
            && self.source == input.source
    }
}

/// `GET …/evals` (every result, oldest first) and the answer of a `POST` (the results just
/// recorded, in request order).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalList {
    pub evals: Vec<EvalResult>,
}

/// Why a result or a batch was refused: the field (and, in a batch, the index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    /// Index in the batch, when the problem is one result's.
    pub index: Option<usize>,
    /// `benchmark`, `metric`, `value`, `dataset`, `source` or `results`.
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "results[{i}].{}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for EvalError {}

fn err(field: &'static str, message: impl Into<String>) -> EvalError {
    EvalError {
        index: None,
        field,
        message: message.into(),
    }
}

/// A benchmark or metric name: `[a-z0-9][a-z0-9._-]*`, 1..=64 bytes.
pub fn check_eval_name(field: &'static str, s: &str) -> Result<(), EvalError> {
    if s.is_empty() {
        return Err(err(field, "must not be empty"));
    }
    if s.len() > MAX_EVAL_NAME_LEN {
        return Err(err(
            field,
            format!(
                "is {} bytes long; the limit is {MAX_EVAL_NAME_LEN}",
                s.len()
            ),
        ));
    }
    let ok_first = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = |c: char| ok_first(c) || matches!(c, '.' | '_' | '-');
    let first = s.chars().next().unwrap_or('.');
    if !ok_first(first) || !s.chars().all(ok) {
        return Err(err(
            field,
            format!(
                "`{}` must be lowercase ASCII letters, digits, `.`, `_` or `-`, starting with a \
                 letter or digit",
                s.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// `dataset` / `source`: 1..=256 bytes, not blank, no control characters.
pub fn check_eval_text(field: &'static str, s: &str) -> Result<(), EvalError> {
    if s.trim().is_empty() {
        return Err(err(
            field,
            "must not be empty or blank (leave it out instead)",
        ));
    }
    if s.len() > MAX_EVAL_TEXT_LEN {
        return Err(err(
            field,
            format!(
                "is {} bytes long; the limit is {MAX_EVAL_TEXT_LEN}",
                s.len()
            ),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(err(field, "must not contain control characters"));
    }
    Ok(())
}

impl EvalInput {
    /// `benchmark:metric`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.benchmark, self.metric)
    }

    /// Every rule of one result.
    pub fn check(&self) -> Result<(), EvalError> {
        check_eval_name("benchmark", &self.benchmark)?;
        check_eval_name("metric", &self.metric)?;
        if !self.value.is_finite() {
            return Err(err("value", "must be a finite number"));
        }
        if let Some(d) = &self.dataset {
            check_eval_text("dataset", d)?;
        }
        if let Some(s) = &self.source {
            check_eval_text("source", s)?;
        }
        Ok(())
    }
}

impl EvalBatch {
    /// Every rule of a batch: 1..=1000 results, each valid, no `benchmark:metric` twice.
    pub fn check(&self) -> Result<(), EvalError> {
        if self.results.is_empty() {
            return Err(err("results", "a batch needs at least one result"));
        }
        if self.results.len() > MAX_EVAL_BATCH {
            return Err(err(
                "results",
                format!(
                    "{} results in one batch; the limit is {MAX_EVAL_BATCH}",
                    self.results.len()
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.results.iter().enumerate() {
            r.check().map_err(|e| EvalError {
                index: Some(i),
                ..e
            })?;
            if !seen.insert((r.benchmark.as_str(), r.metric.as_str())) {
                return Err(EvalError {
                    index: Some(i),
                    field: "metric",
                    message: format!("`{}` appears twice in this batch", r.key()),
                });
            }
        }
        Ok(())
    }
}

/// Parse `benchmark:metric=value` (`mmlu:acc=0.612`), the command-line form of a result.
/// Every rule of [`EvalInput::check`] applies; `dataset`/`source` are left empty and
/// `higher_is_better` is `true`.
pub fn parse_eval_arg(s: &str) -> Result<EvalInput, String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!(
            "`{}`: expected BENCHMARK:METRIC=VALUE (e.g. mmlu:acc=0.612)",
            s.escape_debug()
        ));
    };
    let Some((benchmark, metric)) = key.split_once(':') else {
        return Err(format!(
            "`{}`: the name before `=` must be BENCHMARK:METRIC (e.g. mmlu:acc)",
            s.escape_debug()
        ));
    };
    let trimmed = value.trim();
    // Rust's f64 parser also takes `inf`, `NaN` and `infinity`; only plain decimals here.
    let plain = !trimmed.is_empty()
        && trimmed == value
        && trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    let parsed: Option<f64> = if plain { trimmed.parse().ok() } else { None };
    let Some(value) = parsed else {
        return Err(format!(
            "`{}`: the value `{}` is not a decimal number",
            s.escape_debug(),
            value.escape_debug()
        ));
    };
    let input = EvalInput {
        benchmark: benchmark.to_owned(),
        metric: metric.to_owned(),
        value,
        higher_is_better: true,
        dataset: None,
        source: None,
    };
    input
        .check()
        .map_err(|e| format!("`{}`: {e}", s.escape_debug()))?;
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(b: &str, m: &str, v: f64) -> EvalInput {
        EvalInput {
            benchmark: b.into(),
            metric: m.into(),
            value: v,
            higher_is_better: true,
            dataset: None,
            source: None,
        }
    }

    #[test]
    fn names_follow_the_character_set() {
        for ok in ["mmlu", "support-tone", "arc_challenge", "v1.2", "0shot"] {
            check_eval_name("benchmark", ok).unwrap();
        }
        for bad in [
            "", "MMLU", "-x", "_x", ".x", "a b", "a:b", "a=b", "a/b", "é", "a\0",
        ] {
            assert!(check_eval_name("benchmark", bad).is_err(), "{bad:?}");
        }
        check_eval_name("metric", &"a".repeat(64)).unwrap();
        let e = check_eval_name("metric", &"a".repeat(65)).unwrap_err();
        assert_eq!(e.field, "metric");
        assert!(e.message.contains("limit is 64"), "{e}");
    }

    #[test]
    fn values_must_be_finite_and_texts_printable() {
        assert!(input("a", "b", f64::NAN).check().is_err());
        assert!(input("a", "b", f64::INFINITY).check().is_err());
        let mut i = input("a", "b", -3.5);
        i.check().unwrap();
        i.dataset = Some("   ".into());
        assert_eq!(i.check().unwrap_err().field, "dataset");
        i.dataset = Some("mmlu/test".into());
        i.source = Some("run\n42".into());
        assert_eq!(i.check().unwrap_err().field, "source");
        i.source = Some("x".repeat(257));
        assert_eq!(i.check().unwrap_err().field, "source");
        i.source = Some("wandb:acme/run-42".into());
        i.check().unwrap();
    }

    #[test]
    fn batches_are_bounded_and_have_no_duplicate_keys() {
        assert_eq!(
            EvalBatch { results: vec![] }.check().unwrap_err().field,
            "results"
        );
        let many = EvalBatch {
            results: (0..=MAX_EVAL_BATCH)
                .map(|i| input("b", &format!("m{i}"), 0.0))
                .collect(),
        };
        assert_eq!(many.check().unwrap_err().field, "results");
        let dup = EvalBatch {
            results: vec![
                input("a", "x", 1.0),
                input("b", "x", 1.0),
                input("a", "x", 2.0),
            ],
        };
        let e = dup.check().unwrap_err();
        assert_eq!(e.index, Some(2), "{e}");
        let bad = EvalBatch {
            results: vec![input("a", "x", 1.0), input("a", "Y", 1.0)],
        };
        assert_eq!(
            bad.check().unwrap_err().to_string().split(':').next(),
            Some("results[1].metric")
        );
    }

    #[test]
    fn command_line_form() {
        let i = parse_eval_arg("mmlu:acc=0.612").unwrap();
        assert_eq!(
            (i.benchmark.as_str(), i.metric.as_str(), i.value),
            ("mmlu", "acc", 0.612)
        );
        assert_eq!(
            parse_eval_arg("support-tone:match=-1e-3").unwrap().value,
            -0.001
        );
        for bad in [
            "mmlu",
            "mmlu=0.5",
            "mmlu:acc",
            "mmlu:acc=",
            "mmlu:acc=abc",
            "mmlu:acc=NaN",
            "mmlu:acc=inf",
            "mmlu:acc=infinity",
            "mmlu:acc= 0.5",
            "MMLU:acc=0.5",
            ":acc=1",
            "mmlu:=1",
            "mmlu:acc:x=1",
            "mmlu:acc=0.5=1",
            "mmlu:acc=1e999",
        ] {
            assert!(parse_eval_arg(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_is_strict() {
        let b: Result<EvalBatch, _> = serde_json::from_str(
            r#"{"results":[{"benchmark":"a","metric":"b","value":1,"higher_is_beter":false}]}"#,
        );
        assert!(b.is_err());
        let b: EvalBatch =
            serde_json::from_str(r#"{"results":[{"benchmark":"a","metric":"b","value":1}]}"#)
                .unwrap();
        assert!(b.results[0].higher_is_better);
    }
}
