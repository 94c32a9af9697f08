//! The sections of a version page that read only the version itself: the typed summary and
//! base identity, files, evals against the previous version, aliases pointing here with their
//! history, and the trail of what happened to it.

use adapter_core::api::{Summary, VersionInfo, metadata};
use adapter_core::forgetting::{EvalDelta, Movement};
use serde_json::Value;

use super::super::base_ref;
use super::super::chart::fmt;
use super::super::html::{NONE, date, esc, seg, size, tags};
use crate::app::AppState;
use crate::auth::Caller;
use crate::db::jobs::JobFilter;
use crate::db::repositories::RepoRow;
use crate::error::ApiResult;

fn row(out: &mut String, key: &str, value: String) {
    out.push_str(&format!("<dt>{key}</dt><dd>{value}</dd>"));
}

fn digest(d: &impl ToString) -> String {
    format!("<code>{}</code>", esc(&d.to_string()))
}

/// The typed summary: an adapter's PEFT facts and base identity, a model's identities and
/// counts.
pub fn summary(info: &VersionInfo) -> String {
    let mut out = String::from(
        "<div class=\"grid\"><section><h2>Summary</h2><dl class=\"facts\" id=\"summary\">",
    );
    let mut base = String::new();
    match &info.summary {
        Summary::Adapter(a) => {
            let (lo, hi) = a.rank_range();
            row(
                &mut out,
                "type",
                format!(
                    "{} <span class=\"tag\">{}</span>",
                    esc(&a.peft_type),
                    esc(&a.variant)
                ),
            );
            row(
                &mut out,
                "rank",
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}–{hi} (r = {})", a.r)
                },
            );
            row(&mut out, "alpha", fmt(a.lora_alpha));
            row(
                &mut out,
                "targets",
                tags(a.target_modules.iter().map(String::as_str), ""),
            );
            row(
                &mut out,
                "modules",
                format!("{} ({} tensors)", a.module_count, a.tensor_count),
            );
            row(&mut out, "parameters", a.parameters.to_string());
            row(
                &mut out,
                "dtypes",
                tags(a.dtypes.iter().map(String::as_str), ""),
            );
            row(
                &mut out,
                "layers",
                match (a.layers.first(), a.layers.last()) {
                    (Some(f), Some(l)) => format!("{f}–{l} ({} layers)", a.layers.len()),
                    _ => NONE.into(),
                },
            );
            row(
                &mut out,
                "mergeable",
                if a.mergeable {
                    "yes".into()
                } else {
                    "<span class=\"warn\">no</span>".into()
                },
            );
            if !a.warnings.is_empty() {
                let w: Vec<String> = a
                    .warnings
                    .iter()
                    .map(|w| {
                        format!(
                            "<span class=\"warn\">{}</span>: {}",
                            esc(&w.code),
                            esc(&w.message)
                        )
                    })
                    .collect();
                row(&mut out, "warnings", w.join("<br>"));
            }
            base.push_str("<section><h2>Base model</h2><dl class=\"facts\" id=\"base\">");
            row(
                &mut base,
                "reference",
                base_ref(
                    &adapter_core::api::BaseModelRef {
                        content_digest: None,
                        ..a.base.clone()
                    },
                    true,
                ),
            );
            row(
                &mut base,
                "name",
                a.base
                    .name_or_path
                    .as_deref()
                    .map_or_else(|| NONE.into(), esc),
            );
            row(
                &mut base,
                "content digest",
                a.base
                    .content_digest
                    .as_ref()
                    .map_or_else(|| NONE.into(), digest),
            );
            row(
                &mut base,
                "fingerprint",
                a.base
                    .shape_fingerprint
                    .as_ref()
                    .map_or_else(|| NONE.into(), digest),
            );
            base.push_str("</dl></section>");
        }
        Summary::Model(m) => {
            row(
                &mut out,
                "format",
                esc(m.format.as_deref().unwrap_or("safetensors")),
            );
            if m.headers_only {
                row(
                    &mut out,
                    "stored",
                    "<span class=\"warn\">headers only</span>".into(),
                );
            }
            row(&mut out, "content digest", digest(&m.content_digest));
            row(
                &mut out,
                "fingerprint",
                m.shape_fingerprint
                    .as_ref()
                    .map_or_else(|| NONE.into(), digest),
            );
            row(
                &mut out,
                "weights",
                format!(
                    "{} files, {} tensors, {} parameters",
                    m.weight_files, m.tensor_count, m.parameters
                ),
            );
            row(
                &mut out,
                "dtypes",
                m.dtypes
                    .iter()
                    .map(|(d, n)| format!("<span class=\"tag\">{} × {n}</span>", esc(d)))
                    .collect(),
            );
            if let Some(t) = m.model_type.as_deref().or(m.architecture.as_deref()) {
                row(&mut out, "architecture", esc(t));
            }
            if let Some(n) = m.num_hidden_layers {
                row(&mut out, "layers", n.to_string());
            }
        }
    }
    row(&mut out, "published", date(info.created_at));
    row(&mut out, "manifest", digest(&info.manifest_digest));
    if let Some(labels) = info
        .manifest
        .metadata()
        .get(metadata::LABELS)
        .and_then(Value::as_object)
    {
        let l: String = labels
            .iter()
            .map(|(k, v)| {
                format!(
                    "<span class=\"tag\">{}={}</span>",
                    esc(k),
                    esc(v.as_str().unwrap_or_default())
                )
            })
            .collect();
        row(&mut out, "labels", l);
    }
    out.push_str("</dl></section>");
    out.push_str(&base);
    out.push_str("</div>");
    out
}

