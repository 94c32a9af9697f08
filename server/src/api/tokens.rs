//! `/v1/tokens` (admin) and `/v1/whoami`.

use adapter_core::api::{ErrorBody, TokenCreate, TokenCreated, TokenInfo, TokenList, WhoAmI};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};

use crate::app::AppState;
use crate::auth::{self, Caller};
use crate::db::now;
use crate::error::{ApiError, ApiResult};
use crate::extract::parse_name;
use crate::extract::{ApiPath, JsonBody};

/// Longest token name.
pub const MAX_TOKEN_NAME: usize = 64;
/// Most namespaces one token may list.
pub const MAX_TOKEN_NAMESPACES: usize = 100;

/// Check a creation request; returns the namespaces in normal form.
pub fn validate(req: &TokenCreate, now: i64) -> ApiResult<Option<Vec<String>>> {
    let invalid = |m: String| ApiError::new("invalid_token_request", m);
    let name_ok = !req.name.is_empty()
        && req.name.len() <= MAX_TOKEN_NAME
        && req
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !name_ok {
        return Err(invalid(format!(
            "name must be 1-{MAX_TOKEN_NAME} characters of letters, digits, `.`, `_`, `-`"
        )));
    }
    if req.expires_at.is_some_and(|at| at <= now) {
        return Err(invalid("expires_at is in the past".into()));
    }
    let Some(list) = &req.namespaces else {
        return Ok(None);
    };
    if list.is_empty() || list.len() > MAX_TOKEN_NAMESPACES {
        return Err(invalid(format!(
            "namespaces lists 1-{MAX_TOKEN_NAMESPACES} namespaces (omit it for all)"
        )));
    }
    let mut out: Vec<String> = list
        .iter()
        .map(|n| parse_name("namespace", n).map(String::from))
        .collect::<ApiResult<_>>()?;
    out.sort();
    out.dedup();
    Ok(Some(out))
}

/// Create a token. The secret is in this answer only; the registry keeps its sha256.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = TokenCreate,
    responses(
        (status = 201, description = "Created; `token` is the secret, shown once.", body = TokenCreated),
        (status = 400, description = "`invalid_json`, `invalid_token_request`, `invalid_name`.", body = ErrorBody),
        (status = 401, description = "`unauthenticated`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: needs `admin` over all namespaces.", body = ErrorBody),
    ),
)]
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<TokenCreate>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let namespaces = validate(&req, now())?;
    let (token, info) = auth::create_token(
        &app.db,
        &req.name,
        req.scope,
        namespaces.as_deref(),
        req.expires_at,
        &caller.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(TokenCreated { token, info })))
}

/// Every token, oldest first (never the secrets).
#[utoipa::path(
    get,
    path = "/v1/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "All tokens, revoked ones included.", body = TokenList),
        (status = 401, description = "`unauthenticated`.", body = ErrorBody),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
    ),
)]
pub async fn list(State(app): State<AppState>) -> ApiResult<Json<TokenList>> {
    Ok(Json(TokenList {
        tokens: app.db.tokens().await?,
    }))
}

/// Revoke a token (idempotent): it stops working at once.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id (`tok_…`).")),
    responses(
        (status = 200, description = "Revoked (or already revoked).", body = TokenInfo),
        (status = 401, description = "`unauthenticated`.", body = ErrorBody),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`token_not_found`.", body = ErrorBody),
    ),
)]
pub async fn revoke(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TokenInfo>> {
    app.db
        .revoke_token(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new("token_not_found", "no token has this id"))
}

/// Who the registry takes the caller for (works without a token too).
#[utoipa::path(
    get,
    path = "/v1/whoami",
    operation_id = "whoami",
    tag = "tokens",
    responses(
        (status = 200, description = "The caller.", body = WhoAmI),
        (status = 401, description = "`unauthenticated`: the token given is unknown, revoked or expired.", body = ErrorBody),
    )
)]
pub async fn whoami(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<WhoAmI> {
    Json(WhoAmI {
        actor: caller.actor(),
        token: caller.token,
        public_read: app.config.public_read,
    })
}
