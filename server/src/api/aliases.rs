//! `…/{ns}/{name}/aliases[/{alias}[/history|/gate]]`: compare-and-swap alias moves with
//! history, and the gates a move must pass (docs/API.md, "Aliases, gates, yank").

use adapter_core::api::{
    AliasHistory, AliasHistoryEntry, AliasInfo, AliasList, AliasMove, ErrorBody, GateFailure,
    GateInfo, GateSpec, MAX_GATE_CONDITIONS, check_reason,
};
use adapter_core::name::AliasName;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::auth::{AuditDetails, Caller};
use crate::catalog;
use crate::db::aliases::{AliasChange, AliasRow, ChangeOutcome, GateRow};
use crate::db::repositories::RepoRow;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AliasPath, ApiQuery, JsonBody, RepoPath, parse_version};

fn parse_reason(reason: Option<&str>, required: bool) -> ApiResult<()> {
    check_reason(reason, required).map_err(|m| ApiError::new("invalid_reason", m))
}

/// The repository the path names.
async fn repository(app: &AppState, p: &RepoPath) -> ApiResult<RepoRow> {
    Ok(catalog::repository(&app.db, p.kind, &p.ns, &p.name).await?)
}

fn info(row: AliasRow) -> AliasInfo {
    AliasInfo {
        alias: row.alias,
        version: row.version,
        updated_at: row.updated_at,
        updated_by: row.updated_by,
    }
}

fn etag(version: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{version}\"")).ok()
}

/// The expectation an `If-Match` header carries: one version, `"1.2.0"` (quotes optional);
/// `None` when the header is absent.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            "invalid_precondition",
            "If-Match must be one version, e.g. `\"1.2.0\"`",
        )
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    if s.is_empty() || s == "*" || s.contains(',') || s.contains('"') {
        return Err(bad());
    }
    Ok(Some(parse_version(s)?.to_string()))
}

/// The expectation from the body or `If-Match` (not both).
fn expectation(body: Option<&str>, headers: &HeaderMap) -> ApiResult<Option<String>> {
    let body = body
        .map(|v| parse_version(v).map(|v| v.to_string()))
        .transpose()?;
    match (body, if_match(headers)?) {
        (Some(_), Some(_)) => Err(ApiError::new(
            "invalid_precondition",
            "give the expected version in `expect` or in If-Match, not both",
        )),
        (b, h) => Ok(b.or(h)),
    }
}

fn refused(alias: &AliasName, expected: Option<&str>, outcome: ChangeOutcome) -> ApiError {
    match outcome {
        ChangeOutcome::Conflict { current } => ApiError::with_details(
            "alias_conflict",
            format!(
                "alias `{alias}` points to {}, not {} as expected",
                current.as_deref().unwrap_or("nothing (it does not exist)"),
                expected.unwrap_or("nothing (a new alias)")
            ),
            json!({ "alias": alias.as_str(), "expected": expected, "current": current }),
        ),
        ChangeOutcome::GateFailed(failures) => gate_failed(alias, &failures),
        other => ApiError::internal(anyhow::anyhow!("unexpected alias outcome {other:?}")),
    }
}

fn gate_failed(alias: &AliasName, failures: &[GateFailure]) -> ApiError {
    let list: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
    ApiError::with_details(
        "gate_failed",
        format!(
            "the gate of alias `{alias}` refused the move: {}",
            list.join("; ")
        ),
        json!({ "alias": alias.as_str(), "failures": failures }),
    )
}

