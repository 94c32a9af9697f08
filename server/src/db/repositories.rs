//! Repositories: one per (kind, namespace, name), created by the first publish.

use adapter_core::manifest::Kind;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row as _};

use super::Db;

#[derive(Debug, Clone)]
pub struct RepoRow {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub created_at: i64,
}

fn repo_of(row: &AnyRow) -> Result<RepoRow, sqlx::Error> {
    Ok(RepoRow {
        id: row.try_get(0)?,
        namespace: row.try_get(1)?,
        name: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

/// Filters and page position of a repository listing.
#[derive(Debug, Clone, Default)]
pub struct RepoFilter {
    pub namespace: Option<String>,
    /// Substring of `ns/name` (already lower-cased).
    pub q: Option<String>,
    /// Return repositories strictly after this `(namespace, name)`.
    pub after: Option<(String, String)>,
    pub limit: i64,
}

impl Db {
    pub async fn repository(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<RepoRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, namespace, name, created_at FROM repositories \
             WHERE kind = $1 AND namespace = $2 AND name = $3",
        )
        .bind(kind.as_str())
        .bind(namespace.to_owned())
        .bind(name.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(repo_of).transpose()
    }

    /// Repositories of a kind in `(namespace, name)` order.
    pub async fn list_repositories(
        &self,
        kind: Kind,
        filter: &RepoFilter,
    ) -> Result<Vec<RepoRow>, sqlx::Error> {
        let mut sql = String::from(
            "SELECT id, namespace, name, created_at FROM repositories WHERE kind = $1",
        );
        let mut binds: Vec<String> = vec![kind.as_str().to_owned()];
        let next = |v: String, binds: &mut Vec<String>| {
            binds.push(v);
            format!("${}", binds.len())
        };
        if let Some(ns) = &filter.namespace {
            let p = next(ns.clone(), &mut binds);
            sql.push_str(&format!(" AND namespace = {p}"));
        }
        if let Some(q) = &filter.q {
            let p = next(format!("%{}%", escape_like(q)), &mut binds);
            sql.push_str(&format!(
                " AND (namespace || '/' || name) LIKE {p} ESCAPE '\\'"
            ));
        }
        if let Some((ns, name)) = &filter.after {
            let a = next(ns.clone(), &mut binds);
            let b = next(name.clone(), &mut binds);
            sql.push_str(&format!(
                " AND (namespace > {a} OR (namespace = {a} AND name > {b}))"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY namespace, name LIMIT {}",
            filter.limit.max(0)
        ));
        // Only placeholders and an integer are interpolated; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(repo_of).collect()
    }
}

/// Escape `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
