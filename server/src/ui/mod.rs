//! The human catalogue: `GET /` (namespaces → repositories, with each repository's
//! versions and its latest version's facts) and `GET /ui/{kind}/{ns}/{name}` (every
//! version with base, rank, targets, labels, aliases, yanked state and evals, and a chart
//! of each `benchmark:metric` across versions). Server-rendered HTML, inline CSS and SVG,
//! no scripts, no external assets. Outside the `/v1` API and its OpenAPI description;
//! errors (the catalogue's typed errors included) keep the API's JSON shape. Top floor:
//! reads through `catalog` (and `db`'s facts/evals for the tables).

mod chart;
pub mod html;

use std::collections::{BTreeMap, HashMap};

use adapter_core::api::{LatestEval, VersionFacts, kind_segment};
use adapter_core::manifest::Kind;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use crate::app::AppState;
use crate::catalog;
use crate::db::catalog::PageVersion;
use crate::db::repositories::RepoRow;
use crate::error::ApiResult;
use crate::extract::RepoPath;
use html::{esc, page, seg, tags};

/// Most repositories the index lists.
pub const INDEX_LIMIT: i64 = 500;

/// The catalogue routes (merged into the API router; not part of the OpenAPI spec).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{kind}/{ns}/{name}", get(repository))
}

/// The version "latest" resolution picks: highest not yanked and not a pre-release, else
/// the highest.
fn latest(versions: &[PageVersion]) -> Option<&PageVersion> {
    versions
        .iter()
        .find(|v| !v.yanked && semver::Version::parse(&v.version).is_ok_and(|s| s.pre.is_empty()))
        .or_else(|| versions.first())
}

fn base_cell(f: Option<&VersionFacts>) -> String {
    let Some(b) = f.and_then(|f| f.base.as_ref()) else {
        return "<span class=\"muted\">–</span>".into();
    };
    let mut out = String::new();
    if let Some(r) = &b.reference {
        out.push_str(&format!("<code>{}</code>", esc(r)));
    } else if let Some(n) = &b.name_or_path {
        out.push_str(&esc(n));
    }
    if let Some(d) = &b.content_digest {
        let hex = d.hex();
        out.push_str(&format!(
            "<br><code class=\"muted\" title=\"{}\">{}…</code>",
            esc(&d.to_string()),
            esc(&hex[..12])
        ));
    }
    out
}

fn rank_cell(f: Option<&VersionFacts>) -> String {
    match f.map(|f| (f.rank_min, f.rank_max, f.variant.as_deref())) {
        Some((Some(a), Some(b), variant)) => {
            let r = if a == b {
                a.to_string()
            } else {
                format!("{a}–{b}")
            };
            match variant {
                Some(v) if v != "lora" => format!("{r} <span class=\"tag\">{}</span>", esc(v)),
                _ => r,
            }
        }
        _ => "<span class=\"muted\">–</span>".into(),
    }
}

fn evals_cell(evals: &[LatestEval]) -> String {
    evals
        .iter()
        .map(|e| {
            format!(
                "<span class=\"tag\">{}:{} = {}</span>",
                esc(&e.benchmark),
                esc(&e.metric),
                chart::fmt(e.value)
            )
        })
        .collect()
}

fn labels_cell(labels: Option<&BTreeMap<String, String>>) -> String {
    labels
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("<span class=\"tag\">{}={}</span>", esc(k), esc(v)))
                .collect()
        })
        .unwrap_or_default()
}

