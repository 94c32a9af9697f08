//! Consistency of an adapter's tensors with themselves and with its config, from the header
//! alone (names, dtypes, shapes): no tensor data, no base model.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::config::AdapterConfig;
use super::error::PeftError;
use super::mapping::{self, Mapped, Role};
use super::targets::{ModuleScale, Targeting, Verdict, layer_segment, suffix_match};
use crate::diag::{Finding, Findings};
use crate::safetensors::{Dtype, TensorInfo};

/// The layer type a LoRA module adapts, as far as the adapter's tensors tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// `nn.Linear` or transformers' `Conv1D` (2-D `lora_A` / `lora_B`).
    Linear,
    /// `nn.Embedding` (`lora_embedding_A` / `lora_embedding_B`).
    Embedding,
    /// `nn.Conv1d/2d/3d` (`lora_A` of 3 or more dimensions).
    Conv,
}

/// The tensors one adapted module owns in the adapter file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModuleTensors {
    /// `lora_A.weight` or `lora_embedding_A`.
    pub a: Option<TensorInfo>,
    /// `lora_B.weight` or `lora_embedding_B`.
    pub b: Option<TensorInfo>,
    pub magnitude: Option<TensorInfo>,
    pub bias: Option<TensorInfo>,
}

/// One module the adapter adapts.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptedModule {
    /// Module name without `base_model.model.` (`model.layers.0.self_attn.q_proj`).
    pub name: String,
    pub kind: ModuleKind,
    /// Rank, alpha and scale from the config's patterns.
    pub scale: ModuleScale,
    pub tensors: ModuleTensors,
    /// Linear/Conv: input features (channels); Embedding: `num_embeddings`.
    pub in_features: Option<u64>,
    /// Linear/Conv: output features (channels); Embedding: `embedding_dim`.
    pub out_features: Option<u64>,
    /// Conv kernel size (empty otherwise).
    pub kernel: Vec<u64>,
    /// First numbered segment of the name (`model.layers.7.…` → 7).
    pub layer: Option<u64>,
}

impl AdaptedModule {
    /// The base tensor this module's update applies to.
    pub fn base_tensor(&self) -> String {
        mapping::base_weight(&self.name)
    }

    /// The dtype of `lora_A` (else `lora_B`).
    pub fn dtype(&self) -> Option<Dtype> {
        self.tensors
            .a
            .as_ref()
            .or(self.tensors.b.as_ref())
            .map(|t| t.dtype)
    }
}

/// A full tensor saved by the adapter (modules_to_save or bias).
#[derive(Debug, Clone, PartialEq)]
pub struct SavedTensor {
    /// The module it belongs to.
    pub module: String,
    /// Name of the same tensor in the base model.
    pub base: String,
    pub info: TensorInfo,
}

/// The result of [`analyze`].
#[derive(Debug)]
pub struct Analysis {
    /// Sorted by name.
    pub modules: Vec<AdaptedModule>,
    pub modules_to_save: Vec<SavedTensor>,
    pub biases: Vec<SavedTensor>,
    pub findings: Findings,
    /// The compiled rules (`None` for non-LoRA adapters).
    pub targeting: Option<Targeting>,
}

fn shape(s: &[u64]) -> String {
    format!("{s:?}")
}

