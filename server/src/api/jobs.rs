//! `/v1/jobs`: submit, list, get, cancel, logs, and a server-sent events stream of a job's
//! progress; `…/versions/{version}/validations`: the validations stored on a version.

use std::convert::Infallible;
use std::time::Duration;

use adapter_core::api::{
    ErrorBody, JobInfo, JobList, JobLogs, JobState, JobSubmit, ValidationList,
};
use adapter_core::manifest::Kind;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::Stream;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Caller;
use crate::db::jobs::is_job_id;
use crate::db::jobs::{JobFilter, Submitted};
use crate::db::validations::Side;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery, JsonBody, VersionPath, page_limit};
use crate::jobs::submit::Submitter;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;
/// Most log lines one `GET …/logs` returns (also the default).
pub const MAX_LOG_LINES: u32 = 1000;
/// How often the events stream looks at the job.
const EVENTS_POLL: Duration = Duration::from_millis(200);

fn location(id: &str) -> String {
    format!("/v1/jobs/{id}")
}

/// Submit a job.
///
/// Inputs are resolved to exact versions and manifest digests now. The idempotency key
/// (default: kind + input digests + parameters) makes a second submit return the first job
/// (200) instead of queueing the work again; a failed or cancelled job with that key is
/// queued again (202).
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "submit_job",
    request_body(content = JobSubmit, description = "`validate`: `{\"kind\": \"validate\", \"inputs\": {\"adapter\": \"ns/name@sel\", \"base\": \"ns/name@sel\"}}`; `merge`: inputs `adapter` (and optionally `base`), params `MergeParams`; `quantise`: input `model`, params `QuantiseParams`."),
    responses(
        (status = 202, description = "Queued (new, or queued again); `Location` is the job's URL.", body = JobInfo),
        (status = 200, description = "A job with the same idempotency key exists (queued, running or succeeded).", body = JobInfo),
        (status = 400, description = "`invalid_job` (unknown kind, missing or extra input, bad params or key), `invalid_json`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token does not cover the namespace of an input or of the output.", body = ErrorBody),
        (status = 409, description = "`version_exists`: the output version of a merge or quantise exists.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `no_match` (an input reference).", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn submit(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<JobSubmit>,
) -> ApiResult<Response> {
    let (how, job) =
        crate::jobs::submit(&app, &app.config.jobs, &req, Submitter::Caller(&caller)).await?;
    let status = match how {
        Submitted::Created | Submitted::Requeued => StatusCode::ACCEPTED,
        Submitted::Existing => StatusCode::OK,
    };
    Ok((status, [(header::LOCATION, location(&job.id))], Json(job)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// queued, running, succeeded, failed or cancelled.
    state: Option<String>,
    /// Only jobs of this kind.
    kind: Option<String>,
    /// Only jobs with this manifest digest among their inputs.
    input: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// List jobs, newest first.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "list_jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "One page.", body = JobList),
        (status = 400, description = "`invalid_query`, `invalid_cursor`, `invalid_digest`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<JobList>> {
    let limit = page_limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let state = nonempty(q.state)
        .map(|s| s.parse::<JobState>())
        .transpose()
        .map_err(|e| ApiError::new("invalid_query", e))?;
    let kind = nonempty(q.kind);
    if kind.as_ref().is_some_and(|k| k.chars().count() > 64) {
        return Err(ApiError::new(
            "invalid_query",
            "kind is at most 64 characters",
        ));
    }
    let input = nonempty(q.input)
        .map(|d| {
            d.parse::<adapter_core::digest::Digest>()
                .map(|d| d.to_string())
                .map_err(|e| ApiError::new("invalid_digest", format!("input: {e}")))
        })
        .transpose()?;
    let before = nonempty(q.cursor)
        .map(|c| {
            if is_job_id(&c) {
                Ok(c)
            } else {
                Err(ApiError::new(
                    "invalid_cursor",
                    "the cursor is not one this server issued",
                ))
            }
        })
        .transpose()?;
    let mut jobs = app
        .db
        .jobs(&JobFilter {
            state,
            kind,
            input,
            before,
            limit: i64::from(limit) + 1,
            // Only jobs the caller may see (`auth::walls`), filtered in SQL so pages and
            // cursors are whole.
            visible: caller.visible_namespaces(),
        })
        .await?;
    let next_cursor = if jobs.len() > limit as usize {
        jobs.truncate(limit as usize);
        jobs.last().map(|j| j.id.clone())
    } else {
        None
    };
    Ok(Json(JobList { jobs, next_cursor }))
}

/// A job the caller may see (`auth::walls`); `job_not_found` otherwise, as for an id that
/// does not exist.
async fn job(app: &AppState, caller: &Caller, id: &str) -> ApiResult<JobInfo> {
    let missing = || {
        ApiError::new(
            "job_not_found",
            format!("no job has the id `{}`", id.escape_debug()),
        )
    };
    if !is_job_id(id) {
        return Err(missing());
    }
    let job = app.db.job(id).await?.ok_or_else(missing)?;
    if !caller.sees_job(&app.db.job_namespaces(id).await?) {
        return Err(missing());
    }
    Ok(job)
}

/// A job: state, attempts, progress, result or last error.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "get_job",
    params(("id" = String, Path, description = "`job_…`")),
    responses(
        (status = 200, description = "The job.", body = JobInfo),
        (status = 404, description = "`job_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobInfo>> {
    Ok(Json(job(&app, &caller, &id).await?))
}

/// Cancel a job: a queued one is `cancelled` at once; a running one gets
/// `cancel_requested` and stops at its next checkpoint.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    operation_id = "cancel_job",
    params(("id" = String, Path, description = "`job_…`")),
    responses(
        (status = 200, description = "The job after the cancel.", body = JobInfo),
        (status = 404, description = "`job_not_found`.", body = ErrorBody),
        (status = 409, description = "`job_finished`: it succeeded or failed already (details `{\"state\"}`).", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobInfo>> {
    // The route needs `write`; seeing the job needs every namespace it touches: together,
    // what submitting it needed.
    let before = job(&app, &caller, &id).await?;
    if matches!(before.state, JobState::Succeeded | JobState::Failed) {
        return Err(ApiError::with_details(
            "job_finished",
            format!("job {id} has {} already", before.state),
            serde_json::json!({ "state": before.state }),
        ));
    }
    let after = app
        .db
        .cancel_job(&id)
        .await?
        .ok_or_else(|| ApiError::new("job_not_found", format!("no job has the id `{id}`")))?;
    Ok(Json(after))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only lines after this `seq` (default 0: from the start).
    after: Option<i64>,
    /// At most this many lines, 1..=1000 (default 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A job's log lines, oldest first.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/logs",
    tag = "jobs",
    operation_id = "job_logs",
    params(("id" = String, Path, description = "`job_…`"), LogsQuery),
    responses(
        (status = 200, description = "The lines.", body = JobLogs),
        (status = 400, description = "`invalid_query`.", body = ErrorBody),
        (status = 404, description = "`job_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn logs(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Json<JobLogs>> {
    let limit = page_limit(q.limit, MAX_LOG_LINES, MAX_LOG_LINES)?;
    job(&app, &caller, &id).await?;
    let lines = app
        .db
        .job_logs(&id, q.after.unwrap_or(0), i64::from(limit))
        .await?;
    Ok(Json(JobLogs { lines }))
}

/// One event of a job's `text/event-stream`: its fields as the stream frames them.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: the events are written by axum's `Event`
struct JobEvent {
    /// Always `job`.
    #[schema(pattern = "^job$")]
    event: String,
    /// The job as JSON (`JobInfo`), sent on every change of state, attempt, progress or
    /// cancellation request; the stream ends after a terminal state.
    data: String,
}

/// Server-sent events of a job until it ends: an event `job` (data: the job as JSON) now,
/// then whenever its state, attempts or progress change; the stream ends after the event
/// with a final state (`succeeded`, `failed`, `cancelled`).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "jobs",
    operation_id = "job_events",
    params(("id" = String, Path, description = "`job_…`")),
    responses(
        (status = 200, description = "`text/event-stream` of `job` events (data: `JobInfo`).", content_type = "text/event-stream", body = JobEvent),
        (status = 404, description = "`job_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn events(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let first = job(&app, &caller, &id).await?;
    /// What an event is sent on a change of.
    type Seen = (JobState, u32, Option<f64>, Option<String>, bool);
    struct S {
        app: AppState,
        id: String,
        last: Option<Seen>,
        pending: Option<JobInfo>,
        done: bool,
    }
    let start = S {
        app,
        id,
        last: None,
        pending: Some(first),
        done: false,
    };
    let stream = futures::stream::unfold(start, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            let job = match s.pending.take() {
                Some(j) => j,
                None => {
                    tokio::time::sleep(EVENTS_POLL).await;
                    match s.app.db.job(&s.id).await {
                        Ok(Some(j)) => j,
                        // Gone or unreadable: end the stream; the client reads the job.
                        _ => return None,
                    }
                }
            };
            let key = (
                job.state,
                job.attempts,
                job.progress,
                job.progress_message.clone(),
                job.cancel_requested,
            );
            if s.last.as_ref() == Some(&key) {
                continue;
            }
            s.last = Some(key);
            s.done = job.state.is_terminal();
            let event = Event::default()
                .event("job")
                .json_data(&job)
                .unwrap_or_else(|_| Event::default().event("job"));
            return Some((Ok(event), s));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The validations stored on a version: of this adapter version against bases, or (on a
/// model version) of adapters against this base. Oldest first; only those whose other side
/// the caller may read too (as for the job that made them).
#[utoipa::path(
    get,
    path = "/{ns}/{name}/versions/{version}/validations",
    operation_id = "list_validations",
    params(("ns" = String, Path, description = "Namespace (name rules: docs/FORMATS.md)."), ("name" = String, Path, description = "Repository name."), ("version" = String, Path, description = "A semver version (stored in normal form).")),
    responses(
        (status = 200, description = "The latest validation per (adapter version, base version).", body = ValidationList),
        (status = 400, description = "`invalid_name`, `invalid_version`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `version_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn validations(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    p: VersionPath,
) -> ApiResult<Json<ValidationList>> {
    let id = super::evals::version_id(&app, &p).await?;
    let side = match p.repo.kind {
        Kind::Adapter => Side::Adapter,
        Kind::Model => Side::Base,
    };
    let mut validations = app.db.validations(side, id).await?;
    // A validation is the work of a job touching both sides: shown where that job is.
    validations.retain(|v| {
        let ns = |r: &str| r.split('/').next().unwrap_or_default().to_owned();
        caller.sees_job(&[ns(&v.adapter), ns(&v.base)])
    });
    Ok(Json(ValidationList { validations }))
}