async fn index(State(app): State<AppState>) -> ApiResult<Html<String>> {
    let repos = catalog::all_repositories(&app.db, INDEX_LIMIT + 1).await?;
    let truncated = repos.len() as i64 > INDEX_LIMIT;
    let mut body = String::from("<h1>Adapter registry</h1>");
    if repos.is_empty() {
        body.push_str("<p class=\"muted\">No repositories yet. Push one with <code>adapterctl push</code>.</p>");
    }
    let mut by_ns: BTreeMap<String, Vec<(Kind, RepoRow)>> = BTreeMap::new();
    for (kind, r) in repos.into_iter().take(INDEX_LIMIT as usize) {
        by_ns
            .entry(r.namespace.clone())
            .or_default()
            .push((kind, r));
    }
    body.push_str("<p>");
    for ns in by_ns.keys() {
        body.push_str(&format!(
            "<a href=\"#ns-{}\" class=\"tag\">{}</a>",
            esc(ns),
            esc(ns)
        ));
    }
    body.push_str("</p>");
    for (ns, repos) in &by_ns {
        body.push_str(&format!(
            "<h2 id=\"ns-{}\">{}</h2><table><tr><th>repository</th><th>kind</th>\
             <th>versions</th><th>latest</th><th>base</th><th>rank</th><th>targets</th>\
             <th>aliases</th><th>evals (latest)</th></tr>",
            esc(ns),
            esc(ns)
        ));
        for (kind, r) in repos {
            let (versions, aliases) = catalog::page_versions(&app.db, r).await?;
            let head = latest(&versions);
            let ids: Vec<i64> = head.map(|v| v.id).into_iter().collect();
            let facts = app.db.facts_of(&ids).await?;
            let evals = app.db.latest_evals_of(&ids).await?;
            let f = head.and_then(|v| facts.get(&v.id));
            let version_tags: String = versions
                .iter()
                .take(12)
                .map(|v| {
                    format!(
                        "<span class=\"tag{}\">{}</span>",
                        if v.yanked { " yanked" } else { "" },
                        esc(&v.version)
                    )
                })
                .collect();
            let more = versions.len().saturating_sub(12);
            body.push_str(&format!(
                "<tr><td><a href=\"/ui/{}/{}/{}\">{}/{}</a></td><td>{}</td><td>{}{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                kind_segment(*kind),
                seg(&r.namespace),
                seg(&r.name),
                esc(&r.namespace),
                esc(&r.name),
                kind.as_str(),
                version_tags,
                if more > 0 {
                    format!(" <span class=\"muted\">+{more}</span>")
                } else {
                    String::new()
                },
                head.map(|v| esc(&v.version)).unwrap_or_default(),
                base_cell(f),
                rank_cell(f),
                tags(
                    f.map(|f| f.targets.iter().map(String::as_str).collect::<Vec<_>>())
                        .unwrap_or_default(),
                    ""
                ),
                aliases
                    .iter()
                    .map(|(a, v)| format!(
                        "<span class=\"tag alias\">{} → {}</span>",
                        esc(a),
                        esc(v)
                    ))
                    .collect::<String>(),
                head.and_then(|v| evals.get(&v.id))
                    .map(|e| evals_cell(e))
                    .unwrap_or_default(),
            ));
        }
        body.push_str("</table>");
    }
    if truncated {
        body.push_str(&format!(
            "<p class=\"muted\">Only the first {INDEX_LIMIT} repositories are listed; search with <code>GET /v1/adapters?q=…</code>.</p>"
        ));
    }
    Ok(Html(page("Adapter registry", &body)))
}

async fn repository(State(app): State<AppState>, p: RepoPath) -> ApiResult<Html<String>> {
    let RepoPath { kind, ns, name } = p;
    let repo = catalog::repository(&app.db, kind, &ns, &name).await?;
    let (versions, aliases) = catalog::page_versions(&app.db, &repo).await?;
    let ids: Vec<i64> = versions.iter().map(|v| v.id).collect();
    let facts = app.db.facts_of(&ids).await?;
    let labels = app.db.labels_of(&ids).await?;
    let evals = app.db.latest_evals_of(&ids).await?;
    let mut by_version: HashMap<&str, Vec<&str>> = HashMap::new();
    for (a, v) in &aliases {
        by_version.entry(v.as_str()).or_default().push(a.as_str());
    }
    let title = format!("{}/{}", ns, name);
    let mut body = format!(
        "<p><a href=\"/\">catalogue</a> › <a href=\"/#ns-{n}\">{n}</a></p><h1>{t} <span class=\"muted\">({k})</span></h1>",
        n = esc(ns.as_str()),
        t = esc(&title),
        k = kind.as_str()
    );
    // Charts: each benchmark:metric across versions, oldest first.
    let mut series: BTreeMap<(String, String), Vec<(String, f64)>> = BTreeMap::new();
    for v in versions.iter().rev() {
        for e in evals.get(&v.id).into_iter().flatten() {
            series
                .entry((e.benchmark.clone(), e.metric.clone()))
                .or_default()
                .push((v.version.clone(), e.value));
        }
    }
    if !series.is_empty() {
        body.push_str("<h2>Evals across versions</h2><div class=\"charts\">");
        for ((b, m), points) in &series {
            body.push_str(&chart::svg(&format!("{b}:{m}"), points));
        }
        body.push_str("</div>");
    }
    body.push_str(
        "<h2>Versions</h2><table><tr><th>version</th><th>published</th><th>base</th>\
         <th>rank</th><th>targets</th><th>labels</th><th>aliases</th><th>evals (latest)</th></tr>",
    );
    for v in &versions {
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
            "<tr{}><td><b>{}</b>{}<br><code class=\"muted\" title=\"{}\">{}</code></td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if v.yanked { " class=\"yanked\"" } else { "" },
            esc(&v.version),
            yanked,
            esc(&v.manifest_digest),
            esc(v.manifest_digest.get(..19).unwrap_or(&v.manifest_digest)),
            html::date(v.created_at),
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
    body.push_str("</table>");
    Ok(Html(page(&title, &body)))
}
