//! Synthetic LoRA / DoRA / rsLoRA adapters shaped for the tiny-llama example, published
//! through the API; evals, yanks and aliases written with SQL (their own endpoints belong
//! to other parts of the registry).

#![allow(dead_code)]

use serde_json::{Value, json};

use crate::common::{TestServer, manifest, tiny_model};

/// tiny-llama: hidden 64, 4 heads of 16, 2 KV heads → k/v project to 32.
fn out_features(module: &str) -> usize {
    match module {
        "k_proj" | "v_proj" => 32,
        _ => 64,
    }
}

/// How to build one adapter.
#[derive(Debug, Clone)]
pub struct Spec {
    pub base_name: &'static str,
    pub r: usize,
    /// `(module path, rank)` e.g. `("model.layers.1.self_attn.q_proj", 64)`.
    pub rank_pattern: Vec<(&'static str, usize)>,
    pub targets: Vec<&'static str>,
    pub dora: bool,
    pub rslora: bool,
}

impl Spec {
    pub fn lora(base_name: &'static str, r: usize, targets: &[&'static str]) -> Self {
        Self {
            base_name,
            r,
            rank_pattern: Vec::new(),
            targets: targets.to_vec(),
            dora: false,
            rslora: false,
        }
    }
}

/// A safetensors file of zeros with these `(name, shape)` F32 tensors.
pub fn safetensors(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let size = shape.iter().product::<usize>() * 4;
        header.insert(
            name.clone(),
            json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size] }),
        );
        offset += size;
    }
    let mut h = Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.resize(out.len() + offset, 0);
    out
}

/// `(adapter_config.json, adapter_model.safetensors)`.
pub fn adapter_files(spec: &Spec) -> (Vec<u8>, Vec<u8>) {
    let rank_pattern: serde_json::Map<String, Value> = spec
        .rank_pattern
        .iter()
        .map(|(k, r)| ((*k).to_owned(), json!(r)))
        .collect();
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": spec.base_name,
        "r": spec.r,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "target_modules": spec.targets,
        "rank_pattern": rank_pattern,
        "alpha_pattern": {},
        "bias": "none",
        "fan_in_fan_out": false,
        "use_dora": spec.dora,
        "use_rslora": spec.rslora,
        "inference_mode": true,
    });
    let mut tensors = Vec::new();
    for layer in 0..2 {
        for m in &spec.targets {
            let path = format!("model.layers.{layer}.self_attn.{m}");
            let r = spec
                .rank_pattern
                .iter()
                .find(|(k, _)| *k == path)
                .map_or(spec.r, |(_, r)| *r);
            let prefix = format!("base_model.model.{path}");
            tensors.push((format!("{prefix}.lora_A.weight"), vec![r, 64]));
            tensors.push((format!("{prefix}.lora_B.weight"), vec![out_features(m), r]));
            if spec.dora {
                tensors.push((
                    format!("{prefix}.lora_magnitude_vector"),
                    vec![out_features(m)],
                ));
            }
        }
    }
    (
        serde_json::to_vec_pretty(&config).unwrap(),
        safetensors(&tensors),
    )
}

