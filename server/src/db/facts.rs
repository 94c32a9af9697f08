//! Searchable facts of a version (version_facts, version_targets, version_labels) and its
//! lineage rows: written in the publish transaction, read back for search results, lineage
//! and the catalogue page. Versions published before these tables existed get theirs from
//! the startup backfill (`publish::facts::backfill`).

use std::collections::{BTreeMap, HashMap};

use adapter_core::api::{BaseModelRef, LatestEval, VersionFacts};
use adapter_core::manifest::Kind;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row as _};

use super::{Db, is_unique_violation, retry_busy, to_i64, to_u64};

/// One lineage row (what a version was made from).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineageRow {
    pub relation: String,
    pub kind: Option<String>,
    pub reference: Option<String>,
    pub manifest_digest: Option<String>,
    pub content_digest: Option<String>,
    pub shape_fingerprint: Option<String>,
    /// JSON.
    pub recipe: Option<String>,
}

/// Everything written beside a new version.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub facts: VersionFacts,
    pub labels: BTreeMap<String, String>,
    pub lineage: Vec<LineageRow>,
}

/// A version that has no facts row yet (backfill input).
#[derive(Debug, Clone)]
pub struct Unfacted {
    pub id: i64,
    pub kind: String,
    pub manifest: String,
    pub summary: String,
}

fn opt_text(v: Option<&impl ToString>) -> Option<String> {
    v.map(ToString::to_string)
}

