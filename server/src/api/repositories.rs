//! `GET /v1/{kind}`, `GET /v1/{kind}/{ns}/{name}`, `…/versions`, `…/resolve[/{selector}]`.

use std::collections::BTreeMap;

use adapter_core::api::{ErrorBody, RepositoryInfo, RepositoryList, ResolveResponse, VersionList};
use adapter_core::manifest::Kind;
use adapter_core::name::{AliasName, Name};
use adapter_core::reference::{Selector, resolve as resolve_selector};
use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiPath, ApiQuery};
use crate::app::AppState;
use crate::db::repositories::{RepoFilter, RepoRow};
use crate::error::{ApiError, ApiResult};
use crate::publish::info::{sorted_summaries, version_records};
use crate::publish::parse_name;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;
/// Longest accepted search string.
pub const MAX_Q: usize = 256;

pub(super) async fn repository(
    app: &AppState,
    kind: Kind,
    ns: &Name,
    name: &Name,
) -> ApiResult<RepoRow> {
    app.db
        .repository(kind, ns.as_str(), name.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                "repository_not_found",
                format!("{kind} repository {ns}/{name} does not exist"),
            )
        })
}

async fn info_of(app: &AppState, kind: Kind, repo: &RepoRow) -> ApiResult<RepositoryInfo> {
    let heads = app.db.version_heads(repo.id).await?;
    let records = version_records(&heads);
    let aliases = app.db.alias_map(repo.id).await?;
    let latest = resolve_selector(None, &records, &alias_targets(&aliases))
        .ok()
        .map(|r| r.version.to_string());
    Ok(RepositoryInfo {
        kind,
        namespace: repo.namespace.clone(),
        name: repo.name.clone(),
        version_count: heads.len() as u64,
        latest,
        aliases,
        created_at: repo.created_at,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this namespace.
    namespace: Option<String>,
    /// Case-insensitive literal substring of `ns/name` (at most 256 bytes).
    q: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

fn encode_cursor(r: &RepoRow) -> String {
    hex::encode(format!("{}/{}", r.namespace, r.name))
}

fn decode_cursor(c: &str) -> ApiResult<(String, String)> {
    let invalid = || ApiError::new("invalid_cursor", "the cursor is not one this server issued");
    let bytes = hex::decode(c).map_err(|_| invalid())?;
    let s = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (ns, name) = s.split_once('/').ok_or_else(invalid)?;
    let ns = Name::new(ns).map_err(|_| invalid())?;
    let name = Name::new(name).map_err(|_| invalid())?;
    Ok((ns.into(), name.into()))
}

/// List repositories of this kind, sorted by namespace then name.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "list_repositories",
    params(ListQuery),
    responses(
        (status = 200, description = "One page.", body = RepositoryList),
        (status = 400, description = "`invalid_query` (also `limit` outside 1..=100), `invalid_name`, `invalid_cursor`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    Extension(kind): Extension<Kind>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<RepositoryList>> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let namespace = q
        .namespace
        .filter(|s| !s.is_empty())
        .map(|s| parse_name("namespace", &s).map(String::from))
        .transpose()?;
    let search = q.q.filter(|s| !s.is_empty()).map(|s| s.to_lowercase());
    if search.as_ref().is_some_and(|s| s.len() > MAX_Q) {
        return Err(ApiError::new(
            "invalid_query",
            format!("q is at most {MAX_Q} bytes"),
        ));
    }
    let after = q
        .cursor
        .filter(|s| !s.is_empty())
        .map(|c| decode_cursor(&c))
        .transpose()?;
    let filter = RepoFilter {
        namespace,
        q: search,
        after,
        limit: i64::from(limit) + 1,
    };
    let mut rows = app.db.list_repositories(kind, &filter).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(encode_cursor)
    } else {
        None
    };
    let mut repositories = Vec::with_capacity(rows.len());
    for r in &rows {
        repositories.push(info_of(&app, kind, r).await?);
    }
    Ok(Json(RepositoryList {
        repositories,
        next_cursor,
    }))
}

fn names(ns: &str, name: &str) -> ApiResult<(Name, Name)> {
    Ok((parse_name("namespace", ns)?, parse_name("name", name)?))
}

/// A repository.
#[utoipa::path(
    get,
    path = "/{ns}/{name}",
    operation_id = "get_repository",
    params(("ns" = String, Path, description = "Namespace (name rules: docs/FORMATS.md)."), ("name" = String, Path, description = "Repository name.")),
    responses(
        (status = 200, description = "The repository.", body = RepositoryInfo),
        (status = 400, description = "`invalid_name`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn info(
    State(app): State<AppState>,
    Extension(kind): Extension<Kind>,
    ApiPath((ns, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<RepositoryInfo>> {
    let (ns, name) = names(&ns, &name)?;
    let repo = repository(&app, kind, &ns, &name).await?;
    Ok(Json(info_of(&app, kind, &repo).await?))
}

/// A repository's versions, newest semver first.
#[utoipa::path(
    get,
    path = "/{ns}/{name}/versions",
    operation_id = "list_versions",
    params(("ns" = String, Path, description = "Namespace (name rules: docs/FORMATS.md)."), ("name" = String, Path, description = "Repository name.")),
    responses(
        (status = 200, description = "The versions.", body = VersionList),
        (status = 400, description = "`invalid_name`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn versions(
    State(app): State<AppState>,
    Extension(kind): Extension<Kind>,
    ApiPath((ns, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<VersionList>> {
    let (ns, name) = names(&ns, &name)?;
    let repo = repository(&app, kind, &ns, &name).await?;
    let heads = app.db.version_heads(repo.id).await?;
    Ok(Json(VersionList {
        versions: sorted_summaries(&heads),
    }))
}

async fn resolve_in(
    app: &AppState,
    kind: Kind,
    ns: &str,
    name: &str,
    selector: Option<&str>,
) -> ApiResult<ResolveResponse> {
    let (ns, name) = names(ns, name)?;
    let selector = selector
        .map(|s| {
            Selector::parse(s).map_err(|e| {
                ApiError::new("invalid_selector", format!("`{}`: {e}", s.escape_debug()))
            })
        })
        .transpose()?;
    let repo = repository(app, kind, &ns, &name).await?;
    let records = version_records(&app.db.version_heads(repo.id).await?);
    let aliases = alias_targets(&app.db.alias_map(repo.id).await?);
    let r = resolve_selector(selector.as_ref(), &records, &aliases).map_err(|e| {
        ApiError::with_details(
            "no_match",
            format!("{ns}/{name}: {e}"),
            json!({ "selector": selector.as_ref().map(ToString::to_string) }),
        )
    })?;
    let version = r.version.to_string();
    let yank_reason = if r.yanked {
        app.db
            .yank_state(repo.id, &version)
            .await?
            .and_then(|y| y.reason)
    } else {
        None
    };
    Ok(ResolveResponse {
        version,
        manifest_digest: r.manifest_digest,
        yanked: r.yanked,
        yank_reason,
    })
}

/// Stored aliases as resolution takes them (rows that do not parse are skipped).
pub fn alias_targets(aliases: &BTreeMap<String, String>) -> BTreeMap<AliasName, semver::Version> {
    aliases
        .iter()
        .filter_map(|(a, v)| Some((AliasName::new(a.as_str()).ok()?, v.parse().ok()?)))
        .collect()
}

/// Resolve the latest version (highest, not yanked, not a pre-release).
#[utoipa::path(
    get,
    path = "/{ns}/{name}/resolve",
    operation_id = "resolve_latest",
    params(("ns" = String, Path, description = "Namespace (name rules: docs/FORMATS.md)."), ("name" = String, Path, description = "Repository name.")),
    responses(
        (status = 200, description = "The resolved version.", body = ResolveResponse),
        (status = 400, description = "`invalid_name`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `no_match`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn resolve_latest(
    State(app): State<AppState>,
    Extension(kind): Extension<Kind>,
    ApiPath((ns, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<ResolveResponse>> {
    Ok(Json(resolve_in(&app, kind, &ns, &name, None).await?))
}

/// Resolve a selector: exact version, semver range, alias or manifest digest.
///
/// Every resolution failure is 404 `no_match` with the reason in `message`.
#[utoipa::path(
    get,
    path = "/{ns}/{name}/resolve/{selector}",
    operation_id = "resolve",
    params(("ns" = String, Path, description = "Namespace (name rules: docs/FORMATS.md)."), ("name" = String, Path, description = "Repository name."), ("selector" = String, Path, description = "An exact version, a semver range, an alias, or a `sha256:` manifest digest.")),
    responses(
        (status = 200, description = "The resolved version.", body = ResolveResponse),
        (status = 400, description = "`invalid_name`, `invalid_selector`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `no_match`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn resolve(
    State(app): State<AppState>,
    Extension(kind): Extension<Kind>,
    ApiPath((ns, name, selector)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<ResolveResponse>> {
    Ok(Json(
        resolve_in(&app, kind, &ns, &name, Some(&selector)).await?,
    ))
}
