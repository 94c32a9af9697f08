//! The streaming entry points: a model read one tensor at a time through a
//! [`TensorSource`] (a local directory, a blob store) and written to any `Write` (a file, a
//! blob-store upload). Peak memory: GGUF a few chunks (`pipeline.rs`); NF4 one quantised
//! tensor in f32 plus its encoding (tensors kept as they are stream through in 4 MiB); the
//! bytes written depend only on the input (tensors in name order, metadata in a fixed order),
//! so a retried job produces the same digest.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use serde_json::{Value, json};

use super::gguf::{GgufWriter, MetaValue};
use super::input::{Counted, check_len, copy_raw, quantisable_width, read_f32};
use super::llama::{self, LlamaParams};
use super::nf4::{NF4_BLOCK, NF4_CODE, dequantize_nf4, quantize_nf4};
use super::nf4_double::{NESTED_BLOCK, compress_absmax, dequantize_nf4_nested, dynamic_map};
use super::nf4_state::{
    nf4_quant_state, nf4_quant_state_nested, nf4_quant_state_nested_len, nf4_quantises,
};
use super::pipeline::{CHUNK_VALUES, Tensor, uneven_heads, write_tensors};
use super::report::{Options, QuantReport, TensorReport};
use super::st_write::SafetensorsWriter;
use super::tokenizer::tokenizer_metadata;
use super::{GgmlType, QuantError, relative_rmse};
use crate::merge::TensorSource;
use crate::safetensors::{Dtype, TensorInfo};

/// Output buffer between the encoders and the sink.
const BUFFER: usize = 1 << 20;

/// A model to quantise, read one tensor at a time.
pub struct ModelInput<'a> {
    /// general.name in GGUF (e.g. "acme/llama@1.0.0").
    pub name: String,
    /// config.json (required for GGUF; NF4 adds quantization_config to it).
    pub config: Option<Value>,
    /// Every tensor of the model (name → header info; data_offsets are per file, ignored here).
    pub tensors: BTreeMap<String, TensorInfo>,
    /// tokenizer.json bytes when the model has one (GGUF tokenizer metadata).
    pub tokenizer_json: Option<Vec<u8>>,
    /// tokenizer_config.json when present (bos/eos/add_bos...).
    pub tokenizer_config: Option<Value>,
    /// Sum of the source weight files' sizes (for the report).
    pub source_bytes: u64,
    pub source: &'a mut dyn TensorSource,
}

impl std::fmt::Debug for ModelInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelInput")
            .field("name", &self.name)
            .field("tensors", &self.tensors.len())
            .field(
                "tokenizer_json",
                &self.tokenizer_json.as_ref().map(Vec::len),
            )
            .field("source_bytes", &self.source_bytes)
            .finish_non_exhaustive()
    }
}

impl ModelInput<'_> {
    fn config(&self) -> Result<&Value, QuantError> {
        self.config
            .as_ref()
            .ok_or_else(|| QuantError::Invalid("the model has no config.json".into()))
    }

    /// Every tensor's info, checked: the key is its name and its byte length fits its shape.
    fn checked_tensors(&self) -> Result<(), QuantError> {
        for (name, info) in &self.tensors {
            if &info.name != name {
                return Err(QuantError::Invalid(format!(
                    "tensor `{name}`: its info names `{}`",
                    info.name
                )));
            }
            check_len(info)?;
        }
        Ok(())
    }
}

struct Plan {
    name: String,
    mapped: llama::Mapped,
    ty: GgmlType,
    fallback: Option<String>,
}

/// Decide every tensor's GGUF name and type, refusing what llama.cpp could not load.
fn plan_gguf(
    input: &ModelInput<'_>,
    hp: &LlamaParams,
    ty: GgmlType,
) -> Result<(Vec<Plan>, Vec<String>), QuantError> {
    let mut plans = Vec::new();
    let mut skipped = Vec::new();
    for (name, info) in &input.tensors {
        let Some(mapped) = llama::map_name(name, hp)? else {
            skipped.push(name.clone());
            continue;
        };
        quantisable_width(info)?;
        let shape = &info.shape;
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
        // Checked here, before anything is written; the pipeline cuts by the same rule.
        if let Some(h) = mapped.permute_heads {
            let rows = usize::try_from(shape[0]).unwrap_or(usize::MAX);
            if shape.len() != 2
                || llama::head_rows(rows, usize::try_from(h).unwrap_or(usize::MAX)).is_none()
            {
                return Err(uneven_heads(name, rows, h));
            }
        }
        plans.push(Plan {
            name: name.clone(),
            mapped,
            ty: tty,
            fallback,
        });
    }
    Ok((plans, skipped))
}

