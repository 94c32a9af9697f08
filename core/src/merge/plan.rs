//! What a merge will do, decided from headers and config files alone: for every output
//! tensor its source, dtype and update, and the output files with their headers. A job can
//! plan, report the output sizes, and then stream each shard knowing its bytes up front.

use std::collections::BTreeMap;

use serde::Serialize;

use super::MergeError;
use crate::compat::{AdapterFacts, BaseFacts, Verdict, validate};
use crate::peft::{AdapterConfig, ModuleKind, analyze, check_against_base};
use crate::safetensors::{Dtype, TensorInfo};

/// The dtypes a merge decodes and encodes (F32, F16, BF16).
fn is_supported(dtype: Dtype) -> bool {
    crate::floats::width(dtype).is_some()
}

/// The default shard size: 5 GB, as `save_pretrained(max_shard_size="5GB")`.
pub const DEFAULT_SHARD_SIZE: u64 = 5_000_000_000;

/// What the caller chooses.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Output dtype of every F16/BF16/F32 tensor; `None` keeps each base tensor's dtype.
    pub dtype: Option<Dtype>,
    /// Largest shard in bytes (a single tensor larger than this gets a shard of its own).
    pub shard_size: u64,
    /// Where the LoRA products are computed.
    pub device: super::Device,
}

impl Default for MergeOptions {
    fn default() -> Self {
        Self {
            dtype: None,
            shard_size: DEFAULT_SHARD_SIZE,
            device: super::Device::Cpu,
        }
    }
}

/// Where an output tensor's starting values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The base tensor of the same name.
    Base(TensorInfo),
    /// A full tensor the adapter saved (`modules_to_save`, trained biases).
    Adapter(TensorInfo),
}

impl Source {
    pub fn info(&self) -> &TensorInfo {
        match self {
            Self::Base(i) | Self::Adapter(i) => i,
        }
    }
}

/// A low-rank update of one weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub module: String,
    /// `lora_A` (`[r, in]`) or `lora_embedding_A` (`[r, num_embeddings]`).
    pub a: TensorInfo,
    /// `lora_B` (`[out, r]`) or `lora_embedding_B` (`[dim, r]`).
    pub b: TensorInfo,
    /// DoRA's `lora_magnitude_vector` (`[out]`).
    pub magnitude: Option<TensorInfo>,
    pub scale: f64,
    /// The stored weight is `(B @ A)ᵀ`-shaped: Conv1D / fan_in_fan_out bases and embeddings.
    pub transposed: bool,
}

/// `b += scale · lora_B.bias` (PEFT's `lora_bias`).
#[derive(Debug, Clone, PartialEq)]
pub struct BiasAdd {
    pub module: String,
    pub bias: TensorInfo,
    pub scale: f64,
}

/// One tensor of the output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: Dtype,
    pub source: Source,
    pub delta: Option<Delta>,
    pub bias_add: Option<BiasAdd>,
    /// Offsets in its shard's data section.
    pub data_offsets: (u64, u64),
}

impl TensorPlan {
    /// Bytes are copied through untouched.
    pub fn is_copy(&self) -> bool {
        self.delta.is_none() && self.bias_add.is_none() && self.source.info().dtype == self.dtype
    }

    pub fn byte_len(&self) -> u64 {
        self.data_offsets.1 - self.data_offsets.0
    }
}

/// One output file.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    pub file_name: String,
    /// The safetensors header (8-byte length + JSON padded with spaces to 8 bytes).
    pub header: Vec<u8>,
    pub tensors: Vec<TensorPlan>,
}

impl ShardPlan {
    /// The file's exact length.
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.tensors.last().map_or(0, |t| t.data_offsets.1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The scale used for one module (recorded in lineage).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleScaleUsed {
    pub module: String,
    pub base_tensor: String,
    pub rank: u64,
    pub alpha: f64,
    pub scale: f64,
    pub dora: bool,
}

/// The whole merge.
#[derive(Debug, Clone)]
pub struct MergePlan {
    pub shards: Vec<ShardPlan>,
    pub scales: Vec<ModuleScaleUsed>,
    /// Compatibility warnings carried over (the merge still runs).
    pub warnings: Vec<String>,
}

impl MergePlan {
    /// Output tensors that (merged: received a low-rank update, DoRA or a lora_bias;
    /// replaced: were taken from the adapter's saved copies; copied: are the base's).
    pub fn counts(&self) -> (usize, usize, usize) {
        let all = self.shards.iter().flat_map(|s| &s.tensors);
        let merged = all
            .clone()
            .filter(|t| t.delta.is_some() || t.bias_add.is_some())
            .count();
        let replaced = all
            .filter(|t| {
                matches!(t.source, Source::Adapter(_)) && t.delta.is_none() && t.bias_add.is_none()
            })
            .count();
        (merged, replaced, self.tensor_count() - merged - replaced)
    }

    /// `model.safetensors.index.json` when there is more than one shard.
    pub fn index_json(&self) -> Option<Vec<u8>> {
        if self.shards.len() < 2 {
            return None;
        }
        let total: u64 = self
            .shards
            .iter()
            .flat_map(|s| &s.tensors)
            .map(TensorPlan::byte_len)
            .sum();
        let map: BTreeMap<&str, &str> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.tensors
                    .iter()
                    .map(|t| (t.name.as_str(), s.file_name.as_str()))
            })
            .collect();
        let value = serde_json::json!({"metadata": {"total_size": total}, "weight_map": map});
        let mut bytes = serde_json::to_vec_pretty(&value).ok()?;
        bytes.push(b'\n');
        Some(bytes)
    }

