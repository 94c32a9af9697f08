//! The typed values of `adapter_config.json` fields that are more than a string or a number
//! (`target_modules`, `exclude_modules`, `layers_to_transform`, `bias`, `init_lora_weights`);
//! `fields.rs` reads them from JSON and [`super::AdapterConfig`] holds them.

use serde::Serialize;

/// `target_modules`: a list (suffix match), a regex (full match) or the `all-linear` shorthand.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TargetModules {
    List(Vec<String>),
    Regex(String),
    /// `"all-linear"`, compared case-insensitively as PEFT does
    /// (`tuners_utils.py`, `_maybe_include_all_linear_layers`). Keeps the spelling written.
    AllLinear(String),
}

/// `exclude_modules` / `modules_to_save`-like fields that are a list or a regex.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ModulePatterns {
    List(Vec<String>),
    Regex(String),
}

/// `layers_to_transform`: one index or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LayersToTransform {
    One(u64),
    Many(Vec<u64>),
}

impl LayersToTransform {
    pub fn contains(&self, index: u64) -> bool {
        match self {
            Self::One(i) => *i == index,
            Self::Many(v) => v.contains(&index),
        }
    }

    /// PEFT treats an empty list as "no layer restriction" (`tuners_utils.py`,
    /// `check_target_module_exists`: `is_using_layer_indexes`).
    pub fn is_active(&self) -> bool {
        match self {
            Self::One(_) => true,
            Self::Many(v) => !v.is_empty(),
        }
    }
}

/// `bias`: which bias vectors were trained and saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bias {
    None,
    All,
    LoraOnly,
}

/// `init_lora_weights`: a bool or the name of an initialisation method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum InitLoraWeights {
    Bool(bool),
    Method(String),
}

impl InitLoraWeights {
    /// Methods that rewrite the base weights at initialisation (PiSSA, OLoRA, CorDA subtract
    /// the initial low-rank part from W; LoftQ replaces W with its quantised residual), so the
    /// saved adapter only works on that modified base unless it was converted when saved
    /// (`save_pretrained(path_initial_model_for_weight_conversion=…)`, which also writes
    /// `init_lora_weights = true`). Source: `src/peft/tuners/lora/config.py` (field help),
    /// `src/peft/peft_model.py` (`save_pretrained`).
    pub fn rewrites_base(&self) -> bool {
        match self {
            Self::Bool(_) => false,
            Self::Method(m) => {
                let m = m.to_ascii_lowercase();
                m == "pissa"
                    || m.starts_with("pissa_niter_")
                    || m == "olora"
                    || m == "corda"
                    || m == "loftq"
            }
        }
    }

    pub(super) fn is_known(&self) -> bool {
        match self {
            Self::Bool(_) => true,
            Self::Method(m) => {
                self.rewrites_base()
                    || matches!(m.as_str(), "gaussian" | "eva" | "orthogonal" | "lora_ga")
            }
        }
    }
}