/// Check the adapter's tensors against each other and against `config`. `Err` only when the
/// config's patterns cannot be compiled; every problem in the adapter is a finding.
pub fn analyze(config: &AdapterConfig, tensors: &[TensorInfo]) -> Result<Analysis, PeftError> {
    let mut findings = config.findings();
    if !config.is_lora() {
        return Ok(Analysis {
            modules: Vec::new(),
            modules_to_save: Vec::new(),
            biases: Vec::new(),
            findings,
            targeting: None,
        });
    }
    let targeting = Targeting::new(config)?;
    let to_save = config.effective_modules_to_save();
    let lora_modules: BTreeSet<String> = tensors
        .iter()
        .filter_map(
            |t| match mapping::classify(&t.name, &[], config.bias, |_| false) {
                Ok(Mapped::Lora { module, .. }) => Some(module),
                _ => None,
            },
        )
        .collect();

    let mut groups: BTreeMap<String, (ModuleTensors, bool, bool)> = BTreeMap::new();
    let mut modules_to_save = Vec::new();
    let mut biases = Vec::new();
    for t in tensors {
        match mapping::classify(&t.name, &to_save, config.bias, |m| lora_modules.contains(m)) {
            Ok(Mapped::Lora { module, role }) => {
                let entry = groups.entry(module.clone()).or_default();
                if matches!(role, Role::EmbeddingA | Role::EmbeddingB) {
                    entry.1 = true;
                } else if matches!(role, Role::LoraA | Role::LoraB) {
                    entry.2 = true;
                }
                let slot = match role {
                    Role::LoraA | Role::EmbeddingA => &mut entry.0.a,
                    Role::LoraB | Role::EmbeddingB => &mut entry.0.b,
                    Role::Magnitude => &mut entry.0.magnitude,
                    Role::LoraBias => &mut entry.0.bias,
                };
                if slot.is_some() {
                    findings.error(
                        Finding::new(
                            "duplicate_tensor",
                            format!("{module}: two tensors fill the same role ({})", t.name),
                        )
                        .about(t.name.clone()),
                    );
                } else {
                    *slot = Some(t.clone());
                }
            }
            Ok(Mapped::ModuleToSave { module, base }) => modules_to_save.push(SavedTensor {
                module,
                base,
                info: t.clone(),
            }),
            Ok(Mapped::Bias { module, base }) => biases.push(SavedTensor {
                module,
                base,
                info: t.clone(),
            }),
            Err(u) => findings.error(
                Finding::new(
                    "unrecognised_tensor",
                    format!("tensor {}: {}", u.tensor, u.reason),
                )
                .about(u.tensor),
            ),
        }
    }

    let mut modules = Vec::with_capacity(groups.len());
    for (name, (tensors, embedding, linear)) in groups {
        if embedding && linear {
            findings.error(
                Finding::new(
                    "mixed_module_kinds",
                    format!("{name}: has both lora_A/lora_B and lora_embedding_A/lora_embedding_B"),
                )
                .about(name.clone()),
            );
        }
        let kind = if embedding {
            ModuleKind::Embedding
        } else if tensors
            .a
            .as_ref()
            .or(tensors.b.as_ref())
            .is_some_and(|t| t.shape.len() >= 3)
        {
            ModuleKind::Conv
        } else {
            ModuleKind::Linear
        };
        let mut m = AdaptedModule {
            scale: targeting.scale_of(&name),
            layer: layer_segment(&name).map(|(_, i)| i),
            name,
            kind,
            tensors,
            in_features: None,
            out_features: None,
            kernel: Vec::new(),
        };
        check_module(config, &mut m, &mut findings);
        check_targeted(&targeting, &m, &mut findings);
        modules.push(m);
    }

    if modules.is_empty() {
        findings.error(Finding::new(
            "no_lora_weights",
            "the adapter has no LoRA tensors (lora_A/lora_B or lora_embedding_A/B)",
        ));
    }
    if let Some(list) = targeting.list_targets() {
        for t in list {
            if !modules.iter().any(|m| suffix_match(&m.name, t)) {
                findings.warn(
                    Finding::new(
                        "unused_target",
                        format!("target_modules entry `{t}` matches no module with LoRA weights"),
                    )
                    .about(t.clone()),
                );
            }
        }
    }
    for m in &config.modules_to_save {
        if !modules_to_save.iter().any(|s| suffix_match(&s.module, m)) {
            findings.warn(
                Finding::new(
                    "modules_to_save_missing",
                    format!("modules_to_save entry `{m}` has no saved tensor in the adapter"),
                )
                .about(m.clone()),
            );
        }
    }
    check_dtypes(tensors, &modules, &mut findings);
    Ok(Analysis {
        modules,
        modules_to_save,
        biases,
        findings,
        targeting: Some(targeting),
    })
}