    pub fn tensor_count(&self) -> usize {
        self.shards.iter().map(|s| s.tensors.len()).sum()
    }
}

/// Names under which a checkpoint may store `name` (as the base checks look it up).
fn find<'a>(base: &'a BTreeMap<String, TensorInfo>, name: &str) -> Option<&'a TensorInfo> {
    base.get(name)
        .or_else(|| name.split_once('.').and_then(|(_, rest)| base.get(rest)))
        .or_else(|| base.get(&format!("model.{name}")))
}

/// Decide the merge of `adapter` into `base`, or refuse with the reason.
pub fn plan(
    adapter: &AdapterFacts,
    base: &BaseFacts,
    options: &MergeOptions,
) -> Result<MergePlan, MergeError> {
    if let Some(d) = options.dtype
        && !is_supported(d)
    {
        return Err(MergeError::Usage(format!(
            "output dtype {} is not one of BF16, F16, F32",
            d.as_str()
        )));
    }
    if options.shard_size == 0 {
        return Err(MergeError::Usage("the shard size must be positive".into()));
    }
    let config = AdapterConfig::from_json_bytes(&adapter.config_json)
        .map_err(|e| MergeError::Refused(format!("adapter_config.json: {e}")))?;
    if !config.is_lora() {
        return Err(MergeError::Refused(format!(
            "peft_type {} cannot be merged: only LORA adapters are (their update is B·A)",
            config.peft_type
        )));
    }
    if config.init_lora_weights.rewrites_base() {
        return Err(MergeError::Refused(format!(
            "init_lora_weights {:?} rewrote the base weights at training time; the adapter only \
             fits that modified base (convert it with save_pretrained(\
             path_initial_model_for_weight_conversion=…) first)",
            config.init_lora_weights
        )));
    }
    let report = validate(adapter, base);
    if report.verdict == Verdict::Incompatible {
        let reasons: Vec<String> = report
            .findings
            .errors
            .iter()
            .map(|f| f.message.clone())
            .collect();
        return Err(MergeError::Incompatible(reasons));
    }
    let warnings = report
        .findings
        .warnings
        .iter()
        .map(|f| f.message.clone())
        .collect();
    let analysis =
        analyze(&config, &adapter.tensors).map_err(|e| MergeError::Refused(e.to_string()))?;
    let on_base = check_against_base(&config, &analysis, &base.tensors);

    // Start from the base: every tensor copied (or converted) unchanged.
    let mut out: BTreeMap<String, TensorPlan> = base
        .tensors
        .values()
        .map(|info| {
            let dtype = match options.dtype {
                Some(d) if is_supported(info.dtype) => d,
                _ => info.dtype,
            };
            let plan = TensorPlan {
                name: info.name.clone(),
                shape: info.shape.clone(),
                dtype,
                source: Source::Base(info.clone()),
                delta: None,
                bias_add: None,
                data_offsets: (0, 0),
            };
            (info.name.clone(), plan)
        })
        .collect();

    for saved in analysis.modules_to_save.iter().chain(&analysis.biases) {
        let target = find(&base.tensors, &saved.base).ok_or_else(|| {
            MergeError::Refused(format!(
                "{}: the base has no tensor {}",
                saved.info.name, saved.base
            ))
        })?;
        if !is_supported(saved.info.dtype) && saved.info.dtype != target.dtype {
            return Err(MergeError::Refused(format!(
                "{}: dtype {} differs from the base's {} and cannot be converted",
                saved.info.name,
                saved.info.dtype.as_str(),
                target.dtype.as_str()
            )));
        }
        let entry = out
            .get_mut(&target.name)
            .expect("every base tensor is planned");
        entry.source = Source::Adapter(saved.info.clone());
    }

    let mut scales = Vec::new();
    for m in &analysis.modules {
        let found = on_base.modules.get(&m.name).ok_or_else(|| {
            MergeError::Refused(format!(
                "{}: the base has no tensor {}",
                m.name,
                m.base_tensor()
            ))
        })?;
        let (Some(a), Some(b)) = (m.tensors.a.clone(), m.tensors.b.clone()) else {
            return Err(MergeError::Refused(format!(
                "{}: lora_A or lora_B is missing",
                m.name
            )));
        };
        let dora = m.tensors.magnitude.is_some();
        let transposed = match m.kind {
            ModuleKind::Linear => found.fan_in_fan_out,
            ModuleKind::Embedding if !dora => true,
            ModuleKind::Embedding => {
                return Err(MergeError::Refused(format!(
                    "{}: DoRA on an embedding is not supported by this merge yet",
                    m.name
                )));
            }
            ModuleKind::Conv => {
                return Err(MergeError::Refused(format!(
                    "{}: LoRA on a convolution is not supported by this merge yet",
                    m.name
                )));
            }
        };
        let float_inputs = [
            Some(&a),
            Some(&b),
            m.tensors.magnitude.as_ref(),
            m.tensors.bias.as_ref(),
        ];
        for t in float_inputs.into_iter().flatten() {
            if !is_supported(t.dtype) {
                return Err(MergeError::Refused(format!(
                    "{}: dtype {} (merge computes with BF16, F16 and F32)",
                    t.name,
                    t.dtype.as_str()
                )));
            }
        }
        let entry = out.get_mut(&found.tensor).expect("found in the base");
        if !is_supported(entry.source.info().dtype) {
            return Err(MergeError::Refused(format!(
                "{}: base dtype {} (merge computes with BF16, F16 and F32)",
                found.tensor,
                entry.source.info().dtype.as_str()
            )));
        }
        if matches!(entry.source, Source::Adapter(_)) {
            return Err(MergeError::Refused(format!(
                "{}: both adapted and saved in full (modules_to_save)",
                found.tensor
            )));
        }
        entry.delta = Some(Delta {
            module: m.name.clone(),
            a,
            b,
            magnitude: m.tensors.magnitude.clone(),
            scale: m.scale.scale,
            transposed,
        });
        if let Some(bias) = &m.tensors.bias {
            let bias_name = match found.tensor.strip_suffix(".weight") {
                Some(stem) => format!("{stem}.bias"),
                None => format!("{}.bias", m.name),
            };
            let target = out.get_mut(&bias_name).ok_or_else(|| {
                MergeError::Refused(format!(
                    "{}: lora_bias needs the base bias {bias_name}, which the base lacks",
                    m.name
                ))
            })?;
            if !is_supported(target.source.info().dtype) || target.shape != bias.shape {
                return Err(MergeError::Refused(format!(
                    "{}: base bias {bias_name} is {} {:?}, lora_B.bias is {:?}",
                    m.name,
                    target.source.info().dtype.as_str(),
                    target.shape,
                    bias.shape
                )));
            }
            target.bias_add = Some(BiasAdd {
                module: m.name.clone(),
                bias: bias.clone(),
                scale: m.scale.scale,
            });
        }
        scales.push(ModuleScaleUsed {
            module: m.name.clone(),
            base_tensor: found.tensor.clone(),
            rank: m.scale.rank,
            alpha: m.scale.alpha,
            scale: m.scale.scale,
            dora,
        });
    }
    Ok(MergePlan {
        shards: shard(out.into_values(), options.shard_size),
        scales,
        warnings,
    })
}

