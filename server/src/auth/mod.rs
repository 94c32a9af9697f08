//! Authentication, authorization and the audit log, for every route in one layer.
//!
//! [`layer`] runs after routing (so it knows the matched route template): it resolves the
//! bearer token, checks the route's [`policy::requirement`], hands the [`Caller`] to the
//! handler, and appends an audit entry for every mutation (allowed or refused) with the
//! outcome. Tokens are `art_` + 64 hex digits; only their sha256 is stored.
//!
//! The HTML pages (`ui`) sign in with the token kept in the [`SESSION_COOKIE`]; only routes
//! that [`is_html_route`] read it, so `/v1` and `/hf` stay bearer-only (no cookie, no CSRF
//! surface there).

pub mod policy;
mod walls;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use adapter_core::api::{Scope, TokenInfo};
use adapter_core::digest::Digest;
use anyhow::Context as _;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::app::AppState;
use crate::db::audit::NewAudit;
use crate::db::generations::Generations;
use crate::db::tokens::NewToken;
use crate::db::{Db, now};
use crate::error::{ApiError, ErrorCode};
use policy::Denied;

/// Prefix of every token secret.
pub const SECRET_PREFIX: &str = "art_";
/// Where the first admin token is written, inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The actor recorded for requests without a token.
pub const ANONYMOUS: &str = "anonymous";
/// Longest `Authorization` value looked at.
const MAX_SECRET: usize = 256;
/// The cookie the HTML pages keep the signed-in token in (HttpOnly, SameSite=Strict; set by
/// `ui`'s sign-in page).
pub const SESSION_COOKIE: &str = "registry_session";

/// Is the matched route `template` one of the HTML pages (the only routes that honour the
/// [`SESSION_COOKIE`])?
pub fn is_html_route(template: &str) -> bool {
    template == "/" || template.starts_with("/ui/")
}

/// The value of the [`SESSION_COOKIE`] in the request's `Cookie` headers.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Who is calling: given to every handler as an `Extension`.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// `None`: anonymous (only possible on public routes, or reads with `--public-read`).
    pub token: Option<TokenInfo>,
    /// The generation counters, when authentication read them (a token was sent): what
    /// the catalogue's cached answers are checked against without a second read.
    pub generations: Option<Generations>,
}

impl Caller {
    /// What the audit log and history records say: `NAME (tok_…)` or `anonymous`.
    pub fn actor(&self) -> String {
        self.token
            .as_ref()
            .map_or_else(|| ANONYMOUS.to_owned(), actor_of)
    }

    /// Does the caller's token cover namespace `ns` (its scope is checked by the route)?
    pub fn covers(&self, ns: &str) -> bool {
        // The route table's own rule for one namespace (the scope was checked by the route).
        let need = policy::Requirement::Scope(Scope::Read, policy::Namespaces::One(ns.to_owned()));
        self.token.is_some() && policy::check(self.token.as_ref(), &need, false).is_ok()
    }

    /// The namespaces this caller may see; `None`: all.
    pub fn visible_namespaces(&self) -> Option<Vec<String>> {
        self.token.as_ref().and_then(|t| t.namespaces.clone())
    }
}

pub fn actor_of(token: &TokenInfo) -> String {
    format!("{} ({})", token.name, token.id)
}

/// Extra facts a handler wants in the audit entry of its request (e.g. an alias's old and
/// new target): put it in the response's extensions.
#[derive(Debug, Clone)]
pub struct AuditDetails(pub Value);

/// A new secret and its stored form.
pub struct NewSecret {
    pub secret: String,
    pub id: String,
    pub hash: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(buf))
}

pub fn new_secret() -> anyhow::Result<NewSecret> {
    let secret = format!("{SECRET_PREFIX}{}", random_hex(32)?);
    Ok(NewSecret {
        hash: hash_secret(&secret),
        id: format!("tok_{}", random_hex(8)?),
        secret,
    })
}

pub fn hash_secret(secret: &str) -> String {
    Digest::of_bytes(secret.as_bytes()).hex()
}

/// Create a token; the secret is returned once and only its hash is kept.
pub async fn create_token(
    db: &Db,
    name: &str,
    scope: Scope,
    namespaces: Option<&[String]>,
    expires_at: Option<i64>,
    created_by: &str,
) -> anyhow::Result<(String, TokenInfo)> {
    let s = new_secret()?;
    let info = db
        .insert_token(&NewToken {
            id: &s.id,
            name,
            secret_hash: &s.hash,
            scope,
            namespaces,
            created_by: Some(created_by),
            expires_at,
        })
        .await
        .context("storing the token")?;
    Ok((s.secret, info))
}

