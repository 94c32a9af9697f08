//! Model directory → quantised model files: GGUF (Llama family) or NF4 safetensors
//! (bitsandbytes layout), through the streaming writers of [`super::stream`] (one tensor at a
//! time; peak memory about one tensor in f32 plus its output), written to a `.partial` sibling,
//! synced and renamed into place.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::input::{decode_into, float_width};
use super::nf4::NF4_BLOCK;
use super::nf4_double::{MAX_FLOAT_REPR, NESTED_BLOCK, py_float};
use super::stream::{ModelInput, write_gguf, write_nf4};
use super::tokenizer::MAX_TOKENIZER_JSON;
use super::{GgmlType, QuantError};
use crate::merge::{DirSource, TensorSource};
use crate::model::ModelDir;
use crate::safetensors::Dtype;

/// One output tensor in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TensorReport {
    /// The source (Hugging Face) name.
    pub name: String,
    /// The name in the output (GGUF name; the same name for NF4).
    pub output_name: String,
    pub shape: Vec<u64>,
    pub source_dtype: String,
    /// The stored type: a ggml type name, `nf4`, or the unchanged source dtype.
    pub stored_as: String,
    /// Set when the requested type did not fit the row length: why, and what was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// ‖decoded − source‖ / ‖source‖ over the tensor (0 for unchanged tensors).
    pub relative_rmse: f64,
}

/// What a conversion did.
#[derive(Debug, Clone, Serialize)]
pub struct QuantReport {
    pub format: String,
    /// The requested type (`q8_0`, …, `nf4`).
    pub quant_type: String,
    pub output: PathBuf,
    pub output_bytes: u64,
    pub source_bytes: u64,
    pub tensors: Vec<TensorReport>,
    /// Source tensors not written (e.g. `rotary_emb.inv_freq`).
    pub skipped: Vec<String>,
}

/// Options shared by the converters.
#[derive(Debug, Clone)]
pub struct Options {
    /// Encoder threads (1 = single-threaded).
    pub threads: usize,
    /// Extra metadata written to the output (GGUF string keys; safetensors `__metadata__`),
    /// e.g. lineage digests.
    pub lineage: Vec<(String, String)>,
    /// NF4 only: double quantisation of the absmax values (bitsandbytes
    /// `bnb_4bit_use_double_quant`, `compress_statistics=True`).
    pub double_quant: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            lineage: Vec::new(),
            double_quant: false,
        }
    }
}

/// Decode F32 / F16 / BF16 little-endian bytes.
pub fn to_f32(dtype: Dtype, raw: &[u8]) -> Option<Vec<f32>> {
    float_width(dtype)?;
    let mut out = Vec::with_capacity(raw.len() / 2);
    decode_into(dtype, raw, &mut out);
    Some(out)
}

fn model_name(model: &ModelDir) -> String {
    model
        .config
        .as_ref()
        .and_then(|c| c["_name_or_path"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            model
                .root
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| "model".into())
}

/// The bytes of `root/name` when it is a file, refusing more than `limit` bytes.
fn read_side_file(root: &Path, name: &str, limit: u64) -> Result<Option<Vec<u8>>, QuantError> {
    let path = root.join(name);
    if !path.is_file() {
        return Ok(None);
    }
    let file = File::open(&path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(QuantError::Invalid(format!(
            "{}: larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

/// A model directory as a [`ModelInput`] read through `source` (normally a
/// [`DirSource`] of the same directory): config, tensors, tokenizer files (bounded:
/// tokenizer.json [`MAX_TOKENIZER_JSON`], tokenizer_config.json 4 MiB).
pub fn model_input<'a>(
    model: &ModelDir,
    source: &'a mut dyn TensorSource,
) -> Result<ModelInput<'a>, QuantError> {
    let mut input = weights_input(model, source);
    input.tokenizer_json =
        read_side_file(&model.root, "tokenizer.json", MAX_TOKENIZER_JSON as u64)?;
    input.tokenizer_config = read_side_file(&model.root, "tokenizer_config.json", 4 << 20)?
        .map(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| QuantError::Invalid(format!("tokenizer_config.json: {e}")))
        })
        .transpose()?;
    Ok(input)
}

/// The model without its tokenizer files (NF4 copies them unread).
fn weights_input<'a>(model: &ModelDir, source: &'a mut dyn TensorSource) -> ModelInput<'a> {
    ModelInput {
        name: model_name(model),
        config: model.config.clone(),
        tensors: model.tensor_infos(),
        tokenizer_json: None,
        tokenizer_config: None,
        source_bytes: model.files.iter().map(|f| f.size).sum(),
        source,
    }
}

