//! `GET /`: search and browse. One search box and the filters of `GET /v1/{kind}` (kind,
//! namespace, base, target module, rank range, variant, label, eval condition, sort), answered
//! by the same code (`api::repositories::search_page`, with the caller's namespaces), one
//! page at a time with the API's signed cursor.

use adapter_core::api::{RepositoryInfo, kind_segment};
use adapter_core::manifest::Kind;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::Html;

use super::html::{Crumb, NONE, esc, page, seg, tags};
use super::{base_cell, evals_cell, labels_cell, rank_cell};
use crate::api::repositories::search_page;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// The search fields the form has, in order, with their labels and hints.
const FIELDS: &[(&str, &str, &str)] = &[
    ("namespace", "namespace", "acme"),
    ("base", "base model", "name, ns/name[@v] or sha256:…"),
    ("target", "target module", "q_proj"),
    ("rank_min", "rank ≥", ""),
    ("rank_max", "rank ≤", ""),
    ("label", "label", "key=value"),
    ("eval", "eval", "mmlu:acc>=0.6"),
];

/// The page's query: `kind` (this page's own) and the search parameters passed on as given,
/// blanks dropped (a blank field is no condition).
struct Query {
    kind: Kind,
    params: Vec<(String, String)>,
}

impl Query {
    fn parse(raw: Option<&str>) -> ApiResult<Self> {
        let mut kind = Kind::Adapter;
        let mut params = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if k == "kind" {
                kind = match v.as_ref() {
                    "adapters" | "" => Kind::Adapter,
                    "models" => Kind::Model,
                    _ => {
                        return Err(ApiError::new(
                            "invalid_query",
                            "kind is `adapters` or `models`",
                        ));
                    }
                };
            } else if !v.trim().is_empty() {
                params.push((k.into_owned(), v.trim().to_owned()));
            }
        }
        Ok(Self { kind, params })
    }

    fn get(&self, key: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The search part as a query string (`except` left out).
    fn encoded(&self, except: &[&str]) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            if !except.contains(&k.as_str()) {
                s.append_pair(k, v);
            }
        }
        s.finish()
    }

    /// A link to this search in `kind`, from `cursor` on.
    fn href(&self, kind: Kind, cursor: Option<&str>) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("kind", kind_segment(kind));
        let rest = self.encoded(&["cursor"]);
        let mut out = format!("/?{}", s.finish());
        if !rest.is_empty() {
            out.push('&');
            out.push_str(&rest);
        }
        if let Some(c) = cursor {
            out.push_str(&format!("&cursor={}", seg(c)));
        }
        out
    }
}

fn input(q: &Query, name: &str, label: &str, hint: &str) -> String {
    format!(
        "<label>{label}<input name=\"{name}\" value=\"{}\" placeholder=\"{}\" size=\"{}\"></label>",
        esc(q.get(name)),
        esc(hint),
        if name.starts_with("rank") { 4 } else { 14 }
    )
}

fn select(q: &Query, name: &str, label: &str, options: &[(&str, &str)]) -> String {
    let mut out = format!("<label>{label}<select name=\"{name}\">");
    for (value, text) in options {
        out.push_str(&format!(
            "<option value=\"{value}\"{}>{text}</option>",
            if q.get(name) == *value {
                " selected"
            } else {
                ""
            }
        ));
    }
    out.push_str("</select></label>");
    out
}

fn form(q: &Query) -> String {
    let mut f = String::from("<form class=\"search\" method=\"get\" action=\"/\" role=\"search\">");
    f.push_str(&format!(
        "<label>search<input name=\"q\" type=\"search\" value=\"{}\" placeholder=\"name or base\" autofocus></label>",
        esc(q.get("q"))
    ));
    f.push_str(&format!(
        "<label>kind<select name=\"kind\"><option value=\"adapters\"{}>adapters</option>\
         <option value=\"models\"{}>models</option></select></label>",
        if q.kind == Kind::Adapter {
            " selected"
        } else {
            ""
        },
        if q.kind == Kind::Model {
            " selected"
        } else {
            ""
        },
    ));
    for (name, label, hint) in FIELDS {
        f.push_str(&input(q, name, label, hint));
    }
    f.push_str(&select(
        q,
        "variant",
        "variant",
        &[
            ("", "any"),
            ("lora", "lora"),
            ("dora", "dora"),
            ("rslora", "rslora"),
            ("rslora+dora", "rslora+dora"),
        ],
    ));
    f.push_str(&format!(
        "<label>sort<input name=\"sort\" list=\"sorts\" value=\"{}\" placeholder=\"name\" size=\"16\"></label>\
         <datalist id=\"sorts\"><option value=\"name\"><option value=\"-name\">\
         <option value=\"-created\"><option value=\"created\"><option value=\"-eval:mmlu:acc\">\
         </datalist><button type=\"submit\" id=\"search\">Search</button></form>",
        esc(q.get("sort"))
    ));
    f
}

