//! `GET /ui/jobs[?state=&kind=&cursor=]`: recent jobs the caller may see (`GET /v1/jobs`'s
//! handler, so the same walls), with state, progress, inputs and outputs linked, failure
//! reasons; `GET /ui/jobs/{id}`: one job with its parameters, result and log. While a job
//! is queued or running, the page's script (`assets`) reloads the table in place every
//! second (`data-live`); without scripts the page is current when loaded.

use adapter_core::api::{JobInfo, JobState, kind_segment};
use adapter_core::manifest::Kind;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::Html;
use axum::{Extension, Json};
use serde_json::Value;

use super::html::{Crumb, NONE, date, esc, page, seg};
use super::reference_href;
use crate::api::jobs as api_jobs;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};

/// A job's inputs, each linked to its version page.
fn inputs(j: &JobInfo) -> String {
    j.inputs
        .iter()
        .map(|(name, input)| {
            let kind = if name == "adapter" {
                kind_segment(Kind::Adapter)
            } else {
                kind_segment(Kind::Model)
            };
            let link = match reference_href(kind, &input.reference) {
                Some(h) => format!("<a href=\"{}\">{}</a>", esc(&h), esc(&input.reference)),
                None => esc(&input.reference),
            };
            format!(
                "<div><span class=\"muted\">{}:</span> {link}</div>",
                esc(name)
            )
        })
        .collect()
}

/// What a job made: the version a merge or quantise published, or a validation's verdict.
fn output(j: &JobInfo) -> String {
    let Some(r) = &j.result else {
        // Where a merge or quantise will publish (its parameters name it).
        return j.params["output"]
            .as_str()
            .map(|o| format!("<span class=\"muted\">→ {}</span>", esc(o)))
            .unwrap_or_default();
    };
    if let Some(v) = r["verdict"].as_str() {
        let class = match v {
            "compatible" => "ok",
            "compatible_with_warnings" => "warn",
            _ => "bad",
        };
        return format!("<b class=\"{class}\">{}</b>", esc(v));
    }
    let reference = r["reference"]
        .as_str()
        .or_else(|| r["output"].as_str())
        .map(str::to_owned);
    match reference {
        Some(reference) => match reference_href(kind_segment(Kind::Model), &reference) {
            Some(h) => format!(
                "<a href=\"{}\" class=\"output\">{}</a>",
                esc(&h),
                esc(&reference)
            ),
            None => esc(&reference),
        },
        None => NONE.into(),
    }
}

fn progress(j: &JobInfo) -> String {
    let bar = j.progress.map_or_else(String::new, |p| {
        format!(
            "<progress max=\"1\" value=\"{p:.3}\"></progress> {:.0}%",
            p * 100.0
        )
    });
    format!(
        "{bar}{}",
        j.progress_message
            .as_deref()
            .map(|m| format!("<br><span class=\"muted\">{}</span>", esc(m)))
            .unwrap_or_default()
    )
}

fn state(j: &JobInfo) -> String {
    let class = match j.state {
        JobState::Succeeded => "ok",
        JobState::Failed | JobState::Cancelled => "bad",
        _ => "warn",
    };
    format!(
        "<b class=\"{class} state\">{}</b>{}<br><span class=\"muted\">attempt {}/{}</span>",
        j.state.as_str(),
        if j.cancel_requested {
            " <span class=\"muted\">(cancelling)</span>"
        } else {
            ""
        },
        j.attempts,
        j.max_attempts
    )
}

fn row(j: &JobInfo) -> String {
    format!(
        "<tr id=\"{}\"><td><a href=\"/ui/jobs/{}\">{}</a><br><span class=\"muted\">{}</span></td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&j.id),
        seg(&j.id),
        esc(&j.kind),
        date(j.created_at),
        state(j),
        progress(j),
        inputs(j),
        output(j),
        j.error
            .as_deref()
            .map(|e| format!("<span class=\"bad\">{}</span>", esc(e)))
            .unwrap_or_default(),
    )
}