/// Files with sizes and digests, each a download link; a headers-only model's weights that
/// are not stored are listed too.
pub fn files(info: &VersionInfo, version_href: &str) -> String {
    let mut out = String::from(
        "<h2>Files</h2><div class=\"scroll\"><table id=\"files\"><tr><th>path</th><th>size</th>\
         <th>sha256</th></tr>",
    );
    for f in info.manifest.files() {
        let p = f.path.as_str();
        let href: Vec<String> = p.split('/').map(seg).collect();
        out.push_str(&format!(
            "<tr><td><a href=\"{version_href}/files/{}\" download>{}</a></td><td title=\"{} bytes\">{}</td>\
             <td><code class=\"digest\">{}</code></td></tr>",
            href.join("/"),
            esc(p),
            f.size,
            size(f.size),
            esc(&f.digest.to_string()),
        ));
    }
    let weights = info
        .manifest
        .metadata()
        .get(metadata::WEIGHTS)
        .and_then(Value::as_array);
    for w in weights.into_iter().flatten() {
        out.push_str(&format!(
            "<tr class=\"muted\"><td>{} <span class=\"tag\">not stored</span></td><td>{}</td><td><code>{}</code></td></tr>",
            esc(w["path"].as_str().unwrap_or_default()),
            w["size"].as_u64().map(size).unwrap_or_default(),
            esc(w["sha256"].as_str().unwrap_or_default()),
        ));
    }
    out.push_str(&format!(
        "</table></div><p class=\"muted\">{} in total.</p>",
        size(info.manifest.total_size())
    ));
    out
}

/// This version's latest evals beside the previous version's, with the forgetting flag.
pub fn evals(deltas: &[EvalDelta], previous: Option<&str>, repo_href: &str) -> String {
    if deltas.iter().all(|d| d.b.is_none()) {
        return String::new();
    }
    let prev = previous.map_or_else(
        || "previous".to_owned(),
        |v| format!("<a href=\"{repo_href}/{}\">{}</a>", seg(v), esc(v)),
    );
    let mut out = format!(
        "<h2>Evals</h2><div class=\"scroll\"><table id=\"evals\"><tr><th>benchmark:metric</th>\
         <th>this version</th><th>{prev}</th><th>change</th></tr>"
    );
    for d in deltas.iter().filter(|d| d.b.is_some()) {
        let change = match (d.movement, d.delta) {
            (_, None) => "<span class=\"muted\">new</span>".to_owned(),
            (Movement::Improved, Some(x)) => format!("<span class=\"ok\">{x:+.4}</span>"),
            (Movement::Regressed, Some(x)) => format!("<span class=\"bad\">{x:+.4}</span>"),
            (_, Some(_)) => "<span class=\"muted\">=</span>".to_owned(),
        };
        let flag = if d.forgetting {
            " <span class=\"flag forgetting\" title=\"a general benchmark fell by more than 0.01 \
             (adapterctl diff --fail-on-forgetting)\">forgetting</span>"
        } else {
            ""
        };
        out.push_str(&format!(
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{change}{flag}</td></tr>",
            esc(&d.key),
            if d.general {
                " <span class=\"tag\">general</span>"
            } else {
                ""
            },
            d.b.map(fmt).unwrap_or_default(),
            d.a.map_or_else(|| NONE.into(), fmt),
        ));
    }
    out.push_str("</table></div>");
    out
}

