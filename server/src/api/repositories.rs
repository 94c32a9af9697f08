//! `GET /v1/{kind}` (search), `GET /v1/{kind}/{ns}/{name}`, `…/versions`, `…/resolve[/{selector}]`.

use adapter_core::api::{
    ErrorBody, MatchedVersion, RepositoryInfo, RepositoryList, ResolveResponse, VersionList,
};
use adapter_core::manifest::Kind;
use adapter_core::reference::Selector;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::{Extension, Json};

use super::{cached, search};
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog;
use crate::db::search::{After, Hit, SearchFilter, SortKey};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, RepoPath};

/// The parameters of `GET /v1/{kind}` (documentation only: the raw query is parsed by
/// `search::parse`, because `target`, `label` and `eval` repeat).
#[allow(dead_code)]
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Only this namespace.
    namespace: Option<String>,
    /// Case-insensitive literal substring of `ns/name` or of the base model's name.
    q: Option<String>,
    /// Base model: a name (`base_model_name_or_path`), a registered reference
    /// (`ns/name` or `ns/name@version`), or a `sha256:` content digest or shape fingerprint.
    base: Option<String>,
    /// A model `ns/name` (or `ns/name@VERSION`): only versions whose validation against it
    /// (the `validate` job) ended `compatible` or `compatible_with_warnings`.
    compatible_with: Option<String>,
    /// Target module (e.g. `q_proj`); repeat to require several.
    #[param(explode = true)]
    target: Option<Vec<String>>,
    /// Smallest rank of every adapted module is at least this.
    #[param(minimum = 1)]
    rank_min: Option<u32>,
    /// Largest rank of every adapted module is at most this.
    #[param(minimum = 1)]
    rank_max: Option<u32>,
    /// `lora`, `dora`, `rslora` or `rslora+dora`.
    variant: Option<String>,
    /// `key=value` (or `key`: present); repeatable, all must hold.
    #[param(explode = true)]
    label: Option<Vec<String>>,
    /// `benchmark:metric` OP number (OP: `>=`, `>`, `<=`, `<`, `=`) over the latest value of
    /// that metric; repeatable, all must hold. Example: `mmlu:acc>=0.6`.
    #[param(explode = true)]
    eval: Option<Vec<String>>,
    /// `name` (default), `-name`, `created`, `-created`, `eval:BENCHMARK:METRIC`,
    /// `-eval:BENCHMARK:METRIC` (versions without that metric last).
    sort: Option<String>,
    /// `next_cursor` of the previous page (bound to the same parameters).
    cursor: Option<String>,
    /// Page size, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// Search repositories of this kind.
