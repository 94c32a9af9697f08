//! A version's lineage as a small graph: what it was made from (its base, a merge's base
//! and adapter, a quantisation's model) → the version → what was made from it (adapters on
//! a model, merges, quantisations), and the chain back to the first base. The data is
//! `GET …/lineage`'s (`api::lineage::get`, with the caller's namespaces).

use adapter_core::api::{LineageNode, LineageView, kind_segment};
use serde_json::Value;

use super::html::{esc, seg};

/// The page of a registered node.
fn href(n: &LineageNode) -> Option<String> {
    let (kind, ns, name, version) = (
        n.kind?,
        n.namespace.as_ref()?,
        n.name.as_ref()?,
        n.version.as_ref()?,
    );
    Some(format!(
        "/ui/{}/{}/{}/{}",
        kind_segment(kind),
        seg(ns),
        seg(name),
        seg(version)
    ))
}

fn node(n: &LineageNode, class: &str) -> String {
    let label = n
        .reference
        .clone()
        .or_else(|| n.content_digest.clone())
        .unwrap_or_else(|| "(unrecorded)".into());
    let label = match href(n) {
        Some(h) => format!("<a href=\"{h}\" class=\"lineage-link\">{}</a>", esc(&label)),
        None => format!("<span title=\"not registered here\">{}</span>", esc(&label)),
    };
    let recipe = n
        .recipe
        .as_ref()
        .and_then(|r| r.get("job_kind").or_else(|| r.get("kind")))
        .and_then(Value::as_str)
        .map(|k| format!(" <span class=\"tag\">{}</span>", esc(k)))
        .unwrap_or_default();
    let yanked = if n.yanked == Some(true) {
        " <span class=\"yanked\">yanked</span>"
    } else {
        ""
    };
    format!(
        "<div class=\"node {class}\"><span class=\"muted\">{}{}</span><br>{label}{recipe}{yanked}</div>",
        // A child's row says how it relates to its input; from here it is derived.
        if class == "child" {
            "derived".to_owned()
        } else {
            esc(&n.relation)
        },
        n.kind
            .map(|k| format!(" · {}", k.as_str()))
            .unwrap_or_default(),
    )
}

/// The graph and the chain; empty when the version has no lineage either way.
pub fn graph(view: &LineageView, me: &str) -> String {
    if view.parents.is_empty() && view.children.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Lineage</h2><div class=\"lineage\" id=\"lineage\">");
    if !view.parents.is_empty() {
        out.push_str("<div class=\"col\" id=\"derived-from\">");
        for p in &view.parents {
            out.push_str(&node(p, "parent"));
        }
        out.push_str("</div><span class=\"arrow\">→</span>");
    }
    out.push_str(&format!(
        "<div class=\"node self\"><b>{}</b></div>",
        esc(me)
    ));
    if !view.children.is_empty() {
        out.push_str("<span class=\"arrow\">→</span><div class=\"col\" id=\"derived\">");
        for c in &view.children {
            out.push_str(&node(c, "child"));
        }
        out.push_str("</div>");
    }
    out.push_str("</div>");
    if view.chain.len() > 2 {
        out.push_str("<p class=\"muted\">Chain to the first base: ");
        let steps: Vec<String> = view
            .chain
            .iter()
            .map(|n| {
                let text = esc(n.reference.as_deref().unwrap_or("?"));
                match href(n) {
                    Some(h) => format!("<a href=\"{h}\">{text}</a>"),
                    None => text,
                }
            })
            .collect();
        out.push_str(&steps.join(" ← "));
        out.push_str("</p>");
    }
    out
}
