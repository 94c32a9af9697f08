//! Model directory → quantised model, one tensor at a time: GGUF (Llama family) or NF4
//! safetensors (bitsandbytes layout). Peak memory is about one tensor in f32 plus its output.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use super::gguf::{GgufWriter, MetaValue};
use super::llama::{self, LlamaParams};
use super::nf4::{NF4_BLOCK, NF4_CODE, dequantize_nf4, quantize_nf4};
use super::st_write::SafetensorsWriter;
use super::{GgmlType, QuantError, decode, encode, half, relative_rmse};
use crate::model::ModelDir;
use crate::safetensors::{Dtype, Limits, TensorFile};

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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            lineage: Vec::new(),
        }
    }
}

/// Read tensors of a model directory, keeping each shard open.
struct Source<'a> {
    model: &'a ModelDir,
    open: BTreeMap<String, TensorFile<File>>,
}

impl<'a> Source<'a> {
    fn new(model: &'a ModelDir) -> Self {
        Self {
            model,
            open: BTreeMap::new(),
        }
    }

    fn raw(&mut self, name: &str) -> Result<Vec<u8>, QuantError> {
        let t = &self.model.tensors[name];
        if !self.open.contains_key(&t.file) {
            let path = self.model.root.join(&t.file);
            let f = TensorFile::open(&path, &Limits::REFERENCE)
                .map_err(|e| QuantError::Invalid(format!("{}: {e}", path.display())))?;
            self.open.insert(t.file.clone(), f);
        }
        let file = self.open.get_mut(&t.file).expect("opened above");
        file.tensor_bytes(name)
            .map_err(|e| QuantError::Invalid(format!("{}: {e}", t.file)))
    }

    fn f32s(&mut self, name: &str) -> Result<Vec<f32>, QuantError> {
        let dtype = self.model.tensors[name].info.dtype;
        let raw = self.raw(name)?;
        to_f32(dtype, &raw).ok_or_else(|| {
            QuantError::Unsupported(format!(
                "tensor `{name}`: dtype {dtype} cannot be quantised"
            ))
        })
    }
}

/// Decode F32 / F16 / BF16 little-endian bytes.
pub fn to_f32(dtype: Dtype, raw: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|c| half::bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        _ => return None,
    })
}