///
/// One entry per repository: the newest (last published) non-yanked version that passes
/// every filter is `matched`, with its facts, labels and latest evals. Repositories with
/// no such version are left out.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "list_repositories",
    params(SearchParams),
    responses(
        (status = 200, description = "One page.", body = RepositoryList),
        (status = 400, description = "`invalid_query` (unknown or repeated parameter, `limit` outside 1..=100), `invalid_name`, `invalid_filter` (details `{\"param\"}`), `invalid_sort`, `invalid_cursor`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    Extension(kind): Extension<Kind>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    // The page depends on the query and on what the caller may see.
    let visible = format!("{:?}", caller.visible_namespaces());
    let key = cached::key(&[
        "search",
        kind.as_str(),
        raw.as_deref().unwrap_or(""),
        &visible,
    ]);
    cached::json(&app, &caller, key, || {
        search_page(&app, kind, &caller, raw.as_deref())
    })
    .await
}

/// One page of `GET /v1/{kind}?{raw}` as `caller` sees it (the HTML search page calls it too).
pub async fn search_page(
    app: &AppState,
    kind: Kind,
    caller: &Caller,
    raw: Option<&str>,
) -> ApiResult<RepositoryList> {
    let req = search::parse(raw)?;
    // A namespace-limited token sees only its namespaces.
    let filter = SearchFilter {
        visible: caller.visible_namespaces(),
        ..req.filter.clone()
    };
    let secret = app.db.secret(search::CURSOR_SECRET).await?;
    let after = req
        .cursor
        .as_deref()
        .map(|c| req.decode_cursor(&secret, c))
        .transpose()?;
    let limit = req.limit as usize;
    let mut hits = app
        .db
        .search(kind, &filter, &req.sort, after.as_ref(), limit as i64 + 1)
        .await?;
    let next_cursor = if hits.len() > limit {
        hits.truncate(limit);
        hits.last()
            .map(|h| req.encode_cursor(&secret, &position(&req.sort.key, h)))
    } else {
        None
    };
    let ids: Vec<i64> = hits.iter().map(|h| h.version_id).collect();
    let mut facts = app.db.facts_of(&ids).await?;
    let mut labels = app.db.labels_of(&ids).await?;
    let mut evals = app.db.latest_evals_of(&ids).await?;
    let infos =
        catalog::repository_infos(&app.db, kind, hits.iter().map(|h| h.repo.clone()).collect())
            .await?;
    let mut repositories = Vec::with_capacity(hits.len());
    for (h, mut info) in hits.iter().zip(infos) {
        info.matched = Some(MatchedVersion {
            version: h.version.clone(),
            manifest_digest: h.manifest_digest.parse().map_err(ApiError::internal)?,
            created_at: h.version_created_at,
            facts: facts.remove(&h.version_id).unwrap_or_default(),
            labels: labels.remove(&h.version_id).unwrap_or_default(),
            evals: evals.remove(&h.version_id).unwrap_or_default(),
        });
        repositories.push(info);
    }
    Ok(RepositoryList {
        repositories,
        next_cursor,
    })
}

/// The keyset position of a hit under this sort.
fn position(key: &SortKey, h: &Hit) -> After {
    match key {
        SortKey::Name => After::Name {
            namespace: h.repo.namespace.clone(),
            name: h.repo.name.clone(),
        },
        SortKey::Created => After::Created {
            created_at: h.version_created_at,
            version_id: h.version_id,
        },
        SortKey::Eval { .. } => After::Eval {
            value: h.sort_value,
            namespace: h.repo.namespace.clone(),
            name: h.repo.name.clone(),
        },
    }
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
pub async fn info(State(app): State<AppState>, p: RepoPath) -> ApiResult<Json<RepositoryInfo>> {
    let repo = catalog::repository(&app.db, p.kind, &p.ns, &p.name).await?;
    Ok(Json(
        catalog::repository_info(&app.db, p.kind, &repo).await?,
    ))
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
pub async fn versions(State(app): State<AppState>, p: RepoPath) -> ApiResult<Json<VersionList>> {
    let repo = catalog::repository(&app.db, p.kind, &p.ns, &p.name).await?;
    Ok(Json(VersionList {
        versions: catalog::versions(&app.db, &repo).await?,
    }))
}

async fn resolve_in(
    app: &AppState,
    p: &RepoPath,
    selector: Option<&str>,
) -> ApiResult<ResolveResponse> {
    let selector = selector
        .map(|s| {
            Selector::parse(s).map_err(|e| {
                ApiError::new("invalid_selector", format!("`{}`: {e}", s.escape_debug()))
            })
        })
        .transpose()?;
    let r = catalog::resolve(&app.db, p.kind, &p.ns, &p.name, selector.as_ref()).await?;
    let version = r.version.to_string();
    let yank_reason = if r.yanked {
        app.db
            .yank_state(r.version_id)
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
    Extension(caller): Extension<Caller>,
    p: RepoPath,
) -> ApiResult<Response> {
    let key = cached::key(&["resolve", p.kind.as_str(), p.ns.as_str(), p.name.as_str()]);
    cached::json(&app, &caller, key, || resolve_in(&app, &p, None)).await
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
    Extension(caller): Extension<Caller>,
    p: RepoPath,
    ApiPath(SelectorParam { selector }): ApiPath<SelectorParam>,
) -> ApiResult<Response> {
    let key = cached::key(&[
        "resolve",
        p.kind.as_str(),
        p.ns.as_str(),
        p.name.as_str(),
        &selector,
    ]);
    cached::json(&app, &caller, key, || resolve_in(&app, &p, Some(&selector))).await
}

/// The `{selector}` path parameter.
#[derive(Debug, serde::Deserialize)]
pub struct SelectorParam {
    selector: String,
}