/// Insert the facts of `version_id` on the publish transaction's connection.
pub async fn insert(
    conn: &mut AnyConnection,
    version_id: i64,
    f: &Facts,
) -> Result<(), sqlx::Error> {
    let v = &f.facts;
    let base = v.base.as_ref();
    sqlx::query(
        "INSERT INTO version_facts (version_id, peft_type, variant, rank_min, rank_max, \
         base_name, base_reference, base_content_digest, base_shape_fingerprint, \
         content_digest, shape_fingerprint) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(version_id)
    .bind(v.peft_type.clone())
    .bind(v.variant.clone())
    .bind(v.rank_min.map(to_i64))
    .bind(v.rank_max.map(to_i64))
    .bind(base.and_then(|b| b.name_or_path.clone()))
    .bind(base.and_then(|b| b.reference.clone()))
    .bind(opt_text(base.and_then(|b| b.content_digest.as_ref())))
    .bind(opt_text(base.and_then(|b| b.shape_fingerprint.as_ref())))
    .bind(opt_text(v.content_digest.as_ref()))
    .bind(opt_text(v.shape_fingerprint.as_ref()))
    .execute(&mut *conn)
    .await?;
    for t in &v.targets {
        sqlx::query("INSERT INTO version_targets (version_id, module) VALUES ($1, $2)")
            .bind(version_id)
            .bind(t.clone())
            .execute(&mut *conn)
            .await?;
    }
    for (k, val) in &f.labels {
        sqlx::query("INSERT INTO version_labels (version_id, key, value) VALUES ($1, $2, $3)")
            .bind(version_id)
            .bind(k.clone())
            .bind(val.clone())
            .execute(&mut *conn)
            .await?;
    }
    for l in &f.lineage {
        sqlx::query(
            "INSERT INTO lineage (version_id, relation, kind, reference, manifest_digest, \
             content_digest, shape_fingerprint, recipe) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(version_id)
        .bind(l.relation.clone())
        .bind(l.kind.clone())
        .bind(l.reference.clone())
        .bind(l.manifest_digest.clone())
        .bind(l.content_digest.clone())
        .bind(l.shape_fingerprint.clone())
        .bind(l.recipe.clone())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// `$start, $start+1, …` for `n` values.
pub fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn digest_col(row: &AnyRow, i: usize) -> Result<Option<adapter_core::digest::Digest>, sqlx::Error> {
    let s: Option<String> = row.try_get(i)?;
    Ok(s.and_then(|s| s.parse().ok()))
}

impl Db {
    /// Versions without a facts row, oldest first, at most `limit`.
    pub async fn versions_without_facts(&self, limit: i64) -> Result<Vec<Unfacted>, sqlx::Error> {
        let sql = format!(
            "SELECT v.id, r.kind, v.manifest, v.summary FROM versions v \
             JOIN repositories r ON r.id = v.repository_id \
             WHERE NOT EXISTS (SELECT 1 FROM version_facts f WHERE f.version_id = v.id) \
             ORDER BY v.id LIMIT {}",
            limit.max(0)
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Unfacted {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    manifest: r.try_get(2)?,
                    summary: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Write the facts of an existing version unless it has them already (idempotent; a
    /// concurrent backfill of the same version is a no-op).
    pub async fn backfill_facts(&self, version_id: i64, f: &Facts) -> Result<bool, sqlx::Error> {
        let written = retry_busy(|| async {
            let mut tx = self.pool.begin().await?;
            // The facts row goes first: a version that has one already fails here.
            insert(&mut tx, version_id, f).await?;
            tx.commit().await
        })
        .await;
        match written {
            Ok(()) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Facts (with targets) of these versions.
    pub async fn facts_of(&self, ids: &[i64]) -> Result<HashMap<i64, VersionFacts>, sqlx::Error> {
        let mut out: HashMap<i64, VersionFacts> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT version_id, peft_type, variant, rank_min, rank_max, base_name, \
             base_reference, base_content_digest, base_shape_fingerprint, content_digest, \
             shape_fingerprint FROM version_facts WHERE version_id IN ({})",
            placeholders(1, ids.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&self.pool).await? {
            let base = BaseModelRef {
                name_or_path: r.try_get(5)?,
                reference: r.try_get(6)?,
                content_digest: digest_col(&r, 7)?,
                shape_fingerprint: digest_col(&r, 8)?,
            };
            let facts = VersionFacts {
                peft_type: r.try_get(1)?,
                variant: r.try_get(2)?,
                rank_min: r.try_get::<Option<i64>, _>(3)?.map(to_u64),
                rank_max: r.try_get::<Option<i64>, _>(4)?.map(to_u64),
                targets: Vec::new(),
                base: (base != BaseModelRef::default()).then_some(base),
                content_digest: digest_col(&r, 9)?,
                shape_fingerprint: digest_col(&r, 10)?,
            };
            out.insert(r.try_get(0)?, facts);
        }
        let sql = format!(
            "SELECT version_id, module FROM version_targets WHERE version_id IN ({}) \
             ORDER BY version_id, module",
            placeholders(1, ids.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&self.pool).await? {
            let id: i64 = r.try_get(0)?;
            out.entry(id).or_default().targets.push(r.try_get(1)?);
        }
        Ok(out)
    }

    /// Labels of these versions.
    pub async fn labels_of(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, BTreeMap<String, String>>, sqlx::Error> {
        let mut out: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT version_id, key, value FROM version_labels WHERE version_id IN ({})",
            placeholders(1, ids.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&self.pool).await? {
            out.entry(r.try_get(0)?)
                .or_default()
                .insert(r.try_get(1)?, r.try_get(2)?);
        }
        Ok(out)
    }

    /// The latest value per `benchmark:metric` of each of these versions (the evals table
    /// is append-only: the highest id wins), sorted by benchmark then metric.
    pub async fn latest_evals_of(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, Vec<LatestEval>>, sqlx::Error> {
        let mut out: HashMap<i64, Vec<LatestEval>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT e.version_id, e.benchmark, e.metric, e.value, e.higher_is_better, \
             e.created_at FROM evals e WHERE e.version_id IN ({}) AND e.id = \
             (SELECT MAX(e2.id) FROM evals e2 WHERE e2.version_id = e.version_id \
              AND e2.benchmark = e.benchmark AND e2.metric = e.metric) \
             ORDER BY e.version_id, e.benchmark, e.metric",
            placeholders(1, ids.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&self.pool).await? {
            out.entry(r.try_get(0)?).or_default().push(LatestEval {
                benchmark: r.try_get(1)?,
                metric: r.try_get(2)?,
                value: r.try_get(3)?,
                higher_is_better: r.try_get::<i64, _>(4)? != 0,
                created_at: r.try_get(5)?,
            });
        }
        Ok(out)
    }

    /// The lineage rows of one version, in insertion order.
    pub async fn lineage_of(&self, version_id: i64) -> Result<Vec<LineageRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT relation, kind, reference, manifest_digest, content_digest, \
             shape_fingerprint, recipe FROM lineage WHERE version_id = $1 ORDER BY id",
        )
        .bind(version_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lineage_row).collect()
    }
}

pub fn lineage_row(r: &AnyRow) -> Result<LineageRow, sqlx::Error> {
    Ok(LineageRow {
        relation: r.try_get(0)?,
        kind: r.try_get(1)?,
        reference: r.try_get(2)?,
        manifest_digest: r.try_get(3)?,
        content_digest: r.try_get(4)?,
        shape_fingerprint: r.try_get(5)?,
        recipe: r.try_get(6)?,
    })
}

/// `adapter` / `model` as stored in `repositories.kind`.
pub fn kind_of(s: &str) -> Option<Kind> {
    match s {
        "adapter" => Some(Kind::Adapter),
        "model" => Some(Kind::Model),
        _ => None,
    }
}