/// Upload the files of `spec` and publish them as `repo@version` with `metadata`; returns
/// the `VersionInfo`.
pub async fn publish(
    s: &TestServer,
    repo: &str,
    version: &str,
    spec: &Spec,
    metadata: Value,
) -> Value {
    let r = try_publish(s, repo, version, spec, metadata).await;
    assert_eq!(
        r.status,
        201,
        "{}: publishing {repo}@{version}: {}",
        s.stack,
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

pub async fn try_publish(
    s: &TestServer,
    repo: &str,
    version: &str,
    spec: &Spec,
    metadata: Value,
) -> crate::common::Reply {
    let (config, weights) = adapter_files(spec);
    let c = s.upload(&config).await;
    let w = s.upload(&weights).await;
    let m = manifest(
        "adapter",
        vec![
            json!({ "path": "adapter_config.json", "size": config.len(), "digest": c.to_string() }),
            json!({ "path": "adapter_model.safetensors", "size": weights.len(), "digest": w.to_string() }),
        ],
        metadata,
    );
    s.publish("adapters", repo, version, &m).await
}

/// The id of `kind` `ns/name@version`.
pub async fn version_id(s: &TestServer, kind: &str, repo: &str, version: &str) -> i64 {
    let (ns, name) = repo.split_once('/').unwrap();
    let row = sqlx::query(
        "SELECT v.id FROM versions v JOIN repositories r ON r.id = v.repository_id \
         WHERE r.kind = $1 AND r.namespace = $2 AND r.name = $3 AND v.version = $4",
    )
    .bind(kind.to_owned())
    .bind(ns.to_owned())
    .bind(name.to_owned())
    .bind(version.to_owned())
    .fetch_one(&s.state.db.pool)
    .await
    .unwrap();
    sqlx::Row::get(&row, 0)
}

/// Append an eval result (the table is append-only: a later row is the latest value).
pub async fn eval(
    s: &TestServer,
    repo: &str,
    version: &str,
    bench: &str,
    metric: &str,
    value: f64,
) {
    let id = version_id(s, "adapter", repo, version).await;
    sqlx::query(
        "INSERT INTO evals (version_id, benchmark, metric, value, higher_is_better, created_at) \
         VALUES ($1, $2, $3, $4, 1, $5)",
    )
    .bind(id)
    .bind(bench.to_owned())
    .bind(metric.to_owned())
    .bind(value)
    .bind(1_700_000_000_i64)
    .execute(&s.state.db.pool)
    .await
    .unwrap();
}

pub async fn yank(s: &TestServer, kind: &str, repo: &str, version: &str, reason: &str) {
    let id = version_id(s, kind, repo, version).await;
    sqlx::query("UPDATE versions SET yanked = 1, yank_reason = $1 WHERE id = $2")
        .bind(reason.to_owned())
        .bind(id)
        .execute(&s.state.db.pool)
        .await
        .unwrap();
}

pub async fn alias(s: &TestServer, kind: &str, repo: &str, alias: &str, version: &str) {
    let (ns, name) = repo.split_once('/').unwrap();
    let row =
        sqlx::query("SELECT id FROM repositories WHERE kind = $1 AND namespace = $2 AND name = $3")
            .bind(kind.to_owned())
            .bind(ns.to_owned())
            .bind(name.to_owned())
            .fetch_one(&s.state.db.pool)
            .await
            .unwrap();
    let repo_id: i64 = sqlx::Row::get(&row, 0);
    sqlx::query(
        "INSERT INTO aliases (repository_id, alias, version, updated_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(repo_id)
    .bind(alias.to_owned())
    .bind(version.to_owned())
    .bind(1_700_000_000_i64)
    .execute(&s.state.db.pool)
    .await
    .unwrap();
}

/// `ns/name@matched-version` of each search hit, in order.
pub fn hits(v: &Value) -> Vec<String> {
    v["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("no repositories: {v}"))
        .iter()
        .map(|r| {
            format!(
                "{}/{}@{}",
                r["namespace"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                r["matched"]["version"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

pub const QKV: &[&str] = &["q_proj", "k_proj", "v_proj"];

/// Identities of the seeded base model.
pub struct Seeded {
    pub model_content: String,
    pub model_shape: String,
}

/// The seeded catalogue (see server/tests/search.rs for what each entry is for).
pub async fn catalogue(s: &TestServer) -> Seeded {
    let m = tiny_model(s).await;
    let r = s.publish("models", "acme/llama", "1.0.0", &m).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let model = r.json();
    let on_llama = json!({ "base": { "reference": "acme/llama@1.0.0" } });
    let with = |labels: Value| {
        let mut m = on_llama.clone();
        m["labels"] = labels;
        m
    };
    let base_b = "org/base-b";
    publish(
        s,
        "acme/alpha",
        "1.0.0",
        &Spec::lora("example/tiny-llama", 8, &["q_proj", "v_proj"]),
        with(json!({"team": "search"})),
    )
    .await;
    publish(
        s,
        "acme/alpha",
        "1.1.0",
        &Spec::lora("example/tiny-llama", 16, QKV),
        with(json!({"team": "search"})),
    )
    .await;
    let mut beta = Spec::lora(
        "example/tiny-llama",
        4,
        &["q_proj", "k_proj", "v_proj", "o_proj"],
    );
    beta.dora = true;
    publish(
        s,
        "acme/beta",
        "1.0.0",
        &beta,
        with(json!({"team": "infra"})),
    )
    .await;
    let mut gamma = Spec::lora(base_b, 32, &["q_proj", "v_proj"]);
    gamma.rslora = true;
    gamma.rank_pattern = vec![("model.layers.1.self_attn.q_proj", 64)];
    publish(s, "acme/gamma", "1.0.0", &gamma, json!({})).await;
    let mut delta = Spec::lora(base_b, 8, &["o_proj"]);
    delta.dora = true;
    delta.rslora = true;
    publish(s, "other/delta", "1.0.0", &delta, json!({})).await;
    publish(
        s,
        "other/delta",
        "2.0.0",
        &Spec::lora(base_b, 2, &["o_proj"]),
        json!({}),
    )
    .await;
    yank(s, "adapter", "other/delta", "2.0.0", "broken").await;
    publish(
        s,
        "other/eps",
        "1.0.0",
        &Spec::lora(base_b, 8, &["q_proj"]),
        json!({}),
    )
    .await;
    publish(
        s,
        "other/eps",
        "1.1.0",
        &Spec::lora(base_b, 8, &["q_proj"]),
        json!({"labels": {"stage": "prod"}}),
    )
    .await;

    eval(s, "acme/alpha", "1.0.0", "mmlu", "acc", 0.55).await;
    eval(s, "acme/alpha", "1.1.0", "mmlu", "acc", 0.62).await;
    eval(s, "acme/alpha", "1.1.0", "mmlu", "acc", 0.64).await;
    eval(s, "acme/alpha", "1.1.0", "task", "f1", 0.8).await;
    eval(s, "acme/beta", "1.0.0", "mmlu", "acc", 0.70).await;
    // Gamma once scored 0.9; its latest value is 0.58: filters see the latest only.
    eval(s, "acme/gamma", "1.0.0", "mmlu", "acc", 0.9).await;
    eval(s, "acme/gamma", "1.0.0", "mmlu", "acc", 0.58).await;
    Seeded {
        model_content: model["summary"]["content_digest"]
            .as_str()
            .unwrap()
            .to_owned(),
        model_shape: model["summary"]["shape_fingerprint"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

/// `ns/name@matched` of `GET /v1/adapters?{query}`.
pub async fn find(s: &TestServer, query: &str) -> Vec<String> {
    let r = s.get(&format!("/v1/adapters?{query}")).await;
    assert_eq!(
        r.status,
        200,
        "{}: {query}: {}",
        s.stack,
        String::from_utf8_lossy(&r.body)
    );
    hits(&r.json())
}
