//! `POST /hf/api/models/{ns}/{name}/commit/{revision}`: a Hub commit (NDJSON: a `header`
//! line, then `file`, `lfsFile`, `deletedFile` and `deletedFolder` lines) becomes a new
//! immutable version.
//!
//! * **Which version.** The revision names it (`1.2.0`); `main` makes the next version after
//!   the highest: its patch + 1 (`1.2.0` → `1.2.1`), or the release of a highest
//!   pre-release (`2.0.0-rc.1` → `2.0.0`); the first is `1.0.0`. Any other revision (an
//!   alias, a range) is refused: aliases move with `adapterctl tag`, not with commits.
//! * **Which files.** As in Git, a commit changes a tree: it starts from the files of the
//!   version `main` resolves to (else the highest version), or of the named version itself
//!   when it exists (so re-sending the same commit is a no-op, and anything else is
//!   `version_exists`: versions are immutable). `parentCommit`, when sent, must be that
//!   version's commit id (412 `parent_mismatch` otherwise).
//! * **Checks.** Every path is checked as `adapterctl push` checks it (no traversal, no
//!   pickle checkpoints); the version is published through `publish`, with every check a
//!   `/v1` publish makes (strict safetensors, the PEFT config, the blobs readable by the
//!   caller); the model card's metadata must be YAML. An adapter whose config or model card
//!   names a registered model (`base_model: ns/name`) is recorded against it, pinned, with
//!   its content digest and shape fingerprint, and queued for validation against it.
//! * **Kept.** The commit's summary and description are the version's `metadata.commit`.

use std::collections::BTreeMap;

use adapter_core::api::{BaseModelRef, metadata};
use adapter_core::digest::Digest;
use adapter_core::manifest::{FileEntry, Kind, Manifest};
use adapter_core::name::Name;
use adapter_core::peft::{AdapterConfig, CONFIG_FILE};
use adapter_core::reference::Reference;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::checks::{CommitQuery, Target, addable, no_pull_requests, target_of};
use super::repos::RevisionPath;
use super::{HfError, HfResult, HubPath, card, commit_of, repo_names, repo_url};
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog::{self, CatalogError, Pick};
use crate::error::ApiError;
use crate::extract::{LimitedBytes, RepoPath, VersionPath, parse_json};
use crate::publish::{self, read::small_file};
use crate::uploads;

/// The largest commit body: small files travel inline (base64), large ones through LFS.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Most operations in one commit.
const MAX_OPERATIONS: usize = 100_000;
/// The model card, whose metadata may name the base model.
const CARD: &str = "README.md";

