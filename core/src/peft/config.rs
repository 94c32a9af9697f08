//! `adapter_config.json`: the fields of PEFT's `LoraConfig` this project reads, with PEFT's
//! defaults, and every other field kept as written.
//!
//! Source of the fields and defaults: `src/peft/tuners/lora/config.py` (`LoraConfig`) and
//! `src/peft/config.py` (`PeftConfigMixin`: `peft_type`, `task_type`,
//! `base_model_name_or_path`, `revision`).

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::PeftError;
use super::fields::{
    bias, boolean, init, layers, number, object, patterns, positive_int, str_or_list, string,
    string_list, target_modules,
};
use super::values::{Bias, InitLoraWeights, LayersToTransform, ModulePatterns, TargetModules};
use crate::diag::{Finding, Findings};
use crate::json::parse_strict;

/// PEFT method types (`src/peft/utils/peft_types.py`, `PeftType`). Only `LORA` is analysed
/// and mergeable here; the others are recognised so that they can be reported by name.
pub const KNOWN_PEFT_TYPES: &[&str] = &[
    "LORA",
    "ADALORA",
    "XLORA",
    "IA3",
    "LOHA",
    "LOKR",
    "VERA",
    "OFT",
    "BOFT",
    "HRA",
    "BONE",
    "MISS",
    "FOURIERFT",
    "VBLORA",
    "RANDLORA",
    "SHIRA",
    "C3A",
    "ROAD",
    "DELORA",
    "GRALORA",
    "WAVEFT",
    "OSF",
    "POLY",
    "LN_TUNING",
    "CPT",
    "TRAINABLE_TOKENS",
    "ADAPTION_PROMPT",
    "PREFIX_TUNING",
    "PROMPT_TUNING",
    "MULTITASK_PROMPT_TUNING",
    "P_TUNING",
];

/// A parsed `adapter_config.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterConfig {
    /// As written, upper-cased (`"LORA"` when absent, like `LoraConfig`).
    pub peft_type: String,
    pub task_type: Option<String>,
    pub base_model_name_or_path: Option<String>,
    pub revision: Option<String>,
    /// Default 8.
    pub r: u64,
    /// Default 8. A float because PEFT accepts floats and divides in floating point.
    pub lora_alpha: f64,
    /// `None` when absent or null (PEFT then picks per-architecture defaults from the base).
    pub target_modules: Option<TargetModules>,
    pub exclude_modules: Option<ModulePatterns>,
    pub use_rslora: bool,
    pub use_dora: bool,
    pub fan_in_fan_out: bool,
    pub modules_to_save: Vec<String>,
    /// File order kept: the first matching key wins.
    pub rank_pattern: Vec<(String, u64)>,
    /// File order kept: the first matching key wins.
    pub alpha_pattern: Vec<(String, f64)>,
    pub layers_to_transform: Option<LayersToTransform>,
    pub layers_pattern: Option<Vec<String>>,
    pub bias: Bias,
    pub lora_bias: bool,
    pub init_lora_weights: InitLoraWeights,
    /// Every field not modelled above, in file order.
    pub extra: Map<String, Value>,
}

impl Default for AdapterConfig {
    /// `LoraConfig()` with no arguments.
    fn default() -> Self {
        Self {
            peft_type: "LORA".to_owned(),
            task_type: None,
            base_model_name_or_path: None,
            revision: None,
            r: 8,
            lora_alpha: 8.0,
            target_modules: None,
            exclude_modules: None,
            use_rslora: false,
            use_dora: false,
            fan_in_fan_out: false,
            modules_to_save: Vec::new(),
            rank_pattern: Vec::new(),
            alpha_pattern: Vec::new(),
            layers_to_transform: None,
            layers_pattern: None,
            bias: Bias::None,
            lora_bias: false,
            init_lora_weights: InitLoraWeights::Bool(true),
            extra: Map::new(),
        }
    }
}

impl AdapterConfig {
    /// Parse `adapter_config.json` bytes (strict JSON: duplicate keys refused).
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, PeftError> {
        let value = parse_strict(bytes).map_err(|e| PeftError::ConfigJson(e.to_string()))?;
        Self::from_value(value)
    }

