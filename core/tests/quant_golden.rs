//! Our GGUF output, byte for byte, against llama.cpp's own quantiser: the files under
//! core/tests/fixtures/gguf/ were written by `llama_model_quantize` (llama-cpp-python 0.3.36,
//! llama.cpp built from source, `pure`, so every matrix gets the one type) from the f32 GGUF
//! of the tiny model below. Every tensor we write for the same model must be those bytes.
//!
//! The model is small (one layer, rows of 256, 112K values: each file well under 200 KB) and
//! hostile: its 32-value blocks mix Gaussian values at several scales with zero, constant,
//! subnormal, tiny (1e-30), large (±1e5), all-positive, one-outlier and rounding-tie blocks, so
//! that the search branches of the K-quants and the rounding of Q8_0 / Q4_0 are all met; each
//! matrix starts with a block whose Q4_0 bytes depend on whether `x·id + 8.5` is rounded once
//! (fused multiply-add) or twice.
//!
//! Regenerate the fixtures (needs the llama.cpp venv of bench/llama_cpp_peer.sh):
//!
//! ```sh
//! ADAPTER_GOLDEN_MODEL=/tmp/golden-model cargo test -p adapter-core --test quant_golden
//! bench/llama_cpp_peer.sh --fixtures core/tests/fixtures/gguf --model /tmp/golden-model
//! ```

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use adapter_core::model::{Hashing, ModelDir};
use adapter_core::quant::GgmlType;
use adapter_core::quant::convert::{Options, to_gguf};
use adapter_core::quant::gguf::{GgufFile, read_gguf};
use serde_json::json;

const HIDDEN: u64 = 256;

/// (name, shape) of the tiny model: config.json says hidden 256, 2 heads, 1 KV head; the
/// matrices have rows of 256 and few rows (the quantisers do not look at the model's sense).
fn tensors() -> Vec<(&'static str, Vec<u64>)> {
    vec![
        ("lm_head.weight", vec![32, HIDDEN]),
        ("model.embed_tokens.weight", vec![32, HIDDEN]),
        ("model.layers.0.input_layernorm.weight", vec![HIDDEN]),
        ("model.layers.0.mlp.down_proj.weight", vec![64, HIDDEN]),
        ("model.layers.0.mlp.gate_proj.weight", vec![64, HIDDEN]),
        ("model.layers.0.mlp.up_proj.weight", vec![64, HIDDEN]),
        (
            "model.layers.0.post_attention_layernorm.weight",
            vec![HIDDEN],
        ),
        ("model.layers.0.self_attn.k_proj.weight", vec![32, HIDDEN]),
        ("model.layers.0.self_attn.o_proj.weight", vec![64, HIDDEN]),
        ("model.layers.0.self_attn.q_proj.weight", vec![64, HIDDEN]),
        ("model.layers.0.self_attn.v_proj.weight", vec![32, HIDDEN]),
        ("model.norm.weight", vec![HIDDEN]),
    ]
}

/// xorshift64*: the same stream on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Roughly Gaussian (sum of four uniforms), mean 0, sd ≈ 0.58.
    fn gauss(&mut self) -> f32 {
        (0..4).map(|_| self.unit()).sum::<f32>() - 2.0
    }
}

const Q4_0_BOUNDARY: [u32; 32] = [
    0x3d054602, 0xbca24a03, 0xbbf34eb3, 0xbcbebe9a, 0xb9f43a67, 0xbc8b24a0, 0x3c23bd8d, 0x3b89eac0,
    0xbd021e93, 0xbc533f1a, 0x3cc41033, 0x3a9b809a, 0xbd18653d, 0x3af1f400, 0xbd37e928, 0x3b78ec4d,
    0xbd0325fb, 0xbce5824d, 0xbc68bd8d, 0x3d1e0145, 0xbc11d3c7, 0x3bacc58d, 0x3d186078, 0x3d1683f8,
    0x3d09858a, 0xbd241822, 0x3cb17960, 0x3d426fb8, 0x3c8650b3, 0xbaf5c533, 0x3c9321ea, 0x3c8ac7fa,
];

/// One 32-value block of kind `kind`.
fn block(rng: &mut Rng, kind: u64) -> [f32; 32] {
    let mut b = [0f32; 32];
    match kind {
        0 => {}
        1 => b = [0.25; 32],
        2 => b = [-0.5; 32],
        3 => {
            for v in &mut b {
                let bits = (rng.next() >> 41) as u32; // < 2^23: subnormal
                *v = f32::from_bits(bits | if rng.unit() < 0.5 { 0x8000_0000 } else { 0 });
            }
        }
        4 => b.iter_mut().for_each(|v| *v = rng.gauss() * 1e-30),
        5 => b.iter_mut().for_each(|v| *v = rng.gauss() * 1e5),
        6 => b.iter_mut().for_each(|v| *v = rng.gauss().abs() * 0.03),
        7 => {
            b.iter_mut().for_each(|v| *v = rng.gauss() * 0.001);
            b[(rng.next() % 32) as usize] = 2.0;
        }
        8 => {
            // Multiples of 1/4 around zero: many values on rounding ties.
            for (i, v) in b.iter_mut().enumerate() {
                *v = (i as f32 - 15.5) * 0.25;
            }
        }
        9 => b.iter_mut().for_each(|v| *v = -(rng.gauss().abs()) * 0.02),
        _ => {
            let scale = [0.002f32, 0.02, 0.05, 0.2, 1.0][(kind % 5) as usize];
            b.iter_mut().for_each(|v| *v = rng.gauss() * scale);
        }
    }
    b
}

