//! Namespaces are a wall for jobs and blobs, on both stacks: the `/v1/jobs` and `/v1/blobs`
//! routes × anonymous / reader of A / writer of A / writer of A and B / writer of B / admin
//! of A / admin, over jobs and blobs of A only, B only and both; every cell checked for
//! status and content, paging through a list that hides most jobs, and a writer of B
//! pushing a file already stored for A (it uploads, it succeeds, one stored copy).

mod common;
mod seed;

use std::collections::BTreeSet;

use adapter_testkit::{Backend, Stack};
use common::{Reply, TestServer, client_with_token, publish_tiny_model, stacks, token};
use seed::Spec;
use serde_json::{Value, json};

/// A caller of the grid: its client and what it may read.
struct Who {
    name: &'static str,
    http: reqwest::Client,
    /// `None`: anonymous (401 everywhere here).
    reads: Option<&'static [&'static str]>,
}

impl Who {
    fn sees(&self, touched: &[&str]) -> bool {
        self.reads
            .is_some_and(|r| r.contains(&"*") || touched.iter().all(|t| r.contains(t)))
    }
}

/// A caller with a new token of `scope` over `namespaces`.
async fn who(
    s: &TestServer,
    name: &'static str,
    scope: &str,
    namespaces: &'static [&'static str],
) -> Who {
    Who {
        name,
        http: client_with_token(&token(s, &name.replace(" ", "-"), scope, Some(namespaces)).await),
        reads: Some(namespaces),
    }
}

/// A server on `stack` with the tiny base published as `a/llama@1.0.0`.
async fn start_with_a_base(stack: &Stack) -> (Backend, TestServer) {
    let backend = Backend::new(stack);
    let s = TestServer::start(&backend).await;
    publish_tiny_model(&s, "a/llama").await;
    (backend, s)
}

