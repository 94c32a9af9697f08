//! Adapter tensor names → the module they adapt and the base tensor they belong to.
//!
//! How PEFT forms saved names (`src/peft/utils/save_and_load.py`,
//! `get_peft_model_state_dict`): the PEFT model's parameter names, with the adapter name
//! removed (`.default`), under the `base_model.model.` prefix of `LoraModel`. LoRA layers
//! (`src/peft/tuners/lora/layer.py`) own `lora_A` / `lora_B` (Linear, Conv: `.weight`,
//! plus `lora_B.bias` with `lora_bias`), `lora_embedding_A` / `lora_embedding_B`
//! (Embedding: bare parameters) and `lora_magnitude_vector` (DoRA; saved as
//! `lora_magnitude_vector`, older releases wrote `lora_magnitude_vector.weight`).
//! `modules_to_save` copies are saved under the base module's own name
//! (`ModulesToSaveWrapper.adapter_state_dict`).

use super::targets::suffix_match;

/// The prefix `LoraModel` puts in front of the transformers model's names.
pub const PREFIX: &str = "base_model.model.";

/// What one adapter tensor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    LoraA,
    LoraB,
    EmbeddingA,
    EmbeddingB,
    Magnitude,
    /// `lora_B.bias` (`lora_bias = true`).
    LoraBias,
}

/// One adapter tensor, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// A LoRA tensor of module `module` (name without `base_model.model.`).
    Lora { module: String, role: Role },
    /// A full copy of a `modules_to_save` module's tensor; `base` is the base tensor name.
    ModuleToSave { module: String, base: String },
    /// A trained bias (`bias = "all"` or `"lora_only"`) of module `module`.
    Bias { module: String, base: String },
}

/// Why a tensor name could not be classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecognised {
    pub tensor: String,
    pub reason: String,
}

const LORA_SUFFIXES: &[(&str, Role)] = &[
    (".lora_A.weight", Role::LoraA),
    (".lora_B.weight", Role::LoraB),
    (".lora_B.bias", Role::LoraBias),
    (".lora_embedding_A", Role::EmbeddingA),
    (".lora_embedding_B", Role::EmbeddingB),
    (".lora_magnitude_vector.weight", Role::Magnitude),
    (".lora_magnitude_vector", Role::Magnitude),
];

/// The module name of an adapter name: `base_model.model.` stripped (names without it are
/// taken as they are: some tools save without the prefix).
pub fn strip_prefix(name: &str) -> &str {
    name.strip_prefix(PREFIX).unwrap_or(name)
}

/// The base tensor an adapted module modifies: `module.weight`.
pub fn base_weight(module: &str) -> String {
    format!("{module}.weight")
}

