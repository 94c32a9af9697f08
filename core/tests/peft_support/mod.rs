//! Builders for PEFT adapters in tests: the same description gives header-only
//! `TensorInfo` lists (for the pure checks) and real files written with the reference
//! `safetensors` crate (for `inspect_adapter_dir`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use adapter_core::peft::AdapterConfig;
use adapter_core::safetensors::{Dtype, TensorInfo};
use serde_json::Value;

/// How a test tensor is filled (F32 only when written to a file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    /// Every element 0.01.
    Small,
    Zeros,
    /// The first n elements NaN, the rest 0.01.
    Nan(usize),
    /// The first n elements +Inf, the rest 0.01.
    Inf(usize),
}

#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: Dtype,
    pub fill: Fill,
}

/// An adapter under construction.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub config: Value,
    pub tensors: Vec<Tensor>,
}

pub const P: &str = "base_model.model.";

impl Adapter {
    pub fn new(config: Value) -> Self {
        Self {
            config,
            tensors: Vec::new(),
        }
    }

    pub fn tensor(mut self, name: &str, shape: &[u64]) -> Self {
        self.tensors.push(Tensor {
            name: name.to_owned(),
            shape: shape.to_vec(),
            dtype: Dtype::F32,
            fill: Fill::Small,
        });
        self
    }

    pub fn filled(mut self, name: &str, shape: &[u64], fill: Fill) -> Self {
        self = self.tensor(name, shape);
        self.tensors.last_mut().unwrap().fill = fill;
        self
    }

    pub fn dtype(mut self, name: &str, dtype: Dtype) -> Self {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap()
            .dtype = dtype;
        self
    }

    /// `lora_A` [r, in] and `lora_B` [out, r] of a Linear module (name without prefix).
    pub fn linear(self, module: &str, r: u64, inf: u64, outf: u64) -> Self {
        self.tensor(&format!("{P}{module}.lora_A.weight"), &[r, inf])
            .tensor(&format!("{P}{module}.lora_B.weight"), &[outf, r])
    }

    /// Remove a tensor by name.
    pub fn without(mut self, name: &str) -> Self {
        let before = self.tensors.len();
        self.tensors.retain(|t| t.name != name);
        assert_eq!(before, self.tensors.len() + 1, "no tensor {name}");
        self
    }

    pub fn parsed_config(&self) -> AdapterConfig {
        AdapterConfig::from_json_bytes(self.config.to_string().as_bytes()).expect("config parses")
    }

    /// Header entries as a parser would produce them (offsets in order, 4 bytes/element
    /// for F32, dtype width otherwise).
    pub fn infos(&self) -> Vec<TensorInfo> {
        let mut at = 0;
        self.tensors
            .iter()
            .map(|t| {
                let n: u64 = t.shape.iter().product();
                let len = n * t.dtype.bits() / 8;
                let info = TensorInfo {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    data_offsets: (at, at + len),
                };
                at += len;
                info
            })
            .collect()
    }

    /// Write `adapter_config.json` and `adapter_model.safetensors` (F32 tensors) into `dir`.
    pub fn write(&self, dir: &Path) {
        std::fs::write(
            dir.join("adapter_config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
        let data: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|t| {
                assert_eq!(t.dtype, Dtype::F32, "files are written in F32 only");
                let n: usize = t.shape.iter().product::<u64>() as usize;
                let mut bytes = Vec::with_capacity(n * 4);
                for i in 0..n {
                    let v: f32 = match t.fill {
                        Fill::Zeros => 0.0,
                        Fill::Nan(k) if i < k => f32::NAN,
                        Fill::Inf(k) if i < k => f32::INFINITY,
                        _ => 0.01,
                    };
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
                (
                    t.name.clone(),
                    bytes,
                    t.shape.iter().map(|&d| d as usize).collect(),
                )
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(name, bytes, shape)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytes,
                )
                .unwrap();
                (name.clone(), view)
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join("adapter_model.safetensors"))
            .unwrap();
    }
}

/// A base model's tensors by name (BF16 unless told).
pub fn base(entries: &[(&str, &[u64])]) -> BTreeMap<String, TensorInfo> {
    entries
        .iter()
        .map(|(name, shape)| {
            (
                (*name).to_owned(),
                TensorInfo {
                    name: (*name).to_owned(),
                    dtype: Dtype::BF16,
                    shape: shape.to_vec(),
                    data_offsets: (0, 0),
                },
            )
        })
        .collect()
}

/// A small Llama-like base: `layers` decoder layers, hidden 64, vocab 100.
pub fn llama_base(layers: u64) -> BTreeMap<String, TensorInfo> {
    let mut names: Vec<(String, Vec<u64>)> = vec![
        ("model.embed_tokens.weight".into(), vec![100, 64]),
        ("lm_head.weight".into(), vec![100, 64]),
        ("model.norm.weight".into(), vec![64]),
    ];
    for i in 0..layers {
        for p in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            names.push((
                format!("model.layers.{i}.self_attn.{p}.weight"),
                vec![64, 64],
            ));
        }
        names.push((
            format!("model.layers.{i}.mlp.up_proj.weight"),
            vec![128, 64],
        ));
        names.push((
            format!("model.layers.{i}.mlp.down_proj.weight"),
            vec![64, 128],
        ));
    }
    let refs: Vec<(&str, &[u64])> = names
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    base(&refs)
}

/// Codes of a finding list.
pub fn codes(list: &[adapter_core::diag::Finding]) -> Vec<&'static str> {
    list.iter().map(|f| f.code).collect()
}
