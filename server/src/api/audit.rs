//! `GET /v1/audit` (admin): every mutation, newest first.

use adapter_core::api::{AuditList, ErrorBody};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::app::AppState;
use crate::db::audit::AuditFilter;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, page_limit};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries of this actor (`NAME (tok_…)` or `anonymous`).
    actor: Option<String>,
    /// Only this action (`publish`, `alias.move`, …).
    action: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "list_audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page, newest first.", body = AuditList),
        (status = 400, description = "`invalid_query`, `invalid_cursor`.", body = ErrorBody),
        (status = 401, description = "`unauthenticated`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: needs `admin` over all namespaces.", body = ErrorBody),
    ),
)]
pub async fn list(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    let limit = page_limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let before = q
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                ApiError::new("invalid_cursor", "the cursor is not one this server issued")
            })
        })
        .transpose()?;
    let mut entries = app
        .db
        .audit(&AuditFilter {
            actor: q.actor.filter(|s| !s.is_empty()),
            action: q.action.filter(|s| !s.is_empty()),
            before,
            limit: i64::from(limit) + 1,
        })
        .await?;
    let next_cursor = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(Json(AuditList {
        entries,
        next_cursor,
    }))
}
