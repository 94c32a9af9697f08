//! Model directory → quantised model files: GGUF (Llama family) or NF4 safetensors
//! (bitsandbytes layout), through the streaming writers of [`super::stream`] (one tensor at a
//! time; peak memory about one tensor in f32 plus its output), written to a `.partial` sibling,
//! synced and renamed into place.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::stream::{ModelInput, write_gguf, write_nf4};
use super::tokenizer::MAX_TOKENIZER_JSON;
use super::{GgmlType, QuantError};
use crate::floats::{decode, width};
use crate::merge::{DirSource, TensorSource};
use crate::model::ModelDir;
use crate::safetensors::Dtype;

// Also reachable here (`quant::convert::Options`), the path adapterctl and the benches use.
pub use super::report::{Options, QuantReport, TensorReport};

/// Decode F32 / F16 / BF16 little-endian bytes.
pub fn to_f32(dtype: Dtype, raw: &[u8]) -> Option<Vec<f32>> {
    let mut out = Vec::with_capacity(raw.len() / width(dtype)?);
    decode(dtype, raw, &mut out);
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
