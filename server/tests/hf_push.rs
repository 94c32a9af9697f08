//! The Hugging Face Hub protocol's push path (`/hf`, docs/HF.md) on both stacks, over raw
//! HTTP as `huggingface_hub` speaks it: `create_repo`, `preupload`, the LFS batch API and its
//! credential-free upload URLs, NDJSON commits that become versions (which version, which
//! files, the base model a card names), and what is refused (traversal, pickle, broken
//! safetensors, someone else's blob, a stale parent, another namespace) with nothing
//! visible afterwards. (`scripts/check_hf.py` drives the same routes with the real client.)

mod common;

use adapter_core::digest::Digest;
use base64::Engine as _;
use common::{
    Reply, TestServer, client_with_token, examples_dir, publish_tiny_model, stacks, token,
};
use serde_json::{Value, json};

#[path = "hf_push/protocol.rs"]
mod protocol;

use protocol::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_become_versions() {
    for stack in stacks() {
        let at = stack.to_string();
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish_tiny_model(&s, "acme/llama").await;
        let writer = client_with_token(&token(&s, "trainer", "write", Some(&["acme"])).await);
        let (config, weights) = (
            example("adapter_config.json"),
            example("adapter_model.safetensors"),
        );

        // create_repo: checked, answered with the repository's URL.
        let created = post_json(
            &s,
            &writer,
            "/hf/api/repos/create",
            &json!({"name": "bot", "organization": "acme", "private": null}),
        )
        .await
        .expect(200, &at);
        assert!(
            created["url"]
                .as_str()
                .unwrap()
                .ends_with("/hf/models/acme/bot"),
            "{created}"
        );
        post_json(
            &s,
            &writer,
            "/hf/api/repos/create",
            &json!({"name": "bot", "organization": "other"}),
        )
        .await
        .hub_error(403, "forbidden");
        post_json(
            &s,
            &writer,
            "/hf/api/repos/create",
            &json!({"name": "x", "organization": "acme", "type": "dataset"}),
        )
        .await
        .hub_error(400, "unsupported");

        // Created and empty: it exists to the clients, with no files at `main`.
        let empty = s.get("/hf/api/models/acme/bot").await.expect(200, &at);
        assert_eq!(
            (empty["id"].as_str(), empty["sha"].is_null()),
            (Some("acme/bot"), true),
            "{at}: {empty}"
        );
        assert_eq!(empty["siblings"], json!([]));
        s.get("/hf/acme/bot/resolve/main/README.md")
            .await
            .hub_error(404, "EntryNotFound");
        assert_eq!(
            s.get("/hf/api/models/acme/bot/tree/main")
                .await
                .expect(200, &at),
            json!([])
        );
        s.get("/hf/acme/bot/resolve/1.0.0/README.md")
            .await
            .hub_error(404, "RevisionNotFound");
        s.get("/hf/acme/nothing/resolve/main/README.md")
            .await
            .hub_error(404, "RepoNotFound");

        // preupload: every file through LFS.
        let pre = post_json(
            &s,
            &writer,
            "/hf/api/models/acme/bot/preupload/main",
            &json!({"files": [{"path": "adapter_config.json", "size": config.len(), "sample": ""},
                              {"path": "adapter_model.safetensors", "size": weights.len(), "sample": ""}]}),
        )
        .await
        .expect(200, &at);
        assert!(
            pre["files"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["uploadMode"] == "lfs" && f["shouldIgnore"] == false),
            "{pre}"
        );

        // The batch hands out credential-free upload URLs; once uploaded, nothing to do.
        assert!(lfs_upload(&s, &writer, "acme/bot", &weights).await, "{at}");
        assert!(
            !lfs_upload(&s, &writer, "acme/bot", &weights).await,
            "{at}: uploaded twice"
        );

        // The first commit to main is 1.0.0; the adapter config names acme/llama? No: it
        // names example/tiny-llama (not registered), so the card's base_model decides.
        let first = commit(
            &s,
            &writer,
            "acme/bot",
            "main",
            &[
                header_line("First", None),
                inline_line("adapter_config.json", &config),
                lfs_line("adapter_model.safetensors", &weights),
                inline_line("README.md", CARD),
            ],
        )
        .await
        .expect(200, &at);
        assert_eq!(first["version"], "1.0.0", "{at}: {first}");
        let commit1 = first["commitOid"].as_str().unwrap().to_owned();
        assert!(
            first["commitUrl"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/hf/models/acme/bot/commit/{commit1}"))
        );
        let v1 = s
            .get("/v1/adapters/acme/bot/versions/1.0.0")
            .await
            .expect(200, &at);
        assert!(
            v1["manifest_digest"].as_str().unwrap()[7..].starts_with(&commit1),
            "{at}"
        );
        assert_eq!(
            v1["manifest"]["metadata"]["commit"]["summary"], "First",
            "{at}"
        );
        assert_eq!(
            v1["manifest"]["metadata"]["commit"]["description"],
            "First, described"
        );
        assert_eq!(
            v1["summary"]["base"]["reference"], "acme/llama@1.0.0",
            "{at}: {v1}"
        );
        assert!(
            v1["summary"]["base"]["shape_fingerprint"].is_string(),
            "{at}: {v1}"
        );
        // The commit id reads back through the read path.
        let info = s
            .get(&format!("/hf/api/models/acme/bot/revision/{commit1}"))
            .await
            .expect(200, &at);
        assert_eq!(info["sha"], commit1.as_str());

        // Re-sending the same commit to 1.0.0 changes nothing; anything else there is refused
        // (another summary is another manifest: versions are immutable).
        let same = commit(
            &s,
            &writer,
            "acme/bot",
            "1.0.0",
            &[
                header_line("First", None),
                inline_line("adapter_config.json", &config),
                lfs_line("adapter_model.safetensors", &weights),
                inline_line("README.md", CARD),
            ],
        )
        .await
        .expect(200, &at);
        assert_eq!(
            (same["created"].as_bool(), same["commitOid"].as_str()),
            (Some(false), Some(commit1.as_str()))
        );
        commit(
            &s,
            &writer,
            "acme/bot",
            "1.0.0",
            &[header_line("Again", None)],
        )
        .await
        .hub_error(409, "version_exists");

        // A commit starts from main's files: changing the card alone makes 1.0.1 with all three.
        let card2 = b"---\nbase_model: acme/llama\n---\nv2\n";
        let second = commit(
            &s,
            &writer,
            "acme/bot",
            "main",
            &[
                header_line("Card", Some(&commit1)),
                inline_line("README.md", card2),
            ],
        )
        .await
        .expect(200, &at);
        assert_eq!(second["version"], "1.0.1", "{at}");
        let v2 = s
            .get("/v1/adapters/acme/bot/versions/1.0.1")
            .await
            .expect(200, &at);
        let paths: Vec<&str> = v2["manifest"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "README.md",
                "adapter_config.json",
                "adapter_model.safetensors"
            ],
            "{at}"
        );

        // A stale parent is refused (412); a named version is made as named, deletions apply.
        commit(
            &s,
            &writer,
            "acme/bot",
            "main",
            &[
                header_line("Stale", Some(&commit1)),
                inline_line("README.md", b"x"),
            ],
        )
        .await
        .hub_error(412, "parent_mismatch");
        let named = commit(
            &s,
            &writer,
            "acme/bot",
            "2.0.0",
            &[
                header_line("Two", None),
                json!({"key": "deletedFile", "value": {"path": "README.md"}}),
            ],
        )
        .await
        .expect(200, &at);
        assert_eq!(named["version"], "2.0.0");
        let gone = commit(
            &s,
            &writer,
            "acme/bot",
            "main",
            &[
                header_line("Gone", None),
                json!({"key": "deletedFile", "value": {"path": "nope.txt"}}),
            ],
        )
        .await;
        assert_eq!(
            (gone.status, gone.header("x-error-code")),
            (404, Some("EntryNotFound")),
            "{at}"
        );
        assert_eq!(
            versions(&s, "acme/bot").await,
            ["2.0.0", "1.0.1", "1.0.0"],
            "{at}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_pushes_are_refused_and_leave_nothing() {
    for stack in stacks() {
        let at = stack.to_string();
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let writer = client_with_token(&token(&s, "trainer", "write", Some(&["acme"])).await);
        let (config, weights) = (
            example("adapter_config.json"),
            example("adapter_model.safetensors"),
        );
        assert!(lfs_upload(&s, &writer, "acme/bot", &weights).await);

        // Paths: traversal and pickle checkpoints, at preupload and at commit.
        for (path, code) in [
            ("../evil.safetensors", "invalid_path"),
            ("/etc/passwd", "invalid_path"),
            ("a/../../b", "invalid_path"),
            ("adapter_model.bin", "pickle_refused"),
            ("sub/optimizer.pt", "pickle_refused"),
        ] {
            let pre = post_json(
                &s,
                &writer,
                "/hf/api/models/acme/bot/preupload/main",
                &json!({"files": [{"path": path, "size": 3, "sample": ""}]}),
            )
            .await;
            pre.hub_error(400, code);
            assert!(
                pre.header("x-error-message").is_some_and(|m| !m.is_empty()),
                "{at}"
            );
            commit(
                &s,
                &writer,
                "acme/bot",
                "main",
                &[
                    header_line("Hostile", None),
                    inline_line("adapter_config.json", &config),
                    lfs_line("adapter_model.safetensors", &weights),
                    inline_line(path, b"abc"),
                ],
            )
            .await
            .hub_error(400, code);
        }

        // Broken safetensors: uploaded fine (bytes are bytes), refused at commit.
        let mut broken = weights.clone();
        broken[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(lfs_upload(&s, &writer, "acme/bot", &broken).await);
        commit(
            &s,
            &writer,
            "acme/bot",
            "main",
            &[
                header_line("Broken", None),
                inline_line("adapter_config.json", &config),
                lfs_line("adapter_model.safetensors", &broken),
            ],
        )
        .await
        .hub_error(422, "invalid_adapter");
        // Not a PEFT config.
        commit(
            &s,
            &writer,
            "acme/bot",
            "main",
            &[
                header_line("Bad config", None),
                inline_line("adapter_config.json", b"{\"peft_type\": 12}"),
                lfs_line("adapter_model.safetensors", &weights),
            ],
        )
        .await
        .hub_error(422, "invalid_adapter");
        // A card whose metadata is not YAML.
        commit(
            &s,
            &writer,
            "acme/bot",
            "main",
            &[
                header_line("Bad card", None),
                inline_line("adapter_config.json", &config),
                lfs_line("adapter_model.safetensors", &weights),
                inline_line("README.md", b"---\nbase_model: [oops\n---\n"),
            ],
        )
        .await
        .hub_error(400, "invalid_card");
        let yaml = post_json(
            &s,
            &writer,
            "/hf/api/validate-yaml",
            &json!({"content": "---\nbase_model: [oops\n---\n", "repoType": "model"}),
        )
        .await;
        assert_eq!(yaml.status, 400, "{at}");
        assert!(
            yaml.json()["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("YAML"))
        );
        let fine = post_json(
            &s,
            &writer,
            "/hf/api/validate-yaml",
            &json!({"content": "---\nlicense: mit\n---\n", "repoType": "model"}),
        )
        .await
        .expect(200, &at);
        assert_eq!(fine, json!({"errors": [], "warnings": []}));
        // Neither an adapter nor a model; a body that is not NDJSON; pull requests.
        commit(
            &s,
            &writer,
            "acme/bot",
            "main",
            &[
                header_line("Nothing", None),
                inline_line("notes.txt", b"hi"),
            ],
        )
        .await
        .hub_error(400, "invalid_manifest");
        Reply::of(
            writer
                .post(s.u("/hf/api/models/acme/bot/commit/main"))
                .body("{not json")
                .send()
                .await
                .unwrap(),
        )
        .await
        .hub_error(400, "invalid_commit");
        Reply::of(
            writer
                .post(s.u("/hf/api/models/acme/bot/commit/main?create_pr=1"))
                .body(format!("{}\n", header_line("PR", None)))
                .send()
                .await
                .unwrap(),
        )
        .await
        .hub_error(400, "unsupported");
        commit(
            &s,
            &writer,
            "acme/bot",
            "prod",
            &[header_line("Alias", None)],
        )
        .await
        .hub_error(400, "invalid_revision");

        // Someone else's blob: stored by another namespace's push, its digest known here.
        let other = client_with_token(&token(&s, "other", "write", Some(&["other"])).await);
        let secret = b"{\"secret\": true}".to_vec();
        commit(
            &s,
            &other,
            "other/thing",
            "main",
            &[
                header_line("Other", None),
                inline_line("config.json", &secret),
            ],
        )
        .await;
        // acme's batch still asks for the bytes (they prove possession), and its commit
        // cannot name the blob without them.
        let b = batch(&s, &writer, "acme/bot", &secret)
            .await
            .expect(200, &at);
        assert!(
            b["objects"][0]["actions"]["upload"]["href"].is_string(),
            "{at}: {b}"
        );
        commit(
            &s,
            &writer,
            "acme/bot",
            "main",
            &[header_line("Steal", None), lfs_line("config.json", &secret)],
        )
        .await
        .hub_error(400, "missing_blobs");

        // Upload URLs take exactly their bytes, and only with a URL from a batch.
        let href = b["objects"][0]["actions"]["upload"]["href"]
            .as_str()
            .unwrap()
            .to_owned();
        let anon = reqwest::Client::new();
        let put = |body: Vec<u8>| anon.put(&href).body(body).send();
        Reply::of(put(b"{\"secret\": 1234}".to_vec()).await.unwrap())
            .await
            .hub_error(400, "digest_mismatch");
        let mut longer = secret.clone();
        longer.extend_from_slice(&[b' '; 4096]);
        let long = Reply::of(put(longer).await.unwrap()).await;
        assert!(long.status >= 400, "{at}: a longer body was taken");
        let bogus =
            href.rsplit_once('/').unwrap().0.to_owned() + "/00000000-0000-4000-8000-000000000000";
        Reply::of(anon.put(&bogus).body(secret.clone()).send().await.unwrap())
            .await
            .hub_error(404, "upload_not_found");
        let v1_session = s
            .http
            .post(s.u("/v1/uploads"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let v1_id = v1_session.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let v1_href = href.rsplit_once('/').unwrap().0.to_owned() + "/" + &v1_id;
        Reply::of(
            anon.put(&v1_href)
                .body(secret.clone())
                .send()
                .await
                .unwrap(),
        )
        .await
        .hub_error(404, "upload_not_found");

        // A client that would push through Xet is told the registry speaks LFS.
        let xet = Reply::of(
            writer
                .get(s.u("/hf/api/models/acme/bot/xet-write-token/main"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(
            xet.hub_error(501, "xet_unsupported")["error"]
                .as_str()
                .unwrap()
                .contains("HF_HUB_DISABLE_XET=1")
        );

        // Other namespaces and anonymous callers.
        commit(
            &s,
            &other,
            "acme/bot",
            "main",
            &[header_line("Theirs", None)],
        )
        .await
        .hub_error(403, "forbidden");
        batch(&s, &other, "acme/bot", &weights)
            .await
            .hub_error(403, "forbidden");
        commit(&s, &anon, "acme/bot", "main", &[header_line("Anon", None)])
            .await
            .hub_error(401, "unauthenticated");

        // Nothing of it is visible.
        assert!(versions(&s, "acme/bot").await.is_empty(), "{at}");
        let r = s.get("/hf/api/models/acme/bot").await;
        assert_eq!(
            (r.status, r.header("x-error-code")),
            (404, Some("RepoNotFound")),
            "{at}"
        );
    }
}
