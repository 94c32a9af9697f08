//! `GET /hf/api/models/{ns}/{name}[/revision/{revision}]` (the model info: `sha`,
//! `siblings`, `cardData` marking a PEFT adapter or a model), `GET …/tree/{revision}[/{path}]`
//! (paged with a `Link` header) and `POST …/paths-info/{revision}`.

use std::collections::BTreeSet;

use adapter_core::api::Summary;
use adapter_core::manifest::{FileEntry, Kind};
use axum::Json;
use axum::extract::{Query, RawForm, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AtRevision, HfError, HfResult, HubPath, PREFIX, at_revision, iso};
use crate::app::AppState;

/// Most tree entries on one page.
const PAGE: usize = 1000;
/// The size of a Git LFS pointer file, as the Hub reports it.
const POINTER_SIZE: u64 = 134;

#[derive(Debug, Deserialize)]
pub struct RepoPath {
    ns: String,
    name: String,
}

#[derive(Debug, Deserialize)]
pub struct RevisionPath {
    pub(super) ns: String,
    pub(super) name: String,
    pub(super) revision: String,
}

#[derive(Debug, Deserialize)]
pub struct TreePath {
    ns: String,
    name: String,
    revision: String,
    path: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct TreeQuery {
    recursive: Option<String>,
    cursor: Option<String>,
}

/// A file as a tree entry (`lfs.oid` is its sha256; `oid` the first 40 hex of it: the
/// registry keeps no Git objects).
fn file_entry(f: &FileEntry) -> Value {
    let hex = f.digest.hex();
    json!({
        "type": "file",
        "oid": &hex[..40],
        "size": f.size,
        "path": f.path.as_str(),
        "lfs": { "oid": hex, "size": f.size, "pointerSize": POINTER_SIZE },
    })
}

fn info_of(at: &AtRevision) -> Value {
    let siblings: Vec<Value> = at
        .manifest
        .files()
        .iter()
        .map(|f| {
            json!({
                "rfilename": f.path.as_str(),
                "size": f.size,
                "lfs": { "sha256": f.digest.hex(), "size": f.size, "pointerSize": POINTER_SIZE },
            })
        })
        .collect();
    let (library, base) = match (&at.summary, at.kind) {
        // The registered base (a repo id this registry serves) before the config's name.
        (Summary::Adapter(a), _) => (
            "peft",
            a.base
                .reference
                .as_deref()
                .map(|r| r.split('@').next().unwrap_or(r).to_owned())
                .or_else(|| a.base.name_or_path.clone()),
        ),
        (_, Kind::Adapter) => ("peft", None),
        (Summary::Model(m), _) if m.format.as_deref() == Some("gguf") => ("gguf", None),
        _ => ("transformers", None),
    };
    let mut card = json!({ "library_name": library });
    let mut tags = vec![library.to_owned(), format!("version:{}", at.version)];
    if let Some(b) = base {
        card["base_model"] = json!(b);
        tags.push(format!("base_model:adapter:{b}"));
    }
    json!({
        "_id": at.commit,
        "id": at.id,
        "modelId": at.id,
        "sha": at.commit,
        "lastModified": iso(at.created_at),
        "createdAt": iso(at.created_at),
        "private": false,
        "disabled": false,
        "gated": false,
        "library_name": library,
        "tags": tags,
        "cardData": card,
        "siblings": siblings,
    })
}

/// The model info at a revision; an empty repository's (created, no version yet) has no
/// commit and no files.
async fn info_at_revision(
    app: &AppState,
    ns: &str,
    name: &str,
    revision: &str,
) -> HfResult<Json<Value>> {
    match at_revision(app, ns, name, revision).await {
        Ok(at) => Ok(Json(info_of(&at))),
        Err(HfError::EmptyRepo { id, created_at }) => Ok(Json(json!({
            "id": id,
            "modelId": id,
            "sha": null,
            "lastModified": iso(created_at),
            "createdAt": iso(created_at),
            "private": false,
            "disabled": false,
            "gated": false,
            "tags": [],
            "siblings": [],
        }))),
        Err(e) => Err(e),
    }
}

pub async fn info(
    State(app): State<AppState>,
    HubPath(p): HubPath<RepoPath>,
) -> HfResult<Json<Value>> {
    info_at_revision(&app, &p.ns, &p.name, "main").await
}

pub async fn info_at(
    State(app): State<AppState>,
    HubPath(p): HubPath<RevisionPath>,
) -> HfResult<Json<Value>> {
    info_at_revision(&app, &p.ns, &p.name, &p.revision).await
}

/// The entries under `dir` (`""`: the root): files, and the folders on the way (all levels
/// when `recursive`, else only the next one).
fn entries(at: &AtRevision, dir: &str, recursive: bool) -> HfResult<Vec<Value>> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{}/", dir.trim_end_matches('/'))
    };
    let mut folders = BTreeSet::new();
    let mut files = Vec::new();
    for f in at.manifest.files() {
        let Some(rest) = f.path.as_str().strip_prefix(&prefix) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        for i in 1..parts.len() {
            if !recursive && i > 1 {
                break;
            }
            folders.insert(format!("{prefix}{}", parts[..i].join("/")));
        }
        if recursive || parts.len() == 1 {
            files.push(file_entry(f));
        }
    }
    if !prefix.is_empty() && files.is_empty() && folders.is_empty() {
        return Err(HfError::EntryNotFound(format!(
            "{}@{} has no folder `{}`",
            at.id,
            at.version,
            dir.escape_debug()
        )));
    }
    let mut out: Vec<Value> = folders
        .into_iter()
        .map(|path| json!({ "type": "directory", "oid": "0".repeat(40), "size": 0, "path": path }))
        .collect();
    out.extend(files);
    Ok(out)
}

