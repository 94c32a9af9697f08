//! `GET /ui/{kind}/{ns}/{name}[?page=N]`: a repository: its aliases with their gates, a
//! chart of each `benchmark:metric` across versions, and every version (newest first, a
//! page at a time) linked to its page, with base, rank, targets, labels, aliases, yanked
//! state and latest evals.

use std::collections::HashMap;

use adapter_core::api::kind_segment;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::Html;

use super::html::{Crumb, esc, page, seg, tags};
use super::{base_cell, chart, evals_cell, labels_cell, rank_cell};
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog;
use crate::error::{ApiError, ApiResult};
use crate::extract::RepoPath;

/// Versions per page.
pub const PAGE: usize = 50;

/// `page=N` (1-based) from the query.
fn page_number(raw: Option<&str>) -> ApiResult<usize> {
    match form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).find(|(k, _)| k == "page") {
        None => Ok(1),
        Some((_, v)) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| ApiError::new("invalid_query", "page is a number from 1")),
    }
}

/// The aliases with where they point and their gate conditions.
async fn aliases_panel(app: &AppState, repo_id: i64, base: &str) -> ApiResult<String> {
    let aliases = app.db.aliases(repo_id).await?;
    if aliases.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from(
        "<h2>Aliases</h2><div class=\"scroll\"><table id=\"aliases\"><tr><th>alias</th>\
         <th>version</th><th>moved</th><th>gate</th></tr>",
    );
    for a in &aliases {
        let gate = app.db.gate(repo_id, &a.alias).await?;
        let gate = gate.map_or_else(
            || "<span class=\"muted\">none</span>".to_owned(),
            |g| {
                g.conditions
                    .iter()
                    .map(|c| {
                        format!(
                            "<span class=\"tag\">{}</span>",
                            esc(&serde_json::to_string(c).unwrap_or_default())
                        )
                    })
                    .collect()
            },
        );
        out.push_str(&format!(
            "<tr><td><span class=\"tag alias\">{}</span></td><td><a href=\"{base}/{}\">{}</a></td>\
             <td>{}<br><span class=\"muted\">{}</span></td><td>{gate}</td></tr>",
            esc(&a.alias),
            seg(&a.version),
            esc(&a.version),
            super::html::date(a.updated_at),
            esc(a.updated_by.as_deref().unwrap_or("")),
        ));
    }
    out.push_str("</table></div>");
    Ok(out)
}

pub async fn repository(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    p: RepoPath,
    RawQuery(raw): RawQuery,
) -> ApiResult<Html<String>> {
    let RepoPath { kind, ns, name } = p;
    let page_no = page_number(raw.as_deref())?;
    let repo = catalog::repository(&app.db, kind, &ns, &name).await?;
    let (versions, aliases) = catalog::page_versions(&app.db, &repo).await?;
    let pages = versions.len().div_ceil(PAGE).max(1);
    let shown: Vec<_> = versions
        .iter()
        .skip((page_no - 1) * PAGE)
        .take(PAGE)
        .collect();
    let ids: Vec<i64> = shown.iter().map(|v| v.id).collect();
    let facts = app.db.facts_of(&ids).await?;
    let labels = app.db.labels_of(&ids).await?;
    // Every version's latest evals: the charts span the whole history.
    let all_ids: Vec<i64> = versions.iter().map(|v| v.id).collect();
    let evals = app.db.latest_evals_of(&all_ids).await?;
    let mut by_version: HashMap<&str, Vec<&str>> = HashMap::new();
    for (a, v) in &aliases {
        by_version.entry(v.as_str()).or_default().push(a.as_str());
    }
    let base = format!(
        "/ui/{}/{}/{}",
        kind_segment(kind),
        seg(ns.as_str()),
        seg(name.as_str())
    );
    let title = format!("{ns}/{name}");
    let mut body = format!(
        "<h1>{} <span class=\"muted\">({})</span></h1><p class=\"muted\">{} version{} · \
         <code>adapterctl pull {}</code></p>",
        esc(&title),
        kind.as_str(),
        versions.len(),
        if versions.len() == 1 { "" } else { "s" },
        esc(&title),
    );
    body.push_str(&aliases_panel(&app, repo.id, &base).await?);
    body.push_str(&chart::across_versions(&versions, &evals));
    body.push_str(
        "<h2>Versions</h2><div class=\"scroll\"><table id=\"versions\"><tr><th>version</th>\
         <th>published</th><th>base</th><th>rank</th><th>targets</th><th>labels</th>\
         <th>aliases</th><th>evals (latest)</th></tr>",
    );
    for v in &shown {
        let f = facts.get(&v.id);
        let yanked = if v.yanked {
            format!(
                "<br><span class=\"yanked\">yanked{}</span>",
                v.yank_reason
                    .as_deref()
                    .map(|r| format!(": {}", esc(r)))
                    .unwrap_or_default()
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "<tr{}><td><a href=\"{base}/{}\"><b>{}</b></a>{}<br><code class=\"muted\" title=\"{}\">{}</code></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if v.yanked { " class=\"yanked\"" } else { "" },
            seg(&v.version),
            esc(&v.version),
            yanked,
            esc(&v.manifest_digest),
            esc(v.manifest_digest.get(..19).unwrap_or(&v.manifest_digest)),
            super::html::date(v.created_at),
            base_cell(f),
            rank_cell(f),
            tags(
                f.map(|f| f.targets.iter().map(String::as_str).collect::<Vec<_>>())
                    .unwrap_or_default(),
                ""
            ),
            labels_cell(labels.get(&v.id)),
            tags(
                by_version
                    .get(v.version.as_str())
                    .cloned()
                    .unwrap_or_default(),
                "alias"
            ),
            evals.get(&v.id).map(|e| evals_cell(e)).unwrap_or_default(),
        ));
    }
    body.push_str("</table></div>");
    if pages > 1 {
        body.push_str("<div class=\"pager\">");
        if page_no > 1 {
            body.push_str(&format!(
                "<a href=\"{base}?page={}\" rel=\"prev\">← newer</a>",
                page_no - 1
            ));
        }
        body.push_str(&format!(
            "<span class=\"muted\">page {page_no} of {pages}</span>"
        ));
        if page_no < pages {
            body.push_str(&format!(
                "<a href=\"{base}?page={}\" rel=\"next\" id=\"next\">older →</a>",
                page_no + 1
            ));
        }
        body.push_str("</div>");
    }
    let crumbs = [
        Crumb::link(
            ns.as_str(),
            format!(
                "/?kind={}&namespace={}",
                kind_segment(kind),
                seg(ns.as_str())
            ),
        ),
        Crumb::here(name.as_str()),
    ];
    Ok(Html(page(&title, &crumbs, Some(&caller), &body)))
}
