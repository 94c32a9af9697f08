//! `GET /ui/{kind}/{ns}/{name}/{selector}`: a version's page. A selector other than the
//! exact version (an alias, a range, `sha256:` of the manifest) is resolved as `/v1` resolves
//! it and redirected to the version's own address. The page: the typed summary, the base
//! identity, the "use it" panel, files (each downloadable through
//! `…/{version}/files/{path}`), evals with charts and the forgetting flag against the
//! previous version, validations with their serving profiles, the lineage graph, aliases
//! here with their history, the trail of what happened to the version, and its manifest.

use std::collections::HashMap;

use adapter_core::api::{ValidationInfo, VersionInfo, kind_segment};
use adapter_core::forgetting::{DEFAULT_GENERAL, Forgetting, evals as eval_deltas};
use adapter_core::reference::Selector;
use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::html::{Crumb, NONE, date, esc, page, seg};
use super::{chart, lineage, use_it};
use crate::api;
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog;
use crate::db::catalog::PageVersion;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, RepoPath, VersionPath};

mod sections;

/// A path parameter of the route (empty when absent).
fn param<'a>(params: &'a HashMap<String, String>, key: &str) -> &'a str {
    params.get(key).map_or("", String::as_str)
}

/// The `{selector}` as a selector (`invalid_selector` as on `/v1`).
fn selector(raw: &str) -> ApiResult<Selector> {
    Selector::parse(raw)
        .map_err(|e| ApiError::new("invalid_selector", format!("`{}`: {e}", raw.escape_debug())))
}

/// The version a path names: exact → it; anything else → `Err(redirect)` to its address.
async fn exact(
    app: &AppState,
    p: &RepoPath,
    raw: &str,
) -> ApiResult<Result<semver::Version, Response>> {
    let sel = selector(raw)?;
    if let Selector::Version(v) = &sel {
        return Ok(Ok(v.clone()));
    }
    let r = catalog::resolve(&app.db, p.kind, &p.ns, &p.name, Some(&sel)).await?;
    let to = format!(
        "/ui/{}/{}/{}/{}",
        kind_segment(p.kind),
        seg(p.ns.as_str()),
        seg(p.name.as_str()),
        seg(&r.version.to_string())
    );
    Ok(Err(Redirect::to(&to).into_response()))
}

/// The version just below this one that is not yanked (else just below): what the
/// forgetting check compares with.
fn previous<'a>(versions: &'a [PageVersion], me: &str) -> Option<&'a PageVersion> {
    let below: Vec<&PageVersion> = versions
        .iter()
        .skip_while(|v| v.version != me)
        .skip(1)
        .collect();
    below
        .iter()
        .find(|v| !v.yanked)
        .or_else(|| below.first())
        .copied()
}

pub async fn version(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    p: RepoPath,
    ApiPath(params): ApiPath<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v = match exact(&app, &p, param(&params, "selector")).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let info = catalog::version_info(&app.db, p.kind, &p.ns, &p.name, &v).await?;
    let repo = catalog::repository(&app.db, p.kind, &p.ns, &p.name).await?;
    let (versions, _) = catalog::page_versions(&app.db, &repo).await?;
    let me = versions
        .iter()
        .find(|x| x.version == info.version)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("{}@{} vanished", p, info.version)))?;
    let vp = VersionPath {
        repo: p.clone(),
        version: v.clone(),
    };
    let Json(validations) =
        api::jobs::validations(State(app.clone()), Extension(caller.clone()), vp.clone()).await?;
    let Json(lineage_view) =
        api::lineage::get(State(app.clone()), Extension(caller.clone()), vp).await?;

    let base = format!(
        "/ui/{}/{}/{}",
        kind_segment(p.kind),
        seg(p.ns.as_str()),
        seg(p.name.as_str())
    );
    let title = format!("{}/{}@{}", p.ns, p.name, info.version);
    let mut body = format!(
        "<h1>{} <span class=\"muted\">({})</span></h1>",
        esc(&title),
        p.kind.as_str()
    );
    body.push_str(&banner(&info));
    body.push_str(&sections::summary(&info));
    body.push_str(&sections::files(
        &info,
        &format!("{base}/{}", seg(&info.version)),
    ));
    body.push_str(&validations_section(&validations.validations));
    body.push_str(&lineage::graph(&lineage_view, &title));

    // Evals: this version against the previous one, with the forgetting rule of `diff`.
    let prev = previous(&versions, &info.version);
    let prev_evals = match prev {
        Some(pv) => app.db.latest_evals(pv.id).await?,
        None => Vec::new(),
    };
    let general: Vec<String> = DEFAULT_GENERAL.split(',').map(str::to_owned).collect();
    let deltas = eval_deltas(&prev_evals, &info.evals, &Forgetting::new(&general, 0.01));
    body.push_str(&sections::evals(
        &deltas,
        prev.map(|v| v.version.as_str()),
        &base,
    ));
    let all_ids: Vec<i64> = versions.iter().map(|v| v.id).collect();
    let history = app.db.latest_evals_of(&all_ids).await?;
    body.push_str(&chart::across_versions(&versions, &history));

    let max_rank = validations
        .validations
        .iter()
        .find_map(|v| v.report["serving"]["stacks"]["vllm"]["max_lora_rank"].as_u64());
    body.push_str(&use_it::panel(
        &use_it::origin(&app, &headers),
        &info,
        max_rank,
    ));
    body.push_str(&sections::aliases(&app, repo.id, &info.version).await?);
    body.push_str(&sections::trail(&app, &caller, me.id, &info, &repo).await?);
    body.push_str(&format!(
        "<h2>Manifest</h2><details><summary>manifest <code>{}</code></summary><pre>{}</pre></details>",
        esc(&info.manifest_digest.to_string()),
        esc(&serde_json::to_string_pretty(&info.manifest.to_value()).unwrap_or_default())
    ));
    let crumbs = [
        Crumb::link(
            p.ns.as_str(),
            format!(
                "/?kind={}&namespace={}",
                kind_segment(p.kind),
                seg(p.ns.as_str())
            ),
        ),
        Crumb::link(p.name.as_str(), base.clone()),
        Crumb::here(info.version.clone()),
    ];
    Ok(Html(page(&title, &crumbs, Some(&caller), &body)).into_response())
}