/// Write `model` as a llama GGUF of `ty` (Q8_0, Q4_0, Q4_K, Q6_K, F16, F32) to `out`
/// (written to `out.partial`, synced and renamed when complete).
pub fn to_gguf(
    model: &ModelDir,
    ty: GgmlType,
    out: &Path,
    opts: &Options,
) -> Result<QuantReport, QuantError> {
    let mut source = DirSource::new(model);
    let mut input = model_input(model, &mut source)?;
    let partial = partial_path(out);
    let result = (|| {
        let mut file = File::create(&partial)?;
        let report = write_gguf(&mut input, ty, opts, &mut file)?;
        file.sync_all()?;
        Ok(report)
    })();
    let mut report = finish(result, &partial, out)?;
    report.output = out.to_owned();
    Ok(report)
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

fn finish<T>(result: Result<T, QuantError>, partial: &Path, out: &Path) -> Result<T, QuantError> {
    match result {
        Ok(v) => {
            fs::rename(partial, out)?;
            Ok(v)
        }
        Err(e) => {
            let _ = fs::remove_file(partial);
            Err(e)
        }
    }
}

/// Whether bitsandbytes (through transformers) would quantise this tensor: the weight of a
/// Linear layer — a 2-D `*.weight` — except the output head and embeddings.
pub fn nf4_quantises(name: &str, shape: &[u64]) -> bool {
    shape.len() == 2
        && name.ends_with(".weight")
        && !name.starts_with("lm_head.")
        && !name.contains("embed")
}

fn torch_dtype(d: Dtype) -> &'static str {
    match d {
        Dtype::F16 => "float16",
        Dtype::BF16 => "bfloat16",
        _ => "float32",
    }
}

/// The JSON bitsandbytes packs into `<P>.weight.quant_state.bitsandbytes__nf4`
/// (`QuantState.as_dict(packed=True)`: `json.dumps` of the non-tensor entries).
pub fn nf4_quant_state(dtype: Dtype, shape: &[u64]) -> String {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!(
        "{{\"quant_type\": \"nf4\", \"blocksize\": {NF4_BLOCK}, \"dtype\": \"{}\", \"shape\": [{}]}}",
        torch_dtype(dtype),
        dims.join(", ")
    )
}

/// The quant state JSON of a double-quantised tensor: [`nf4_quant_state`]'s keys, then
/// `nested_blocksize` 256, `nested_dtype` `float32`, `nested_offset` (a Python float), in the
/// order of `QuantState.as_dict(packed=True)`.
pub fn nf4_quant_state_nested(dtype: Dtype, shape: &[u64], offset: f32) -> String {
    let mut s = nf4_quant_state(dtype, shape);
    s.pop();
    format!(
        "{s}, \"nested_blocksize\": {NESTED_BLOCK}, \"nested_dtype\": \"float32\", \"nested_offset\": {}}}",
        py_float(f64::from(offset))
    )
}

/// The bytes declared for a double-quantised tensor's quant state: the JSON with the longest
/// offset. The offset is known only once the tensor is read, after the header is written, so
/// [`nf4_quant_state_nested`] is padded with trailing spaces to this length (`json.loads`,
/// which bitsandbytes' `unpack_tensor_to_dict` uses, ignores them).
pub fn nf4_quant_state_nested_len(dtype: Dtype, shape: &[u64]) -> usize {
    nf4_quant_state_nested(dtype, shape, 0.0).len() - "0.0".len() + MAX_FLOAT_REPR
}

/// Files copied unchanged next to an NF4 checkpoint when present.
const SIDE_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "generation_config.json",
];

/// Write `model` as a bitsandbytes NF4 checkpoint into the directory `out` (created; must
/// not exist): `model.safetensors`, `config.json` with `quantization_config`, and the
/// tokenizer files when present.
pub fn to_nf4(model: &ModelDir, out: &Path, opts: &Options) -> Result<QuantReport, QuantError> {
    if model.config.is_none() {
        return Err(QuantError::Invalid(
            "the model directory has no config.json".into(),
        ));
    }
    if out.exists() {
        return Err(QuantError::Invalid(format!(
            "{}: already exists",
            out.display()
        )));
    }
    let mut source = DirSource::new(model);
    let mut input = weights_input(model, &mut source);
    let partial = partial_path(out);
    let _ = fs::remove_dir_all(&partial);
    let result = (|| {
        fs::create_dir_all(&partial)?;
        let mut file = File::create(partial.join("model.safetensors"))?;
        let (report, config) = write_nf4(&mut input, opts, &mut file)?;
        file.sync_all()?;
        let text = serde_json::to_string_pretty(&config).expect("config serialises");
        fs::write(partial.join("config.json"), text + "\n")?;
        for f in SIDE_FILES {
            let p = model.root.join(f);
            if p.is_file() {
                fs::copy(&p, partial.join(f))?;
            }
        }
        Ok(report)
    })();
    let mut report = match result {
        Ok(r) => {
            fs::rename(&partial, out)?;
            r
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    report.output = out.to_owned();
    Ok(report)
}
