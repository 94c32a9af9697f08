//! The push path's small requests: `create_repo`, `validate-yaml` (a model card's metadata),
//! `create_branch` and `preupload` (which files go through the LFS batch API: all of them).
//!
//! The registry has no branches: a commit's revision names the version it makes
//! (`hf::commit`), so `create_branch` checks that it names one and keeps nothing. A
//! repository becomes a registry repository (of the kind its files make) with its first
//! version; `create_repo` records it until then, so the clients see it exist, empty.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::checks::{self, CommitQuery, addable};
use super::repos::RevisionPath;
use super::{HfError, HfResult, HubPath, card, repo_names, repo_url};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{LimitedBytes, parse_json};

#[derive(Debug, Deserialize)]
struct CreateRepo {
    name: String,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default, rename = "type")]
    repo_type: Option<String>,
}

/// Only model repositories: the registry holds adapters and models, both "models" to the Hub.
fn models_only(repo_type: Option<&str>) -> HfResult<()> {
    match repo_type {
        None | Some("model") => Ok(()),
        Some(other) => Err(HfError::api(ApiError::new(
            "unsupported",
            format!(
                "repo_type `{}`: the registry holds models and adapters only",
                other.escape_debug()
            ),
        ))),
    }
}

/// `POST /hf/api/repos/create`: `{name, organization, type}`. The repository is recorded
/// as created (empty to the Hub's clients until its first commit); the answer is its URL,
/// whether it existed or not (the client's `exist_ok` is then moot).
pub async fn create_repo(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes<{ 64 * 1024 }>,
) -> HfResult<Json<Value>> {
    let req: CreateRepo = parse_json(&body).map_err(HfError::api)?;
    models_only(req.repo_type.as_deref())?;
    let Some(org) = req.organization.as_deref() else {
        return Err(HfError::api(ApiError::new(
            "invalid_name",
            "a repository id is `namespace/name`: pass `namespace/name` to create_repo",
        )));
    };
    let (ns, name) = repo_names(org, &req.name)?;
    if !caller.covers(ns.as_str()) {
        return Err(HfError::api(ApiError::new(
            "forbidden",
            format!("the token does not allow writing to namespace `{ns}`"),
        )));
    }
    app.db
        .create_hub_repository(ns.as_str(), name.as_str())
        .await
        .map_err(HfError::api)?;
    Ok(Json(json!({
        "url": repo_url(&headers, &ns, &name),
        "name": format!("{ns}/{name}"),
    })))
}

#[derive(Debug, Deserialize)]
struct ValidateYaml {
    content: String,
    #[serde(default, rename = "repoType")]
    repo_type: Option<String>,
}

/// `POST /hf/api/validate-yaml`: `{content, repoType}`, a model card. 400 with `errors` when
/// its metadata is not a YAML mapping; a warning when it has none.
pub async fn validate_yaml(
    LimitedBytes(body): LimitedBytes<{ 1024 * 1024 }>,
) -> HfResult<Response> {
    let req: ValidateYaml = parse_json(&body).map_err(HfError::api)?;
    models_only(req.repo_type.as_deref())?;
    let (status, errors, warnings) = match card::front_matter(&req.content) {
        Ok(Some(meta)) if !meta.is_empty() => (StatusCode::OK, vec![], vec![]),
        Ok(_) => (
            StatusCode::OK,
            vec![],
            vec![json!({ "message": "empty or missing YAML metadata in the model card" })],
        ),
        Err(why) => (
            StatusCode::BAD_REQUEST,
            vec![json!({ "message": why })],
            vec![],
        ),
    };
    let mut out = json!({ "errors": errors, "warnings": warnings });
    if let Some(first) = errors.first() {
        // The registry's error shape beside the Hub's `errors` list.
        out["error"] =
            json!({ "code": "invalid_card", "message": first["message"], "details": {} });
    }
    Ok((status, Json(out)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct BranchPath {
    ns: String,
    name: String,
    branch: String,
}

/// `POST /hf/api/models/{ns}/{name}/branch/{branch}` (transformers' `push_to_hub(revision=…)`
/// calls it first): a branch a commit can go to is `main` or a semver version, the version
/// that commit makes; nothing is stored.
pub async fn create_branch(HubPath(p): HubPath<BranchPath>) -> HfResult<Json<Value>> {
    repo_names(&p.ns, &p.name)?;
    checks::target_of(&p.branch)?;
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
struct Preupload {
    files: Vec<PreuploadFile>,
}

#[derive(Debug, Deserialize)]
struct PreuploadFile {
    path: String,
}

/// `POST /hf/api/models/{ns}/{name}/preupload/{revision}`: `{files: [{path, size, sample}]}`.
/// Every file goes through the LFS batch API (`uploadMode: lfs`); paths a commit would
/// refuse are refused now, before any bytes are sent.
pub async fn preupload(
    HubPath(p): HubPath<RevisionPath>,
    Query(q): Query<CommitQuery>,
    LimitedBytes(body): LimitedBytes<{ 4 * 1024 * 1024 }>,
) -> HfResult<Json<Value>> {
    repo_names(&p.ns, &p.name)?;
    checks::no_pull_requests(&q)?;
    checks::target_of(&p.revision)?;
    let req: Preupload = parse_json(&body).map_err(HfError::api)?;
    let mut files = Vec::with_capacity(req.files.len());
    for f in &req.files {
        addable(&f.path)?;
        files.push(json!({ "path": f.path, "uploadMode": "lfs", "shouldIgnore": false }));
    }
    Ok(Json(json!({ "files": files })))
}

/// `GET /hf/api/models/{ns}/{name}/xet-{write,read}-token/{revision}`: a client that would
/// push (or pull) through Xet asks for a Xet token first. The registry speaks Git LFS only:
/// say so, and how to make the client use it (docs/HF.md).
pub async fn no_xet() -> HfError {
    HfError::api(ApiError::new(
        "xet_unsupported",
        "this registry stores files through Git LFS, not Xet: set HF_HUB_DISABLE_XET=1 for \
         huggingface_hub to upload through LFS",
    ))
}