fn config(model: &ModelDir) -> Result<&Value, QuantError> {
    model
        .config
        .as_ref()
        .ok_or_else(|| QuantError::Invalid("the model directory has no config.json".into()))
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

/// Write `model` as a llama GGUF of `ty` (Q8_0, Q4_0, Q4_K, Q6_K, F16, F32) to `out`
/// (written to `out.partial` and renamed when complete).
pub fn to_gguf(
    model: &ModelDir,
    ty: GgmlType,
    out: &Path,
    opts: &Options,
) -> Result<QuantReport, QuantError> {
    let hp = LlamaParams::from_config(config(model)?)?;
    struct Plan {
        name: String,
        mapped: llama::Mapped,
        ty: GgmlType,
        fallback: Option<String>,
    }
    let mut plans = Vec::new();
    let mut skipped = Vec::new();
    for (name, t) in &model.tensors {
        let Some(mapped) = llama::map_name(name, &hp)? else {
            skipped.push(name.clone());
            continue;
        };
        if !matches!(t.info.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(QuantError::Unsupported(format!(
                "tensor `{name}`: dtype {} (F32, F16 or BF16 expected)",
                t.info.dtype
            )));
        }
        let shape = &t.info.shape;
        let (tty, fallback) = match shape.len() {
            1 => (GgmlType::F32, None),
            2 => {
                let fit = ty.fitting(shape[1]);
                let why = (fit != ty).then(|| {
                    format!(
                        "row length {} is not a multiple of {ty}'s block of {}: {fit}",
                        shape[1],
                        ty.block_size()
                    )
                });
                (fit, why)
            }
            n => {
                return Err(QuantError::Unsupported(format!(
                    "tensor `{name}`: {n} dimensions"
                )));
            }
        };
        if let Some(h) = mapped.permute_heads
            && (shape.len() != 2 || shape[0] % (2 * h) != 0)
        {
            return Err(QuantError::Invalid(format!(
                "tensor `{name}`: {} rows do not split into {h} heads of even size",
                shape[0]
            )));
        }
        plans.push(Plan {
            name: name.clone(),
            mapped,
            ty: tty,
            fallback,
        });
    }
    let mut meta: Vec<(String, MetaValue)> = vec![
        (
            "general.architecture".into(),
            MetaValue::Str("llama".into()),
        ),
        ("general.name".into(), MetaValue::Str(model_name(model))),
        ("general.file_type".into(), MetaValue::U32(ty.file_type())),
        ("general.quantization_version".into(), MetaValue::U32(2)),
        ("general.alignment".into(), MetaValue::U32(32)),
    ];
    meta.extend(hp.metadata());
    meta.extend(
        opts.lineage
            .iter()
            .map(|(k, v)| (k.clone(), MetaValue::Str(v.clone()))),
    );
    let infos: Vec<(String, Vec<u64>, GgmlType)> = plans
        .iter()
        .map(|p| {
            let mut dims = model.tensors[&p.name].info.shape.clone();
            dims.reverse();
            (p.mapped.gguf_name.clone(), dims, p.ty)
        })
        .collect();
    let partial = partial_path(out);
    let result = (|| {
        let file = File::create(&partial)?;
        let mut w = GgufWriter::start(BufWriter::new(file), &meta, &infos)?;
        let mut src = Source::new(model);
        let mut tensors = Vec::with_capacity(plans.len());
        for p in plans {
            let info = &model.tensors[&p.name].info;
            let mut x = src.f32s(&p.name)?;
            if let Some(h) = p.mapped.permute_heads {
                x = llama::permute_rows(
                    &x,
                    info.shape[0] as usize,
                    info.shape[1] as usize,
                    h as usize,
                )?;
            }
            let row = *info.shape.last().unwrap_or(&1) as usize;
            let bytes = encode(p.ty, &x, row, opts.threads);
            let err = relative_rmse(&x, &decode(p.ty, &bytes));
            w.write_tensor(&bytes)?;
            tensors.push(TensorReport {
                output_name: p.mapped.gguf_name,
                shape: info.shape.clone(),
                source_dtype: info.dtype.to_string(),
                stored_as: p.ty.name().into(),
                fallback: p.fallback,
                relative_rmse: err,
                name: p.name,
            });
        }
        let (mut buf, len) = w.finish()?;
        buf.flush()?;
        buf.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok((tensors, len))
    })();
    let (tensors, output_bytes) = finish(result, &partial, out)?;
    Ok(QuantReport {
        format: "gguf".into(),
        quant_type: ty.name().into(),
        output: out.to_owned(),
        output_bytes,
        source_bytes: model.files.iter().map(|f| f.size).sum(),
        tensors,
        skipped,
    })
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
    let mut config = config(model)?.clone();
    let compute = config["torch_dtype"]
        .as_str()
        .unwrap_or("bfloat16")
        .to_owned();
    let mut decl: Vec<(String, Dtype, Vec<u64>)> = Vec::new();
    for (name, t) in &model.tensors {
        let shape = t.info.shape.clone();
        if nf4_quantises(name, &shape) {
            if !matches!(t.info.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                return Err(QuantError::Unsupported(format!(
                    "tensor `{name}`: dtype {} (F32, F16 or BF16 expected)",
                    t.info.dtype
                )));
            }
            let n: u64 = shape.iter().product();
            let state = nf4_quant_state(t.info.dtype, &shape);
            decl.push((name.clone(), Dtype::U8, vec![n.div_ceil(2), 1]));
            decl.push((
                format!("{name}.absmax"),
                Dtype::F32,
                vec![n.div_ceil(NF4_BLOCK as u64)],
            ));
            decl.push((format!("{name}.quant_map"), Dtype::F32, vec![16]));
            decl.push((
                format!("{name}.quant_state.bitsandbytes__nf4"),
                Dtype::U8,
                vec![state.len() as u64],
            ));
        } else {
            decl.push((name.clone(), t.info.dtype, shape));
        }
    }
    if out.exists() {
        return Err(QuantError::Invalid(format!(
            "{}: already exists",
            out.display()
        )));
    }
    let partial = partial_path(out);
    let _ = fs::remove_dir_all(&partial);
    let result = (|| {
        fs::create_dir_all(&partial)?;
        let file = File::create(partial.join("model.safetensors"))?;
        let meta = [
            vec![("format".to_owned(), "pt".to_owned())],
            opts.lineage.clone(),
        ]
        .concat();
        let mut w = SafetensorsWriter::start(BufWriter::new(file), &decl, &meta)?;
        let mut src = Source::new(model);
        let mut tensors = Vec::new();
        for (name, t) in &model.tensors {
            let info = &t.info;
            if nf4_quantises(name, &info.shape) {
                let x = src.f32s(name)?;
                let (codes, absmax) = quantize_nf4(&x);
                let err = relative_rmse(&x, &dequantize_nf4(&codes, &absmax, x.len()));
                w.write_tensor(&codes)?;
                w.write_tensor(
                    &absmax
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<_>>(),
                )?;
                w.write_tensor(
                    &NF4_CODE
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<_>>(),
                )?;
                w.write_tensor(nf4_quant_state(info.dtype, &info.shape).as_bytes())?;
                tensors.push(TensorReport {
                    name: name.clone(),
                    output_name: name.clone(),
                    shape: info.shape.clone(),
                    source_dtype: info.dtype.to_string(),
                    stored_as: "nf4".into(),
                    fallback: None,
                    relative_rmse: err,
                });
            } else {
                w.write_tensor(&src.raw(name)?)?;
                tensors.push(TensorReport {
                    name: name.clone(),
                    output_name: name.clone(),
                    shape: info.shape.clone(),
                    source_dtype: info.dtype.to_string(),
                    stored_as: info.dtype.to_string(),
                    fallback: None,
                    relative_rmse: 0.0,
                });
            }
        }
        let mut buf = w.finish()?;
        buf.flush()?;
        buf.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        config["quantization_config"] = json!({
            "quant_method": "bitsandbytes",
            "_load_in_4bit": true,
            "_load_in_8bit": false,
            "load_in_4bit": true,
            "load_in_8bit": false,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_use_double_quant": false,
            "bnb_4bit_compute_dtype": compute,
            "bnb_4bit_quant_storage": "uint8",
            "llm_int8_threshold": 6.0,
            "llm_int8_skip_modules": null,
            "llm_int8_enable_fp32_cpu_offload": false,
            "llm_int8_has_fp16_weight": false,
        });
        let text = serde_json::to_string_pretty(&config).expect("config serialises");
        fs::write(partial.join("config.json"), text + "\n")?;
        for f in SIDE_FILES {
            let p = model.root.join(f);
            if p.is_file() {
                fs::copy(&p, partial.join(f))?;
            }
        }
        let _ = opts.threads; // NF4 is single-threaded for now
        Ok(tensors)
    })();
    let tensors = match result {
        Ok(t) => {
            fs::rename(&partial, out)?;
            t
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    let output_bytes = fs::metadata(out.join("model.safetensors"))?.len();
    Ok(QuantReport {
        format: "nf4".into(),
        quant_type: "nf4".into(),
        output: out.to_owned(),
        output_bytes,
        source_bytes: model.files.iter().map(|f| f.size).sum(),
        tensors,
        skipped: Vec::new(),
    })
}
