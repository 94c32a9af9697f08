//! validate-bench: the `validate` job's cost against the base's tensor count and tensor size.
//!
//! Builds Llama-shaped bases in memory as safetensors headers (the bytes a shard starts
//! with), with 10 and 1,000 tensors, each at two sizes (hidden 64, and hidden 8192 /
//! intermediate 28672, i.e. 70B-class tensor shapes), plus an adapter with `q_proj` and
//! `v_proj` on every layer. Times header parsing plus `adapter_core::compat::validate`,
//! best of N, and prints the per-tensor cost and two ratios: 1,000 vs 10 tensors (should be
//! about 100×: linear in the count) and large vs small shapes at the same count (should be
//! about 1×: the job never reads tensor data).
//!
//! ```sh
//! cargo run --release -p adapter-bench --bin validate-bench
//! cargo run --release -p adapter-bench --bin validate-bench -- --runs 50
//! ```
//! Exit status 0; 1 when a validation is not `compatible` (the fixture is wrong); 2 on a
//! usage error.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::{Duration, Instant};

use adapter_core::compat::{AdapterFacts, BaseFacts, Verdict, validate};
use adapter_core::digest::Digest;
use adapter_core::safetensors::{Limits, TensorInfo, read_header};
use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

/// Per decoder layer: 4 attention projections, 3 MLP projections, 2 norms.
const PER_LAYER: u64 = 9;

/// (name, shape) of a Llama-shaped base with `1 + 9·layers` tensors (tied embeddings).
fn base_tensors(layers: u64, hidden: u64, inter: u64) -> Vec<(String, Vec<u64>)> {
    let mut t = vec![("model.embed_tokens.weight".to_owned(), vec![32000, hidden])];
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        for m in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            t.push((format!("{p}.self_attn.{m}.weight"), vec![hidden, hidden]));
        }
        t.push((format!("{p}.mlp.gate_proj.weight"), vec![inter, hidden]));
        t.push((format!("{p}.mlp.up_proj.weight"), vec![inter, hidden]));
        t.push((format!("{p}.mlp.down_proj.weight"), vec![hidden, inter]));
        t.push((format!("{p}.input_layernorm.weight"), vec![hidden]));
        t.push((format!("{p}.post_attention_layernorm.weight"), vec![hidden]));
    }
    t
}

/// A safetensors file's first bytes: the 8-byte length and the JSON header (BF16 tensors
/// laid out back to back).
fn header_bytes(tensors: &[(String, Vec<u64>)]) -> Vec<u8> {
    let mut map = Map::new();
    let mut at = 0u64;
    for (name, shape) in tensors {
        let len = shape.iter().product::<u64>() * 2;
        map.insert(
            name.clone(),
            json!({"dtype": "BF16", "shape": shape, "data_offsets": [at, at + len]}),
        );
        at += len;
    }
    let mut json = serde_json::to_vec(&Value::Object(map)).expect("json");
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out
}

fn adapter(layers: u64, hidden: u64, r: u64) -> AdapterFacts {
    let mut tensors = Vec::new();
    let mut at = 0u64;
    let mut push = |name: String, shape: Vec<u64>| {
        let len = shape.iter().product::<u64>() * 2;
        tensors.push(TensorInfo {
            name,
            dtype: adapter_core::safetensors::Dtype::BF16,
            shape,
            data_offsets: (at, at + len),
        });
        at += len;
    };
    for i in 0..layers {
        for m in ["q_proj", "v_proj"] {
            let module = format!("base_model.model.model.layers.{i}.self_attn.{m}");
            push(format!("{module}.lora_A.weight"), vec![r, hidden]);
            push(format!("{module}.lora_B.weight"), vec![hidden, r]);
        }
    }
    let config = json!({"peft_type": "LORA", "r": r, "lora_alpha": 2 * r,
                        "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"});
    AdapterFacts {
        config_json: config.to_string().into_bytes(),
        tensors,
        recorded_base: None,
    }
}

