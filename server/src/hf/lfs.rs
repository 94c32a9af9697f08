//! Getting bytes in through the Hub protocol: the Git LFS batch API
//! (`POST /hf/{ns}/{name}.git/info/lfs/objects/batch`) and the upload URLs it hands out
//! (`PUT /hf/lfs/{id}`).
//!
//! The batch answers the `basic` transfer: for each object the caller may not read yet, an
//! upload URL that is an upload session opened for exactly that digest and size by the
//! caller's token. `huggingface_hub` `PUT`s the file there without credentials (its basic
//! transfer sends none), so the URL is the credential: a random session id, valid until the
//! session expires, that takes only the bytes of that digest; the token that asked for it
//! becomes the blob's uploader (`auth::walls`), so its commit may use the blob. Objects the
//! caller may read already get no actions: the client skips them.

use adapter_core::api::UploadStart;
use adapter_core::digest::Digest;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{HfError, HfResult, HubPath, endpoint, iso, repo_names};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{LimitedBytes, parse_json};
use crate::uploads;

/// Most objects in one batch request (`huggingface_hub` sends 256 at most).
const MAX_OBJECTS: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct LfsPath {
    ns: String,
    /// `name.git` (the clients always add the suffix; it is optional here).
    repo: String,
}

#[derive(Debug, Deserialize)]
struct BatchRequest {
    operation: String,
    #[serde(default)]
    transfers: Option<Vec<String>>,
    objects: Vec<BatchObject>,
    #[serde(default)]
    hash_algo: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BatchObject {
    oid: String,
    size: u64,
}

fn unsupported(message: impl Into<String>) -> HfError {
    HfError::api(ApiError::new("unsupported", message))
}

fn object_error(oid: &str, size: u64, code: u16, message: String) -> Value {
    json!({ "oid": oid, "size": size, "error": { "code": code, "message": message } })
}

/// `POST /hf/{ns}/{name}.git/info/lfs/objects/batch` (operation `upload`).
pub async fn batch(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    HubPath(p): HubPath<LfsPath>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes<{ 1024 * 1024 }>,
) -> HfResult<Json<Value>> {
    let name = p.repo.strip_suffix(".git").unwrap_or(&p.repo);
    repo_names(&p.ns, name)?;
    let req: BatchRequest = parse_json(&body).map_err(HfError::api)?;
    if req.operation != "upload" {
        return Err(unsupported(format!(
            "LFS operation `{}`: only `upload` is served; files download through \
             /hf/{{ns}}/{{name}}/resolve/{{revision}}/{{path}}",
            req.operation.escape_debug()
        )));
    }
    if req.hash_algo.as_deref().is_some_and(|a| a != "sha256") {
        return Err(unsupported("LFS objects are named by their sha256 only"));
    }
    if req
        .transfers
        .as_ref()
        .is_some_and(|t| !t.iter().any(|t| t == "basic"))
    {
        return Err(unsupported("only the `basic` LFS transfer is served"));
    }
    if req.objects.len() > MAX_OBJECTS {
        return Err(HfError::api(ApiError::new(
            "payload_too_large",
            format!("at most {MAX_OBJECTS} objects per batch"),
        )));
    }
    let token = caller
        .token
        .as_ref()
        .ok_or_else(|| HfError::api(ApiError::new("unauthenticated", "uploads need a token")))?;
    let digests: Vec<Option<Digest>> = req
        .objects
        .iter()
        .map(|o| Digest::from_hex(&o.oid).ok())
        .collect();
    let known: Vec<Digest> = digests.iter().flatten().copied().collect();
    let readable = app
        .db
        .readable_blobs(&known, &caller.blob_reader())
        .await
        .map_err(HfError::api)?;
    let base = endpoint(&headers);
    let mut objects = Vec::with_capacity(req.objects.len());
    for (o, digest) in req.objects.iter().zip(digests) {
        let Some(digest) = digest else {
            objects.push(object_error(
                &o.oid,
                o.size,
                422,
                "an oid is the sha256 of the content: 64 lowercase hex digits".into(),
            ));
            continue;
        };
        match readable.get(&digest) {
            Some(&size) if size == o.size => objects.push(json!({ "oid": o.oid, "size": o.size })),
            Some(&size) => objects.push(object_error(
                &o.oid,
                o.size,
                422,
                format!(
                    "the stored object {} has {size} bytes, not {}",
                    o.oid, o.size
                ),
            )),
            None => {
                let start = UploadStart {
                    digest: Some(digest),
                    size: Some(o.size),
                };
                let session = uploads::start(&app, start, Some(&token.id))
                    .await
                    .map_err(HfError::api)?;
                objects.push(json!({
                    "oid": o.oid,
                    "size": o.size,
                    "authenticated": true,
                    "actions": { "upload": {
                        "href": format!("{base}/lfs/{}", session.id),
                        "expires_at": iso(session.expires_at),
                    } },
                }));
            }
        }
    }
    Ok(Json(
        json!({ "transfer": "basic", "objects": objects, "hash_algo": "sha256" }),
    ))
}

/// `PUT /hf/lfs/{id}`: the whole object, to an upload URL from [`batch`].
pub async fn upload(
    State(app): State<AppState>,
    HubPath(id): HubPath<String>,
    body: Body,
) -> HfResult<StatusCode> {
    uploads::fill(&app, &id, body).await.map_err(HfError::api)?;
    Ok(StatusCode::OK)
}