/// Classify one adapter tensor name. `modules_to_save` are the effective entries (with the
/// task-type heads); `bias_all` / `bias_lora_only` mirror the config's `bias`; `is_module`
/// says whether a name is a module with LoRA tensors (for `lora_only` biases).
pub fn classify(
    name: &str,
    modules_to_save: &[String],
    bias: super::values::Bias,
    is_lora_module: impl Fn(&str) -> bool,
) -> Result<Mapped, Unrecognised> {
    let stripped = strip_prefix(name);
    let fail = |reason: String| Unrecognised {
        tensor: name.to_owned(),
        reason,
    };
    if stripped.split('.').any(|s| s == "default") && stripped.contains(".lora_") {
        return Err(fail(
            "still contains the adapter name `default`: it was not saved with PEFT's \
             get_peft_model_state_dict (which removes it)"
                .to_owned(),
        ));
    }
    for (suffix, role) in LORA_SUFFIXES {
        if let Some(module) = stripped.strip_suffix(suffix) {
            if module.is_empty() || module.contains(".lora_") {
                return Err(fail("malformed LoRA tensor name".to_owned()));
            }
            return Ok(Mapped::Lora {
                module: module.to_owned(),
                role: role.clone(),
            });
        }
    }
    if stripped.contains("lora_") {
        return Err(fail("unrecognised LoRA tensor suffix".to_owned()));
    }
    // modules_to_save: any proper prefix (whole segments) that matches an entry.
    let parts: Vec<&str> = stripped.split('.').collect();
    for end in 1..parts.len() {
        let module = parts[..end].join(".");
        if modules_to_save.iter().any(|m| suffix_match(&module, m)) {
            return Ok(Mapped::ModuleToSave {
                module,
                base: stripped.to_owned(),
            });
        }
    }
    // Biases: `X.bias`; PEFT ≥ 0.7 names the wrapped layer's bias `X.base_layer.bias`.
    if let Some(module) = stripped.strip_suffix(".bias") {
        let module = module.strip_suffix(".base_layer").unwrap_or(module);
        let allowed = match bias {
            super::values::Bias::None => false,
            super::values::Bias::All => true,
            super::values::Bias::LoraOnly => is_lora_module(module),
        };
        if allowed {
            return Ok(Mapped::Bias {
                module: module.to_owned(),
                base: format!("{module}.bias"),
            });
        }
        return Err(fail(format!(
            "a bias tensor, but bias = \"{}\" does not save it",
            match bias {
                super::values::Bias::None => "none",
                super::values::Bias::All => "all",
                super::values::Bias::LoraOnly => "lora_only",
            }
        )));
    }
    Err(fail(
        "neither a LoRA tensor nor part of a modules_to_save module".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::values::Bias;
    use super::*;

    fn c(name: &str) -> Result<Mapped, Unrecognised> {
        classify(name, &["lm_head".to_owned()], Bias::None, |_| true)
    }

    fn lora(module: &str, role: Role) -> Result<Mapped, Unrecognised> {
        Ok(Mapped::Lora {
            module: module.to_owned(),
            role,
        })
    }

    #[test]
    fn lora_names_map_to_their_module() {
        let m = "model.layers.0.self_attn.q_proj";
        assert_eq!(
            c(&format!("{PREFIX}{m}.lora_A.weight")),
            lora(m, Role::LoraA)
        );
        assert_eq!(
            c(&format!("{PREFIX}{m}.lora_B.weight")),
            lora(m, Role::LoraB)
        );
        assert_eq!(
            c(&format!("{PREFIX}{m}.lora_B.bias")),
            lora(m, Role::LoraBias)
        );
        assert_eq!(
            c(&format!("{PREFIX}{m}.lora_magnitude_vector")),
            lora(m, Role::Magnitude)
        );
        assert_eq!(
            c(&format!("{PREFIX}{m}.lora_magnitude_vector.weight")),
            lora(m, Role::Magnitude)
        );
        assert_eq!(
            c("base_model.model.model.embed_tokens.lora_embedding_A"),
            lora("model.embed_tokens", Role::EmbeddingA)
        );
        assert_eq!(base_weight(m), format!("{m}.weight"));
    }

    #[test]
    fn modules_to_save_are_saved_under_the_base_name() {
        assert_eq!(
            c("base_model.model.lm_head.weight"),
            Ok(Mapped::ModuleToSave {
                module: "lm_head".to_owned(),
                base: "lm_head.weight".to_owned()
            })
        );
        // Suffix rule: `xlm_head` is not `lm_head`.
        assert!(c("base_model.model.xlm_head.weight").is_err());
    }

    #[test]
    fn leftovers_are_refused_with_a_reason() {
        let e = c("base_model.model.model.q_proj.lora_A.default.weight").unwrap_err();
        assert!(e.reason.contains("default"), "{}", e.reason);
        let e = c("base_model.model.model.q_proj.lora_C.weight").unwrap_err();
        assert!(e.reason.contains("suffix"), "{}", e.reason);
        let e = c("base_model.model.model.q_proj.bias").unwrap_err();
        assert!(e.reason.contains("bias"), "{}", e.reason);
    }

    #[test]
    fn biases_follow_the_bias_setting() {
        let all = classify("base_model.model.a.b.bias", &[], Bias::All, |_| false);
        assert_eq!(
            all,
            Ok(Mapped::Bias {
                module: "a.b".to_owned(),
                base: "a.b.bias".to_owned()
            })
        );
        let only = classify(
            "base_model.model.a.b.base_layer.bias",
            &[],
            Bias::LoraOnly,
            |m| m == "a.b",
        );
        assert!(matches!(only, Ok(Mapped::Bias { ref base, .. }) if base == "a.b.bias"));
        let other = classify("base_model.model.c.bias", &[], Bias::LoraOnly, |m| {
            m == "a.b"
        });
        assert!(other.is_err());
    }
}