/// Write `input` as a llama GGUF of `ty` to `out`; report.output is empty (`PathBuf::new()`),
/// report.output_bytes the bytes written.
pub fn write_gguf(
    input: &mut ModelInput<'_>,
    ty: GgmlType,
    opts: &Options,
    out: &mut dyn Write,
) -> Result<QuantReport, QuantError> {
    let hp = LlamaParams::from_config(input.config()?)?;
    input.checked_tensors()?;
    let (plans, skipped) = plan_gguf(input, &hp, ty)?;
    let mut meta: Vec<(String, MetaValue)> = vec![
        (
            "general.architecture".into(),
            MetaValue::Str("llama".into()),
        ),
        ("general.name".into(), MetaValue::Str(input.name.clone())),
        ("general.file_type".into(), MetaValue::U32(ty.file_type())),
        ("general.quantization_version".into(), MetaValue::U32(2)),
        ("general.alignment".into(), MetaValue::U32(32)),
    ];
    meta.extend(hp.metadata());
    if let Some(tj) = &input.tokenizer_json {
        meta.extend(tokenizer_metadata(
            tj,
            input.tokenizer_config.as_ref(),
            input.config()?,
        )?);
    }
    meta.extend(
        opts.lineage
            .iter()
            .map(|(k, v)| (k.clone(), MetaValue::Str(v.clone()))),
    );
    let infos: Vec<(String, Vec<u64>, GgmlType)> = plans
        .iter()
        .map(|p| {
            let mut dims = input.tensors[&p.name].shape.clone();
            dims.reverse();
            (p.mapped.gguf_name.clone(), dims, p.ty)
        })
        .collect();
    let mut w = GgufWriter::start(BufWriter::with_capacity(BUFFER, out), &meta, &infos)?;
    let order: Vec<Tensor<'_>> = plans
        .iter()
        .map(|p| Tensor {
            info: &input.tensors[&p.name],
            ty: p.ty,
            permute_heads: p.mapped.permute_heads,
        })
        .collect();
    let errors = write_tensors(input.source, &order, &mut w, opts.threads, CHUNK_VALUES)?;
    let tensors = plans
        .into_iter()
        .zip(errors)
        .map(|(p, err)| {
            let info = &input.tensors[&p.name];
            TensorReport {
                output_name: p.mapped.gguf_name,
                shape: info.shape.clone(),
                source_dtype: info.dtype.to_string(),
                stored_as: p.ty.name().into(),
                fallback: p.fallback,
                relative_rmse: err,
                name: p.name,
            }
        })
        .collect();
    let (mut buf, len) = w.finish()?;
    buf.flush()?;
    Ok(QuantReport {
        format: "gguf".into(),
        quant_type: ty.name().into(),
        output: PathBuf::new(),
        output_bytes: len,
        source_bytes: input.source_bytes,
        tensors,
        skipped,
    })
}