/// On first start (no token at all), create an admin token, write it to
/// `<data_dir>/admin.token` (mode 0600) and return it so the caller prints it once.
pub async fn bootstrap_admin(
    db: &Db,
    data_dir: &Path,
) -> anyhow::Result<Option<(String, PathBuf)>> {
    // Several servers may start at once on an empty database: one of them makes the token.
    if db.token_count().await? > 0 || !db.claim_first_admin().await? {
        return Ok(None);
    }
    let (secret, _) = create_token(db, "admin", Scope::Admin, None, None, "bootstrap").await?;
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    adapter_core::private_file::write_private(&path, format!("{secret}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some((secret, path)))
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new("unauthenticated", message)
}

/// The token in `Authorization: Bearer …`, checked, and the generation counters it was
/// checked under; `Ok(None)` when there is no header. A token is read from the process's
/// cache while `generations.tokens` holds (a revocation anywhere moves it).
async fn authenticate(
    db: &Db,
    headers: &HeaderMap,
) -> Result<Option<(TokenInfo, Generations)>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || unauthenticated("expected `Authorization: Bearer <token>`");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, secret) = value.split_once(' ').ok_or_else(malformed)?;
    let secret = secret.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || secret.is_empty() || secret.len() > MAX_SECRET {
        return Err(malformed());
    }
    token_of_secret(db, secret).await.map(Some)
}

/// The live token whose secret is `secret` (known, not revoked, not expired), and the
/// generation counters it was checked under; or `unauthenticated`. Records its use. A
/// token is read from the process's cache while `generations.tokens` holds (a revocation
/// anywhere moves it).
pub async fn token_of_secret(db: &Db, secret: &str) -> Result<(TokenInfo, Generations), ApiError> {
    if secret.len() > MAX_SECRET {
        return Err(unauthenticated("the token is not known to this registry"));
    }
    let generations = db.generations().await?;
    let hash = hash_secret(secret);
    let token = match db.caches.tokens.get(generations.tokens, &hash) {
        Some(token) => token,
        None => {
            let token = db
                .token_by_hash(&hash)
                .await?
                .ok_or_else(|| unauthenticated("the token is not known to this registry"))?;
            db.caches
                .tokens
                .put(generations.tokens, hash.clone(), token.clone());
            token
        }
    };
    let now = now();
    if token.revoked_at.is_some() {
        return Err(unauthenticated("the token was revoked"));
    }
    if token.expires_at.is_some_and(|at| at <= now) {
        return Err(unauthenticated("the token has expired"));
    }
    if token.last_used_at.is_none_or(|at| at < now - 60) {
        db.touch_token(&token.id).await?;
        db.caches
            .tokens
            .update(generations.tokens, &hash, |t| t.last_used_at = Some(now));
    }
    Ok((token, generations))
}

/// Who calls: the bearer token; on an HTML route without one, the [`SESSION_COOKIE`]'s
/// (a stale or unknown cookie reads as anonymous, so the page can send the browser to
/// sign in again).
async fn caller_token(
    db: &Db,
    headers: &HeaderMap,
    html: bool,
) -> Result<Option<(TokenInfo, Generations)>, ApiError> {
    if headers.contains_key(header::AUTHORIZATION) || !html {
        return authenticate(db, headers).await;
    }
    let Some(secret) = session_cookie(headers) else {
        return Ok(None);
    };
    match token_of_secret(db, secret).await {
        Ok(found) => Ok(Some(found)),
        Err(e) if e.code() == "unauthenticated" => Ok(None),
        Err(e) => Err(e),
    }
}