/// The values of tensor `index`: matrices block by block (a kind per block: two in three
/// Gaussian, the rest the edge kinds), norms Gaussian around 1.
fn values(index: usize, shape: &[u64]) -> Vec<f32> {
    let n: u64 = shape.iter().product();
    let mut rng =
        Rng(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    if shape.len() == 1 {
        return (0..n).map(|_| 1.0 + rng.gauss() * 0.1).collect();
    }
    // First, a block on which Q4_0's `x·id + 8.5` rounds differently when the multiply-add
    // is fused (element 20: 9 vs 10; core/src/quant/blocks.rs has it too).
    let mut out: Vec<f32> = Q4_0_BOUNDARY.iter().map(|&b| f32::from_bits(b)).collect();
    while (out.len() as u64) < n {
        let pick = rng.next() % 30;
        let kind = if pick < 10 { pick } else { 10 + pick % 5 };
        out.extend_from_slice(&block(&mut rng, kind));
    }
    out
}

/// Write the tiny model (config.json + an f32 model.safetensors) into `dir`.
fn write_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let list = tensors();
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in &list {
        let len = shape.iter().product::<u64>() * 4;
        header.insert(
            (*name).to_owned(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut text = serde_json::to_string(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut f = BufWriter::new(File::create(dir.join("model.safetensors")).unwrap());
    f.write_all(&(text.len() as u64).to_le_bytes()).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    for (i, (_, shape)) in list.iter().enumerate() {
        for v in values(i, shape) {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
    }
    f.flush().unwrap();
    std::fs::write(
        dir.join("config.json"),
        json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
               "hidden_size": HIDDEN, "intermediate_size": 64, "num_hidden_layers": 1,
               "vocab_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
               "rms_norm_eps": 1e-5, "max_position_embeddings": 256,
               "tie_word_embeddings": false})
        .to_string(),
    )
    .unwrap();
}

fn fixture(ty: GgmlType) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/gguf/tiny-{ty}.gguf"))
}

/// Every tensor of a GGUF file: (name, type, data).
fn tensor_data(path: &Path) -> Vec<(String, GgmlType, Vec<u8>)> {
    let mut f = File::open(path).unwrap();
    let g: GgufFile = read_gguf(std::io::BufReader::new(&mut f))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: Vec<_> = g
        .tensors
        .iter()
        .map(|t| {
            f.seek(SeekFrom::Start(g.data_start + t.offset)).unwrap();
            let mut buf = vec![0u8; t.byte_len() as usize];
            f.read_exact(&mut buf).unwrap();
            (t.name.clone(), t.ty, buf)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn our_gguf_tensors_are_llama_cpp_s_bytes() {
    if let Some(dir) = std::env::var_os("ADAPTER_GOLDEN_MODEL") {
        write_model(Path::new(&dir));
        eprintln!("wrote the golden model to {}", dir.to_string_lossy());
    }
    let tmp = tempfile::tempdir().unwrap();
    write_model(&tmp.path().join("model"));
    let model = ModelDir::open(&tmp.path().join("model"), Hashing::HeadersOnly).unwrap();
    for ty in GgmlType::QUANTISED {
        let theirs = tensor_data(&fixture(ty));
        assert!(
            std::fs::metadata(fixture(ty)).unwrap().len() < 200_000,
            "{ty}: fixture too large"
        );
        for threads in [1, 3] {
            let out = tmp.path().join(format!("{ty}-{threads}.gguf"));
            let opts = Options {
                threads,
                ..Options::default()
            };
            to_gguf(&model, ty, &out, &opts).unwrap();
            let ours = tensor_data(&out);
            let names = |v: &[(String, GgmlType, Vec<u8>)]| {
                v.iter().map(|t| (t.0.clone(), t.1)).collect::<Vec<_>>()
            };
            assert_eq!(names(&ours), names(&theirs), "{ty}: tensor names and types");
            for ((name, t, a), (_, _, b)) in ours.iter().zip(&theirs) {
                let block = t.block_bytes() as usize;
                let differ: Vec<usize> = a
                    .chunks(block)
                    .zip(b.chunks(block))
                    .enumerate()
                    .filter(|(_, (x, y))| x != y)
                    .map(|(i, _)| i)
                    .collect();
                assert!(
                    a.len() == b.len() && differ.is_empty(),
                    "{ty}, {threads} threads, {name}: {} of {} blocks differ from llama.cpp's \
                     (first: {:?})",
                    differ.len(),
                    b.len() / block,
                    differ.first()
                );
            }
        }
    }
}
