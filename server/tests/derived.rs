//! Jobs that make versions (merge), at the API on both stacks: only jobs write
//! `metadata.derived_from` (so lineage with a recipe is never a claim), a namespace-limited
//! token can neither read another namespace's inputs through a job nor write its output
//! there, and hostile merge and quantise parameters are refused before anything is queued.

mod common;

use common::{
    TestServer, client_with_token, post_job, publish_tiny_model, stacks, tiny_adapter, tiny_model,
    token,
};
use serde_json::json;

async fn queued(s: &TestServer) -> usize {
    s.get("/v1/jobs?kind=merge").await.json()["jobs"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn derived_from_is_written_by_jobs_only() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let mut model = tiny_model(&s).await;
        model["metadata"]["derived_from"] = json!({
            "job": "job_0", "kind": "merge", "inputs": [], "recipe": {"scales": []},
        });
        let r = s.publish("models", "acme/fake", "1.0.0", &model).await;
        let e = r.error(400, "invalid_manifest");
        assert!(
            e["message"].as_str().unwrap().contains("derived_from"),
            "{stack}: {e}"
        );
        let gone = s.get("/v1/models/acme/fake").await;
        assert_eq!(gone.status, 404, "{stack}: nothing was created");
        // GGUF-only models are what quantise jobs make; through the API a model needs
        // safetensors weights (the GGUF reader never sees a caller's bytes).
        let digest = s.upload(b"GGUF\x03\x00\x00\x00").await;
        let gguf = common::manifest(
            "model",
            vec![json!({"path": "model.gguf", "size": 8, "digest": digest.to_string()})],
            json!({}),
        );
        let r = s.publish("models", "acme/fake", "1.0.0", &gguf).await;
        r.error(422, "invalid_model");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_respect_the_namespaces_of_a_token() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let model = tiny_model(&s).await;
        for ns in ["team-a", "team-b"] {
            let r = s
                .publish("models", &format!("{ns}/llama"), "1.0.0", &model)
                .await;
            assert_eq!(r.status, 201);
        }
        let on_b = tiny_adapter(&s, json!({"base": {"reference": "team-b/llama@1.0.0"}})).await;
        assert_eq!(
            s.publish("adapters", "team-a/bot", "1.0.0", &on_b)
                .await
                .status,
            201
        );
        assert_eq!(
            s.publish("adapters", "team-b/bot", "1.0.0", &on_b)
                .await
                .status,
            201
        );
        let a = client_with_token(&token(&s, "a", "write", Some(&["team-a"])).await);
        let merge = |adapter: &str, base: Option<&str>, output: &str| {
            let mut inputs = json!({ "adapter": adapter });
            if let Some(b) = base {
                inputs["base"] = json!(b);
            }
            json!({"kind": "merge", "inputs": inputs, "params": {"output": output}})
        };
        for (body, what) in [
            (
                merge(
                    "team-a/bot@1.0.0",
                    Some("team-a/llama@1.0.0"),
                    "team-b/m@1.0.0",
                ),
                "the output",
            ),
            (
                merge(
                    "team-b/bot@1.0.0",
                    Some("team-a/llama@1.0.0"),
                    "team-a/m@1.0.0",
                ),
                "input `adapter`",
            ),
            // The base the adapter names (team-b) is an input too.
            (
                merge("team-a/bot@1.0.0", None, "team-a/m@1.0.0"),
                "input `base`",
            ),
            (
                json!({"kind": "validate", "inputs": {"adapter": "team-b/bot@1.0.0", "base": "team-a/llama@1.0.0"}}),
                "input `adapter`",
            ),
        ] {
            let e = post_job(&a, &s, &body).await.error(403, "forbidden");
            assert!(
                e["message"].as_str().unwrap().contains(what),
                "{stack}: {body}: {e}"
            );
        }
        assert_eq!(
            queued(&s).await,
            0,
            "{stack}: a refused submit queued nothing"
        );
        // Within its namespace it may.
        let ok = post_job(
            &a,
            &s,
            &merge(
                "team-a/bot@1.0.0",
                Some("team-a/llama@1.0.0"),
                "team-a/m@1.0.0",
            ),
        )
        .await;
        assert_eq!(
            ok.status,
            202,
            "{stack}: {}",
            String::from_utf8_lossy(&ok.body)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_merge_params_are_refused_before_queueing() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish_tiny_model(&s, "acme/llama").await;
        let adapter = tiny_adapter(&s, json!({"base": {"reference": "acme/llama@1.0.0"}})).await;
        assert_eq!(
            s.publish("adapters", "acme/bot", "1.0.0", &adapter)
                .await
                .status,
            201
        );
        for params in [
            json!({}),
            json!({"output": "acme/m@1.0.0", "extra": 1}),
            json!({"output": "acme/m"}),
            json!({"output": "acme/m@^1"}),
            json!({"output": "acme/m@prod"}),
            json!({"output": "../m@1.0.0"}),
            json!({"output": "acme/m@1.0.0", "dtype": "int8"}),
            json!({"output": "acme/m@1.0.0", "dtype": 16}),
            json!({"output": "acme/m@1.0.0", "shard_size": 100}),
            json!({"output": "acme/m@1.0.0", "shard_size": -1}),
            json!({"output": "acme/m@1.0.0", "device": "tpu"}),
            json!({"output": "acme/m@1.0.0", "device": "cuda:x"}),
            json!({"output": "acme/m@1.0.0", "device": "cuda:0"}),
            json!("acme/m@1.0.0"),
        ] {
            let body =
                json!({"kind": "merge", "inputs": {"adapter": "acme/bot@1.0.0"}, "params": params});
            let r = post_job(&s.http, &s, &body).await;
            r.error(400, "invalid_job");
        }
        for params in [
            json!({"output": "acme/q@1.0.0"}),
            json!({"output": "acme/q@1.0.0", "format": "ggml"}),
            json!({"output": "acme/q@1.0.0", "format": "gguf", "quant_type": "q2_k"}),
            json!({"output": "acme/q@1.0.0", "format": "gguf", "double_quant": true}),
            json!({"output": "acme/q@1.0.0", "format": "nf4", "quant_type": "q8_0"}),
            json!({"output": "acme/q@1.0.0", "format": "nf4", "device": "cuda:1"}),
            json!({"output": "acme/q@latest", "format": "nf4"}),
        ] {
            let body = json!({"kind": "quantise", "inputs": {"model": "acme/llama@1.0.0"}, "params": params});
            post_job(&s.http, &s, &body).await.error(400, "invalid_job");
        }
        // An output that exists (and is not this job's work) is refused: 409.
        let body = json!({"kind": "merge", "inputs": {"adapter": "acme/bot@1.0.0"}, "params": {"output": "acme/llama@1.0.0"}});
        post_job(&s.http, &s, &body)
            .await
            .error(409, "version_exists");
        // A model given as the adapter input is not an adapter.
        let body = json!({"kind": "merge", "inputs": {"adapter": "acme/llama@1.0.0"}, "params": {"output": "acme/m@1.0.0"}});
        post_job(&s.http, &s, &body)
            .await
            .error(404, "repository_not_found");
        assert_eq!(queued(&s).await, 0, "{stack}");
    }
}
