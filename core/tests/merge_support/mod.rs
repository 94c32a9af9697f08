//! Real tensors for merge tests: bases and adapters with random values written with the
//! reference `safetensors` crate (optionally sharded), a naive f64 implementation of PEFT's
//! merge formulas, and comparisons against it.
#![allow(
    dead_code,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::collections::BTreeMap;
use std::path::Path;

use adapter_core::floats::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
use adapter_core::safetensors::Dtype;
use serde_json::{Value, json};

/// A deterministic generator (xorshift64*), values in [-1, 1).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// One tensor: values already representable in its dtype.
#[derive(Debug, Clone)]
pub struct T {
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub values: Vec<f64>,
}

impl T {
    pub fn random(dtype: Dtype, shape: &[u64], amplitude: f64, rng: &mut Rng) -> Self {
        let n: u64 = shape.iter().product();
        let values = (0..n)
            .map(|_| representable(dtype, rng.next() * amplitude))
            .collect();
        Self {
            dtype,
            shape: shape.to_vec(),
            values,
        }
    }
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for v in &self.values {
            match self.dtype {
                Dtype::F32 => out.extend_from_slice(&(*v as f32).to_le_bytes()),
                Dtype::BF16 => out.extend_from_slice(&f32_to_bf16(*v as f32).to_le_bytes()),
                Dtype::F16 => out.extend_from_slice(&f32_to_f16(*v as f32).to_le_bytes()),
                Dtype::I64 => out.extend_from_slice(&(*v as i64).to_le_bytes()),
                other => panic!("{other:?}"),
            }
        }
        out
    }
}

/// The nearest value of `dtype` to `x` (the generator's values then need no rounding).
pub fn representable(dtype: Dtype, x: f64) -> f64 {
    match dtype {
        Dtype::F32 => f64::from(x as f32),
        Dtype::BF16 => f64::from(bf16_to_f32(f32_to_bf16(x as f32))),
        Dtype::F16 => f64::from(f16_to_f32(f32_to_f16(x as f32))),
        _ => x.round(),
    }
}

fn st_dtype(d: Dtype) -> safetensors::Dtype {
    match d {
        Dtype::F32 => safetensors::Dtype::F32,
        Dtype::BF16 => safetensors::Dtype::BF16,
        Dtype::F16 => safetensors::Dtype::F16,
        Dtype::I64 => safetensors::Dtype::I64,
        other => panic!("{other:?}"),
    }
}

/// Write `tensors` to `path` with the reference writer.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, T>) {
    let data: Vec<(String, Vec<u8>, &T)> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.bytes(), t))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(k, b, t)| {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            (
                k.clone(),
                safetensors::tensor::TensorView::new(st_dtype(t.dtype), shape, b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Write a model directory: config.json, a tokenizer file, and the tensors in `shards`
/// files (more than one: named as transformers does, with an index).
pub fn write_model(dir: &Path, config: &Value, tensors: &BTreeMap<String, T>, shards: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_vec(config).unwrap()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{\"version\":\"1.0\"}").unwrap();
    if shards <= 1 {
        write_safetensors(&dir.join("model.safetensors"), tensors);
        return;
    }
    let names: Vec<&String> = tensors.keys().collect();
    let per = names.len().div_ceil(shards);
    let mut map = BTreeMap::new();
    for (i, chunk) in names.chunks(per).enumerate() {
        let file = format!("model-{:05}-of-{shards:05}.safetensors", i + 1);
        let part: BTreeMap<String, T> = chunk
            .iter()
            .map(|k| ((*k).clone(), tensors[*k].clone()))
            .collect();
        write_safetensors(&dir.join(&file), &part);
        for k in chunk {
            map.insert((*k).clone(), file.clone());
        }
    }
    let index = json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// Write an adapter directory.
pub fn write_adapter(dir: &Path, config: &Value, tensors: &BTreeMap<String, T>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        serde_json::to_vec(config).unwrap(),
    )
    .unwrap();
    write_safetensors(&dir.join("adapter_model.safetensors"), tensors);
}

/// Every tensor of a model directory (one or more shards), as f64.
pub fn read_model(dir: &Path) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "safetensors") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for (name, view) in st.tensors() {
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => Dtype::F32,
                safetensors::Dtype::BF16 => Dtype::BF16,
                safetensors::Dtype::F16 => Dtype::F16,
                safetensors::Dtype::I64 => Dtype::I64,
                other => panic!("{other:?}"),
            };
            let data = view.data();
            let values = match dtype {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| f64::from(bf16_to_f32(u16::from_le_bytes([c[0], c[1]]))))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|c| f64::from(f16_to_f32(u16::from_le_bytes([c[0], c[1]]))))
                    .collect(),
                _ => data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
            };
            let shape = view.shape().iter().map(|&d| d as u64).collect();
            assert!(
                out.insert(
                    name,
                    T {
                        dtype,
                        shape,
                        values
                    }
                )
                .is_none()
            );
        }
    }
    out
}