struct Case {
    tensors: usize,
    hidden: u64,
    best: Duration,
}

/// Parse the base's header and validate, best of `runs`.
fn measure(layers: u64, hidden: u64, inter: u64, runs: u32) -> Result<Case> {
    let bytes = header_bytes(&base_tensors(layers, hidden, inter));
    let adapter = adapter(layers, hidden, 16);
    let config = json!({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                        "hidden_size": hidden, "intermediate_size": inter,
                        "num_hidden_layers": layers, "vocab_size": 32000,
                        "tie_word_embeddings": true});
    let mut best = Duration::MAX;
    let mut count = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let header =
            read_header(Cursor::new(&bytes), &Limits::REFERENCE, None).context("parsing header")?;
        let tensors: BTreeMap<String, TensorInfo> = header
            .tensors
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        count = tensors.len();
        let base = BaseFacts {
            tensors,
            config: Some(config.clone()),
            content_digest: None,
            shape_fingerprint: Digest::of_bytes(b"bench"),
        };
        let report = validate(&adapter, &base);
        best = best.min(start.elapsed());
        if report.verdict != Verdict::Compatible {
            eprintln!("fixture not compatible: {:?}", report.findings);
            std::process::exit(1);
        }
    }
    Ok(Case {
        tensors: count,
        hidden,
        best,
    })
}

fn per_tensor(c: &Case) -> f64 {
    c.best.as_secs_f64() * 1e6 / c.tensors as f64
}

fn print(c: &Case) {
    println!(
        "{:>5} tensors, hidden {:>5}: {:>9.3} ms  ({:.2} µs per tensor)",
        c.tensors,
        c.hidden,
        c.best.as_secs_f64() * 1e3,
        per_tensor(c)
    );
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = match args.as_slice() {
        [] => 20,
        [flag, n] if flag == "--runs" => n.parse().context("--runs takes a number")?,
        _ => {
            eprintln!("usage: validate-bench [--runs N]");
            std::process::exit(2);
        }
    };
    if runs == 0 {
        bail!("--runs must be positive");
    }
    println!("{}", adapter_bench::machine());
    println!("best of {runs} runs: parse the base's safetensors header + validate");
    let layers_1000 = (1000 - 1) / PER_LAYER; // 111 layers → 1,000 tensors
    let small_10 = measure(1, 64, 172, runs)?;
    let large_10 = measure(1, 8192, 28672, runs)?;
    let small_1000 = measure(layers_1000, 64, 172, runs)?;
    let large_1000 = measure(layers_1000, 8192, 28672, runs)?;
    for c in [&small_10, &large_10, &small_1000, &large_1000] {
        print(c);
    }
    let ratio = |a: &Case, b: &Case| a.best.as_secs_f64() / b.best.as_secs_f64();
    println!(
        "1,000 vs 10 tensors: {:.1}× the time for {}× the tensors (per-tensor cost {:.2} vs {:.2} µs)",
        ratio(&small_1000, &small_10),
        small_1000.tensors / small_10.tensors,
        per_tensor(&small_1000),
        per_tensor(&small_10)
    );
    let marginal = (small_1000.best.as_secs_f64() - small_10.best.as_secs_f64()) * 1e6
        / (small_1000.tensors - small_10.tensors) as f64;
    println!(
        "marginal cost per base tensor: {marginal:.2} µs; fixed cost per validation (config, \
         patterns, serving rules): ~{:.3} ms",
        (small_10.best.as_secs_f64() * 1e6 - marginal * small_10.tensors as f64) / 1e3
    );
    println!(
        "tensor size (hidden 8192 vs 64, same count): {:.2}× at 10 tensors, {:.2}× at 1,000 (flat: ~1×)",
        ratio(&large_10, &small_10),
        ratio(&large_1000, &small_1000)
    );
    Ok(())
}