/// One page of entries, with `Link: <…>; rel="next"` when more follow.
fn page(p: &RevisionPath, dir: &str, q: &TreeQuery, all: Vec<Value>) -> HfResult<Response> {
    let from: usize = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse().map_err(|_| {
            HfError::api(crate::error::ApiError::new("invalid_cursor", "bad cursor"))
        })?,
    };
    let rest = all.len().saturating_sub(from);
    let items: Vec<Value> = all.into_iter().skip(from).take(PAGE).collect();
    let mut headers = HeaderMap::new();
    if rest > PAGE {
        let path = if dir.is_empty() {
            String::new()
        } else {
            format!("/{dir}")
        };
        let recursive = q.recursive.as_deref().unwrap_or("false");
        let next = format!(
            "<{PREFIX}/api/models/{}/{}/tree/{}{path}?recursive={recursive}&cursor={}>; rel=\"next\"",
            p.ns,
            p.name,
            p.revision,
            from + PAGE
        );
        if let Ok(v) = HeaderValue::from_str(&next) {
            headers.insert(header::LINK, v);
        }
    }
    Ok((headers, Json(items)).into_response())
}

fn truthy(v: Option<&str>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

pub async fn tree(
    State(app): State<AppState>,
    HubPath(p): HubPath<RevisionPath>,
    Query(q): Query<TreeQuery>,
) -> HfResult<Response> {
    tree_at(&app, p, "", &q).await
}

pub async fn tree_under(
    State(app): State<AppState>,
    HubPath(t): HubPath<TreePath>,
    Query(q): Query<TreeQuery>,
) -> HfResult<Response> {
    let p = RevisionPath {
        ns: t.ns,
        name: t.name,
        revision: t.revision,
    };
    tree_at(&app, p, &t.path, &q).await
}

/// One page of the entries under `dir` (`""`: the root) at the revision.
async fn tree_at(app: &AppState, p: RevisionPath, dir: &str, q: &TreeQuery) -> HfResult<Response> {
    let all = match at_revision(app, &p.ns, &p.name, &p.revision).await {
        Ok(at) => entries(&at, dir, truthy(q.recursive.as_deref()))?,
        Err(HfError::EmptyRepo { .. }) if dir.is_empty() => Vec::new(),
        Err(e) => return Err(e),
    };
    page(&p, dir, q, all)
}

/// `paths=a&paths=b` (form or JSON `{"paths": [...]}`): the entries of those that exist.
pub async fn paths_info(
    State(app): State<AppState>,
    HubPath(p): HubPath<RevisionPath>,
    RawForm(body): RawForm,
) -> HfResult<Json<Vec<Value>>> {
    let at = match at_revision(&app, &p.ns, &p.name, &p.revision).await {
        Ok(at) => at,
        Err(HfError::EmptyRepo { .. }) => return Ok(Json(Vec::new())),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<String> = form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "paths")
        .map(|(_, v)| v.into_owned())
        .collect();
    if paths.is_empty()
        && let Ok(v) = serde_json::from_slice::<Value>(&body)
    {
        paths = v["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
    }
    let mut out = Vec::new();
    for path in paths {
        if let Some(f) = at.manifest.file(&path) {
            out.push(file_entry(f));
        } else if at
            .manifest
            .files()
            .iter()
            .any(|f| f.path.as_str().starts_with(&format!("{path}/")))
        {
            out.push(
                json!({ "type": "directory", "oid": "0".repeat(40), "size": 0, "path": path }),
            );
        }
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_times() {
        use super::iso;
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_764_979_200), "2025-12-06T00:00:00.000Z");
        assert_eq!(iso(951_782_400 + 3661), "2000-02-29T01:01:01.000Z");
    }
}
