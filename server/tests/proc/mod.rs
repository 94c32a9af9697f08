//! Helpers for the tests that drive the real server binary over HTTP (`ServerProcess`):
//! the example adapter's files, blob uploads, publishing, alias moves, reading a version
//! back whole.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;

use adapter_core::digest::Digest;
use adapter_testkit::{HttpResponse, ServerProcess, http, try_http};
use serde_json::{Value, json};

/// A file of `examples/<dir>`.
pub fn example(dir: &str, file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(dir)
        .join(file);
    std::fs::read(path).unwrap()
}

/// `PUT /v1/blobs/{digest}` (`Err` when the server answered nothing).
pub fn try_put_blob(server: &ServerProcess, bytes: &[u8]) -> std::io::Result<HttpResponse> {
    let digest = Digest::of_bytes(bytes);
    let (name, value) = server.auth();
    try_http(
        "PUT",
        &format!("{}/v1/blobs/{digest}", server.url),
        &[(name, &value)],
        bytes,
    )
}

/// Upload `bytes` (201 or 200 expected); its manifest entry without a path.
pub fn put_blob(server: &ServerProcess, bytes: &[u8]) -> Value {
    let r = try_put_blob(server, bytes).expect("the server answers");
    assert!(
        r.status == 201 || r.status == 200,
        "{} {}",
        r.status,
        r.text()
    );
    json!({"size": bytes.len(), "digest": Digest::of_bytes(bytes).to_string()})
}

/// The example tiny LoRA's files, uploaded, plus `notes.txt` holding `notes` (also
/// uploaded): a manifest distinct per `notes`. `Err` when an upload got no answer or a
/// refusal (its status and body).
pub fn try_adapter_manifest(server: &ServerProcess, notes: &[u8]) -> Result<Value, String> {
    let mut files = Vec::new();
    let tiny = ["adapter_config.json", "adapter_model.safetensors"]
        .map(|name| (name, example("tiny-llama-lora", name)));
    for (name, bytes) in tiny
        .iter()
        .map(|(n, b)| (*n, b.as_slice()))
        .chain([("notes.txt", notes)])
    {
        let r = try_put_blob(server, bytes).map_err(|e| e.to_string())?;
        if r.status != 201 && r.status != 200 {
            return Err(format!("{} {}", r.status, r.text()));
        }
        files.push(json!({
            "path": name, "size": bytes.len(), "digest": Digest::of_bytes(bytes).to_string()
        }));
    }
    Ok(json!({"schema": "adapter-registry.manifest.v1", "kind": "adapter", "files": files}))
}

/// [`try_adapter_manifest`], which must succeed.
pub fn adapter_manifest(server: &ServerProcess, notes: &[u8]) -> Value {
    try_adapter_manifest(server, notes).unwrap_or_else(|e| panic!("uploading: {e}"))
}

/// `PUT /v1/adapters/{repo}/versions/{version}` (`Err` when the server answered nothing).
pub fn try_publish(
    server: &ServerProcess,
    repo: &str,
    version: &str,
    manifest: &Value,
) -> std::io::Result<HttpResponse> {
    let (name, value) = server.auth();
    try_http(
        "PUT",
        &format!("{}/v1/adapters/{repo}/versions/{version}", server.url),
        &[(name, &value), ("Content-Type", "application/json")],
        manifest.to_string().as_bytes(),
    )
}

/// `PUT …/aliases/{alias}` to `version`, expecting `expect` (`Err`: no answer).
pub fn try_move_alias(
    server: &ServerProcess,
    repo: &str,
    alias: &str,
    version: &str,
    expect: Option<&str>,
) -> std::io::Result<HttpResponse> {
    let (name, value) = server.auth();
    let body = json!({"version": version, "expect": expect});
    try_http(
        "PUT",
        &format!("{}/v1/adapters/{repo}/aliases/{alias}", server.url),
        &[(name, &value), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// `GET` a path of the API with the admin token.
pub fn get(server: &ServerProcess, path: &str) -> HttpResponse {
    let (name, value) = server.auth();
    http(
        "GET",
        &format!("{}{path}", server.url),
        &[(name, &value)],
        b"",
    )
}

/// Check that `repo@version` is visible and whole: the manifest the server stores hashes to
/// its digest and every file downloads with its size and digest. The manifest digest.
pub fn assert_version_whole(server: &ServerProcess, repo: &str, version: &str) -> String {
    let r = get(server, &format!("/v1/adapters/{repo}/versions/{version}"));
    assert_eq!(r.status, 200, "{repo}@{version}: {}", r.text());
    let info = r.json();
    for file in info["manifest"]["files"].as_array().unwrap() {
        let digest = file["digest"].as_str().unwrap();
        let blob = get(server, &format!("/v1/blobs/{digest}"));
        assert_eq!(blob.status, 200, "{repo}@{version} {file}: {}", blob.text());
        assert_eq!(
            Digest::of_bytes(&blob.body).to_string(),
            digest,
            "{repo}@{version}: {file} is not whole"
        );
        assert_eq!(blob.body.len() as u64, file["size"].as_u64().unwrap());
    }
    info["manifest_digest"].as_str().unwrap().to_owned()
}
