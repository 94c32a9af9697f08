//! The Hugging Face Hub protocol under `/hf`, read path (docs/HF.md): with
//! `HF_ENDPOINT=http://registry/hf`, `huggingface_hub` (and what uses it: PEFT,
//! transformers, vLLM, TGI, LoRAX) downloads versions of adapters and models by repo id and
//! revision. A revision is a version (`1.4.2`), an alias (`prod`), a semver range (`^1.4`),
//! `main` (the latest non-yanked version) or a commit id: the first 40 hex digits of a
//! version's manifest digest, which names that manifest forever.
//!
//! Top floor, beside `api` and `ui`: reads through `catalog`, serves blobs through
//! `download`, and maps the catalogue's errors to what the clients understand (404 with
//! `X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`) in [`HfError`].

mod card;
mod checks;
mod commit;
mod files;
mod lfs;
mod push;
mod repos;

use adapter_core::digest::Digest;
use adapter_core::manifest::{Kind, Manifest};
use adapter_core::name::Name;
use adapter_core::reference::Selector;
use axum::Router;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::Value;

use crate::app::AppState;
use crate::catalog::{self, CatalogError, Pick};
use crate::error::ApiError;
use crate::extract::parse_name;

/// Where the protocol is served: `HF_ENDPOINT` is the registry's URL plus this.
pub use crate::error::HUB_PREFIX as PREFIX;

/// The Hub routes (outside the OpenAPI `/v1` description).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/hf/{ns}/{name}/resolve/{revision}/{*path}",
            get(files::get).head(files::head),
        )
        .route("/hf/api/models/{ns}/{name}", get(repos::info))
        .route(
            "/hf/api/models/{ns}/{name}/revision/{revision}",
            get(repos::info_at),
        )
        .route(
            "/hf/api/models/{ns}/{name}/tree/{revision}",
            get(repos::tree),
        )
        .route(
            "/hf/api/models/{ns}/{name}/tree/{revision}/{*path}",
            get(repos::tree_under),
        )
        .route(
            "/hf/api/models/{ns}/{name}/paths-info/{revision}",
            post(repos::paths_info),
        )
        // The push path.
        .route("/hf/api/repos/create", post(push::create_repo))
        .route("/hf/api/validate-yaml", post(push::validate_yaml))
        .route(
            "/hf/api/models/{ns}/{name}/branch/{branch}",
            post(push::create_branch),
        )
        .route(
            "/hf/api/models/{ns}/{name}/preupload/{revision}",
            post(push::preupload),
        )
        .route("/hf/{ns}/{repo}/info/lfs/objects/batch", post(lfs::batch))
        .route("/hf/lfs/{id}", put(lfs::upload))
        .route(
            "/hf/api/models/{ns}/{name}/xet-write-token/{revision}",
            get(push::no_xet),
        )
        .route(
            "/hf/api/models/{ns}/{name}/xet-read-token/{revision}",
            get(push::no_xet),
        )
        .route(
            "/hf/api/models/{ns}/{name}/commit/{revision}",
            post(commit::commit),
        )
}

/// A failure, as the Hub answers it.
#[derive(Debug)]
pub enum HfError {
    RepoNotFound(String),
    RevisionNotFound(String),
    EntryNotFound(String),
    /// `main` of a repository created with `create_repo` and given no version yet: no files
    /// (`EntryNotFound` for a file, as the Hub answers for an empty repository; the model
    /// info and the tree answer it empty).
    EmptyRepo {
        id: String,
        created_at: i64,
    },
    /// Anything else: the registry's own error (its JSON shape and status).
    Api(ApiError),
}

impl From<CatalogError> for HfError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::RepositoryNotFound { .. } => Self::RepoNotFound(e.to_string()),
            CatalogError::VersionNotFound { .. } | CatalogError::NoMatch { .. } => {
                Self::RevisionNotFound(e.to_string())
            }
            other => Self::Api(other.into()),
        }
    }
}

impl HfError {
    pub fn api(e: impl Into<ApiError>) -> Self {
        Self::Api(e.into())
    }
}

impl IntoResponse for HfError {
    /// Every error in the Hub's shape ([`ApiError::into_hub_response`]); the not-found
    /// errors with the codes the clients act on.
    fn into_response(self) -> Response {
        let (code, message) = match self {
            Self::Api(e) => return e.into_hub_response(),
            Self::RepoNotFound(m) => ("RepoNotFound", m),
            Self::RevisionNotFound(m) => ("RevisionNotFound", m),
            Self::EntryNotFound(m) => ("EntryNotFound", m),
            Self::EmptyRepo { id, .. } => (
                "EntryNotFound",
                format!("{id} has no files yet: it was created empty; commit to it"),
            ),
        };
        ApiError::with_details(code, message, Value::Null).into_hub_response()
    }
}