/// Shapes and presence of one module's tensors (`src/peft/tuners/lora/layer.py`:
/// Linear `lora_A = nn.Linear(in, r)` → [r, in], `lora_B = nn.Linear(r, out)` → [out, r];
/// Embedding `lora_embedding_A` [r, num_embeddings], `lora_embedding_B` [embedding_dim, r];
/// ConvNd `lora_A` [r, in, *kernel], `lora_B` [out, r, 1, …]; `src/peft/tuners/lora/dora.py`:
/// magnitude [out] (Linear, Embedding) or [1, out, 1, …] (Conv)).
fn check_module(config: &AdapterConfig, m: &mut AdaptedModule, f: &mut Findings) {
    let r = m.scale.rank;
    let origin = match &m.scale.rank_key {
        Some(k) => format!("rank_pattern key `{k}`"),
        None => "r".to_owned(),
    };
    let (a_name, b_name) = match m.kind {
        ModuleKind::Embedding => ("lora_embedding_A", "lora_embedding_B"),
        _ => ("lora_A", "lora_B"),
    };
    let name = m.name.clone();
    let mut err = |code: &'static str, msg: String| {
        f.error(Finding::new(code, format!("{name}: {msg}")).about(name.clone()));
    };
    match &m.tensors.a {
        None => err(
            "lora_a_missing",
            format!("{b_name} has no matching {a_name}"),
        ),
        Some(a) => {
            let ok_rank = match m.kind {
                ModuleKind::Conv => a.shape.len() >= 3,
                _ => a.shape.len() == 2,
            };
            if !ok_rank {
                err(
                    "bad_shape",
                    format!("{a_name} has shape {} of the wrong rank", shape(&a.shape)),
                );
            } else {
                m.in_features = Some(a.shape[1]);
                m.kernel = a.shape[2..].to_vec();
                if a.shape[0] != r {
                    let mut want = a.shape.clone();
                    want[0] = r;
                    err(
                        "rank_mismatch",
                        format!(
                            "{a_name} has shape {}, expected {} (rank {r} from {origin})",
                            shape(&a.shape),
                            shape(&want)
                        ),
                    );
                }
            }
        }
    }
    match &m.tensors.b {
        None => err(
            "lora_b_missing",
            format!("{a_name} has no matching {b_name}"),
        ),
        Some(b) => {
            let want_len = match m.kind {
                ModuleKind::Conv => m
                    .tensors
                    .a
                    .as_ref()
                    .map_or(b.shape.len(), |a| a.shape.len()),
                _ => 2,
            };
            if b.shape.len() != want_len || b.shape[2.min(b.shape.len())..].iter().any(|&d| d != 1)
            {
                err(
                    "bad_shape",
                    format!(
                        "{b_name} has shape {}, expected [out, r{}]",
                        shape(&b.shape),
                        { ", 1".repeat(want_len.saturating_sub(2)) }
                    ),
                );
            } else {
                m.out_features = Some(b.shape[0]);
                if b.shape[1] != r {
                    let mut want = b.shape.clone();
                    want[1] = r;
                    err(
                        "rank_mismatch",
                        format!(
                            "{b_name} has shape {}, expected {} (rank {r} from {origin})",
                            shape(&b.shape),
                            shape(&want)
                        ),
                    );
                }
            }
        }
    }
    match (&m.tensors.magnitude, config.use_dora) {
        (None, true) => err(
            "dora_magnitude_missing",
            "use_dora is set but lora_magnitude_vector is missing".to_owned(),
        ),
        (Some(_), false) => err(
            "dora_magnitude_unexpected",
            "has lora_magnitude_vector but use_dora is not set".to_owned(),
        ),
        (Some(mag), true) => {
            if let Some(out) = m.out_features {
                let want = match m.kind {
                    ModuleKind::Conv => {
                        let mut w = vec![1; m.tensors.a.as_ref().map_or(4, |a| a.shape.len())];
                        w[1] = out;
                        w
                    }
                    _ => vec![out],
                };
                if mag.shape != want {
                    err(
                        "dora_magnitude_shape",
                        format!(
                            "lora_magnitude_vector has shape {}, expected {}",
                            shape(&mag.shape),
                            shape(&want)
                        ),
                    );
                }
            }
        }
        (None, false) => {}
    }
    match (&m.tensors.bias, config.lora_bias) {
        (Some(_), false) => err(
            "lora_bias_unexpected",
            "has lora_B.bias but lora_bias is not set".to_owned(),
        ),
        (None, true) if m.kind != ModuleKind::Embedding => err(
            "lora_bias_missing",
            "lora_bias is set but lora_B.bias is missing".to_owned(),
        ),
        (Some(b), true) => {
            if let Some(out) = m.out_features
                && b.shape != [out]
            {
                err(
                    "lora_bias_shape",
                    format!(
                        "lora_B.bias has shape {}, expected [{out}]",
                        shape(&b.shape)
                    ),
                );
            }
        }
        _ => {}
    }
}

/// A module with weights that the config would not have adapted.
fn check_targeted(t: &Targeting, m: &AdaptedModule, f: &mut Findings) {
    let why = match t.verdict(&m.name) {
        Verdict::Targeted | Verdict::Unknown => {
            if t.is_all_linear() && m.kind != ModuleKind::Linear {
                Some(format!(
                    "target_modules is all-linear, which adapts only Linear/Conv1D layers, not \
                     this {:?} module",
                    m.kind
                ))
            } else {
                None
            }
        }
        Verdict::Excluded => Some("it matches exclude_modules".to_owned()),
        Verdict::InModulesToSave => {
            Some("it lies inside a modules_to_save module, which PEFT never adapts".to_owned())
        }
        Verdict::NotTargeted => Some("it matches no entry of target_modules".to_owned()),
        Verdict::OutsideLayers(Some(i)) => {
            Some(format!("its layer {i} is not in layers_to_transform"))
        }
        Verdict::OutsideLayers(None) => Some(
            "layers_to_transform is set but no layer index can be read from its name".to_owned(),
        ),
    };
    if let Some(why) = why {
        f.error(
            Finding::new(
                "untargeted_module",
                format!(
                    "{} has LoRA weights but the config does not target it: {why}",
                    m.name
                ),
            )
            .about(m.name.clone()),
        );
    }
}

fn check_dtypes(tensors: &[TensorInfo], modules: &[AdaptedModule], f: &mut Findings) {
    for m in modules {
        let ab = [&m.tensors.a, &m.tensors.b, &m.tensors.magnitude];
        for t in ab.into_iter().flatten() {
            if !t.dtype.is_float() {
                f.error(
                    Finding::new(
                        "non_float_dtype",
                        format!(
                            "{} has dtype {}; LoRA weights must be floating point",
                            t.name, t.dtype
                        ),
                    )
                    .about(t.name.clone()),
                );
            }
        }
    }
    let dtypes: BTreeSet<Dtype> = tensors.iter().map(|t| t.dtype).collect();
    if dtypes.len() > 1 {
        let list: Vec<&str> = dtypes.iter().map(|d| d.as_str()).collect();
        f.warn(Finding::new(
            "mixed_dtypes",
            format!("the adapter mixes dtypes: {}", list.join(", ")),
        ));
    }
}