/// The aliases of a repository.
#[utoipa::path(
    get,
    path = "/{ns}/{name}/aliases",
    operation_id = "list_aliases",
    params(("ns" = String, Path, description = "Namespace."), ("name" = String, Path, description = "Repository name.")),
    responses(
        (status = 200, description = "Every alias, by name.", body = AliasList),
        (status = 400, description = "`invalid_name`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn list(State(app): State<AppState>, p: RepoPath) -> ApiResult<Json<AliasList>> {
    let repo = repository(&app, &p).await?;
    let aliases = app
        .db
        .aliases(repo.id)
        .await?
        .into_iter()
        .map(info)
        .collect();
    Ok(Json(AliasList { aliases }))
}

/// One alias (with `ETag: "<version>"`, usable as `If-Match` for the next move).
#[utoipa::path(
    get,
    path = "/{ns}/{name}/aliases/{alias}",
    operation_id = "get_alias",
    params(("ns" = String, Path, description = "Namespace."), ("name" = String, Path, description = "Repository name."), ("alias" = String, Path, description = "Alias name (starts with a letter; not `v<digit>…`).")),
    responses(
        (status = 200, description = "The alias.", body = AliasInfo),
        (status = 400, description = "`invalid_name`, `invalid_alias`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `alias_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    AliasPath { repo: p, alias }: AliasPath,
) -> ApiResult<Response> {
    let repo = repository(&app, &p).await?;
    let row = app
        .db
        .alias(repo.id, alias.as_str())
        .await?
        .ok_or_else(|| alias_not_found(&alias))?;
    let mut res = Json(info(row.clone())).into_response();
    if let Some(v) = etag(&row.version) {
        res.headers_mut().insert(header::ETAG, v);
    }
    Ok(res)
}

fn alias_not_found(alias: &AliasName) -> ApiError {
    ApiError::new("alias_not_found", format!("alias `{alias}` does not exist"))
}

/// Create or move an alias, compare-and-swap.
///
/// `expect` (or `If-Match`) is the version the caller believes the alias points to; `null`:
/// it must not exist yet. A stale expectation is 412 `alias_conflict` with the current
/// target in details. The alias's gate is evaluated on the new target; a refusal is 409
/// `gate_failed` listing every failing condition. The move and its history row are written
/// in one transaction.
#[utoipa::path(
    put,
    path = "/{ns}/{name}/aliases/{alias}",
    operation_id = "move_alias",
    params(("ns" = String, Path, description = "Namespace."), ("name" = String, Path, description = "Repository name."), ("alias" = String, Path, description = "Alias name (starts with a letter; not `v<digit>…`)."), ("If-Match" = Option<String>, Header, description = "The expected current version (`\"1.1.0\"`), instead of `expect`.")),
    request_body(content = AliasMove, description = "Target, expectation, reason."),
    responses(
        (status = 201, description = "Created.", body = AliasInfo),
        (status = 200, description = "Moved (or already pointing there: nothing recorded).", body = AliasInfo),
        (status = 400, description = "`invalid_name`, `invalid_alias`, `invalid_version`, `invalid_reason`, `invalid_precondition`, `invalid_json`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `version_not_found` (the target).", body = ErrorBody),
        (status = 409, description = "`gate_failed` (details `{\"alias\", \"failures\": [GateFailure]}`), `conflict`.", body = ErrorBody),
        (status = 412, description = "`alias_conflict` (details `{\"alias\", \"expected\", \"current\"}`).", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn put(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    AliasPath { repo: p, alias }: AliasPath,
    headers: HeaderMap,
    JsonBody(body): JsonBody<AliasMove>,
) -> ApiResult<Response> {
    let repo = repository(&app, &p).await?;
    let to = parse_version(&body.version)?.to_string();
    let expect = expectation(body.expect.as_deref(), &headers)?;
    parse_reason(body.reason.as_deref(), false)?;
    let actor = caller.actor();
    let change = AliasChange {
        repo_id: repo.id,
        alias: alias.as_str(),
        to: Some(&to),
        expect: expect.as_deref(),
        actor: &actor,
        reason: body.reason.as_deref(),
    };
    let (status, row) = match app.db.change_alias(&change).await? {
        ChangeOutcome::Moved { row, created } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, row)
        }
        ChangeOutcome::Unchanged(row) => (StatusCode::OK, row),
        ChangeOutcome::TargetMissing => {
            return Err(ApiError::with_details(
                "version_not_found",
                format!("{}/{}@{to} does not exist", repo.namespace, repo.name),
                json!({ "version": to }),
            ));
        }
        other => return Err(refused(&alias, expect.as_deref(), other)),
    };
    let mut res = (status, Json(info(row.clone()))).into_response();
    if let Some(v) = etag(&row.version) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res.extensions_mut().insert(AuditDetails(json!({
        "alias": alias.as_str(),
        "from": expect,
        "to": row.version,
        "reason": body.reason,
    })));
    Ok(res)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// The version the alias must point to now (or `If-Match`); required.
    expect: Option<String>,
    /// Why (kept in the history; at most 1024 bytes).
    reason: Option<String>,
}

/// Delete an alias, compare-and-swap (`?expect=` or `If-Match` is required); recorded in the
/// history with `to: null`.
#[utoipa::path(
    delete,
    path = "/{ns}/{name}/aliases/{alias}",
    operation_id = "delete_alias",
    params(("ns" = String, Path, description = "Namespace."), ("name" = String, Path, description = "Repository name."), ("alias" = String, Path, description = "Alias name."), DeleteQuery, ("If-Match" = Option<String>, Header, description = "The expected current version, instead of `expect`.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`invalid_name`, `invalid_alias`, `invalid_version`, `invalid_reason`, `invalid_precondition` (no expectation), `invalid_query`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`.", body = ErrorBody),
        (status = 412, description = "`alias_conflict` (details `{\"alias\", \"expected\", \"current\"}`; `current` null when it does not exist).", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    AliasPath { repo: p, alias }: AliasPath,
    ApiQuery(q): ApiQuery<DeleteQuery>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let repo = repository(&app, &p).await?;
    let expect = expectation(q.expect.as_deref(), &headers)?.ok_or_else(|| {
        ApiError::new(
            "invalid_precondition",
            "deleting an alias needs the version it points to (`?expect=` or If-Match)",
        )
    })?;
    parse_reason(q.reason.as_deref(), false)?;
    let actor = caller.actor();
    let change = AliasChange {
        repo_id: repo.id,
        alias: alias.as_str(),
        to: None,
        expect: Some(&expect),
        actor: &actor,
        reason: q.reason.as_deref(),
    };
    match app.db.change_alias(&change).await? {
        ChangeOutcome::Deleted => Ok(StatusCode::NO_CONTENT),
        other => Err(refused(&alias, Some(&expect), other)),
    }
}

/// Every move of an alias, oldest first: who, when, from, to, why.
#[utoipa::path(
    get,
    path = "/{ns}/{name}/aliases/{alias}/history",
    operation_id = "alias_history",
    params(("ns" = String, Path, description = "Namespace."), ("name" = String, Path, description = "Repository name."), ("alias" = String, Path, description = "Alias name.")),
    responses(
        (status = 200, description = "The history (also of a deleted alias).", body = AliasHistory),
        (status = 400, description = "`invalid_name`, `invalid_alias`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `alias_not_found` (never existed).", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn history(
    State(app): State<AppState>,
    AliasPath { repo: p, alias }: AliasPath,
) -> ApiResult<Json<AliasHistory>> {
    let repo = repository(&app, &p).await?;
    let rows = app.db.alias_history(repo.id, alias.as_str()).await?;
    if rows.is_empty() {
        return Err(alias_not_found(&alias));
    }
    let entries = rows
        .into_iter()
        .map(|h| AliasHistoryEntry {
            id: h.id,
            alias: h.alias,
            from: h.from,
            to: h.to,
            actor: h.actor,
            reason: h.reason,
            at: h.created_at,
        })
        .collect();
    Ok(Json(AliasHistory { entries }))
}

fn gate_info(g: GateRow) -> GateInfo {
    GateInfo {
        alias: g.alias,
        conditions: g.conditions,
        updated_at: g.updated_at,
        updated_by: g.updated_by,
    }
}

/// Set (replace) the gate of an alias; the alias need not exist yet.
#[utoipa::path(
    put,
    path = "/{ns}/{name}/aliases/{alias}/gate",
    operation_id = "set_gate",
    params(("ns" = String, Path, description = "Namespace."), ("name" = String, Path, description = "Repository name."), ("alias" = String, Path, description = "Alias name.")),
    request_body(content = GateSpec, description = "1 to 32 conditions (see `GateCondition`)."),
    responses(
        (status = 200, description = "The gate now in force.", body = GateInfo),
        (status = 400, description = "`invalid_name`, `invalid_alias`, `invalid_gate` (details `{\"index\"}`), `invalid_json`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn set_gate(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    AliasPath { repo: p, alias }: AliasPath,
    JsonBody(spec): JsonBody<GateSpec>,
) -> ApiResult<Json<GateInfo>> {
    let repo = repository(&app, &p).await?;
    if spec.conditions.is_empty() || spec.conditions.len() > MAX_GATE_CONDITIONS {
        return Err(ApiError::new(
            "invalid_gate",
            format!("a gate has 1 to {MAX_GATE_CONDITIONS} conditions (remove it with DELETE)"),
        ));
    }
    for (i, c) in spec.conditions.iter().enumerate() {
        c.check().map_err(|m| {
            ApiError::with_details(
                "invalid_gate",
                format!("condition {i}: {m}"),
                json!({ "index": i }),
            )
        })?;
    }
    let row = app
        .db
        .set_gate(repo.id, alias.as_str(), &spec.conditions, &caller.actor())
        .await?;
    Ok(Json(gate_info(row)))
}

fn gate_not_found(alias: &AliasName) -> ApiError {
    ApiError::new("gate_not_found", format!("alias `{alias}` has no gate"))
}

/// The gate of an alias.
#[utoipa::path(
    get,
    path = "/{ns}/{name}/aliases/{alias}/gate",
    operation_id = "get_gate",
    params(("ns" = String, Path, description = "Namespace."), ("name" = String, Path, description = "Repository name."), ("alias" = String, Path, description = "Alias name.")),
    responses(
        (status = 200, description = "The gate.", body = GateInfo),
        (status = 400, description = "`invalid_name`, `invalid_alias`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `gate_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn get_gate(
    State(app): State<AppState>,
    AliasPath { repo: p, alias }: AliasPath,
) -> ApiResult<Json<GateInfo>> {
    let repo = repository(&app, &p).await?;
    let row = app
        .db
        .gate(repo.id, alias.as_str())
        .await?
        .ok_or_else(|| gate_not_found(&alias))?;
    Ok(Json(gate_info(row)))
}

/// Remove the gate of an alias.
#[utoipa::path(
    delete,
    path = "/{ns}/{name}/aliases/{alias}/gate",
    operation_id = "delete_gate",
    params(("ns" = String, Path, description = "Namespace."), ("name" = String, Path, description = "Repository name."), ("alias" = String, Path, description = "Alias name.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "`invalid_name`, `invalid_alias`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `gate_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn delete_gate(
    State(app): State<AppState>,
    AliasPath { repo: p, alias }: AliasPath,
) -> ApiResult<StatusCode> {
    let repo = repository(&app, &p).await?;
    if app.db.delete_gate(repo.id, alias.as_str()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(gate_not_found(&alias))
    }
}