    /// Convert a parsed JSON value. Missing or null fields take PEFT's defaults; unknown
    /// fields go to `extra`; a field of the wrong type is an error naming it.
    pub fn from_value(value: Value) -> Result<Self, PeftError> {
        let Value::Object(map) = value else {
            return Err(PeftError::ConfigJson(
                "adapter_config.json must be a JSON object".to_owned(),
            ));
        };
        let mut c = AdapterConfig::default();
        if let Some(v) = map.get("peft_type").filter(|v| !v.is_null()) {
            c.peft_type = string(v, "peft_type")?.to_ascii_uppercase();
        }
        let lora = c.is_lora();
        for (key, v) in map {
            if v.is_null() {
                // PEFT writes None as null: same as absent.
                if !is_modelled(&key, lora) {
                    c.extra.insert(key, v);
                }
                continue;
            }
            match key.as_str() {
                "peft_type" => {}
                "task_type" => c.task_type = Some(string(&v, &key)?.to_owned()),
                "base_model_name_or_path" => {
                    c.base_model_name_or_path = Some(string(&v, &key)?.to_owned())
                }
                "revision" => c.revision = Some(string(&v, &key)?.to_owned()),
                "target_modules" => c.target_modules = Some(target_modules(&v)?),
                "modules_to_save" => c.modules_to_save = string_list(&v, &key)?,
                "exclude_modules" if lora => c.exclude_modules = Some(patterns(&v, &key)?),
                "r" if lora => c.r = positive_int(&v, &key)?,
                "lora_alpha" if lora => c.lora_alpha = number(&v, &key)?,
                "use_rslora" if lora => c.use_rslora = boolean(&v, &key)?,
                "use_dora" if lora => c.use_dora = boolean(&v, &key)?,
                "fan_in_fan_out" if lora => c.fan_in_fan_out = boolean(&v, &key)?,
                "lora_bias" if lora => c.lora_bias = boolean(&v, &key)?,
                "rank_pattern" if lora => {
                    c.rank_pattern = object(&v, &key)?
                        .iter()
                        .map(|(k, x)| Ok((k.clone(), positive_int(x, &format!("{key}.{k}"))?)))
                        .collect::<Result<_, PeftError>>()?
                }
                "alpha_pattern" if lora => {
                    c.alpha_pattern = object(&v, &key)?
                        .iter()
                        .map(|(k, x)| Ok((k.clone(), number(x, &format!("{key}.{k}"))?)))
                        .collect::<Result<_, PeftError>>()?
                }
                "layers_to_transform" if lora => c.layers_to_transform = Some(layers(&v, &key)?),
                "layers_pattern" if lora => c.layers_pattern = Some(str_or_list(&v, &key)?),
                "bias" if lora => c.bias = bias(&v)?,
                "init_lora_weights" if lora => c.init_lora_weights = init(&v)?,
                _ => {
                    c.extra.insert(key, v);
                }
            }
        }
        if lora {
            c.validate()?;
        }
        Ok(c)
    }

    /// `peft_type == "LORA"`: the only type whose tensors this module analyses and merges.
    pub fn is_lora(&self) -> bool {
        self.peft_type == "LORA"
    }

    /// `"lora" | "rslora" | "dora" | "rslora+dora"`, or the lower-cased PEFT type otherwise.
    pub fn variant(&self) -> String {
        if !self.is_lora() {
            return self.peft_type.to_ascii_lowercase();
        }
        match (self.use_rslora, self.use_dora) {
            (false, false) => "lora",
            (true, false) => "rslora",
            (false, true) => "dora",
            (true, true) => "rslora+dora",
        }
        .to_owned()
    }

