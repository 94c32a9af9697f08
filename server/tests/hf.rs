//! The Hugging Face Hub protocol's read path (`/hf`, docs/HF.md) on both stacks: the headers
//! `huggingface_hub` reads, every kind of revision, ranges, the model info, the tree and
//! paths-info, the error codes the clients act on, and the same tokens and namespaces as
//! `/v1`. (`scripts/check_hf.py` drives the same routes with the real client.)

mod common;

use common::{
    Reply, TestServer, client_with_token, publish_tiny_model, stacks, tiny_adapter, token,
};
use serde_json::{Value, json};

async fn hf(s: &TestServer, client: &reqwest::Client, method: &str, path: &str) -> Reply {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    Reply::of(client.request(m, s.u(path)).send().await.unwrap()).await
}

fn header(r: &Reply, name: &str) -> String {
    r.header(name).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_read_path_speaks_the_hub_protocol() {
    for stack in stacks() {
        let at = stack.to_string();
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish_tiny_model(&s, "acme/llama").await;
        let a = tiny_adapter(&s, json!({"base": {"reference": "acme/llama@1.0.0"}})).await;
        let published = s
            .publish("adapters", "acme/bot", "1.0.0", &a)
            .await
            .expect(201, &at);
        let moved = Reply::of(
            s.http
                .put(s.u("/v1/adapters/acme/bot/aliases/prod"))
                .json(&json!({"version": "1.0.0"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        moved.expect(201, &at);
        let digest = published["manifest_digest"].as_str().unwrap();
        let commit = &digest["sha256:".len()..][..40];
        let config = published["manifest"]["files"][0].clone();
        assert_eq!(config["path"], "adapter_config.json");
        let hex = &config["digest"].as_str().unwrap()["sha256:".len()..];
        let size = config["size"].as_u64().unwrap();

        // One file at every kind of revision: the same bytes and headers.
        let mut bodies = Vec::new();
        for rev in ["1.0.0", "prod", "%5E1", "main", commit] {
            let path = format!("/hf/acme/bot/resolve/{rev}/adapter_config.json");
            let head = hf(&s, &s.http, "HEAD", &path).await;
            assert_eq!(head.status, 200, "{at}: HEAD {path}");
            assert_eq!(header(&head, "content-length"), size.to_string(), "{at}");
            assert_eq!(header(&head, "etag"), format!("\"{hex}\""), "{at}");
            assert_eq!(header(&head, "x-linked-etag"), format!("\"{hex}\""), "{at}");
            assert_eq!(header(&head, "x-linked-size"), size.to_string(), "{at}");
            assert_eq!(header(&head, "x-repo-commit"), commit, "{at}: {rev}");
            assert_eq!(header(&head, "accept-ranges"), "bytes", "{at}");
            let get = hf(&s, &s.http, "GET", &path).await;
            assert_eq!(get.status, 200, "{at}: GET {path}");
            bodies.push(get.body);
        }
        assert!(
            bodies
                .iter()
                .all(|b| *b == bodies[0] && b.len() as u64 == size)
        );
        let ranged = Reply::of(
            s.http
                .get(s.u("/hf/acme/bot/resolve/main/adapter_config.json"))
                .header("range", "bytes=0-9")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(ranged.status, 206, "{at}");
        assert_eq!(ranged.body, bodies[0][..10], "{at}");
        // Models are served too.
        let model = hf(
            &s,
            &s.http,
            "HEAD",
            "/hf/acme/llama/resolve/main/config.json",
        )
        .await;
        assert_eq!(model.status, 200, "{at}");

        // The error codes the clients act on (a bare 404 breaks PEFT's fallbacks).
        for (path, code) in [
            ("/hf/acme/nope/resolve/main/x.json", "RepoNotFound"),
            (
                "/hf/acme/bot/resolve/9.9.9/adapter_config.json",
                "RevisionNotFound",
            ),
            (
                "/hf/acme/bot/resolve/0123456789012345678901234567890123456789/adapter_config.json",
                "RevisionNotFound",
            ),
            (
                "/hf/acme/bot/resolve/main/adapter_model.bin",
                "EntryNotFound",
            ),
            ("/hf/api/models/acme/nope", "RepoNotFound"),
            ("/hf/api/models/acme/bot/revision/nope", "RevisionNotFound"),
        ] {
            hf(&s, &s.http, "GET", path).await.hub_error(404, code);
        }

        // Model info: the commit, the files with their LFS digests, a PEFT adapter's card.
        let info = hf(&s, &s.http, "GET", "/hf/api/models/acme/bot/revision/prod")
            .await
            .expect(200, &at);
        assert_eq!(info["id"], "acme/bot");
        assert_eq!(info["sha"], commit);
        assert_eq!(info["cardData"]["library_name"], "peft");
        assert_eq!(info["cardData"]["base_model"], "acme/llama");
        let siblings: Vec<&str> = info["siblings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rfilename"].as_str().unwrap())
            .collect();
        assert_eq!(
            siblings,
            ["adapter_config.json", "adapter_model.safetensors"]
        );
        assert_eq!(info["siblings"][0]["lfs"]["sha256"], hex);
        let model_info = hf(&s, &s.http, "GET", "/hf/api/models/acme/llama")
            .await
            .expect(200, &at);
        assert_eq!(model_info["cardData"]["library_name"], "transformers");

        // The tree and paths-info.
        let tree = hf(
            &s,
            &s.http,
            "GET",
            &format!("/hf/api/models/acme/bot/tree/{commit}?recursive=true"),
        )
        .await
        .expect(200, &at);
        let paths: Vec<(&str, &str)> = tree
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["type"].as_str().unwrap(), e["path"].as_str().unwrap()))
            .collect();
        assert_eq!(
            paths,
            [
                ("file", "adapter_config.json"),
                ("file", "adapter_model.safetensors")
            ]
        );
        assert_eq!(tree[0]["lfs"]["oid"], hex, "{at}");
        let info = Reply::of(
            s.http
                .post(s.u("/hf/api/models/acme/bot/paths-info/main"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("paths=adapter_config.json&paths=missing.bin")
                .send()
                .await
                .unwrap(),
        )
        .await
        .expect(200, &at);
        let found: Vec<&Value> = info.as_array().unwrap().iter().collect();
        assert_eq!(found.len(), 1, "{at}: {info}");
        assert_eq!(found[0]["path"], "adapter_config.json");

        // The same tokens and namespaces as /v1.
        let anonymous = reqwest::Client::new();
        let path = "/hf/acme/bot/resolve/main/adapter_config.json";
        // Refusals in the Hub's shape too (older clients crash on the `/v1` one).
        let refused = hf(&s, &anonymous, "GET", path).await;
        refused.hub_error(401, "unauthenticated");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"), "{at}");
        let other = client_with_token(&token(&s, "other", "read", Some(&["other"])).await);
        hf(&s, &other, "GET", path)
            .await
            .hub_error(403, "forbidden");
        assert_eq!(
            hf(&s, &other, "GET", "/hf/api/models/acme/bot")
                .await
                .status,
            403,
            "{at}"
        );
        let reader = client_with_token(&token(&s, "reader", "read", Some(&["acme"])).await);
        assert_eq!(hf(&s, &reader, "GET", path).await.status, 200, "{at}");
        s.stop().await;
    }
}
