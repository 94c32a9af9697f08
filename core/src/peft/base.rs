//! An analysed adapter against a base model's tensor headers (names, dtypes, shapes from all
//! shards): every adapted module must exist in the base with the shape the adapter implies.

use std::collections::{BTreeMap, BTreeSet};

use super::analyze::{AdaptedModule, Analysis, ModuleKind, SavedTensor};
use super::config::AdapterConfig;
use super::targets::layer_segment;
use crate::diag::{Finding, Findings};
use crate::safetensors::{Dtype, TensorInfo};

/// What the base says about one adapted module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseModule {
    /// The base tensor's name as found (may differ from the adapter's by a prefix).
    pub tensor: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// The base weight is stored `[in, out]` (transformers `Conv1D`, PEFT's
    /// `fan_in_fan_out = true`).
    pub fan_in_fan_out: bool,
}

/// The result of [`check_against_base`].
#[derive(Debug, Default)]
pub struct BaseCheck {
    pub findings: Findings,
    /// By module name, for the modules found in the base.
    pub modules: BTreeMap<String, BaseModule>,
}

/// Output heads that `all-linear` leaves out (`tuners_utils.py`,
/// `_maybe_include_all_linear_layers`: the model's output embeddings, and for SEQ_CLS the
/// classifier head, `SEQ_CLS_HEAD_NAMES` in `utils/constants.py`). Without module types we
/// recognise them by the names transformers uses.
const OUTPUT_LEAVES: &[&str] = &["lm_head", "embed_out", "output_layer"];
const SEQ_CLS_HEADS: &[&str] = &["score", "classifier"];
/// Embedding module leaves (`utils/constants.py`, `EMBEDDING_LAYER_NAMES`, plus common ones).
const EMBEDDING_LEAVES: &[&str] = &[
    "embed_tokens",
    "wte",
    "wpe",
    "word_embeddings",
    "embed_in",
    "tok_embeddings",
    "position_embeddings",
];

/// Names under which the base may store `name`: as is; without the first segment (the
/// adapter saw `transformer.h.0…` while a GPT-2 checkpoint stores `h.0…`); with `model.`
/// in front (adapter trained on a bare `LlamaModel`). PEFT itself never needs this, because
/// it sees the instantiated model; checkpoints on disk differ by these prefixes.
fn candidates(name: &str) -> Vec<String> {
    let mut out = vec![name.to_owned()];
    if let Some((_, rest)) = name.split_once('.') {
        out.push(rest.to_owned());
    }
    out.push(format!("model.{name}"));
    out
}

fn find<'a>(base: &'a BTreeMap<String, TensorInfo>, name: &str) -> Option<&'a TensorInfo> {
    candidates(name).iter().find_map(|c| base.get(c))
}

