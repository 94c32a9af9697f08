//! `GET /v1/{kind}/{ns}/{name}/versions/{version}/lineage`: what a version was made from,
//! what was made from it, and its chain back to the first base.

use adapter_core::api::{ErrorBody, LineageNode, LineageView};
use axum::extract::State;
use axum::{Extension, Json};
use serde_json::Value;

use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog;
use crate::db::facts::{LineageRow, kind_of};
use crate::db::lineage::VersionRef;
use crate::error::{ApiError, ApiResult};
use crate::extract::VersionPath;

/// Longest chain followed (lineage written by jobs could, in theory, loop).
pub const MAX_CHAIN: usize = 32;

fn registered(relation: &str, v: &VersionRef) -> LineageNode {
    LineageNode {
        relation: relation.to_owned(),
        kind: kind_of(&v.kind),
        namespace: Some(v.namespace.clone()),
        name: Some(v.name.clone()),
        version: Some(v.version.clone()),
        reference: Some(format!("{}/{}@{}", v.namespace, v.name, v.version)),
        manifest_digest: Some(v.manifest_digest.clone()),
        yanked: Some(v.yanked),
        ..LineageNode::default()
    }
}

/// A lineage row as a node, with the registered version it names when there is one.
fn node(l: &LineageRow, target: Option<&VersionRef>) -> LineageNode {
    let mut n = match target {
        Some(v) => registered(&l.relation, v),
        None => LineageNode {
            relation: l.relation.clone(),
            kind: l.kind.as_deref().and_then(kind_of),
            reference: l.reference.clone(),
            manifest_digest: l.manifest_digest.clone(),
            ..LineageNode::default()
        },
    };
    n.content_digest = l.content_digest.clone();
    n.shape_fingerprint = l.shape_fingerprint.clone();
    n.recipe = l
        .recipe
        .as_deref()
        .map(|r| serde_json::from_str(r).unwrap_or_else(|_| Value::String(r.to_owned())));
    n
}

/// The row a chain follows upward: the `base`, else the first model `input`, else the
/// first `input`.
fn upward(rows: &[LineageRow]) -> Option<&LineageRow> {
    rows.iter()
        .find(|l| l.relation == "base")
        .or_else(|| {
            rows.iter()
                .find(|l| l.relation == "input" && l.kind.as_deref() == Some("model"))
        })
        .or_else(|| rows.iter().find(|l| l.relation == "input"))
}

/// Lineage of one version.
#[utoipa::path(
    get,
    path = "/{ns}/{name}/versions/{version}/lineage",
    operation_id = "get_lineage",
    params(
        ("ns" = String, Path, description = "Namespace (name rules: docs/FORMATS.md)."),
        ("name" = String, Path, description = "Repository name."),
        ("version" = String, Path, description = "A semver version."),
    ),
    responses(
        (status = 200, description = "Parents, children and the chain to the first base.", body = LineageView),
        (status = 400, description = "`invalid_name`, `invalid_version`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `version_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    p: VersionPath,
) -> ApiResult<Json<LineageView>> {
    let r = &p.repo;
    let version = catalog::version(&app.db, r.kind, &r.ns, &r.name, &p.version).await?;
    let me = app
        .db
        .version_ref(version.id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("{r}@{} vanished", p.version)))?;
    let rows = app.db.lineage_of(me.id).await?;
    let mut parents = Vec::with_capacity(rows.len());
    for l in &rows {
        let target = app.db.lineage_target(l).await?;
        parents.push(node(l, target.as_ref()));
    }
    let content = app
        .db
        .facts_of(&[me.id])
        .await?
        .remove(&me.id)
        .and_then(|f| f.content_digest)
        .map(|d| d.to_string());
    let visible = caller.visible_namespaces();
    let children = app
        .db
        .lineage_children(&me, content.as_deref())
        .await?
        .iter()
        .map(|c| registered(&c.relation, &c.version))
        // What was derived in namespaces the caller cannot read stays unseen.
        .filter(|n| match (&visible, &n.namespace) {
            (Some(allowed), Some(ns)) => allowed.contains(ns),
            _ => true,
        })
        .collect();
    // The chain: this version, then upward while the parent is registered.
    let mut chain = vec![registered("self", &me)];
    let mut seen = vec![me.id];
    let mut rows = rows;
    while chain.len() < MAX_CHAIN {
        let Some(up) = upward(&rows).cloned() else {
            break;
        };
        let target = app.db.lineage_target(&up).await?;
        chain.push(node(&up, target.as_ref()));
        match target {
            Some(t) if !seen.contains(&t.id) => {
                seen.push(t.id);
                rows = app.db.lineage_of(t.id).await?;
            }
            _ => break,
        }
    }
    Ok(Json(LineageView {
        parents,
        children,
        chain,
    }))
}