/// The status of `HEAD path` for `who`.
async fn head(who: &Who, s: &TestServer, path: &str) -> u16 {
    who.http
        .head(s.u(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get(who: &Who, s: &TestServer, path: &str) -> Reply {
    Reply::of(who.http.get(s.u(path)).send().await.unwrap()).await
}

/// The adapter `repo@version` (rank `r`) on `base`; returns its weights file.
async fn adapter(s: &TestServer, repo: &str, version: &str, r: usize, base: &str) -> Vec<u8> {
    let spec = Spec::lora("tiny-llama", r, &["q_proj"]);
    let info = seed::publish(
        s,
        repo,
        version,
        &spec,
        json!({"base": {"reference": base}}),
    )
    .await;
    assert_eq!(info["version"], version);
    seed::adapter_files(&spec).1
}

fn digest_of(bytes: &[u8]) -> String {
    adapter_core::digest::Digest::of_bytes(bytes).to_string()
}

/// The id of the validation job of `adapter` (`ns/name@version`).
async fn job_of(s: &TestServer, adapter: &str) -> String {
    let jobs = s.get("/v1/jobs?kind=validate&limit=100").await.json();
    jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["inputs"]["adapter"]["reference"] == adapter)
        .unwrap_or_else(|| panic!("no validation job of {adapter}: {jobs}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn ids(list: &Value) -> Vec<String> {
    list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_and_blobs_are_visible_only_to_callers_who_may_read_them() {
    for stack in stacks() {
        let (_backend, s) = start_with_a_base(&stack).await;
        // The same base in both namespaces: its files are blobs of A and of B.
        publish_tiny_model(&s, "b/llama").await;
        let both_blob = s.get("/v1/models/a/llama/versions/1.0.0").await.json()["manifest"]
            ["files"][0]["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        // Jobs of A only and of B only, interleaved (each adapter's validation), and one
        // touching both (an adapter of A on the base of B).
        let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
        let mut a_weights = Vec::new();
        for i in 0..4usize {
            let v = format!("1.0.{i}");
            let w = adapter(&s, "a/bot", &v, 4 + i, "a/llama@1.0.0").await;
            only_a.push(job_of(&s, &format!("a/bot@{v}")).await);
            if i == 0 {
                a_weights = w;
            }
            adapter(&s, "b/bot", &v, 8 + i, "b/llama@1.0.0").await;
            only_b.push(job_of(&s, &format!("b/bot@{v}")).await);
        }
        adapter(&s, "a/cross", "1.0.0", 16, "b/llama@1.0.0").await;
        let cross = job_of(&s, "a/cross@1.0.0").await;
        adapter(&s, "b/on-a", "1.0.0", 20, "a/llama@1.0.0").await;
        let cross_back = job_of(&s, "b/on-a@1.0.0").await;
        let a_blob = digest_of(&a_weights);
        let b_blob = s.get("/v1/adapters/b/bot/versions/1.0.0").await.json()["manifest"]["files"]
            [1]["digest"]
            .as_str()
            .unwrap()
            .to_owned();

        let callers = [
            Who {
                name: "anonymous",
                http: reqwest::Client::new(),
                reads: None,
            },
            who(&s, "reader of A", "read", &["a"]).await,
            who(&s, "writer of A", "write", &["a"]).await,
            who(&s, "writer of A and B", "write", &["a", "b"]).await,
            who(&s, "writer of B", "write", &["b"]).await,
            who(&s, "admin of A", "admin", &["a"]).await,
            Who {
                name: "admin",
                http: s.http.clone(),
                reads: Some(&["*"]),
            },
        ];
        let jobs: Vec<(&String, Vec<&str>)> = only_a
            .iter()
            .map(|j| (j, vec!["a"]))
            .chain(only_b.iter().map(|j| (j, vec!["b"])))
            .chain([(&cross, vec!["a", "b"]), (&cross_back, vec!["a", "b"])])
            .collect();
        let blobs = [
            (&a_blob, vec!["a"]),
            (&b_blob, vec!["b"]),
            (&both_blob, vec!["a", "b"]),
        ];

        for who in &callers {
            let at = format!("{stack}, {}", who.name);
            // The list: exactly the visible jobs.
            let list = get(who, &s, "/v1/jobs?limit=100").await;
            if who.reads.is_none() {
                list.error(401, "unauthenticated");
            } else {
                assert_eq!(list.status, 200, "{at}");
                let listed: BTreeSet<String> = ids(&list.json()).into_iter().collect();
                let expected: BTreeSet<String> = jobs
                    .iter()
                    .filter(|(_, ns)| who.sees(ns))
                    .map(|(id, _)| (*id).clone())
                    .collect();
                assert_eq!(listed, expected, "{at}: the job list");
            }
            // Each job by id, its logs and its events.
            for (id, ns) in &jobs {
                for path in [
                    format!("/v1/jobs/{id}"),
                    format!("/v1/jobs/{id}/logs"),
                    format!("/v1/jobs/{id}/events"),
                ] {
                    if path.ends_with("/events") {
                        // The stream stays open while the job is queued: the status is
                        // what tells, and nothing of the job reaches the others.
                        let resp = who.http.get(s.u(&path)).send().await.unwrap();
                        let expected = match (who.reads, who.sees(ns)) {
                            (None, _) => 401,
                            (_, true) => 200,
                            (_, false) => 404,
                        };
                        assert_eq!(resp.status().as_u16(), expected, "{at}: {path}");
                        continue;
                    }
                    let r = get(who, &s, &path).await;
                    match (who.reads, who.sees(ns)) {
                        (None, _) => {
                            r.error(401, "unauthenticated");
                        }
                        (_, true) => {
                            assert_eq!(r.status, 200, "{at}: {path}");
                            if !path.ends_with("/logs") {
                                assert_eq!(r.json()["id"], id.as_str(), "{at}");
                            }
                        }
                        (_, false) => {
                            r.error(404, "job_not_found");
                        }
                    }
                }
            }
            // Blobs: HEAD, GET, a range, and the check.
            for (digest, ns) in &blobs {
                let path = format!("/v1/blobs/{digest}");
                let head = Reply::of(who.http.head(s.u(&path)).send().await.unwrap()).await;
                let whole = get(who, &s, &path).await;
                let range = Reply::of(
                    who.http
                        .get(s.u(&path))
                        .header("range", "bytes=0-7")
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                // Readable through any version that lists it.
                let readable = ns.iter().any(|n| who.sees(&[n]));
                match (who.reads, readable) {
                    (None, _) => {
                        assert_eq!(head.status, 401, "{at}: HEAD {path}");
                        whole.error(401, "unauthenticated");
                    }
                    (_, true) => {
                        assert_eq!(head.status, 200, "{at}: HEAD {path}");
                        assert_eq!(whole.status, 200, "{at}: GET {path}");
                        assert_eq!(digest_of(&whole.body), **digest, "{at}");
                        assert_eq!(range.status, 206, "{at}");
                        assert_eq!(range.body, whole.body[..8], "{at}");
                    }
                    (_, false) => {
                        assert_eq!(head.status, 404, "{at}: HEAD {path}");
                        whole.error(404, "blob_not_found");
                        range.error(404, "blob_not_found");
                    }
                }
            }
            let digests: Vec<&String> = blobs.iter().map(|(d, _)| *d).collect();
            let check = Reply::of(
                who.http
                    .post(s.u("/v1/blobs/check"))
                    .json(&json!({ "digests": digests }))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            if who.reads.is_none() {
                check.error(401, "unauthenticated");
            } else {
                assert_eq!(check.status, 200, "{at}");
                let expected: Vec<&String> = blobs
                    .iter()
                    .filter(|(_, ns)| !ns.iter().any(|n| who.sees(&[n])))
                    .map(|(d, _)| *d)
                    .collect();
                assert_eq!(check.json()["missing"], json!(expected), "{at}: missing");
            }
        }

        // Paging through a list that hides most jobs: whole pages, a cursor that moves on.
        let writer_a = &callers[2];
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let path = match &cursor {
                Some(c) => format!("/v1/jobs?limit=1&cursor={c}"),
                None => "/v1/jobs?limit=1".to_owned(),
            };
            let page = get(writer_a, &s, &path).await.json();
            seen.extend(ids(&page));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let mut newest_first = only_a.clone();
        newest_first.reverse();
        assert_eq!(seen, newest_first, "{stack}: paging as a writer of A");

        // Cancelling: what submitting needs. A reader may not; a writer who cannot see the
        // job is told it does not exist; a writer who can, may.
        let cancel = |who: &Who, id: &str| {
            let req = who.http.post(s.u(&format!("/v1/jobs/{id}/cancel")));
            async move { Reply::of(req.send().await.unwrap()).await }
        };
        cancel(&callers[1], &only_a[0])
            .await
            .error(403, "forbidden");
        cancel(&callers[4], &only_a[0])
            .await
            .error(404, "job_not_found");
        cancel(&callers[2], &cross)
            .await
            .error(404, "job_not_found");
        let done = cancel(&callers[2], &only_a[0]).await;
        done.expect(200, &stack.to_string());
        assert_eq!(done.json()["state"], "cancelled", "{stack}");

        // Validations are shown where the job that made them is: the one of B's adapter on
        // A's base, on that base, only to callers who may read both.
        let fast = adapter_registry::config::JobsConfig {
            poll: std::time::Duration::from_millis(20),
            ..Default::default()
        };
        let kinds = adapter_registry::jobs::Kinds::standard(&fast);
        let _workers = adapter_registry::jobs::spawn_workers(&s.state, kinds, &fast, 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let j = s.get(&format!("/v1/jobs/{cross_back}")).await.json();
            if j["state"] == "succeeded" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{stack}: {j}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let on_base = "/v1/models/a/llama/versions/1.0.0/validations";
        let adapters = |v: Value| -> Vec<String> {
            v["validations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["adapter"].as_str().unwrap().to_owned())
                .collect()
        };
        let by_a = adapters(
            get(&callers[1], &s, on_base)
                .await
                .expect(200, "reader of A"),
        );
        let by_ab = adapters(
            get(&callers[3], &s, on_base)
                .await
                .expect(200, "writer of A and B"),
        );
        assert!(
            !by_a.contains(&"b/on-a@1.0.0".to_owned()),
            "{stack}: {by_a:?}"
        );
        assert!(
            by_ab.contains(&"b/on-a@1.0.0".to_owned()),
            "{stack}: {by_ab:?}"
        );

        // A writer of B pushes a file already stored for A: it counts as missing, a
        // manifest naming it without the upload is refused (no mount of another namespace's
        // blob by digest), the upload with the wrong bytes is refused, the right bytes are
        // verified and accepted, and one stored copy serves both.
        let writer_b = &callers[4];
        let (config, weights) = seed::adapter_files(&Spec::lora("tiny-llama", 4, &["q_proj"]));
        assert_eq!(digest_of(&weights), a_blob);
        let put = |bytes: Vec<u8>, digest: String| {
            let req = writer_b
                .http
                .put(s.u(&format!("/v1/blobs/{digest}")))
                .body(bytes);
            async move { Reply::of(req.send().await.unwrap()).await }
        };
        let c = put(config.clone(), digest_of(&config)).await;
        assert_eq!(c.status, 201, "{stack}");
        let manifest = common::manifest(
            "adapter",
            vec![
                json!({"path": "adapter_config.json", "size": config.len(), "digest": digest_of(&config)}),
                json!({"path": "adapter_model.safetensors", "size": weights.len(), "digest": a_blob}),
            ],
            json!({}),
        );
        let publish = || {
            let req = writer_b
                .http
                .put(s.u("/v1/adapters/b/copy/versions/1.0.0"))
                .body(manifest.to_string());
            async move { Reply::of(req.send().await.unwrap()).await }
        };
        let refused = publish().await;
        let details = refused.error(400, "missing_blobs");
        assert_eq!(details["details"]["missing"], json!([a_blob]), "{stack}");
        let mut wrong = weights.clone();
        wrong[100] ^= 1;
        put(wrong, a_blob.clone())
            .await
            .error(400, "digest_mismatch");
        get(writer_b, &s, &format!("/v1/blobs/{a_blob}"))
            .await
            .error(404, "blob_not_found");
        let sent = put(weights.clone(), a_blob.clone()).await;
        sent.expect(201, &stack.to_string());
        let check = Reply::of(
            writer_b
                .http
                .post(s.u("/v1/blobs/check"))
                .json(&json!({ "digests": [a_blob] }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(check.json()["missing"], json!([]), "{stack}");
        let published = publish().await;
        published.expect(201, &stack.to_string());
        let got = get(writer_b, &s, &format!("/v1/blobs/{a_blob}")).await;
        assert_eq!(got.body, weights, "{stack}");
        let copies: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs WHERE digest = $1")
            .bind(a_blob.clone())
            .fetch_one(&s.state.db.pool)
            .await
            .unwrap();
        assert_eq!(copies, 1, "{stack}: one stored copy");
        s.stop().await;
    }
}

/// What was stored before the walls is walled too once the server starts: the namespaces of
/// earlier jobs are read from their inputs and output, and the header blobs of headers-only
/// models are listed with their versions (both at start-up, idempotent).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn earlier_jobs_and_header_blobs_are_walled_after_a_restart() {
    for stack in stacks() {
        let (backend, s) = start_with_a_base(&stack).await;
        adapter(&s, "b/on-a", "1.0.0", 4, "a/llama@1.0.0").await;
        let job = job_of(&s, "b/on-a@1.0.0").await;
        // A headers-only model of A: its header blob is listed by nothing but its metadata.
        let bytes = std::fs::read(
            common::examples_dir("tiny-llama").join("model-00001-of-00002.safetensors"),
        )
        .unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = s.upload(&bytes[..8 + n]).await.to_string();
        let weights = json!([{
            "path": "model-00001-of-00002.safetensors", "size": bytes.len(),
            "sha256": digest_of(&bytes), "header_blob": header,
        }]);
        let config = common::upload_dir(&s, "tiny-llama", &["config.json"]).await;
        let m = common::manifest(
            "model",
            config,
            json!({"headers_only": true, "weights": weights}),
        );
        s.publish("models", "a/ho", "1.0.0", &m)
            .await
            .expect(201, &stack.to_string());
        let reader = who(&s, "reader of A", "read", &["a"]).await;
        let blob = format!("/v1/blobs/{header}");
        assert_eq!(
            head(&reader, &s, &blob).await,
            200,
            "{stack}: listed at publish"
        );

        // Forget what the walls record, as a registry from before them would have it.
        for table in ["job_namespaces", "version_blobs"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&s.state.db.pool)
                .await
                .unwrap();
        }
        let listed = get(&reader, &s, "/v1/jobs")
            .await
            .expect(200, &stack.to_string());
        assert_eq!(
            ids(&listed),
            std::slice::from_ref(&job),
            "{stack}: unrecorded, the job shows"
        );
        assert_eq!(
            head(&reader, &s, &blob).await,
            404,
            "{stack}: unlisted, the blob hides"
        );

        // A restart records them again.
        let config = common::config(&backend);
        s.stop().await;
        let s = TestServer::start_with(&backend, config).await;
        let reader = Who {
            name: "reader of A",
            http: reader.http.clone(),
            reads: reader.reads,
        };
        let listed = get(&reader, &s, "/v1/jobs")
            .await
            .expect(200, &stack.to_string());
        assert_eq!(
            ids(&listed),
            Vec::<String>::new(),
            "{stack}: the job touches B"
        );
        let all = s.get("/v1/jobs").await.json();
        assert_eq!(
            ids(&all),
            std::slice::from_ref(&job),
            "{stack}: the admin still sees it"
        );
        assert_eq!(head(&reader, &s, &blob).await, 200, "{stack}: listed again");
        s.stop().await;
    }
}
