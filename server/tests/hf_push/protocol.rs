//! The Hub protocol as `huggingface_hub` speaks it: JSON posts, the LFS batch and its uploads, NDJSON commits.

use super::*;

pub(super) fn example(file: &str) -> Vec<u8> {
    std::fs::read(examples_dir("tiny-llama-lora").join(file)).unwrap()
}

pub(super) async fn post_json(
    s: &TestServer,
    c: &reqwest::Client,
    path: &str,
    body: &Value,
) -> Reply {
    Reply::of(c.post(s.u(path)).json(body).send().await.unwrap()).await
}

/// The LFS batch for `bytes`: the object entry of the answer.
pub(super) async fn batch(s: &TestServer, c: &reqwest::Client, repo: &str, bytes: &[u8]) -> Reply {
    let oid = Digest::of_bytes(bytes).hex();
    post_json(
        s,
        c,
        &format!("/hf/{repo}.git/info/lfs/objects/batch"),
        &json!({"operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
                "objects": [{"oid": oid, "size": bytes.len()}], "ref": {"name": "main"}}),
    )
    .await
}

/// Upload `bytes` the way the client does: batch, then a `PUT` without credentials to the
/// upload URL (when there is one). Returns whether an upload was needed.
pub(super) async fn lfs_upload(
    s: &TestServer,
    c: &reqwest::Client,
    repo: &str,
    bytes: &[u8],
) -> bool {
    let b = batch(s, c, repo, bytes).await.expect(200, "batch");
    assert_eq!(b["transfer"], "basic");
    let object = &b["objects"][0];
    let Some(href) = object["actions"]["upload"]["href"].as_str() else {
        return false;
    };
    let put = Reply::of(
        reqwest::Client::new()
            .put(href)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    true
}

pub(super) fn header_line(summary: &str, parent: Option<&str>) -> Value {
    let mut v = json!({"summary": summary, "description": format!("{summary}, described")});
    if let Some(p) = parent {
        v["parentCommit"] = json!(p);
    }
    json!({"key": "header", "value": v})
}

pub(super) fn lfs_line(path: &str, bytes: &[u8]) -> Value {
    json!({"key": "lfsFile", "value": {"path": path, "algo": "sha256",
           "oid": Digest::of_bytes(bytes).hex(), "size": bytes.len()}})
}

pub(super) fn inline_line(path: &str, bytes: &[u8]) -> Value {
    let content = base64::engine::general_purpose::STANDARD.encode(bytes);
    json!({"key": "file", "value": {"path": path, "content": content, "encoding": "base64"}})
}

pub(super) async fn commit(
    s: &TestServer,
    c: &reqwest::Client,
    repo: &str,
    revision: &str,
    lines: &[Value],
) -> Reply {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    Reply::of(
        c.post(s.u(&format!("/hf/api/models/{repo}/commit/{revision}")))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub(super) async fn versions(s: &TestServer, repo: &str) -> Vec<String> {
    let r = s.get(&format!("/v1/adapters/{repo}/versions")).await;
    if r.status == 404 {
        return Vec::new();
    }
    r.expect(200, "versions")["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect()
}

pub(super) const CARD: &[u8] =
    b"---\nbase_model: acme/llama\nlibrary_name: peft\n---\n# The support bot\n";
