//! Lineage: an adapter's base edge written at publish, reverse queries (adapters on a
//! model, versions derived from an adapter), the chain view, loops, refused input.

mod common;
mod seed;

use common::{TestServer, manifest, stacks, tiny_model, upload_dir};
use seed::{Spec, publish, version_id};
use serde_json::{Value, json};

async fn lineage(s: &TestServer, kind: &str, repo_version: &str) -> Value {
    let (repo, version) = repo_version.split_once('@').unwrap();
    let r = s
        .get(&format!("/v1/{kind}/{repo}/versions/{version}/lineage"))
        .await;
    assert_eq!(
        r.status,
        200,
        "{}: {}",
        s.stack,
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// `relation:ns/name@version` (or `relation:?` for an unregistered end) of each node.
fn ends(nodes: &Value) -> Vec<String> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| match n["namespace"].as_str() {
            Some(ns) => format!(
                "{}:{}/{}@{}",
                n["relation"].as_str().unwrap(),
                ns,
                n["name"].as_str().unwrap(),
                n["version"].as_str().unwrap()
            ),
            None => format!("{}:?", n["relation"].as_str().unwrap()),
        })
        .collect()
}

async fn add_lineage(s: &TestServer, kind: &str, repo_version: &str, row: Value) {
    let (repo, version) = repo_version.split_once('@').unwrap();
    let id = version_id(s, kind, repo, version).await;
    let text = |k: &str| row[k].as_str().map(str::to_owned);
    sqlx::query(
        "INSERT INTO lineage (version_id, relation, kind, reference, manifest_digest, \
         content_digest, shape_fingerprint, recipe) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(text("relation").unwrap())
    .bind(text("kind"))
    .bind(text("reference"))
    .bind(text("manifest_digest"))
    .bind(text("content_digest"))
    .bind(text("shape_fingerprint"))
    .bind(row.get("recipe").map(Value::to_string))
    .execute(&s.state.db.pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn base_edges_reverse_queries_and_chains() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let m = tiny_model(&s).await;
        let model = s.publish("models", "acme/llama", "1.0.0", &m).await.json();
        let content = model["summary"]["content_digest"]
            .as_str()
            .unwrap()
            .to_owned();
        let shape = model["summary"]["shape_fingerprint"]
            .as_str()
            .unwrap()
            .to_owned();
        let model_digest = model["manifest_digest"].as_str().unwrap().to_owned();
        let spec = Spec::lora("example/tiny-llama", 8, &["q_proj", "v_proj"]);
        // By reference, by content digest only, by name only.
        let alpha = publish(
            &s,
            "acme/alpha",
            "1.0.0",
            &spec,
            json!({"base": {"reference": "acme/llama@^1"}}),
        )
        .await;
        publish(
            &s,
            "acme/beta",
            "1.0.0",
            &spec,
            json!({"base": {"content_digest": content}}),
        )
        .await;
        publish(&s, "acme/gamma", "1.0.0", &spec, json!({})).await;

        // The adapter's parent is the registered model, pinned.
        let l = lineage(&s, "adapters", "acme/alpha@1.0.0").await;
        assert_eq!(
            ends(&l["parents"]),
            ["base:acme/llama@1.0.0"],
            "{stack}: {l}"
        );
        let p = &l["parents"][0];
        assert_eq!(p["kind"], "model");
        assert_eq!(p["reference"], "acme/llama@1.0.0");
        assert_eq!(p["manifest_digest"], model_digest.as_str());
        assert_eq!(p["content_digest"], content.as_str());
        assert_eq!(p["shape_fingerprint"], shape.as_str());
        assert_eq!(
            ends(&l["chain"]),
            ["self:acme/alpha@1.0.0", "base:acme/llama@1.0.0"]
        );
        assert_eq!(ends(&l["children"]), Vec::<String>::new());
        // Known by content digest only: still resolved to the registered model.
        let l = lineage(&s, "adapters", "acme/beta@1.0.0").await;
        assert_eq!(
            ends(&l["parents"]),
            ["base:acme/llama@1.0.0"],
            "{stack}: {l}"
        );
        // Known by name only: no edge (the name is a searchable fact instead).
        let l = lineage(&s, "adapters", "acme/gamma@1.0.0").await;
        assert_eq!(ends(&l["parents"]), Vec::<String>::new(), "{stack}: {l}");
        assert_eq!(ends(&l["chain"]), ["self:acme/gamma@1.0.0"]);

        // Which adapters target this model: by reference and by content digest.
        let l = lineage(&s, "models", "acme/llama@1.0.0").await;
        assert_eq!(
            ends(&l["children"]),
            ["base:acme/alpha@1.0.0", "base:acme/beta@1.0.0"],
            "{stack}: {l}"
        );
        assert_eq!(l["children"][0]["kind"], "adapter");
        assert_eq!(ends(&l["parents"]), Vec::<String>::new());

        // A merged model (rows as the merge job writes them): derived from alpha.
        let files = upload_dir(
            &s,
            "tiny-llama",
            &[
                "config.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "model.safetensors.index.json",
            ],
        )
        .await;
        let merged = manifest("model", files, json!({"note": "merged"}));
        assert_eq!(
            s.publish("models", "acme/llama-alpha", "1.0.0", &merged)
                .await
                .status,
            201
        );
        add_lineage(
            &s,
            "model",
            "acme/llama-alpha@1.0.0",
            json!({
                "relation": "input", "kind": "model", "reference": "acme/llama@1.0.0",
                "manifest_digest": model_digest, "content_digest": content,
            }),
        )
        .await;
        add_lineage(
            &s,
            "model",
            "acme/llama-alpha@1.0.0",
            json!({
                "relation": "input", "kind": "adapter", "reference": "acme/alpha@1.0.0",
                "manifest_digest": alpha["manifest_digest"],
                "recipe": {"job": "merge", "scale": 1.0},
            }),
        )
        .await;
        let l = lineage(&s, "adapters", "acme/alpha@1.0.0").await;
        assert_eq!(
            ends(&l["children"]),
            ["input:acme/llama-alpha@1.0.0"],
            "{stack}: {l}"
        );
        assert_eq!(l["children"][0]["kind"], "model");
        let l = lineage(&s, "models", "acme/llama-alpha@1.0.0").await;
        assert_eq!(
            ends(&l["parents"]),
            ["input:acme/llama@1.0.0", "input:acme/alpha@1.0.0"],
            "{stack}: {l}"
        );
        assert_eq!(
            l["parents"][1]["recipe"],
            json!({"job": "merge", "scale": 1.0})
        );
        // The chain follows the model input.
        assert_eq!(
            ends(&l["chain"]),
            ["self:acme/llama-alpha@1.0.0", "input:acme/llama@1.0.0"]
        );

        // An adapter trained on the merged model: a three-step chain.
        publish(
            &s,
            "acme/delta",
            "1.0.0",
            &spec,
            json!({"base": {"reference": "acme/llama-alpha@1.0.0"}}),
        )
        .await;
        let l = lineage(&s, "adapters", "acme/delta@1.0.0").await;
        assert_eq!(
            ends(&l["chain"]),
            [
                "self:acme/delta@1.0.0",
                "base:acme/llama-alpha@1.0.0",
                "input:acme/llama@1.0.0"
            ],
            "{stack}: {l}"
        );
        // An unregistered parent ends the chain, with what the row knows.
        add_lineage(
            &s,
            "model",
            "acme/llama@1.0.0",
            json!({
                "relation": "input", "kind": "model", "reference": "hf/llama@2.0.0",
                "content_digest": format!("sha256:{}", "ab".repeat(32)),
            }),
        )
        .await;
        let l = lineage(&s, "adapters", "acme/delta@1.0.0").await;
        assert_eq!(ends(&l["chain"]).len(), 4, "{stack}: {l}");
        let last = &l["chain"][3];
        assert_eq!(last["reference"], "hf/llama@2.0.0");
        assert!(last.get("namespace").is_none(), "{last}");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loops_end_and_bad_input_is_refused() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let spec = Spec::lora("x", 8, &["q_proj"]);
        let a = publish(&s, "acme/a", "1.0.0", &spec, json!({})).await;
        let b = publish(&s, "acme/b", "1.0.0", &spec, json!({"note": "b"})).await;
        assert_ne!(a["manifest_digest"], b["manifest_digest"]);
        add_lineage(&s, "adapter", "acme/a@1.0.0", json!({"relation": "input", "kind": "adapter", "manifest_digest": b["manifest_digest"]})).await;
        add_lineage(&s, "adapter", "acme/b@1.0.0", json!({"relation": "input", "kind": "adapter", "manifest_digest": a["manifest_digest"]})).await;
        let l = lineage(&s, "adapters", "acme/a@1.0.0").await;
        assert_eq!(
            ends(&l["chain"]),
            [
                "self:acme/a@1.0.0",
                "input:acme/b@1.0.0",
                "input:acme/a@1.0.0"
            ],
            "{stack}: a loop ends where it closes"
        );
        assert_eq!(ends(&l["children"]), ["input:acme/b@1.0.0"]);

        s.get("/v1/adapters/acme/a/versions/9.9.9/lineage")
            .await
            .error(404, "version_not_found");
        // No model repository of that name: the same answer as the version route gives.
        s.get("/v1/models/acme/a/versions/1.0.0/lineage")
            .await
            .error(404, "repository_not_found");
        s.get("/v1/adapters/acme/a/versions/one/lineage")
            .await
            .error(400, "invalid_version");
        s.get("/v1/adapters/ACME/a/versions/1.0.0/lineage")
            .await
            .error(400, "invalid_name");
        s.stop().await;
    }
}