/// Naive f64 PEFT formulas. `a` is [r, x], `b` is [y, r]; returns s·(B@A) as [y, x].
pub fn delta(a: &T, b: &T, scale: f64) -> Vec<f64> {
    let (r, x) = (a.shape[0] as usize, a.shape[1] as usize);
    let y = b.shape[0] as usize;
    let mut out = vec![0.0; y * x];
    for o in 0..y {
        for i in 0..x {
            let mut s = 0.0;
            for k in 0..r {
                s += b.values[o * r + k] * a.values[k * x + i];
            }
            out[o * x + i] = scale * s;
        }
    }
    out
}

/// [rows, cols] → [cols, rows].
pub fn transpose(v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// DoRA on a [out, in] matrix `v` = W + ΔW: (m / ‖row‖) ⊙ row.
pub fn dora(v: &[f64], magnitude: &[f64]) -> Vec<f64> {
    let inner = v.len() / magnitude.len();
    v.chunks(inner)
        .zip(magnitude)
        .flat_map(|(row, m)| {
            let n = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            row.iter().map(move |x| m / n * x).collect::<Vec<_>>()
        })
        .collect()
}

fn decode(dtype: Dtype, bits: u32) -> f64 {
    match dtype {
        Dtype::BF16 => f64::from(bf16_to_f32(bits as u16)),
        Dtype::F16 => f64::from(f16_to_f32(bits as u16)),
        _ => f64::from(f32::from_bits(bits)),
    }
}

fn encode(dtype: Dtype, x: f64) -> u32 {
    match dtype {
        Dtype::BF16 => u32::from(f32_to_bf16(x as f32)),
        Dtype::F16 => u32::from(f32_to_f16(x as f32)),
        _ => (x as f32).to_bits(),
    }
}

/// `x` rounded once to `dtype`, nearest with ties to even, decided in f64 among the
/// neighbours of the f32-based candidate (so the reference does not round twice).
pub fn round_once(dtype: Dtype, x: f64) -> f64 {
    let c = encode(dtype, x);
    let mut best = c;
    for n in [c.wrapping_sub(1), c.wrapping_add(1)] {
        let (dn, db) = (
            (decode(dtype, n) - x).abs(),
            (decode(dtype, best) - x).abs(),
        );
        if dn < db || (dn == db && n & 1 == 0) {
            best = n;
        }
    }
    decode(dtype, best)
}

/// One unit in the last place of `dtype` at `x`.
fn ulp(dtype: Dtype, x: f64) -> f64 {
    let c = encode(dtype, x.abs());
    decode(dtype, c + 1) - decode(dtype, c)
}

/// `got` equals `want` (f64) rounded once to the dtype of `got`: bit-exact, except where
/// the exact value lies within f32 rounding noise of a midpoint between two neighbours (f32
/// arithmetic may legitimately land on either side: its error is relative to the terms, up
/// to the tensor's largest magnitude, not to a result that cancelled); those must be within
/// one ulp and rare.
/// F32 tensors: within a relative 1e-5 of the tensor's largest magnitude.
pub fn assert_merged(name: &str, got: &T, want: &[f64]) {
    assert_eq!(got.values.len(), want.len(), "{name}: length");
    if got.dtype == Dtype::F32 {
        let max = want.iter().fold(0f64, |m, x| m.max(x.abs()));
        for (i, (g, w)) in got.values.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * max, "{name}[{i}]: {g} vs {w}");
        }
        return;
    }
    let max = want.iter().fold(0f64, |m, x| m.max(x.abs()));
    let mut near_tie = 0;
    for (i, (g, w)) in got.values.iter().zip(want).enumerate() {
        let r = round_once(got.dtype, *w);
        if *g == r {
            continue;
        }
        let u = ulp(got.dtype, *w);
        let mid_distance = ((w - r).abs() - u / 2.0).abs();
        assert!(
            mid_distance <= max * 1e-6 && (g - r).abs() <= u,
            "{name}[{i}]: got {g}, exact {w} rounds to {r}"
        );
        near_tie += 1;
    }
    assert!(
        near_tie * 100 <= want.len().max(100),
        "{name}: {near_tie} near-tie differences"
    );
}
