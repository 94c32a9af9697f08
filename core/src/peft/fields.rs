//! Typed reads of `adapter_config.json` fields: each wrong type is an error naming the field.

use std::fmt;

use serde_json::{Map, Value};

use super::error::PeftError;
use super::values::{Bias, InitLoraWeights, LayersToTransform, ModulePatterns, TargetModules};

struct JsonKind<'a>(&'a Value);

impl fmt::Display for JsonKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        })
    }
}

pub(super) fn wrong(field: &str, expected: &str, v: &Value) -> PeftError {
    PeftError::config(field, format!("expected {expected}, found {}", JsonKind(v)))
}

pub(super) fn string<'a>(v: &'a Value, field: &str) -> Result<&'a str, PeftError> {
    v.as_str().ok_or_else(|| wrong(field, "a string", v))
}

pub(super) fn boolean(v: &Value, field: &str) -> Result<bool, PeftError> {
    v.as_bool().ok_or_else(|| wrong(field, "true or false", v))
}

pub(super) fn number(v: &Value, field: &str) -> Result<f64, PeftError> {
    v.as_f64().ok_or_else(|| wrong(field, "a number", v))
}

pub(super) fn positive_int(v: &Value, field: &str) -> Result<u64, PeftError> {
    match v.as_u64() {
        Some(0) => Err(PeftError::config(field, "must be > 0, found 0")),
        Some(n) => Ok(n),
        None => match v.as_i64() {
            Some(n) => Err(PeftError::config(field, format!("must be > 0, found {n}"))),
            None => Err(wrong(field, "a positive integer", v)),
        },
    }
}

pub(super) fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, PeftError> {
    v.as_object().ok_or_else(|| wrong(field, "an object", v))
}

pub(super) fn string_list(v: &Value, field: &str) -> Result<Vec<String>, PeftError> {
    let items = v
        .as_array()
        .ok_or_else(|| wrong(field, "a list of strings", v))?;
    items
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_str()
                .map(str::to_owned)
                .ok_or_else(|| wrong(&format!("{field}[{i}]"), "a string", x))
        })
        .collect()
}

pub(super) fn str_or_list(v: &Value, field: &str) -> Result<Vec<String>, PeftError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(_) => string_list(v, field),
        _ => Err(wrong(field, "a string or a list of strings", v)),
    }
}

pub(super) fn target_modules(v: &Value) -> Result<TargetModules, PeftError> {
    match v {
        // `tuners_utils.py`, `_maybe_include_all_linear_layers`: `.lower() == "all-linear"`.
        Value::String(s) if s.to_lowercase() == "all-linear" => {
            Ok(TargetModules::AllLinear(s.clone()))
        }
        Value::String(s) => Ok(TargetModules::Regex(s.clone())),
        Value::Array(_) => Ok(TargetModules::List(string_list(v, "target_modules")?)),
        _ => Err(wrong("target_modules", "a string or a list of strings", v)),
    }
}

pub(super) fn patterns(v: &Value, field: &str) -> Result<ModulePatterns, PeftError> {
    match v {
        Value::String(s) => Ok(ModulePatterns::Regex(s.clone())),
        Value::Array(_) => Ok(ModulePatterns::List(string_list(v, field)?)),
        _ => Err(wrong(field, "a string or a list of strings", v)),
    }
}

pub(super) fn layers(v: &Value, field: &str) -> Result<LayersToTransform, PeftError> {
    let index = |x: &Value, f: &str| {
        x.as_u64()
            .ok_or_else(|| wrong(f, "a non-negative integer", x))
    };
    match v {
        Value::Number(_) => Ok(LayersToTransform::One(index(v, field)?)),
        Value::Array(items) => Ok(LayersToTransform::Many(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| index(x, &format!("{field}[{i}]")))
                .collect::<Result<_, _>>()?,
        )),
        _ => Err(wrong(field, "an integer or a list of integers", v)),
    }
}

pub(super) fn bias(v: &Value) -> Result<Bias, PeftError> {
    match string(v, "bias")? {
        "none" => Ok(Bias::None),
        "all" => Ok(Bias::All),
        "lora_only" => Ok(Bias::LoraOnly),
        other => Err(PeftError::config(
            "bias",
            format!("expected \"none\", \"all\" or \"lora_only\", found \"{other}\""),
        )),
    }
}

pub(super) fn init(v: &Value) -> Result<InitLoraWeights, PeftError> {
    match v {
        Value::Bool(b) => Ok(InitLoraWeights::Bool(*b)),
        Value::String(s) => Ok(InitLoraWeights::Method(s.clone())),
        _ => Err(wrong("init_lora_weights", "a boolean or a method name", v)),
    }
}