fn row(kind: Kind, r: &RepositoryInfo) -> String {
    let repo = format!(
        "/ui/{}/{}/{}",
        kind_segment(kind),
        seg(&r.namespace),
        seg(&r.name)
    );
    let m = r.matched.as_ref();
    let f = m.map(|m| &m.facts);
    let version = m.map_or_else(
        || NONE.to_owned(),
        |m| {
            format!(
                "<a href=\"{repo}/{}\">{}</a>",
                seg(&m.version),
                esc(&m.version)
            )
        },
    );
    let aliases: String = r
        .aliases
        .iter()
        .map(|(a, v)| format!("<span class=\"tag alias\">{} → {}</span>", esc(a), esc(v)))
        .collect();
    format!(
        "<tr><td><a href=\"{repo}\" class=\"repo\">{}/{}</a><br><span class=\"muted\">{} version{}</span></td>\
         <td>{version}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{aliases}</td><td>{}</td></tr>",
        esc(&r.namespace),
        esc(&r.name),
        r.version_count,
        if r.version_count == 1 { "" } else { "s" },
        base_cell(f),
        rank_cell(f),
        tags(
            f.map(|f| f.targets.iter().map(String::as_str).collect::<Vec<_>>())
                .unwrap_or_default(),
            ""
        ),
        labels_cell(m.map(|m| &m.labels)),
        m.map(|m| evals_cell(&m.evals)).unwrap_or_default(),
    )
}

/// `GET /?q=…&kind=…&…`.
pub async fn index(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Html<String>> {
    let q = Query::parse(raw.as_deref())?;
    let search = q.encoded(&[]);
    let list = search_page(&app, q.kind, &caller, Some(&search)).await?;
    let mut body = String::from("<h1>Catalogue</h1>");
    if let Some(mine) = caller.visible_namespaces() {
        body.push_str("<p>Your namespaces: ");
        for ns in &mine {
            body.push_str(&format!(
                "<a class=\"tag\" href=\"/?kind={}&amp;namespace={}\">{}</a>",
                kind_segment(q.kind),
                seg(ns),
                esc(ns)
            ));
        }
        body.push_str("</p>");
    }
    body.push_str(&form(&q));
    let other = match q.kind {
        Kind::Adapter => Kind::Model,
        Kind::Model => Kind::Adapter,
    };
    body.push_str(&format!(
        "<p class=\"muted\">{} {} on this page{} · <a href=\"{}\">the same search in {}</a></p>",
        list.repositories.len(),
        kind_segment(q.kind),
        if q.params.iter().any(|(k, _)| k == "cursor") {
            " (a later page)"
        } else {
            ""
        },
        esc(&q.href(other, None)),
        kind_segment(other),
    ));
    if list.repositories.is_empty() {
        body.push_str(if q.params.is_empty() {
            "<p class=\"muted\" id=\"empty\">No repositories yet. Push one with <code>adapterctl push</code>.</p>"
        } else {
            "<p class=\"muted\" id=\"empty\">Nothing matches this search.</p>"
        });
    } else {
        body.push_str(
            "<div class=\"scroll\"><table id=\"results\"><tr><th>repository</th><th>matched</th>\
             <th>base</th><th>rank</th><th>targets</th><th>labels</th><th>aliases</th>\
             <th>evals (latest)</th></tr>",
        );
        for r in &list.repositories {
            body.push_str(&row(q.kind, r));
        }
        body.push_str("</table></div>");
    }
    body.push_str("<div class=\"pager\">");
    if q.params.iter().any(|(k, _)| k == "cursor") {
        body.push_str(&format!(
            "<a href=\"{}\">← first page</a>",
            esc(&q.href(q.kind, None))
        ));
    }
    if let Some(c) = &list.next_cursor {
        body.push_str(&format!(
            "<a href=\"{}\" rel=\"next\" id=\"next\">next page →</a>",
            esc(&q.href(q.kind, Some(c)))
        ));
    }
    body.push_str("</div>");
    let title = match q.get("q") {
        "" => "Catalogue".to_owned(),
        s => format!("Search: {s}"),
    };
    Ok(Html(page(
        &title,
        &[Crumb::here(kind_segment(q.kind))],
        Some(&caller),
        &body,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_passes_search_parameters_on_and_keeps_kind() {
        let q = Query::parse(Some("kind=models&q=bot&target=&eval=mmlu%3Aacc%3E%3D0.6")).unwrap();
        assert_eq!(q.kind, Kind::Model);
        assert_eq!(q.encoded(&[]), "q=bot&eval=mmlu%3Aacc%3E%3D0.6");
        assert_eq!(
            q.href(Kind::Adapter, Some("ab.cd")),
            "/?kind=adapters&q=bot&eval=mmlu%3Aacc%3E%3D0.6&cursor=ab.cd"
        );
        assert!(Query::parse(Some("kind=widgets")).is_err());
    }
}