/// `config.json`'s `quantization_config` for an NF4 checkpoint, as transformers'
/// `BitsAndBytesConfig.to_dict()` writes it.
fn quantization_config(compute: &str, double_quant: bool) -> Value {
    json!({
        "quant_method": "bitsandbytes",
        "_load_in_4bit": true,
        "_load_in_8bit": false,
        "load_in_4bit": true,
        "load_in_8bit": false,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": double_quant,
        "bnb_4bit_compute_dtype": compute,
        "bnb_4bit_quant_storage": "uint8",
        "llm_int8_threshold": 6.0,
        "llm_int8_skip_modules": null,
        "llm_int8_enable_fp32_cpu_offload": false,
        "llm_int8_has_fp16_weight": false,
    })
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Write the NF4 weights (one safetensors file, bitsandbytes layout) to `out`; returns the
/// report and the config.json value to store beside it (the input config with
/// `quantization_config` added).
pub fn write_nf4(
    input: &mut ModelInput<'_>,
    opts: &Options,
    out: &mut dyn Write,
) -> Result<(QuantReport, Value), QuantError> {
    let mut config = input.config()?.clone();
    if !config.is_object() {
        return Err(QuantError::Invalid("config.json is not an object".into()));
    }
    input.checked_tensors()?;
    let compute = config["torch_dtype"]
        .as_str()
        .unwrap_or("bfloat16")
        .to_owned();
    let mut decl: Vec<(String, Dtype, Vec<u64>)> = Vec::new();
    for (name, info) in &input.tensors {
        let shape = info.shape.clone();
        if nf4_quantises(name, &shape) {
            quantisable_width(info)?;
            let n: u64 = shape.iter().product();
            let blocks = n.div_ceil(NF4_BLOCK as u64);
            decl.push((name.clone(), Dtype::U8, vec![n.div_ceil(2), 1]));
            let state_len = if opts.double_quant {
                decl.push((format!("{name}.absmax"), Dtype::U8, vec![blocks]));
                decl.push((format!("{name}.quant_map"), Dtype::F32, vec![16]));
                decl.push((
                    format!("{name}.nested_absmax"),
                    Dtype::F32,
                    vec![blocks.div_ceil(NESTED_BLOCK as u64)],
                ));
                decl.push((format!("{name}.nested_quant_map"), Dtype::F32, vec![256]));
                nf4_quant_state_nested_len(info.dtype, &shape)
            } else {
                decl.push((format!("{name}.absmax"), Dtype::F32, vec![blocks]));
                decl.push((format!("{name}.quant_map"), Dtype::F32, vec![16]));
                nf4_quant_state(info.dtype, &shape).len()
            };
            decl.push((
                format!("{name}.quant_state.bitsandbytes__nf4"),
                Dtype::U8,
                vec![state_len as u64],
            ));
        } else {
            decl.push((name.clone(), info.dtype, shape));
        }
    }
    let meta = [
        vec![("format".to_owned(), "pt".to_owned())],
        opts.lineage.clone(),
    ]
    .concat();
    let sink = Counted {
        inner: BufWriter::with_capacity(BUFFER, out),
        bytes: 0,
    };
    let mut w = SafetensorsWriter::start(sink, &decl, &meta)?;
    let dyn_map = dynamic_map();
    let mut tensors = Vec::with_capacity(input.tensors.len());
    for (name, info) in &input.tensors {
        let (stored_as, err) = if nf4_quantises(name, &info.shape) {
            let x = read_f32(input.source, info)?;
            let (codes, absmax) = quantize_nf4(&x);
            if opts.double_quant {
                let nested = compress_absmax(&absmax, &dyn_map);
                let back = dequantize_nf4_nested(&codes, &nested, &dyn_map, x.len());
                let err = relative_rmse(&x, &back);
                drop((x, back));
                let mut state =
                    nf4_quant_state_nested(info.dtype, &info.shape, nested.offset).into_bytes();
                state.resize(nf4_quant_state_nested_len(info.dtype, &info.shape), b' ');
                w.write_tensor(&codes)?;
                w.write_tensor(&nested.codes)?;
                w.write_tensor(&f32_bytes(&NF4_CODE))?;
                w.write_tensor(&f32_bytes(&nested.absmax))?;
                w.write_tensor(&f32_bytes(&dyn_map))?;
                w.write_tensor(&state)?;
                ("nf4".to_owned(), err)
            } else {
                let err = relative_rmse(&x, &dequantize_nf4(&codes, &absmax, x.len()));
                drop(x);
                w.write_tensor(&codes)?;
                w.write_tensor(&f32_bytes(&absmax))?;
                w.write_tensor(&f32_bytes(&NF4_CODE))?;
                w.write_tensor(nf4_quant_state(info.dtype, &info.shape).as_bytes())?;
                ("nf4".to_owned(), err)
            }
        } else {
            copy_raw(input.source, info, &mut |part| w.write_part(part))?;
            (info.dtype.to_string(), 0.0)
        };
        tensors.push(TensorReport {
            name: name.clone(),
            output_name: name.clone(),
            shape: info.shape.clone(),
            source_dtype: info.dtype.to_string(),
            stored_as,
            fallback: None,
            relative_rmse: err,
        });
    }
    let mut sink = w.finish()?;
    sink.flush()?;
    config["quantization_config"] = quantization_config(&compute, opts.double_quant);
    let report = QuantReport {
        format: "nf4".into(),
        quant_type: "nf4".into(),
        output: PathBuf::new(),
        output_bytes: sink.bytes,
        source_bytes: input.source_bytes,
        tensors,
        skipped: Vec::new(),
    };
    Ok((report, config))
}