fn leaf(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn describe_layers(set: &BTreeSet<u64>) -> String {
    let (Some(lo), Some(hi)) = (set.first(), set.last()) else {
        return "none".to_owned();
    };
    if u64::try_from(set.len()).is_ok_and(|n| n == hi - lo + 1) {
        format!("layers {lo}–{hi}")
    } else {
        let list: Vec<String> = set.iter().map(ToString::to_string).collect();
        format!("layers {}", list.join(", "))
    }
}

/// Check `analysis` (of an adapter with `config`) against the base model's tensors.
pub fn check_against_base(
    config: &AdapterConfig,
    analysis: &Analysis,
    base: &BTreeMap<String, TensorInfo>,
) -> BaseCheck {
    let mut out = BaseCheck::default();
    let mut layers: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for name in base.keys() {
        if let Some((container, i)) = layer_segment(name) {
            layers.entry(container).or_default().insert(i);
        }
    }
    let all_linear = analysis
        .targeting
        .as_ref()
        .is_some_and(super::targets::Targeting::is_all_linear);
    for m in &analysis.modules {
        check_module(config, m, base, &layers, all_linear, &mut out);
    }
    for s in analysis.modules_to_save.iter().chain(&analysis.biases) {
        check_saved(s, base, &mut out.findings);
    }
    out
}

fn check_module(
    config: &AdapterConfig,
    m: &AdaptedModule,
    base: &BTreeMap<String, TensorInfo>,
    layers: &BTreeMap<String, BTreeSet<u64>>,
    all_linear: bool,
    out: &mut BaseCheck,
) {
    let name = &m.name;
    let f = &mut out.findings;
    let wanted = m.base_tensor();
    let Some(w) = find(base, &wanted) else {
        // A layer the base does not have gets its own message.
        if let Some((container, i)) = layer_segment(name)
            && let Some(have) = candidates(&container).iter().find_map(|c| layers.get(c))
            && !have.contains(&i)
        {
            f.error(
                Finding::new(
                    "layer_out_of_range",
                    format!(
                        "{name}: layer {i} does not exist in the base: it has {}; PEFT would \
                         silently drop these weights",
                        describe_layers(have)
                    ),
                )
                .about(name.clone()),
            );
        } else {
            f.error(
                Finding::new(
                    "base_tensor_missing",
                    format!("{name}: the base has no tensor {wanted}"),
                )
                .about(name.clone()),
            );
        }
        return;
    };
    let leaf = leaf(name);
    let is_embedding_name = EMBEDDING_LEAVES.contains(&leaf);
    if all_linear {
        let head = OUTPUT_LEAVES.contains(&leaf)
            || (config.task_type.as_deref() == Some("SEQ_CLS") && SEQ_CLS_HEADS.contains(&leaf));
        if head || is_embedding_name {
            let what = if head {
                "the output layer"
            } else {
                "an embedding"
            };
            f.error(
                Finding::new(
                    "all_linear_output_layer",
                    format!(
                        "{name}: target_modules is all-linear, which never adapts {what}, yet the \
                         adapter has weights for it"
                    ),
                )
                .about(name.clone()),
            );
        }
    }
    let mut fan_in_fan_out = false;
    if let (Some(inf), Some(outf)) = (m.in_features, m.out_features) {
        let (expected, note) = match m.kind {
            ModuleKind::Embedding => (vec![inf, outf], "[num_embeddings, embedding_dim]"),
            ModuleKind::Conv => {
                let mut e = vec![outf, inf];
                e.extend(&m.kernel);
                (e, "[out_channels, in_channels, *kernel]")
            }
            ModuleKind::Linear => {
                // PEFT picks the layout by layer type, overriding the flag with a warning
                // (`src/peft/tuners/lora/layer.py`, `dispatch_default`: nn.Linear forces
                // fan_in_fan_out = False, transformers Conv1D forces True). The shape tells
                // which one the base has.
                let normal = vec![outf, inf];
                let transposed = vec![inf, outf];
                if w.shape == normal && w.shape == transposed {
                    fan_in_fan_out = config.fan_in_fan_out;
                } else if w.shape == normal {
                    fan_in_fan_out = false;
                } else if w.shape == transposed {
                    fan_in_fan_out = true;
                }
                if w.shape == normal || w.shape == transposed {
                    if fan_in_fan_out != config.fan_in_fan_out {
                        let (layout, layer) = if fan_in_fan_out {
                            ("[in, out]", "a Conv1D")
                        } else {
                            ("[out, in]", "an nn.Linear")
                        };
                        f.warn(
                            Finding::new(
                                "fan_in_fan_out_mismatch",
                                format!(
                                    "{name}: fan_in_fan_out is {} but the base weight {} is \
                                     {layout}, i.e. {layer}; PEFT overrides the flag for this \
                                     layer, and so does a merge",
                                    config.fan_in_fan_out, w.name
                                ),
                            )
                            .about(name.clone()),
                        );
                    }
                    (w.shape.clone(), "")
                } else if config.fan_in_fan_out {
                    (transposed, "[in, out] (fan_in_fan_out)")
                } else {
                    (normal, "[out, in]")
                }
            }
        };
        if w.shape != expected {
            f.error(
                Finding::new(
                    "base_shape_mismatch",
                    format!(
                        "{name}: base tensor {} has shape {:?}, the adapter implies {:?} {note}",
                        w.name, w.shape, expected
                    ),
                )
                .about(name.clone()),
            );
        }
    }
    out.modules.insert(
        name.clone(),
        BaseModule {
            tensor: w.name.clone(),
            dtype: w.dtype,
            shape: w.shape.clone(),
            fan_in_fan_out,
        },
    );
}

fn check_saved(s: &SavedTensor, base: &BTreeMap<String, TensorInfo>, f: &mut Findings) {
    match find(base, &s.base) {
        None => f.error(
            Finding::new(
                "base_tensor_missing",
                format!("{}: the base has no tensor {}", s.info.name, s.base),
            )
            .about(s.info.name.clone()),
        ),
        Some(b) if b.shape != s.info.shape => f.error(
            Finding::new(
                "saved_shape_mismatch",
                format!(
                    "{}: shape {:?}, but base tensor {} has shape {:?}",
                    s.info.name, s.info.shape, b.name, b.shape
                ),
            )
            .about(s.info.name.clone()),
        ),
        Some(_) => {}
    }
}