/// The next version after `highest` (see the module docs).
fn next_after(highest: Option<&semver::Version>) -> semver::Version {
    match highest {
        None => semver::Version::new(1, 0, 0),
        Some(h) if !h.pre.is_empty() => semver::Version::new(h.major, h.minor, h.patch),
        Some(h) => semver::Version::new(h.major, h.minor, h.patch + 1),
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "key", content = "value", rename_all = "camelCase")]
enum Line {
    Header(Header),
    File(InlineFile),
    LfsFile(LfsFile),
    DeletedFile(Deleted),
    DeletedFolder(Deleted),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    summary: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    parent_commit: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InlineFile {
    path: String,
    content: String,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LfsFile {
    path: String,
    oid: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    algo: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Deleted {
    path: String,
}

fn invalid_commit(message: impl Into<String>) -> HfError {
    HfError::api(ApiError::new("invalid_commit", message))
}

/// The header and the operations of an NDJSON body.
fn parse_lines(body: &[u8]) -> HfResult<(Header, Vec<Line>)> {
    let mut lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .enumerate()
        .map(|(i, l)| {
            parse_json::<Line>(l).map_err(|e| invalid_commit(format!("line {}: {e}", i + 1)))
        });
    let header = match lines.next().transpose()? {
        Some(Line::Header(h)) => h,
        _ => return Err(invalid_commit("a commit starts with its `header` line")),
    };
    let mut ops = Vec::new();
    for line in lines {
        let line = line?;
        if matches!(line, Line::Header(_)) {
            return Err(invalid_commit("a commit has one `header` line"));
        }
        if ops.len() == MAX_OPERATIONS {
            return Err(invalid_commit(format!(
                "at most {MAX_OPERATIONS} operations per commit"
            )));
        }
        ops.push(line);
    }
    if header.summary.trim().is_empty() {
        return Err(invalid_commit("the commit summary is empty"));
    }
    Ok((header, ops))
}

/// The repository's kind, if it exists.
async fn kind_of_repo(app: &AppState, ns: &Name, name: &Name) -> HfResult<Option<Kind>> {
    for kind in [Kind::Adapter, Kind::Model] {
        match catalog::repository(&app.db, kind, ns, name).await {
            Ok(_) => return Ok(Some(kind)),
            Err(CatalogError::RepositoryNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// The version the commit makes, and the version whose files it starts from (with its
/// manifest digest).
async fn plan(
    app: &AppState,
    kind: Option<Kind>,
    ns: &Name,
    name: &Name,
    target: Target,
) -> HfResult<(semver::Version, Option<(semver::Version, Digest)>)> {
    let Some(kind) = kind else {
        let version = match target {
            Target::Next => next_after(None),
            Target::Version(v) => v,
        };
        return Ok((version, None));
    };
    let repo = catalog::repository(&app.db, kind, ns, name).await?;
    let all = catalog::versions(&app.db, &repo).await?;
    let parsed: Vec<(semver::Version, Digest)> = all
        .iter()
        .filter_map(|v| Some((v.version.parse().ok()?, v.manifest_digest)))
        .collect();
    let version = match target {
        Target::Next => next_after(parsed.first().map(|(v, _)| v)),
        Target::Version(v) => v,
    };
    if let Some(same) = parsed.iter().find(|(v, _)| *v == version) {
        return Ok((version, Some(same.clone())));
    }
    let parent = match catalog::pick(&app.db, kind, ns, name, Pick::Selector(None)).await {
        Ok(r) => Some((r.version, r.manifest_digest)),
        Err(CatalogError::NoMatch { .. }) => parsed.first().cloned(),
        Err(e) => return Err(e.into()),
    };
    Ok((version, parent))
}

/// `POST /hf/api/models/{ns}/{name}/commit/{revision}`.
pub async fn commit(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    HubPath(p): HubPath<RevisionPath>,
    Query(q): Query<CommitQuery>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes<MAX_BODY>,
) -> HfResult<Json<Value>> {
    let (ns, name) = repo_names(&p.ns, &p.name)?;
    no_pull_requests(&q)?;
    let target = target_of(&p.revision)?;
    let token = caller
        .token
        .as_ref()
        .ok_or_else(|| HfError::api(ApiError::new("unauthenticated", "commits need a token")))?;
    let (header, ops) = parse_lines(&body)?;
    let existing_kind = kind_of_repo(&app, &ns, &name).await?;
    let (version, parent) = plan(&app, existing_kind, &ns, &name, target).await?;
    let parent_commit = parent.as_ref().map(|(_, d)| commit_of(d));
    if let Some(expected) = &header.parent_commit
        && parent_commit.as_ref() != Some(expected)
    {
        return Err(HfError::api(ApiError::with_details(
            "parent_mismatch",
            format!(
                "the commit expects parent {expected}, but {ns}/{name}@{version} would start \
                 from {}",
                parent_commit
                    .as_deref()
                    .unwrap_or("nothing (no version yet)")
            ),
            json!({ "expected": expected, "parent": parent_commit }),
        )));
    }

    // The tree: the parent's files, changed by the operations in order.
    let mut files: BTreeMap<String, FileEntry> = BTreeMap::new();
    let mut unsized_files: Vec<String> = Vec::new();
    if let (Some(kind), Some((parent_version, _))) = (existing_kind, &parent) {
        let row = catalog::version(&app.db, kind, &ns, &name, parent_version).await?;
        let info = catalog::version_info_of(kind, ns.as_str(), name.as_str(), &row)?;
        for f in info.manifest.files() {
            files.insert(f.path.to_string(), f.clone());
        }
    }
    let reader = caller.blob_reader();
    for op in ops {
        match op {
            Line::Header(_) => unreachable!("parse_lines refuses a second header"),
            Line::File(f) => {
                let path = addable(&f.path)?;
                if f.encoding.as_deref().is_some_and(|e| e != "base64") {
                    return Err(invalid_commit(format!(
                        "`{path}`: inline files are base64-encoded"
                    )));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(f.content.as_bytes())
                    .map_err(|e| invalid_commit(format!("`{path}`: not base64: {e}")))?;
                let digest = Digest::of_bytes(&bytes);
                let size = bytes.len() as u64;
                uploads::put_monolithic(&app, &digest, Body::from(bytes))
                    .await
                    .map_err(HfError::api)?;
                app.db
                    .add_blob_uploader(&digest, &token.id)
                    .await
                    .map_err(HfError::api)?;
                unsized_files.retain(|p| p != path.as_str());
                files.insert(path.to_string(), FileEntry { path, size, digest });
            }
            Line::LfsFile(f) => {
                let path = addable(&f.path)?;
                if f.algo.as_deref().is_some_and(|a| a != "sha256") {
                    return Err(invalid_commit(format!(
                        "`{path}`: LFS objects are named by their sha256"
                    )));
                }
                let digest = Digest::from_hex(&f.oid).map_err(|_| {
                    invalid_commit(format!(
                        "`{path}`: oid `{}` is not a sha256 (64 lowercase hex digits)",
                        f.oid.escape_debug()
                    ))
                })?;
                unsized_files.retain(|p| p != path.as_str());
                if f.size.is_none() {
                    unsized_files.push(path.to_string());
                }
                let size = f.size.unwrap_or(0);
                files.insert(path.to_string(), FileEntry { path, size, digest });
            }
            Line::DeletedFile(d) => {
                if files.remove(&d.path).is_none() {
                    return Err(HfError::EntryNotFound(format!(
                        "A file with this name doesn't exist: `{}`",
                        d.path.escape_debug()
                    )));
                }
                unsized_files.retain(|p| *p != d.path);
            }
            Line::DeletedFolder(d) => {
                let prefix = format!("{}/", d.path.trim_end_matches('/'));
                let before = files.len();
                files.retain(|p, _| !p.starts_with(&prefix));
                if files.len() == before {
                    return Err(HfError::EntryNotFound(format!(
                        "A folder with this name doesn't exist: `{}`",
                        d.path.escape_debug()
                    )));
                }
                unsized_files.retain(|p| !p.starts_with(&prefix));
            }
        }
    }
    if files.is_empty() {
        return Err(invalid_commit("a version holds at least one file"));
    }
    let kind = adapter_core::model::kind_of(|f| files.contains_key(f)).ok_or_else(|| {
        HfError::api(ApiError::new(
            "invalid_manifest",
            format!(
                "the commit leaves neither an adapter ({CONFIG_FILE}) nor a model ({}): \
                 nothing the registry holds",
                adapter_core::model::MODEL_MARKERS.join(", ")
            ),
        ))
    })?;
    if let Some(existing) = existing_kind
        && existing != kind
    {
        return Err(HfError::api(ApiError::with_details(
            "kind_mismatch",
            format!("{ns}/{name} holds {existing}s, but this commit leaves a {kind}"),
            json!({ "repository_kind": existing, "commit_kind": kind }),
        )));
    }

    // The blobs the caller may read, with their sizes (one query): only those are opened
    // below, and publish refuses the others. A size the client left out (a copied LFS file)
    // is the stored blob's.
    let digests: Vec<Digest> = files.values().map(|f| f.digest).collect();
    let readable = app
        .db
        .readable_blobs(&digests, &reader)
        .await
        .map_err(HfError::api)?;
    for p in &unsized_files {
        let entry = files.get_mut(p).expect("unsized files are in the tree");
        entry.size = readable.get(&entry.digest).copied().unwrap_or(0);
    }
    let read_small = |path: &'static str| {
        let entry = files.get(path).filter(|f| readable.contains_key(&f.digest));
        let app = &app;
        async move {
            match entry {
                Some(f) => small_file(app, "invalid_commit", path, &f.digest, f.size)
                    .await
                    .map(Some)
                    .map_err(HfError::api),
                None => Ok(None),
            }
        }
    };
    let mut meta = Map::new();
    meta.insert(
        metadata::COMMIT.into(),
        json!({ "summary": header.summary, "description": header.description }),
    );
    let card_meta = match read_small(CARD).await? {
        Some(bytes) => {
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                HfError::api(ApiError::new("invalid_card", "README.md is not UTF-8"))
            })?;
            card::front_matter(&text).map_err(|why| {
                HfError::api(ApiError::new("invalid_card", format!("README.md: {why}")))
            })?
        }
        None => None,
    };
    if kind == Kind::Adapter {
        let config_base = match read_small(CONFIG_FILE).await? {
            Some(bytes) => AdapterConfig::from_json_bytes(&bytes)
                .ok()
                .and_then(|c| c.base_model_name_or_path),
            None => None,
        };
        let mut candidates: Vec<String> = config_base.iter().cloned().collect();
        candidates.extend(
            card_meta
                .as_ref()
                .map(card::base_models)
                .unwrap_or_default(),
        );
        let mut base = BaseModelRef {
            name_or_path: config_base,
            ..BaseModelRef::default()
        };
        for c in candidates {
            let Ok(r) = c.parse::<Reference>() else {
                continue;
            };
            match catalog::repository(&app.db, Kind::Model, &r.namespace, &r.name).await {
                Ok(_) => {
                    base.reference = Some(r.to_string());
                    break;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        meta.insert(
            metadata::BASE.into(),
            serde_json::to_value(&base).map_err(|e| HfError::api(ApiError::internal(e)))?,
        );
    }
    let manifest = Manifest::new(kind, files.into_values().collect(), meta)
        .map_err(|e| HfError::api(ApiError::new("invalid_manifest", e.to_string())))?;
    let at = VersionPath {
        repo: RepoPath {
            kind,
            ns: ns.clone(),
            name: name.clone(),
        },
        version: version.clone(),
    };
    let published = publish::publish_claimed(&app, &reader, &at, manifest)
        .await
        .map_err(|e| {
            if e.code() == "version_exists" {
                HfError::api(ApiError::with_details(
                    "version_exists",
                    format!(
                        "{ns}/{name}@{version} exists with other files; versions are immutable: \
                         commit to `main` (the next version) or to a new version"
                    ),
                    json!({ "version": version.to_string() }),
                ))
            } else {
                HfError::api(e)
            }
        })?;
    let commit = commit_of(&published.info.manifest_digest);
    Ok(Json(json!({
        "commitOid": commit,
        "commitUrl": format!("{}/commit/{commit}", repo_url(&headers, &ns, &name)),
        "pullRequestUrl": null,
        "version": published.info.version,
        "created": published.created,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_version() {
        let v = |s: &str| semver::Version::parse(s).unwrap();
        assert_eq!(next_after(None), v("1.0.0"));
        assert_eq!(next_after(Some(&v("1.4.2"))), v("1.4.3"));
        assert_eq!(next_after(Some(&v("2.0.0-rc.1"))), v("2.0.0"));
    }

    #[test]
    fn revisions_a_commit_may_name() {
        assert_eq!(target_of("main").unwrap(), Target::Next);
        assert_eq!(
            target_of("1.2.0").unwrap(),
            Target::Version(semver::Version::new(1, 2, 0))
        );
        for bad in ["prod", "^1.2", "1.2", "", "refs/pr/1"] {
            assert!(target_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ndjson_bodies() {
        let ok = b"{\"key\":\"header\",\"value\":{\"summary\":\"s\",\"description\":\"\"}}\n\
                   {\"key\":\"lfsFile\",\"value\":{\"path\":\"a\",\"algo\":\"sha256\",\"oid\":\"x\",\"size\":1}}\n\
                   \n{\"key\":\"deletedFile\",\"value\":{\"path\":\"b\"}}\n";
        let (h, ops) = parse_lines(ok).unwrap();
        assert_eq!(h.summary, "s");
        assert_eq!(ops.len(), 2);
        for bad in [
            &b"{\"key\":\"lfsFile\",\"value\":{\"path\":\"a\",\"oid\":\"x\"}}\n"[..],
            b"{\"key\":\"header\",\"value\":{\"summary\":\"s\"}}\n{\"key\":\"header\",\"value\":{\"summary\":\"t\"}}",
            b"{\"key\":\"header\",\"value\":{\"summary\":\"s\"}}\n{\"key\":\"copyFile\",\"value\":{}}",
            b"{\"key\":\"header\",\"value\":{\"summary\":\"  \"}}",
            b"{\"key\":\"header\",\"value\":{\"summary\":\"s\",\"summary\":\"t\"}}",
            b"not json",
            b"",
        ] {
            assert!(parse_lines(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
