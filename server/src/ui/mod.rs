//! The pages for people (docs/UI.md): server-rendered HTML beside the API, inline CSS and
//! SVG, one small script (`assets`) for copy buttons and live job progress, no external
//! assets, usable without scripts.
//!
//! * `/` search and browse (`index`), `/ui/{kind}/{ns}/{name}` a repository
//!   (`repository`), `/ui/{kind}/{ns}/{name}/{selector}` a version by version, alias, range
//!   or digest (`version`, with `use_it` and `lineage`), `…/{version}/files/{path}` a file
//!   of it, `/ui/jobs` and `/ui/jobs/{id}` (`jobs`);
//! * `/ui/sign-in`, `/ui/sign-out` (`session`): the token as an HttpOnly, SameSite=Strict
//!   cookie that only these routes honour (`auth::is_html_route`);
//! * `browser`: errors as pages for browsers, the sign-in redirect, security headers.
//!
//! Every read goes through the same code as `/v1`: the catalogue (`catalog`) and the API's
//! read handlers (search, lineage, validations, jobs), with the caller's token, so a page
//! shows exactly what that token may read. Top floor.

mod assets;
pub mod browser;
mod chart;
pub mod html;
mod index;
mod jobs;
mod lineage;
mod repository;
mod session;
mod use_it;
mod version;

use std::collections::BTreeMap;

use adapter_core::api::{BaseModelRef, LatestEval, VersionFacts};
use axum::Router;
use axum::routing::get;

use crate::app::AppState;
use html::{NONE, esc};

pub use browser::pages as browser_layer;

/// The pages' routes (merged beside the API; not part of the OpenAPI spec).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index::index))
        .route("/favicon.ico", get(assets::favicon))
        .route("/ui/assets/ui.js", get(assets::script))
        .route("/ui/sign-in", get(session::show).post(session::sign_in))
        .route("/ui/sign-out", axum::routing::post(session::sign_out))
        .route("/ui/jobs", get(jobs::list))
        .route("/ui/jobs/{id}", get(jobs::one))
        .route("/ui/{kind}/{ns}/{name}", get(repository::repository))
        .route("/ui/{kind}/{ns}/{name}/{selector}", get(version::version))
        .route(
            "/ui/{kind}/{ns}/{name}/{selector}/files/{*path}",
            get(version::file),
        )
}

/// A base model: its reference (linked when registered), name, content digest.
fn base_cell(f: Option<&VersionFacts>) -> String {
    match f.and_then(|f| f.base.as_ref()) {
        Some(b) => base_ref(b, true),
        None => NONE.into(),
    }
}

/// `b` in short (`short`: the digest's first 12 hex digits) or in full.
fn base_ref(b: &BaseModelRef, short: bool) -> String {
    let mut out = String::new();
    if let Some(r) = &b.reference {
        out.push_str(&match reference_href("models", r) {
            Some(href) => format!("<a href=\"{}\"><code>{}</code></a>", esc(&href), esc(r)),
            None => format!("<code>{}</code>", esc(r)),
        });
    } else if let Some(n) = &b.name_or_path {
        out.push_str(&esc(n));
    }
    if let Some(d) = &b.content_digest {
        let text = if short {
            format!("{}…", &d.hex()[..12])
        } else {
            d.to_string()
        };
        out.push_str(&format!(
            "<br><code class=\"muted\" title=\"{}\">{}</code>",
            esc(&d.to_string()),
            esc(&text)
        ));
    }
    if out.is_empty() { NONE.into() } else { out }
}

/// The page of a reference `ns/name@selector` (`kind_segment`: `adapters` or `models`).
fn reference_href(kind_segment: &str, reference: &str) -> Option<String> {
    let (repo, selector) = reference.split_once('@').unwrap_or((reference, ""));
    let (ns, name) = repo.split_once('/')?;
    let mut href = format!("/ui/{kind_segment}/{}/{}", html::seg(ns), html::seg(name));
    if !selector.is_empty() {
        href.push('/');
        href.push_str(&html::seg(selector));
    }
    Some(href)
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
        _ => NONE.into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_link_to_their_pages() {
        assert_eq!(
            reference_href("models", "acme/llama@1.0.0").as_deref(),
            Some("/ui/models/acme/llama/1.0.0")
        );
        assert_eq!(
            reference_href("models", "acme/llama").as_deref(),
            Some("/ui/models/acme/llama")
        );
        assert_eq!(reference_href("models", "llama"), None);
        assert_eq!(
            reference_href("adapters", "a/b@<x>").as_deref(),
            Some("/ui/adapters/a/b/%3Cx%3E")
        );
    }
}