/// The table of `jobs`; `data-live` while any of them may still change.
fn table(jobs: &[JobInfo]) -> String {
    let live = jobs.iter().any(|j| !j.state.is_terminal());
    let mut out = format!(
        "<div class=\"scroll\"><table id=\"jobs\"{}><tr><th>job</th><th>state</th>\
         <th>progress</th><th>inputs</th><th>output</th><th>error</th></tr>",
        if live { " data-live" } else { "" }
    );
    for j in jobs {
        out.push_str(&row(j));
    }
    out.push_str("</table></div>");
    out
}

/// `GET /ui/jobs`.
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> ApiResult<Html<String>> {
    let q = Query::try_from_uri(&uri)
        .map_err(|e| ApiError::new("invalid_query", e.body_text()))?
        .0;
    let Json(list) = api_jobs::list(State(app), Extension(caller.clone()), ApiQuery(q)).await?;
    let mut body = String::from("<h1>Jobs</h1>");
    if list.jobs.is_empty() {
        body.push_str("<p class=\"muted\" id=\"empty\">No jobs you may see.</p>");
    } else {
        body.push_str(&table(&list.jobs));
    }
    if let Some(c) = &list.next_cursor {
        body.push_str(&format!(
            "<div class=\"pager\"><a href=\"/ui/jobs?cursor={}\" rel=\"next\">older →</a></div>",
            seg(c)
        ));
    }
    Ok(Html(page(
        "Jobs",
        &[Crumb::here("jobs")],
        Some(&caller),
        &body,
    )))
}

/// `GET /ui/jobs/{id}`.
pub async fn one(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Html<String>> {
    let Json(j) = api_jobs::get(
        State(app.clone()),
        Extension(caller.clone()),
        ApiPath(id.clone()),
    )
    .await?;
    let logs_query = Query::try_from_uri(&Uri::from_static("/?limit=1000"))
        .map_err(|e| ApiError::new("invalid_query", e.body_text()))?
        .0;
    let Json(logs) = api_jobs::logs(
        State(app),
        Extension(caller.clone()),
        ApiPath(id),
        ApiQuery(logs_query),
    )
    .await?;
    let mut body = format!("<h1>{} job <code>{}</code></h1>", esc(&j.kind), esc(&j.id));
    body.push_str(&table(std::slice::from_ref(&j)));
    body.push_str(&format!(
        "<dl class=\"facts\"><dt>submitted</dt><dd>{}{}</dd><dt>started</dt><dd>{}</dd>\
         <dt>finished</dt><dd>{}</dd></dl>",
        date(j.created_at),
        j.submitter
            .as_deref()
            .map(|s| format!(" by {}", esc(s)))
            .unwrap_or_default(),
        j.started_at.map_or_else(|| NONE.into(), date),
        j.finished_at.map_or_else(|| NONE.into(), date),
    ));
    let pretty = |v: &Value| esc(&serde_json::to_string_pretty(v).unwrap_or_default());
    body.push_str(&format!(
        "<h2>Parameters</h2><pre>{}</pre>",
        pretty(&j.params)
    ));
    if let Some(r) = &j.result {
        body.push_str(&format!(
            "<h2>Result</h2><details><summary>result</summary><pre id=\"result\">{}</pre></details>",
            pretty(r)
        ));
    }
    body.push_str("<h2>Log</h2>");
    if logs.lines.is_empty() {
        body.push_str("<p class=\"muted\">No log lines.</p>");
    } else {
        let text: Vec<String> = logs
            .lines
            .iter()
            .map(|l| format!("{}  {}", date(l.at), l.line))
            .collect();
        body.push_str(&format!("<pre id=\"log\">{}</pre>", esc(&text.join("\n"))));
    }
    let crumbs = [Crumb::link("jobs", "/ui/jobs"), Crumb::here(j.id.clone())];
    Ok(Html(page(
        &format!("{} job", j.kind),
        &crumbs,
        Some(&caller),
        &body,
    )))
}