/// Aliases pointing at `version`, each with its whole history.
pub async fn aliases(app: &AppState, repo_id: i64, version: &str) -> ApiResult<String> {
    let here: Vec<_> = app
        .db
        .aliases(repo_id)
        .await?
        .into_iter()
        .filter(|a| a.version == version)
        .collect();
    if here.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from("<h2>Aliases here</h2><div id=\"aliases\">");
    for a in &here {
        out.push_str(&format!(
            "<p><span class=\"tag alias\">{}</span> <span class=\"muted\">history:</span></p><ul>",
            esc(&a.alias)
        ));
        for h in app.db.alias_history(repo_id, &a.alias).await? {
            out.push_str(&format!(
                "<li>{} · {} → {} <span class=\"muted\">by {}{}</span></li>",
                date(h.created_at),
                esc(h.from.as_deref().unwrap_or("(new)")),
                esc(h.to.as_deref().unwrap_or("(deleted)")),
                esc(h.actor.as_deref().unwrap_or("?")),
                h.reason
                    .as_deref()
                    .map(|r| format!(": {}", esc(r)))
                    .unwrap_or_default(),
            ));
        }
        out.push_str("</ul>");
    }
    out.push_str("</div>");
    Ok(out)
}

/// What happened to the version, oldest first: published (and by which job), evals recorded,
/// alias moves to or from it, jobs that took it as input, its yank.
pub async fn trail(
    app: &AppState,
    caller: &Caller,
    id: i64,
    info: &VersionInfo,
    repo: &RepoRow,
) -> ApiResult<String> {
    let mut events: Vec<(i64, String)> = Vec::new();
    let derived = info
        .manifest
        .metadata()
        .get(metadata::DERIVED_FROM)
        .and_then(|d| {
            d["job"]
                .as_str()
                .map(|j| (j.to_owned(), d["kind"].as_str().unwrap_or("job").to_owned()))
        });
    events.push((
        info.created_at,
        match derived {
            Some((job, kind)) => format!(
                "published by the {} job <a href=\"/ui/jobs/{}\">{}</a>",
                esc(&kind),
                seg(&job),
                esc(&job)
            ),
            None => "published".into(),
        },
    ));
    for e in app.db.evals(id).await? {
        events.push((
            e.created_at,
            format!(
                "eval {} = {}{}",
                esc(&e.key()),
                fmt(e.value),
                e.author
                    .as_deref()
                    .map(|a| format!(" <span class=\"muted\">by {}</span>", esc(a)))
                    .unwrap_or_default()
            ),
        ));
    }
    for a in app.db.aliases(repo.id).await? {
        for h in app.db.alias_history(repo.id, &a.alias).await? {
            let to_here = h.to.as_deref() == Some(&info.version);
            let from_here = h.from.as_deref() == Some(&info.version);
            if to_here || from_here {
                events.push((
                    h.created_at,
                    format!(
                        "alias <span class=\"tag alias\">{}</span> {} <span class=\"muted\">by {}</span>",
                        esc(&h.alias),
                        if to_here {
                            "moved here".to_owned()
                        } else {
                            format!("moved away to {}", esc(h.to.as_deref().unwrap_or("(deleted)")))
                        },
                        esc(h.actor.as_deref().unwrap_or("?"))
                    ),
                ));
            }
        }
    }
    let jobs = app
        .db
        .jobs(&JobFilter {
            state: None,
            kind: None,
            input: Some(info.manifest_digest.to_string()),
            before: None,
            limit: 50,
            visible: caller.visible_namespaces(),
        })
        .await?;
    for j in &jobs {
        events.push((
            j.created_at,
            format!(
                "{} job <a href=\"/ui/jobs/{}\">{}</a> submitted{}: <span class=\"state-{}\">{}</span>",
                esc(&j.kind),
                seg(&j.id),
                esc(&j.id),
                j.submitter
                    .as_deref()
                    .map(|s| format!(" by {}", esc(s)))
                    .unwrap_or_default(),
                j.state.as_str(),
                j.state.as_str(),
            ),
        ));
    }
    if let (true, Some(at)) = (info.yanked, info.yanked_at) {
        events.push((
            at,
            format!(
                "yanked{}",
                info.yanked_by
                    .as_deref()
                    .map(|b| format!(" by {}", esc(b)))
                    .unwrap_or_default()
            ),
        ));
    }
    events.sort_by_key(|(t, _)| *t);
    let mut out = String::from("<h2>Trail</h2><ul id=\"trail\">");
    for (t, what) in events {
        out.push_str(&format!("<li>{} · {what}</li>", date(t)));
    }
    out.push_str("</ul>");
    Ok(out)
}