/// Yanked or damaged, said at the top.
fn banner(info: &VersionInfo) -> String {
    let mut out = String::new();
    if info.yanked {
        out.push_str(&format!(
            "<p class=\"panel yanked\" id=\"yanked\"><b>Yanked</b>{}{}{}. Resolution skips it; \
             an exact version or digest still pulls it.</p>",
            info.yank_reason
                .as_deref()
                .map(|r| format!(": {}", esc(r)))
                .unwrap_or_default(),
            info.yanked_by
                .as_deref()
                .map(|b| format!(" (by {})", esc(b)))
                .unwrap_or_default(),
            info.yanked_at
                .map(|t| format!(", {}", date(t)))
                .unwrap_or_default(),
        ));
    }
    if let Some(d) = &info.damaged {
        out.push_str(&format!(
            "<p class=\"panel bad\"><b>Damaged</b>: {}. Pulls are refused.</p>",
            esc(d)
        ));
    }
    out
}

/// The verdict of each validation and its serving profile per stack.
fn validations_section(list: &[ValidationInfo]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Validations</h2><div class=\"scroll\"><table id=\"validations\"><tr><th>adapter</th>\
         <th>base</th><th>verdict</th><th>serving</th><th>job</th></tr>",
    );
    for v in list {
        let class = match v.verdict.as_str() {
            "compatible" => "ok",
            "compatible_with_warnings" => "warn",
            _ => "bad",
        };
        let mut serving = String::new();
        if let Some(stacks) = v.report["serving"]["stacks"].as_object() {
            for (stack, s) in stacks {
                let loads = s["loads"].as_bool() == Some(true);
                let mut facts = Vec::new();
                if let Some(r) = s["max_lora_rank"].as_u64() {
                    facts.push(format!("--max-lora-rank {r}"));
                }
                for p in s["problems"].as_array().into_iter().flatten() {
                    facts.push(p["message"].as_str().unwrap_or_default().to_owned());
                }
                serving.push_str(&format!(
                    "<div><b>{}</b>: <span class=\"{}\">{}</span> <span class=\"muted\">{}</span></div>",
                    esc(stack),
                    if loads { "ok" } else { "bad" },
                    if loads { "loads" } else { "does not load" },
                    esc(&facts.join("; "))
                ));
            }
        }
        let errors: Vec<String> = v.report["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str().map(esc))
            .collect();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><b class=\"{class} verdict\">{}</b>{}</td><td>{}</td>\
             <td><a href=\"/ui/jobs/{}\">{}…</a><br><span class=\"muted\">{}</span></td></tr>",
            link("adapters", &v.adapter),
            link("models", &v.base),
            esc(&v.verdict),
            if errors.is_empty() {
                String::new()
            } else {
                format!("<br><span class=\"bad\">{}</span>", errors.join("<br>"))
            },
            if serving.is_empty() {
                NONE.into()
            } else {
                serving
            },
            seg(&v.job_id),
            esc(v.job_id.get(..16).unwrap_or(&v.job_id)),
            date(v.created_at),
        ));
    }
    out.push_str("</table></div>");
    out
}

/// `reference` linked to its page.
fn link(kind: &str, reference: &str) -> String {
    match super::reference_href(kind, reference) {
        Some(h) => format!("<a href=\"{}\">{}</a>", esc(&h), esc(reference)),
        None => esc(reference),
    }
}

/// `GET /ui/{kind}/{ns}/{name}/{version}/files/{path}`: one file of a version, streamed
/// from the blob store as a download (`Range` honoured, as on `/v1/blobs`).
pub async fn file(
    State(app): State<AppState>,
    p: RepoPath,
    ApiPath(params): ApiPath<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let path = param(&params, "path");
    let Selector::Version(v) = selector(param(&params, "selector"))? else {
        return Err(ApiError::new(
            "invalid_version",
            "files are read from an exact version",
        ));
    };
    let info = catalog::version_info(&app.db, p.kind, &p.ns, &p.name, &v).await?;
    let entry = info.manifest.file(path).ok_or_else(|| {
        ApiError::new(
            "not_found",
            format!("{}@{} has no file `{}`", p, v, path.escape_debug()),
        )
    })?;
    let (status, mut h, body): (_, HeaderMap, Body) =
        crate::download::blob(&app, &entry.digest, entry.size, &headers).await?;
    let file_name: String = path
        .rsplit('/')
        .next()
        .unwrap_or("file")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((status, h, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(version: &str, yanked: bool) -> PageVersion {
        PageVersion {
            id: 0,
            version: version.into(),
            manifest_digest: String::new(),
            yanked,
            yank_reason: None,
            created_at: 0,
        }
    }

    #[test]
    fn the_previous_version_skips_yanked_ones() {
        let vs = [pv("1.2.0", false), pv("1.1.0", true), pv("1.0.0", false)];
        assert_eq!(previous(&vs, "1.2.0").unwrap().version, "1.0.0");
        assert_eq!(previous(&vs, "1.0.0").map(|v| v.version.clone()), None);
        let only_yanked = [pv("2.0.0", false), pv("1.0.0", true)];
        assert_eq!(previous(&only_yanked, "2.0.0").unwrap().version, "1.0.0");
    }
}
