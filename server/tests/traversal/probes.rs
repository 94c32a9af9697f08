//! Where a hostile value goes in a request ([`PROBES`]), and what must come back.

use super::*;

/// Where a hostile value goes in a request, and what must come back.
/// Where a hostile value goes in a request, and what must come back.
pub(super) struct Probe {
    pub(super) field: &'static str,
    pub(super) method: &'static str,
    /// `{x}`: the value's URL form; `{upload}`, `{job}`: live ids.
    pub(super) target: &'static str,
    pub(super) body: fn(&Ctx, Option<&str>) -> Option<Vec<u8>>,
    pub(super) want: Want,
}

pub(super) const fn probe(
    field: &'static str,
    method: &'static str,
    target: &'static str,
    body: fn(&Ctx, Option<&str>) -> Option<Vec<u8>>,
    want: Want,
) -> Probe {
    Probe {
        field,
        method,
        target,
        body,
        want,
    }
}

#[derive(Clone, Copy)]
pub(super) enum Want {
    /// Every value is invalid here.
    Refused,
    /// 200 with an empty list under the key (`None`: the top-level array).
    Nothing(Option<&'static str>),
    /// A search filter: [`Want::Nothing`] for a value of at most 256 characters, else refused
    /// (docs/API.md, "Catalogue search": "any value over 256 characters is 400").
    Filter(&'static str),
    /// A filter whose values have a grammar: nothing found, or refused.
    NothingOrRefused(&'static str),
    /// The Git LFS batch API's refusal of one object: 200, the object with `error.code`
    /// 422 and no `actions` (no upload URL); or the whole request refused.
    LfsObjectError,
}

/// What the probes' bodies are built from.
pub(super) struct Ctx {
    pub(super) manifest: Value,
    pub(super) lfs_hex: String,
}

pub(super) fn no_body(_: &Ctx, _: Option<&str>) -> Option<Vec<u8>> {
    Some(Vec::new())
}

pub(super) fn json_body(v: Value) -> Option<Vec<u8>> {
    Some(v.to_string().into_bytes())
}

pub(super) fn manifest_body(c: &Ctx, _: Option<&str>) -> Option<Vec<u8>> {
    json_body(c.manifest.clone())
}

pub(super) fn commit_lines(summary: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = json!({"key": "header", "value": {"summary": summary}}).to_string();
    out.push('\n');
    for (path, bytes) in files {
        let content = base64::engine::general_purpose::STANDARD.encode(bytes);
        out.push_str(
            &json!({"key": "file", "value": {"path": path, "content": content, "encoding": "base64"}})
                .to_string(),
        );
        out.push('\n');
    }
    out.into_bytes()
}

pub(super) fn lfs_batch(oid: &str) -> Value {
    json!({"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
           "objects": [{"oid": oid, "size": 7}]})
}

/// The value in a JSON body (skipped for bytes that are not UTF-8: JSON cannot carry them).
macro_rules! with {
    ($x:ident => $body:expr) => {
        |_c: &Ctx, x: Option<&str>| x.map(|$x| $body.to_string().into_bytes())
    };
    ($c:ident, $x:ident => $body:expr) => {
        |$c: &Ctx, x: Option<&str>| x.map(|$x| $body.to_string().into_bytes())
    };
}

#[rustfmt::skip]
pub(super) const PROBES: &[Probe] = &[
    // Path segments of `/v1`.
    probe("namespace", "GET", "/v1/adapters/{x}/bot", no_body, Want::Refused),
    probe("namespace", "PUT", "/v1/adapters/{x}/bot/versions/9.0.0", manifest_body, Want::Refused),
    probe("name", "GET", "/v1/adapters/acme/{x}", no_body, Want::Refused),
    probe("name", "PUT", "/v1/adapters/acme/{x}/versions/9.0.0", manifest_body, Want::Refused),
    probe("kind", "GET", "/v1/{x}/acme/bot", no_body, Want::Refused),
    probe("version", "GET", "/v1/adapters/acme/bot/versions/{x}", no_body, Want::Refused),
    probe("version", "PUT", "/v1/adapters/acme/bot/versions/{x}", manifest_body, Want::Refused),
    probe("version", "POST", "/v1/adapters/acme/bot/versions/{x}/yank", |_, _| json_body(json!({"reason": "r"})), Want::Refused),
    probe("version", "POST", "/v1/adapters/acme/bot/versions/{x}/evals", |_, _| json_body(json!({"results": [{"benchmark": "b", "metric": "m", "value": 1.0}]})), Want::Refused),
    probe("selector", "GET", "/v1/adapters/acme/bot/resolve/{x}", no_body, Want::Refused),
    probe("alias", "GET", "/v1/adapters/acme/bot/aliases/{x}", no_body, Want::Refused),
    probe("alias", "PUT", "/v1/adapters/acme/bot/aliases/{x}", |_, _| json_body(json!({"version": "1.0.0"})), Want::Refused),
    probe("alias", "PUT", "/v1/adapters/acme/bot/aliases/{x}/gate", |_, _| json_body(json!({"conditions": [{"not_yanked": true}]})), Want::Refused),
    probe("alias", "DELETE", "/v1/adapters/acme/bot/aliases/{x}?expect=1.0.0", no_body, Want::Refused),
    probe("digest", "GET", "/v1/blobs/{x}", no_body, Want::Refused),
    probe("digest", "PUT", "/v1/blobs/{x}", |_, _| Some(b"hostile".to_vec()), Want::Refused),
    probe("upload id", "GET", "/v1/uploads/{x}", no_body, Want::Refused),
    probe("upload id", "PATCH", "/v1/uploads/{x}", |_, _| Some(b"hostile".to_vec()), Want::Refused),
    probe("upload id", "PUT", "/v1/uploads/{x}?digest=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", no_body, Want::Refused),
    probe("upload id", "DELETE", "/v1/uploads/{x}", no_body, Want::Refused),
    probe("job id", "GET", "/v1/jobs/{x}", no_body, Want::Refused),
    probe("job id", "GET", "/v1/jobs/{x}/logs", no_body, Want::Refused),
    probe("job id", "POST", "/v1/jobs/{x}/cancel", no_body, Want::Refused),
    probe("token id", "DELETE", "/v1/tokens/{x}", no_body, Want::Refused),
    probe("page kind", "GET", "/ui/{x}/acme/bot", no_body, Want::Refused),
    probe("page namespace", "GET", "/ui/adapters/{x}/bot", no_body, Want::Refused),
    probe("page name", "GET", "/ui/adapters/acme/{x}", no_body, Want::Refused),
    // The Hub protocol's paths.
    probe("hf namespace", "GET", "/hf/{x}/bot/resolve/main/adapter_config.json", no_body, Want::Refused),
    probe("hf name", "GET", "/hf/acme/{x}/resolve/main/adapter_config.json", no_body, Want::Refused),
    probe("hf revision", "GET", "/hf/acme/bot/resolve/{x}/adapter_config.json", no_body, Want::Refused),
    probe("hf file path", "GET", "/hf/acme/bot/resolve/main/{x}", no_body, Want::Refused),
    probe("hf namespace", "GET", "/hf/api/models/{x}/bot", no_body, Want::Refused),
    probe("hf name", "GET", "/hf/api/models/acme/{x}", no_body, Want::Refused),
    probe("hf revision", "GET", "/hf/api/models/acme/bot/revision/{x}", no_body, Want::Refused),
    probe("hf revision", "GET", "/hf/api/models/acme/bot/tree/{x}", no_body, Want::Refused),
    probe("hf file path", "GET", "/hf/api/models/acme/bot/tree/main/{x}", no_body, Want::Refused),
    probe("hf revision", "POST", "/hf/api/models/acme/bot/paths-info/{x}", |_, _| Some(b"paths=adapter_config.json".to_vec()), Want::Refused),
    probe("hf revision", "POST", "/hf/api/models/acme/bot/commit/{x}", |_, _| Some(commit_lines("hostile revision", &[("README.md", b"# hi\n")])), Want::Refused),
    probe("hf revision", "POST", "/hf/api/models/acme/bot/preupload/{x}", |_, _| json_body(json!({"files": [{"path": "README.md"}]})), Want::Refused),
    probe("hf branch", "POST", "/hf/api/models/acme/bot/branch/{x}", no_body, Want::Refused),
    probe("hf namespace", "POST", "/hf/{x}/bot.git/info/lfs/objects/batch", |c, _| json_body(lfs_batch(&c.lfs_hex)), Want::Refused),
    probe("hf repository", "POST", "/hf/acme/{x}/info/lfs/objects/batch", |c, _| json_body(lfs_batch(&c.lfs_hex)), Want::Refused),
    probe("hf upload id", "PUT", "/hf/lfs/{x}", |_, _| Some(b"hostile".to_vec()), Want::Refused),
    // Query parameters.
    probe("search q", "GET", "/v1/adapters?q={x}", no_body, Want::Filter("repositories")),
    probe("search q", "GET", "/v1/models?q={x}", no_body, Want::Filter("repositories")),
    probe("search label value", "GET", "/v1/adapters?label=env={x}", no_body, Want::Filter("repositories")),
    probe("search label key", "GET", "/v1/adapters?label={x}", no_body, Want::Refused),
    probe("search namespace", "GET", "/v1/adapters?namespace={x}", no_body, Want::Refused),
    probe("search base", "GET", "/v1/adapters?base={x}", no_body, Want::NothingOrRefused("repositories")),
    probe("search target", "GET", "/v1/adapters?target={x}", no_body, Want::NothingOrRefused("repositories")),
    probe("search compatible_with", "GET", "/v1/adapters?compatible_with={x}", no_body, Want::Refused),
    probe("search variant", "GET", "/v1/adapters?variant={x}", no_body, Want::Refused),
    probe("search eval", "GET", "/v1/adapters?eval={x}", no_body, Want::Refused),
    probe("search sort", "GET", "/v1/adapters?sort={x}", no_body, Want::Refused),
    probe("search cursor", "GET", "/v1/adapters?cursor={x}", no_body, Want::Refused),
    probe("search limit", "GET", "/v1/adapters?limit={x}", no_body, Want::Refused),
    probe("audit actor", "GET", "/v1/audit?actor={x}", no_body, Want::NothingOrRefused("entries")),
    probe("audit action", "GET", "/v1/audit?action={x}", no_body, Want::NothingOrRefused("entries")),
    probe("audit cursor", "GET", "/v1/audit?cursor={x}", no_body, Want::Refused),
    probe("jobs state", "GET", "/v1/jobs?state={x}", no_body, Want::NothingOrRefused("jobs")),
    probe("jobs kind", "GET", "/v1/jobs?kind={x}", no_body, Want::NothingOrRefused("jobs")),
    probe("jobs input", "GET", "/v1/jobs?input={x}", no_body, Want::NothingOrRefused("jobs")),
    probe("jobs cursor", "GET", "/v1/jobs?cursor={x}", no_body, Want::Refused),
    probe("job logs after", "GET", "/v1/jobs/{job}/logs?after={x}", no_body, Want::Refused),
    probe("upload digest", "PUT", "/v1/uploads/{upload}?digest={x}", no_body, Want::Refused),
    probe("alias expect", "DELETE", "/v1/adapters/acme/bot/aliases/prod?expect={x}", no_body, Want::Refused),
    probe("hf paths-info paths", "POST", "/hf/api/models/acme/bot/paths-info/main", |_, x| x.map(|x| format!("paths={}", encode(x)).into_bytes()), Want::Nothing(None)),
    // Values in bodies that are never valid.
    probe("blob check digest", "POST", "/v1/blobs/check", with!(x => json!({"digests": [x]})), Want::Refused),
    probe("alias move version", "PUT", "/v1/adapters/acme/bot/aliases/prod", with!(x => json!({"version": x, "expect": "1.0.0"})), Want::Refused),
    probe("alias move expect", "PUT", "/v1/adapters/acme/bot/aliases/prod", with!(x => json!({"version": "1.0.0", "expect": x})), Want::Refused),
    probe("gate eval", "PUT", "/v1/adapters/acme/bot/aliases/prod/gate", with!(x => json!({"conditions": [{"eval": x, "min": 0.5}]})), Want::Refused),
    probe("gate validated_against", "PUT", "/v1/adapters/acme/bot/aliases/prod/gate", with!(x => json!({"conditions": [{"validated_against": x}]})), Want::Refused),
    probe("eval benchmark", "POST", "/v1/adapters/acme/bot/versions/1.0.0/evals", with!(x => json!({"results": [{"benchmark": x, "metric": "acc", "value": 1.0}]})), Want::Refused),
    probe("job kind", "POST", "/v1/jobs", with!(x => json!({"kind": x, "inputs": {"adapter": "acme/bot@1.0.0", "base": "acme/llama@1.0.0"}})), Want::Refused),
    probe("job input", "POST", "/v1/jobs", with!(x => json!({"kind": "validate", "inputs": {"adapter": x, "base": "acme/llama@1.0.0"}})), Want::Refused),
    probe("job output", "POST", "/v1/jobs", with!(x => json!({"kind": "merge", "inputs": {"adapter": "acme/bot@1.0.0", "base": "acme/llama@1.0.0"}, "params": {"output": x}})), Want::Refused),
    probe("token name", "POST", "/v1/tokens", with!(x => json!({"name": x, "scope": "read"})), Want::Refused),
    probe("token namespace", "POST", "/v1/tokens", with!(x => json!({"name": "hostile", "scope": "read", "namespaces": [x]})), Want::Refused),
    probe("upload start digest", "POST", "/v1/uploads", with!(x => json!({"digest": x})), Want::Refused),
    probe("manifest label key", "PUT", "/v1/adapters/acme/bot/versions/3.0.0", with!(c, x => { let mut m = c.manifest.clone(); m["metadata"]["labels"] = json!({ x: "v" }); m }), Want::Refused),
    probe("manifest base reference", "PUT", "/v1/adapters/acme/bot/versions/3.0.0", with!(c, x => { let mut m = c.manifest.clone(); m["metadata"]["base"] = json!({"reference": x}); m }), Want::Refused),
    probe("hf repo name", "POST", "/hf/api/repos/create", with!(x => json!({"name": x, "organization": "acme"})), Want::Refused),
    probe("hf organization", "POST", "/hf/api/repos/create", with!(x => json!({"name": "bot", "organization": x})), Want::Refused),
    probe("hf lfs oid", "POST", "/hf/acme/bot.git/info/lfs/objects/batch", with!(x => lfs_batch(x)), Want::LfsObjectError),
    probe("hf commit lfs oid", "POST", "/hf/api/models/acme/bot/commit/main", with!(x => format!("{}\n{}\n", json!({"key": "header", "value": {"summary": "s"}}), json!({"key": "lfsFile", "value": {"path": "weights.bin.txt", "algo": "sha256", "oid": x, "size": 7}}))), Want::Refused),
];