/// The middleware (installed with `route_layer`, so only on routes that matched).
pub async fn layer(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(String::new, |m| m.as_str().to_owned());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let action = audited_action(&method, &template);

    // The Hub protocol's clients get its error shape, refusals included.
    let hub = crate::error::is_hub_path(&path);
    let refuse = |e: ApiError| refuse(e, hub);
    let html = is_html_route(&template);
    let (caller, res) = match caller_token(&app.db, req.headers(), html).await {
        Err(e) => (Caller::default(), refuse(e)),
        Ok(found) => {
            let (token, generations) = found.unzip();
            let caller = Caller { token, generations };
            let requirement = policy::requirement(&method, &template, &path);
            match policy::check(caller.token.as_ref(), &requirement, app.config.public_read) {
                Ok(()) => {
                    req.extensions_mut().insert(caller.clone());
                    (caller, next.run(req).await)
                }
                Err(Denied::Unauthenticated) => (
                    caller,
                    refuse(unauthenticated(
                        "this needs a token: `Authorization: Bearer <token>`",
                    )),
                ),
                Err(Denied::Forbidden) => {
                    let message = format!("the token does not allow {method} {path}");
                    (caller, refuse(ApiError::new("forbidden", message)))
                }
            }
        }
    };
    if let Some(action) = action {
        let (status, outcome, details) = outcome_of(&res);
        let actor = caller.actor();
        write_audit(
            &app, actor, &action, &method, &path, status, outcome, details,
        )
        .await;
    }
    res
}

fn refuse(e: ApiError, hub: bool) -> Response {
    let unauthenticated = e.code() == "unauthenticated";
    let mut res = if hub {
        e.into_hub_response()
    } else {
        e.into_response()
    };
    if unauthenticated {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// What the audit entry says of an answer: status, outcome, the handler's details.
/// (Read before any await: a `Response` is not `Sync`.)
fn outcome_of(res: &Response) -> (u16, &'static str, Option<Value>) {
    let outcome = if res.status().is_success() {
        "ok"
    } else {
        res.extensions().get::<ErrorCode>().map_or("error", |c| c.0)
    };
    let details = res.extensions().get::<AuditDetails>().map(|d| d.0.clone());
    (res.status().as_u16(), outcome, details)
}

#[allow(clippy::too_many_arguments)]
async fn write_audit(
    app: &AppState,
    actor: String,
    action: &str,
    method: &Method,
    path: &str,
    status: u16,
    outcome: &str,
    details: Option<Value>,
) {
    let entry = NewAudit {
        actor: &actor,
        action,
        method: method.as_str(),
        target: path,
        status,
        outcome,
        details: details.as_ref(),
    };
    // The mutation has happened (or was refused); a failed audit write cannot undo it, so
    // it is logged loudly instead.
    if let Err(e) = app.db.append_audit(&entry).await {
        tracing::error!(error = %e, action, target = path, "could not write the audit log");
    }
}

/// The audit action of a request, or `None` for reads (and for upload chunks: a session's
/// start and finish are recorded, not each `PATCH`).
pub fn audited_action(method: &Method, template: &str) -> Option<Cow<'static, str>> {
    if policy::is_read(method) {
        return None;
    }
    let segments: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let name = match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "blobs", "check"]) | ("PATCH", ["v1", "uploads", _]) => return None,
        ("PUT", ["v1", "blobs", _]) => "blob.put",
        ("POST", ["v1", "uploads"]) => "upload.start",
        ("PUT", ["v1", "uploads", _]) => "upload.finish",
        ("DELETE", ["v1", "uploads", _]) => "upload.cancel",
        ("POST", ["v1", "tokens"]) => "token.create",
        ("DELETE", ["v1", "tokens", _]) => "token.revoke",
        ("POST", ["v1", "jobs"]) => "job.submit",
        ("POST", ["v1", "jobs", _, "cancel"]) => "job.cancel",
        ("PUT", ["v1", _, _, _, "versions", _]) => "publish",
        ("POST", ["v1", _, _, _, "versions", _, "evals"]) => "eval.add",
        ("POST", ["v1", _, _, _, "versions", _, "yank"]) => "yank",
        ("DELETE", ["v1", _, _, _, "versions", _, "yank"]) => "unyank",
        ("PUT", ["v1", _, _, _, "aliases", _]) => "alias.move",
        ("DELETE", ["v1", _, _, _, "aliases", _]) => "alias.delete",
        ("PUT", ["v1", _, _, _, "aliases", _, "gate"]) => "gate.set",
        ("DELETE", ["v1", _, _, _, "aliases", _, "gate"]) => "gate.delete",
        // The Hub protocol: only what changes something (see `hf::push` for why
        // `repos/create` and `branch` change nothing).
        ("POST", ["hf", "api", "models", _, _, "commit", _]) => "hf.commit",
        ("POST", ["hf", _, _, "info", "lfs", "objects", "batch"]) => "hf.lfs_batch",
        ("PUT", ["hf", "lfs", _]) => "hf.lfs_upload",
        ("POST", ["hf", ..]) => return None,
        _ => return Some(Cow::Owned(format!("{method} {template}"))),
    };
    Some(Cow::Borrowed(name))
}