pub type HfResult<T> = Result<T, HfError>;

/// axum's `Path` whose refusal (a segment that is not UTF-8, or that does not parse) is
/// `invalid_path` in the Hub's shape, not axum's plain text.
#[derive(Debug)]
pub struct HubPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for HubPath<T>
{
    type Rejection = HfError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, HfError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| Self(t))
            .map_err(|e| HfError::api(ApiError::new("invalid_path", e.body_text())))
    }
}

/// `ns` and `name` of a repository the caller writes to: `invalid_name` when they are not
/// names.
fn repo_names(ns: &str, name: &str) -> HfResult<(Name, Name)> {
    Ok((
        parse_name("namespace", ns).map_err(HfError::api)?,
        parse_name("name", name).map_err(HfError::api)?,
    ))
}

/// The `HF_ENDPOINT` the request came through (`<scheme>://<host>/hf`), for the absolute URLs
/// the clients need (upload URLs, commit URLs): a proxy's `X-Forwarded-Proto` and
/// `X-Forwarded-Host` when present, else `Host`. Only the caller itself sees the answer, so a
/// forged header misleads no one else.
fn endpoint(headers: &HeaderMap) -> String {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let host = get("x-forwarded-host")
        .or_else(|| get(header::HOST.as_str()))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = match get("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}{PREFIX}")
}

/// A repository's URL as the clients parse it back into a repo id: with the `models/`
/// segment, without which clients before 1.0 (0.26, say) cannot tell the repository from an
/// endpoint that has a path (`…/hf/acme/bot` reads as repo type `hf`).
fn repo_url(headers: &HeaderMap, ns: &Name, name: &Name) -> String {
    format!("{}/models/{ns}/{name}", endpoint(headers))
}

/// Unix seconds as the Hub writes times.
fn iso(unix: i64) -> String {
    let c = adapter_core::time::civil(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The commit id of a version: the first 40 hex digits of its manifest digest.
pub fn commit_of(manifest_digest: &Digest) -> String {
    manifest_digest.hex()[..40].to_owned()
}

fn is_commit(revision: &str) -> bool {
    revision.len() == 40
        && revision
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A version of a repository at a revision, with its manifest.
#[derive(Debug)]
pub struct AtRevision {
    pub kind: Kind,
    pub id: String,
    pub version: String,
    pub commit: String,
    pub created_at: i64,
    pub manifest: Manifest,
    pub summary: adapter_core::api::Summary,
}

/// `ns/name` at `revision` (see the module docs for what a revision may be). The Hub has one
/// kind of repository; the registry keeps two: an adapter repository of that name, else a
/// model repository.
async fn at_revision(app: &AppState, ns: &str, name: &str, revision: &str) -> HfResult<AtRevision> {
    let repo_missing = || HfError::RepoNotFound(format!("repository {ns}/{name} does not exist"));
    let (Ok(ns), Ok(name)) = (parse_name("namespace", ns), parse_name("name", name)) else {
        return Err(repo_missing());
    };
    let missing = || HfError::RevisionNotFound(format!("{ns}/{name} has no revision `{revision}`"));
    let parsed;
    let pick = if revision == "main" {
        Pick::Selector(None)
    } else if is_commit(revision) {
        Pick::Commit(revision)
    } else {
        parsed = Selector::parse(revision).map_err(|_| missing())?;
        Pick::Selector(Some(&parsed))
    };
    let mut found = None;
    for kind in [Kind::Adapter, Kind::Model] {
        match catalog::pick(&app.db, kind, &ns, &name, pick).await {
            Ok(r) => {
                found = Some((kind, r));
                break;
            }
            Err(CatalogError::RepositoryNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let Some((kind, resolved)) = found else {
        return Err(
            match app
                .db
                .hub_repository(ns.as_str(), name.as_str())
                .await
                .map_err(HfError::api)?
            {
                Some(created_at) if revision == "main" => HfError::EmptyRepo {
                    id: format!("{ns}/{name}"),
                    created_at,
                },
                Some(_) => missing(),
                None => repo_missing(),
            },
        );
    };
    let row = catalog::version(&app.db, kind, &ns, &name, &resolved.version).await?;
    let info = catalog::version_info_of(kind, ns.as_str(), name.as_str(), &row)?;
    Ok(AtRevision {
        kind,
        id: format!("{ns}/{name}"),
        version: info.version,
        commit: commit_of(&info.manifest_digest),
        created_at: info.created_at,
        manifest: info.manifest,
        summary: info.summary,
    })
}