/// Cut the tensors (in name order) into shards of at most `limit` data bytes and compute
/// each shard's header.
fn shard(tensors: impl Iterator<Item = TensorPlan>, limit: u64) -> Vec<ShardPlan> {
    let mut groups: Vec<Vec<TensorPlan>> = vec![Vec::new()];
    let mut used = 0u64;
    for mut t in tensors {
        let len = t.shape.iter().product::<u64>() * t.dtype.bits() / 8;
        let current = groups.last_mut().expect("never empty");
        if !current.is_empty() && used + len > limit {
            groups.push(Vec::new());
            used = 0;
        }
        t.data_offsets = (used, used + len);
        used += len;
        groups.last_mut().expect("never empty").push(t);
    }
    let n = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, tensors)| {
            let file_name = if n == 1 {
                crate::model::SINGLE_FILE.to_owned()
            } else {
                format!("model-{:05}-of-{n:05}.safetensors", i + 1)
            };
            ShardPlan {
                file_name,
                header: header_bytes(&tensors),
                tensors,
            }
        })
        .collect()
}

/// The 8-byte length and the JSON header, padded with spaces to a multiple of 8.
fn header_bytes(tensors: &[TensorPlan]) -> Vec<u8> {
    let mut json = String::from(r#"{"__metadata__":{"format":"pt"}"#);
    for t in tensors {
        let name = serde_json::to_string(&t.name).expect("a string serialises");
        let shape: Vec<String> = t.shape.iter().map(ToString::to_string).collect();
        json.push_str(&format!(
            r#",{name}:{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}}"#,
            t.dtype.as_str(),
            shape.join(","),
            t.data_offsets.0,
            t.data_offsets.1
        ));
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out
}