    /// The rules of `LoraConfig.__post_init__` that make PEFT refuse a config
    /// (`src/peft/tuners/lora/config.py`).
    fn validate(&self) -> Result<(), PeftError> {
        let is_str = matches!(
            self.target_modules,
            Some(TargetModules::Regex(_) | TargetModules::AllLinear(_))
        );
        if is_str && self.layers_to_transform.is_some() {
            return Err(PeftError::config(
                "layers_to_transform",
                "cannot be used when `target_modules` is a str (regex or all-linear)",
            ));
        }
        if is_str && self.layers_pattern.is_some() {
            return Err(PeftError::config(
                "layers_pattern",
                "cannot be used when `target_modules` is a str (regex or all-linear)",
            ));
        }
        let has_pattern = self.layers_pattern.as_ref().is_some_and(|p| !p.is_empty());
        let has_layers = self
            .layers_to_transform
            .as_ref()
            .is_some_and(LayersToTransform::is_active);
        if has_pattern && !has_layers {
            return Err(PeftError::config(
                "layers_pattern",
                "when `layers_pattern` is specified, `layers_to_transform` must also be specified",
            ));
        }
        Ok(())
    }

    /// Findings about the config alone: non-LoRA types, base-rewriting initialisations.
    pub fn findings(&self) -> Findings {
        let mut f = Findings::default();
        if !self.is_lora() {
            let known = KNOWN_PEFT_TYPES.contains(&self.peft_type.as_str());
            let what = if known {
                "a PEFT method"
            } else {
                "an unknown PEFT type"
            };
            f.warn(
                Finding::new(
                    "not_lora",
                    format!(
                        "peft_type {} is {what} other than LoRA: its tensors are not analysed \
                         and it is not mergeable",
                        self.peft_type
                    ),
                )
                .about("peft_type"),
            );
            return f;
        }
        if self.init_lora_weights.rewrites_base() {
            let InitLoraWeights::Method(m) = &self.init_lora_weights else {
                unreachable!("rewrites_base implies a method name")
            };
            f.warn(
                Finding::new(
                    "init_needs_conversion",
                    format!(
                        "init_lora_weights = \"{m}\" rewrites the base weights at initialisation: \
                         this adapter only works on the modified base saved with it, unless it is \
                         converted to a plain LoRA (PEFT: save_pretrained with \
                         path_initial_model_for_weight_conversion)"
                    ),
                )
                .about("init_lora_weights"),
            );
        } else if !self.init_lora_weights.is_known() {
            f.warn(
                Finding::new(
                    "unknown_init_method",
                    format!(
                        "init_lora_weights = {} is not a method this registry knows",
                        serde_json::to_string(&self.init_lora_weights).unwrap_or_default()
                    ),
                )
                .about("init_lora_weights"),
            );
        }
        if self.target_modules.is_none() {
            f.warn(
                Finding::new(
                    "target_modules_unset",
                    "target_modules is not set: PEFT picks per-architecture defaults, so the \
                     adapted modules cannot be checked against the config",
                )
                .about("target_modules"),
            );
        }
        f
    }

    /// `modules_to_save` plus the heads PEFT adds by task type
    /// (`src/peft/peft_model.py`: `PeftModelForSequenceClassification` and
    /// `PeftModelForTokenClassification` add `classifier` and `score`,
    /// `PeftModelForQuestionAnswering` adds `qa_outputs`).
    pub fn effective_modules_to_save(&self) -> Vec<String> {
        let mut out = self.modules_to_save.clone();
        let implied: &[&str] = match self.task_type.as_deref() {
            Some("SEQ_CLS" | "TOKEN_CLS") => &["classifier", "score"],
            Some("QUESTION_ANS") => &["qa_outputs"],
            _ => &[],
        };
        for m in implied {
            if !out.iter().any(|x| x == m) {
                out.push((*m).to_owned());
            }
        }
        out
    }
}

fn is_modelled(key: &str, lora: bool) -> bool {
    matches!(
        key,
        "peft_type" | "task_type" | "base_model_name_or_path" | "revision" | "target_modules"
    ) || key == "modules_to_save"
        || (lora
            && matches!(
                key,
                "exclude_modules"
                    | "r"
                    | "lora_alpha"
                    | "use_rslora"
                    | "use_dora"
                    | "fan_in_fan_out"
                    | "lora_bias"
                    | "rank_pattern"
                    | "alpha_pattern"
                    | "layers_to_transform"
                    | "layers_pattern"
                    | "bias"
                    | "init_lora_weights"
            ))
}
