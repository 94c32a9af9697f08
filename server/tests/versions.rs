//! Publishing and reading versions: adapter summary, idempotency, conflicts, missing blobs,
//! concurrency, models (with files and headers-only), base references, resolve, listing.

mod common;

use std::sync::Arc;

use adapter_core::digest::Digest;
use common::{TestServer, manifest, stacks, tiny_adapter, tiny_model, upload_dir};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_adapter_summary_idempotency_and_conflict() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let m = tiny_adapter(&s, json!({"training": {"epochs": 3}})).await;
        let r = s.publish("adapters", "acme/bot", "1.0.0", &m).await;
        assert_eq!(
            r.status,
            201,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let info = r.json();
        let sum = &info["summary"];
        assert_eq!(sum["r"], 8, "{sum}");
        assert_eq!(sum["lora_alpha"], 16.0, "{sum}");
        assert_eq!(sum["peft_type"], "LORA");
        assert!(sum["module_count"].as_u64().unwrap() > 0, "{sum}");
        assert!(
            sum["target_modules"]
                .as_array()
                .unwrap()
                .contains(&json!("q_proj")),
            "{sum}"
        );
        assert!(sum["base"]["name_or_path"].is_string(), "{sum}");
        assert_eq!(info["version"], "1.0.0");
        assert_eq!(info["kind"], "adapter");
        let digest = info["manifest_digest"].as_str().unwrap().to_owned();

        // Identical content again (different key order / whitespace): 200, same digest.
        let again = s.publish("adapters", "acme/bot", "1.0.0", &m).await;
        assert_eq!(again.status, 200, "{stack}");
        assert_eq!(again.json()["manifest_digest"], digest);

        // Other content under the same version: 409 with the existing digest.
        let mut other = m.clone();
        other["metadata"] = json!({"training": {"epochs": 4}});
        let c = s.publish("adapters", "acme/bot", "1.0.0", &other).await;
        let e = c.error(409, "version_exists");
        assert_eq!(e["details"]["manifest_digest"], digest);

        let got = s.get("/v1/adapters/acme/bot/versions/1.0.0").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.json(), info, "{stack}: GET equals the publish answer");
        s.get("/v1/adapters/acme/bot/versions/2.0.0")
            .await
            .error(404, "version_not_found");
        s.get("/v1/adapters/acme/nobot/versions/1.0.0")
            .await
            .error(404, "repository_not_found");
        s.get("/v1/models/acme/bot/versions/1.0.0")
            .await
            .error(404, "repository_not_found");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_blobs_kind_mismatch_and_bad_adapters() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let ghost = Digest::of_bytes(b"never uploaded");
        let ghost2 = Digest::of_bytes(b"never uploaded either");
        let m = manifest(
            "adapter",
            vec![
                json!({"path": "adapter_config.json", "size": 3, "digest": ghost}),
                json!({"path": "adapter_model.safetensors", "size": 4, "digest": ghost2}),
            ],
            json!({}),
        );
        let e = s
            .publish("adapters", "acme/bot", "1.0.0", &m)
            .await
            .error(400, "missing_blobs");
        let missing = e["details"]["missing"].as_array().unwrap().clone();
        assert_eq!(missing.len(), 2, "{e}");
        assert!(missing.contains(&json!(ghost)) && missing.contains(&json!(ghost2)));

        let good = tiny_adapter(&s, json!({})).await;
        s.publish("models", "acme/bot", "1.0.0", &good)
            .await
            .error(400, "kind_mismatch");

        // Declared size differs from the stored blob.
        let mut lying = good.clone();
        lying["files"][0]["size"] = json!(1);
        s.publish("adapters", "acme/bot", "1.0.0", &lying)
            .await
            .error(400, "size_mismatch");

        // A config that is not an adapter config.
        let junk = s.upload(b"{\"r\": \"eight\"}").await;
        let mut bad = good.clone();
        bad["files"][0] = json!({"path": "adapter_config.json", "size": 14, "digest": junk});
        s.publish("adapters", "acme/bot", "1.0.0", &bad)
            .await
            .error(422, "invalid_adapter");

        // Weights that are not safetensors.
        let not_st = s.upload(b"\xff\xff\xff\xff\xff\xff\xff\xffjunk").await;
        let mut bad = good.clone();
        bad["files"][1] =
            json!({"path": "adapter_model.safetensors", "size": 12, "digest": not_st});
        let e = s
            .publish("adapters", "acme/bot", "1.0.0", &bad)
            .await
            .error(422, "invalid_adapter");
        assert_eq!(e["details"]["code"], "header_too_large", "{e}");

        // No adapter_config.json at all.
        let mut bad = good.clone();
        bad["files"] = json!([good["files"][1]]);
        s.publish("adapters", "acme/bot", "1.0.0", &bad)
            .await
            .error(422, "invalid_adapter");

        // Nothing was created by any of these.
        s.get("/v1/adapters/acme/bot")
            .await
            .error(404, "repository_not_found");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn fifty_concurrent_publishes_make_exactly_one_version() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = Arc::new(TestServer::start(&backend).await);
        let m = tiny_adapter(&s, json!({})).await;
        let mut other = m.clone();
        other["metadata"] = json!({"note": "other"});
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = s.clone();
            let body = if i % 5 == 4 { other.clone() } else { m.clone() };
            tasks.push(tokio::spawn(async move {
                s.publish("adapters", "race/bot", "1.0.0", &body)
                    .await
                    .status
            }));
        }
        let mut counts = std::collections::BTreeMap::new();
        for t in tasks {
            *counts.entry(t.await.unwrap()).or_insert(0) += 1;
        }
        assert_eq!(counts.get(&201), Some(&1), "{stack}: {counts:?}");
        assert_eq!(
            counts.values().sum::<i32>(),
            50,
            "{stack}: only 201/200/409 expected: {counts:?}"
        );
        assert!(
            counts.keys().all(|k| [200, 201, 409].contains(k)),
            "{stack}: {counts:?}"
        );
        let list = s.get("/v1/adapters/race/bot/versions").await.json();
        assert_eq!(list["versions"].as_array().unwrap().len(), 1, "{stack}");
        Arc::try_unwrap(s).ok().unwrap().stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resolve_list_and_search() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let mut digests = std::collections::HashMap::new();
        for (i, v) in ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1", "0.9.0"]
            .iter()
            .enumerate()
        {
            let m = tiny_adapter(&s, json!({"build": i})).await;
            let r = s.publish("adapters", "acme/bot", v, &m).await;
            assert_eq!(r.status, 201, "{stack} {v}");
            digests.insert(*v, r.json()["manifest_digest"].as_str().unwrap().to_owned());
        }
        let versions: Vec<String> =
            s.get("/v1/adapters/acme/bot/versions").await.json()["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].as_str().unwrap().to_owned())
                .collect();
        assert_eq!(
            versions,
            ["2.0.0-rc.1", "1.10.0", "1.2.0", "1.0.0", "0.9.0"],
            "semver order"
        );

        let resolve = |sel: &str| format!("/v1/adapters/acme/bot/resolve/{sel}");
        let latest = s.get("/v1/adapters/acme/bot/resolve").await.json();
        assert_eq!(
            latest["version"], "1.10.0",
            "{stack}: latest skips the pre-release"
        );
        assert_eq!(s.get(&resolve("1.2.0")).await.json()["version"], "1.2.0");
        assert_eq!(s.get(&resolve("%5E1.2")).await.json()["version"], "1.10.0");
        assert_eq!(s.get(&resolve("~1.2")).await.json()["version"], "1.2.0");
        assert_eq!(
            s.get(&resolve("2.0.0-rc.1")).await.json()["version"],
            "2.0.0-rc.1"
        );
        let by_digest = s.get(&resolve(&digests["0.9.0"])).await.json();
        assert_eq!(by_digest["version"], "0.9.0");
        assert_eq!(by_digest["manifest_digest"], digests["0.9.0"]);
        assert_eq!(by_digest["yanked"], false);
        s.get(&resolve("3.0.0")).await.error(404, "no_match");
        s.get(&resolve("%5E5")).await.error(404, "no_match");
        s.get(&resolve("prod")).await.error(404, "no_match");
        s.get(&resolve("%3E%3Dx"))
            .await
            .error(400, "invalid_selector");
        s.get(&resolve("sha256:abc"))
            .await
            .error(400, "invalid_selector");
        s.get("/v1/adapters/acme/none/resolve")
            .await
            .error(404, "repository_not_found");

        let info = s.get("/v1/adapters/acme/bot").await.json();
        assert_eq!(info["version_count"], 5);
        assert_eq!(info["latest"], "1.10.0");

        // Listing, filters and paging.
        for repo in ["acme/alpha", "acme/beta", "other/alpha-two"] {
            let m = tiny_adapter(&s, json!({})).await;
            assert_eq!(s.publish("adapters", repo, "1.0.0", &m).await.status, 201);
        }
        let names = |v: &Value| -> Vec<String> {
            v["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r["namespace"].as_str().unwrap(),
                        r["name"].as_str().unwrap()
                    )
                })
                .collect()
        };
        let all = s.get("/v1/adapters").await.json();
        assert_eq!(
            names(&all),
            ["acme/alpha", "acme/beta", "acme/bot", "other/alpha-two"]
        );
        assert!(all.get("next_cursor").is_none());
        let acme = s.get("/v1/adapters?namespace=acme&limit=2").await.json();
        assert_eq!(names(&acme), ["acme/alpha", "acme/beta"]);
        let cursor = acme["next_cursor"].as_str().unwrap();
        let page2 = s
            .get(&format!(
                "/v1/adapters?namespace=acme&limit=2&cursor={cursor}"
            ))
            .await
            .json();
        assert_eq!(names(&page2), ["acme/bot"]);
        assert!(page2.get("next_cursor").is_none());
        assert_eq!(
            names(&s.get("/v1/adapters?q=ALPHA").await.json()),
            ["acme/alpha", "other/alpha-two"]
        );
        assert_eq!(
            names(&s.get("/v1/adapters?q=%25").await.json()),
            Vec::<String>::new()
        );
        assert_eq!(
            names(&s.get("/v1/models").await.json()),
            Vec::<String>::new()
        );
        s.get("/v1/adapters?cursor=zz")
            .await
            .error(400, "invalid_cursor");
        s.get("/v1/adapters?limit=1000")
            .await
            .error(400, "invalid_query");
        s.get("/v1/adapters?limit=-1")
            .await
            .error(400, "invalid_query");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn models_with_files_headers_only_and_base_references() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let m = tiny_model(&s).await;
        let r = s.publish("models", "acme/tiny-llama", "1.0.0", &m).await;
        assert_eq!(
            r.status,
            201,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let sum = r.json()["summary"].clone();
        // Published in docs/FORMATS.md for examples/tiny-llama.
        let content = "sha256:53b64cbd21c5af450f9ba0630fa2c377700548497ddd8a23cf8e34b482cdf994";
        let shape = "sha256:34f59a602768df400a5e3b7ce10b92b7792a9f4c74283d42e1fc7db68c8de946";
        assert_eq!(sum["content_digest"], content, "{sum}");
        assert_eq!(sum["shape_fingerprint"], shape, "{sum}");
        assert_eq!(sum["headers_only"], false);
        assert_eq!(sum["model_type"], "llama");
        assert!(sum["tensor_count"].as_u64().unwrap() > 0);

        // Headers-only: the same model from its header blobs and declared digests.
        let dir = common::examples_dir("tiny-llama");
        let mut weights = Vec::new();
        for f in [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ] {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let header_blob = s.upload(&bytes[..8 + n]).await;
            weights.push(json!({
                "path": f, "size": bytes.len(), "sha256": Digest::of_bytes(&bytes),
                "header_blob": header_blob,
            }));
        }
        let files = upload_dir(&s, "tiny-llama", &["config.json"]).await;
        let ho = manifest(
            "model",
            files,
            json!({"headers_only": true, "weights": weights}),
        );
        let r = s
            .publish("models", "acme/tiny-llama-ho", "1.0.0", &ho)
            .await;
        assert_eq!(
            r.status,
            201,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let ho_sum = r.json()["summary"].clone();
        assert_eq!(ho_sum["headers_only"], true);
        assert_eq!(ho_sum["content_digest"], content);
        assert_eq!(ho_sum["shape_fingerprint"], shape);

        // A headers-only weight whose declared size disagrees with its header.
        let mut lying = ho.clone();
        lying["metadata"]["weights"][0]["size"] = json!(12);
        let e = s
            .publish("models", "acme/tiny-llama-ho", "2.0.0", &lying)
            .await
            .error(422, "invalid_model");
        assert_eq!(e["details"]["file"], "model-00001-of-00002.safetensors");

        // A model without weights.
        let cfg_only = manifest(
            "model",
            upload_dir(&s, "tiny-llama", &["config.json"]).await,
            json!({}),
        );
        s.publish("models", "acme/empty", "1.0.0", &cfg_only)
            .await
            .error(422, "invalid_model");

        // Adapter referencing the base: identities are filled in and checked.
        let a = tiny_adapter(&s, json!({"base": {"reference": "acme/tiny-llama@1.0.0"}})).await;
        let r = s.publish("adapters", "acme/bot", "1.0.0", &a).await;
        assert_eq!(
            r.status,
            201,
            "{stack}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let base = r.json()["summary"]["base"].clone();
        assert_eq!(base["content_digest"], content, "{base}");
        assert_eq!(base["shape_fingerprint"], shape);
        assert_eq!(base["reference"], "acme/tiny-llama@1.0.0");
        let wrong = tiny_adapter(
            &s,
            json!({"base": {"reference": "acme/tiny-llama@^1", "shape_fingerprint": content}}),
        )
        .await;
        let e = s
            .publish("adapters", "acme/bot", "1.0.1", &wrong)
            .await
            .error(400, "base_mismatch");
        assert_eq!(e["details"]["field"], "shape_fingerprint");
        let missing = tiny_adapter(&s, json!({"base": {"reference": "acme/nope@1.0.0"}})).await;
        s.publish("adapters", "acme/bot", "1.0.2", &missing)
            .await
            .error(400, "base_mismatch");
        let unknown_field = tiny_adapter(&s, json!({"base": {"colour": "red"}})).await;
        s.publish("adapters", "acme/bot", "1.0.3", &unknown_field)
            .await
            .error(400, "invalid_manifest");
        s.stop().await;
    }
}
